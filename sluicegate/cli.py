"""The ``sluicegate`` command: serve · config validate/apply/export · secrets · version."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from sluicegate import __version__
from sluicegate.config.load import Loaded, load_config
from sluicegate.errors import ConfigError


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

    try:
        from sluicegate.cli_serve import check_listener_tls

        table = compile_config(loaded.config, loaded.warnings)  # reads upstream TLS files
        check_listener_tls(loaded)
    except ConfigError as exc:
        _print_issues(args.file, exc.issues)
        return 1
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

    from sluicegate.admin.sync import apply_store, plan_store
    from sluicegate.stores.base import DuplicateName, StaleWrite
    from sluicegate.stores.open import open_store
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
            plans = await plan_store(store, loaded, raw, Vault.from_env())
            changes = sum(len(p.changes) for p in plans)
            for item in plans:
                for line in item.lines:
                    print(line)
            if not changes:
                print("no changes")
            elif args.dry_run:
                print(f"dry run: {changes} change(s), nothing written")
            else:
                await apply_store(store, plans)
                print(f"applied {changes} change(s) to {redact_url(url)}")
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


def _config_and_store(args: argparse.Namespace) -> tuple[Loaded | None, str] | None:
    """``--config`` (optional) and the store it or ``--store`` names; None: already reported."""
    loaded = _load(args.config) if args.config else None
    if args.config and loaded is None:
        return None
    url = _store_url(args, loaded)
    return None if url is None else (loaded, url)


def cmd_export(args: argparse.Namespace) -> int:
    import asyncio

    from sluicegate.admin.sync import export_yaml
    from sluicegate.stores.open import open_store

    found = _config_and_store(args)
    if found is None:
        return 1
    loaded, url = found
    gateway = loaded.config.gateway.name if loaded is not None else "default"

    async def read() -> str:
        store = open_store(url)
        await store.open()
        try:
            records = await store.entities(gateway)
            tenants = []
            for name in await store.gateways():
                held = await store.entities(name) if name != gateway else []
                own = next((r for r in held if r.kind == "gateway"), None)
                if own is not None:
                    tenants.append((own, [r for r in held if r.kind != "gateway"]))
        finally:
            await store.close()
        section = _export_gateway(args, loaded, url)
        return export_yaml(section, records, redact_url(url), tenants)

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


def cmd_secrets_rotate(args: argparse.Namespace) -> int:
    import asyncio

    from sluicegate.stores.base import StaleWrite
    from sluicegate.stores.open import open_store
    from sluicegate.stores.secrets import PREVIOUS_KEYS_ENV, Vault, rotate_store

    found = _config_and_store(args)
    if found is None:
        return 1
    _, url = found
    where = args.config or redact_url(url)

    async def run() -> int:
        vault = Vault.from_env()
        store = open_store(url)
        await store.open()
        try:
            # Every gateway by default: one master key serves all the gateways of a store.
            gateways = [args.gateway] if args.gateway else await store.gateways()
            for gateway in gateways:  # a secret no key opens stops it before any write
                await rotate_store(store, vault, gateway, dry_run=True)
            fields = entities = 0
            for gateway in gateways:
                done = await rotate_store(store, vault, gateway, dry_run=args.dry_run)
                for name in done.fields:
                    print(f"~ {name}" + (f" (gateway {gateway})" if len(gateways) > 1 else ""))
                fields += len(done.fields)
                entities += done.entities
        except StaleWrite:
            print(
                "the store kept changing while rotating; nothing more was written, run it again",
                file=sys.stderr,
            )
            return 1
        finally:
            await store.close()
        plural = "entity" if entities == 1 else "entities"
        if args.dry_run:
            print(f"dry run: {fields} secret field(s) in {entities} {plural} to re-encrypt")
        elif fields:
            print(
                f"re-encrypted {fields} secret field(s) in {entities} {plural} under the "
                f"current key; {PREVIOUS_KEYS_ENV} can now be removed"
            )
        else:
            print("every stored secret is under the current key already; nothing written")
        return 0

    try:
        return asyncio.run(run())
    except ConfigError as exc:
        _print_issues(where, exc.issues)
        return 1
    except OSError as exc:
        print(f"cannot reach the store {redact_url(url)}: {exc}", file=sys.stderr)
        return 1


def cmd_secrets_generate_key(args: argparse.Namespace) -> int:
    from sluicegate.stores.secrets import generate_key

    print(generate_key())
    return 0


def redact_url(url: str) -> str:
    """The URL without its password, fit for a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def app_factory() -> object:
    """For an ASGI server of one's choice (``sluicegate.cli:app_factory`` with
    ``SLUICEGATE_CONFIG`` set), as each worker of ``serve --workers N`` makes it."""
    from sluicegate.cli_serve import app_factory as make

    return make()


def cmd_version(args: argparse.Namespace) -> int:
    print(f"sluicegate {__version__}")
    return 0


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, str]]:
    """Every command a user can run under ``parser``, with its help, depth first."""
    found: list[tuple[str, str]] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        for name, child in action.choices.items():
            inner = _commands(child, f"{prefix} {name}")
            found += inner or [(f"{prefix} {name}", helps.get(name, ""))]
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluicegate",
        description="An AI gateway: one OpenAI- and Anthropic-compatible endpoint in front "
        "of every LLM provider.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from sluicegate.cli_serve import add_parsers as add_serve_parser

    add_serve_parser(sub)

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

    secrets = sub.add_parser("secrets", help="credential secrets held encrypted in the store")
    secrets_sub = secrets.add_subparsers(dest="secrets_command", required=True)
    rotate = secrets_sub.add_parser(
        "rotate",
        help="re-encrypt every stored secret under SLUICEGATE_MASTER_KEY "
        "(old keys in SLUICEGATE_MASTER_KEY_PREVIOUS)",
    )
    rotate.add_argument("--config", "-c", help="the config file naming gateway.store")
    rotate.add_argument("--store", help="the store URL (default: the file's gateway.store)")
    rotate.add_argument("--gateway", help="only this gateway (default: every one in the store)")
    rotate.add_argument("--dry-run", action="store_true", help="count, write nothing")
    rotate.set_defaults(func=cmd_secrets_rotate)
    generate = secrets_sub.add_parser("generate-key", help="print a new random master key")
    generate.set_defaults(func=cmd_secrets_generate_key)

    from sluicegate.cli_audit import add_parsers as add_audit_parsers

    add_audit_parsers(sub)  # logs tail, usage

    from sluicegate.cli_route import add_parsers as add_route_parsers

    add_route_parsers(sub)  # route explain

    from sluicegate.cli_keys import add_parsers as add_key_parsers

    add_key_parsers(sub)  # keys create, list, revoke, rotate

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version)
    # The whole tree, so that one --help shows every command (each has --help of its own).
    commands = _commands(parser, "sluicegate")
    width = max(len(name) for name, _ in commands) + 2
    lines = [f"  {name.ljust(width)}{text}" for name, text in commands]
    parser.epilog = "commands:\n" + "\n".join(lines)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code
