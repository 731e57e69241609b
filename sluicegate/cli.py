"""The ``sluicegate`` command: serve · config validate/apply/export · version."""

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


def _store_url(args: argparse.Namespace, loaded: Loaded | None) -> str | None:
    url = args.store or (loaded.config.gateway.store if loaded is not None else None)
    if url is None:
        print(
            "no store: set gateway.store in the file or pass --store URL "
            "(sqlite:///file.db or postgresql://…)",
            file=sys.stderr,
        )
    return url


def cmd_apply(args: argparse.Namespace) -> int:
    import asyncio

    import yaml

    from sluicegate.admin.sync import gateway_only, plan, wanted
    from sluicegate.stores.base import DuplicateName, StaleWrite, open_store
    from sluicegate.stores.secrets import Vault

    loaded = _load(args.file)
    if loaded is None:
        return 1
    url = _store_url(args, loaded)
    if url is None:
        return 1
    # Parsed again, uninterpolated: the ${VAR} forms of secrets are kept for export.
    with open(args.file, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)

    async def run() -> int:
        store = open_store(url)
        await store.open()
        try:
            gateway = loaded.config.gateway.name
            await store.ensure_gateway(gateway)
            found = plan(
                gateway_only(loaded),
                wanted(loaded, raw),
                await store.entities(gateway),
                Vault.from_env(),
            )
            for line in found.lines:
                print(line)
            if not found.changes:
                print("no changes")
            elif args.dry_run:
                print(f"dry run: {len(found.changes)} change(s), nothing written")
            else:
                await store.write_many(gateway, found.changes)
                print(f"applied {len(found.changes)} change(s) to {redact_url(url)}")
            return 0
        except (StaleWrite, DuplicateName):
            print(
                "the store changed while applying; nothing was written, run it again",
                file=sys.stderr,
            )
            return 1
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except ConfigError as exc:
        _print_issues(args.file, exc.issues)
        return 1
    except OSError as exc:  # asyncpg's connection errors are OSErrors too
        print(f"cannot reach the store {redact_url(url)}: {exc}", file=sys.stderr)
        return 1


def _export_gateway(args: argparse.Namespace, loaded: Loaded | None, url: str) -> dict[str, object]:
    """The output's ``gateway`` section: the store as the file wrote it (``${VAR}`` kept)."""
    import yaml

    section: dict[str, object] = {}
    raw_store: object = None
    if loaded is not None and args.store is None:
        with open(args.config, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle) or {}
        raw_gateway = raw.get("gateway") if isinstance(raw, dict) else None
        if isinstance(raw_gateway, dict):
            raw_store = raw_gateway.get("store")
    if loaded is not None and loaded.config.gateway.name != "default":
        section["name"] = loaded.config.gateway.name
    store = raw_store if isinstance(raw_store, str) else url
    if urlsplit(store).password is not None and "${" not in store:
        # Never a password in the output: a variable stands in for it.
        password = urlsplit(store).password or ""
        store = store.replace(f":{password}@", ":${SLUICEGATE_STORE_PASSWORD}@", 1)
    section["store"] = store
    return section


def cmd_export(args: argparse.Namespace) -> int:
    import asyncio

    from sluicegate.admin.sync import export_yaml
    from sluicegate.stores.base import open_store

    loaded = _load(args.config) if args.config else None
    if args.config and loaded is None:
        return 1
    url = _store_url(args, loaded)
    if url is None:
        return 1
    gateway = loaded.config.gateway.name if loaded is not None else "default"

    async def read() -> str:
        store = open_store(url)
        await store.open()
        try:
            records = await store.entities(gateway)
        finally:
            await store.close()
        return export_yaml(_export_gateway(args, loaded, url), records, redact_url(url))

    try:
        text = asyncio.run(read())
    except ConfigError as exc:
        _print_issues(args.config or redact_url(url), exc.issues)
        return 1
    except OSError as exc:
        print(f"cannot reach the store {redact_url(url)}: {exc}", file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
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

    path = os.environ[_CONFIG_ENV]
    return create_app(Runtime(load_config(path), config_path=path))


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
        runtime = Runtime(loaded, config_path=args.config)
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
        log.info("config store: %s (followed for changes)", redact_url(gateway.store))
    log.info("watching %s for edits", args.config)
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
        "proxy_headers": False,  # the gateway reads what it needs from the headers itself
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

    apply = config_sub.add_parser(
        "apply", help="make the store's entities equal to a file's (prints the diff)"
    )
    apply.add_argument("file")
    apply.add_argument("--store", help="the store URL (default: the file's gateway.store)")
    apply.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    apply.set_defaults(func=cmd_apply)
    export = config_sub.add_parser("export", help="write the store's entities as YAML")
    export.add_argument("--config", "-c", help="the config file naming gateway.store")
    export.add_argument("--store", help="the store URL (default: the file's gateway.store)")
    export.add_argument("--output", "-o", help="the file to write (default: standard output)")
    export.set_defaults(func=cmd_export)

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
