"""The log lines about one request's way through the gateway: a failed attempt with what
the provider said, a retry, a fallback, a stream cut short, a model no rule serves.

Each names the request by its id, so that an operator can join them with the access
log and the audit row. What a provider or a client wrote is cut short and kept on one
line (``printable``): a message with line breaks would forge log lines. A provider's
message has had the service's credentials taken out before it gets here
(``proxy.attempt``); nothing else of a request is written.
"""

from __future__ import annotations

import logging

log = logging.getLogger("sluicegate")

_LONGEST = 300
_QUIET = frozenset({"status"})  # a provider's 4xx is the request's fault: said at INFO


def printable(text: str, longest: int = _LONGEST) -> str:
    """``text`` on one line of printable characters, at most ``longest`` of them."""
    flat = "".join(c if c.isprintable() else " " for c in text)
    flat = " ".join(flat.split())
    return flat if len(flat) <= longest else flat[: longest - 1] + "…"


def attempt_failed(
    request_id: str,
    attempt: int,
    service: str,
    target: str,
    kind: str,
    status: int | None,
    what: str,
) -> None:
    serious = kind not in _QUIET or status is None or status == 429 or status >= 500
    log.log(
        logging.WARNING if serious else logging.INFO,
        "request %s: attempt %d on service '%s' (%s) failed: %s",
        request_id,
        attempt,
        service,
        target,
        what,
    )


def skipped(request_id: str, service: str, why: str) -> None:
    log.warning("request %s: service '%s' passed over: %s", request_id, service, why)


def retrying(request_id: str, service: str, retry: int, retries: int, delay: float) -> None:
    log.info(
        "request %s: retry %d of %d on service '%s' in %.2fs",
        request_id,
        retry,
        retries,
        service,
        delay,
    )


def not_retried(request_id: str, service: str, wait: float | None) -> None:
    log.info(
        "request %s: no retry on service '%s': the provider asked to wait %s, longer than "
        "its retry_backoff_max",
        request_id,
        service,
        "an unknown time" if wait is None else f"{wait:g}s",
    )


def falling_back(request_id: str, rule: str, service: str, next_service: str) -> None:
    log.warning(
        "request %s: rule '%s' falls back from service '%s' to '%s'",
        request_id,
        rule,
        service,
        next_service,
    )


def stream_cut(request_id: str, service: str | None, what: str) -> None:
    log.warning(
        "request %s: the stream from service '%s' ended early: %s",
        request_id,
        service or "-",
        printable(what),
    )


def unknown_model(request_id: str | None, model: str, consumer: str) -> None:
    log.info(
        "%s404 for model '%s' (consumer '%s'): no rule serves it",
        f"request {request_id}: " if request_id else "",
        printable(model, 200),
        consumer,
    )
