"""The caches of one runtime: lookups before a request is forwarded, stores after.

``Caches`` outlives routing tables (a config change keeps every entry): the
in-process LRU and vector index, one Redis client per URL, the local embedder.
A rule's compiled ``CachePlan`` says which of them it uses. Nothing here runs
for a rule without a cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluicegate.cache.answers import Capture, Entry, answer_of
from sluicegate.cache.embedder import LocalEmbedder, Route, routed_embedding
from sluicegate.cache.keys import Scope, exact_key, semantic_parts
from sluicegate.cache.lru import ByteLRU
from sluicegate.cache.policy import CachePlan
from sluicegate.cache.redis_store import RedisCache
from sluicegate.cache.semantic import MemoryIndex
from sluicegate.errors import ConfigError, GatewayError, InvalidRequest
from sluicegate.schema.chat import make_usage
from sluicegate.telemetry.usage import TokenCounts

if TYPE_CHECKING:
    from sluicegate.cache.minilm import Vector
    from sluicegate.dialects.base import Parsed

log = logging.getLogger("sluicegate.cache")

# The largest answer kept (as sent to the client); longer ones are served, not stored.
MAX_ANSWER_BYTES = 1024 * 1024


@dataclass(slots=True)
class Control:
    """What the client's headers ask of the cache."""

    lookup: bool = True
    store: bool = True
    ttl: float | None = None


def read_control(headers: list[tuple[bytes, bytes]]) -> Control:
    control = Control()
    for name, value in headers:
        if name == b"cache-control":
            words = {w.strip().lower() for w in value.decode("latin-1").split(",")}
            if "no-store" in words:
                control.lookup = control.store = False
            elif "no-cache" in words:
                control.lookup = False
        elif name == b"x-sluicegate-cache-ttl":
            try:
                ttl = float(value)
            except ValueError:
                ttl = -1.0
            if not ttl > 0:
                raise InvalidRequest(
                    "x-sluicegate-cache-ttl must be a positive number of seconds",
                    param="x-sluicegate-cache-ttl",
                )
            control.ttl = ttl
    return control


@dataclass(slots=True)
class Lookup:
    """One request's way through the cache, from lookup to store."""

    plan: CachePlan
    scope: Scope
    control: Control
    service: str  # the service and model the key was made for
    model: str
    key: str = ""
    partition: str | None = None
    vector: Vector | None = None
    result: str = "bypass"  # "hit" | "miss" | "bypass": the x-sluicegate-cache header
    entry: Entry | None = None
    similarity: float | None = None

    @property
    def ttl(self) -> float:
        wanted = self.control.ttl
        return self.plan.ttl if wanted is None else min(wanted, self.plan.ttl)


class Caches:
    def __init__(self, max_bytes: int) -> None:
        self.index = MemoryIndex()
        self.lru = ByteLRU(max_bytes, on_evict=self.index.remove)
        self.local = LocalEmbedder()
        self._redis: dict[str, RedisCache] = {}

    def redis(self, url: str) -> RedisCache:
        # Made on first use, inside the event loop the client belongs to.
        client = self._redis.get(url)
        if client is None:
            client = self._redis[url] = RedisCache(url)
        return client

    async def close(self) -> None:
        for client in self._redis.values():
            await client.close()
        self._redis = {}

    async def embed(self, plan: CachePlan, text: str, route: Route | None) -> Vector | None:
        """The vector of ``text``; None (an exact lookup only) when the embedder failed."""
        try:
            if plan.embedder is None:
                return await self.local.embed(text)
            if route is None:
                return None
            return await routed_embedding(route, plan.embedder, text)
        except GatewayError as exc:
            log.warning("cache: the embedder failed (%s); looking up exactly", exc.message)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("cache: the embedder's answer was unreadable (%s)", type(exc).__name__)
        except ConfigError as exc:  # the local model is not installed
            log.error("cache: %s", "; ".join(exc.issues))
        return None

    async def lookup(
        self,
        plan: CachePlan,
        scope: Scope,
        control: Control,
        service: str,
        model: str,
        parsed: Parsed,
        forwarded: dict[str, str],
        route: Route | None = None,
    ) -> Lookup:
        found = Lookup(plan, scope, control, service, model)
        if not (control.lookup or control.store):
            return found
        body = parsed.canonical
        found.key = exact_key(scope, service, model, body, forwarded)
        if plan.mode == "semantic":
            parts = semantic_parts(scope, service, model, body, forwarded)
            if parts is not None:
                found.partition, text = parts
                found.vector = await self.embed(plan, text, route)
        if not control.lookup:
            return found
        found.result = "miss"
        value = await self._get(plan, scope.gateway, found.key)
        if value is None and found.vector is not None and found.partition is not None:
            near = await self._nearest(plan, scope.gateway, found.partition, found.vector)
            if near is not None and near[1] >= plan.threshold:
                value = await self._get(plan, scope.gateway, near[0])
                if value is not None:
                    found.similarity = near[1]
        if value is not None:
            found.result, found.entry = "hit", Entry.loads(value)
        return found

    async def _get(self, plan: CachePlan, gateway: str, key: str) -> bytes | None:
        if plan.redis is not None:
            return await self.redis(plan.redis).get(gateway, key)
        return self.lru.get(key)

    async def _nearest(
        self, plan: CachePlan, gateway: str, partition: str, vector: Vector
    ) -> tuple[str, float] | None:
        if plan.redis is not None:
            return await self.redis(plan.redis).nearest(gateway, partition, vector)
        return self.index.nearest(partition, vector)

    async def store(
        self,
        found: Lookup,
        capture: Capture,
        dialect: str,
        stream: bool,
        answered_by: tuple[str, str, str],
        parsed: Parsed,
        forwarded: dict[str, str],
        usage: TokenCounts | None = None,
    ) -> bool:
        """Keep the answer the client was sent; False when it is not one to keep. ``usage``:
        the provider's, for a stream whose client did not ask for it (a hit still tells
        the tokens it saved, and answers a client that does ask)."""
        if not found.control.store or capture.overflowed:
            return False
        answer = answer_of(dialect, stream, capture.data)
        if answer is None:
            return False
        if not answer.get("usage") and usage is not None and not usage.estimated:
            answer["usage"] = make_usage(
                usage.input,
                usage.output,
                cached=usage.cached or None,
                cache_creation=usage.cache_write or None,
                reasoning=usage.reasoning or None,
            )
        service, provider, model = answered_by
        key, partition = found.key, found.partition
        if (service, model) != (found.service, found.model):  # a fallback answered
            key = exact_key(found.scope, service, model, parsed.canonical, forwarded)
            if partition is not None:
                parts = semantic_parts(found.scope, service, model, parsed.canonical, forwarded)
                partition = parts[0] if parts is not None else None
        value = Entry(service, provider, model, answer).dumps()
        plan, gateway, vector = found.plan, found.scope.gateway, found.vector
        if plan.redis is not None:
            with_vector = None if vector is None or partition is None else (partition, vector)
            await self.redis(plan.redis).put(gateway, key, value, found.ttl, with_vector)
            return True
        extra = vector.nbytes if vector is not None else 0
        if not self.lru.put(key, value, found.ttl, extra):
            return False
        if vector is not None and partition is not None:
            self.index.add(partition, key, vector)
        return True
