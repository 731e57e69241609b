"""Prompt tokens, counted before the call to reserve them against token limits.

For OpenAI's model families (``gpt-*``, ``o1``/``o3``/``o4*``,
``text-embedding-*``) the prompt is counted with ``tiktoken`` when it is
installed (the ``tokenizers`` extra) and its encoding loads without the
network: tiktoken downloads its BPE files on first use, so an encoding is
only loaded when its file is already in tiktoken's cache. Any other model,
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

# Where tiktoken's own constructors fetch each encoding (tiktoken_ext.openai_public);
# the cache file's name is the SHA-1 of this address.
_BLOBS = {
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}

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
        self._available = enabled
        if enabled:
            try:
                import tiktoken
            except ImportError:
                self._available = False
            else:
                self._tiktoken = tiktoken

    def encoding(self, model: str) -> Any:
        """tiktoken's encoding for ``model``, or None (not OpenAI's, or not loadable offline)."""
        if not self._available or not is_openai_model(model):
            return None
        name = _encoding_name(self._tiktoken, model.rsplit("/", 1)[-1])
        if name in self._encodings:
            return self._encodings[name]
        encoding = None
        blob, folder = _BLOBS.get(name), _cache_dir()
        cached = (
            blob is not None
            and folder != ""  # tiktoken's "no cache": every load would download
            and os.path.exists(os.path.join(folder, hashlib.sha1(blob.encode()).hexdigest()))
        )
        if cached:
            try:
                encoding = self._tiktoken.get_encoding(name)
            except Exception as exc:  # a damaged cache file: the approximation will do
                log.debug("tiktoken encoding %s did not load (%s)", name, type(exc).__name__)
        if encoding is None:
            log.debug("tiktoken encoding %s is not cached; prompts are approximated", name)
        self._encodings[name] = encoding
        return encoding

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
