"""Guardrails and transforms as the config declares them (``policies.guardrails``,
``policies.transform``); ``sluicegate.guardrails`` compiles them (docs/guardrails.md)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from sluicegate.config.base import Name, Strict

GuardAction = Literal["redact", "block", "log", "off"]
# The entity types a PII guardrail knows (docs/guardrails.md); person and location need
# the ``presidio`` extra.
PII_TYPES = (
    "email",
    "phone",
    "credit_card",
    "iban",
    "us_ssn",
    "ip_address",
    "secret",
    "person",
    "location",
)


def _pii_actions(value: Any) -> Any:
    if isinstance(value, dict):
        for name in value:
            if name != "default" and name not in PII_TYPES:
                raise ValueError(
                    f"'{name}' is not an entity type; use default or one of: {', '.join(PII_TYPES)}"
                )
    return value


PiiActions = Annotated[GuardAction | dict[str, GuardAction], AfterValidator(_pii_actions)]


class DenyRule(Strict):
    """Words or regular expressions that a prompt or an answer may not contain."""

    name: Name
    words: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)  # regular expressions
    case_sensitive: bool = False
    # Not "on": YAML reads that key as the boolean true.
    applies_to: Literal["request", "response", "both"] = "both"
    action: Literal["block", "redact", "log"] = "block"

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        import regex

        for pattern in value:
            try:
                compiled = regex.compile(pattern)
            except regex.error as exc:
                raise ValueError(f"'{pattern}' is not a regular expression: {exc}") from None
            if compiled.match(""):
                raise ValueError(f"'{pattern}' matches the empty text")
        return value

    @model_validator(mode="after")
    def _something(self) -> DenyRule:
        if not self.words and not self.patterns:
            raise ValueError("name at least one of words or patterns")
        return self


class NumberRange(Strict):
    min: float | None = None
    max: float | None = None


class ParamSchema(Strict):
    """What a request's parameters may be; a request outside it gets a 400 naming the
    parameter."""

    models: list[str] | None = None  # the client's model: names or glob patterns
    max_tokens: int | None = Field(default=None, ge=1)  # also max_completion_tokens
    temperature: NumberRange | None = None
    top_p: NumberRange | None = None
    forbidden: list[str] = Field(default_factory=list)


class GuardrailsPolicy(Strict):
    pii: PiiActions = "off"  # on requests: one action, or per type with an optional default
    pii_answers: PiiActions = "off"  # the same, on answers
    restore: bool = False  # put the values back where an answer names their placeholders
    presidio: bool = False  # names and addresses too (the presidio extra)
    deny: list[DenyRule] = Field(default_factory=list)
    max_prompt_tokens: int | None = Field(default=None, ge=1)
    params: ParamSchema | None = None
    refusal: str = Field(default="The answer was withheld by the gateway's content policy.")
    stream_hold: int = Field(default=4096, ge=16, le=1_048_576)  # characters held at most

    @model_validator(mode="after")
    def _consistent(self) -> GuardrailsPolicy:
        actions = self.pii.values() if isinstance(self.pii, dict) else [self.pii]
        if self.restore and "redact" not in actions:
            raise ValueError("restore needs pii: redact (for at least one type)")
        named = [
            name
            for setting in (self.pii, self.pii_answers)
            if isinstance(setting, dict)
            for name, action in setting.items()
            if name in ("person", "location") and action != "off"
        ]
        if named and not self.presidio:
            raise ValueError(f"{named[0]} needs presidio: true (the presidio extra)")
        if self.presidio:
            import importlib.util

            if importlib.util.find_spec("presidio_analyzer") is None:
                raise ValueError(
                    "presidio: the presidio extra is not installed "
                    "(pip install 'sluicegate[presidio]')"
                )
        return self


# Set by the gateway itself, or by the ASGI server: a transform may not touch them.
_FIXED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "content-type"}
)


def _header_name(name: str) -> str:
    lowered = name.strip().lower()
    if not lowered or not re.fullmatch(r"[a-z0-9!#$%&'*+.^_`|~-]+", lowered):
        raise ValueError(f"'{name}' is not a header name")
    if lowered in _FIXED_HEADERS:
        raise ValueError(f"'{name}' is set by the gateway and cannot be transformed")
    return lowered


class HeaderOps(Strict):
    add: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)
    rename: dict[str, str] = Field(default_factory=dict)  # old name -> new name

    @model_validator(mode="after")
    def _names(self) -> HeaderOps:
        for name in (*self.add, *self.remove, *self.rename, *self.rename.values()):
            _header_name(name)
        return self


# Parameters a transform may not set, default or remove: the model has ``models``, and
# the rest change what the request is rather than how it is asked.
_FIXED_PARAMS = frozenset({"model", "messages", "stream", "prompt", "input", "system"})


class TransformPolicy(Strict):
    params: dict[str, Any] = Field(default_factory=dict)  # set, whatever the client sent
    defaults: dict[str, Any] = Field(default_factory=dict)  # set when the client sent none
    remove: list[str] = Field(default_factory=list)
    models: dict[str, str] = Field(default_factory=dict)  # the client's name -> the one sent
    system_prefix: str | None = None
    system_suffix: str | None = None
    request_headers: HeaderOps | None = None  # to the upstream
    response_headers: HeaderOps | None = None  # to the client
    tags: dict[str, str] = Field(default_factory=dict)  # audit tag -> request header

    @model_validator(mode="after")
    def _params(self) -> TransformPolicy:
        for name in (*self.params, *self.defaults, *self.remove):
            if name in _FIXED_PARAMS:
                raise ValueError(
                    f"'{name}' cannot be transformed"
                    + ("; rename models with transform.models" if name == "model" else "")
                )
        for header in self.tags.values():
            _header_name(header)
        return self
