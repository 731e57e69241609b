"""Several ``sluicegate serve`` processes on loopback ports sharing one store and one Redis.

They run ``deploy/sluicegate.yaml`` (the file the docker-compose file and the
Kubernetes manifests run) with the same environment variables, and the routing
is applied to the store with ``sluicegate config apply deploy/routes.yaml``, as
the compose file's ``init`` service does. A ``Spreader`` sends requests round
robin over the instances that are up, like a load balancer.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.gateway import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


class Instance:
    """One gateway process; stop and start it again on the same port."""

    def __init__(self, index: int, env: Mapping[str, str], folder: Path) -> None:
        self.index = index
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        # Each instance spills the audit rows its store cannot take into a file of its own.
        self.env = {**env, "SLUICEGATE_AUDIT_SPILL": str(folder / "audit-spill.jsonl")}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self) -> None:
        command = [sys.executable, "-m", "sluicegate", "serve", "--config"]
        command += [
            str(DEPLOY / "sluicegate.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        with (self.folder / "serve.log").open("ab") as log:
            self.proc = subprocess.Popen(
                command, env=self.env, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"instance {self.index} did not start:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, seconds: float = 20) -> int:
        """SIGTERM, as a supervisor stops it: requests in flight finish, queued rows are written."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(seconds)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        path = self.folder / "serve.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


class Cluster:
    """``size`` instances on one store (``store``) and one Redis (``redis``), gateway ``name``."""

    def __init__(
        self,
        folder: Path,
        store: str,
        redis: str,
        name: str,
        admin_key: str,
        extra_env: Mapping[str, str] | None = None,
        size: int = 3,
    ) -> None:
        self.folder = folder
        self.admin_key = admin_key
        self.env = {
            **os.environ,
            "SLUICEGATE_GATEWAY_NAME": name,
            "SLUICEGATE_STORE": store,
            "SLUICEGATE_REDIS": redis,
            "SLUICEGATE_ADMIN_KEY": admin_key,
            **(extra_env or {}),
        }
        self.instances = [Instance(i, self.env, folder / f"i{i}") for i in range(size)]

    def apply(self, routes: Path = DEPLOY / "routes.yaml") -> str:
        """``sluicegate config apply`` with the instances' environment."""
        done = subprocess.run(
            [sys.executable, "-m", "sluicegate", "config", "apply", str(routes)],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self) -> Cluster:
        for instance in self.instances:  # all at once: they start side by side
            instance.launch()
        for instance in self.instances:
            instance.wait_ready()
        return self

    def restart(self, index: int) -> Instance:
        instance = self.instances[index]
        instance.launch()
        instance.wait_ready()
        return instance

    def close(self) -> None:
        for instance in self.instances:
            if instance.up:
                assert instance.proc is not None
                instance.proc.send_signal(signal.SIGTERM)
        for instance in self.instances:
            try:
                if instance.proc is not None:
                    instance.proc.wait(20)
            except subprocess.TimeoutExpired:
                instance.kill()

    @property
    def urls(self) -> list[str]:
        return [instance.url for instance in self.instances]

    def admin(self, index: int) -> httpx.Client:
        """An Admin API client on one instance."""
        return httpx.Client(
            base_url=self.instances[index].url,
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=10,
        )

    def spreader(self) -> Spreader:
        return Spreader(self)


class Spreader:
    """Round robin over the instances, like a load balancer with no retries: a request sent
    to an instance that is going away fails, and is not counted as completed."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._clients = [httpx.Client(base_url=url, timeout=30) for url in cluster.urls]

    def pick(self) -> int:
        with self._lock:
            return next(self._next) % len(self._clients)

    def post(self, path: str, body: Any, key: str, index: int | None = None) -> Answer:
        where = self.pick() if index is None else index
        try:
            response = self._clients[where].post(
                path, json=body, headers={"Authorization": f"Bearer {key}"}
            )
        except httpx.TransportError as exc:
            return Answer(where, None, None, type(exc).__name__)
        return Answer(where, response.status_code, response, None)

    def get(self, path: str, key: str, index: int) -> Answer:
        try:
            response = self._clients[index].get(path, headers={"Authorization": f"Bearer {key}"})
        except httpx.TransportError as exc:
            return Answer(index, None, None, type(exc).__name__)
        return Answer(index, response.status_code, response, None)

    def chat(
        self, key: str, model: str, text: str, index: int | None = None, **extra: Any
    ) -> Answer:
        body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
        return self.post("/v1/chat/completions", body, key, index)

    def each(self) -> Iterator[int]:
        return iter(range(len(self._clients)))

    def close(self) -> None:
        for client in self._clients:
            client.close()


class Answer:
    """What one request got: the instance it went to, and a response or a transport error."""

    def __init__(
        self, instance: int, status: int | None, response: httpx.Response | None, error: str | None
    ) -> None:
        self.instance = instance
        self.status = status
        self.response = response
        self.error = error

    @property
    def request_id(self) -> str | None:
        return None if self.response is None else self.response.headers.get("x-request-id")

    def __repr__(self) -> str:
        return f"Answer(instance={self.instance}, status={self.status}, error={self.error})"
