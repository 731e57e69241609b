"""Starting, timing and stopping the gateways that bench/matrix.py compares.

Each gateway is a process tree started here (never found by name), stopped by
the ids of that tree. Its cold start is the time from spawning the process to
the first answered chat request, polled every 20 ms: what a restart or a
scale-out costs before the new process carries traffic.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from procs import log, process_tree

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RUN_DIR = os.path.join(HERE, ".run")
LITELLM_VENV = os.path.join(HERE, ".peers", "litellm")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(name: str, text: str, workdir: str, python: str) -> tuple[subprocess.Popen[bytes], str]:
    """``sluicegate serve`` on a config written to ``workdir`` (where a spill file would land
    too), once ``/readyz`` answers: the process and its base URL. For the scenario scripts
    (bench/audit.py, bench/guardrails.py) that compare two configs of the same gateway."""
    path = os.path.join(workdir, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    port = free_port()
    logfile = os.path.join(workdir, f"{name}.log")
    with open(logfile, "w") as out:
        proc = subprocess.Popen(
            [python, "-m", "sluicegate", "serve", "--config", path, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"{name}: sluicegate exited during start-up; see {logfile}")
        try:
            urllib.request.urlopen(url + "/readyz", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise SystemExit(f"{name}: no /readyz after 30 s")
    log(f"{name}: pid {proc.pid} on {url}")
    return proc, url


@dataclass
class Gateway:
    """One gateway under test: how to start it and what it is called in the results."""

    name: str  # the results' key: "sluicegate", "sluicegate-realistic", "litellm"
    product: str  # "sluicegate" or "litellm": the plot and tables group by it
    version: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    cold_start_s: float | None = None
    logfile: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> set[int]:
        return set(process_tree([self.proc.pid])) if self.proc else set()

    def start(self, probe_model: str, api_key: str, limit_s: float = 120.0) -> None:
        os.makedirs(RUN_DIR, exist_ok=True)
        self.logfile = os.path.join(RUN_DIR, f"{self.name}-{self.port}.log")
        body = json.dumps(
            {"model": probe_model, "messages": [{"role": "user", "content": "ping"}]}
        ).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
        with open(self.logfile, "wb") as out:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=REPO,
                start_new_session=True,  # its own process group: a Ctrl-C reaches us only
            )
        while time.perf_counter() - t0 < limit_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited during start-up; see {self.logfile}")
            req = urllib.request.Request(
                self.base + "/v1/chat/completions", data=body, headers=headers, method="POST"
            )
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    r.read()
                    if r.status == 200:
                        self.cold_start_s = round(time.perf_counter() - t0, 3)
                        break
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.02)
        else:
            self.stop()
            raise RuntimeError(f"{self.name}: no answer within {limit_s:.0f} s; see {self.logfile}")
        log(f"[{self.name}] first request served {self.cold_start_s} s after spawn")

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = process_tree([self.proc.pid])
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        for pid in pids:  # workers that outlived their supervisor
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        self.proc = None


def installed_version(python: str, package: str) -> str:
    """The version of ``package`` in the environment of ``python``."""
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def sluicegate(name: str, config: str, workers: int, python: str, env: dict[str, str]) -> Gateway:
    port = free_port()
    version = installed_version(python, "sluicegate")
    argv = [python, "-m", "sluicegate", "serve", "--config", config]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return Gateway(name, "sluicegate", version, argv, env, port)


def litellm_available() -> bool:
    return os.path.exists(os.path.join(LITELLM_VENV, "bin", "litellm"))


def litellm(
    workers: int, name: str = "litellm", extra_env: dict[str, str] | None = None
) -> Gateway:
    """The LiteLLM proxy from `make bench-peers`, set up as its production guide says:
    errors-only logging (which also silences uvicorn's access log), the bundled model
    cost map (no fetch at start-up), no admin UI, master-key auth and no database.
    ``litellm-realistic`` runs bench/peers/litellm-realistic.yaml (scenario 2)."""
    port = free_port()
    version = installed_version(os.path.join(LITELLM_VENV, "bin", "python"), "litellm")
    argv = [os.path.join(LITELLM_VENV, "bin", "litellm")]
    argv += ["--config", os.path.join(HERE, "peers", f"{name}.yaml")]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", str(workers)]
    env = {
        "LITELLM_LOG": "ERROR",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MODE": "PRODUCTION",
        "DISABLE_ADMIN_UI": "True",
        **(extra_env or {}),
    }
    return Gateway(name, "litellm", version, argv, env, port)
