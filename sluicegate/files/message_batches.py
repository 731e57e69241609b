"""Anthropic's Message Batches API through the gateway, in Anthropic's shapes and errors.

    POST   /v1/messages/batches               routed as chat is: by the model each request asks
                                              for (the rule's target model goes on), or through
                                              the first rule naming /v1/messages/batches
    GET    /v1/messages/batches               the caller's own, asked again unless ended
    GET    /v1/messages/batches/{id} · DELETE · POST …/{id}/cancel · GET …/{id}/results

A batch's ``results_url`` names the gateway; reading the results records the batch's usage
(``usage``), once.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.dialects.anthropic import AnthropicDialect
from sluicegate.errors import InvalidRequest, NotFound
from sluicegate.files.api import ObjectCall, first_seen, limit_of, page
from sluicegate.files.upstream import need, segment
from sluicegate.files.usage import BatchUsage
from sluicegate.routing.table import CompiledRule, CompiledService, Step
from sluicegate.stores.objects import OwnedObject

PATH = "/v1/messages/batches"
MESSAGES = AnthropicDialect()
DEFAULT_VERSION = "2023-06-01"
FINAL = frozenset({"ended"})


async def serve(call: ObjectCall) -> None:
    method, parts = call.method, call.parts
    if not parts:
        if method == "POST":
            return await create(call)
        if method == "GET":
            return await listed(call)
    elif len(parts) == 1:
        if method == "GET":
            return await one(call, parts[0], "GET", "")
        if method == "DELETE":
            return await delete(call, parts[0])
    elif len(parts) == 2 and method == "POST" and parts[1] == "cancel":
        return await one(call, parts[0], "POST", "/cancel")
    elif len(parts) == 2 and method == "GET" and parts[1] == "results":
        return await results(call, parts[0])
    raise NotFound(f"Unknown path {method} {call.scope['path']}.", code="unknown_path")


def _headers(call: ObjectCall, service: CompiledService) -> dict[str, str]:
    """Anthropic's version header as the client sent it, and those of its beta names that
    the service allows (``anthropic_betas``), as on ``/v1/messages``."""
    out = {"anthropic-version": DEFAULT_VERSION}
    betas: list[str] = []
    for name, value in call.scope["headers"]:
        if name == b"anthropic-version":
            out["anthropic-version"] = value.decode("latin-1")
        elif name == b"anthropic-beta":
            betas.append(value.decode("latin-1"))
    if betas and service.adapter is not None:
        out.update(service.adapter.forwarded({"anthropic-beta": ",".join(betas)}))
    return out


def _screened(call: ObjectCall, rule: CompiledRule, params: dict[str, Any]) -> dict[str, Any]:
    """One request of the batch through its rule's guardrails and transforms, as the same
    request sent to /v1/messages would be (a denied one refuses the whole batch)."""
    if rule.guard is None:
        return params
    raw = orjson.dumps(params)
    screen = rule.guard.begin(MESSAGES.name, "chat")
    parsed, _ = screen.request(
        MESSAGES,
        MESSAGES.parse("chat", raw),
        raw,
        call.scope["headers"],
        call.api.proxy.prompt_tokens,
    )
    return parsed.native


async def _route(call: ObjectCall, requests: list[Any]) -> CompiledService:
    """The one service the batch goes to; each request's model becomes its rule's target
    model. A rule naming the path takes the batch as it is."""
    table = call.table
    if any(r.paths is not None and PATH in r.paths for r in table.rules):
        named = call.path_rule(PATH)
        for item in requests:
            if isinstance(item, dict) and isinstance(item.get("params"), dict):
                item["params"] = _screened(call, named, item["params"])
        await call.admit(named)
        return named.pick(table.rng).service
    steps: dict[str, tuple[CompiledRule, Step]] = {}
    admitted: set[str] = set()
    service: CompiledService | None = None
    scope = {"path": "/v1/messages"}  # a batch's requests are Messages requests
    for index, item in enumerate(requests):
        params = item.get("params") if isinstance(item, dict) else None
        model = params.get("model") if isinstance(params, dict) else None
        if not isinstance(params, dict) or not isinstance(model, str):
            raise InvalidRequest(
                f"requests[{index}].params.model is required.", param=f"requests.{index}"
            )
        found = steps.get(model)
        if found is None:
            rule = call.api.proxy.match(table, call.consumer, model, scope, call.scope["headers"])
            if rule.name not in admitted:
                admitted.add(rule.name)
                await call.admit(rule)
            found = steps[model] = (rule, rule.pick(table.rng))
            call.ex.rule = call.ex.rule or rule.name
        rule, step = found
        item["params"] = params = _screened(call, rule, params)
        if service is not None and step.service is not service:
            raise InvalidRequest(
                "The requests of a batch must all go to one service; "
                f"'{model}' goes to '{step.service.name}', not '{service.name}'.",
                param=f"requests.{index}",
            )
        service = step.service
        if step.model is not None:
            params["model"] = step.model
    if service is None:
        raise InvalidRequest("requests must hold at least one request.", param="requests")
    return service


def _base(call: ObjectCall) -> str:
    """The gateway's own URL as the client reached it, ``/gw/<name>`` included."""
    host = next((v for k, v in call.scope["headers"] if k == b"host"), b"localhost")
    raw: bytes = call.scope.get("raw_path") or call.scope["path"].encode()
    prefix = raw[: raw.find(PATH.encode())] if PATH.encode() in raw else b""
    return (
        f"{call.scope.get('scheme', 'http')}://{host.decode('latin-1')}{prefix.decode('latin-1')}"
    )


def _doc(call: ObjectCall, service: CompiledService, doc: dict[str, Any]) -> dict[str, Any]:
    upstream = doc.get("id")
    if not isinstance(upstream, str):
        raise InvalidRequest("The provider's answer names no batch id.")
    mine = call.mint("message_batch", service, upstream)
    out = {**doc, "id": mine}
    if doc.get("results_url"):
        out["results_url"] = f"{_base(call)}{PATH}/{mine}/results"
    return out


def _row(call: ObjectCall, service: CompiledService, doc: dict[str, Any]) -> OwnedObject:
    return OwnedObject(
        doc["id"],
        call.table.gateway,
        call.owner,
        "message_batch",
        service.name,
        first_seen(),
        doc,
    )


async def create(call: ObjectCall) -> None:
    body = await call.body()
    requests = body.get("requests")
    if not isinstance(requests, list):
        raise InvalidRequest("requests must be a list.", param="requests")
    service = await _route(call, requests)
    need(service, ("anthropic",), PATH)
    upstream = call.upstream(service)
    headers = {**_headers(call, service), "content-type": "application/json"}
    doc = await upstream.json("POST", "/messages/batches", headers, orjson.dumps(body))
    doc = _doc(call, service, doc)
    await call.api.owned.put_object(_row(call, service, doc))
    await call.answer(doc)


async def one(call: ObjectCall, value: str, method: str, tail: str) -> None:
    ref, service = call.resolve("message_batch", value)
    upstream = call.upstream(service)
    path = f"/messages/batches/{segment(ref.upstream)}{tail}"
    doc = _doc(call, service, await upstream.json(method, path, _headers(call, service)))
    await call.api.owned.put_object(_row(call, service, doc))
    await call.answer(doc)


async def delete(call: ObjectCall, value: str) -> None:
    ref, service = call.resolve("message_batch", value)
    upstream = call.upstream(service)
    path = "/messages/batches/" + segment(ref.upstream)
    doc = await upstream.json("DELETE", path, _headers(call, service))
    await call.api.owned.delete_object(value)
    await call.answer({**doc, "id": value})


async def results(call: ObjectCall, value: str) -> None:
    ref, service = call.resolve("message_batch", value)
    upstream = call.upstream(service)
    path = f"/messages/batches/{segment(ref.upstream)}/results"
    response = await upstream.open("GET", path, _headers(call, service))
    await upstream.check(response)
    row = await call.api.owned.owned_object(value)
    usage = BatchUsage("anthropic") if row is not None and not row.recorded else None
    try:
        await call.relay(response, usage, row)
    finally:
        response.release()


async def listed(call: ObjectCall) -> None:
    rows = await call.api.owned.owned_objects(call.table.gateway, call.owner, "message_batch")
    limit = limit_of(call.query, 20, 1000)
    chosen, more = page(rows, call.query.get("after_id"), call.query.get("before_id"), limit)

    async def fetch(row: OwnedObject) -> dict[str, Any]:
        ref, service = call.resolve("message_batch", row.id)
        upstream = call.upstream(service)
        path = "/messages/batches/" + segment(ref.upstream)
        doc = _doc(call, service, await upstream.json("GET", path, _headers(call, service)))
        await call.api.owned.put_object(_row(call, service, doc))
        return doc

    data = await call.api.refresh(call, chosen, fetch, FINAL, "processing_status")
    await call.answer(
        {
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )
