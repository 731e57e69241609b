#!/usr/bin/env python3
"""CPU time of screening a request body with `pii: redact`, in process.

  .venv/bin/python bench/guardrails_request.py [--rounds 1000]

Runs the guardrails' request step (Screen.request: the walk over every string of
the body, folding, the PII patterns) on a few typical bodies, each already parsed,
and prints the mean CPU time per request. No server, no network: what it measures
is the gateway's own work, which docs/guardrails.md ("What it costs") reports.
"""

import argparse
import base64
import os
import time

import orjson

from sluicegate.config.model import Policies
from sluicegate.dialects.openai import OpenAIDialect
from sluicegate.guardrails.policy import compile_guard

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city and a date",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city"],
        },
    },
}


def bodies():
    messages = [{"role": "system", "content": "You are a helpful assistant. Answer briefly."}]
    for i in range(5):
        question = f"Question {i}: what is the weather like in Paris on Tuesday, and should I"
        messages.append({"role": "user", "content": question + " bring an umbrella?"})
        answer = "It will rain in the morning; bring an umbrella and a coat. " * 3
        messages.append({"role": "assistant", "content": answer})
    german = "Grüß Gott, können Sie mir bitte helfen? Ich möchte eine Überweisung tätigen. "
    # With full-width punctuation (\uff0c comma, \uff1a colon, \uff01 exclamation mark).
    chinese = "请帮我写一封邮件\uff0c内容是\uff1a明天的会议改到下午三点。谢谢\uff01"
    image = "data:image/png;base64," + base64.b64encode(os.urandom(750_000)).decode()
    pii = "mail jane@example.com or call +44 20 7946 0958 "
    return [
        ("chat, 11 messages and 2 tools", {"messages": messages, "tools": [TOOL, TOOL]}),
        ("German text", {"messages": [{"role": "user", "content": german * 20}]}),
        ("Chinese text", {"messages": [{"role": "user", "content": chinese * 20}]}),
        ("two values to redact", {"messages": [{"role": "user", "content": pii * 5}]}),
        (
            "a 1 MB inline image",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this"},
                            {"type": "image_url", "image_url": {"url": image}},
                        ],
                    }
                ]
            },
        ),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    args = parser.parse_args()
    guard = compile_guard(Policies.model_validate({"guardrails": {"pii": "redact"}}))
    dialect = OpenAIDialect()
    print("| body | bytes | CPU per request |\n| --- | --- | --- |")
    for name, body in bodies():
        raw = orjson.dumps({"model": "m", **body})
        rounds = args.rounds if len(raw) < 100_000 else max(args.rounds // 20, 10)
        spent = 0.0
        for _ in range(rounds):
            parsed = dialect.parse("chat", raw)
            started = time.process_time()
            guard.begin("openai", "chat").request(dialect, parsed, raw, [], len)
            spent += time.process_time() - started
        print(f"| {name} | {len(raw)} | {spent / rounds * 1e6:.0f} µs |")


if __name__ == "__main__":
    main()
