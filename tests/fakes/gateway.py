"""Run a real sluicegate server (uvicorn, a loopback port) inside the test process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
import yaml

from sluicegate.app import create_app
from sluicegate.config.load import load_config, parse_config
from sluicegate.runtime import Runtime
from sluicegate.tls.protocol import listener_options


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def without_keys(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``auth: none`` on each gateway that sets no ``auth``.

    A gateway without consumers refuses every request unless its config says ``auth:
    none``; most tests run gateways without consumers (or add them later through the Admin
    API), so the harness says it for them. It changes nothing for a gateway that has
    consumers: they are asked for their keys. Tests of authentication itself run with
    ``keyless=False``."""
    out = dict(config)
    out.setdefault("auth", "none")
    tenants = out.get("gateways")
    if isinstance(tenants, list):
        out["gateways"] = [{"auth": "none", **t} if isinstance(t, dict) else t for t in tenants]
    return out


class RunningGateway:
    """``config`` as a document, or ``path``: a file the gateway reads and watches for edits.

    ``keyless``: ``config`` goes through ``without_keys``; tests of authentication itself
    pass False. With ``gateway.tls`` it serves HTTPS as ``sluicegate serve`` does (its
    certificate files are watched every ``poll_interval``).
    """

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        path: Path | None = None,
        poll_interval: float = 0.5,
        keyless: bool = True,
    ) -> None:
        document = without_keys(config or {}) if keyless else (config or {})
        loaded = load_config(path) if path is not None else parse_config(document, env={})
        self.runtime = Runtime(loaded, config_path=path, poll_interval=poll_interval)
        self.port = free_port()
        tls = loaded.config.gateway.tls
        self.scheme = "https" if tls is not None else "http"
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(self.runtime),
                host="127.0.0.1",
                port=self.port,
                loop="uvloop",
                lifespan="on",
                access_log=False,
                log_level="warning",
                **listener_options(tls, poll_interval),  # as `sluicegate serve` runs it
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> RunningGateway:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve_process(
    folder: Path, config: dict[str, Any], keyless: bool = True, args: tuple[str, ...] = ()
) -> subprocess.Popen[str]:
    """``sluicegate serve`` as its own process, ``config`` written to folder/gateway.yaml
    (through ``without_keys`` unless ``keyless`` is False); its output is kept (pipes) for
    the caller to read or scan once it has stopped; ``args`` are more options of ``serve``."""
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(without_keys(config) if keyless else config))
    return subprocess.Popen(
        [sys.executable, "-m", "sluicegate", "serve", "--config", str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=folder,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
