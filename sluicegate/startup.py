"""What ``sluicegate serve`` checks before it says it serves: the port, the store, Redis.

Each failure is a ``StartupFailed`` whose message is one line naming what
failed and why (never a password: URLs are shown without theirs, and a
driver's message has it taken out), so that the command can print that line
and exit non-zero instead of a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from urllib.parse import unquote, urlsplit

from sluicegate.credentials.redact import redact
from sluicegate.errors import ConfigError
from sluicegate.stores.redis_client import redact_redis_url

CHECK_TIMEOUT = 10.0  # seconds for each of the store and Redis to answer


class StartupFailed(Exception):
    """The gateway cannot start; ``str()`` is the one line that says why."""


def shown(url: str) -> str:
    """``url`` without its password, fit for a log line."""
    return redact_redis_url(url)


def reason(exc: BaseException, url: str = "") -> str:
    """What ``exc`` says, on one line, without the password of ``url``."""
    text = str(exc) or type(exc).__name__
    password = urlsplit(url).password
    return redact(" ".join(text.split()), [password, unquote(password)] if password else [])


def describe_failure(exc: BaseException) -> str:
    """One line for whatever stopped the application's start."""
    if isinstance(exc, StartupFailed):
        return str(exc)
    if isinstance(exc, ConfigError):
        return "the config is not valid: " + "; ".join(exc.issues)
    return f"{type(exc).__name__}: {reason(exc)}"


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, made before anything else starts: the port it cannot have
    is the commonest start-up failure, and the one to name first."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # connections wait in the backlog until a worker takes them
    except OSError as exc:
        sock.close()
        shown_host = f"[{host}]" if ":" in host else host
        where = f"{shown_host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise StartupFailed(
                f"cannot listen on {where}: the port is in use by another process "
                "(stop it, or choose another port with --port or gateway.listen)"
            ) from None
        if exc.errno == errno.EACCES:
            raise StartupFailed(
                f"cannot listen on {where}: permission denied (ports below 1024 need privileges)"
            ) from None
        raise StartupFailed(f"cannot listen on {where}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)  # the worker processes serve on it
    return sock


async def check_store(url: str) -> None:
    """The store opens (and is migrated, as the gateway's start would)."""
    from sluicegate.stores.open import open_store

    store = open_store(url)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await store.open()
    except Exception as exc:
        raise StartupFailed(
            f"cannot open the config store {shown(url)}: {reason(exc, url)}"
        ) from None
    finally:
        with contextlib.suppress(Exception):  # one never opened has nothing to close
            await store.close()


async def check_redis(url: str) -> None:
    """Redis answers a PING."""
    from sluicegate.stores.redis_client import connect_redis

    try:
        connection = connect_redis(
            url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT
        )
    except ValueError as exc:
        raise StartupFailed(f"gateway.redis {shown(url)}: {exc}") from None
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await connection.client.ping()
    except Exception as exc:
        raise StartupFailed(f"cannot reach Redis at {shown(url)}: {reason(exc, url)}") from None
    finally:
        with contextlib.suppress(Exception):  # a client that never connected
            await connection.close()
