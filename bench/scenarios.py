"""The six scenarios of `make bench` (bench/matrix.py): what each sends, and where.

A scenario is one request, sent over and over: its body, the path and model on
each target, and the direct request it is compared with (the same answer
straight from the nginx mock). nginx does not read request bodies, so the mock
chooses its answer by path; the gateways route by model name to those paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHAT = "/v1/chat/completions"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "In two sentences, what does an LLM gateway do?"},
]
LARGE_PROMPT_BYTES = 200 * 1024


def large_messages() -> list[dict[str, str]]:
    """A 200 KB prompt: a long document and a question about it."""
    line = "Line {:05d}: the gateway forwards, limits, caches and records every request.\n"
    text, i = [], 0
    size = 0
    while size < LARGE_PROMPT_BYTES:
        text.append(line.format(i))
        size += len(text[-1])
        i += 1
    doc = "".join(text)[:LARGE_PROMPT_BYTES]
    return [
        {"role": "system", "content": "You summarise documents."},
        {"role": "user", "content": doc + "\nSummarise the document above in one sentence."},
    ]


@dataclass
class Scenario:
    name: str
    title: str
    model: str  # the model the gateways route to the mock
    direct_path: str  # the mock's own path for the same answer
    stream: bool = False
    large: bool = False
    # the gateways (bench/gateways.py names) that run it
    gateways: tuple[str, ...] = ("sluicegate", "litellm")
    # per-target additions to the body (LiteLLM's cache is opt-in per request)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    # why a gateway is absent from this scenario (recorded in the results)
    absent: dict[str, str] = field(default_factory=dict)
    direct: bool = True  # False: the direct figures are another scenario's (same mock answer)
    path: str = CHAT  # where the gateways are sent it
    api: str = "chat"  # chat | responses: the body's shape

    def body(self, target: str) -> dict[str, Any]:
        if self.api == "responses":
            return {
                "model": self.model,
                "instructions": MESSAGES[0]["content"],
                "input": MESSAGES[1]["content"],
                "max_output_tokens": 128,
                "temperature": 0,
            }
        messages = large_messages() if self.large else MESSAGES
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": 128,
            "temperature": 0,
        }
        if self.stream:
            body["stream"] = True
        body.update(self.extra.get(target, {}))
        return body


SCENARIOS = [
    Scenario(
        "small",
        "1. small chat, no policies",
        "gpt-4o-mini",
        CHAT,
    ),
    Scenario(
        "realistic",
        "2. key auth + Redis rate limit + audit log",
        "gpt-4o-mini",
        CHAT,
        gateways=("sluicegate-realistic", "litellm-realistic"),
        direct=False,
        absent={
            "litellm": "LiteLLM's per-key limits and spend logs need its PostgreSQL schema, "
            "which it creates with prisma; prisma downloads its query engine at first use, "
            "and this machine reaches no host but PyPI. litellm-realistic is the nearest "
            "set-up without a database (bench/peers/litellm-realistic.yaml): the master key, "
            "its router's rpm/tpm limits counted in Redis, and a logging callback writing "
            "each request's spend record to a file; a lower bound on its real cost"
        },
    ),
    Scenario(
        "stream",
        "3. streaming, 50 chunks",
        "gpt-4o-mini-stream50",
        "/stream50" + CHAT,
        stream=True,
    ),
    Scenario(
        "large",
        "4. large prompt, 200 KB",
        "gpt-4o-mini",
        CHAT,
        large=True,
    ),
    Scenario(
        "cached",
        "5. exact-cache hit",
        "gpt-4o-mini-cached",
        CHAT,
        direct=False,
        extra={"litellm": {"cache": {"use-cache": True}}},
    ),
    Scenario(
        "responses",
        "6. Responses API, translated to chat, response kept",
        "gpt-4o-mini",
        CHAT,
        path="/v1/responses",
        api="responses",
        gateways=("sluicegate",),  # compared with sluicegate's own chat path (scenario 1)
        direct=False,
    ),
]
