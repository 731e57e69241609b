#!/usr/bin/env python3
"""Generate bench/mock-upstream/nginx.conf: a static, as-fast-as-possible mock
of the OpenAI (and Anthropic) HTTP API for gateway benchmarks.

nginx cannot look inside a request body, so streaming is selected by PATH:

  POST /v1/chat/completions            -> chat.completion JSON (non-streaming)
  POST /stream/v1/chat/completions     -> SSE: chat.completion.chunk x 12 + [DONE]
  POST /stream50/v1/chat/completions   -> SSE: chat.completion.chunk x 50 + [DONE]
  GET  /v1/models, /stream/v1/models   -> model list
  POST /v1/messages                    -> Anthropic message JSON
  POST /stream/v1/messages             -> Anthropic SSE (message_start ... message_stop)
  GET  /health                         -> "ok"

A gateway under test is therefore configured with two upstream models:
  <model>          -> api_base http://127.0.0.1:18080/v1
  <model>-stream   -> api_base http://127.0.0.1:18080/stream/v1
and the harness sends stream=true requests with the "-stream" model name.

Bodies are inlined into the config (nginx `return 200 '...'`), so nginx does no
file I/O and ignores the request body.  Run this script after editing the
fixtures below; it validates every JSON document it writes.

Usage: python3 gen_nginx_conf.py [--port 18080] [--out nginx.conf]
"""

import argparse
import json
import os

CREATED = 1735689600
CHAT_ID = "chatcmpl-BenchMock0000000000000000001"
MODEL = "gpt-4o-mini-2024-07-18"
FP = "fp_b376dfbbd5"
ANSWER = (
    "Sure. A gateway forwards your request to the upstream model provider, "
    "adds authentication, routing, retries and logging, and streams the "
    "response back to you. Keeping its added latency low matters most for "
    "chatty, multi-step agents that call the model many times per task."
)
# pieces streamed one per SSE chunk (joined they equal ANSWER)
STREAM_PIECES = [
    "Sure.",
    " A gateway forwards",
    " your request to the upstream model provider,",
    " adds authentication, routing, retries and logging,",
    " and streams the response back to you.",
    " Keeping its added latency low",
    " matters most for chatty,",
    " multi-step agents",
    " that call the model many times per task.",
]
assert "".join(STREAM_PIECES) == ANSWER
# the same answer cut into 47 slices of a few characters, about a token each: with the
# role, finish and usage chunks a 50-chunk stream (the streaming scenario of bench/matrix.py)
STREAM50_PIECES = [ANSWER[len(ANSWER) * i // 47 : len(ANSWER) * (i + 1) // 47] for i in range(47)]
assert "".join(STREAM50_PIECES) == ANSWER
USAGE = {
    "prompt_tokens": 24,
    "completion_tokens": 52,
    "total_tokens": 76,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def dumps(obj):
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
    # nginx single-quoted string: no ', no $ (variables), no backslashes
    for bad in ("'", "$", "\\"):
        assert bad not in s, f"fixture contains {bad!r}: {s[:80]}"
    json.loads(s)
    return s


def chat_completion():
    return dumps(
        {
            "id": CHAT_ID,
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": ANSWER,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "service_tier": "default",
            "system_fingerprint": FP,
        }
    )


def chat_stream(pieces=STREAM_PIECES):
    base = {
        "id": CHAT_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "service_tier": "default",
        "system_fingerprint": FP,
    }
    chunks = [
        dict(
            base,
            choices=[
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "", "refusal": None},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
            usage=None,
        )
    ]
    for piece in pieces:
        chunks.append(
            dict(
                base,
                choices=[
                    {
                        "index": 0,
                        "delta": {"content": piece},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
                usage=None,
            )
        )
    chunks.append(
        dict(
            base,
            choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
            usage=None,
        )
    )
    # usage chunk, as sent when stream_options.include_usage is true
    chunks.append(dict(base, choices=[], usage=USAGE))
    return [f"data: {dumps(c)}\\n\\n" for c in chunks] + ["data: [DONE]\\n\\n"]


def models():
    return dumps(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": CREATED, "owned_by": "system"}
                for m in (
                    "gpt-4o-mini",
                    "gpt-4o-mini-2024-07-18",
                    "gpt-4o",
                    "claude-3-5-haiku-20241022",
                )
            ],
        }
    )


ANTHROPIC_ID = "msg_01BenchMock000000000000001"
ANTHROPIC_MODEL = "claude-3-5-haiku-20241022"


def anthropic_message():
    return dumps(
        {
            "id": ANTHROPIC_ID,
            "type": "message",
            "role": "assistant",
            "model": ANTHROPIC_MODEL,
            "content": [{"type": "text", "text": ANSWER}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 24,
                "output_tokens": 52,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
    )


def anthropic_stream():
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": ANTHROPIC_ID,
                    "type": "message",
                    "role": "assistant",
                    "model": ANTHROPIC_MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 24, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for piece in STREAM_PIECES:
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        )
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 52},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [f"event: {name}\\ndata: {dumps(obj)}\\n\\n" for name, obj in events]


NGX_TOKEN_MAX = 3500  # nginx rejects a config token over ~4 KB (NGX_CONF_BUFFER)


def nginx_body(name, parts):
    """nginx directives that answer 200 with the concatenation of `parts`.

    A body longer than one config token is split (at part boundaries) into
    `set $mock_<name>_<i> '...'` variables and returned as "$v0$v1...".
    """
    if isinstance(parts, str):
        parts = [parts]
    groups, cur = [], ""
    for p in parts:
        assert len(p) <= NGX_TOKEN_MAX, f"single part too long for nginx: {len(p)}"
        if cur and len(cur) + len(p) > NGX_TOKEN_MAX:
            groups.append(cur)
            cur = ""
        cur += p
    groups.append(cur)
    if len(groups) == 1:
        return f"return 200 '{groups[0]}';"
    lines = [f"set $mock_{name}_{i} '{g}';" for i, g in enumerate(groups)]
    lines.append('return 200 "' + "".join(f"$mock_{name}_{i}" for i in range(len(groups))) + '";')
    return "\n            ".join(lines)


TEMPLATE = """\
# GENERATED by gen_nginx_conf.py -- edit that file, not this one.
# Static mock of the OpenAI / Anthropic HTTP API for gateway benchmarks.
# Start:  bench/mock-upstream/start.sh (nginx -p PREFIX/ -e PREFIX/error.log -c THIS_FILE)
#         stop with bench/mock-upstream/stop.sh (kill -QUIT <pid from PREFIX/nginx.pid>)
# All relative paths below are relative to the -p prefix directory.
worker_processes 1;            # leave the other core to the gateway and the load generator
pid nginx.pid;
error_log error.log warn;
events {{
    worker_connections 8192;
    multi_accept on;
}}
http {{
    access_log off;
    server_tokens off;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 10000000;   # never make the gateway reconnect because of us
    client_body_buffer_size 256k;   # bodies are discarded, but never spill to disk
    client_max_body_size 64m;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;

    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        add_header x-request-id $request_id always;
        add_header openai-processing-ms 1 always;
        add_header openai-version 2020-10-01 always;
        add_header x-ratelimit-limit-requests 30000 always;
        add_header x-ratelimit-remaining-requests 29999 always;
        add_header x-ratelimit-limit-tokens 150000000 always;
        add_header x-ratelimit-remaining-tokens 149999975 always;

        location = /health {{ default_type text/plain; return 200 'ok'; }}

        # ---- OpenAI, non-streaming ----
        location = /v1/chat/completions {{
            {chat}
        }}
        # ---- OpenAI, streaming (select by path) ----
        location = /stream/v1/chat/completions {{
            default_type text/event-stream;
            add_header cache-control no-cache always;
            add_header x-request-id $request_id always;
            {chat_stream}
        }}
        location = /stream50/v1/chat/completions {{
            default_type text/event-stream;
            add_header cache-control no-cache always;
            add_header x-request-id $request_id always;
            {chat_stream50}
        }}
        location ~ ^(/stream|/stream50)?/v1/models$ {{
            {models}
        }}
        # ---- Anthropic Messages API ----
        location = /v1/messages {{
            {anthropic}
        }}
        location = /stream/v1/messages {{
            default_type text/event-stream;
            add_header cache-control no-cache always;
            add_header x-request-id $request_id always;
            {anthropic_stream}
        }}
        location / {{
            return 404 '{not_found}';
        }}
    }}
}}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument(
        "--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "nginx.conf")
    )
    a = ap.parse_args()
    not_found = {
        "error": {
            "message": "mock upstream: unknown path",
            "type": "invalid_request_error",
            "code": "not_found",
        }
    }
    conf = TEMPLATE.format(
        port=a.port,
        not_found=dumps(not_found),
        chat=nginx_body("chat", chat_completion()),
        chat_stream=nginx_body("chat_stream", chat_stream()),
        chat_stream50=nginx_body("chat_stream50", chat_stream(STREAM50_PIECES)),
        models=nginx_body("models", models()),
        anthropic=nginx_body("anthropic", anthropic_message()),
        anthropic_stream=nginx_body("anthropic_stream", anthropic_stream()),
    )
    with open(a.out, "w") as f:
        f.write(conf)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
