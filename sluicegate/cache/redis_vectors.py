"""The semantic cache's vector index in Redis: native search where the server has it.

Which index a Redis gets is found once, by asking the server (``detect``):

- ``search``: the query engine (Redis Stack, or Redis 8 built with it: ``FT.*``).
  One index per vector size, shared by every gateway, over hashes
  ``sluicegate:cache:vec<dim>:<gateway>:<entry>`` holding a tag for the
  gateway and partition (a digest of both, so no gateway can ask for
  another's vectors), the expiry time and the vector; a lookup is one
  ``FT.SEARCH`` KNN query restricted to the tag and to unexpired vectors.
  Each hash also carries its entry's TTL, so expired vectors leave the index.
- ``vectorset``: Redis 8's vector sets (``VADD``/``VSIM``). A partition is one
  set ``sluicegate:cache:<gateway>:vs<dim>:<partition>``; each element carries
  its expiry time as an attribute that the lookup filters on. Every store
  into a set of some size first removes the expired elements nearest the new
  vector, where lookups like it will look, and a set is capped.
- ``scan``: any other Redis (and Redis Cluster, whose shards cannot search
  together). A partition is one hash of vectors
  (``sluicegate:cache:<gateway>:v<dim>:<partition>``) read in one round trip
  and compared in the gateway, capped at ``MAX_PARTITION`` vectors.

Keys name the vector size: a rule whose embedder changes starts new
partitions instead of mixing sizes. Every similarity here is the cosine of
unit vectors, whichever index gave it.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import time
from typing import TYPE_CHECKING, Any, Protocol

from redis.exceptions import RedisError, ResponseError

if TYPE_CHECKING:
    from sluicegate.cache.minilm import Vector

PREFIX = "sluicegate:cache:"
MAX_PARTITION = 2048  # scan: vectors per partition, so that a lookup stays one bounded read
MAX_SET = 16384  # vectorset: elements per partition (about 2.3 KB each at 384 floats)
SWEEP_FROM = 256  # vectorset: sets this large are swept near each new vector
_SWEEP = 64  # vectorset: expired elements removed per sweep
_FILTER_EF = 1000  # vectorset: candidates a filtered lookup may examine
_EXPIRY = struct.Struct("<d")


class VectorIndex(Protocol):
    kind: str

    async def room(self, gateway: str, partition: str, vector: Vector) -> bool:
        """Whether a new vector may join ``partition``."""

    def stage(
        self, pipe: Any, gateway: str, partition: str, key: str, vector: Vector, ttl: float
    ) -> None:
        """Add the commands that index ``vector`` (for entry ``key``) to ``pipe``."""

    async def nearest(
        self, gateway: str, partition: str, vector: Vector
    ) -> tuple[str, float] | None:
        """The entry key nearest to ``vector`` in ``partition`` and its similarity."""


async def detect(client: Any, cluster: bool) -> VectorIndex:
    """The best index this Redis offers. Raises RedisError/OSError when it cannot be asked."""
    if not cluster:
        try:
            await client.execute_command("FT._LIST")
            return SearchIndex(client)
        except ResponseError:  # unknown command: no query engine
            pass
    try:
        await client.execute_command("VCARD", f"{PREFIX}probe")
        return VectorSetIndex(client)
    except ResponseError:
        return ScanIndex(client)


def ttl_millis(ttl: float) -> int:
    return max(int(ttl * 1000), 1)


def _outlive(pipe: Any, name: str, ttl: float) -> None:
    """A key of many vectors lives as long as its newest one (``ttl`` from now)."""
    pipe.pexpire(name, ttl_millis(ttl), gt=True)
    pipe.pexpire(name, ttl_millis(ttl), nx=True)  # GT alone does not set a first TTL


class ScanIndex:
    kind = "scan"

    def __init__(self, client: Any) -> None:
        self.client = client

    @staticmethod
    def name(gateway: str, partition: str, size: int) -> str:
        return f"{PREFIX}{gateway}:v{size}:{partition}"

    async def room(self, gateway: str, partition: str, vector: Vector) -> bool:
        count: int = await self.client.hlen(self.name(gateway, partition, vector.size))
        return count < MAX_PARTITION

    def stage(
        self, pipe: Any, gateway: str, partition: str, key: str, vector: Vector, ttl: float
    ) -> None:
        name = self.name(gateway, partition, vector.size)
        pipe.hset(name, key, _EXPIRY.pack(time.time() + ttl) + vector.tobytes())
        _outlive(pipe, name, ttl)  # old vectors are pruned on read

    async def nearest(
        self, gateway: str, partition: str, vector: Vector
    ) -> tuple[str, float] | None:
        import numpy as np

        name = self.name(gateway, partition, vector.size)
        fields: dict[bytes, bytes] = await self.client.hgetall(name)
        now = time.time()
        keys: list[str] = []
        rows: list[Vector] = []
        stale: list[bytes] = []
        for field, value in fields.items():
            (expires,) = _EXPIRY.unpack_from(value)
            if expires <= now:
                stale.append(field)
                continue
            keys.append(field.decode())
            rows.append(np.frombuffer(value, dtype=np.float32, offset=_EXPIRY.size))
        if stale:
            with contextlib.suppress(RedisError, OSError):
                await self.client.hdel(name, *stale)
        if not rows:
            return None
        scores = np.stack(rows) @ vector
        best = int(scores.argmax())
        return keys[best], float(scores[best])


class SearchIndex:
    kind = "search"

    def __init__(self, client: Any) -> None:
        self.client = client
        self._made: set[int] = set()  # the vector sizes whose index exists

    @staticmethod
    def index(size: int) -> str:
        return f"{PREFIX}idx{size}"

    @staticmethod
    def prefix(size: int) -> str:
        return f"{PREFIX}vec{size}:"

    async def room(self, gateway: str, partition: str, vector: Vector) -> bool:
        size = vector.size
        if size not in self._made:
            try:
                await self.client.execute_command(
                    "FT.CREATE", self.index(size),
                    "ON", "HASH", "PREFIX", "1", self.prefix(size),
                    "SCHEMA", "p", "TAG", "e", "NUMERIC",
                    "v", "VECTOR", "HNSW", "6",
                    "TYPE", "FLOAT32", "DIM", str(size), "DISTANCE_METRIC", "COSINE",
                )  # fmt: skip
            except ResponseError as exc:
                if "already exists" not in str(exc):
                    raise
            self._made.add(size)
        return True  # HNSW needs no cap; expired vectors leave by their TTL

    def stage(
        self, pipe: Any, gateway: str, partition: str, key: str, vector: Vector, ttl: float
    ) -> None:
        name = f"{self.prefix(vector.size)}{gateway}:{key}"
        expires = time.time() + ttl
        tag = _tag(gateway, partition)
        pipe.hset(name, mapping={"p": tag, "e": expires, "v": vector.tobytes()})
        pipe.pexpire(name, ttl_millis(ttl))

    async def nearest(
        self, gateway: str, partition: str, vector: Vector
    ) -> tuple[str, float] | None:
        # The tag is a hex digest: nothing in it needs escaping in a query. The expiry
        # filter skips a vector whose key expired but is not deleted yet, which would
        # otherwise hide the live one behind it.
        tag = _tag(gateway, partition)
        query = f"(@p:{{{tag}}} @e:[({time.time()} +inf])=>[KNN 1 @v $q AS d]"
        try:
            reply = await self.client.execute_command(
                "FT.SEARCH", self.index(vector.size), query,
                "PARAMS", "2", "q", vector.tobytes(),
                "RETURN", "1", "d", "DIALECT", "2",
            )  # fmt: skip
        except ResponseError as exc:
            if "no such index" in str(exc).lower():  # nothing stored yet, or Redis restarted
                self._made.discard(vector.size)
                return None
            raise
        found = _first_hit(reply)
        if found is None:
            return None
        name, distance = found
        return name.rpartition(":")[2], 1.0 - distance


def _tag(gateway: str, partition: str) -> str:
    return hashlib.blake2b(f"{gateway}\x00{partition}".encode(), digest_size=20).hexdigest()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _first_hit(reply: Any) -> tuple[str, float] | None:
    """(document, distance) of an FT.SEARCH reply in either protocol, or None."""
    if isinstance(reply, dict):  # RESP3: {results: [{id, extra_attributes: {d}}]}
        results = reply.get(b"results", reply.get("results")) or []
        if not results:
            return None
        hit = results[0]
        fields = hit.get(b"extra_attributes", hit.get("extra_attributes")) or {}
        distance = fields.get(b"d", fields.get("d"))
        return _text(hit.get(b"id", hit.get("id"))), float(_text(distance))
    if not reply or not reply[0]:  # RESP2: [total, id, [field, value, ...], ...]
        return None
    fields = reply[2]
    values = {_text(fields[i]): fields[i + 1] for i in range(0, len(fields) - 1, 2)}
    return _text(reply[1]), float(_text(values["d"]))


class VectorSetIndex:
    kind = "vectorset"

    def __init__(self, client: Any) -> None:
        self.client = client

    @staticmethod
    def name(gateway: str, partition: str, size: int) -> str:
        return f"{PREFIX}{gateway}:vs{size}:{partition}"

    async def room(self, gateway: str, partition: str, vector: Vector) -> bool:
        name = self.name(gateway, partition, vector.size)
        count = int(await self.client.execute_command("VCARD", name))
        if count < SWEEP_FROM:
            return True
        stale = await self._similar(name, vector, _SWEEP, f".exp <= {time.time()}")
        if stale:
            async with self.client.pipeline(transaction=False) as pipe:
                for element in stale:  # VREM takes one element
                    pipe.execute_command("VREM", name, element)
                await pipe.execute()
        return count - len(stale) < MAX_SET

    def stage(
        self, pipe: Any, gateway: str, partition: str, key: str, vector: Vector, ttl: float
    ) -> None:
        name = self.name(gateway, partition, vector.size)
        expires = f'{{"exp": {time.time() + ttl}}}'
        # NOQUANT: similarities must be those of the vectors themselves, as in the other
        # indexes; the default 8-bit quantisation moves them by about 0.01.
        pipe.execute_command(
            "VADD", name, "FP32", vector.tobytes(), key, "NOQUANT", "SETATTR", expires
        )
        _outlive(pipe, name, ttl)

    async def nearest(
        self, gateway: str, partition: str, vector: Vector
    ) -> tuple[str, float] | None:
        name = self.name(gateway, partition, vector.size)
        found = await self._similar(name, vector, 1, f".exp > {time.time()}", scores=True)
        if not found:
            return None
        key, score = found[0]
        # A vector set scores (1 + cosine) / 2, from 0 (opposite) to 1 (the same).
        return key, 2.0 * score - 1.0

    async def _similar(
        self, name: str, vector: Vector, count: int, where: str, scores: bool = False
    ) -> list[Any]:
        args: list[Any] = ["VSIM", name, "FP32", vector.tobytes()]
        if scores:
            args.append("WITHSCORES")
        args += ["COUNT", str(count), "FILTER", where, "FILTER-EF", str(_FILTER_EF)]
        reply = await self.client.execute_command(*args)
        if not scores:
            return [_text(e) for e in reply]
        if isinstance(reply, dict):  # RESP3 (and redis-py's parsing of RESP2) give a map
            return [(_text(k), float(v)) for k, v in reply.items()]
        return [(_text(reply[i]), float(reply[i + 1])) for i in range(0, len(reply) - 1, 2)]
