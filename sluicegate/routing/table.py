"""The compiled routing table: everything a request needs, resolved once.

A ``RoutingTable`` is built by ``routing.compile`` from a validated config and
never changed afterwards; a config change builds a new one and the runtime
swaps it in. Lookups here are dict hits and a short list of precompiled
patterns, nothing is re-derived per request.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import hmac
import itertools
import math
import random
import re
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from sluicegate.cache.policy import CachePlan
from sluicegate.config.issues import EntityIssue
from sluicegate.config.model import Policies
from sluicegate.cors import CorsPolicy
from sluicegate.credentials import Signer
from sluicegate.guardrails.policy import Guard
from sluicegate.media.prices import MediaPrices
from sluicegate.policies.rate_limit import Limit
from sluicegate.providers.base import Adapter
from sluicegate.providers.models import ModelCatalog
from sluicegate.proxy.upstream import Timeouts, Transport
from sluicegate.routing.balancer import Balancer, unit_hash
from sluicegate.routing.probes import Probe
from sluicegate.telemetry.pricing import PriceTable

if TYPE_CHECKING:  # PyJWT and cryptography load only with auth.jwt on (compile.py)
    from sluicegate.auth.jwt import JwtVerifier
    from sluicegate.routing.smart import Router


@dataclass(frozen=True, slots=True, eq=False)
class CompiledService:
    name: str
    provider: str
    adapter: Adapter | None
    pool: Balancer  # an upstream's shared pool, or this endpoint's one target
    path: str  # appended to the target's URL (an upstream target is a server root)
    headers: tuple[tuple[str, str], ...]
    signer: Signer | None
    retries: int
    timeouts: Timeouts
    backoff: tuple[float, float]  # first retry delay, largest delay
    transport: Transport | None = None  # None: the runtime's shared HTTP client
    max_answer_bytes: int = 64 * 1024 * 1024  # a whole answer above it is the upstream's failure
    tls: ssl.SSLContext | None = None  # its tls_* fields, compiled; None: the client's default


@dataclass(frozen=True, slots=True)
class Step:
    service: CompiledService
    model: str | None  # None: the client's model goes on unchanged


@dataclass(frozen=True, slots=True)
class FallbackOn:
    statuses: frozenset[int]
    any_4xx: bool
    any_5xx: bool
    timeout: bool
    connect: bool
    context_length: bool
    content_filter: bool

    def matches(self, kind: str, status: int | None, code: str | None = None) -> bool:
        if kind == "invalid":
            return self.any_5xx
        if kind in ("unavailable", "auth"):
            return self.connect or self.any_5xx
        if kind == "timeout":
            return self.timeout
        if kind == "connect":
            return self.connect
        if code == "context_length_exceeded" and self.context_length:
            return True
        if code == "content_filter" and self.content_filter:
            return True
        if status is None:
            return False
        if status in self.statuses:
            return True
        return (self.any_5xx and status >= 500) or (self.any_4xx and 400 <= status < 500)


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    name: str
    index: int
    targets: tuple[Step, ...]
    cumulative: tuple[float, ...]
    fallbacks: tuple[Step, ...]
    fallback_on: FallbackOn
    paths: frozenset[str] | None
    headers: tuple[tuple[str, re.Pattern[str]], ...]
    policies: Policies
    listed_models: tuple[str, ...]  # its exact names, then the catalog's its globs match
    hash_on: str | None = None
    limits: tuple[Limit, ...] = ()
    cache: CachePlan | None = None  # policies.cache, compiled; None: no cache, no cost
    guard: Guard | None = None  # policies.guardrails and .transform, compiled; None: none
    path_patterns: tuple[re.Pattern[str], ...] = ()  # the glob patterns of match.paths
    router: Router | None = None  # its targets, routes and strategy (routing/smart.py)

    def pick(self, rng: random.Random, key: str | None = None) -> Step:
        if len(self.targets) == 1:
            return self.targets[0]
        if key is not None:  # sticky: the same key always gets the same arm
            weights = (self.cumulative[0], *(b - a for a, b in itertools.pairwise(self.cumulative)))
            scores = [
                -w / math.log(unit_hash(key, f"{i}:{t.service.name}:{t.model}"))
                for i, (t, w) in enumerate(zip(self.targets, weights, strict=True))
            ]
            return self.targets[scores.index(max(scores))]
        point = rng.random() * self.cumulative[-1]
        return self.targets[bisect.bisect_right(self.cumulative, point)]

    def plan(self, rng: random.Random, key: str | None = None) -> list[Step]:
        """The weighted pick, then the fallbacks in order."""
        return [self.pick(rng, key), *self.fallbacks]

    def takes_path(self, path: str) -> bool:
        """``match.paths`` names ``path``, as it is or by a glob pattern."""
        if self.paths is None:
            return True
        return path in self.paths or any(p.fullmatch(path) for p in self.path_patterns)

    def accepts(self, path: str, headers: Mapping[str, str]) -> bool:
        if self.paths is not None and not self.takes_path(path):
            return False
        for name, pattern in self.headers:
            value = headers.get(name)
            if value is None or not pattern.fullmatch(value):
                return False
        return True


@dataclass(frozen=True, slots=True, eq=False)
class ConsumerEntry:
    name: str
    rules: frozenset[str] | None  # None: every rule
    models_body: bytes  # the precomputed GET /v1/models answer for this consumer
    limits: tuple[Limit, ...] = ()
    # A key minted by the Admin API or the CLI gets an entry of its own:
    key_id: str | None = None
    prefix: str | None = None  # shown in logs and lists (``sg-AbCd1234``)
    expires: float | None = None  # unix time from which the key is refused
    models: frozenset[str] | None = None  # the models it may ask for; None: any
    passthrough: frozenset[str] = frozenset()  # services named in consumers[].passthrough
    realtime_sessions: int | None = None  # open at once, per instance; None: any
    groups: frozenset[str] = frozenset()  # the consumer groups it is in (routes' ``group``)
    mcp: tuple[str, ...] | None = None  # a minted key's own MCP allow list; None: none

    def may_use(self, rule: CompiledRule) -> bool:
        return self.rules is None or rule.name in self.rules


def narrower(allowed: frozenset[str] | None, more: Iterable[str] | None) -> frozenset[str] | None:
    """The rules both allow (None: every rule): a group or a key only narrows a consumer."""
    if more is None:
        return allowed
    mine = frozenset(more)
    return mine if allowed is None else allowed & mine


def models_body(
    rules: Sequence[CompiledRule],
    allowed: frozenset[str] | None = None,
    only: frozenset[str] | None = None,
) -> bytes:
    """The ``GET /v1/models`` answer: the literal models of the ``allowed`` rules (of
    ``only``, if set)."""
    seen: dict[str, None] = {}
    for rule in rules:
        if allowed is not None and rule.name not in allowed:
            continue
        for model in rule.listed_models:
            if only is None or model in only:
                seen.setdefault(model, None)
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "sluicegate"} for m in seen]
    return orjson.dumps({"object": "list", "data": data})


@dataclass(frozen=True, slots=True)
class GroupEntry:
    rules: frozenset[str] | None
    limits: tuple[Limit, ...]


def hash_key(key: str, secret: bytes = b"") -> bytes:
    """What the table and the store keep of a client key: HMAC-SHA256 under the server's
    ``SLUICEGATE_KEY_SECRET``, or plain SHA-256 when none is set."""
    if secret:
        return hmac.new(secret, key.encode("utf-8"), hashlib.sha256).digest()
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True, eq=False)
class RoutingTable:
    gateway: str
    max_body_bytes: int
    rules: tuple[CompiledRule, ...]
    exact: Mapping[str, tuple[int, ...]]
    globs: tuple[tuple[int, re.Pattern[str]], ...]
    keys: Mapping[bytes, ConsumerEntry]
    anonymous: ConsumerEntry | None  # set only with ``auth: none`` and no consumers
    services: Mapping[str, CompiledService]
    matches_headers: bool
    pools: tuple[Balancer, ...] = ()
    probes: tuple[Probe, ...] = ()
    prices: PriceTable = field(default_factory=PriceTable)
    media_prices: MediaPrices = field(default_factory=MediaPrices)  # images, audio, rerank
    models: ModelCatalog = field(default_factory=ModelCatalog)
    body_timeout: float = 30.0
    header_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    cors: CorsPolicy | None = None
    access_log: bool = False
    limits: tuple[Limit, ...] = ()  # the gateway's own
    redis: str | None = None
    redis_failure: str = "open"
    estimate_max_tokens: int = 1024
    warnings: tuple[str, ...] = ()
    issues: tuple[EntityIssue, ...] = ()  # what of the store was left out, or never matches
    rng: random.Random = field(default_factory=random.Random)
    consumers: Mapping[str, ConsumerEntry] = field(default_factory=dict)  # by name
    jwt: JwtVerifier | None = None  # auth.jwt; carried to the next table while unchanged
    key_secret: bytes = b""  # SLUICEGATE_KEY_SECRET: keys are kept as HMACs under it
    revoked: frozenset[bytes] = frozenset()  # hashes of revoked minted keys
    groups: Mapping[str, GroupEntry] = field(default_factory=dict)
    # Consumers narrowed by the groups a token names, made once per combination.
    narrowed: dict[tuple[str, tuple[str, ...]], ConsumerEntry] = field(default_factory=dict)
    # A name of a verified client certificate → its consumer (consumers[].mtls_subjects).
    certificates: Mapping[str, ConsumerEntry] = field(default_factory=dict)

    def authenticate(self, key: str | None) -> ConsumerEntry | None:
        if self.anonymous is not None:
            return self.anonymous  # auth: none and no consumers: any key, or none, is fine
        if key is None:
            return None
        return self.keys.get(hash_key(key, self.key_secret))

    def by_certificate(self, names: tuple[str, ...]) -> ConsumerEntry | None:
        """The consumer a verified client certificate's names stand for; None when they name
        no consumer, or name different ones (a certificate never picks among consumers)."""
        found = None
        for name in names:
            entry = self.certificates.get(name)
            if entry is not None and found is not None and entry is not found:
                return None
            found = entry or found
        return found

    def in_groups(self, consumer: ConsumerEntry, names: tuple[str, ...]) -> ConsumerEntry:
        """``consumer`` narrowed by the named groups (a JWT's groups claim); unknown names are
        ignored. The narrower setting wins: rules intersect, the groups' limits are added."""
        known = tuple(sorted(n for n in set(names) if n in self.groups))
        if not known:
            return consumer
        cache_key = (consumer.name, known)
        found = self.narrowed.get(cache_key)
        if found is not None:
            return found
        allowed, limits = consumer.rules, consumer.limits
        for name in known:
            group = self.groups[name]
            allowed = narrower(allowed, group.rules)
            limits += group.limits
        body = models_body(self.rules, allowed, consumer.models)
        found = dataclasses.replace(
            consumer,
            rules=allowed,
            models_body=body,
            limits=limits,
            groups=consumer.groups | frozenset(known),
        )
        if len(self.narrowed) < 4096:  # bounded: names come from tokens
            self.narrowed[cache_key] = found
        return found

    def candidates(self, model: str) -> list[CompiledRule]:
        """Rules whose model patterns match, in the order requests try them (their index)."""
        exact = self.exact.get(model, ())
        found = [i for i, pattern in self.globs if pattern.fullmatch(model)]
        if exact:
            found = sorted({*found, *exact}) if found else list(exact)
        return [self.rules[i] for i in found]

    def describe(self) -> dict[str, Any]:
        return {"rules": [r.name for r in self.rules], "services": sorted(self.services)}


@dataclass(frozen=True, slots=True)
class Hosts:
    """Which gateway a ``Host`` header selects: exact names, then ``*.suffix`` wildcards."""

    exact: Mapping[bytes, RoutingTable]
    wildcards: tuple[tuple[bytes, RoutingTable], ...]  # (".example.com", table), longest first

    @classmethod
    def of(cls, tables: Mapping[str, RoutingTable]) -> Hosts:
        exact = {h.encode(): t for h, t in tables.items() if not h.startswith("*.")}
        wild = [(h[1:].encode(), t) for h, t in tables.items() if h.startswith("*.")]
        wild.sort(key=lambda item: -len(item[0]))
        return cls(exact, tuple(wild))

    def __bool__(self) -> bool:
        return bool(self.exact or self.wildcards)

    def select(self, host: bytes) -> RoutingTable | None:
        name = host.rpartition(b":")[0] if host.rfind(b":") > host.rfind(b"]") else host
        name = name.lower().rstrip(b".")
        table = self.exact.get(name)
        if table is not None:
            return table
        for suffix, table in self.wildcards:
            if name.endswith(suffix):
                return table
        return None
