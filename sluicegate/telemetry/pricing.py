"""Prices per million tokens, and the cost of one request.

The table covers the common models of every supported provider, with the date
the figures were taken from the providers' public price pages. Prices change:
override or add models under ``pricing:`` in the config. A model is found by
its exact name, then by the longest known prefix (``gpt-4o-mini-2024-07-18``
is priced as ``gpt-4o-mini``), after dropping Bedrock's region and vendor
prefixes (``us.anthropic.claude-sonnet-4-…`` is priced as ``claude-sonnet-4``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from sluicegate.telemetry.usage import TokenCounts

PRICES_AS_OF = "2025-10-01"


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens; ``None`` means priced like plain input/output."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    audio_input: float | None = None  # audio prompt tokens (transcription models)

    def cost(self, usage: TokenCounts) -> float:
        cached = min(usage.cached, usage.input)
        written = min(usage.cache_write, usage.input - cached)
        fresh = usage.input - cached - written
        reasoning = min(usage.reasoning, usage.output) if self.reasoning is not None else 0
        audio = min(usage.audio, fresh) if self.audio_input is not None else 0
        total = (fresh - audio) * self.input
        if self.audio_input is not None:
            total += audio * self.audio_input
        total += cached * (self.cached_input if self.cached_input is not None else self.input)
        total += written * (self.cache_write if self.cache_write is not None else self.input)
        total += (usage.output - reasoning) * self.output
        if self.reasoning is not None:
            total += reasoning * self.reasoning
        return total / 1_000_000


def _p(i: float, o: float, c: float | None = None, w: float | None = None) -> Price:
    return Price(i, o, c, w)


PRICES: dict[str, Price] = {
    # OpenAI (also Azure OpenAI deployments of the same models)
    "gpt-5": _p(1.25, 10.0, 0.125),
    "gpt-5-mini": _p(0.25, 2.0, 0.025),
    "gpt-5-nano": _p(0.05, 0.40, 0.005),
    "gpt-4.1": _p(2.0, 8.0, 0.50),
    "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "gpt-4o": _p(2.50, 10.0, 1.25),
    "gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "o3": _p(2.0, 8.0, 0.50),
    "o3-mini": _p(1.10, 4.40, 0.55),
    "o4-mini": _p(1.10, 4.40, 0.275),
    # Transcription models priced by tokens: text (the prompt) and audio input apart.
    "gpt-4o-transcribe": Price(2.50, 10.0, audio_input=6.0),
    "gpt-4o-mini-transcribe": Price(1.25, 5.0, audio_input=3.0),
    "text-embedding-3-small": _p(0.02, 0.0),
    "text-embedding-3-large": _p(0.13, 0.0),
    # Anthropic (also on Bedrock and Vertex)
    "claude-opus-4": _p(15.0, 75.0, 1.50, 18.75),
    "claude-opus-4-1": _p(15.0, 75.0, 1.50, 18.75),
    "claude-sonnet-4": _p(3.0, 15.0, 0.30, 3.75),
    "claude-sonnet-4-5": _p(3.0, 15.0, 0.30, 3.75),
    "claude-3-7-sonnet": _p(3.0, 15.0, 0.30, 3.75),
    "claude-3-5-sonnet": _p(3.0, 15.0, 0.30, 3.75),
    "claude-haiku-4-5": _p(1.0, 5.0, 0.10, 1.25),
    "claude-3-5-haiku": _p(0.80, 4.0, 0.08, 1.0),
    "claude-3-haiku": _p(0.25, 1.25, 0.03, 0.30),
    # Google
    "gemini-2.5-pro": _p(1.25, 10.0, 0.31),
    "gemini-2.5-flash": _p(0.30, 2.50, 0.075),
    "gemini-2.5-flash-lite": _p(0.10, 0.40, 0.025),
    "gemini-2.0-flash": _p(0.10, 0.40, 0.025),
    "gemini-embedding-001": _p(0.15, 0.0),
    "text-embedding-005": _p(0.025, 0.0),
    # Cohere
    "command-a": _p(2.50, 10.0),
    "command-r-plus": _p(2.50, 10.0),
    "command-r": _p(0.15, 0.60),
    "embed-v4.0": _p(0.12, 0.0),
    "embed-english-v3": _p(0.10, 0.0),
    "cohere.embed-english-v3": _p(0.10, 0.0),
    # Mistral
    "mistral-large": _p(2.0, 6.0),
    "mistral-medium": _p(0.40, 2.0),
    "mistral-small": _p(0.10, 0.30),
    "codestral": _p(0.30, 0.90),
    # Amazon
    "amazon.titan-embed-text-v2": _p(0.02, 0.0),
    "amazon.nova-pro": _p(0.80, 3.20),
    "amazon.nova-lite": _p(0.06, 0.24),
    "amazon.nova-micro": _p(0.035, 0.14),
    # Others (OpenAI-compatible hosts)
    "deepseek-chat": _p(0.27, 1.10, 0.07),
    "deepseek-reasoner": _p(0.55, 2.19, 0.14),
    "grok-4": _p(3.0, 15.0, 0.75),
    "llama-3.3-70b-versatile": _p(0.59, 0.79),
}

_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.", "jp.", "au.")
_VENDOR_PREFIXES = ("anthropic.", "meta.", "mistral.", "cohere.", "openai.")


def normal_name(model: str, known: Mapping[str, object] = PRICES) -> str:
    """``model`` without an ARN's path and Bedrock's region and vendor prefixes (a vendor
    prefix stays when ``known`` has the name with it)."""
    name = model.rsplit("/", 1)[-1]  # ARNs and "models/x" style names
    for prefix in _REGION_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    for prefix in _VENDOR_PREFIXES:
        if name.startswith(prefix) and name not in known:
            return name[len(prefix) :]
    return name


T = TypeVar("T")


class ByName(Generic[T]):
    """A model's entry by name: as asked, then as ``normal`` writes it, then under the
    longest name it begins with; each answer remembered (bounded: models come from the
    config, the providers and the clients' requests of rules that match them)."""

    def __init__(
        self,
        entries: Mapping[str, T],
        normal: Callable[[str, Mapping[str, T]], str] = normal_name,
    ) -> None:
        self.entries = entries
        self.normal = normal
        self._keys = sorted(entries, key=len, reverse=True)
        self._found: dict[str, T | None] = {}

    def get(self, model: str) -> T | None:
        if model in self._found:
            return self._found[model]
        entries = self.entries
        found = entries.get(model)
        if found is None:
            name = self.normal(model, entries)
            found = entries.get(name)
            if found is None:
                found = next((entries[k] for k in self._keys if name.startswith(k)), None)
        if len(self._found) < 10_000:
            self._found[model] = found
        return found


class PriceTable:
    """The package's prices with the config's ``pricing:`` overrides on top."""

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self._prices = {**PRICES, **(overrides or {})}
        self._by_name = ByName(self._prices)

    def names(self) -> tuple[str, ...]:
        """Every model the table knows by name (the catalog ``/v1/models`` draws on)."""
        return tuple(self._prices)

    def price(self, model: str) -> Price | None:
        return self._by_name.get(model)

    def cost(self, model: str | None, usage: TokenCounts | None) -> float | None:
        if model is None or usage is None:
            return None
        price = self.price(model)
        return None if price is None else price.cost(usage)
