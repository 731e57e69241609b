"""A fake of the providers' Files and Batches APIs, in their documented wire formats.

OpenAI's (under ``/v1``) and Azure OpenAI's (under ``/openai``, ``api-version`` in the query,
the key in ``api-key``):

    POST   /files                   multipart: file, purpose → a file object
    GET    /files  ·  GET|DELETE /files/{id}  ·  GET /files/{id}/content
    POST   /batches                 {input_file_id, endpoint, completion_window, metadata}
    GET    /batches  ·  GET /batches/{id}  ·  POST /batches/{id}/cancel

A batch completes the first time it is retrieved: each line of its input file gets an answer
line in its output file, with usage ``PROMPT`` and ``COMPLETION`` tokens per line.

Anthropic's Message Batches (``/v1/messages/batches``, ``x-api-key`` and
``anthropic-version``): create, retrieve, list, cancel, delete and ``/results`` (JSONL), each
request ending ``succeeded`` with usage ``PROMPT``/``COMPLETION`` the first time the batch is
retrieved. ``results_url`` names this server.

Every request is kept (method, path, query, headers, body) in ``seen``; uploads are read part
by part and kept whole for the assertions.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer

OPENAI_KEY = "sk-files-upstream-1"
AZURE_KEY = "azure-files-upstream-1"
ANTHROPIC_KEY = "sk-ant-batches-upstream-1"
AZURE_VERSION = "2024-10-21"
PROMPT, COMPLETION = 1000, 500


class FakeBatches(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.message_batches: dict[str, dict[str, Any]] = {}
        self.results: dict[str, bytes] = {}
        self.seen: list[dict[str, Any]] = []
        self.first_part = threading.Event()  # an upload's first piece of file content came
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        for prefix in ("/v1", "/openai"):
            app.router.add_post(prefix + "/files", self.upload)
            app.router.add_get(prefix + "/files", self.list_files)
            app.router.add_get(prefix + "/files/{id}", self.get_file)
            app.router.add_delete(prefix + "/files/{id}", self.delete_file)
            app.router.add_get(prefix + "/files/{id}/content", self.content)
            app.router.add_post(prefix + "/batches", self.create_batch)
            app.router.add_get(prefix + "/batches", self.list_batches)
            app.router.add_get(prefix + "/batches/{id}", self.get_batch)
            app.router.add_post(prefix + "/batches/{id}/cancel", self.cancel_batch)
        batches = "/v1/messages/batches"
        app.router.add_post(batches, self.create_message_batch)
        app.router.add_get(batches, self.list_message_batches)
        app.router.add_get(batches + "/{id}", self.get_message_batch)
        app.router.add_post(batches + "/{id}/cancel", self.cancel_message_batch)
        app.router.add_delete(batches + "/{id}", self.delete_message_batch)
        app.router.add_get(batches + "/{id}/results", self.message_results)

    # ------------------------------------------------------------ shared
    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}upstream"

    def _keep(self, request: web.Request, body: Any = None) -> None:
        self.seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body,
            }
        )

    @staticmethod
    def _openai_error(status: int, message: str, code: str | None = None) -> web.Response:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
        return web.json_response({"error": error}, status=status)

    def _openai_refusal(self, request: web.Request) -> web.Response | None:
        if request.path.startswith("/openai/"):
            if request.query.get("api-version") != AZURE_VERSION:
                return self._openai_error(404, "Resource not found")
            if request.headers.get("api-key") != AZURE_KEY:
                return self._openai_error(401, "Access denied due to invalid subscription key.")
            return None
        if request.headers.get("authorization") != f"Bearer {OPENAI_KEY}":
            return self._openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        return None

    # ------------------------------------------------------------ files
    async def upload(self, request: web.Request) -> web.Response:
        refused = self._openai_refusal(request)
        if refused is not None:
            self._keep(request)
            return refused
        reader = await request.multipart()
        purpose, name, data = None, None, b""
        async for part in reader:
            if part.name == "purpose":
                purpose = (await part.read()).decode()
            elif part.name == "file":
                name = part.filename
                chunks = []
                while chunk := await part.read_chunk(65536):
                    self.first_part.set()
                    chunks.append(chunk)
                data = b"".join(chunks)
        self._keep(request, {"purpose": purpose, "filename": name, "bytes": len(data)})
        if purpose is None or name is None:
            return self._openai_error(400, "file and purpose are required")
        file = self._file(name, purpose, data)
        return web.json_response(file)

    def _file(self, name: str, purpose: str, data: bytes) -> dict[str, Any]:
        file = {
            "id": self._id("file-"),
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
        }
        self.files[file["id"]] = file
        self.contents[file["id"]] = data
        return file

    async def list_files(self, request: web.Request) -> web.Response:
        self._keep(request)
        refused = self._openai_refusal(request)
        if refused is not None:
            return refused
        data = list(self.files.values())
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def get_file(self, request: web.Request) -> web.Response:
        self._keep(request)
        refused = self._openai_refusal(request)
        if refused is not None:
            return refused
        file = self.files.get(request.match_info["id"])
        if file is None:
            return self._openai_error(404, "No such File object", "file_not_found")
        return web.json_response(file)

    async def delete_file(self, request: web.Request) -> web.Response:
        self._keep(request)
        refused = self._openai_refusal(request)
        if refused is not None:
            return refused
        file = self.files.pop(request.match_info["id"], None)
        if file is None:
            return self._openai_error(404, "No such File object", "file_not_found")
        return web.json_response({"id": file["id"], "object": "file", "deleted": True})

    async def content(self, request: web.Request) -> web.StreamResponse:
        self._keep(request)
        refused = self._openai_refusal(request)
        if refused is not None:
            return refused
        data = self.contents.get(request.match_info["id"])
        if data is None:
            return self._openai_error(404, "No such File object", "file_not_found")
        response = web.StreamResponse(headers={"content-type": "application/octet-stream"})
        await response.prepare(request)
        for start in range(0, len(data), 100):  # in pieces: lines cut across writes
            await response.write(data[start : start + 100])
        await response.write_eof()
        return response

    # ------------------------------------------------------------ batches
    async def create_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._keep(request, body)
        refused = self._openai_refusal(request)
        if refused is not None:
            return refused
        if body.get("input_file_id") not in self.files:
            return self._openai_error(400, "Invalid input_file_id", "invalid_file")
        if body.get("completion_window") != "24h" or not body.get("endpoint"):
            return self._openai_error(400, "endpoint and completion_window 24h are required")
        batch = {
            "id": self._id("batch_"),
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        self.batches[batch["id"]] = batch
        return web.json_response(batch)

    def _complete(self, batch: dict[str, Any]) -> None:
        if batch["status"] != "validating":
            return
        lines = self.contents[batch["input_file_id"]].splitlines()
        out = []
        for n, line in enumerate(lines):
            ask = orjson.loads(line)
            usage = {
                "prompt_tokens": PROMPT,
                "completion_tokens": COMPLETION,
                "total_tokens": PROMPT + COMPLETION,
            }
            body = {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "model": ask["body"]["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"answer {n}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
            response = {"status_code": 200, "request_id": f"req_{n}", "body": body}
            item = {"id": f"batch_req_{n}", "custom_id": ask["custom_id"], "response": response}
            out.append(orjson.dumps({**item, "error": None}))
        output = self._file("batch_output.jsonl", "batch_output", b"\n".join(out) + b"\n")
        batch.update(
            status="completed",
            output_file_id=output["id"],
            completed_at=int(time.time()),
            request_counts={"total": len(out), "completed": len(out), "failed": 0},
        )

    async def get_batch(self, request: web.Request) -> web.Response:
        self._keep(request)
        refused = self._openai_refusal(request)
        if refused is not None:
            return refused
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self._openai_error(404, "No such batch", "batch_not_found")
        self._complete(batch)
        return web.json_response(batch)

    async def cancel_batch(self, request: web.Request) -> web.Response:
        self._keep(request)
        refused = self._openai_refusal(request)
        if refused is not None:
            return refused
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self._openai_error(404, "No such batch", "batch_not_found")
        if batch["status"] == "validating":
            batch["status"] = "cancelling"
        return web.json_response(batch)

    async def list_batches(self, request: web.Request) -> web.Response:
        self._keep(request)
        refused = self._openai_refusal(request)
        if refused is not None:
            return refused
        data = list(self.batches.values())
        return web.json_response({"object": "list", "data": data, "has_more": False})

    # ------------------------------------------------------------ Anthropic's message batches
    def _anthropic_refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-api-key") != ANTHROPIC_KEY:
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            return web.json_response({"type": "error", "error": error}, status=401)
        if not request.headers.get("anthropic-version"):
            error = {"type": "invalid_request_error", "message": "anthropic-version is required"}
            return web.json_response({"type": "error", "error": error}, status=400)
        return None

    @staticmethod
    def _not_found(what: str) -> web.Response:
        error = {"type": "not_found_error", "message": f"{what} not found"}
        return web.json_response({"type": "error", "error": error}, status=404)

    async def create_message_batch(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._keep(request, body)
        refused = self._anthropic_refusal(request)
        if refused is not None:
            return refused
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            error = {"type": "invalid_request_error", "message": "requests: at least one"}
            return web.json_response({"type": "error", "error": error}, status=400)
        batch = {
            "id": self._id("msgbatch_"),
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {
                "processing": len(requests),
                "succeeded": 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "ended_at": None,
            "created_at": "2025-01-01T00:00:00Z",
            "expires_at": "2025-01-02T00:00:00Z",
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": None,
        }
        self.message_batches[batch["id"]] = {"batch": batch, "requests": requests}
        return web.json_response(batch)

    def _end(self, held: dict[str, Any]) -> dict[str, Any]:
        batch: dict[str, Any] = held["batch"]
        if batch["processing_status"] != "in_progress":
            return batch
        lines = []
        for ask in held["requests"]:
            message = {
                "id": "msg_" + ask["custom_id"],
                "type": "message",
                "role": "assistant",
                "model": ask["params"]["model"],
                "content": [{"type": "text", "text": "answer"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": PROMPT, "output_tokens": COMPLETION},
            }
            result = {"type": "succeeded", "message": message}
            lines.append(orjson.dumps({"custom_id": ask["custom_id"], "result": result}))
        self.results[batch["id"]] = b"\n".join(lines) + b"\n"
        count = len(lines)
        batch.update(
            processing_status="ended",
            ended_at="2025-01-01T01:00:00Z",
            request_counts={
                "processing": 0,
                "succeeded": count,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            results_url=f"{self.url}/v1/messages/batches/{batch['id']}/results",
        )
        return batch

    async def get_message_batch(self, request: web.Request) -> web.Response:
        self._keep(request)
        refused = self._anthropic_refusal(request)
        if refused is not None:
            return refused
        held = self.message_batches.get(request.match_info["id"])
        if held is None:
            return self._not_found("message batch")
        return web.json_response(self._end(held))

    async def cancel_message_batch(self, request: web.Request) -> web.Response:
        self._keep(request)
        refused = self._anthropic_refusal(request)
        if refused is not None:
            return refused
        held = self.message_batches.get(request.match_info["id"])
        if held is None:
            return self._not_found("message batch")
        batch = held["batch"]
        if batch["processing_status"] == "in_progress":
            batch.update(processing_status="canceling", cancel_initiated_at="2025-01-01T00:30:00Z")
        return web.json_response(batch)

    async def delete_message_batch(self, request: web.Request) -> web.Response:
        self._keep(request)
        refused = self._anthropic_refusal(request)
        if refused is not None:
            return refused
        held = self.message_batches.pop(request.match_info["id"], None)
        if held is None:
            return self._not_found("message batch")
        return web.json_response({"id": held["batch"]["id"], "type": "message_batch_deleted"})

    async def list_message_batches(self, request: web.Request) -> web.Response:
        self._keep(request)
        refused = self._anthropic_refusal(request)
        if refused is not None:
            return refused
        data = [held["batch"] for held in self.message_batches.values()]
        return web.json_response(
            {"data": data, "has_more": False, "first_id": None, "last_id": None}
        )

    async def message_results(self, request: web.Request) -> web.StreamResponse:
        self._keep(request)
        refused = self._anthropic_refusal(request)
        if refused is not None:
            return refused
        data = self.results.get(request.match_info["id"])
        if data is None:
            return self._not_found("results")
        response = web.StreamResponse(headers={"content-type": "application/binary"})
        await response.prepare(request)
        for start in range(0, len(data), 100):
            await response.write(data[start : start + 100])
        await response.write_eof()
        return response
