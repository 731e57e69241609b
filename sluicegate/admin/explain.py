"""``POST /admin/route/explain``: the running gateway's routing decision for a request,
with its live latency, health and load, without sending the request or counting it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluicegate.admin.entities import json_response
from sluicegate.errors import Unprocessable
from sluicegate.proxy.explain import explain

if TYPE_CHECKING:
    from sluicegate.admin.api import AdminApi


class ExplainEndpoint:
    def __init__(self, api: AdminApi) -> None:
        self.api = api

    def routes(self, prefix: str) -> list[Route]:
        return [Route(f"{prefix}/route/explain", self.explain, methods=["POST"])]

    async def explain(self, request: Request) -> Response:
        api = self.api
        payload = await api.body(request)
        body = payload.get("body")
        if not isinstance(body, dict):
            raise Unprocessable([("body", "the request to explain, a JSON object")])
        gw = api.gw(request)
        runtime = api.runtime
        table = runtime.tables[gw]
        embed = api.embedder(table) if api.embedder is not None else None
        found = await explain(
            table,
            runtime.route_stats,
            body,
            _text(payload, "model"),
            _text(payload, "consumer"),
            {str(k): str(v) for k, v in (payload.get("headers") or {}).items()},
            _text(payload, "dialect") or "openai",
            float(payload.get("budget_used") or 0.0),
            embed,
        )
        return json_response(found.shown())


def _text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    return value if isinstance(value, str) else None
