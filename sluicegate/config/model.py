"""The config contract as pydantic models (control plane only: YAML and Admin API).

The data plane never sees these objects; ``routing.compile`` turns a validated
``Config`` into the frozen routing table once. Secrets are declared with
``repr=False`` so that a model printed in a log or traceback never shows them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    field_validator,
    model_validator,
)

from sluicegate.config.auth import Auth
from sluicegate.config.base import Duration, Name, Strict, secret
from sluicegate.config.guardrails import GuardrailsPolicy, TransformPolicy
from sluicegate.config.mcp import McpServer, check_allow_list
from sluicegate.config.routing import (
    ModelSpec,
    Route,
    RuleTarget,
    Semantic,
    Strategy,
    check_routes,
)
from sluicegate.config.tls import GatewayTls, check_upstream_tls
from sluicegate.providers.catalog import CATALOG
from sluicegate.stores.redis_client import check_redis_url


def _provider(value: str) -> str:
    if value not in CATALOG:
        raise ValueError(f"'{value}' is not a provider; use one of: {', '.join(sorted(CATALOG))}")
    return value


Provider = Annotated[str, AfterValidator(_provider)]


def _check_hash_on(value: str | None) -> str | None:
    if value is not None and value != "consumer" and not value.startswith("header:"):
        raise ValueError("must be 'consumer' or 'header:<name>'")
    return value


class Credentials(Strict):
    """How the gateway authenticates to a provider (seed 001's field names)."""

    header_name: str | None = None
    header_value: str | None = secret()
    param_name: str | None = None
    param_value: str | None = secret()
    aws_access_key_id: str | None = secret()
    aws_secret_access_key: str | None = secret()
    aws_session_token: str | None = secret()
    aws_region: str | None = None
    azure_client_id: str | None = None
    azure_client_secret: str | None = secret()
    azure_tenant_id: str | None = None
    azure_authority_host: str | None = None  # Entra ID's host; default login.microsoftonline.com
    gcp_service_account_json: str | None = secret()

    @model_validator(mode="after")
    def _pairs(self) -> Credentials:
        pairs = [
            ("header_name", "header_value"),
            ("param_name", "param_value"),
            ("aws_access_key_id", "aws_secret_access_key"),
        ]
        for first, second in pairs:
            if (getattr(self, first) is None) != (getattr(self, second) is None):
                raise ValueError(f"{first} and {second} go together")
        azure = (self.azure_client_id, self.azure_client_secret, self.azure_tenant_id)
        if any(v is not None for v in azure) and any(v is None for v in azure):
            raise ValueError("azure_client_id, azure_client_secret and azure_tenant_id go together")
        return self


class ActiveHealthcheck(Strict):
    path: str = "/"
    interval: Duration = 5.0
    timeout: Duration = 2.0
    healthy_successes: int = Field(default=2, ge=1)
    unhealthy_failures: int = Field(default=3, ge=1)


class PassiveHealthcheck(Strict):
    unhealthy_statuses: list[int] = Field(default_factory=lambda: [500, 502, 503, 504])
    failures: int = Field(default=3, ge=1)
    timeouts: int = Field(default=3, ge=1)
    cooldown: Duration = 30.0


class Healthchecks(Strict):
    active: ActiveHealthcheck | None = None
    passive: PassiveHealthcheck | None = None


class UpstreamTarget(Strict):
    url: str
    weight: float = Field(default=1, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if not {"@", "?", "#"}.isdisjoint(value):
            # Never quoted: what follows the host may be a password. A target URL is shown
            # in /metrics, the Admin API and spans.
            raise ValueError(
                "a target url is scheme://host:port only, with no user, password, query or "
                "fragment; put credentials under the upstream's credentials"
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"'{value}' is not an http(s) URL such as http://10.0.0.5:8000")
        if parts.path not in ("", "/"):
            raise ValueError("a target url is the server root; put the path on the service")
        return value.rstrip("/")


class Upstream(Strict):
    name: Name
    algorithm: Literal["round-robin", "weighted", "least-connections", "latency", "random"] = (
        "round-robin"
    )
    targets: list[UpstreamTarget] = Field(min_length=1)
    hash_on: str | None = None
    healthchecks: Healthchecks | None = None
    credentials: Credentials | None = None
    # TLS to the targets (https URLs) and for their probes; docs/security.md#tls.
    tls_ca_file: str | None = None
    tls_client_cert_file: str | None = None
    tls_client_key_file: str | None = None
    tls_verify: bool = True
    description: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("hash_on")
    @classmethod
    def _hash_on(cls, value: str | None) -> str | None:
        return _check_hash_on(value)

    @model_validator(mode="after")
    def _tls(self) -> Upstream:
        check_upstream_tls(self)
        return self


class Service(Strict):
    name: Name
    type: Literal["endpoint", "upstream"] = "endpoint"
    provider: Provider
    protocol: Literal["http", "https"] = "https"
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    credentials: Credentials | None = None
    retries: int = Field(default=1, ge=0, le=10)
    timeout: Duration = Field(default=60.0, gt=0)
    connect_timeout: Duration = Field(default=10.0, gt=0)
    read_timeout: Duration | None = Field(default=None, gt=0)
    first_byte_timeout: Duration | None = Field(default=None, gt=0)
    stream_timeout: Duration = Field(default=1800.0, gt=0)  # a whole streamed answer
    retry_backoff: Duration = 0.05
    retry_backoff_max: Duration = 2.0
    upstream: str | None = None
    upstream_id: str | None = None
    # An endpoint service's passive checks (docs/resilience.md): unset, the defaults for a
    # single target; {} turns them off. A service of type upstream has its upstream's.
    healthchecks: Healthchecks | None = None
    api_version: str | None = None  # azure: the api-version query parameter
    # openai, azure: "responses" sends chat-completions requests to the Responses API.
    api: Literal["chat", "responses"] = "chat"
    project: str | None = None  # vertex: the Google Cloud project
    location: str | None = None  # vertex: the region, e.g. us-central1
    allow_gs_uris: bool = False  # gemini, vertex: forward gs:// URIs (read with our identity)
    anthropic_betas: list[str] = Field(default_factory=list)  # anthropic-beta names that pass
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    mock_latency: Duration = 0.0
    mock_token_delay: Duration = 0.0
    mock_error_status: int | None = Field(default=None, ge=400, le=599)
    # TLS to the provider; a service of type upstream takes the upstream's where unset.
    tls_ca_file: str | None = None
    tls_client_cert_file: str | None = None
    tls_client_key_file: str | None = None
    tls_verify: bool = True

    @field_validator("host")
    @classmethod
    def _bare_host(cls, value: str | None) -> str | None:
        # Never quoted: the host is part of a target URL that metrics, the health view and
        # audit rows show, and what a user put before an "@" may be a password.
        if value is not None and (not value or any(c in "@/?#" or c.isspace() for c in value)):
            raise ValueError(
                "a host name or address only (api.example.com, 10.0.0.5, ::1), with no user, "
                "password, path or query; put credentials under the service's credentials"
            )
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None or value in ("", "/"):
            return None if value is None else ""
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _shape(self) -> Service:
        if self.type == "endpoint":
            if (
                self.host is None
                and CATALOG[self.provider].host is None
                and self.provider != "mock"
            ):
                raise ValueError(f"an endpoint service of provider '{self.provider}' needs a host")
            if self.upstream or self.upstream_id:
                raise ValueError("an endpoint service takes no upstream; set type: upstream")
            if self.healthchecks is not None and self.healthchecks.active is not None:
                raise ValueError(
                    "healthchecks.active: an endpoint service takes passive checks only; "
                    "probes are for an upstream's targets"
                )
        else:
            if not (self.upstream or self.upstream_id):
                raise ValueError("an upstream service needs upstream (a name) or upstream_id")
            if self.host is not None:
                raise ValueError("an upstream service takes its hosts from the upstream's targets")
            if self.healthchecks is not None:
                raise ValueError(
                    "healthchecks: an upstream service is checked by its upstream's healthchecks"
                )
        if self.api == "responses" and self.provider not in ("openai", "azure"):
            raise ValueError(
                "api: responses is for providers openai and azure, which have a Responses API"
            )
        if self.provider == "vertex" and not self.project:
            raise ValueError(
                "a vertex service needs project (the Google Cloud project id; "
                "location defaults to us-central1)"
            )
        check_upstream_tls(self)
        return self


def matches_every_model(models: list[str]) -> bool:
    """Whether a rule's model patterns take every model (none at all, or ``*``)."""
    return not models or "*" in models


class RuleMatch(Strict):
    models: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)


class Fallback(Strict):
    service: str
    model: str | None = None


FALLBACK_CLASSES = ("4xx", "5xx", "timeout", "connect", "context_length", "content_filter")


def _default_fallback_on() -> list[int | str]:
    return [429, "5xx", "timeout", "connect"]


class RateLimitPolicy(Strict):
    requests: int | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    window: Duration = Field(default=60.0, gt=0)
    per: Literal["consumer", "key", "rule", "model", "global"] = "consumer"


def _one_or_many(value: Any) -> Any:
    # A single limit or several windows at once (per minute and per day).
    return value if value is None or isinstance(value, list) else [value]


class CachePolicy(Strict):
    mode: Literal["exact", "semantic", "off"] = "exact"
    ttl: Duration = Field(default=300.0, gt=0)
    threshold: float | None = Field(default=None, gt=0, le=1)
    # consumer: a hit never tells one consumer what another asked; rule: shared by all.
    scope: Literal["rule", "consumer"] = "consumer"
    # Where entries live; unset: Redis when gateway.redis is set, else this process.
    backend: Literal["memory", "redis"] | None = None
    # Semantic mode: unset is the local model; else a model name this gateway routes
    # to an embeddings service.
    embedder: str | None = Field(default=None, min_length=1)


class Policies(Strict):
    rate_limit: Annotated[list[RateLimitPolicy] | None, BeforeValidator(_one_or_many)] = None
    cache: CachePolicy | None = None
    guardrails: GuardrailsPolicy | None = None
    transform: TransformPolicy | None = None
    log_bodies: bool | None = None  # this rule's requests: overrides audit.log_bodies


class Rule(Strict):
    name: Name
    match: RuleMatch = Field(default_factory=RuleMatch)
    # Rules are tried by priority, lower first; ties keep the order they are listed in
    # (the file's, then the store's by creation).
    priority: int = 100
    # Says that matching every model is meant: through the Admin API, a rule that loses
    # its model patterns (PATCH {"match": null}) must say so to become a catch-all.
    catch_all: bool = False
    targets: list[RuleTarget] = Field(min_length=1)
    # How one of the targets is chosen; routes and semantic routes choose which targets
    # (docs/routing.md).
    strategy: Strategy = "weighted"
    routes: list[Route] = Field(default_factory=list)
    semantic: Semantic | None = None
    fallbacks: list[Fallback] = Field(default_factory=list)
    hash_on: str | None = None  # sticky splits: "consumer" or "header:<name>"
    fallback_on: list[int | str] = Field(default_factory=lambda: _default_fallback_on())
    policies: Policies = Field(default_factory=Policies)
    description: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("routes")
    @classmethod
    def _routes(cls, value: list[Route]) -> list[Route]:
        return check_routes(value)

    @field_validator("hash_on")
    @classmethod
    def _hash_on(cls, value: str | None) -> str | None:
        return _check_hash_on(value)

    @model_validator(mode="after")
    def _catch_all(self) -> Rule:
        if self.catch_all and not matches_every_model(self.match.models):
            raise ValueError(
                "catch_all: true matches every model; leave match.models out (or use ['*'])"
            )
        return self

    @field_validator("fallback_on")
    @classmethod
    def _fallback_on(cls, value: list[int | str]) -> list[int | str]:
        for item in value:
            if isinstance(item, int):
                if not 400 <= item <= 599:
                    raise ValueError(f"{item} is not an HTTP error status (400-599)")
            elif item not in FALLBACK_CLASSES:
                raise ValueError(
                    f"'{item}' is not a status or one of {', '.join(FALLBACK_CLASSES)}"
                )
        return value


class Limits(Strict):
    requests: int | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    window: Duration = Field(default=60.0, gt=0)


class Budget(Strict):
    usd: float = Field(ge=0)
    window: Duration = Field(default=30 * 86400.0, gt=0)


class Group(Strict):
    """A team: its consumers may use only its rules (as well as their own), and its limits
    and budget apply to all of them together, on top of their own."""

    name: Name
    rules: list[str] | None = None
    limits: Annotated[list[Limits] | None, BeforeValidator(_one_or_many)] = None
    budget: Budget | None = None
    # MCP servers and server/tool globs its consumers may use; unset: every server.
    mcp: Annotated[list[str] | None, AfterValidator(check_allow_list)] = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)


class Consumer(Strict):
    name: Name
    keys: list[Annotated[str, Field(min_length=8)]] = Field(default_factory=list, repr=False)
    groups: list[str] = Field(default_factory=list)
    rules: list[str] | None = None
    limits: Annotated[list[Limits] | None, BeforeValidator(_one_or_many)] = None
    budget: Budget | None = None
    # Names of a verified client certificate (gateway.tls.client_ca_file) that stand for a
    # key of this consumer: its subject common name or a subject alternative name.
    mtls_subjects: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    # Services it may reach through /passthrough/{service}/… besides those its rules target.
    passthrough: list[str] = Field(default_factory=list)
    # Realtime sessions (/v1/realtime) it may hold open at once, per instance; unset: any.
    realtime_sessions: int | None = Field(default=None, ge=0)
    # MCP servers and server/tool globs it may use (docs/mcp.md); unset: every server.
    mcp: Annotated[list[str] | None, AfterValidator(check_allow_list)] = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)


class Cors(Strict):
    """Browsers on these origins may call the data plane (``*``: any origin)."""

    allow_origins: list[str] = Field(min_length=1)
    allow_headers: list[str] = Field(
        default_factory=lambda: [
            "authorization",
            "content-type",
            "x-api-key",
            "anthropic-version",
            "anthropic-beta",
            "x-request-id",
            "cache-control",
        ]
    )
    max_age: Duration = Field(default=600.0, ge=0)

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            scheme, sep, rest = origin.partition("://")
            if origin != "*" and (scheme not in ("http", "https") or not sep or not rest):
                raise ValueError(f"'{origin}' is not an origin (https://app.example.com, or *)")
        return value


MIN_ADMIN_KEY = 16


class Gateway(Strict):
    name: Name = "default"
    listen: str = "127.0.0.1:8080"
    admin_key: str | None = secret()
    metrics_key: str | None = secret()  # set: /metrics asks for it as a bearer token
    cors: Cors | None = None  # unset: no browser on another origin may read an answer
    store: str | None = None
    redis: str | None = None
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # A whole (not streamed) answer above this is refused as the upstream's failure (502).
    max_answer_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # The longest pause while a client sends its body: a body that stalls (a chunked one
    # that never ends) is a 408 instead of a connection held for ever.
    body_timeout: Duration = Field(default=30.0, gt=0)
    # The longest a client may take over a request's line and headers (slowloris): a 408.
    header_timeout: Duration = Field(default=10.0, gt=0)
    # A request's line and headers, in bytes and in fields: past either, a 431 (and the
    # excess is never held in memory).
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=8)
    # At shutdown, how long answers in flight may still run; a stream still running when it
    # ends gets an error event. Read at start.
    drain_timeout: Duration = Field(default=10.0, gt=0)
    access_log: bool = False  # one JSON line per request on the "sluicegate.access" logger
    limits: Annotated[list[RateLimitPolicy] | None, BeforeValidator(_one_or_many)] = None
    redis_failure: Literal["open", "closed"] = "open"
    budget: Budget | None = None
    estimate_max_tokens: int = Field(default=1024, ge=0)
    cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)  # the in-process cache's size
    # How long responses of the Responses API are kept for follow-ups and reads.
    responses_ttl: Duration = Field(default=30 * 86400.0, gt=0)
    tls: GatewayTls | None = None  # unset: plain HTTP (TLS ends at a proxy in front)
    # An MCP client session unused this long is gone (docs/mcp.md).
    mcp_session_ttl: Duration = Field(default=3600.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8080")
        return value

    @field_validator("admin_key", "metrics_key", "store", "redis")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        # `${VAR}` of an unset variable leaves "", which means "not configured".
        return value or None

    @field_validator("admin_key")
    @classmethod
    def _admin_key(cls, value: str | None) -> str | None:
        # It opens everything; the Admin API slows guessing down, a long key defeats it.
        if value is not None and len(value) < MIN_ADMIN_KEY:
            raise ValueError(
                f"must be at least {MIN_ADMIN_KEY} characters (e.g. openssl rand -hex 24)"
            )
        return value

    @field_validator("redis")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None:
            check_redis_url(value)  # ValueError: the URL itself is never echoed (a password)
        return value

    @field_validator("store")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
            return value
        if value.startswith(("postgresql://", "postgres://")):
            return value
        raise ValueError(
            "must be sqlite:///relative.db, sqlite:////absolute/path.db or "
            "postgresql://user:pass@host:5432/db"
        )


class PriceOverride(Strict):
    """USD per million tokens; cached input and cache writes default to the input price.
    Media models are priced per unit instead (USD per image, second of audio, character
    spoken, rerank search, request)."""

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    reasoning: float | None = Field(default=None, ge=0)
    audio_input: float | None = Field(default=None, ge=0)  # audio prompt tokens
    image: float | None = Field(default=None, ge=0)
    audio_second: float | None = Field(default=None, ge=0)
    character: float | None = Field(default=None, ge=0)
    search: float | None = Field(default=None, ge=0)
    request: float | None = Field(default=None, ge=0)

    @property
    def media(self) -> bool:
        return bool(self.model_fields_set & MEDIA_PRICE_FIELDS)


MEDIA_PRICE_FIELDS = frozenset({"image", "audio_second", "character", "search", "request"})


class Telemetry(Strict):
    otlp_endpoint: str | None = None  # e.g. http://127.0.0.1:4318/v1/traces; unset: no tracing
    service_name: str = "sluicegate"

    @field_validator("otlp_endpoint")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None


class Audit(Strict):
    """The audit log: a row per request in ``gateway.store`` (or, without a store, in the
    SQLite file ``path``), written in batches; rows the store cannot take wait in
    ``spill_path`` (JSON lines) and are replayed."""

    enabled: bool = True
    path: str | None = None
    spill_path: str = "sluicegate-audit-spill.jsonl"
    queue_size: int = Field(default=10_000, ge=1)
    batch_size: int = Field(default=500, ge=1, le=10_000)
    flush_interval: Duration = Field(default=0.2, gt=0)
    # Rows older than this are deleted by a background job (e.g. 30d); unset: kept for ever.
    retention: Duration | None = Field(default=None, gt=0)
    log_bodies: bool = False  # keep request and response bodies with each row
    max_body_bytes: int = Field(default=64 * 1024, ge=1)  # per body; longer ones are cut

    @field_validator("path")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None


_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def _host(value: str) -> str:
    host = value.lower().rstrip(".")
    if not _HOST.fullmatch(host):
        raise ValueError(f"'{value}' is not a host name (team-a.gw.example.com, *.example.com)")
    return host


HostName = Annotated[str, AfterValidator(_host)]


class Tenant(Strict):
    """A gateway of its own next to the default one: its entities, and how requests find it
    (a ``Host`` in ``hosts``, or the path prefix ``/gw/<name>/``). Settings not given here
    (limits, budget) are the ``gateway:`` section's; ``auth`` is its own, never inherited."""

    name: Name
    hosts: list[HostName] = Field(default_factory=list)
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    auth: Auth = Field(default_factory=Auth)
    limits: Annotated[list[RateLimitPolicy] | None, BeforeValidator(_one_or_many)] = None
    budget: Budget | None = None
    upstreams: list[Upstream] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    consumers: list[Consumer] = Field(default_factory=list)
    mcp_servers: list[McpServer] = Field(default_factory=list)

    @field_validator("auth")
    @classmethod
    def _no_admin_claim(cls, value: Auth) -> Auth:
        if value.jwt is not None and value.jwt.admin_claim is not None:
            raise ValueError(
                "jwt.admin_claim: only the top-level auth grants the Admin API, which serves "
                "every gateway"
            )
        return value


class Config(Strict):
    gateway: Gateway = Field(default_factory=Gateway)
    gateways: list[Tenant] = Field(default_factory=list)
    upstreams: list[Upstream] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    consumers: list[Consumer] = Field(default_factory=list)
    pricing: dict[str, PriceOverride] = Field(default_factory=dict)
    models: dict[str, ModelSpec] = Field(default_factory=dict)  # the catalog, over the built-in
    telemetry: Telemetry = Field(default_factory=Telemetry)
    audit: Audit = Field(default_factory=Audit)
    auth: Auth = Field(default_factory=Auth)
    mcp_servers: list[McpServer] = Field(default_factory=list)
