"""The process's copy of a kept response is its JSON: what a reader changes stays its own."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import orjson

from sluicegate.responses.kept import KeptResponses
from sluicegate.stores.responses import KeptResponse


def test_a_reader_gets_a_copy_and_the_size_is_the_json() -> None:
    async def run() -> None:
        kept = KeptResponses(None, 60)
        now = time.time()
        response = {"id": "r1", "output": [{"type": "message", "content": "hi"}]}
        items = [{"type": "message", "role": "user", "content": "hello"}]
        await kept.put(KeptResponse("r1", "default", "a", now, now + 60, response, items))
        found = await kept.get("r1", "default", "a")
        assert found is not None and found.response == response and found.input == items
        found.output.append({"type": "message", "content": "changed"})
        again = await kept.get("r1", "default", "a")
        assert again is not None and again.response == response
        assert kept._bytes == len(orjson.dumps(response)) + len(orjson.dumps(items))

    asyncio.run(run())


def test_the_encoded_answer_is_kept_as_it_was_sent() -> None:
    async def run() -> None:
        kept = KeptResponses(None, 60)
        now = time.time()
        response = {"id": "r1", "output": []}
        sent = b'{"id": "r1", "output": []}'  # as guardrails(out) may have left it
        await kept.put(KeptResponse("r1", "default", "a", now, now + 60, response, []), sent)
        assert kept._bytes == len(sent) + len(b"[]")
        found = await kept.get("r1", "default", "a")
        assert found is not None and found.response == response

    asyncio.run(run())


def test_the_kept_json_takes_about_its_own_size() -> None:
    # orjson's bytes keep the buffer they grew in; held by thousands that adds up.
    async def run() -> None:
        kept = KeptResponses(None, 3600)
        now = time.time()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(500):
            response = {"id": f"r{i}", "output": [{"type": "message", "text": "y" * 3000}]}
            encoded = orjson.dumps(response)
            kept_one = KeptResponse(f"r{i}", "default", "a", now, now + 60, response, [])
            await kept.put(kept_one, encoded)
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert held < kept._bytes * 1.5, (held, kept._bytes)

    asyncio.run(run())
