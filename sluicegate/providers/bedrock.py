"""Amazon Bedrock's Converse API <-> the canonical (OpenAI chat) form.

Requests: system and developer messages go to ``system``; tool results become
``toolResult`` blocks of a user turn; consecutive turns of one role are merged,
because Converse wants user and assistant to alternate. Images travel as
bytes only (Bedrock never fetches a URL, and adapters do no I/O). The stream
(``converse-stream``) is AWS's binary event stream; ``bedrock_stream`` decodes
it. Embeddings go through ``invoke`` with Titan or Cohere embed bodies.
The request is signed afterwards by ``credentials.aws`` (SigV4).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import orjson

from sluicegate.errors import (
    GatewayError,
    InvalidRequest,
)
from sluicegate.providers.base import Adapter, Endpoint, StreamDecoder, UpstreamRequest
from sluicegate.providers.bedrock_answers import FINISH_REASONS, error_for, new_id, translate_usage
from sluicegate.providers.bedrock_embeddings import decode_embeddings, embeddings_request
from sluicegate.providers.common import (
    DATA_URL,
    EMPTY_SCHEMA,
    function_tools,
    split_messages,
    tool_calls,
)
from sluicegate.providers.paths import refuse, segment
from sluicegate.schema.chat import ChatMessage, make_completion

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_JSON_INSTRUCTION = "Respond with one valid JSON object and nothing else."
_EVENT_STREAM = "application/vnd.amazon.eventstream"
# What CountTokens takes of a Converse request.
_COUNTED = frozenset({"messages", "system", "toolConfig"})


# ---------------------------------------------------------------- requests
def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{where}.image_url.url must be a data: URL", param=where)
    match = DATA_URL.match(url)
    if match is None:
        raise InvalidRequest(
            f"{where}: Bedrock takes images as bytes only; send a base64 data: URL, not a link",
            param=where,
        )
    image_format = _IMAGE_FORMATS.get(match["type"].lower())
    if image_format is None:
        raise InvalidRequest(
            f"{where}: Bedrock takes png, jpeg, gif or webp images, not {match['type']}",
            param=where,
        )
    # The JSON wire form of a blob is its base64 text, which the data URL already holds.
    return {"image": {"format": image_format, "source": {"bytes": match["data"]}}}


def _content_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    # Converse rejects blank text blocks, so they are left out.
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content.strip() else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or an array of parts", param=where)
    blocks: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        here = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{here}.text must be a string", param=f"{here}.text")
            if text.strip():
                blocks.append({"text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part, here))
        else:
            raise InvalidRequest(
                f"{here}: content parts of type {kind!r} are not supported by Bedrock",
                param=here,
            )
    return blocks


def _tool_use_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    return [
        {"toolUse": {"toolUseId": call_id or f"tool_{i}", "name": name, "input": arguments}}
        for i, (call_id, name, arguments) in enumerate(tool_calls(message, where))
    ]


def _tool_result_block(message: dict[str, Any], where: str) -> dict[str, Any]:
    tool_id = message.get("tool_call_id") or message.get("name")
    if not isinstance(tool_id, str) or not tool_id:
        raise InvalidRequest(f"{where}.tool_call_id is required", param=f"{where}.tool_call_id")
    content = _content_blocks(message.get("content"), f"{where}.content")
    return {"toolResult": {"toolUseId": tool_id, "content": content, "status": "success"}}


def translate_messages(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> (Converse system blocks, alternating Converse turns)."""
    texts, turns = split_messages(
        messages,
        content=_content_blocks,
        tool_calls=_tool_use_blocks,
        tool_result=lambda all_messages, i, where: _tool_result_block(all_messages[i], where),
    )
    return [{"text": text} for text in texts], turns


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in function_tools(tools):
        spec: dict[str, Any] = {
            "name": tool.name,
            "inputSchema": {"json": tool.parameters or EMPTY_SCHEMA},
        }
        if tool.description:
            spec["description"] = tool.description
        out.append({"toolSpec": spec})
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    """Converse's toolChoice; ``None`` when the default (auto) applies or for "none"."""
    if choice is None or choice in ("auto", "none"):
        return None
    if choice == "required":
        return {"any": {}}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if isinstance(name, str) and name:
            return {"tool": {"name": name}}
    raise InvalidRequest(
        "tool_choice is not one of auto, required, none or a function", param="tool_choice"
    )


def _has_tool_blocks(turns: list[dict[str, Any]]) -> bool:
    return any("toolUse" in b or "toolResult" in b for t in turns for b in t["content"])


def _stop_sequences(stop: Any) -> list[str]:
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
        raise InvalidRequest("stop must be a string or an array of strings", param="stop")
    return [s for s in sequences if s]


def translate_request(body: dict[str, Any]) -> dict[str, Any]:
    """A canonical chat body -> the Converse body (the model goes in the URL)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be an array", param="messages")
    system, turns = translate_messages(messages)
    if not turns:
        raise InvalidRequest(
            "Bedrock needs at least one user or assistant message", param="messages"
        )
    if (body.get("n") or 1) != 1:
        raise InvalidRequest("Bedrock answers one choice per request; n must be 1", param="n")
    out: dict[str, Any] = {"messages": turns}
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        instruction = _JSON_INSTRUCTION
        json_schema = response_format.get("json_schema")
        schema = json_schema.get("schema") if isinstance(json_schema, dict) else None
        if schema:
            instruction += " It must match this JSON schema: " + orjson.dumps(schema).decode()
        system.append({"text": instruction})
    if system:
        out["system"] = system
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    if body.get("stop"):
        stop = _stop_sequences(body["stop"])
        if stop:
            config["stopSequences"] = stop
    if config:
        out["inferenceConfig"] = config
    # parallel_tool_calls has no Converse equivalent; the model decides.
    tools = body.get("tools")
    choice = _tool_choice(body.get("tool_choice"))
    if tools:
        specs = _tools(tools)
        # "none" drops the tools, unless earlier turns use them: Converse then
        # requires toolConfig, and the model is left to answer in text.
        if body.get("tool_choice") != "none" or _has_tool_blocks(turns):
            out["toolConfig"] = {"tools": specs}
            if choice is not None:
                out["toolConfig"]["toolChoice"] = choice
    return out


# ---------------------------------------------------------------- answers
def translate_response(data: dict[str, Any], model: str) -> dict[str, Any]:
    output = data.get("output") or {}
    message_in = output.get("message") or {}
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in message_in.get("content") or []:
        if "text" in block:
            texts.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            tool_calls.append(
                {
                    "id": str(use.get("toolUseId", "")),
                    "type": "function",
                    "function": {
                        "name": str(use.get("name", "")),
                        "arguments": orjson.dumps(use.get("input") or {}).decode(),
                    },
                }
            )
        elif "reasoningContent" in block:
            text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            if isinstance(text, str):
                reasoning.append(text)
    message: ChatMessage = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    finish = FINISH_REASONS.get(data.get("stopReason") or "", "stop")
    usage = translate_usage(data.get("usage") or {})
    return dict(make_completion(new_id(), model, int(time.time()), message, finish, usage))


# ---------------------------------------------------------------- errors
def _error_kind(headers: dict[str, str], data: dict[str, Any]) -> str:
    # "ThrottlingException:http://internal.amazon.com/coral/..." -> "ThrottlingException"
    kind = headers.get("x-amzn-errortype") or str(data.get("__type") or "")
    return kind.split(":", 1)[0].rsplit("#", 1)[-1]


# ---------------------------------------------------------------- the adapter
def model_segment(model: str) -> str:
    """A model id, or an ARN (of an inference profile, a provisioned model, ...), as the
    one path segment Bedrock reads it from: the ARN's '/' is escaped, never a separator."""
    parts = model.split("/")
    if len(parts) > 1 and not model.startswith("arn:"):
        raise refuse(model, "bedrock", "only an ARN may hold '/'")
    return "%2F".join(segment(part, model, "bedrock") for part in parts)


class BedrockAdapter(Adapter):
    name: ClassVar[str] = "bedrock"
    endpoints: frozenset[str] = frozenset({"chat", "embeddings", "count_tokens"})

    def build(
        self, endpoint: Endpoint, body: dict[str, Any], raw: bytes, model: str, base_url: str
    ) -> UpstreamRequest:
        model_url = f"{base_url}/model/{model_segment(model)}"
        if endpoint == "embeddings":
            payload = embeddings_request(body, model)
            headers = {"content-type": "application/json", "accept": "application/json"}
            return UpstreamRequest("POST", model_url + "/invoke", headers, orjson.dumps(payload))
        payload = translate_request(body)
        if endpoint == "count_tokens":  # another dialect's request, counted (Responses)
            converse = {k: v for k, v in payload.items() if k in _COUNTED}
            headers = {"content-type": "application/json", "accept": "application/json"}
            data = orjson.dumps({"input": {"converse": converse}})
            return UpstreamRequest("POST", model_url + "/count-tokens", headers, data)
        stream = body.get("stream") is True
        headers = {
            "content-type": "application/json",
            "accept": _EVENT_STREAM if stream else "application/json",
        }
        url = model_url + ("/converse-stream" if stream else "/converse")
        return UpstreamRequest("POST", url, headers, orjson.dumps(payload), stream)

    def decode(
        self,
        endpoint: Endpoint,
        body: bytes,
        model: str = "",
        request: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        # Bedrock's answers name no model, and the encoding an embeddings client
        # asked for is in its request: the request path may pass both in.
        data = orjson.loads(body)
        if not isinstance(data, dict):
            raise ValueError("the provider's answer is not a JSON object")
        if endpoint == "count_tokens":
            return {"input_tokens": int(data["inputTokens"]), "model": model}
        if endpoint == "embeddings":
            encoding = (request or {}).get("encoding_format") or "float"
            return decode_embeddings(data, model, str(encoding))
        return translate_response(data, model)

    def stream_decoder(self, endpoint: Endpoint, model: str) -> StreamDecoder:
        from sluicegate.providers.bedrock_stream import ConverseStream

        return ConverseStream(model)

    def error(self, status: int, headers: dict[str, str], body: bytes) -> GatewayError:
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        message = data.get("message") or data.get("Message")
        if not isinstance(message, str) or not message:
            message = body[:500].decode("utf-8", "replace").strip() or f"status {status}"
        return error_for(_error_kind(headers, data), message, status, headers)
