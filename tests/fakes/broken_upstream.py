"""An OpenAI-compatible upstream that answers with broken bytes (``mode`` picks which).

    ok              a normal answer, streamed when asked
    malformed-json  200 with a JSON body cut in the middle
    not-json        200, ``Content-Type: application/json``, an HTML page
    truncated-sse   two events, then half an event, then the end of the response
    huge            an answer whose content is ``size`` bytes (streamed in 64 KiB events)
    invalid-utf8    an answer whose content holds bytes that are not UTF-8
    binary-sse      a stream whose events are random bytes
    html-type       a normal answer, whole or streamed, labelled ``Content-Type: text/html``

``tests/fakes/faulty_server.py`` covers statuses, hangs and resets; this one covers bodies.
"""

from __future__ import annotations

import os

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer

_HEAD = b'{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'


class BrokenUpstream(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.size = 1024

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        if body.get("stream"):
            return await self._stream(request)
        return self._whole()

    def _whole(self) -> web.Response:
        json = "application/json"
        if self.mode == "malformed-json":
            return web.Response(body=_HEAD + b'"message":{"role":"assis', content_type=json)
        if self.mode == "not-json":
            page = b"<html><body>502 Bad Gateway</body></html>"
            return web.Response(body=page, content_type=json)
        if self.mode == "invalid-utf8":
            content = b"caf\xc3 \xff\xfe bad"
            body = _HEAD + b'"message":{"role":"assistant","content":"' + content + b'"},'
            return web.Response(body=body + b'"finish_reason":"stop"}]}', content_type=json)
        if self.mode == "html-type":
            json = "text/html"
        content_text = "x" * self.size if self.mode == "huge" else "fine"
        answer = {
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content_text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return web.Response(body=orjson.dumps(answer), content_type=json)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        kind = "text/html" if self.mode == "html-type" else "text/event-stream"
        response = web.StreamResponse(headers={"Content-Type": kind})
        await response.prepare(request)

        def event(content: str | None, finish: str | None = None) -> bytes:
            delta = {} if content is None else {"content": content}
            chunk = {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        if self.mode == "truncated-sse":
            await response.write(event("one"))
            await response.write(event(" two"))
            await response.write(b'data: {"id":"c","choices":[{"ind')
            await response.write_eof()
            return response
        if self.mode == "binary-sse":
            await response.write(event("one"))
            # No line ends inside: a CR there would end the data line early (SSE allows CR
            # alone), and one right after "data: " would leave an empty event, never sent.
            noise = os.urandom(200).replace(b"\n", b"").replace(b"\r", b"")
            await response.write(b"data: " + noise + b"\n\n")
            await response.write(event(None, "stop") + b"data: [DONE]\n\n")
            await response.write_eof()
            return response
        if self.mode == "invalid-utf8":
            await response.write(event("one"))
            broken = event("PLACEHOLDER").replace(b"PLACEHOLDER", b"caf\xc3 \xff\xfe")
            await response.write(broken)
        elif self.mode == "huge":
            left = self.size
            while left > 0:
                piece = min(left, 64 * 1024)
                await response.write(event("y" * piece))
                left -= piece
        else:
            await response.write(event("fine"))
        await response.write(event(None, "stop") + b"data: [DONE]\n\n")
        await response.write_eof()
        return response
