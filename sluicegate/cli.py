"""The ``sluicegate`` command: serve · config validate · version."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from sluicegate import __version__
from sluicegate.config.load import Loaded, load_config
from sluicegate.errors import ConfigError

_CONFIG_ENV = "SLUICEGATE_CONFIG"


def _print_issues(path: str, issues: list[str]) -> None:
    print(f"{path}: {len(issues)} error{'s' if len(issues) != 1 else ''}", file=sys.stderr)
    for issue in issues:
        print(f"  error: {issue}", file=sys.stderr)


def _load(path: str) -> Loaded | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        _print_issues(path, exc.issues)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = _load(args.file)
    if loaded is None:
        return 1
    from sluicegate.routing.compile import compile_config

    table = compile_config(loaded.config, loaded.warnings)
    for warning in table.warnings:
        print(f"  warning: {warning}", file=sys.stderr)
    cfg = loaded.config
    print(
        f"{args.file}: ok ({len(cfg.services)} services, {len(cfg.upstreams)} upstreams, "
        f"{len(cfg.rules)} rules, {len(cfg.consumers)} consumers)"
    )
    return 0


def redact_url(url: str) -> str:
    """The URL without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def app_factory() -> object:
    """Used by each worker process when ``--workers`` is above one."""
    from sluicegate.app import create_app
    from sluicegate.runtime import Runtime

    loaded = load_config(os.environ[_CONFIG_ENV])
    return create_app(Runtime(loaded))


def cmd_serve(args: argparse.Namespace) -> int:
    loaded = _load(args.config)
    if loaded is None:
        return 1
    import uvicorn

    from sluicegate.app import create_app
    from sluicegate.runtime import Runtime

    if args.access_log:
        gateway_cfg = loaded.config.gateway.model_copy(update={"access_log": True})
        loaded.config = loaded.config.model_copy(update={"gateway": gateway_cfg})
    try:
        runtime = Runtime(loaded)
    except ConfigError as exc:
        _print_issues(args.config, exc.issues)
        return 1
    gateway = loaded.config.gateway
    host, port = _split_listen(gateway.listen)
    host = args.host or host
    port = args.port if args.port is not None else port
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("sluicegate")
    for warning in runtime.table.warnings:
        log.warning("warning: %s", warning)
    if gateway.admin_key is None:
        log.info("Admin API and dashboard are off (no gateway.admin_key set)")
    if gateway.store is not None:
        log.info("config store: %s (its entities are loaded at start)", redact_url(gateway.store))
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "sluicegate %s serving %d rules on http://%s:%d (%d worker%s)",
        __version__,
        len(runtime.table.rules),
        shown,
        port,
        args.workers,
        "s" if args.workers != 1 else "",
    )
    options: dict[str, object] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,  # the gateway writes its own (gateway.access_log / --access-log)
        "log_level": "warning",
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if args.workers > 1:
        os.environ[_CONFIG_ENV] = os.path.abspath(args.config)
        uvicorn.run("sluicegate.cli:app_factory", factory=True, workers=args.workers, **options)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(runtime), **options)  # type: ignore[arg-type]
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"sluicegate {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sluicegate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", "-c", required=True, help="the YAML config file")
    serve.add_argument("--host", help="override gateway.listen's host")
    serve.add_argument("--port", type=int, help="override gateway.listen's port")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--access-log", action="store_true", help="one JSON line per request (gateway.access_log)"
    )
    serve.set_defaults(func=cmd_serve)

    config = sub.add_parser("config", help="work with config files")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    validate = config_sub.add_parser("validate", help="check a config file; exit 0 when valid")
    validate.add_argument("file")
    validate.set_defaults(func=cmd_validate)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code
