"""Transforms (``policies.transform``): rewrite a request's parameters, model and system
prompt, the headers sent upstream and answered to the client, and tag the audit row."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluicegate.config.guardrails import HeaderOps, TransformPolicy

_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class HeaderEdit:
    add: tuple[tuple[str, str], ...]
    remove: frozenset[str]
    rename: tuple[tuple[str, str], ...]  # (old, new), lower case

    @classmethod
    def of(cls, ops: HeaderOps | None) -> HeaderEdit | None:
        if ops is None or not (ops.add or ops.remove or ops.rename):
            return None
        return cls(
            add=tuple((k.lower(), v) for k, v in ops.add.items()),
            remove=frozenset(n.lower() for n in ops.remove),
            rename=tuple((k.lower(), v.lower()) for k, v in ops.rename.items()),
        )

    def upstream(self, headers: dict[str, str], client: list[tuple[bytes, bytes]]) -> None:
        """Edit the provider request's headers; ``rename`` takes the value of the client's
        header of the old name (the client's headers are otherwise not sent on)."""
        for old, new in self.rename:
            found = next((v for k, v in client if k.decode("latin-1") == old), None)
            if found is not None:
                _drop(headers, old)
                headers[new] = found.decode("latin-1")
        for name in self.remove:
            _drop(headers, name)
        for name, value in self.add:
            _drop(headers, name)
            headers[name] = value

    def answer(self, out: list[tuple[bytes, bytes]]) -> None:
        """Edit the headers of the answer to the client, in place."""
        for old, new in self.rename:
            key, to = old.encode(), new.encode()
            out[:] = [(to if k == key else k, v) for k, v in out]
        if self.remove:
            gone = {n.encode() for n in self.remove}
            out[:] = [(k, v) for k, v in out if k not in gone]
        for name, value in self.add:
            key = name.encode()
            out[:] = [(k, v) for k, v in out if k != key]
            out.append((key, value.encode("latin-1")))


def _drop(headers: dict[str, str], name: str) -> None:
    for key in [k for k in headers if k.lower() == name]:
        del headers[key]


@dataclass(frozen=True, slots=True)
class Transform:
    set: tuple[tuple[str, Any], ...]
    defaults: tuple[tuple[str, Any], ...]
    remove: tuple[str, ...]
    models: Mapping[str, str]
    system_prefix: str | None
    system_suffix: str | None
    request_headers: HeaderEdit | None
    response_headers: HeaderEdit | None
    tags: tuple[tuple[str, bytes], ...]  # (tag, client header name)

    @classmethod
    def of(cls, policy: TransformPolicy | None) -> Transform | None:
        if policy is None:
            return None
        return cls(
            set=tuple(policy.params.items()),
            defaults=tuple(policy.defaults.items()),
            remove=tuple(policy.remove),
            models=dict(policy.models),
            system_prefix=policy.system_prefix or None,
            system_suffix=policy.system_suffix or None,
            request_headers=HeaderEdit.of(policy.request_headers),
            response_headers=HeaderEdit.of(policy.response_headers),
            tags=tuple((tag, header.lower().encode()) for tag, header in policy.tags.items()),
        )

    @property
    def edits_body(self) -> bool:
        return bool(
            self.set
            or self.defaults
            or self.remove
            or self.models
            or self.system_prefix
            or self.system_suffix
        )

    def body(self, dialect: str, endpoint: str, native: dict[str, Any]) -> bool:
        """Edit the client's body in place; whether anything changed."""
        changed = False
        for name, value in self.set:
            if native.get(name, _MISSING) != value:
                native[name] = copy.deepcopy(value)
                changed = True
        for name, value in self.defaults:
            if name not in native:
                native[name] = copy.deepcopy(value)
                changed = True
        for name in self.remove:
            if name in native:
                del native[name]
                changed = True
        model = native.get("model")
        if isinstance(model, str) and model in self.models:
            native["model"] = self.models[model]
            changed = True
        if (self.system_prefix or self.system_suffix) and endpoint in ("chat", "responses"):
            if dialect == "anthropic":
                _anthropic_system(native, self.system_prefix, self.system_suffix)
            elif dialect == "responses":  # its system prompt is the instructions
                text = native.get("instructions")
                native["instructions"] = _joined(
                    self.system_prefix, text if isinstance(text, str) else "", self.system_suffix
                )
            else:
                _openai_system(native, self.system_prefix, self.system_suffix)
            changed = True
        return changed

    def tags_of(self, headers: list[tuple[bytes, bytes]]) -> dict[str, str] | None:
        if not self.tags:
            return None
        found: dict[str, str] = {}
        for tag, wanted in self.tags:
            value = next((v for k, v in headers if k == wanted), None)
            if value is not None:
                found[tag] = value.decode("latin-1")[:256]
        return found or None


_MISSING = object()


def _joined(prefix: str | None, text: str, suffix: str | None) -> str:
    parts = [p for p in (prefix, text, suffix) if p]
    return _SEPARATOR.join(parts)


def _framed(value: Any, prefix: str | None, suffix: str | None) -> Any:
    """A system prompt (text, or a list of content blocks) between prefix and suffix."""
    if isinstance(value, list):
        if prefix:
            value.insert(0, {"type": "text", "text": prefix})
        if suffix:
            value.append({"type": "text", "text": suffix})
        return value
    return _joined(prefix, value if isinstance(value, str) else "", suffix)


def _openai_system(body: dict[str, Any], prefix: str | None, suffix: str | None) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for message in messages:
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            message["content"] = _framed(message.get("content"), prefix, suffix)
            return
    messages.insert(0, {"role": "system", "content": _joined(prefix, "", suffix)})


def _anthropic_system(body: dict[str, Any], prefix: str | None, suffix: str | None) -> None:
    body["system"] = _framed(body.get("system"), prefix, suffix)
