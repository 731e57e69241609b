"""A rule's cache policy, compiled once with its rule."""

from __future__ import annotations

from dataclasses import dataclass

from sluicegate.config.model import CachePolicy
from sluicegate.errors import ConfigError

# Similarity (cosine, unit vectors) from which a semantic lookup is a hit, when the
# rule sets none. Chosen on all-MiniLM-L6-v2: paraphrases of a question score about
# 0.9 and above, the same question about another subject about 0.65 to 0.75.
DEFAULT_THRESHOLD = 0.88


@dataclass(frozen=True, slots=True)
class CachePlan:
    mode: str  # "exact" | "semantic"
    ttl: float
    threshold: float
    per_consumer: bool  # the default: ``scope: rule`` shares entries among consumers
    redis: str | None  # the gateway's Redis when the entries live there
    embedder: str | None  # None: the local model; else a model this gateway routes


def compile_cache(
    policy: CachePolicy | None, redis: str | None, rule: str, warnings: list[str]
) -> CachePlan | None:
    if policy is None or policy.mode == "off":
        return None
    if policy.mode == "semantic" and policy.embedder is None:
        from sluicegate.cache.minilm import INSTALL_HINT, model_dir

        try:
            model_dir()
        except ConfigError:
            warnings.append(
                f"rules[{rule}].policies.cache: {INSTALL_HINT}; until then lookups are exact"
            )
    backend = policy.backend or ("redis" if redis else "memory")
    if backend == "redis" and not redis:
        warnings.append(
            f"rules[{rule}].policies.cache.backend: redis needs gateway.redis; "
            "the cache stays in this process"
        )
        backend = "memory"
    return CachePlan(
        mode=policy.mode,
        ttl=policy.ttl,
        threshold=policy.threshold if policy.threshold is not None else DEFAULT_THRESHOLD,
        per_consumer=policy.scope == "consumer",
        redis=redis if backend == "redis" else None,
        embedder=policy.embedder,
    )
