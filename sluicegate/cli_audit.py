"""``sluicegate logs tail`` and ``sluicegate usage``: the audit log read over the Admin API.

They talk HTTP to a running gateway (``/admin/logs``, ``/admin/usage``) rather
than to its store, so they work wherever the Admin API is reachable and need
no database credentials. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from sluicegate.config.durations import parse_duration

URL_ENV = "SLUICEGATE_URL"
ADMIN_KEY_ENV = "SLUICEGATE_ADMIN_KEY"
DEFAULT_URL = "http://127.0.0.1:8080"
# Rows are written when their request ends but carry its arrival time, so a long request
# lands behind rows already printed: each poll looks this far back and skips what it showed.
FOLLOW_LOOKBACK = 300.0
_RELATIVE = re.compile(r"(\d+(\.\d+)?(ms|s|m|h|d|w))+")
_USAGE_COLUMNS = ("requests", "errors", "input_tokens", "output_tokens", "cached_tokens")


class AdminError(Exception):
    """The gateway could not be reached, or answered with an error."""


class AdminClient:
    def __init__(self, url: str, key: str | None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout

    def get(self, path: str, params: Mapping[str, str | int | None]) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(f"{self.url}{path}?{query}")
        if self.key:
            request.add_header("Authorization", f"Bearer {self.key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AdminError(f"{exc.code}: {error_message(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminError(f"cannot reach {self.url}: {reason}") from None


def error_message(body: bytes) -> str:
    try:
        error = orjson.loads(body)["error"]
        return f"{error['message']} ({error.get('code') or error['type']})"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return body.decode("utf-8", "replace")[:200]


def moment(value: str | None, now: float | None = None) -> str | None:
    """``7d``/``12h``/``30m`` ago as unix seconds; ISO 8601 or unix seconds as given."""
    if value is None or not _RELATIVE.fullmatch(value):
        return value
    return f"{(now or time.time()) - parse_duration(value):.3f}"


# -- logs tail ----------------------------------------------------------------


def format_row(row: Mapping[str, Any]) -> str:
    """One audit row as one line: when, status, who, where, how long, how much."""
    ts = str(row.get("ts") or "")[:23].replace("T", " ")
    route = row.get("rule") or "-"
    if row.get("service"):
        route += f">{row['service']}"
    tokens = "-"
    if row.get("input_tokens") is not None or row.get("output_tokens") is not None:
        tokens = f"{row.get('input_tokens') or 0}/{row.get('output_tokens') or 0} tok"
    cost = f"${row['cost_usd']:.6f}" if row.get("cost_usd") is not None else "-"
    parts = [
        ts,
        str(row.get("status", "")),
        row.get("consumer") or "-",
        route,
        row.get("model") or "-",
        f"{row.get('latency_ms') or 0:.0f}ms",
        tokens,
        cost,
        row.get("request_id") or "",
    ]
    if row.get("error_type"):
        parts.append(f"error={row['error_type']}")
    if row.get("cache"):
        parts.append(f"cache={row['cache']}")
    return "  ".join(parts)


def _filters(args: argparse.Namespace) -> dict[str, str | int | None]:
    return {
        "gateway": args.gateway,
        "consumer": args.consumer,
        "model": args.model,
        "rule": getattr(args, "rule", None),
        "status": getattr(args, "status", None),
    }


def _window(
    client: AdminClient, filters: Mapping[str, str | int | None], since: float
) -> list[dict[str, Any]]:
    """Every row whose request arrived after ``since``, each page of it."""
    params: dict[str, str | int | None] = {**filters, "since": f"{since:.3f}", "limit": 1000}
    rows: list[dict[str, Any]] = []
    while True:
        page = client.get("/admin/logs", params)
        rows.extend(page["data"])
        if page["next"] is None:
            return rows
        params["after"] = page["next"]


def tail(
    client: AdminClient,
    args: argparse.Namespace,
    out: Callable[[str], None],
    polls: int | None = None,
) -> None:
    """Print the last ``args.lines`` rows, oldest first; with ``--follow``, keep polling
    and print each row written since, once (``polls`` bounds the polls, for tests)."""
    filters = _filters(args)
    # Row id -> ts, of the rows not to print. By the row's id: clients may send the same
    # request id (X-Request-Id) in several requests.
    seen: dict[str, str] = {}
    if args.follow:
        # What is in the look-back window already is history, shown or not: the polls
        # print only what is written from now on (-n 1 prints one row, then new ones).
        since = time.time() - FOLLOW_LOOKBACK
        seen = {row["id"]: row["ts"] for row in _window(client, filters, since)}
    page = client.get("/admin/logs", {**filters, "limit": args.lines})
    rows: list[dict[str, Any]] = page["data"]
    for row in reversed(rows):
        out(format_row(row))
        seen[row["id"]] = row["ts"]
    done = 0
    while args.follow and (polls is None or done < polls):
        time.sleep(args.interval)
        done += 1
        since = time.time() - FOLLOW_LOOKBACK
        fresh = [r for r in _window(client, filters, since) if r["id"] not in seen]
        for row in sorted(fresh, key=lambda r: (str(r["ts"]), str(r["id"]))):
            seen[row["id"]] = row["ts"]
            out(format_row(row))
        # Forget what the next poll can no longer see.
        cutoff = _iso_floor(since)
        for key, ts in list(seen.items()):
            if ts < cutoff:
                del seen[key]


def _iso_floor(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")


def cmd_logs_tail(args: argparse.Namespace) -> int:
    client = AdminClient(args.url, args.admin_key)
    try:
        tail(client, args, lambda line: print(line, flush=True))
    except AdminError as exc:
        print(f"sluicegate logs: {exc}", file=sys.stderr)
        return 1
    return 0


# -- usage --------------------------------------------------------------------


def usage_table(group_by: str, rows: list[dict[str, Any]]) -> list[str]:
    header = [group_by.upper(), "REQUESTS", "ERRORS", "INPUT", "OUTPUT", "CACHED", "COST_USD"]
    body = [
        [
            str(row["group"]) if row["group"] is not None else "-",
            *(f"{row[name]:,}" for name in _USAGE_COLUMNS),
            f"{row['cost_usd']:.4f}",
        ]
        for row in rows
    ]
    if len(rows) > 1:
        total = [sum(row[name] for row in rows) for name in _USAGE_COLUMNS]
        cost = sum(row["cost_usd"] for row in rows)
        body.append(["total", *(f"{n:,}" for n in total), f"{cost:.4f}"])
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    return [line(header), *(line(cells) for cells in body)]


def cmd_usage(args: argparse.Namespace) -> int:
    client = AdminClient(args.url, args.admin_key)
    params = {
        **_filters(args),
        "group_by": args.group_by,
        "since": moment(args.since),
        "until": moment(args.until),
    }
    try:
        answer = client.get("/admin/usage", params)
    except AdminError as exc:
        print(f"sluicegate usage: {exc}", file=sys.stderr)
        return 1
    rows: list[dict[str, Any]] = answer["data"]
    if not rows:
        print("no requests in that range")
        return 0
    for text in usage_table(args.group_by, rows):
        print(text)
    return 0


# -- the parsers --------------------------------------------------------------


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"the gateway (default: ${URL_ENV} or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--admin-key",
        default=os.environ.get(ADMIN_KEY_ENV),
        help=f"gateway.admin_key (default: ${ADMIN_KEY_ENV})",
    )
    parser.add_argument("--gateway", help="another gateway of the same instance")
    parser.add_argument("--consumer", help="only this consumer's requests")
    parser.add_argument("--model", help="only requests for this model")


def add_parsers(sub: Any) -> None:
    """``logs tail`` and ``usage`` on the ``sluicegate`` command's subparsers."""
    logs = sub.add_parser("logs", help="read the audit log of a running gateway")
    logs_sub = logs.add_subparsers(dest="logs_command", required=True)
    tail_parser = logs_sub.add_parser("tail", help="print the latest requests, one per line")
    _connection(tail_parser)
    tail_parser.add_argument("--rule", help="only requests of this rule")
    tail_parser.add_argument("--status", type=int, help="only answers with this HTTP status")
    tail_parser.add_argument(
        "-n", "--lines", type=int, default=20, help="rows to show first (default 20, max 1000)"
    )
    tail_parser.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new requests"
    )
    tail_parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between polls with --follow"
    )
    tail_parser.set_defaults(func=cmd_logs_tail)

    usage = sub.add_parser("usage", help="requests, tokens and cost per consumer, model, …")
    _connection(usage)
    usage.add_argument(
        "--group-by",
        "--by",
        default="consumer",
        choices=["consumer", "key", "model", "rule", "service", "provider", "day"],
        help="one line per … (default consumer)",
    )
    usage.add_argument(
        "--since", default="7d", help="7d, 12h, an ISO 8601 time or unix seconds (default 7d)"
    )
    usage.add_argument("--until", help="as --since (default: now)")
    usage.set_defaults(func=cmd_usage)
