"""The file and the store together, as real ``sluicegate serve`` processes run them.

A store entity that has the name of one of the served file's (``config apply`` of the
served file) is shadowed: the file's runs. A store entity that no longer fits the
file (a rule naming a service only an earlier file defined) is left out. Either is
reported (a WARNING, ``/admin/health``'s ``issues``), never a refused change or a
start that fails; and no message names a position of the file that is not in it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.fakes.gateway import free_port, serve_process

ADMIN_KEY = "adm-layers-key-0001"
TEAM_KEY = "sk-layers-team-0001"
SIDE_KEY = "sk-layers-side-0002"


def served(folder: Path, port: int, services: list[str]) -> dict[str, Any]:
    return {
        "gateway": {
            "listen": f"127.0.0.1:{port}",
            "admin_key": ADMIN_KEY,
            "store": f"sqlite:///{folder / 'store.db'}",
        },
        "services": [{"name": name, "provider": "mock"} for name in services],
        "rules": [
            {
                "name": "chat",
                "match": {"models": ["chat"]},
                "targets": [{"service": services[0]}],
                "fallbacks": [{"service": name} for name in services[1:2]],
            }
        ],
        "consumers": [{"name": "team", "keys": [TEAM_KEY]}],
    }


def wait_until(check: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def start(folder: Path, config: dict[str, Any]) -> tuple[subprocess.Popen[str], str]:
    proc = serve_process(folder, config, keyless=False)
    url = "http://" + config["gateway"]["listen"]

    def ready() -> bool:
        assert proc.poll() is None, f"the server exited with {proc.returncode}: {stop(proc)}"
        try:
            return httpx.get(url + "/readyz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, 30)
    return proc, url


def stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.terminate()
    _, err = proc.communicate(timeout=20)
    return err


def chat(url: str, key: str, model: str = "chat") -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=20,
    )


def admin(url: str, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        url + "/admin" + path,
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json=body,
        timeout=20,
    )


def issues(url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = admin(url, "GET", "/health").json()["issues"]
    return found


def apply(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", "config", "apply", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


def test_applying_the_served_file_runs_the_file_and_survives_a_restart(tmp_path: Path) -> None:
    services = ["one", "two", "three", "four"]
    config = served(tmp_path, free_port(), services)
    proc, url = start(tmp_path, config)
    try:
        applied = apply(tmp_path / "gateway.yaml")
        assert applied.returncode == 0, applied.stderr
        assert "applied 6 change(s)" in applied.stdout
        # The running instance follows the store: the store's copies are shadowed, reported.
        wait_until(lambda: len(issues(url)) == 6)
        shadowed = {(i["kind"], i["name"]) for i in issues(url)}
        assert shadowed == {
            *(("service", name) for name in services),
            ("rule", "chat"),
            ("consumer", "team"),
        }
        assert all(i["source"] == "store" and i["left_out"] for i in issues(url))
        assert "gateway.yaml" in issues(url)[0]["message"]
        assert chat(url, TEAM_KEY).status_code == 200
    finally:
        err = stop(proc)
    assert "refused" not in err, err
    assert "services[4]" not in err and "services[7]" not in err, err
    assert "store service 'four'" in err, err

    proc, url = start(tmp_path, config)  # the restart a crash loop began with
    try:
        assert chat(url, TEAM_KEY).status_code == 200
        assert len(issues(url)) == 6
    finally:
        err = stop(proc)
    assert "store service 'one'" in err and "services[4]" not in err, err

    # Once the file holds only its gateway section, the applied entities run.
    proc, url = start(tmp_path, {"gateway": config["gateway"]})
    try:
        assert chat(url, TEAM_KEY).status_code == 200
        assert issues(url) == []
        services_shown = admin(url, "GET", "/services").json()["data"]
        assert {s["source"] for s in services_shown} == {"store"}
    finally:
        stop(proc)


def test_a_store_entity_that_no_longer_fits_the_file_is_left_out(tmp_path: Path) -> None:
    config = served(tmp_path, free_port(), ["main", "extra"])
    proc, url = start(tmp_path, config)
    try:
        side = {"name": "side", "match": {"models": ["side"]}, "targets": [{"service": "extra"}]}
        assert admin(url, "POST", "/rules", side).status_code == 201
        team = {"name": "side-team", "keys": [SIDE_KEY], "rules": ["side"]}
        assert admin(url, "POST", "/consumers", team).status_code == 201
        assert chat(url, SIDE_KEY, "side").status_code == 200

        # The file loses the service the store's rule names: the edit is taken.
        edited = served(tmp_path, 0, ["main"])
        edited["gateway"] = config["gateway"]
        (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(edited))
        wait_until(lambda: chat(url, TEAM_KEY, "side").status_code == 404)
        assert chat(url, TEAM_KEY).status_code == 200
        assert chat(url, SIDE_KEY, "side").status_code == 401  # its consumer went with it
        assert {(i["kind"], i["name"], i["path"], i["message"]) for i in issues(url)} == {
            ("rule", "side", "targets[0].service", "unknown service 'extra'"),
            ("consumer", "side-team", "rules[0]", "unknown rule 'side'"),
        }
    finally:
        err = stop(proc)
    assert "edit refused" not in err, err
    assert "store rule 'side': targets[0].service: unknown service 'extra'" in err, err
    assert "rules[1]" not in err, err

    proc, url = start(tmp_path, edited)
    try:
        assert chat(url, TEAM_KEY).status_code == 200
        assert chat(url, TEAM_KEY, "side").status_code == 404
        assert len(issues(url)) == 2
        # The rule is still in the store, where it can be mended or deleted.
        assert admin(url, "DELETE", "/consumers/side-team").status_code == 204
        assert admin(url, "DELETE", "/rules/side").status_code == 204
        assert issues(url) == []
    finally:
        err = stop(proc)
    assert "store rule 'side'" in err, err
