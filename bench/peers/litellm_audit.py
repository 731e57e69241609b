"""A LiteLLM logging callback for bench/peers/litellm-realistic.yaml: each request's
standard logging payload (what LiteLLM's spend logs hold) as one JSON line in a
buffered file, $LITELLM_AUDIT_FILE. Loaded by the LiteLLM proxy from this folder."""

import atexit
import json
import os

from litellm.integrations.custom_logger import CustomLogger


class AuditFile(CustomLogger):
    def __init__(self) -> None:
        super().__init__()
        path = os.environ.get("LITELLM_AUDIT_FILE", os.devnull)
        # Written in 64 KiB pieces, like a batched log; the rest when the process exits.
        self.file = open(path, "a", buffering=1 << 16)  # noqa: SIM115 (open for the process)
        atexit.register(self.file.close)

    def _write(self, kwargs: dict) -> None:
        record = kwargs.get("standard_logging_object") or {}
        self.file.write(json.dumps(record, default=str) + "\n")

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
        self._write(kwargs)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
        self._write(kwargs)


audit = AuditFile()
