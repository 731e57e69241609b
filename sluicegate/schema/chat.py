"""The canonical request/response shapes: OpenAI chat completions, as plain dicts.

These TypedDicts document and type-check the fields the gateway itself reads or
writes; bodies stay ordinary dicts (parsed once with orjson) so that fields the
gateway does not know pass through untouched.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatMessage(TypedDict, total=False):
    role: Role
    content: str | list[dict[str, Any]] | None
    name: str
    tool_calls: list[dict[str, Any]]
    tool_call_id: str
    reasoning_content: str
    # A provider's own reasoning blocks (Anthropic's thinking with its signature), to be
    # handed back to the same provider with the turn they belong to.
    reasoning_blocks: list[dict[str, Any]]


class StreamOptions(TypedDict, total=False):
    include_usage: bool


class ChatRequest(TypedDict, total=False):
    model: str
    messages: list[ChatMessage]
    stream: bool
    stream_options: StreamOptions
    max_tokens: int
    max_completion_tokens: int
    temperature: float
    top_p: float
    n: int
    stop: str | list[str]
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    user: str


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: NotRequired[dict[str, int]]
    completion_tokens_details: NotRequired[dict[str, int]]


class Choice(TypedDict):
    index: int
    message: ChatMessage
    finish_reason: str | None


class ChatResponse(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: NotRequired[Usage]


class ChunkChoice(TypedDict):
    index: int
    delta: ChatMessage
    finish_reason: str | None


class ChatChunk(TypedDict):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: NotRequired[Usage | None]


def make_usage(
    prompt: int,
    completion: int,
    *,
    cached: int | None = None,
    cache_creation: int | None = None,
    reasoning: int | None = None,
) -> Usage:
    """OpenAI's usage object; ``prompt`` already includes cached tokens."""
    usage: Usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    details: dict[str, int] = {}
    if cached is not None:
        details["cached_tokens"] = cached
    if cache_creation is not None:
        details["cache_write_tokens"] = cache_creation
    if details:
        usage["prompt_tokens_details"] = details
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def usage_from_cache_split(fresh: int, output: int, read: int, written: int) -> Usage:
    """OpenAI's usage from providers that count cache reads and writes apart
    from the rest of the prompt (Anthropic, Bedrock): OpenAI's prompt includes them."""
    return make_usage(fresh + read + written, output, cached=read, cache_creation=written or None)


def make_completion(
    id: str,
    model: str,
    created: int,
    message: ChatMessage,
    finish_reason: str | None,
    usage: Usage | None,
) -> ChatResponse:
    response: ChatResponse = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    if usage is not None:
        response["usage"] = usage
    return response


def make_chunk(
    id: str, model: str, created: int, delta: ChatMessage, finish_reason: str | None = None
) -> ChatChunk:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def make_usage_chunk(id: str, model: str, created: int, usage: Usage) -> ChatChunk:
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }
