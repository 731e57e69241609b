"""A fake Amazon Bedrock runtime: Converse, ConverseStream (binary AWS event stream) and
InvokeModel for Titan and Cohere embeddings, behind SigV4 checked with botocore itself.

Answers come from ``brain.answer``. Special models:

    fail-<status>        that status with Bedrock's error body and x-amzn-ErrorType
    prompt-too-long      400 ValidationException "Input is too long for requested model."
    model-not-ready      429 ModelNotReadyException
    error-stream         a stream that sends a modelStreamErrorException frame after its first delta
    throttle-stream      the same with a throttlingException frame
"""

from __future__ import annotations

import base64
import binascii
import struct
import time
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes.brain import Answer, Turn, answer, split_json
from tests.fakes.server import FakeServer

ACCESS_KEY = "AKIDFAKEBEDROCK01"
SECRET_KEY = "fake/bedrock+secret"
REGION = "us-east-1"

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop_sequence": "stop_sequence",
}
ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
# Converse's request members (the service model's ConverseRequest, modelId aside).
CONVERSE_FIELDS = frozenset(
    {
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "promptVariables",
        "additionalModelResponseFieldPaths",
        "requestMetadata",
        "performanceConfig",
        "serviceTier",
        "outputConfig",
    }
)
INFERENCE_FIELDS = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
BLOCK_KINDS = frozenset({"text", "image", "document", "toolUse", "toolResult", "cachePoint"})


class Rejected(Exception):
    """A request Bedrock would refuse: its status, exception name and message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


# ---------------------------------------------------------------- event stream framing
def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # 7: the "string" header value type.
    return (
        struct.pack("B", len(raw_name))
        + raw_name
        + b"\x07"
        + struct.pack(">H", len(raw_value))
        + raw_value
    )


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude, prelude CRC, headers, payload, message CRC."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + raw_headers + payload
    return message + struct.pack(">I", binascii.crc32(message))


def event(name: str, payload: dict[str, Any]) -> bytes:
    # Bedrock pads each event with a "p" field of varying length.
    padded = {**payload, "p": "abcdefghijklmnopqrstuvwxyz"[: 5 + len(name) % 7]}
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, orjson.dumps(padded))


def exception(name: str, message: str) -> bytes:
    headers = {
        ":exception-type": name,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame(headers, orjson.dumps({"message": message}))


# ---------------------------------------------------------------- SigV4
def check_signature(request: web.Request, raw: bytes, now: datetime | None = None) -> None:
    """Verify the request's SigV4 signature the way AWS does, computing it with botocore."""
    auth = request.headers.get("Authorization")
    if not auth:
        raise Rejected(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    algorithm, _, rest = auth.partition(" ")
    fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
    if algorithm != "AWS4-HMAC-SHA256" or set(fields) != {
        "Credential",
        "SignedHeaders",
        "Signature",
    }:
        raise Rejected(400, "IncompleteSignatureException", f"Malformed Authorization: {auth}")
    key, date, region, service, terminator = (fields["Credential"].split("/") + [""] * 5)[:5]
    amz_date = request.headers.get("X-Amz-Date", "")
    if service != "bedrock" or region != REGION or terminator != "aws4_request":
        raise Rejected(
            403, "InvalidSignatureException", f"Credential should be scoped to {REGION}/bedrock"
        )
    if not amz_date.startswith(date) or len(amz_date) != 16:
        raise Rejected(403, "InvalidSignatureException", "Date in Credential scope does not match")
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if abs(((now or datetime.now(UTC)) - signed_at).total_seconds()) > 300:
        raise Rejected(403, "InvalidSignatureException", "Signature expired")
    if key != ACCESS_KEY:
        raise Rejected(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise Rejected(403, "InvalidSignatureException", "host and x-amz-date must be signed")
    headers = {name: request.headers.get(name, "") for name in signed}
    # The path exactly as it came over the wire: that is what the client had to sign.
    aws = AWSRequest(
        method=request.method,
        url=f"{request.scheme}://{request.host}{request.raw_path}",
        headers=headers,
        data=raw,
    )
    aws.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "bedrock", REGION)
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    if expected != fields["Signature"]:
        raise Rejected(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )


# ---------------------------------------------------------------- Converse requests
def _blank(text: Any) -> bool:
    return not isinstance(text, str) or not text.strip()


def validate(body: dict[str, Any]) -> None:
    """The checks Bedrock makes that a sloppy translation would trip."""
    extra = set(body) - CONVERSE_FIELDS
    if extra:
        raise Rejected(
            400, "ValidationException", f"extraneous key [{sorted(extra)[0]}] is not permitted"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Rejected(400, "ValidationException", "messages must contain at least one message")
    if messages[0].get("role") != "user":
        raise Rejected(400, "ValidationException", "A conversation must start with a user message.")
    uses_tools = False
    previous_uses: set[str] = set()
    for i, message in enumerate(messages):
        if i and message.get("role") == messages[i - 1].get("role"):
            raise Rejected(
                400,
                "ValidationException",
                "A conversation must alternate between user and assistant roles.",
            )
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise Rejected(400, "ValidationException", f"messages.{i}.content must not be empty")
        uses: set[str] = set()
        for j, block in enumerate(content):
            if (
                not isinstance(block, dict)
                or len(block) != 1
                or next(iter(block)) not in BLOCK_KINDS
            ):
                raise Rejected(400, "ValidationException", f"messages.{i}.content.{j} is malformed")
            if "text" in block and _blank(block["text"]):
                raise Rejected(
                    400,
                    "ValidationException",
                    f"The text field in the ContentBlock object at messages.{i}.content.{j} "
                    "is blank.",
                )
            if "image" in block:
                image = block["image"]
                if image.get("format") not in ("png", "jpeg", "gif", "webp"):
                    raise Rejected(400, "ValidationException", "image format is not supported")
                base64.b64decode(image["source"]["bytes"], validate=True)
            if "toolUse" in block:
                uses_tools = True
                uses.add(block["toolUse"]["toolUseId"])
                if not isinstance(block["toolUse"].get("input"), dict):
                    raise Rejected(400, "ValidationException", "toolUse.input must be an object")
            if "toolResult" in block:
                uses_tools = True
                if block["toolResult"]["toolUseId"] not in previous_uses:
                    raise Rejected(
                        400,
                        "ValidationException",
                        "toolResult blocks must answer toolUse blocks of the previous turn",
                    )
        previous_uses = uses
    if uses_tools and "toolConfig" not in body:
        raise Rejected(
            400,
            "ValidationException",
            "The toolConfig field must be defined when using toolUse and toolResult "
            "content blocks.",
        )
    for block in body.get("system") or []:
        if "text" in block and _blank(block["text"]):
            raise Rejected(400, "ValidationException", "The text field in system is blank.")
    config = body.get("inferenceConfig") or {}
    if set(config) - INFERENCE_FIELDS:
        raise Rejected(400, "ValidationException", "inferenceConfig has an unknown field")
    tool_config = body.get("toolConfig")
    if tool_config is not None:
        if not tool_config.get("tools"):
            raise Rejected(400, "ValidationException", "toolConfig.tools must not be empty")
        for tool in tool_config["tools"]:
            spec = tool["toolSpec"]
            if not spec.get("name") or "json" not in spec.get("inputSchema", {}):
                raise Rejected(
                    400, "ValidationException", "toolSpec needs a name and inputSchema.json"
                )
        choice = tool_config.get("toolChoice")
        if choice is not None and (
            len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool")
        ):
            raise Rejected(400, "ValidationException", "toolChoice is malformed")


def _texts(content: list[dict[str, Any]]) -> list[str]:
    return [b["text"] for b in content if "text" in b]


def read_turn(body: dict[str, Any]) -> Turn:
    config = body.get("inferenceConfig") or {}
    turn = Turn(max_tokens=config.get("maxTokens"), stop=config.get("stopSequences") or [])
    turn.system = " ".join(b["text"] for b in body.get("system") or [] if "text" in b)
    turn.json_mode = "JSON" in turn.system
    tool_config = body.get("toolConfig") or {}
    turn.tools = [t["toolSpec"]["name"] for t in tool_config.get("tools") or []]
    choice = tool_config.get("toolChoice") or {"auto": {}}
    if "any" in choice:
        turn.tool_choice = "required"
    elif "tool" in choice:
        turn.tool_choice = choice["tool"]["name"]
    words = len(turn.system.split())
    for message in body["messages"]:
        words += len(" ".join(_texts(message["content"])).split())
    for block in body["messages"][-1]["content"]:
        if "text" in block:
            turn.user_text = block["text"]
        elif "toolResult" in block:
            result = block["toolResult"]
            turn.tool_results.append((result["toolUseId"], " ".join(_texts(result["content"]))))
        elif "image" in block:
            turn.images.append(f"base64 image/{block['image']['format']}")
    turn.prompt_words = words
    return turn


def _usage(ans: Answer) -> dict[str, int]:
    return {
        "inputTokens": ans.prompt_tokens,
        "outputTokens": ans.completion_tokens,
        "totalTokens": ans.prompt_tokens + ans.completion_tokens + ans.cached_tokens,
        "cacheReadInputTokens": ans.cached_tokens,
        "cacheWriteInputTokens": 0,
    }


def converse_body(ans: Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if ans.text is not None:
        content.append({"text": ans.text})
    for call in ans.tool_calls:
        content.append(
            {"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.arguments}}
        )
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": STOP_REASONS[ans.finish],
        "usage": _usage(ans),
        "metrics": {"latencyMs": 42},
    }


def stream_frames(ans: Answer, fail_with: str | None = None) -> list[bytes]:
    out = [event("messageStart", {"role": "assistant"})]
    index = 0
    if ans.text is not None:
        for n, word in enumerate(ans.words()):
            out.append(
                event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": word}})
            )
            if fail_with and n == 0:
                out.append(exception(fail_with, "The model stream failed: try again."))
                return out
        out.append(event("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    for call in ans.tool_calls:
        start = {"toolUse": {"toolUseId": call.id, "name": call.name}}
        out.append(event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        for piece in split_json(call.arguments_json):
            delta = {"toolUse": {"input": piece}}
            out.append(event("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        out.append(event("contentBlockStop", {"contentBlockIndex": index}))
        index += 1
    out.append(event("messageStop", {"stopReason": STOP_REASONS[ans.finish]}))
    out.append(event("metadata", {"usage": _usage(ans), "metrics": {"latencyMs": 42}}))
    return out


# ---------------------------------------------------------------- embeddings
def vector(text: str, size: int = 4) -> list[float]:
    """A deterministic vector: what the tests can expect for a text."""
    base = [len(text) / 100, len(text.split()) / 10, 0.5, -0.25]
    return [base[i % 4] + (i // 4) / 1000 for i in range(size)]


def titan_embedding(body: dict[str, Any]) -> dict[str, Any]:
    if set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}:
        raise Rejected(400, "ValidationException", "Malformed input request: extraneous key")
    text = body.get("inputText")
    if not isinstance(text, str):
        raise Rejected(400, "ValidationException", "Malformed input request: inputText required")
    return {
        "embedding": vector(text, int(body.get("dimensions") or 4)),
        "inputTextTokenCount": len(text.split()),
    }


def cohere_embedding(body: dict[str, Any]) -> dict[str, Any]:
    known = {"texts", "images", "input_type", "truncate", "embedding_types", "output_dimension"}
    if set(body) - known:
        raise Rejected(400, "ValidationException", "Malformed input request: extraneous key")
    texts = body.get("texts")
    if not isinstance(texts, list) or len(texts) > 96 or "input_type" not in body:
        raise Rejected(400, "ValidationException", "Malformed input request: texts and input_type")
    size = int(body.get("output_dimension") or 4)
    return {
        "embeddings": [vector(t, size) for t in texts],
        "id": str(uuid.uuid4()),
        "response_type": "embeddings_floats",
        "texts": texts,
    }


def black_pixels(mask: bytes) -> int:
    """The black pixels of an INPAINTING mask, which Amazon's models change. The mask must
    hold only pure black and pure white pixels, 8 bits a channel (as Amazon documents);
    this fake reads RGB PNGs whose rows are unfiltered (Google's masks too: theirs change
    the white ones)."""
    if mask[:8] != b"\x89PNG\r\n\x1a\n":
        raise Rejected(400, "ValidationException", "maskImage is not a PNG")
    pos, header, data = 8, b"", b""
    while pos < len(mask):
        length = int.from_bytes(mask[pos : pos + 4], "big")
        kind, chunk = mask[pos + 4 : pos + 8], mask[pos + 8 : pos + 8 + length]
        if zlib.crc32(kind + chunk) != int.from_bytes(mask[pos + 8 + length : pos + 12 + length]):
            raise Rejected(400, "ValidationException", "maskImage has a bad CRC")
        header = chunk if kind == b"IHDR" else header
        data += chunk if kind == b"IDAT" else b""
        pos += 12 + length
    width, height = int.from_bytes(header[:4]), int.from_bytes(header[4:8])
    if header[8:10] != b"\x08\x02":  # 8 bits, RGB
        raise Rejected(400, "ValidationException", "maskImage must be 8-bit RGB")
    raw = zlib.decompress(data)
    black = 0
    for y in range(height):
        row = raw[y * (1 + 3 * width) : (y + 1) * (1 + 3 * width)]
        if row[0] != 0:
            raise Rejected(400, "ValidationException", "the fake reads unfiltered rows only")
        for x in range(width):
            pixel = row[1 + 3 * x : 4 + 3 * x]
            if pixel not in (b"\x00\x00\x00", b"\xff\xff\xff"):
                raise Rejected(400, "ValidationException", "maskImage must be black and white")
            black += pixel == b"\x00\x00\x00"
    return black


def canvas_images(body: dict[str, Any]) -> dict[str, Any]:
    """Nova Canvas (and Titan Image) TEXT_IMAGE: one PNG per image asked for."""
    config = body.get("imageGenerationConfig") or {}
    task = body.get("taskType")
    if task == "INPAINTING":
        params = body.get("inPaintingParams") or {}
        if not params.get("image") or not params.get("text"):
            raise Rejected(400, "ValidationException", "inPaintingParams needs image and text")
        if ("maskImage" in params) == ("maskPrompt" in params):
            raise Rejected(400, "ValidationException", "give one of maskImage and maskPrompt")
        black = black_pixels(base64.b64decode(params["maskImage"], validate=True))
        png = b"\x89PNG inpainted %d %s" % (black, params["text"].encode())
        return {"images": [base64.b64encode(png).decode()] * config.get("numberOfImages", 1)}
    if task == "IMAGE_VARIATION":
        given = body.get("imageVariationParams", {}).get("images") or []
        if not given or not all(base64.b64decode(i) for i in given):
            raise Rejected(400, "ValidationException", "imageVariationParams.images is required")
        text = body["imageVariationParams"].get("text", "")
        png = base64.b64encode(b"\x89PNG variation %d %s" % (len(given), text.encode()))
        return {"images": [png.decode()] * config.get("numberOfImages", 1), "error": None}
    if task != "TEXT_IMAGE" or not body.get("textToImageParams", {}).get("text"):
        raise Rejected(400, "ValidationException", "taskType TEXT_IMAGE needs textToImageParams")
    width, height = config.get("width", 1024), config.get("height", 1024)
    if (
        width % 16
        or height % 16
        or config.get("quality", "standard") not in ("standard", "premium")
    ):
        raise Rejected(400, "ValidationException", "invalid imageGenerationConfig")
    png = base64.b64encode(b"\x89PNG canvas %dx%d" % (width, height)).decode()
    return {"images": [png] * config.get("numberOfImages", 1), "error": None}


def rerank(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Cohere Rerank (api_version 2) and Amazon Rerank through InvokeModel."""
    if "cohere." in model and body.get("api_version") != 2:
        raise Rejected(400, "ValidationException", "api_version 2 is required")
    query = set(body["query"].lower().split())
    scored = [
        (i, sum(w in query for w in doc.lower().split()) / max(len(doc.split()), 1))
        for i, doc in enumerate(body["documents"])
    ]
    scored.sort(key=lambda pair: pair[1], reverse=True)
    top = scored[: body.get("top_n") or None]
    return {"results": [{"index": i, "relevance_score": s} for i, s in top]}


class FakeBedrock(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.signatures_checked = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model:.+}/converse", self.converse)
        app.router.add_post("/model/{model:.+}/converse-stream", self.converse_stream)
        app.router.add_post("/model/{model:.+}/invoke", self.invoke)
        app.router.add_post("/model/{model:.+}/count-tokens", self.count_tokens)

    def _error(self, status: int, kind: str, message: str) -> web.Response:
        headers = {
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-RequestId": str(uuid.uuid4()),
        }
        if status == 429:
            headers["retry-after"] = "7"
        return web.json_response({"message": message}, status=status, headers=headers)

    async def _accept(self, request: web.Request) -> tuple[str, dict[str, Any]]:
        """Record and authenticate the request; the model id and body, or ``Rejected``."""
        body = await self.record(request)
        self.last["raw_path"] = request.raw_path
        check_signature(request, self.last["raw"])
        self.signatures_checked += 1
        model = request.match_info["model"]
        if model.startswith("fail-"):
            status = int(model.removeprefix("fail-"))
            raise Rejected(
                status, ERROR_TYPES.get(status, "InternalServerException"), f"fake {status}"
            )
        if model == "prompt-too-long":
            raise Rejected(400, "ValidationException", "Input is too long for requested model.")
        if model == "model-not-ready":
            raise Rejected(
                429, "ModelNotReadyException", "Model is not ready to serve inference requests."
            )
        return model, body

    async def count_tokens(self, request: web.Request) -> web.Response:
        """CountTokens for a Converse request (``{"input": {"converse": {...}}}``): every
        word of its text blocks, the system's and the tools' names and descriptions."""
        try:
            _, body = await self._accept(request)
        except Rejected as exc:
            return self._error(exc.status, exc.kind, exc.message)
        converse = (body.get("input") or {}).get("converse")
        if not isinstance(converse, dict) or not converse.get("messages"):
            return self._error(400, "ValidationException", "input.converse.messages is required")
        texts = [
            block.get("text", "")
            for message in converse["messages"]
            for block in message.get("content", [])
        ]
        texts += [block.get("text", "") for block in converse.get("system", [])]
        for tool in (converse.get("toolConfig") or {}).get("tools", []):
            spec = tool.get("toolSpec", {})
            texts += [spec.get("name", ""), spec.get("description", "")]
        return web.json_response({"inputTokens": sum(len(t.split()) for t in texts)})

    async def converse(self, request: web.Request) -> web.Response:
        try:
            _, body = await self._accept(request)
            validate(body)
        except Rejected as exc:
            return self._error(exc.status, exc.kind, exc.message)
        ans = answer(read_turn(body), id_prefix="tooluse")
        return web.json_response(
            converse_body(ans), headers={"x-amzn-RequestId": str(uuid.uuid4())}
        )

    async def converse_stream(self, request: web.Request) -> web.StreamResponse:
        try:
            model, body = await self._accept(request)
            validate(body)
        except Rejected as exc:
            return self._error(exc.status, exc.kind, exc.message)
        ans = answer(read_turn(body), id_prefix="tooluse")
        fail_with = {
            "error-stream": "modelStreamErrorException",
            "throttle-stream": "throttlingException",
        }.get(model)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.amazon.eventstream",
                "x-amzn-RequestId": str(uuid.uuid4()),
            }
        )
        await response.prepare(request)
        for data in stream_frames(ans, fail_with):
            await response.write(data)
        await response.write_eof()
        return response

    async def invoke(self, request: web.Request) -> web.Response:
        try:
            model, body = await self._accept(request)
            if "amazon.titan-embed" in model:
                result = titan_embedding(body)
                tokens = result["inputTextTokenCount"]
            elif "cohere.embed" in model:
                result = cohere_embedding(body)
                tokens = sum(len(t.split()) for t in body["texts"])
            elif "amazon.nova-canvas" in model or "amazon.titan-image" in model:
                result, tokens = canvas_images(body), 0
            elif "rerank" in model:
                result, tokens = rerank(body, model), 0
            else:
                raise Rejected(404, "ResourceNotFoundException", f"no fake for model {model}")
        except Rejected as exc:
            return self._error(exc.status, exc.kind, exc.message)
        headers = {
            "x-amzn-RequestId": str(uuid.uuid4()),
            "X-Amzn-Bedrock-Input-Token-Count": str(tokens),
            "X-Amzn-Bedrock-Invocation-Latency": str(int(time.time()) % 100),
        }
        return web.json_response(result, headers=headers)
