"""The format of the gateway's log: one line per event on standard error.

Every line starts with its time (UTC, ISO 8601, milliseconds) and its level:

    2026-12-07T08:16:32.123Z INFO sluicegate 0.1.0 serving 3 rules on http://127.0.0.1:8080

The access log (``sluicegate.access``) is JSON lines, each carrying ``ts`` and
``level`` itself, so it is written bare: a log shipper reads each line as one
JSON object. The server's own loggers (uvicorn's) go through the same format.
``log_config()`` is given to the server too, which applies it in each worker.
"""

from __future__ import annotations

import logging
import logging.config
import time
from typing import Any

ACCESS = "sluicegate.access"


def utc_stamp(seconds: float) -> str:
    """``2026-12-07T08:16:32.123Z``."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{int(seconds * 1000) % 1000:03d}Z"


class LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == ACCESS:
            return message  # JSON with its own ts and level (telemetry.recorder)
        line = f"{utc_stamp(record.created)} {record.levelname} {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class SaidAlready(logging.Filter):
    """Drops uvicorn's "Application startup failed. Exiting.": the gateway has just
    written the one line that says what failed (``App.lifespan``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Application startup failed. Exiting."


def log_config() -> dict[str, Any]:
    """The ``logging.config.dictConfig`` document; a new one for each use, since applying
    it consumes its factories."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"()": LineFormatter}},
        "filters": {"said_already": {"()": SaidAlready}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "filters": ["said_already"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
        # uvicorn's loggers carry no handlers of their own: their lines take the format above.
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def setup() -> None:
    logging.config.dictConfig(log_config())
    logging.captureWarnings(True)  # a library's warning is a log line like any other
