"""The model catalog: what each model can take and do, and what it costs.

Per model: its context window, its largest answer, its prices (``telemetry.pricing``)
and its capabilities. The built-in rows below are the providers' published figures
as of ``PRICES_AS_OF``; the config's ``models:`` (and the Admin API's
``/admin/models``) extend or override them field by field. A model is found as
prices are: by its exact name, then without Bedrock's region and vendor prefixes,
then by the longest known prefix (``gpt-4o-mini-2024-07-18`` is ``gpt-4o-mini``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from sluicegate.telemetry.pricing import PRICES, ByName, Price

T, V, J, R, A = "tools", "vision", "json_schema", "reasoning", "audio"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    context_window: int | None = None  # None: unknown, never a reason to skip it
    max_output: int | None = None
    price: Price | None = None
    capabilities: frozenset[str] | None = None  # None: unknown, assumed able
    source: str = "builtin"  # builtin | file | store
    description: str | None = None

    def able(self, capability: str) -> bool:
        return self.capabilities is None or capability in self.capabilities


def _m(window: int, output: int, *caps: str) -> ModelInfo:
    return ModelInfo(window, output, None, frozenset(caps))


# Windows and largest answers in tokens, from the providers' model pages.
_LIMITS: dict[str, ModelInfo] = {
    "gpt-5": _m(400_000, 128_000, T, V, J, R),
    "gpt-5-mini": _m(400_000, 128_000, T, V, J, R),
    "gpt-5-nano": _m(400_000, 128_000, T, V, J, R),
    "gpt-4.1": _m(1_047_576, 32_768, T, V, J),
    "gpt-4.1-mini": _m(1_047_576, 32_768, T, V, J),
    "gpt-4.1-nano": _m(1_047_576, 32_768, T, V, J),
    "gpt-4o": _m(128_000, 16_384, T, V, J),
    "gpt-4o-mini": _m(128_000, 16_384, T, V, J),
    "o3": _m(200_000, 100_000, T, V, J, R),
    "o3-mini": _m(200_000, 100_000, T, J, R),
    "o4-mini": _m(200_000, 100_000, T, V, J, R),
    "text-embedding-3-small": _m(8_191, 1),
    "text-embedding-3-large": _m(8_191, 1),
    "claude-opus-4": _m(200_000, 32_000, T, V, R),
    "claude-opus-4-1": _m(200_000, 32_000, T, V, J, R),
    "claude-sonnet-4": _m(200_000, 64_000, T, V, R),
    "claude-sonnet-4-5": _m(200_000, 64_000, T, V, J, R),
    "claude-3-7-sonnet": _m(200_000, 64_000, T, V, R),
    "claude-3-5-sonnet": _m(200_000, 8_192, T, V),
    "claude-haiku-4-5": _m(200_000, 64_000, T, V, R),
    "claude-3-5-haiku": _m(200_000, 8_192, T),
    "claude-3-haiku": _m(200_000, 4_096, T, V),
    "gemini-2.5-pro": _m(1_048_576, 65_536, T, V, J, R, A),
    "gemini-2.5-flash": _m(1_048_576, 65_536, T, V, J, R, A),
    "gemini-2.5-flash-lite": _m(1_048_576, 65_536, T, V, J, R, A),
    "gemini-2.0-flash": _m(1_048_576, 8_192, T, V, J, A),
    "gemini-embedding-001": _m(2_048, 1),
    "text-embedding-005": _m(2_048, 1),
    "command-a": _m(256_000, 8_000, T, J),
    "command-r-plus": _m(128_000, 4_000, T, J),
    "command-r": _m(128_000, 4_000, T, J),
    "embed-v4.0": _m(128_000, 1),
    "embed-english-v3": _m(512, 1),
    "cohere.embed-english-v3": _m(512, 1),
    "mistral-large": _m(131_072, 131_072, T, J),
    "mistral-medium": _m(131_072, 131_072, T, V, J),
    "mistral-small": _m(131_072, 131_072, T, V, J),
    "codestral": _m(256_000, 256_000, T, J),
    "amazon.titan-embed-text-v2": _m(8_192, 1),
    "amazon.nova-pro": _m(300_000, 10_000, T, V),
    "amazon.nova-lite": _m(300_000, 10_000, T, V),
    "amazon.nova-micro": _m(128_000, 10_000, T),
    "deepseek-chat": _m(128_000, 8_192, T),
    "deepseek-reasoner": _m(128_000, 64_000, R),
    "grok-4": _m(256_000, 256_000, T, V, J, R),
    "llama-3.3-70b-versatile": _m(131_072, 32_768, T),
}


def builtin() -> dict[str, ModelInfo]:
    """The built-in catalog: every priced model, with its limits where they are known."""
    out = {name: ModelInfo(price=price) for name, price in PRICES.items()}
    for name, info in _LIMITS.items():
        out[name] = replace(info, price=PRICES.get(name))
    return out


@dataclass(frozen=True, slots=True)
class Override:
    """One ``models:`` entry (or a store's): the fields it sets, None for those it keeps."""

    context_window: int | None = None
    max_output: int | None = None
    input: float | None = None
    output: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    audio_input: float | None = None
    capabilities: frozenset[str] | None = None
    source: str = "file"
    description: str | None = None
    whole_price: bool = False  # pricing:'s entries: a price of its own, nothing inherited

    def over(self, base: ModelInfo | None) -> ModelInfo:
        base = base or ModelInfo()
        price = base.price
        fields = (
            self.input,
            self.output,
            self.cached_input,
            self.cache_write,
            self.reasoning,
            self.audio_input,
        )
        if any(f is not None for f in fields):
            old = price if price is not None and not self.whole_price else Price(0.0, 0.0)
            price = Price(
                self.input if self.input is not None else old.input,
                self.output if self.output is not None else old.output,
                self.cached_input if self.cached_input is not None else old.cached_input,
                self.cache_write if self.cache_write is not None else old.cache_write,
                self.reasoning if self.reasoning is not None else old.reasoning,
                self.audio_input if self.audio_input is not None else old.audio_input,
            )
        return ModelInfo(
            self.context_window or base.context_window,
            self.max_output or base.max_output,
            price,
            self.capabilities if self.capabilities is not None else base.capabilities,
            self.source,
            self.description or base.description,
        )


class ModelCatalog:
    """The built-in catalog with overrides on top, in order (``pricing:``, then ``models:``
    of the file, then the store's)."""

    def __init__(self, layers: Iterable[tuple[str, Override]] = ()) -> None:
        self._models = builtin()
        for name, override in layers:
            self._models[name] = override.over(self._models.get(name))
        self._by_name = ByName(self._models)

    def names(self) -> tuple[str, ...]:
        return tuple(self._models)

    def items(self) -> list[tuple[str, ModelInfo]]:
        return sorted(self._models.items())

    def info(self, model: str) -> ModelInfo | None:
        return self._by_name.get(model)

    def prices(self) -> dict[str, Price]:
        return {name: info.price for name, info in self._models.items() if info.price}
