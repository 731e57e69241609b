"""A fake OpenAI upstream that answers only requests carrying one of its credentials.

A credential is an ``Authorization`` header value or an ``api-key`` query
parameter. A request without one gets a fixed 401 that repeats nothing of the
request, so a secret found anywhere the gateway shows things is the gateway's leak.
"""

from __future__ import annotations

from aiohttp import web

from tests.fakes.openai_server import FakeOpenAI

_REFUSED = {
    "error": {
        "message": "fake upstream: no valid credential",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


class GuardedOpenAI(FakeOpenAI):
    def __init__(self, *credentials: str) -> None:
        super().__init__()
        self.credentials = set(credentials)
        self.accepted: list[str] = []  # the credential of every answered request, in order
        self.refused = 0

    def _credential(self, request: web.Request) -> str | None:
        for value in (request.headers.get("authorization"), request.query.get("api-key")):
            if value is not None and value in self.credentials:
                return value
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        credential = self._credential(request)
        if credential is None:
            self.refused += 1
            return web.json_response(_REFUSED, status=401)
        self.accepted.append(credential)
        return await super().chat(request)

    async def embeddings(self, request: web.Request) -> web.Response:
        credential = self._credential(request)
        if credential is None:
            self.refused += 1
            return web.json_response(_REFUSED, status=401)
        self.accepted.append(credential)
        return await super().embeddings(request)
