"""A rule's parameter schema and prompt size: checked once per request, before it is sent."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluicegate.config.guardrails import GuardrailsPolicy
from sluicegate.errors import InvalidRequest

# The client may name the completion cap either way (OpenAI's newer name first).
_MAX_TOKENS = ("max_completion_tokens", "max_tokens", "max_output_tokens")  # the last: Responses


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class ParamCheck:
    models: tuple[re.Pattern[str], ...] | None
    max_tokens: int | None
    ranges: tuple[tuple[str, float | None, float | None], ...]
    forbidden: tuple[str, ...]
    max_prompt_tokens: int | None

    @classmethod
    def of(cls, policy: GuardrailsPolicy) -> ParamCheck | None:
        schema = policy.params
        if schema is None and policy.max_prompt_tokens is None:
            return None
        ranges: list[tuple[str, float | None, float | None]] = []
        models = None
        if schema is not None:
            for name in ("temperature", "top_p"):
                bounds = getattr(schema, name)
                if bounds is not None:
                    ranges.append((name, bounds.min, bounds.max))
            if schema.models is not None:
                models = tuple(re.compile(fnmatch.translate(m)) for m in schema.models)
        return cls(
            models=models,
            max_tokens=schema.max_tokens if schema is not None else None,
            ranges=tuple(ranges),
            forbidden=tuple(schema.forbidden) if schema is not None else (),
            max_prompt_tokens=policy.max_prompt_tokens,
        )

    def check(
        self,
        model: str,
        native: dict[str, Any],
        canonical: dict[str, Any],
        count: Callable[[dict[str, Any]], int],
    ) -> None:
        """``InvalidRequest`` naming the first parameter outside the schema."""
        for name in self.forbidden:
            if name in native:
                raise InvalidRequest(
                    f"The parameter '{name}' is not allowed here.",
                    param=name,
                    code="parameter_not_allowed",
                )
        if self.models is not None and not any(p.fullmatch(model) for p in self.models):
            raise InvalidRequest(
                f"The model '{model}' is not allowed here.",
                param="model",
                code="parameter_not_allowed",
            )
        if self.max_tokens is not None:
            for name in _MAX_TOKENS:
                value = _number(native.get(name))
                if value is not None and value > self.max_tokens:
                    raise InvalidRequest(
                        f"{name} may be at most {self.max_tokens} here (asked: {int(value)}).",
                        param=name,
                        code="parameter_out_of_range",
                    )
        for name, low, high in self.ranges:
            value = _number(canonical.get(name))
            if value is None:
                continue
            if (low is not None and value < low) or (high is not None and value > high):
                span = f"between {_fmt(low)} and {_fmt(high)}"
                raise InvalidRequest(
                    f"{name} must be {span} here (asked: {_fmt(value)}).",
                    param=name,
                    code="parameter_out_of_range",
                )
        if self.max_prompt_tokens is not None:
            tokens = count(canonical)
            if tokens > self.max_prompt_tokens:
                where = "prompt" if "prompt" in native else "messages"
                raise InvalidRequest(
                    f"The prompt is about {tokens} tokens; at most {self.max_prompt_tokens} "
                    "are allowed here.",
                    param=where,
                    code="prompt_too_long",
                )


def _fmt(value: float | None) -> str:
    if value is None:
        return "any"
    return str(int(value)) if value == int(value) else str(value)
