"""Run a real sluicegate server (uvicorn, a loopback port) inside the test process."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from sluicegate.app import create_app
from sluicegate.config.load import parse_config
from sluicegate.runtime import Runtime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RunningGateway:
    def __init__(self, config: dict[str, Any]) -> None:
        self.runtime = Runtime(parse_config(config, env={}))
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(self.runtime),
                host="127.0.0.1",
                port=self.port,
                loop="uvloop",
                http="httptools",
                lifespan="on",
                access_log=False,
                log_level="warning",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
