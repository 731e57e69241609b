"""Fake Gemini API and Vertex AI servers, and Google's OAuth token endpoint.

Real HTTP servers speaking Google's wire format (``generateContent``,
``streamGenerateContent?alt=sse`` with ``\\r\\n``-terminated events, Google's
error body with ``details``), answering through ``brain.answer``. Function
calls carry no id (as Gemini's do not) and the first of a step carries a
``thoughtSignature`` (as Gemini 3's does). Gemini 3 also signs the first part
of a turn: a whole answer's thought summary (``THOUGHT_SIGNATURE``, when
includeThoughts asked for one) or else its text (``TEXT_SIGNATURE``); a stream
signs its thought part, or sends the text's signature last, on an empty text
part, as Gemini streams it.

Auth. Gemini: an API key in ``x-goog-api-key`` or ``?key=``; ``GEMINI_KEY`` is
valid, ``INVALID_KEY`` answers 400 ``API_KEY_INVALID`` (what Google says of a
key it does not know), any other key 403 ``PERMISSION_DENIED`` (a key whose
project may not use the API), none at all 403. Vertex: a bearer token that
``POST /token`` issued for a JWT grant signed with ``TEST_KEY``; a token of
an account other than ``SERVICE_ACCOUNT`` answers 403 (no IAM permission on
the project), an unknown token 401.

Special models:

    fail-<status>      that status with Google's error body (429 with a RetryInfo of 7s)
    prompt-too-long    400 "The input token count ... exceeds the maximum number of tokens"
    error-stream       a stream that reports 503 UNAVAILABLE after its first delta
    blocked-prompt     200 with promptFeedback.blockReason SAFETY and no candidates
    safety-stop        a candidate stopped with finishReason SAFETY
"""

from __future__ import annotations

import base64
import itertools
import time
from typing import Any

import orjson
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.bedrock_server import Rejected, black_pixels
from tests.fakes.brain import Answer, Turn, answer
from tests.fakes.server import FakeServer

GEMINI_KEY = "gm-fake-key"
INVALID_KEY = "gm-invalid-key"
SERVICE_ACCOUNT = "gateway@fake-project.iam.gserviceaccount.com"
PROJECT = "fake-project"
SIGNATURE = "c2lnLWZha2UrLz0="  # base64 with + and /, as real signatures have
TEXT_SIGNATURE = "dGV4dC1zaWcrLw=="
THOUGHT_SIGNATURE = "dGhvdWdodC1zaWcv"
# google-auth signs every service account grant for Google's own token audience.
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
TEST_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

FINISH = {"stop": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def service_account_json(token_uri: str, email: str = SERVICE_ACCOUNT) -> str:
    """The text of a service account key file for ``TEST_KEY``."""
    pem = TEST_KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return orjson.dumps(
        {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "fake-key-id",
            "private_key": pem,
            "client_email": email,
            "client_id": "1234567890",
            "token_uri": token_uri,
        }
    ).decode()


def error_body(status: int, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = list(details)
    return {"error": error}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def read_turn(body: dict[str, Any]) -> Turn:
    config = body.get("generationConfig") or {}
    turn = Turn(max_tokens=config.get("maxOutputTokens"), stop=config.get("stopSequences") or [])
    system = body.get("systemInstruction") or {}
    turn.system = " ".join(p.get("text", "") for p in system.get("parts") or [])
    turn.json_mode = config.get("responseMimeType") == "application/json"
    turn.thinking = bool((config.get("thinkingConfig") or {}).get("includeThoughts"))
    turn.tools = [
        d["name"] for tool in body.get("tools") or [] for d in tool.get("functionDeclarations", [])
    ]
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = calling.get("mode", "AUTO")
    allowed = calling.get("allowedFunctionNames") or []
    if mode == "ANY" and len(allowed) == 1:
        turn.tool_choice = allowed[0]
    else:
        turn.tool_choice = {"AUTO": "auto", "ANY": "required", "NONE": "none"}.get(mode, "auto")
    words = len(turn.system.split())
    for content in body["contents"]:
        for part in content["parts"]:
            words += len(str(part.get("text", "")).split())
    for part in body["contents"][-1]["parts"]:
        if "text" in part:
            turn.user_text = part["text"]
        elif "functionResponse" in part:
            response = part["functionResponse"]
            result = (response.get("response") or {}).get("content", "")
            turn.tool_results.append((response["name"], _text(result)))
        elif "inlineData" in part:
            turn.images.append(f"base64 {part['inlineData']['mimeType']}")
        elif "fileData" in part:
            turn.images.append("url")
    turn.prompt_words = words
    return turn


def _usage(ans: Answer, completion: int | None = None) -> dict[str, Any]:
    done = ans.completion_tokens if completion is None else completion
    usage: dict[str, Any] = {"promptTokenCount": ans.prompt_tokens, "candidatesTokenCount": done}
    thoughts = len(ans.thinking.split()) if ans.thinking else 0
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if ans.cached_tokens:
        usage["cachedContentTokenCount"] = ans.cached_tokens
    usage["totalTokenCount"] = ans.prompt_tokens + done + thoughts
    return usage


def _call_parts(ans: Answer) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for i, call in enumerate(ans.tool_calls):
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
        if i == 0:
            part["thoughtSignature"] = SIGNATURE
        parts.append(part)
    return parts


def response_body(ans: Answer, model: str, finish: str | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if ans.thinking:
        parts.append({"text": ans.thinking, "thought": True, "thoughtSignature": THOUGHT_SIGNATURE})
    if ans.text is not None:
        parts.append({"text": ans.text})
        if not ans.thinking:
            parts[-1]["thoughtSignature"] = TEXT_SIGNATURE
    parts += _call_parts(ans)
    candidate: dict[str, Any] = {"finishReason": finish or FINISH[ans.finish], "index": 0}
    if parts:
        candidate["content"] = {"role": "model", "parts": parts}
    return {
        "candidates": [candidate],
        "usageMetadata": _usage(ans),
        "modelVersion": model,
        "responseId": "gemini-fake-response",
    }


def stream_events(
    ans: Answer, model: str, fail_after_first: bool = False, finish: str | None = None
) -> list[bytes]:
    """Whole response chunks as SSE events; the last carries finishReason and usage."""

    def event(parts: list[dict[str, Any]], done: int, finish: str | None = None) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        chunk = {
            "candidates": [candidate],
            "usageMetadata": _usage(ans, done),
            "modelVersion": model,
            "responseId": "gemini-fake-response",
        }
        return b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"

    out: list[bytes] = []
    if ans.thinking:
        thought = {"text": ans.thinking, "thought": True, "thoughtSignature": THOUGHT_SIGNATURE}
        out.append(event([thought], 0))
    words = ans.words()
    for done, word in enumerate(words[:-1], start=1):
        out.append(event([{"text": word}], done))
        if fail_after_first:
            error = error_body(503, "The model is overloaded. Please try again later.")
            out.append(b"data: " + orjson.dumps(error) + b"\r\n\r\n")
            return out
    last: list[dict[str, Any]] = [{"text": words[-1]}] if words else []
    last += _call_parts(ans)
    if words and not ans.thinking:
        last.append({"text": "", "thoughtSignature": TEXT_SIGNATURE})
    out.append(event(last, ans.completion_tokens, finish or FINISH[ans.finish]))
    return out


def fake_vector(text: str) -> list[float]:
    """Four floats exactly representable in float32, so base64 round trips are exact."""
    return [len(text) / 8, float(len(text.split())), 0.25, -1.0]


class FakeGemini(FakeServer):
    """The Gemini API (``/v1beta``), keyed by an API key."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{call}", self.call)

    def _error(self, status: int, message: str, *details: dict[str, Any]) -> web.Response:
        return web.json_response(error_body(status, message, *details), status=status)

    def authorize(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if key == GEMINI_KEY:
            return None
        if key == INVALID_KEY:
            reason = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
            return self._error(400, "API key not valid. Please pass a valid API key.", reason)
        if key is None:
            return self._error(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        return self._error(403, "Requests to this API are blocked for this API key.")

    def count_tokens(self, body: dict[str, Any], model: str) -> web.Response:
        """Google's count: every word of every text part, the system instruction's and the
        tools' (names and descriptions) included. Gemini's API takes the request whole under
        ``generateContentRequest`` (naming the model); Vertex's takes its fields directly."""
        if "generateContentRequest" in body:
            request = body["generateContentRequest"]
            if request.get("model") != f"models/{model}":
                return self._error(400, "generateContentRequest.model does not match the path")
        else:
            request = body
        if not request.get("contents"):
            return self._error(400, "* CountTokensRequest.contents: contents is not specified")
        texts = [
            part.get("text", "")
            for content in [*request["contents"], request.get("systemInstruction") or {}]
            for part in content.get("parts", [])
        ]
        for tool in request.get("tools", []):
            for declared in tool.get("functionDeclarations", []):
                texts += [declared.get("name", ""), declared.get("description", "")]
        return web.json_response({"totalTokens": sum(len(t.split()) for t in texts)})

    async def call(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model, _, method = request.match_info["call"].partition(":")
        return await self.serve(request, body, model, method)

    async def serve(
        self, request: web.Request, body: dict[str, Any], model: str, method: str
    ) -> web.StreamResponse:
        refused = self.authorize(request)
        if refused is not None:
            return refused
        if method == "predict" and model.startswith("imagen"):
            return self.imagen(body, model)
        if method in ("batchEmbedContents", "predict"):
            return self.embed(body, method)
        if method == "countTokens":
            return self.count_tokens(body, model)
        if method not in ("generateContent", "streamGenerateContent"):
            return self._error(404, f"Method {method} not found")
        if model.startswith("fail-"):
            status = int(model.removeprefix("fail-"))
            details = []
            if status == 429:
                details.append(
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "6.2s"}
                )
            return self._error(status, f"fake {STATUS_NAMES.get(status, 'error')}", *details)
        if model == "prompt-too-long":
            return self._error(
                400,
                "The input token count (1234567) exceeds the maximum number of tokens "
                "allowed (1048576).",
            )
        if not body.get("contents"):
            return self._error(400, "* GenerateContentRequest.contents: contents is not specified")
        if "image" in model and method == "generateContent":
            return self.image_content(body)
        if model == "blocked-prompt":
            return web.json_response(
                {
                    "promptFeedback": {"blockReason": "SAFETY"},
                    "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
                    "modelVersion": model,
                }
            )
        ans = answer(read_turn(body))
        finish = "SAFETY" if model == "safety-stop" else None
        if method == "generateContent":
            if finish:
                ans.text = None
            return web.json_response(response_body(ans, model, finish))
        if request.query.get("alt") != "sse":
            return self._error(400, "the fake streams only with alt=sse")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in stream_events(ans, model, model == "error-stream", finish):
            await response.write(chunk)
        await response.write_eof()
        return response

    def image_content(self, body: dict[str, Any]) -> web.Response:
        """A Gemini image model: PNGs as inlineData parts, one per image it was given (or
        one), naming how many images and the text it was sent."""
        config = body.get("generationConfig") or {}
        if "IMAGE" not in (config.get("responseModalities") or []):
            return self._error(400, "responseModalities must include IMAGE for this model")
        if (config.get("candidateCount") or 1) > 1:  # as Google's image models answer it
            return self._error(400, "Multiple candidates is not enabled for this model")
        parts = body["contents"][0]["parts"]
        given = [base64.b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p]
        text = " ".join(p["text"] for p in parts if "text" in p)
        made = b"\x89PNG gemini %d %s" % (len(given), text.encode())
        image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(made).decode()}}
        return web.json_response(
            {
                "candidates": [{"content": {"role": "model", "parts": [image]}, "index": 0}],
                "usageMetadata": {
                    "promptTokenCount": 10 + 258 * len(given),
                    "candidatesTokenCount": 1290,
                    "totalTokenCount": 1300 + 258 * len(given),
                },
            }
        )

    def imagen(self, body: dict[str, Any], model: str = "") -> web.Response:
        """Imagen's ``:predict``: one PNG (as base64) per sample asked for."""
        instances = body.get("instances") or []
        if len(instances) != 1 or not instances[0].get("prompt"):
            return self._error(400, "instances[0].prompt is required")
        parameters = body.get("parameters") or {}
        if "referenceImages" in instances[0]:
            return self.imagen_edit(instances[0], parameters, model)
        if parameters.get("aspectRatio", "1:1") not in ("1:1", "3:4", "4:3", "9:16", "16:9"):
            return self._error(400, "Unsupported aspect ratio")
        count = parameters.get("sampleCount", 4)
        image = base64.b64encode(b"\x89PNG imagen " + parameters.get("aspectRatio", "").encode())
        predictions = [
            {"bytesBase64Encoded": image.decode(), "mimeType": "image/png"} for _ in range(count)
        ]
        return web.json_response({"predictions": predictions})

    def imagen_edit(
        self, instance: dict[str, Any], parameters: dict[str, Any], model: str
    ) -> web.Response:
        """Imagen's mask-based editing (Vertex AI's capability models): a raw image and a
        user-provided mask whose white pixels are changed."""
        if "capability" not in model or not isinstance(self, FakeVertex):
            return self._error(400, f"{model} does not support image editing")
        by_type = {r.get("referenceType"): r for r in instance["referenceImages"]}
        raw, mask = by_type.get("REFERENCE_TYPE_RAW"), by_type.get("REFERENCE_TYPE_MASK")
        if raw is None or mask is None or raw.get("referenceId") == mask.get("referenceId"):
            return self._error(400, "a raw and a mask reference image are required")
        mode = (mask.get("maskImageConfig") or {}).get("maskMode")
        if mode != "MASK_MODE_USER_PROVIDED" or parameters.get("editMode") not in (
            "EDIT_MODE_INPAINT_INSERTION",
            "EDIT_MODE_INPAINT_REMOVAL",
        ):
            return self._error(400, "unsupported maskMode or editMode")
        base64.b64decode(raw["referenceImage"]["bytesBase64Encoded"], validate=True)
        try:
            pixels = base64.b64decode(mask["referenceImage"]["bytesBase64Encoded"])
            width, height = int.from_bytes(pixels[16:20]), int.from_bytes(pixels[20:24])
            white = width * height - black_pixels(pixels)
        except Rejected as exc:
            return self._error(400, exc.message)
        made = b"\x89PNG imagen edit %d %s" % (white, instance["prompt"].encode())
        image = {"bytesBase64Encoded": base64.b64encode(made).decode(), "mimeType": "image/png"}
        return web.json_response({"predictions": [image] * parameters.get("sampleCount", 1)})

    def embed(self, body: dict[str, Any], method: str) -> web.Response:
        if method != "batchEmbedContents":
            return self._error(404, f"Method {method} not found")
        vectors = []
        for item in body.get("requests") or []:
            text = " ".join(p.get("text", "") for p in item["content"]["parts"])
            values = fake_vector(text)[: item.get("outputDimensionality") or None]
            vectors.append({"values": values})
        return web.json_response({"embeddings": vectors})


class FakeVertex(FakeGemini):
    """Vertex AI (``/v1/projects/…/publishers/google/models``) and its token endpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: dict[str, str] = {}  # access token -> service account
        self.token_requests = 0
        self.expires_in = 3600
        self._serial = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{call}",
            self.call,
        )
        app.router.add_post("/token", self.token)

    @property
    def token_uri(self) -> str:
        return self.url + "/token"

    def authorize(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        account = self.tokens.get(token) if scheme == "Bearer" else None
        if account is None:
            return self._error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        if account != SERVICE_ACCOUNT or request.match_info["project"] != PROJECT:
            return self._error(
                403,
                "Permission 'aiplatform.endpoints.predict' denied on resource "
                f"'projects/{request.match_info['project']}' (or it may not exist).",
            )
        return None

    def embed(self, body: dict[str, Any], method: str) -> web.Response:
        if method != "predict":
            return self._error(404, f"Method {method} not found")
        dimension = (body.get("parameters") or {}).get("outputDimensionality")
        predictions = []
        for instance in body.get("instances") or []:
            text = instance["content"]
            predictions.append(
                {
                    "embeddings": {
                        "values": fake_vector(text)[: dimension or None],
                        "statistics": {"token_count": len(text.split()), "truncated": False},
                    }
                }
            )
        return web.json_response({"predictions": predictions})

    async def token(self, request: web.Request) -> web.Response:
        """RFC 7523 JWT bearer grant, verified against ``TEST_KEY``'s public half."""
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            header, payload, signature = str(form.get("assertion", "")).split(".")
            TEST_KEY.public_key().verify(
                _unb64(signature),
                f"{header}.{payload}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            claims = orjson.loads(_unb64(payload))
        except Exception:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                status=400,
            )
        audiences = (GOOGLE_TOKEN_URI, self.token_uri)
        if claims.get("aud") not in audiences or claims.get("exp", 0) < time.time():
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT claims."},
                status=400,
            )
        if "cloud-platform" not in claims.get("scope", ""):
            return web.json_response({"error": "invalid_scope"}, status=400)
        access = f"ya29.fake-{next(self._serial)}"
        self.tokens[access] = str(claims.get("iss"))
        return web.json_response(
            {"access_token": access, "expires_in": self.expires_in, "token_type": "Bearer"}
        )


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def other_service_account(key_json: str) -> str:
    """The same key file for another account: it gets tokens, but no access to the project."""
    info = orjson.loads(key_json)
    info["client_email"] = "intruder@other-project.iam.gserviceaccount.com"
    return orjson.dumps(info).decode()
