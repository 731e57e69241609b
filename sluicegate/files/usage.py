"""A batch's usage, read from its results as they are relayed to the client.

OpenAI's (and Azure's) output file has a line per request with the chat answer, usage and
model included, under ``response.body``; Anthropic's results have the message under
``result.message`` for each request that ``succeeded``. Lines are read one at a time as
the bytes pass, so a results file of any size is never held whole.

Batches cost half the price table's (OpenAI, Azure and Anthropic price them so): each
line is priced by its own model.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.telemetry.pricing import PriceTable
from sluicegate.telemetry.usage import TokenCounts, read_usage

BATCH_DISCOUNT = 0.5
_MAX_LINE = 16 * 1024 * 1024  # a longer line is skipped, not held


class BatchUsage:
    def __init__(self, api: str) -> None:
        self.api = api
        self.by_model: dict[str, TokenCounts] = {}
        self._partial = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> None:
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            self._line(data[start:end])
            start = end + 1
        rest = data[start:]
        if len(self._partial) + len(rest) > _MAX_LINE:
            self._partial.clear()
            self._skipping = True
        elif not self._skipping:
            self._partial += rest

    def finish(self) -> None:
        self._line(b"")

    def _line(self, piece: bytes) -> None:
        line = bytes(self._partial) + piece if self._partial else piece
        self._partial.clear()
        skipping, self._skipping = self._skipping, False
        if skipping or not line.strip():
            return
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        answer = _answer(self.api, item)
        if answer is None:
            return
        model = answer.get("model")
        if not isinstance(model, str):
            return
        counts = self.by_model.setdefault(model, TokenCounts())
        one = read_usage(answer.get("usage"))
        if one is not None:
            counts.input += one.input
            counts.output += one.output
            counts.cached += one.cached
            counts.cache_write += one.cache_write
            counts.reasoning += one.reasoning

    @property
    def model(self) -> str | None:
        """The model of the most tokens (a batch usually has one)."""
        if not self.by_model:
            return None
        return max(self.by_model, key=lambda m: self.by_model[m].input + self.by_model[m].output)

    def total(self) -> TokenCounts | None:
        if not self.by_model:
            return None
        out = TokenCounts()
        for counts in self.by_model.values():
            out.input += counts.input
            out.output += counts.output
            out.cached += counts.cached
            out.cache_write += counts.cache_write
            out.reasoning += counts.reasoning
        return out

    def cost(self, prices: PriceTable) -> float | None:
        costs = [prices.cost(model, counts) for model, counts in self.by_model.items()]
        known = [c for c in costs if c is not None]
        return sum(known) * BATCH_DISCOUNT if known else None


def _answer(api: str, item: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    if api == "anthropic":
        result = item.get("result")
        if not isinstance(result, dict) or result.get("type") != "succeeded":
            return None
        message = result.get("message")
        return message if isinstance(message, dict) else None
    response = item.get("response")
    if not isinstance(response, dict) or response.get("status_code") != 200:
        return None
    body = response.get("body")
    return body if isinstance(body, dict) else None
