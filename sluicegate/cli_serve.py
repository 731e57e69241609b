"""``sluicegate serve``: check what the gateway needs, listen, serve, reload, stop.

The order is what an operator reads in the log: the config is loaded, the port
is bound, the store opens and Redis answers, and only once the application has
started (in every worker) "serving on …". A start-up failure is one line naming
what failed, with exit code 1 (3 when the application itself failed to start, as
uvicorn reports it). ``SIGHUP`` reloads the config file (each worker's, with
``--workers``); ``SIGTERM`` drains and stops, and the log says when it begins
and when it is done.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from sluicegate import __version__
from sluicegate.config.load import Loaded, load_config
from sluicegate.errors import ConfigError
from sluicegate.startup import StartupFailed, bind, check_redis, check_store, shown
from sluicegate.telemetry.logs import log_config, setup
from sluicegate.workers import counters_path, shared_run

log = logging.getLogger("sluicegate")

CONFIG_ENV = "SLUICEGATE_CONFIG"
ACCESS_LOG_ENV = "SLUICEGATE_ACCESS_LOG"
STARTUP_FAILURE = 3  # uvicorn's exit code for an application that failed to start
WORKER_START = 60.0  # seconds a worker may take to serve before the serving line is skipped


def _log_issues(path: str, issues: list[str]) -> None:
    for issue in issues:
        log.error("%s: %s", path, issue)


class Serving(uvicorn.Server):
    """uvicorn's server, saying that it serves once it does: the application has started
    and the socket listens."""

    def __init__(self, config: uvicorn.Config, ready: str) -> None:
        super().__init__(config)
        self.ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            log.info("%s", self.ready)


class Workers(Multiprocess):
    """The worker processes. The serving line is written once every worker serves; SIGHUP
    makes each reload its config in place, as one process does (uvicorn's own answer,
    restarting them all, would cut their streams)."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], ready: str) -> None:
        super().__init__(config, sockets)
        self.ready = ready

    def init_processes(self) -> None:
        super().init_processes()
        for process in self.processes:
            if not process.wait_until_ready(WORKER_START, self.should_exit):
                return  # it died (the supervisor says so and stops) or is slow: no claim
        log.info("%s", self.ready)

    def handle_hup(self) -> None:
        log.info("SIGHUP: each worker reloads the config")
        for process in self.processes:
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)


def app_factory() -> object:
    """The application of each worker process (``--workers`` above one), and of any ASGI
    server given ``sluicegate.cli:app_factory`` with ``SLUICEGATE_CONFIG`` set."""
    from sluicegate.app import create_app
    from sluicegate.runtime import Runtime

    setup()  # as serve does, whichever server runs it
    path = os.environ[CONFIG_ENV]
    access_log = os.environ.get(ACCESS_LOG_ENV) == "1"
    counters = counters_path()
    try:
        loaded = load_config(path)
    except ConfigError as exc:  # an edit between the start and a worker's restart
        _log_issues(path, exc.issues)
        raise SystemExit(STARTUP_FAILURE) from None
    runtime = Runtime(loaded, config_path=path, access_log=access_log, shared_counters=counters)
    return create_app(runtime, tune_gc=True, signals=True)


def _exit_ok(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def check_listener_tls(loaded: Loaded) -> None:
    """``gateway.tls``'s files load (a ``ConfigError`` if not), before anything listens."""
    tls = loaded.config.gateway.tls
    if tls is not None:
        from sluicegate.tls.server import ServerTls

        ServerTls.of(tls).build()


async def _check_services(loaded: Loaded) -> None:
    """The store opens and Redis answers; Redis away with ``redis_failure: open`` is a
    warning, since the gateway then serves without shared limits until it is back."""
    gateway = loaded.config.gateway
    if gateway.store is not None:
        await check_store(gateway.store)
    if gateway.redis is not None:
        try:
            await check_redis(gateway.redis)
        except StartupFailed as exc:
            if gateway.redis_failure == "closed":
                raise StartupFailed(f"{exc} (gateway.redis_failure: closed)") from None
            log.warning(
                "%s; serving anyway, without shared limits until it answers "
                "(gateway.redis_failure: open)",
                exc,
            )


def cmd_serve(args: argparse.Namespace) -> int:
    setup()
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        _log_issues(args.config, exc.issues)
        return 1
    from sluicegate.app import create_app
    from sluicegate.drain import DRAIN_MARGIN
    from sluicegate.runtime import Runtime
    from sluicegate.tls.protocol import listener_options

    if args.access_log:
        os.environ[ACCESS_LOG_ENV] = "1"  # for the worker processes' app_factory
    try:
        runtime = Runtime(loaded, config_path=args.config, access_log=args.access_log)
        check_listener_tls(loaded)
    except ConfigError as exc:
        _log_issues(args.config, exc.issues)
        return 1
    gateway = loaded.config.gateway
    host, port = _split_listen(gateway.listen)
    host = args.host or host
    port = args.port if args.port is not None else port
    for warning in runtime.table.warnings:
        log.warning("warning: %s", warning)
    jwt = loaded.config.auth.jwt
    if gateway.admin_key is None and (jwt is None or jwt.admin_claim is None):
        log.info("Admin API and dashboard are off (no gateway.admin_key or auth.jwt.admin_claim)")
    try:
        sock = bind(host, port)
        asyncio.run(_check_services(loaded))
    except StartupFailed as exc:
        log.error("start-up failed: %s", exc)
        return 1
    if gateway.store is not None:
        log.info("config store: %s (followed for changes)", shown(gateway.store))
    log.info("watching %s for edits (and reloading it on SIGHUP)", args.config)
    shown_host = f"[{host}]" if ":" in host else host
    ready = "sluicegate %s serving %d rules on %s://%s:%d (%d worker%s)" % (  # noqa: UP031
        __version__,
        len(runtime.table.rules),
        "https" if gateway.tls is not None else "http",
        shown_host,
        port,
        args.workers,
        "s" if args.workers != 1 else "",
    )
    options: dict[str, Any] = {
        "loop": "uvloop",
        "lifespan": "on",
        "access_log": False,  # the gateway writes its own (gateway.access_log / --access-log)
        "log_level": "warning",
        "log_config": log_config(),
        "server_header": False,
        "proxy_headers": False,  # the gateway reads what it needs from the headers itself
        # Past the drain, streams still running end with an error event (sluicegate/drain.py);
        # uvicorn cancels what is left a little later.
        "timeout_graceful_shutdown": gateway.drain_timeout + DRAIN_MARGIN,
        # httptools with a deadline on the request head; with gateway.tls, HTTPS from an
        # SSL context that reloads its certificate, and the client's certificate read.
        **listener_options(gateway.tls),
    }
    # uvicorn stops gracefully on SIGTERM, then raises it again, and its default action would
    # end the process with -15: a graceful stop is a success (exit 0) for supervisors.
    signal.signal(signal.SIGTERM, _exit_ok)
    if args.workers > 1:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
        config = uvicorn.Config(
            "sluicegate.cli_serve:app_factory", factory=True, workers=args.workers, **options
        )
        with shared_run():
            supervisor = Workers(config, [sock], ready)
            supervisor.run()
        if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
            log.error("start-up failed: a worker could not start (see above)")
            return STARTUP_FAILURE
        log.info("stopped: every worker has finished")
        return 0
    config = uvicorn.Config(create_app(runtime, tune_gc=True, signals=True), **options)
    server = Serving(config, ready)
    server.run(sockets=[sock])
    return 0 if server.started else STARTUP_FAILURE


def add_parsers(sub: Any) -> None:
    """``serve`` on the ``sluicegate`` command's subparsers."""
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", "-c", required=True, help="the YAML config file")
    serve.add_argument("--host", help="override gateway.listen's host")
    serve.add_argument("--port", type=int, help="override gateway.listen's port")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--access-log", action="store_true", help="one JSON line per request (gateway.access_log)"
    )
    serve.set_defaults(func=cmd_serve)
