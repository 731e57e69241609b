"""``sluicegate route explain``: the routing decision for a request, without sending it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from sluicegate.errors import ConfigError, GatewayError


def _headers(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep:
            raise SystemExit(f"--header {item!r}: write it as name:value")
        out[name.strip()] = value.strip()
    return out


def _remote(args: argparse.Namespace, payload: dict[str, Any]) -> dict[str, Any] | None:
    import httpx

    scope = f"/gateways/{args.gateway}" if args.gateway else ""
    url = args.url.rstrip("/") + f"/admin{scope}/route/explain"
    key = args.admin_key or ""
    response = httpx.post(url, json=payload, headers={"authorization": f"Bearer {key}"})
    if response.status_code != 200:
        print(f"{url}: {response.status_code} {response.text}", file=sys.stderr)
        return None
    shown: dict[str, Any] = response.json()
    return shown


def _local(args: argparse.Namespace, body: dict[str, Any]) -> dict[str, Any] | None:
    from sluicegate.cache.embedder import LocalEmbedder
    from sluicegate.config.load import load_config
    from sluicegate.proxy.explain import explain
    from sluicegate.routing.compile import compile_config
    from sluicegate.routing.stats import RouteStats

    if not args.config:
        print("give --config FILE (decided offline) or --url of a running gateway", file=sys.stderr)
        return None
    from sluicegate.config.tenants import split

    gateways = split(load_config(args.config))
    name = args.gateway or next(iter(gateways))
    if name not in gateways:
        print(f"no gateway named '{name}' in {args.config}", file=sys.stderr)
        return None
    loaded = gateways[name]
    table = compile_config(loaded.config, loaded.warnings)
    local = LocalEmbedder()

    async def embed(name: str, text: str) -> Any:
        if name != "local":
            raise ConfigError(
                [f"semantic.embedder '{name}' is a rule of a running gateway: use --url"]
            )
        return await local.embed(text)

    found = asyncio.run(
        explain(
            table,
            RouteStats(),
            body,
            args.model,
            args.consumer,
            _headers(args.header),
            args.dialect,
            args.budget_used,
            embed,
        )
    )
    return found.shown()


def cmd_explain(args: argparse.Namespace) -> int:
    try:
        with open(args.file, "rb") as f:
            body = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"{args.file}: cannot read a JSON request ({exc})", file=sys.stderr)
        return 1
    if not isinstance(body, dict):
        print(f"{args.file}: the request must be a JSON object", file=sys.stderr)
        return 1
    try:
        if args.url:
            payload = {
                "body": body,
                "model": args.model,
                "consumer": args.consumer,
                "headers": _headers(args.header),
                "dialect": args.dialect,
                "budget_used": args.budget_used,
            }
            shown = _remote(args, payload)
        else:
            shown = _local(args, body)
    except GatewayError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"  error: {issue}", file=sys.stderr)
        return 1
    if shown is None:
        return 1
    print(f"rule:  {shown['rule']}")
    print(f"route: {shown['route']}")
    print("plan:  " + " -> ".join(shown["plan"]))
    return 0


def add_parsers(sub: Any) -> None:
    route = sub.add_parser("route", help="smart routing")
    route_sub = route.add_subparsers(dest="route_command", required=True)
    explain = route_sub.add_parser(
        "explain",
        help="print the routing decision for a request without sending it",
    )
    explain.add_argument("--file", "-f", required=True, help="the request body (JSON)")
    explain.add_argument("--model", "-m", help="the model to ask for (default: the body's)")
    explain.add_argument("--config", "-c", help="the config file (decided offline)")
    explain.add_argument(
        "--url", help="a running gateway to ask instead (live latency, health, load)"
    )
    explain.add_argument("--admin-key", help="the gateway's admin key (with --url)")
    explain.add_argument(
        "--gateway", help="one of the config's gateways, by name (default: the default)"
    )
    explain.add_argument("--consumer", help="whose request it is (rules, groups)")
    explain.add_argument(
        "--header", "-H", action="append", default=[], help="a request header, name:value"
    )
    explain.add_argument("--dialect", choices=["openai", "anthropic"], default="openai")
    explain.add_argument(
        "--budget-used", type=float, default=0.0, help="the share of the budget spent (0-1)"
    )
    explain.set_defaults(func=cmd_explain)
