"""``sluicegate keys create|list|revoke|rotate``: minted keys, over the Admin API.

Like ``logs tail``, these talk HTTP to a running gateway, so that minting goes
through the same validation, store and hot reload as an Admin API call.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from typing import Any

import orjson

from sluicegate.cli_audit import ADMIN_KEY_ENV, DEFAULT_URL, URL_ENV, AdminError, error_message


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    base = args.url.rstrip("/") + "/admin"
    if args.gateway:
        base += f"/gateways/{args.gateway}"
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if args.admin_key:
        request.add_header("Authorization", f"Bearer {args.admin_key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return orjson.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raise AdminError(f"{exc.code}: {error_message(exc.read())}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise AdminError(f"cannot reach {args.url}: {getattr(exc, 'reason', exc)}") from None


def _line(key: dict[str, Any]) -> str:
    parts = [
        key["id"],
        key["prefix"],
        key["consumer"],
        key["status"],
        f"name={key['name']}" if key.get("name") else "",
        f"expires={key['expires_at']}" if key.get("expires_at") else "",
        f"rules={','.join(key['rules'])}" if key.get("rules") else "",
        f"last_used={key['last_used_at']}" if key.get("last_used_at") else "",
    ]
    return "  ".join(p for p in parts if p)


def _split(value: str | None) -> list[str] | None:
    return [v for v in value.split(",") if v] if value else None


def cmd_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "expires_in": args.expires}
    body.update(rules=_split(args.rules), models=_split(args.models))
    body = {k: v for k, v in body.items() if v is not None}
    made = _call(args, "POST", f"/consumers/{args.consumer}/keys", body)
    print(_line(made), file=sys.stderr)
    print(made["key"])  # alone on stdout, so that a script can capture it
    print("the key is shown this once; keep it now", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    path = f"/consumers/{args.consumer}/keys" if args.consumer else "/keys"
    for key in _call(args, "GET", path)["data"]:
        print(_line(key))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    _call(args, "DELETE", f"/keys/{args.key}")
    print(f"revoked {args.key}")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    made = _call(args, "POST", f"/keys/{args.key}/rotate", {"grace": args.grace})
    print(_line(made), file=sys.stderr)
    print(made["key"])
    print(f"{args.key} stays valid for {args.grace}", file=sys.stderr)
    return 0


def _run(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = func(args)
        except AdminError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return code

    return run


def add_parsers(sub: Any) -> None:
    keys = sub.add_parser("keys", help="mint, list, revoke and rotate consumer keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)

    def command(name: str, help: str, func: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = keys_sub.add_parser(name, help=help)
        parser.add_argument("--url", default=os.environ.get(URL_ENV, DEFAULT_URL))
        parser.add_argument("--admin-key", default=os.environ.get(ADMIN_KEY_ENV))
        parser.add_argument("--gateway", help="another gateway of the same instance")
        parser.set_defaults(func=_run(func))
        return parser

    create = command("create", "mint a key (printed once, alone on stdout)", cmd_create)
    create.add_argument("--consumer", required=True)
    create.add_argument("--name", help="a label: ci-bot")
    create.add_argument("--expires", help="lifetime: 30d, 12h")
    create.add_argument("--rules", help="only these rules: chat,embed")
    create.add_argument("--models", help="only these models")
    listing = command("list", "list keys (never the keys themselves)", cmd_list)
    listing.add_argument("--consumer")
    revoke = command("revoke", "revoke a key at once, on every instance", cmd_revoke)
    revoke.add_argument("key", help="id or prefix")
    rotate = command("rotate", "mint a successor; the old key ends after --grace", cmd_rotate)
    rotate.add_argument("key", help="id or prefix")
    rotate.add_argument("--grace", default="24h", help="how long the old key stays valid")
