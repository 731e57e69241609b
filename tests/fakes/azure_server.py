"""A fake Azure OpenAI resource, and a fake Entra ID token endpoint, on one loopback server.

The inference API is OpenAI's (``FakeOpenAI`` answers) behind Azure's URLs:

    /openai/deployments/{deployment}/{chat/completions,completions,embeddings}?api-version=...
    /openai/v1/{chat/completions,completions,embeddings}      (the deployment is the body's model)
    /{tenant}/oauth2/v2.0/token                               (Entra ID client credentials)

Requests need ``api-key: azure-key`` or a bearer token this server issued; an
``ocp-apim-subscription-key`` header, when present, must be ``apim-key`` (an
API Management gateway in front). Special deployments, besides FakeOpenAI's:

    content-filter       400 with Azure's content_filter error (the prompt was filtered)
    filtered-output      200 whose answer stops with finish_reason "content_filter"
    prompt-too-long      400 code context_length_exceeded
"""

from __future__ import annotations

import base64
import itertools
import struct
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.brain import answer
from tests.fakes.openai_server import FakeOpenAI, read_turn

API_KEY = "azure-key"
APIM_KEY = "apim-key"
TENANT = "tenant-fake"
CLIENT_ID = "client-fake"
CLIENT_SECRET = "entra-secret"
SCOPE = "https://cognitiveservices.azure.com/.default"
API_VERSIONS = frozenset({"2024-10-21", "2024-06-01", "2025-04-01-preview"})
_SAFE = {"filtered": False, "severity": "safe"}
FILTER_RESULTS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
_BODY = web.RequestKey("body", dict[str, Any])


def vector(text: str) -> list[float]:
    """A deterministic embedding; multiples of 1/8 survive float32 exactly."""
    return [(len(text) % 8) / 8, 0.5, -0.25]


class FakeAzure(FakeOpenAI):
    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()
        self.token_requests: list[dict[str, str]] = []
        self._serial = itertools.count(1)
        self.token_lifetime = 3599

    def routes(self, app: web.Application) -> None:
        for style in ("/openai/deployments/{deployment}", "/openai/v1"):
            app.router.add_post(style + "/chat/completions", self.azure_chat)
            app.router.add_post(style + "/completions", self.azure_completions)
            app.router.add_post(style + "/embeddings", self.azure_embeddings)
        for path in ("/openai/responses", "/openai/v1/responses"):  # the model is in the body
            app.router.add_post(path, self.azure_responses)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self.token)

    # ------------------------------------------------------------ errors
    def _azure_error(self, http: int, code: str, message: str, **extra: Any) -> web.Response:
        error = {"code": code, "message": message, "param": None, "type": None, **extra}
        headers = {"Retry-After": "7"} if http == 429 else {}
        return web.json_response({"error": error}, status=http, headers=headers)

    def _error(self, status: int) -> web.Response:
        # FakeOpenAI's fail-<status> and flaky-<status>, in Azure's words.
        if status == 429:
            message = (
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
                "version 2024-10-21 have exceeded token rate limit of your current pricing "
                "tier. Please retry after 7 seconds."
            )
            return self._azure_error(429, "429", message)
        return self._azure_error(status, str(status), f"fake Azure error {status}")

    # ------------------------------------------------------------ checks
    async def record(self, request: web.Request) -> dict[str, Any]:
        if _BODY in request:
            return request[_BODY]
        body = await super().record(request)
        deployment = request.match_info.get("deployment")
        if deployment is not None:
            # The deployment, not the body, picks the model on this URL style.
            body = {**body, "model": deployment}
        request[_BODY] = body
        return body

    def _refused(self, request: web.Request) -> web.Response | None:
        if "deployment" in request.match_info:
            version = request.query.get("api-version")
            if version is None:
                return self._azure_error(404, "404", "Resource not found")
            if version not in API_VERSIONS:
                return self._azure_error(400, "BadRequest", "API version not supported")
        apim = request.headers.get("ocp-apim-subscription-key")
        if apim is not None and apim != APIM_KEY:
            return web.json_response(
                {
                    "statusCode": 401,
                    "message": "Access denied due to invalid subscription key. Make sure to "
                    "provide a valid key for an active subscription.",
                },
                status=401,
            )
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if request.headers.get("api-key") == API_KEY or bearer in self.tokens:
            return None
        return self._azure_error(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
            "to provide a valid key for an active subscription and use a correct regional API "
            "endpoint for your resource.",
        )

    # ------------------------------------------------------------ inference
    async def azure_responses(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        refused = self._refused(request)
        if refused is None and "api-version" not in request.query and "/v1/" not in request.path:
            refused = self._azure_error(404, "404", "Resource not found")
        return refused or await self.responses(request)

    async def azure_chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        refused = self._refused(request)
        if refused is not None:
            return refused
        model = str(body.get("model", ""))
        if model == "content-filter":
            return self._azure_error(
                400,
                "content_filter",
                "The response was filtered due to the prompt triggering Azure OpenAI's content "
                "management policy. Please modify your prompt and retry.",
                param="prompt",
                status=400,
                innererror={
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        **FILTER_RESULTS,
                        "violence": {"filtered": True, "severity": "medium"},
                    },
                },
            )
        if model == "prompt-too-long":
            return web.json_response(
                {
                    "error": {
                        "message": "This model's maximum context length is 128000 tokens. "
                        "However, your messages resulted in 130000 tokens. Please reduce the "
                        "length of the messages.",
                        "type": "invalid_request_error",
                        "param": "messages",
                        "code": "context_length_exceeded",
                    }
                },
                status=400,
            )
        if model == "filtered-output":
            return await self._filtered(request, body)
        return await self.chat(request)

    async def _filtered(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        """An answer cut by the output filter: a partial text, finish_reason content_filter."""
        text = "I cannot"
        base = {"id": "chatcmpl-filtered", "created": int(time.time()), "model": "gpt-4o"}
        prompt_filter = [{"prompt_index": 0, "content_filter_results": FILTER_RESULTS}]
        choice_filter = {**FILTER_RESULTS, "violence": {"filtered": True, "severity": "high"}}
        if not body.get("stream"):
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "prompt_filter_results": prompt_filter,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "content_filter",
                            "content_filter_results": choice_filter,
                        }
                    ],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunks: list[dict[str, Any]] = [
            # Azure's first chunk: no choices, the prompt's filter results.
            {"id": "", "object": "", "created": 0, "model": "", "choices": [],
             "prompt_filter_results": prompt_filter},
            {**base, "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                          "finish_reason": None}]},
            {**base, "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter",
                          "content_filter_results": choice_filter}]},
        ]  # fmt: skip
        for chunk in chunks:
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def azure_completions(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        refused = self._refused(request)
        if refused is not None:
            return refused
        prompt = body.get("prompt")
        text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
        turn = read_turn({"messages": [{"role": "user", "content": text}]})
        turn.max_tokens = body.get("max_tokens")
        ans = answer(turn)
        return web.json_response(
            {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "text": ans.text,
                        "index": 0,
                        "logprobs": None,
                        "finish_reason": "length" if ans.finish == "length" else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": ans.prompt_tokens,
                    "completion_tokens": ans.completion_tokens,
                    "total_tokens": ans.prompt_tokens + ans.completion_tokens,
                },
            }
        )

    async def azure_embeddings(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        refused = self._refused(request)
        if refused is not None:
            return refused
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        data = []
        for i, text in enumerate(texts or []):
            values = vector(str(text))
            embedding: Any = values
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack("<3f", *values)).decode()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        tokens = sum(len(str(t).split()) for t in texts or [])
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    # ------------------------------------------------------------ Entra ID
    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        fields = {k: str(v) for k, v in form.items()}
        self.token_requests.append({"tenant": request.match_info["tenant"], **fields})
        if request.match_info["tenant"] != TENANT:
            return self._aad_error(400, "invalid_request", 90002, "Tenant not found.")
        if fields.get("grant_type") != "client_credentials" or fields.get("scope") != SCOPE:
            return self._aad_error(400, "invalid_request", 90014, "A required field is missing.")
        if fields.get("client_id") != CLIENT_ID or fields.get("client_secret") != CLIENT_SECRET:
            return self._aad_error(
                401, "invalid_client", 7000215, "Invalid client secret provided."
            )
        token = f"entra-token-{next(self._serial)}"
        self.tokens.add(token)
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            }
        )

    def _aad_error(self, status: int, error: str, code: int, text: str) -> web.Response:
        return web.json_response(
            {
                "error": error,
                "error_description": f"AADSTS{code}: {text}",
                "error_codes": [code],
                "timestamp": "2026-01-01 00:00:00Z",
                "trace_id": "00000000-0000-0000-0000-000000000000",
                "correlation_id": "00000000-0000-0000-0000-000000000000",
            },
            status=status,
        )
