"""The one ``Runtime``: the current routing table and the clients that outlive it.

Requests read ``runtime.table`` once and finish on that table; ``swap`` and
``install`` replace it atomically (a single attribute store) when config
changes. With ``gateway.store`` set, the running config is the YAML file's
entities followed by the store's (see ``admin.layers``), loaded at start.

Once started, the runtime follows changes on its own: an edit of the config
file (``config_path``) and a write to the store by another instance (or by
``sluicegate config apply``) rebuild the table; an invalid change is logged
and the running table stays. Every change of the running config, Admin API
writes included, happens under ``lock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from sluicegate.admin.layers import build
from sluicegate.auth.keys import KEY_SECRET_ENV, key_secret_from_env, orphans
from sluicegate.config.load import Loaded, load_config, validation_issues
from sluicegate.config.model import Config, Tenant
from sluicegate.config.tenants import hosts, split, tenant_config
from sluicegate.config.watch import watch_file
from sluicegate.errors import ConfigError
from sluicegate.proxy.upstream import HttpTransport, Transport
from sluicegate.routing.compile import compile_config
from sluicegate.routing.probes import Prober
from sluicegate.routing.stats import RouteStats
from sluicegate.routing.table import Hosts, RoutingTable
from sluicegate.startup import StartupFailed, reason, shown
from sluicegate.stores.base import Change, Record, StaleWrite, Store
from sluicegate.stores.follow import follow_store
from sluicegate.stores.open import open_store
from sluicegate.stores.secrets import Vault
from sluicegate.stores.sqlite import SqliteStore
from sluicegate.telemetry.audit import AuditWriter
from sluicegate.telemetry.metrics import Metrics

log = logging.getLogger("sluicegate")

# Settings read once at start: an edit of these waits for a restart.
_AT_START = ("name", "listen", "store", "tls")  # tls: its files reload, its fields do not


class Runtime:
    def __init__(
        self,
        loaded: Loaded,
        store: Store | None = None,
        vault: Vault | None = None,
        config_path: str | Path | None = None,
        poll_interval: float = 0.5,
        access_log: bool = False,
        shared_counters: str | None = None,
    ) -> None:
        # ``serve --workers N``: the file in which the workers count limits (no Redis).
        self.shared_counters = shared_counters
        # ``serve --access-log``: kept over the file's setting across reloads too.
        self.force_access_log = access_log
        loaded = self._overridden(loaded)
        self.file = loaded  # the YAML file: gateway settings and its read-only entities
        self.files = split(loaded)  # the file's part of each gateway
        self.loaded = loaded  # the default gateway's running config (file + store)
        # Every gateway's running config (file + store), by name; the default one's is loaded.
        self.configs: dict[str, Config] = {n: part.config for n, part in self.files.items()}
        self.key_secret = key_secret_from_env()
        self.tables: dict[str, RoutingTable] = {
            name: compile_config(part.config, part.warnings, key_secret=self.key_secret)
            for name, part in self.files.items()
        }
        # What routing has seen of each target (latency, share): kept across tables.
        self.route_stats = RouteStats()
        # Minted keys seen since the last flush (key id → unix time); written in batches.
        self.keys_used: dict[str, float] = {}
        self.table: RoutingTable = self.tables[self.gateway]  # the default gateway's
        self.hosts = Hosts.of({})
        self.gateway_records: dict[str, Record] = {}  # gateways created through the Admin API
        self._index_hosts()
        url = loaded.config.gateway.store
        self.store: Store | None = store or (open_store(url) if url else None)
        self._open: set[str] = set()  # gateways serving without a key (auth: none), as logged
        # Per gateway, the store's issues already logged (EntityIssue id, path, message).
        self._issues_logged: dict[str, set[tuple[str, str, str]]] = {}
        if self.store is None:  # with a store, the tables that count come at start()
            self._announce_open()
        self._warn_unkeyed(loaded)
        self.vault = vault or Vault.from_env()
        self.config_path = Path(config_path) if config_path is not None else None
        self.poll_interval = poll_interval
        self.lock = asyncio.Lock()  # serialises changes of the running config in this process
        self.store_version: int | None = None  # the store version the tables were built from
        self._store_open = False
        self._http: HttpTransport | None = None
        self._prober: Prober | None = None
        self._followers: list[asyncio.Task[None]] = []
        self.metrics = Metrics(self._all_tables)
        # The audit log: in gateway.store, or in a SQLite file of its own (audit.path).
        self.audit: AuditWriter | None = None
        self.audit_store: Store | None = None
        self._audit_store: Store | None = None  # the file of audit.path, opened here
        audit = loaded.config.audit
        if audit.enabled and self.store is None and audit.path is not None:
            self._audit_store = SqliteStore(audit.path)
        self.audit_store = (self.store or self._audit_store) if audit.enabled else None
        if self.audit_store is not None:
            self.audit = AuditWriter(
                self.audit_store,
                self.metrics,
                self.gateway,
                audit.spill_path,
                queue_size=audit.queue_size,
                batch_size=audit.batch_size,
                flush_interval=audit.flush_interval,
                log_bodies=audit.log_bodies,
                max_body_bytes=audit.max_body_bytes,
                retention=audit.retention,
            )

    @property
    def gateway(self) -> str:
        """The default gateway's name."""
        return self.file.config.gateway.name

    def _all_tables(self) -> list[RoutingTable]:
        return list(self.tables.values())

    @property
    def http(self) -> Transport:
        if self._http is None:
            raise RuntimeError("the runtime has not been started")
        return self._http

    @property
    def ready(self) -> bool:
        return self._http is not None

    def file_of(self, gateway: str) -> Loaded:
        """The file's part of a gateway; a gateway made through the Admin API has only the
        settings of its record (``auth``)."""
        found = self.files.get(gateway)
        if found is not None:
            return found
        return self._empty(self.file, gateway, self.gateway_records.get(gateway))

    def _announce_open(self) -> None:
        """A WARNING for each gateway that starts serving requests without a key: at start
        and on every swap that turns it on (a last consumer deleted, ``auth: none`` set)."""
        now = {name for name, table in self.tables.items() if table.anonymous is not None}
        for name in sorted(now - self._open):
            log.warning(
                "gateway '%s': authentication off: auth: none and no consumers, so it "
                "serves every request without a key",
                name,
            )
        self._open = now

    def _announce_issues(self) -> None:
        """A WARNING for each store entity left out of a gateway (or never matching), once:
        a rebuild that finds it again says nothing new. /admin/health lists them all."""
        for name, table in self.tables.items():
            seen = self._issues_logged.get(name, set())
            now = {(i.id, i.path, i.message) for i in table.issues}
            prefix = "" if name == self.gateway else f"gateway '{name}': "
            for issue in table.issues:
                if (issue.id, issue.path, issue.message) in seen:
                    continue
                tail = "; left out of the running config" if issue.left_out else ""
                log.warning("%s%s%s", prefix, issue.line(), tail)
            self._issues_logged[name] = now

    def _warn_unkeyed(self, loaded: Loaded) -> None:
        gateway = loaded.config.gateway
        shared = gateway.redis is not None or (gateway.store or "").startswith("postgres")
        if shared and not self.key_secret:
            log.warning(
                "%s is not set: with several instances (Redis or a PostgreSQL store), client "
                "keys are kept and counted under a plain SHA-256 that anyone holding a key "
                "list can match; set it to the same long random string on every instance",
                KEY_SECRET_ENV,
            )

    def _index_hosts(self) -> None:
        names = hosts(self.file.config)
        for name, record in self.gateway_records.items():
            names.update(dict.fromkeys(record.doc.get("hosts") or [], name))
        self.hosts = Hosts.of({h: self.tables[n] for h, n in names.items() if n in self.tables})

    async def swap(self, loaded: Loaded) -> RoutingTable:
        """Run a new config of the default gateway (file-only use: tests, embedding)."""
        table = compile_config(loaded.config, loaded.warnings, self.table, self.key_secret)
        await self.install(loaded, table)
        return table

    async def install(self, loaded: Loaded, table: RoutingTable) -> None:
        """Make an already compiled table its gateway's running one."""
        tables = {**self.tables, table.gateway: table}
        configs = {**self.configs, table.gateway: loaded.config}
        default = loaded if table.gateway == self.gateway else self.loaded
        await self._install_all(tables, default, configs)

    async def _install_all(
        self,
        tables: dict[str, RoutingTable],
        default: Loaded,
        configs: dict[str, Config] | None = None,
    ) -> None:
        self.tables = tables
        self.loaded, self.table = default, tables[self.gateway]
        if configs is not None:
            self.configs = configs
        self._index_hosts()
        self._announce_open()
        self._announce_issues()
        if self._http is not None:
            await self._start_probes()

    async def _build(
        self, file: Loaded, from_file: bool = False
    ) -> tuple[dict[str, RoutingTable], Loaded, dict[str, Config]]:
        """Every gateway of file + store, compiled (with the default gateway's running config
        and every gateway's); raises ``ConfigError`` naming the gateway.

        Minted keys whose consumer is gone are revoked on the way: a store consumer's at
        any build (its id says it is gone for everyone), a file consumer's only when this
        file is loaded (``from_file``: at start and on an edit), since only the file says
        that it is gone."""
        files = split(file)
        if self.store is None:
            compiled = {name: self._compile(name, part) for name, part in files.items()}
            return compiled, files[self.gateway], {n: part.config for n, part in files.items()}
        if not self._store_open:
            await self.store.open()
            self._store_open = True
        for name in files:
            await self.store.ensure_gateway(name)
        # Read the version first: a write after it is seen by the next check.
        self.store_version = await self.store.config_version()
        records: dict[str, Record] = {}
        tables: dict[str, RoutingTable] = {}
        configs: dict[str, Config] = {}
        revoke: dict[str, list[Record]] = {}
        default = files[self.gateway]
        for name in await self.store.gateways():
            found = await self.store.entities(name)
            own = next((r for r in found if r.kind == "gateway"), None)
            if name not in files:
                if own is None:  # deleted through the Admin API, or gone from the file
                    if from_file:  # its file consumers went with it; its store ones stay
                        kept = {r.name: r.id for r in found if r.kind == "consumer"}
                        revoke[name] = orphans(found, kept, kept)
                    continue
                records[name] = own
            part = files.get(name) or self._empty(file, name, own)
            try:
                built = build(part, found, self.vault, self.tables.get(name), self.key_secret)
            except ConfigError as exc:
                prefix = "" if name == self.gateway else f"gateway '{name}': "
                raise ConfigError([prefix + issue for issue in exc.issues]) from None
            tables[name], configs[name] = built.table, built.loaded.config
            revoke[name] = [r for r in built.orphans if from_file or r.doc.get("consumer_id")]
            if name == self.gateway:
                default = built.loaded
        for name, part in files.items():  # a gateway of the file the store has never seen
            if name not in tables:
                tables[name], configs[name] = self._compile(name, part), part.config
        self.gateway_records = records
        for name, keys in revoke.items():
            await self._revoke(name, keys)
        return tables, default, configs

    async def _revoke(self, gateway: str, keys: list[Record]) -> None:
        """Revoke minted keys for good (their consumer is gone; see ``_build``)."""
        if not keys or self.store is None:
            return
        now = time.time()
        changes = [
            Change("update", "key", r.id, r.name, {**r.doc, "revoked_at": now}, r.tags, r.version)
            for r in keys
        ]
        try:
            await self.store.write_many(gateway, changes)
        except StaleWrite:
            return  # another instance revoked them first, or a writer changed them: next time
        log.warning(
            "gateway '%s': revoked %d minted key(s) whose consumer is gone: %s",
            gateway,
            len(keys),
            ", ".join(r.name for r in keys),
        )

    def _compile(self, name: str, part: Loaded) -> RoutingTable:
        return compile_config(part.config, part.warnings, self.tables.get(name), self.key_secret)

    @staticmethod
    def _empty(file: Loaded, name: str, record: Record | None = None) -> Loaded:
        """A gateway of the store: the file's shared settings and its record's ``auth``."""
        auth = record.doc.get("auth") if record is not None else None
        try:
            tenant = Tenant.model_validate({"name": name, **({"auth": auth} if auth else {})})
        except ValidationError as exc:  # a record another writer left invalid
            raise ConfigError([f"gateways/{name}.{i}" for i in validation_issues(exc)]) from None
        return Loaded(tenant_config(file.config, tenant), [], file.source)

    async def load_store(self, from_file: bool = False) -> None:
        """Open the store (migrating it) and run file + store entities of every gateway;
        ``from_file``: the file is being loaded (at start)."""
        if self.store is None:
            return
        tables, default, configs = await self._build(self.file, from_file)
        await self._install_all(tables, default, configs)

    async def reload_store(self) -> bool:
        """Rebuild from the store after another writer changed it; False if it was refused."""
        async with self.lock:
            try:
                await self.load_store()
            except ConfigError as exc:
                log.error(
                    "config store change refused, the running config stays: %s",
                    "; ".join(exc.issues),
                )
                return False
        self._log_warnings()
        return True

    def _log_warnings(self) -> None:
        """A reload says what a start says: an unsafe setting (``tls_verify: false``) is not
        left to a line written at start, long scrolled away."""
        for name, table in self.tables.items():
            prefix = "" if name == self.gateway else f"gateway '{name}': "
            for warning in table.warnings:
                log.warning("warning: %s%s", prefix, warning)

    async def reload_file(self) -> bool:
        """Re-read the config file; an invalid edit is logged and changes nothing."""
        path = self.config_path
        if path is None:
            return False
        try:
            loaded = self._overridden(load_config(path))
            async with self.lock:
                loaded = self._keep_start_settings(loaded)
                tables, default, configs = await self._build(loaded, from_file=True)
                self.file, self.files = loaded, split(loaded)
                await self._install_all(tables, default, configs)
        except ConfigError as exc:
            log.error("%s: edit refused, the running config stays: %s", path, "; ".join(exc.issues))
            return False
        log.info("%s: reloaded (%d rules)", path, len(self.table.rules))
        self._log_warnings()
        return True

    def _overridden(self, loaded: Loaded) -> Loaded:
        if not self.force_access_log or loaded.config.gateway.access_log:
            return loaded
        gateway = loaded.config.gateway.model_copy(update={"access_log": True})
        config = loaded.config.model_copy(update={"gateway": gateway})
        return Loaded(config, loaded.warnings, loaded.source)

    def _keep_start_settings(self, loaded: Loaded) -> Loaded:
        running = self.file.config.gateway
        edited = loaded.config.gateway
        changed = [f for f in _AT_START if getattr(running, f) != getattr(edited, f)]
        if not changed:
            return loaded
        log.warning(
            "%s: gateway.%s changed; that takes effect at the next start",
            self.config_path,
            ", gateway.".join(changed),
        )
        gateway = edited.model_copy(update={f: getattr(running, f) for f in _AT_START})
        config = loaded.config.model_copy(update={"gateway": gateway})
        return Loaded(config, loaded.warnings, loaded.source)

    async def start(self) -> None:
        """Open the stores and start following changes; a store that cannot be opened is a
        ``StartupFailed`` naming it."""
        try:
            await self.load_store(from_file=True)
        except (ConfigError, StaleWrite):
            raise
        except Exception as exc:
            url = self.file.config.gateway.store or ""
            raise StartupFailed(
                f"cannot open the config store {shown(url)}: {reason(exc, url)}"
            ) from exc
        if self._audit_store is not None:
            try:
                await self._audit_store.open()
            except Exception as exc:
                path = self.file.config.audit.path
                raise StartupFailed(f"cannot open the audit log {path}: {reason(exc)}") from exc
        if self.audit is not None:
            await self.audit.start()
        if self._http is None:
            self._http = HttpTransport()
        await self._start_probes()
        self._start_followers()

    def _start_followers(self) -> None:
        if self._followers:
            return
        if self.config_path is not None:
            watcher = watch_file(self.config_path, self.reload_file, self.poll_interval)
            self._followers.append(asyncio.create_task(watcher, name="config file watch"))
        if self.store is not None:
            flusher = self._flush_keys_used_every(max(self.poll_interval * 4, 1.0))
            self._followers.append(asyncio.create_task(flusher, name="key use flush"))
            store_version = self._store_version
            follower = follow_store(
                self.store, store_version, self.reload_store, self.poll_interval
            )
            self._followers.append(asyncio.create_task(follower, name="config store follow"))

    async def flush_keys_used(self) -> None:
        """Write when minted keys were last used: one batch, never a write per request."""
        if not self.keys_used or self.store is None or not self._store_open:
            return
        used, self.keys_used = self.keys_used, {}
        moments = {k: datetime.fromtimestamp(t, UTC) for k, t in used.items()}
        try:
            await self.store.touch_keys(moments)
        except Exception as exc:  # the store is away: keep them for the next try
            for key_id, at in used.items():
                self.keys_used[key_id] = max(at, self.keys_used.get(key_id, 0.0))
            log.warning("could not record key use (%s); will retry", type(exc).__name__)

    async def _flush_keys_used_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            await self.flush_keys_used()

    def _store_version(self) -> int | None:
        return self.store_version

    async def _start_probes(self) -> None:
        if self._prober is not None:
            await self._prober.stop()
        probes = [probe for table in self.tables.values() for probe in table.probes]
        self._prober = Prober(tuple(probes), self.http) if probes else None

    async def close(self) -> None:
        for task in self._followers:
            task.cancel()
        for task in self._followers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._followers = []
        await self.flush_keys_used()
        if self.audit is not None:  # before the store closes: it writes what is queued
            await self.audit.close()
        if self._audit_store is not None:
            await self._audit_store.close()
        if self._prober is not None:
            await self._prober.stop()
            self._prober = None
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self.store is not None and self._store_open:
            await self.store.close()
            self._store_open = False
