"""Canonical (OpenAI chat) requests -> Gemini ``GenerateContentRequest`` bodies.

Shared by the Gemini API and Vertex AI, which take the same body. System and
developer messages become ``systemInstruction``; assistant turns are role
``model``; tool results become ``functionResponse`` parts of a user turn,
named after the assistant tool call they answer (Gemini matches results to
calls by name, not id); consecutive turns of one role are merged.
"""

from __future__ import annotations

import mimetypes
from typing import Any

import orjson

from sluicegate.dialects.openai import content_text
from sluicegate.errors import InvalidRequest
from sluicegate.providers.common import DATA_URL, function_tools, split_messages, tool_calls
from sluicegate.providers.gemini_thoughts import THOUGHT, thought_part, with_thoughts

# Gemini 3 wants a function call's thought signature back with the call; the
# OpenAI shape has no place for it, so it rides in the tool call id after this
# marker, in URL-safe base64 so that the id stays within [A-Za-z0-9_-] (what
# Anthropic requires of ids, should the conversation move there).
SIGNATURE_MARK = "__ts__"
# reasoning_effort -> thinking budget, as Google's OpenAI-compatible API maps it.
THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


# ---------------------------------------------------------------- parts
def _url_part(url: str, where: str, default_type: str, refuse_gs: str | None) -> dict[str, Any]:
    match = DATA_URL.match(url)
    if match:
        return {"inlineData": {"mimeType": match["type"], "data": match["data"]}}
    if url.lstrip()[:5].lower() == "gs://" and refuse_gs is not None:
        # Google reads a gs:// object with the service's own identity (its key's project,
        # its service account): any bucket that identity may read, whoever the client is.
        raise InvalidRequest(
            f"{where}: service '{refuse_gs}' does not take gs:// URIs (the provider would "
            "read them with the gateway's Google identity); its allow_gs_uris option is off",
            param=where,
            code="gs_uris_not_allowed",
        )
    if url.startswith(("http://", "https://", "gs://")):
        guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
        return {"fileData": {"mimeType": guessed or default_type, "fileUri": url}}
    raise InvalidRequest(
        f"{where} must be an http(s) URL, a gs:// URI or a base64 data: URL", param=where
    )


def refuse_native_gs(body: bytes, service: str) -> None:
    """A 400 when a pass-through body names a gs:// object anywhere: as a JSON string (its
    escapes decoded, as Google decodes them) or, in a body that is not JSON, as bytes."""
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        found = b"gs://" in body.lower()
    else:
        found = _holds_gs(doc)
    if found:
        raise InvalidRequest(
            f"service '{service}' does not take gs:// URIs (the provider would read them with "
            "the gateway's Google identity); its allow_gs_uris option is off",
            code="gs_uris_not_allowed",
        )


def _holds_gs(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item.lstrip()[:5].lower() == "gs://":
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _part(part: Any, where: str, refuse_gs: str | None) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        text: dict[str, Any] = {"text": str(part.get("text", ""))}
        if part.get("thoughtSignature"):  # an earlier answer's, handed back (gemini_thoughts)
            text["thoughtSignature"] = str(part["thoughtSignature"])
        return text
    if kind == THOUGHT:
        return thought_part(part)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            raise InvalidRequest(f"{where}.image_url.url must be a URL", param=where)
        return _url_part(url, f"{where}.image_url.url", "image/jpeg", refuse_gs)
    if kind == "input_audio":
        audio = part.get("input_audio")
        if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
            raise InvalidRequest(f"{where}.input_audio.data is required", param=where)
        fmt = str(audio.get("format") or "wav")
        return {
            "inlineData": {"mimeType": _AUDIO_TYPES.get(fmt, f"audio/{fmt}"), "data": audio["data"]}
        }
    if kind == "file":
        file = part.get("file")
        data = file.get("file_data") if isinstance(file, dict) else None
        if not isinstance(data, str) or not DATA_URL.match(data):
            raise InvalidRequest(
                f"{where}.file.file_data must be a base64 data: URL (file ids are OpenAI's own)",
                param=where,
            )
        return _url_part(data, f"{where}.file.file_data", "application/pdf", refuse_gs)
    raise InvalidRequest(
        f"{where}: content parts of type {kind!r} are not supported by Gemini", param=where
    )


def _parts(content: Any, where: str, refuse_gs: str | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    return [_part(part, f"{where}[{i}]", refuse_gs) for i, part in enumerate(content)]


def join_call_id(call_id: str, signature: str | None) -> str:
    if not signature:
        return call_id
    safe = signature.replace("+", "-").replace("/", "_").rstrip("=")
    return call_id + SIGNATURE_MARK + safe


def split_call_id(call_id: str) -> tuple[str, str | None]:
    """A tool call id -> (the id, the thought signature it carries, if any)."""
    head, mark, safe = call_id.partition(SIGNATURE_MARK)
    if not mark or not safe:
        return call_id, None
    signature = safe.replace("-", "+").replace("_", "/")
    return head, signature + "=" * (-len(signature) % 4)


def _function_calls(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    parts = []
    for call_id, name, arguments in tool_calls(message, where):
        part: dict[str, Any] = {"functionCall": {"name": name, "args": arguments}}
        _, signature = split_call_id(call_id or "")
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _tool_name(messages: list[dict[str, Any]], before: int, call_id: str) -> str | None:
    """The function name of the nearest earlier assistant tool call with this id."""
    for message in reversed(messages[:before]):
        if message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and call.get("id") == call_id:
                name = (call.get("function") or {}).get("name")
                return str(name) if name else None
    return None


def _function_response(messages: list[dict[str, Any]], i: int, where: str) -> dict[str, Any]:
    message = messages[i]
    if message.get("role") == "function":  # the legacy shape names the function itself
        name = message.get("name")
    else:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"{where}.tool_call_id is required", param=f"{where}.tool_call_id")
        name = _tool_name(messages, i, call_id)
        if name is None:
            raise InvalidRequest(
                f"{where}.tool_call_id '{call_id}' matches no earlier assistant tool call; "
                "Gemini needs the function's name",
                param=f"{where}.tool_call_id",
            )
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name is required", param=f"{where}.name")
    text = content_text(message.get("content"))
    try:
        result: Any = orjson.loads(text) if text.lstrip()[:1] in ("{", "[") else text
    except orjson.JSONDecodeError:
        result = text
    return {"functionResponse": {"name": name, "response": {"content": result}}}


def translate_messages(
    messages: list[dict[str, Any]], refuse_gs: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> (system instruction parts, Gemini contents)."""
    texts, contents = split_messages(
        [with_thoughts(m) for m in messages],
        content=lambda content, where: _parts(content, where, refuse_gs),
        tool_calls=_function_calls,
        tool_result=_function_response,
        assistant="model",
        key="parts",
    )
    return [{"text": text} for text in texts], contents


# ---------------------------------------------------------------- options
def _tools(tools: Any) -> list[dict[str, Any]]:
    declarations = []
    for tool in function_tools(tools):
        entry: dict[str, Any] = {"name": tool.name}
        if tool.description:
            entry["description"] = tool.description
        if tool.parameters:
            # OpenAI's parameters are JSON Schema; the JSON Schema field takes
            # them as they are (``parameters`` is an OpenAPI subset that
            # rejects additionalProperties, which strict tools always carry).
            entry["parametersJsonSchema"] = tool.parameters
        declarations.append(entry)
    return [{"functionDeclarations": declarations}]


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        config: dict[str, Any] = {"mode": "AUTO"}
    elif choice == "required":
        config = {"mode": "ANY"}
    elif choice == "none":
        config = {"mode": "NONE"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("tool_choice.function.name is required", param="tool_choice")
        config = {"mode": "ANY", "allowedFunctionNames": [name]}
    else:
        raise InvalidRequest(
            "tool_choice is not one of auto, required, none or a function", param="tool_choice"
        )
    return {"functionCallingConfig": config}


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    names = {
        "temperature": "temperature",
        "top_p": "topP",
        "top_k": "topK",
        "presence_penalty": "presencePenalty",
        "frequency_penalty": "frequencyPenalty",
        "seed": "seed",
    }
    for ours, theirs in names.items():
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    n = body.get("n")
    if n is not None and n != 1:
        if not isinstance(n, int) or n < 1:
            raise InvalidRequest("n must be a positive integer", param="n")
        config["candidateCount"] = n
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format or {}).get("json_schema") or {}
        if kind == "json_schema" and isinstance(schema, dict) and schema.get("schema"):
            # JSON Schema as OpenAI clients write it (see _tools on why not responseSchema).
            config["responseJsonSchema"] = schema["schema"]
    elif kind not in (None, "text"):
        raise InvalidRequest(
            "response_format.type must be text, json_object or json_schema",
            param="response_format",
        )
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in THINKING_BUDGETS:
            raise InvalidRequest(
                f"reasoning_effort must be one of {', '.join(THINKING_BUDGETS)}",
                param="reasoning_effort",
            )
        budget = THINKING_BUDGETS[effort]
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": budget > 0}
    return config


def translate_request(body: dict[str, Any], *, refuse_gs: str | None = "") -> dict[str, Any]:
    """``refuse_gs`` is the service named when a gs:// URI is refused; None lets them through."""
    system, contents = translate_messages(body["messages"], refuse_gs)
    if not contents:
        raise InvalidRequest(
            "Gemini needs at least one user or assistant message", param="messages"
        )
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = body.get("tools")
    if tools:
        out["tools"] = _tools(tools)
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config is not None:
            out["toolConfig"] = tool_config
    generation = _generation_config(body)
    if generation:
        out["generationConfig"] = generation
    return out


# ---------------------------------------------------------------- embeddings
def embedding_inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise InvalidRequest("input must be a non-empty string or array of strings", param="input")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidRequest(
                f"input[{i}]: Gemini embeds text; token arrays are not supported",
                param="input",
            )
    return items


def dimensions(body: dict[str, Any]) -> int | None:
    value = body.get("dimensions")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest("dimensions must be a positive integer", param="dimensions")
    return value


def encoding_format(body: dict[str, Any]) -> str:
    value = body.get("encoding_format") or "float"
    if value not in ("float", "base64"):
        raise InvalidRequest("encoding_format must be float or base64", param="encoding_format")
    return str(value)
