"""Versioned schema migrations, one list per dialect, applied in order at start.

Each instance runs them under a lock held for the whole transaction
(``pg_advisory_xact_lock`` / SQLite's ``BEGIN IMMEDIATE``), so that several
instances starting together apply each step exactly once. Append new steps;
never edit one that has shipped.
"""

from __future__ import annotations

# Any constant works; it only has to be the same in every instance.
ADVISORY_LOCK_KEY = 0x51_7E_6A_7E

META_TABLE = """
CREATE TABLE IF NOT EXISTS sluicegate_meta (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
)
"""

SQLITE: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE sluicegate_gateways (
            name TEXT PRIMARY KEY,
            created_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE sluicegate_entities (
            id TEXT PRIMARY KEY,
            gateway TEXT NOT NULL REFERENCES sluicegate_gateways(name),
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            doc TEXT NOT NULL,
            tags TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            version INTEGER NOT NULL,
            UNIQUE (gateway, kind, name)
        )
        """,
        "CREATE INDEX sluicegate_entities_gateway ON sluicegate_entities (gateway, created_at)",
        "INSERT INTO sluicegate_gateways (name, created_at) VALUES ('default', "
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        "INSERT INTO sluicegate_meta (key, value) VALUES ('config_version', 0)",
    ),
    (
        # 2: the audit log, one row per finished request (``id``: the writer's, for replays)
        """
        CREATE TABLE sluicegate_audit (
            id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            ts TEXT NOT NULL,
            gateway TEXT NOT NULL,
            consumer TEXT,
            key_prefix TEXT,
            rule TEXT,
            service TEXT,
            provider TEXT,
            model TEXT,
            status INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            ttft_ms REAL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cached_tokens INTEGER,
            cost_usd REAL,
            cache TEXT,
            attempts INTEGER NOT NULL,
            error_type TEXT
        )
        """,
        "CREATE INDEX sluicegate_audit_ts ON sluicegate_audit (ts, id)",
        "CREATE INDEX sluicegate_audit_consumer ON sluicegate_audit (consumer, ts)",
        "CREATE INDEX sluicegate_audit_request ON sluicegate_audit (request_id)",
    ),
    (
        # 3: request and response bodies (audit.log_bodies), NULL when not kept
        "ALTER TABLE sluicegate_audit ADD COLUMN request_body TEXT",
        "ALTER TABLE sluicegate_audit ADD COLUMN response_body TEXT",
        "ALTER TABLE sluicegate_audit ADD COLUMN request_truncated INTEGER",
        "ALTER TABLE sluicegate_audit ADD COLUMN response_truncated INTEGER",
    ),
    (
        # 4: when each minted key was last used, written in batches (not a config change)
        """
        CREATE TABLE sluicegate_key_usage (
            key_id TEXT PRIMARY KEY,
            last_used_at TEXT NOT NULL
        )
        """,
    ),
    (
        # 5: guardrail verdicts (JSON: type, action, count; never a value) and transform tags
        "ALTER TABLE sluicegate_audit ADD COLUMN guardrail TEXT",
        "ALTER TABLE sluicegate_audit ADD COLUMN tags TEXT",
    ),
    (
        # 6: dashboard sessions ended by logout (the SHA-256 of the cookie's nonce), kept
        # until they would have expired, so that every instance refuses the cookie
        """
        CREATE TABLE sluicegate_ended_sessions (
            digest TEXT PRIMARY KEY,
            expires_at TEXT NOT NULL
        )
        """,
        "CREATE INDEX sluicegate_ended_sessions_expiry ON sluicegate_ended_sessions (expires_at)",
    ),
    (
        # 7: the endpoint a row is of (chat, count_tokens, ...)
        "ALTER TABLE sluicegate_audit ADD COLUMN endpoint TEXT",
    ),
    (
        # 8: where a row's tokens come from: provider, or counted (the provider reported none)
        "ALTER TABLE sluicegate_audit ADD COLUMN usage_source TEXT",
    ),
    (
        # 9: files and batches consumers own at providers (stores/objects.py)
        """
        CREATE TABLE sluicegate_objects (
            id TEXT PRIMARY KEY,
            gateway TEXT NOT NULL,
            consumer TEXT NOT NULL,
            kind TEXT NOT NULL,
            service TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            doc TEXT NOT NULL,
            batch TEXT,
            recorded INTEGER NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX sluicegate_objects_owner ON sluicegate_objects "
        "(gateway, consumer, kind, created_at, id)",
    ),
    (
        # 10: every step of the request's plan (JSON: service, target, status, outcome, ms)
        "ALTER TABLE sluicegate_audit ADD COLUMN attempts_detail TEXT",
    ),
    (
        # 11: responses of the Responses API kept for follow-ups (stores/responses.py)
        """
        CREATE TABLE sluicegate_responses (
            id TEXT PRIMARY KEY,
            gateway TEXT NOT NULL,
            consumer TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            response TEXT NOT NULL,
            input TEXT NOT NULL
        )
        """,
        "CREATE INDEX sluicegate_responses_expiry ON sluicegate_responses (expires_at)",
    ),
    (
        # 12: why the request went where it went (x-sluicegate-route)
        "ALTER TABLE sluicegate_audit ADD COLUMN route TEXT",
    ),
)

POSTGRES: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE sluicegate_gateways (
            name TEXT PRIMARY KEY,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE sluicegate_entities (
            id UUID PRIMARY KEY,
            gateway TEXT NOT NULL REFERENCES sluicegate_gateways(name),
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            doc JSONB NOT NULL,
            tags JSONB NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            version INTEGER NOT NULL,
            UNIQUE (gateway, kind, name)
        )
        """,
        "CREATE INDEX sluicegate_entities_gateway ON sluicegate_entities (gateway, created_at)",
        "INSERT INTO sluicegate_gateways (name) VALUES ('default')",
        "INSERT INTO sluicegate_meta (key, value) VALUES ('config_version', 0)",
    ),
    (
        # 2: the audit log, one row per finished request (``id``: the writer's, for replays)
        """
        CREATE TABLE sluicegate_audit (
            id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            ts TIMESTAMPTZ NOT NULL,
            gateway TEXT NOT NULL,
            consumer TEXT,
            key_prefix TEXT,
            rule TEXT,
            service TEXT,
            provider TEXT,
            model TEXT,
            status INTEGER NOT NULL,
            latency_ms DOUBLE PRECISION NOT NULL,
            ttft_ms DOUBLE PRECISION,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cached_tokens BIGINT,
            cost_usd DOUBLE PRECISION,
            cache TEXT,
            attempts INTEGER NOT NULL,
            error_type TEXT
        )
        """,
        "CREATE INDEX sluicegate_audit_ts ON sluicegate_audit (ts, id)",
        "CREATE INDEX sluicegate_audit_consumer ON sluicegate_audit (consumer, ts)",
        "CREATE INDEX sluicegate_audit_request ON sluicegate_audit (request_id)",
    ),
    (
        # 3: request and response bodies (audit.log_bodies), NULL when not kept
        "ALTER TABLE sluicegate_audit ADD COLUMN request_body TEXT, "
        "ADD COLUMN response_body TEXT, ADD COLUMN request_truncated BOOLEAN, "
        "ADD COLUMN response_truncated BOOLEAN",
    ),
    (
        # 4: when each minted key was last used, written in batches (not a config change)
        """
        CREATE TABLE sluicegate_key_usage (
            key_id TEXT PRIMARY KEY,
            last_used_at TIMESTAMPTZ NOT NULL
        )
        """,
    ),
    (
        # 5: guardrail verdicts (JSON: type, action, count; never a value) and transform tags
        "ALTER TABLE sluicegate_audit ADD COLUMN guardrail TEXT, ADD COLUMN tags TEXT",
    ),
    (
        # 6: dashboard sessions ended by logout (the SHA-256 of the cookie's nonce), kept
        # until they would have expired, so that every instance refuses the cookie
        """
        CREATE TABLE sluicegate_ended_sessions (
            digest TEXT PRIMARY KEY,
            expires_at TIMESTAMPTZ NOT NULL
        )
        """,
        "CREATE INDEX sluicegate_ended_sessions_expiry ON sluicegate_ended_sessions (expires_at)",
    ),
    (
        # 7: the endpoint a row is of (chat, count_tokens, ...)
        "ALTER TABLE sluicegate_audit ADD COLUMN endpoint TEXT",
    ),
    (
        # 8: where a row's tokens come from: provider, or counted (the provider reported none)
        "ALTER TABLE sluicegate_audit ADD COLUMN usage_source TEXT",
    ),
    (
        # 9: files and batches consumers own at providers (stores/objects.py)
        """
        CREATE TABLE sluicegate_objects (
            id TEXT PRIMARY KEY,
            gateway TEXT NOT NULL,
            consumer TEXT NOT NULL,
            kind TEXT NOT NULL,
            service TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            doc JSONB NOT NULL,
            batch TEXT,
            recorded BOOLEAN NOT NULL DEFAULT false
        )
        """,
        "CREATE INDEX sluicegate_objects_owner ON sluicegate_objects "
        "(gateway, consumer, kind, created_at, id)",
    ),
    (
        # 10: every step of the request's plan (JSON: service, target, status, outcome, ms)
        "ALTER TABLE sluicegate_audit ADD COLUMN attempts_detail JSONB",
    ),
    (
        # 11: responses of the Responses API kept for follow-ups (stores/responses.py)
        """
        CREATE TABLE sluicegate_responses (
            id TEXT PRIMARY KEY,
            gateway TEXT NOT NULL,
            consumer TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL,
            response TEXT NOT NULL,
            input TEXT NOT NULL
        )
        """,
        "CREATE INDEX sluicegate_responses_expiry ON sluicegate_responses (expires_at)",
    ),
    (
        # 12: why the request went where it went (x-sluicegate-route)
        "ALTER TABLE sluicegate_audit ADD COLUMN route TEXT",
    ),
)

SCHEMA_VERSION = len(SQLITE)
assert len(POSTGRES) == SCHEMA_VERSION, "both dialects move in step"
