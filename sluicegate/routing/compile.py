"""Compile a validated ``Config`` into a ``RoutingTable`` (once per config change)."""

from __future__ import annotations

import fnmatch
import itertools
import re
import ssl
from typing import TYPE_CHECKING

from sluicegate.cache.policy import compile_cache
from sluicegate.config.model import (
    Budget,
    Config,
    Limits,
    PassiveHealthcheck,
    Rule,
    Service,
    Upstream,
)
from sluicegate.config.order import is_glob, match_order, normal_path
from sluicegate.cors import CorsPolicy
from sluicegate.credentials import build_signer
from sluicegate.guardrails.policy import compile_guard
from sluicegate.policies.rate_limit import Limit
from sluicegate.providers.catalog import CATALOG
from sluicegate.providers.mock import MockTransport
from sluicegate.providers.models import ModelCatalog
from sluicegate.providers.registry import ADAPTERS
from sluicegate.proxy.upstream import Timeouts
from sluicegate.routing.balancer import ALGORITHMS, Balancer, RoundRobin, Target
from sluicegate.routing.catalogs import media_prices, model_catalog
from sluicegate.routing.health import (
    ENDPOINT_PASSIVE,
    ActivePolicy,
    PassivePolicy,
    TargetHealth,
)
from sluicegate.routing.probes import Probe
from sluicegate.routing.smart import compile_router, embedder_warnings, keep_examples
from sluicegate.routing.table import (
    CompiledRule,
    CompiledService,
    ConsumerEntry,
    FallbackOn,
    GroupEntry,
    RoutingTable,
    Step,
    hash_key,
    models_body,
    narrower,
)
from sluicegate.telemetry.pricing import PriceTable
from sluicegate.tls.client import TlsSettings, client_context

if TYPE_CHECKING:  # PyJWT and cryptography load only with auth.jwt on
    from sluicegate.auth.jwt import JwtVerifier


def _base_url(svc: Service) -> str:
    info = CATALOG[svc.provider]
    protocol = svc.protocol if svc.host or "protocol" in svc.model_fields_set else info.protocol
    host = svc.host or (info.host or "").format(
        region=(svc.credentials.aws_region if svc.credentials else None) or "us-east-1",
        location=svc.location or "us-central1",
    )
    if host == "global-aiplatform.googleapis.com":
        host = "aiplatform.googleapis.com"  # Vertex's global endpoint has no region prefix
    port = svc.port or (info.port if not svc.host else None) or (443 if protocol == "https" else 80)
    default_port = (protocol == "https" and port == 443) or (protocol == "http" and port == 80)
    host = f"[{host}]" if ":" in host else host
    authority = host if default_port else f"{host}:{port}"
    path = svc.path if svc.path is not None else info.path
    return f"{protocol}://{authority}{path}"


def compile_service(
    svc: Service,
    index: int,
    upstreams: dict[str, Upstream],
    pools: dict[str, Balancer],
    warnings: list[str],
    max_answer_bytes: int = 64 * 1024 * 1024,
    pool_tls: dict[str, tuple[TlsSettings, ssl.SSLContext | None]] | None = None,
    previous: Balancer | None = None,
) -> CompiledService:
    """``pool_tls``: each upstream's TLS settings and context, shared by its services;
    ``previous``: the running table's pool of this endpoint service (``_endpoint_pool``)."""
    where = f"services[{index}]"
    adapter_class = ADAPTERS[svc.provider]
    adapter = adapter_class.for_service(svc) if adapter_class is not None else None
    if adapter is None:
        warnings.append(
            f"{where}.provider: '{svc.provider}' is not supported yet; requests routed to "
            f"service '{svc.name}' will fail with 502"
        )
    timeouts = Timeouts(
        connect=svc.connect_timeout,
        read=svc.read_timeout or svc.timeout,
        total=svc.timeout,
        first_byte=svc.first_byte_timeout or svc.timeout,
        stream=svc.stream_timeout,
    )
    path = svc.path if svc.path is not None else CATALOG[svc.provider].path
    creds = svc.credentials
    transport = None
    tls = None
    if svc.provider == "mock":
        pool: Balancer = _endpoint_pool(svc, "mock://" + svc.name, previous)
        transport = MockTransport(svc.mock_latency, svc.mock_token_delay, svc.mock_error_status)
    elif svc.type == "upstream":
        upstream = (
            upstreams[svc.upstream or ""] if svc.upstream else _by_id(upstreams, svc.upstream_id)
        )
        pool = pools[upstream.name]
        creds = creds or upstream.credentials
        inherited, tls = (pool_tls or {}).get(upstream.name, (TlsSettings(), None))
        settings = TlsSettings.of(svc, base=inherited)
        if settings != inherited:  # its own tls_* fields over the upstream's
            tls = client_context(settings, where, f"service '{svc.name}'", warnings)
    else:
        pool, path = _endpoint_pool(svc, _base_url(svc), previous), ""
        tls = client_context(TlsSettings.of(svc), where, f"service '{svc.name}'", warnings)
    return CompiledService(
        name=svc.name,
        provider=svc.provider,
        adapter=adapter,
        pool=pool,
        path=path,
        headers=tuple(svc.headers.items()),
        signer=build_signer(creds, svc, f"{where}.credentials", warnings)
        if transport is None
        else None,
        retries=svc.retries,
        timeouts=timeouts,
        backoff=(svc.retry_backoff, svc.retry_backoff_max),
        transport=transport,
        max_answer_bytes=max_answer_bytes,
        tls=tls,
    )


def _passive(p: PassiveHealthcheck) -> PassivePolicy:
    return PassivePolicy(frozenset(p.unhealthy_statuses), p.failures, p.timeouts, p.cooldown)


def _endpoint_pool(svc: Service, url: str, previous: Balancer | None) -> Balancer:
    """The pool of one target an endpoint service is, with its passive checks. The running
    pool of the same service is kept when its target is unchanged, so that health carries
    over a config change as an upstream's does."""
    checks = svc.healthchecks
    if checks is None:
        passive: PassivePolicy | None = ENDPOINT_PASSIVE
    else:
        passive = _passive(checks.passive) if checks.passive is not None else None
    if previous is not None and len(previous.targets) == 1:
        old = previous.targets[0]
        if old.url == url and old.health.passive == passive:
            return previous
    where = f"service '{svc.name}' target {url}"
    return RoundRobin(svc.name, [Target(url, health=TargetHealth(passive, where=where))])


def _same_pool(pool: Balancer, upstream: Upstream, targets: list[Target]) -> bool:
    """Whether a running pool was built from this very definition (targets, algorithm, checks)."""
    if type(pool) is not ALGORITHMS[upstream.algorithm] or pool.hash_on != upstream.hash_on:
        return False
    if len(pool.targets) != len(targets):
        return False
    return all(
        (old.url, old.weight, old.health.passive, old.health.active)
        == (new.url, new.weight, new.health.passive, new.health.active)
        for old, new in zip(pool.targets, targets, strict=True)
    )


def compile_pool(
    upstream: Upstream,
    index: int,
    warnings: list[str],
    previous: Balancer | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[Balancer, Probe | None]:
    """One pool per upstream, shared by every service that names it, and its probe.

    ``previous`` is the running table's pool of the same name: when its definition
    is unchanged it is kept, so that health, in-flight counts and latency carry over.
    ``tls``: the upstream's SSL context, for the probe.
    """
    checks = upstream.healthchecks
    passive = active = None
    if checks is not None and checks.passive is not None:
        passive = _passive(checks.passive)
    if checks is not None and checks.active is not None:
        a = checks.active
        active = ActivePolicy(
            a.path, a.interval, a.timeout, a.healthy_successes, a.unhealthy_failures
        )
    targets = [
        Target(
            t.url, t.weight, TargetHealth(passive, active, f"upstream '{upstream.name}' {t.url}")
        )
        for t in upstream.targets
    ]
    if previous is not None and _same_pool(previous, upstream, targets):
        pool = previous
    else:
        pool = ALGORITHMS[upstream.algorithm](upstream.name, targets, upstream.hash_on)
    if active is None:
        return pool, None
    where = f"upstreams[{index}].credentials"
    # An Upstream is not a Service; the signer only reads the credentials.
    signer = build_signer(upstream.credentials, None, where, warnings)
    return pool, Probe(pool, active, signer, tls)


def _by_id(upstreams: dict[str, Upstream], upstream_id: str | None) -> Upstream:
    from sluicegate.config.ids import entity_id

    for name, upstream in upstreams.items():
        if upstream_id in (name, entity_id("upstream", name)):
            return upstream
    raise KeyError(upstream_id)


def _fallback_on(items: list[int | str]) -> FallbackOn:
    return FallbackOn(
        statuses=frozenset(i for i in items if isinstance(i, int)),
        any_4xx="4xx" in items,
        any_5xx="5xx" in items,
        timeout="timeout" in items,
        connect="connect" in items,
        context_length="context_length" in items,
        content_filter="content_filter" in items,
    )


def compile_rule(
    rule: Rule,
    index: int,
    services: dict[str, CompiledService],
    redis: str | None = None,
    warnings: list[str] | None = None,
    catalog: tuple[str, ...] = (),
    models: ModelCatalog | None = None,
    gateway: str = "default",
) -> CompiledRule:
    targets = tuple(Step(services[t.service], t.model) for t in rule.targets)
    cumulative = tuple(itertools.accumulate(t.weight for t in rule.targets))
    return CompiledRule(
        name=rule.name,
        index=index,
        targets=targets,
        cumulative=cumulative,
        fallbacks=tuple(Step(services[f.service], f.model) for f in rule.fallbacks),
        fallback_on=_fallback_on(rule.fallback_on),
        paths=frozenset(normal_path(p) for p in rule.match.paths) or None,
        path_patterns=tuple(
            re.compile(fnmatch.translate(normal_path(p))) for p in rule.match.paths if is_glob(p)
        ),
        headers=tuple(
            (name.lower(), re.compile(fnmatch.translate(value)))
            for name, value in rule.match.headers.items()
        ),
        policies=rule.policies,
        hash_on=rule.hash_on,
        limits=tuple(
            Limit(f"rule:{rule.name}", r.per, r.requests, r.tokens, r.window)
            for r in rule.policies.rate_limit or []
        ),
        listed_models=_listed(rule, catalog),
        cache=compile_cache(
            rule.policies.cache, redis, rule.name, warnings if warnings is not None else []
        ),
        guard=compile_guard(rule.policies),
        router=compile_router(rule, gateway, services, models or ModelCatalog()),
    )


def _listed(rule: Rule, catalog: tuple[str, ...]) -> tuple[str, ...]:
    """What ``/v1/models`` lists for a rule: its exact names, then the catalog's models its
    glob patterns match (a glob itself is no model a client could send). A rule that names
    paths and no models (files, batches, pass-through) serves no model by name."""
    if not rule.match.models and rule.match.paths:
        return ()
    exact = [m for m in rule.match.models if not is_glob(m)]
    globs = [re.compile(fnmatch.translate(m)) for m in rule.match.models or ["*"] if is_glob(m)]
    found = [name for name in catalog if any(g.fullmatch(name) for g in globs)]
    return tuple(dict.fromkeys([*exact, *found]))


def limits_of(
    owner: str, per: str, limits: list[Limits] | None, budget: Budget | None
) -> tuple[Limit, ...]:
    """A consumer's, a group's or a key's limits and budget, counted ``per`` that owner."""
    out = tuple(Limit(owner, per, lim.requests, lim.tokens, lim.window) for lim in limits or [])
    if budget is not None:
        out += (Limit(owner, per, None, None, budget.window, budget.usd),)
    return out


def _cors(config: Config) -> CorsPolicy | None:
    cors = config.gateway.cors
    if cors is None:
        return None
    return CorsPolicy.of(cors.allow_origins, cors.allow_headers, cors.max_age)


def _gateway_limits(config: Config) -> tuple[Limit, ...]:
    gateway = config.gateway
    limits = tuple(
        Limit("gateway", r.per, r.requests, r.tokens, r.window) for r in gateway.limits or []
    )
    if gateway.budget is not None:
        budget = gateway.budget
        limits += (Limit("gateway", "global", None, None, budget.window, budget.usd),)
    return limits


def _jwt_verifier(
    config: Config, warnings: list[str], previous: RoutingTable | None
) -> JwtVerifier | None:
    """The running verifier while ``auth.jwt`` is unchanged: its JWKS cache carries over."""
    settings = config.auth.jwt
    if settings is None:
        return None
    if settings.audience is None:
        warnings.append(
            "auth.jwt.audience: not set, so a token the issuer made for any other "
            "application is accepted too"
        )
    names = {c.name for c in config.consumers}
    if settings.default_consumer is not None and settings.default_consumer not in names:
        warnings.append(
            f"auth.jwt.default_consumer: '{settings.default_consumer}' is not a consumer of "
            f"gateway '{config.gateway.name}'; tokens naming no consumer are refused"
        )
    if previous is not None and previous.jwt is not None and previous.jwt.settings == settings:
        return previous.jwt
    from sluicegate.auth.jwt import JwtVerifier  # PyJWT and cryptography: only when used

    return JwtVerifier(settings)


def _anonymous(
    config: Config, rules: list[CompiledRule], warnings: list[str]
) -> ConsumerEntry | None:
    """Who a request without a key is: nobody (401), unless the gateway has no consumers
    and its config says ``auth: none``. Failing closed keeps a gateway that is still being
    built (or has lost its last consumer) from serving everyone."""
    name = config.gateway.name
    if config.consumers:
        if config.auth.anonymous:
            warnings.append(
                f"auth: 'none' changes nothing while gateway '{name}' has consumers: "
                "every request needs a key"
            )
        return None
    if config.auth.anonymous:
        warnings.append(
            f"auth: 'none' and no consumers, so gateway '{name}' serves every request "
            "without a key (authentication off)"
        )
        return ConsumerEntry("anonymous", None, models_body(rules))
    if config.auth.jwt is None:
        warnings.append(
            f"consumers: none, so gateway '{name}' refuses every request (401) until one "
            "exists (in the file or the store); auth: none serves requests without a key"
        )
    return None


def compile_config(
    config: Config,
    warnings: list[str] | None = None,
    previous: RoutingTable | None = None,
    key_secret: bytes = b"",
) -> RoutingTable:
    """``previous``, the running table, lends its unchanged upstream pools to the new one;
    ``key_secret`` is the HMAC key client keys are hashed under."""
    warnings = list(warnings or [])
    upstreams = {u.name: u for u in config.upstreams}
    running = {pool.name: pool for pool in previous.pools} if previous is not None else {}
    endpoints = {}  # the running pools of endpoint services, by service
    if previous is not None:
        shared = previous.pools
        endpoints = {n: s.pool for n, s in previous.services.items() if s.pool not in shared}
    pool_tls = {}
    for i, u in enumerate(config.upstreams):
        settings = TlsSettings.of(u)
        where, owner = f"upstreams[{i}]", f"upstream '{u.name}'"
        pool_tls[u.name] = (settings, client_context(settings, where, owner, warnings))
    compiled = [
        compile_pool(u, i, warnings, running.get(u.name), pool_tls[u.name][1])
        for i, u in enumerate(config.upstreams)
    ]
    pools = {u.name: pool for u, (pool, _) in zip(config.upstreams, compiled, strict=True)}
    probes = tuple(probe for _, probe in compiled if probe is not None)
    services = {
        svc.name: compile_service(
            svc,
            i,
            upstreams,
            pools,
            warnings,
            config.gateway.max_answer_bytes,
            pool_tls,
            endpoints.get(svc.name),
        )
        for i, svc in enumerate(config.services)
    }
    redis = config.gateway.redis
    models = model_catalog(config)
    prices = PriceTable(models.prices())
    catalog = models.names()
    # In the order requests try them (priority, then as listed): a rule's index is its
    # place, so that candidates() sorts by index alone.
    ordered = [config.rules[i] for i in match_order(config.rules)]
    rules = [
        compile_rule(rule, i, services, redis, warnings, catalog, models, config.gateway.name)
        for i, rule in enumerate(ordered)
    ]
    rules = keep_examples(rules, previous)

    exact: dict[str, list[int]] = {}
    globs: list[tuple[int, re.Pattern[str]]] = []
    for rule, source in zip(rules, ordered, strict=True):
        # A rule without model patterns matches every model (a catch-all).
        for pattern in source.match.models or ["*"]:
            if is_glob(pattern):
                globs.append((rule.index, re.compile(fnmatch.translate(pattern))))
            else:
                exact.setdefault(pattern, []).append(rule.index)

    warnings += embedder_warnings(config.rules, exact, globs)
    keys: dict[bytes, ConsumerEntry] = {}
    by_name: dict[str, ConsumerEntry] = {}
    certificates: dict[str, ConsumerEntry] = {}
    groups = {
        g.name: GroupEntry(
            frozenset(g.rules) if g.rules is not None else None,
            limits_of(f"group:{g.name}", "global", g.limits, g.budget),
        )
        for g in config.groups
    }
    for consumer in config.consumers:
        allowed = frozenset(consumer.rules) if consumer.rules is not None else None
        limits = limits_of(
            f"consumer:{consumer.name}", "consumer", consumer.limits, consumer.budget
        )
        for name in consumer.groups:  # the narrower wins: rules intersect, limits add up
            group = groups[name]
            allowed = narrower(allowed, group.rules)
            limits += group.limits
        entry = ConsumerEntry(
            consumer.name,
            allowed,
            models_body(rules, allowed),
            limits,
            passthrough=frozenset(consumer.passthrough),
            realtime_sessions=consumer.realtime_sessions,
            groups=frozenset(consumer.groups),
        )
        by_name[consumer.name] = entry
        for key in consumer.keys:
            keys[hash_key(key, key_secret)] = entry
        certificates.update(dict.fromkeys(consumer.mtls_subjects, entry))
    anonymous = _anonymous(config, rules, warnings)

    jwt = _jwt_verifier(config, warnings, previous)
    return RoutingTable(
        gateway=config.gateway.name,
        max_body_bytes=config.gateway.max_body_bytes,
        body_timeout=config.gateway.body_timeout,
        header_timeout=config.gateway.header_timeout,
        max_header_bytes=config.gateway.max_header_bytes,
        max_headers=config.gateway.max_headers,
        cors=_cors(config),
        rules=tuple(rules),
        exact={k: tuple(v) for k, v in exact.items()},
        globs=tuple(globs),
        keys=keys,
        anonymous=anonymous,
        services=services,
        matches_headers=any(r.headers for r in rules),
        pools=tuple(pools.values()),
        probes=probes,
        prices=prices,
        media_prices=media_prices(config),
        models=models,
        access_log=config.gateway.access_log,
        limits=_gateway_limits(config),
        redis=config.gateway.redis,
        redis_failure=config.gateway.redis_failure,
        estimate_max_tokens=config.gateway.estimate_max_tokens,
        warnings=tuple(warnings),
        consumers=by_name,
        key_secret=key_secret,
        groups=groups,
        jwt=jwt,
        certificates=certificates,
    )
