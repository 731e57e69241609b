"""An upstream that records every request (its raw target, headers and body) and answers
404: for tests of what reaches a provider."""

from __future__ import annotations

from aiohttp import web

from tests.fakes.server import FakeServer


class PathRecorder(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []  # the request line's target, as sent (not normalised)

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self.any)

    async def any(self, request: web.Request) -> web.Response:
        self.targets.append(request.raw_path)
        await self.record(request)  # headers and body, in ``requests``
        error = {"error": {"code": 404, "message": "no such model", "status": "NOT_FOUND"}}
        return web.json_response(error, status=404)
