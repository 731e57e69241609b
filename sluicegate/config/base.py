"""The building blocks of the config models: strict models, durations, names, secrets."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.json_schema import WithJsonSchema

from sluicegate.config.durations import parse_duration

# Input schemas (the Admin API's) say what the parser takes; answers are always seconds.
_DURATION_INPUT = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?(ms|s|m|h|d|w)?)+\s*$"},
    ],
    "description": "seconds, or a duration such as 500ms, 30s, 5m, 1h30m, 1d",
}
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(_DURATION_INPUT, mode="validation"),
]
Name = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
]


# Unknown fields are errors; a validated model never changes. (A comment, not a
# docstring: pydantic would put a docstring in every subclass's JSON schema.)
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def secret(**kwargs: Any) -> Any:
    """A field that is never shown in a repr (a log line, a traceback)."""
    return Field(default=None, repr=False, **kwargs)
