"""Prompt tokens, counted before the call to reserve them against token limits.

For OpenAI's model families (``gpt-*``, ``o1``/``o3``/``o4*``,
``text-embedding-*``) the prompt is counted with ``tiktoken`` when it is
installed (the ``tokenizers`` extra) and its encoding loads without the
network: tiktoken downloads its BPE files on first use (and again when a
cached file fails its hash check), so an encoding is only loaded when its file
is already in tiktoken's cache and intact. Any other model,
or any encoding that cannot load, gets the documented approximation: the
prompt's JSON at four bytes per token (docs/limits.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from typing import Any

import orjson

log = logging.getLogger("sluicegate")

_OPENAI_FAMILY = re.compile(r"(?:gpt-|o1|o3|o4|text-embedding-)")

# Where tiktoken's own constructors fetch each encoding, and the SHA-256 they
# expect (tiktoken_ext.openai_public); the cache file's name is the SHA-1 of
# the address.
_BLOBS = {
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
_MODELS_KEPT = 1024  # model names are the clients': the per-model memo is bounded

# OpenAI's accounting for chat: a few tokens of framing per message, and the
# reply's priming.
_PER_MESSAGE = 3
_PRIMING = 3


def approximate(body: dict[str, Any]) -> int:
    """The prompt's JSON (messages, prompt or input) at four bytes per token."""
    prompt = body.get("messages") or body.get("prompt") or body.get("input") or ""
    return len(orjson.dumps(prompt)) // 4


def is_openai_model(model: str) -> bool:
    return _OPENAI_FAMILY.match(model.rsplit("/", 1)[-1]) is not None


def _cache_dir() -> str:
    # tiktoken's own rule (tiktoken.load.read_file_cached).
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return os.environ["TIKTOKEN_CACHE_DIR"]
    if "DATA_GYM_CACHE_DIR" in os.environ:
        return os.environ["DATA_GYM_CACHE_DIR"]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def _encoding_name(tiktoken: Any, model: str) -> str:
    try:
        name: str = tiktoken.encoding_name_for_model(model)
    except KeyError:  # a model newer than the installed tiktoken: the newest encoding
        name = "o200k_base"
    return name


def _cached_intact(name: str) -> bool:
    """Whether ``name``'s file is in tiktoken's cache with the expected hash, so that
    loading it cannot make tiktoken download."""
    if name not in _BLOBS:
        return False
    url, sha256 = _BLOBS[name]
    folder = _cache_dir()
    if folder == "":  # tiktoken's "no cache": every load would download
        return False
    try:
        with open(os.path.join(folder, hashlib.sha1(url.encode()).hexdigest()), "rb") as f:
            data = f.read()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == sha256


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class PromptCounter:
    """One per rate limiter: holds the encodings it has loaded (or failed to)."""

    def __init__(self, enabled: bool = True) -> None:
        self._tiktoken: Any = None
        self._encodings: dict[str, Any] = {}  # name -> encoding, or None when it cannot load
        self._models: dict[str, Any] = {}  # model -> its encoding (or None), once looked up
        self._available: bool | None = None if enabled else False  # None: not tried yet

    def _import(self) -> bool:
        # On the first OpenAI model only: a gateway that never sees one never pays for it.
        try:
            import tiktoken
        except ImportError:
            self._available = False
        else:
            self._tiktoken, self._available = tiktoken, True
        return self._available

    def encoding(self, model: str) -> Any:
        """tiktoken's encoding for ``model``, or None (not OpenAI's, or not loadable offline)."""
        if self._available is False or not is_openai_model(model):
            return None
        if self._available is None and not self._import():
            return None
        if model in self._models:
            return self._models[model]
        name = _encoding_name(self._tiktoken, model.rsplit("/", 1)[-1])
        if name not in self._encodings:
            self._encodings[name] = self._load(name)
        if len(self._models) >= _MODELS_KEPT:
            self._models.clear()
        encoding = self._models[model] = self._encodings[name]
        return encoding

    def _load(self, name: str) -> Any:
        if not _cached_intact(name):
            log.debug("tiktoken encoding %s is not cached; prompts are approximated", name)
            return None
        try:
            return self._tiktoken.get_encoding(name)
        except Exception as exc:  # whatever tiktoken raises: the approximation will do
            log.debug("tiktoken encoding %s did not load (%s)", name, type(exc).__name__)
            return None

    def count(self, body: dict[str, Any]) -> int:
        model = body.get("model")
        encoding = self.encoding(model) if isinstance(model, str) else None
        if encoding is None:
            return approximate(body)
        return count_with(encoding, body)


def count_with(encoding: Any, body: dict[str, Any]) -> int:
    """Prompt tokens of ``body`` with a tiktoken encoding (its ``encode_ordinary``)."""
    encode = encoding.encode_ordinary
    messages = body.get("messages")
    if isinstance(messages, list):
        total = _PRIMING
        for message in messages:
            if not isinstance(message, dict):
                continue
            total += _PER_MESSAGE + len(encode(_text(message.get("content"))))
            if isinstance(message.get("name"), str):
                total += 1 + len(encode(message["name"]))
            for call in message.get("tool_calls") or ():
                function = (call.get("function") or {}) if isinstance(call, dict) else {}
                total += len(encode(str(function.get("name", ""))))
                total += len(encode(str(function.get("arguments", ""))))
        tools = body.get("tools")
        if tools:
            total += len(encode(orjson.dumps(tools).decode()))
        return total
    prompt = body.get("prompt") if "prompt" in body else body.get("input")
    items = prompt if isinstance(prompt, list) else [prompt]
    total = 0
    for item in items:
        if isinstance(item, str):
            total += len(encode(item))
        elif isinstance(item, int):
            total += 1  # already a token id
        elif isinstance(item, list):
            total += len(item)  # a list of token ids
    return total
