"""TLS on both sides of the gateway, with a private CA made at test time (tests/fakes/certs.py).

Clients: HTTPS to the gateway (``gateway.tls``), its certificate reloaded from disk, and
client certificates (mTLS) that stand for a consumer's key. Upstreams: services and pools
behind TLS with a private CA (``tls_ca_file``), with verification off (``tls_verify``), and
requiring a client certificate of the gateway (``tls_client_cert_file``)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.conftest import KEY, OTHER_KEY, eventually
from tests.fakes.certs import Issued, TestCA, served_fingerprint
from tests.fakes.gateway import RunningGateway, free_port
from tests.fakes.openai_server import FakeOpenAI

MESSAGES = [{"role": "user", "content": "Say something nice"}]
HELLO = "Hello from the fake: Say something nice"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """Another CA nobody configured to trust."""
    return TestCA(tmp_path_factory.mktemp("stranger"), "stranger CA")


@pytest.fixture
def running() -> Iterator[list[RunningGateway]]:
    gateways: list[RunningGateway] = []
    yield gateways
    for gateway in gateways:
        gateway.stop()


def mock_config(
    tls: dict[str, Any], consumers: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "gateway": {"tls": tls},
        "services": [{"name": "demo", "provider": "mock"}],
        "rules": [
            {"name": "chat", "match": {"models": ["demo-model"]}, "targets": [{"service": "demo"}]},
            {
                "name": "other",
                "match": {"models": ["other-model"]},
                "targets": [{"service": "demo"}],
            },
        ],
        "consumers": consumers if consumers is not None else [{"name": "team-a", "keys": [KEY]}],
    }


def chat(
    client: httpx.Client, url: str, key: str | None = None, model: str = "demo-model"
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return client.post(
        url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES},
        headers=headers,
    )


def serves(gateway: RunningGateway, ca: TestCA, fingerprint: str) -> None:
    assert served_fingerprint("127.0.0.1", gateway.port, ca) == fingerprint


def logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    assert any(text in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- HTTPS to the gateway


def test_openai_sdk_over_https(ca: TestCA, running: list[RunningGateway]) -> None:
    server = ca.issue_server("gw-sdk")
    gateway = RunningGateway(
        mock_config({"cert_file": str(server.cert_file), "key_file": str(server.key_file)})
    ).start()
    running.append(gateway)
    assert gateway.url.startswith("https://")
    with httpx.Client(verify=ca.client_context()) as http:
        client = openai.OpenAI(
            base_url=gateway.url + "/v1", api_key=KEY, http_client=http, max_retries=0
        )
        whole = client.chat.completions.create(model="demo-model", messages=MESSAGES)  # type: ignore[arg-type]
        assert whole.choices[0].message.content == "mock: Say something nice"
        chunks = list(
            client.chat.completions.create(model="demo-model", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
            "mock: Say something nice"
        )
    assert served_fingerprint("127.0.0.1", gateway.port, ca) == server.fingerprint
    # A client that does not trust the private CA refuses the gateway's certificate.
    with httpx.Client() as untrusting, pytest.raises(httpx.ConnectError):
        untrusting.get(gateway.url + "/healthz")
    # Plain HTTP on the TLS port gets no answer.
    with httpx.Client() as plain, pytest.raises(httpx.TransportError):
        plain.get(gateway.url.replace("https://", "http://") + "/healthz")


def test_encrypted_key_with_its_password(ca: TestCA, running: list[RunningGateway]) -> None:
    server = ca.issue_server("gw-locked", password=b"open sesame")
    tls = {
        "cert_file": str(server.cert_file),
        "key_file": str(server.key_file),
        "key_password": "open sesame",
    }
    gateway = RunningGateway(mock_config(tls)).start()
    running.append(gateway)
    with httpx.Client(verify=ca.client_context()) as http:
        assert http.get(gateway.url + "/healthz").status_code == 200


def test_certificate_is_reloaded_when_its_files_change(
    ca: TestCA, running: list[RunningGateway], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = ca.issue_server("gw-first")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(first.cert_file, cert)
    shutil.copy(first.key_file, key)
    tls = {"cert_file": str(cert), "key_file": str(key)}
    gateway = RunningGateway(mock_config(tls), poll_interval=0.1).start()
    running.append(gateway)
    assert served_fingerprint("127.0.0.1", gateway.port, ca) == first.fingerprint
    with httpx.Client(verify=ca.client_context()) as kept_alive:
        assert chat(kept_alive, gateway.url, KEY).status_code == 200

        second = ca.issue_server("gw-second")
        shutil.copy(second.cert_file, cert)
        shutil.copy(second.key_file, key)
        eventually(lambda: serves(gateway, ca, second.fingerprint))
        # The connection made before the change goes on with the certificate it had.
        assert chat(kept_alive, gateway.url, KEY).status_code == 200

        # A key that does not belong to the certificate (a renewal half written) is
        # refused: the running certificate stays, and the gateway still answers.
        caplog.set_level(logging.ERROR, logger="sluicegate")
        third = ca.issue_server("gw-third")
        shutil.copy(third.cert_file, cert)
        eventually(lambda: logged(caplog, "the running certificate stays"))
        assert served_fingerprint("127.0.0.1", gateway.port, ca) == second.fingerprint
        with httpx.Client(verify=ca.client_context()) as fresh:
            assert chat(fresh, gateway.url, KEY).status_code == 200
        # Once the key arrives too, the pair is taken.
        shutil.copy(third.key_file, key)
        eventually(lambda: serves(gateway, ca, third.fingerprint))


# ---------------------------------------------------------------- client certificates


def mtls_config(ca: TestCA, server: Issued, mode: str) -> dict[str, Any]:
    tls = {
        "cert_file": str(server.cert_file),
        "key_file": str(server.key_file),
        "client_ca_file": str(ca.cert_file),
        "client_cert": mode,
    }
    consumers = [
        {"name": "team-a", "keys": [KEY], "rules": ["chat"], "mtls_subjects": ["team-a-client"]},
        {
            "name": "team-b",
            "keys": [OTHER_KEY],
            "rules": ["other"],
            "mtls_subjects": ["spiffe://example.org/team-b"],
        },
    ]
    return mock_config(tls, consumers)


def test_client_certificate_stands_for_a_key(
    ca: TestCA, stranger: TestCA, running: list[RunningGateway]
) -> None:
    gateway = RunningGateway(mtls_config(ca, ca.issue_server("gw-mtls"), "optional")).start()
    running.append(gateway)
    url = gateway.url
    team_a = ca.issue_client("team-a-client")
    with httpx.Client(verify=ca.client_context(team_a)) as client:
        answer = chat(client, url)  # no key: the certificate names team-a
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "mock: Say something nice"
        # team-a may not use rule "other": the certificate carries team-a's permissions.
        assert chat(client, url, model="other-model").status_code == 403
        models = client.get(url + "/v1/models").json()["data"]
        assert [m["id"] for m in models] == ["demo-model"]
        # A key sent with the certificate is what authenticates: a wrong one is refused.
        assert chat(client, url, key="sk-wrong-key-000000").status_code == 401
        assert chat(client, url, key=OTHER_KEY, model="other-model").status_code == 200

    # A subject alternative name (here a SPIFFE-style URI) maps just as the common name does.
    team_b = ca.issue_client("some-host", stem="team-b", sans=["spiffe://example.org/team-b"])
    with httpx.Client(verify=ca.client_context(team_b)) as client:
        assert chat(client, url, model="other-model").status_code == 200
        assert chat(client, url).status_code == 403

    # With client_cert: optional, a client without a certificate still uses its key.
    with httpx.Client(verify=ca.client_context()) as keyed:
        assert chat(keyed, url, KEY).status_code == 200
        assert chat(keyed, url).status_code == 401

    # A certificate of the trusted CA whose names map to no consumer: no key, no entry.
    nobody = ca.issue_client("nobody-client")
    with httpx.Client(verify=ca.client_context(nobody)) as client:
        refused = chat(client, url)
        assert refused.status_code == 401
        assert "certificate" in refused.json()["error"]["message"]

    # A certificate another CA issued (whatever its name) ends the handshake.
    impostor = stranger.issue_client("team-a-client", stem="impostor")
    with (
        httpx.Client(verify=ca.client_context(impostor)) as client,
        pytest.raises(httpx.TransportError),
    ):
        chat(client, url)


def test_required_client_certificate(ca: TestCA, running: list[RunningGateway]) -> None:
    gateway = RunningGateway(mtls_config(ca, ca.issue_server("gw-req"), "required")).start()
    running.append(gateway)
    with httpx.Client(verify=ca.client_context()) as client, pytest.raises(httpx.TransportError):
        chat(client, gateway.url, KEY)  # a key is not enough: no certificate, no connection
    team_a = ca.issue_client("team-a-client", stem="team-a-req")
    with httpx.Client(verify=ca.client_context(team_a)) as client:
        assert chat(client, gateway.url).status_code == 200


def test_a_subject_held_by_two_consumers_is_refused() -> None:
    from sluicegate.config.load import parse_config
    from sluicegate.errors import ConfigError

    config = {
        "services": [{"name": "demo", "provider": "mock"}],
        "rules": [{"name": "chat", "targets": [{"service": "demo"}]}],
        "consumers": [
            {"name": "a", "mtls_subjects": ["shared"]},
            {"name": "b", "mtls_subjects": ["shared"]},
        ],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(config, env={})
    assert caught.value.issues == [
        "consumers[1].mtls_subjects[0]: 'shared' already names consumer 'a'"
    ]


# ---------------------------------------------------------------- upstreams behind TLS


@pytest.fixture(scope="module")
def tls_openai(ca: TestCA) -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(tls=ca.server_context(ca.issue_server("upstream"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_openai(ca: TestCA) -> Iterator[FakeOpenAI]:
    """An upstream that requires a client certificate of the private CA."""
    server = FakeOpenAI(tls=ca.server_context(ca.issue_server("upstream-mtls"), ca)).start()
    yield server
    server.stop()


def https_service(name: str, port: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "openai",
        "host": "127.0.0.1",
        "port": port,
        "retries": 0,
        **extra,
    }


def upstream_config(services: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {
        "services": services,
        "rules": [
            {
                "name": s["name"],
                "match": {"models": [s["name"]]},
                "targets": [{"service": s["name"]}],
            }
            for s in services
        ],
        "consumers": [{"name": "team-a", "keys": [KEY]}],
        **more,
    }


def ask(gateway: RunningGateway, model: str) -> httpx.Response:
    with httpx.Client() as client:
        return chat(client, gateway.url, KEY, model)


def test_upstream_with_a_private_ca(
    ca: TestCA, tls_openai: FakeOpenAI, running: list[RunningGateway]
) -> None:
    port = tls_openai.port
    gateway = RunningGateway(
        upstream_config(
            [
                https_service("trusting", port, tls_ca_file=str(ca.cert_file)),
                https_service("default-trust", port),
            ]
        )
    ).start()
    running.append(gateway)
    answer = ask(gateway, "trusting")
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == HELLO

    refused = ask(gateway, "default-trust")
    assert refused.status_code == 502
    message = refused.json()["error"]["message"]
    assert "service 'default-trust'" in message
    assert "TLS" in message and "certificate" in message


def test_upstream_without_verification_warns(
    tls_openai: FakeOpenAI,
    running: list[RunningGateway],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = upstream_config([https_service("unverified", tls_openai.port, tls_verify=False)])
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    gateway = RunningGateway(path=path, poll_interval=0.1).start()
    running.append(gateway)
    warning = (
        "services[0].tls_verify: false, so service 'unverified' accepts any certificate "
        "(anyone on the network path can read and change its traffic)"
    )
    assert warning in gateway.runtime.table.warnings
    answer = ask(gateway, "unverified")
    assert answer.status_code == 200, answer.text

    caplog.set_level(logging.WARNING, logger="sluicegate")
    config["services"][0]["retries"] = 1
    path.write_text(yaml.safe_dump(config))  # a reload says it again
    eventually(lambda: logged(caplog, warning))


def test_upstream_requiring_a_client_certificate(
    ca: TestCA, mtls_openai: FakeOpenAI, running: list[RunningGateway]
) -> None:
    port = mtls_openai.port
    gateway_cert = ca.issue_client("sluicegate-gateway")
    gateway = RunningGateway(
        upstream_config(
            [
                https_service(
                    "with-cert",
                    port,
                    tls_ca_file=str(ca.cert_file),
                    tls_client_cert_file=str(gateway_cert.cert_file),
                    tls_client_key_file=str(gateway_cert.key_file),
                ),
                https_service("without-cert", port, tls_ca_file=str(ca.cert_file)),
            ]
        )
    ).start()
    running.append(gateway)
    answer = ask(gateway, "with-cert")
    assert answer.status_code == 200, answer.text
    refused = ask(gateway, "without-cert")
    assert refused.status_code == 502
    assert "service 'without-cert'" in refused.json()["error"]["message"]


def test_upstream_pool_and_its_probes_over_tls(
    ca: TestCA, mtls_openai: FakeOpenAI, running: list[RunningGateway]
) -> None:
    gateway_cert = ca.issue_client("sluicegate-pool")
    upstreams = [
        {
            "name": "pool",
            "targets": [{"url": mtls_openai.url}],
            "healthchecks": {
                "active": {"path": "/v1/models", "interval": "100ms", "unhealthy_failures": 1}
            },
            "tls_ca_file": str(ca.cert_file),
            "tls_client_cert_file": str(gateway_cert.cert_file),
            "tls_client_key_file": str(gateway_cert.key_file),
        },
        {
            "name": "untrusted-pool",
            "targets": [{"url": mtls_openai.url}],
            "healthchecks": {
                "active": {"path": "/v1/models", "interval": "100ms", "unhealthy_failures": 1}
            },
        },
    ]
    services = [
        {"name": "pooled", "type": "upstream", "provider": "openai", "upstream": "pool"},
        {
            "name": "untrusted",
            "type": "upstream",
            "provider": "openai",
            "upstream": "untrusted-pool",
            "retries": 0,
        },
    ]
    gateway = RunningGateway(upstream_config(services, upstreams=upstreams)).start()
    running.append(gateway)
    answer = ask(gateway, "pooled")
    assert answer.status_code == 200, answer.text
    pools = {pool.name: pool for pool in gateway.runtime.table.pools}

    # The probes use the pool's TLS settings: the trusted pool stays up, the other goes down.
    def probed() -> None:
        assert pools["untrusted-pool"].targets[0].health.state() == "down"
        assert pools["pool"].targets[0].health.state() == "healthy"

    eventually(probed)
    assert ask(gateway, "untrusted").status_code == 503


def test_upstream_tls_files_are_checked_at_load(tmp_path: Path) -> None:
    from sluicegate.config.load import parse_config
    from sluicegate.errors import ConfigError
    from sluicegate.routing.compile import compile_config

    missing = str(tmp_path / "missing.pem")
    config = upstream_config([https_service("broken", 443, tls_ca_file=missing)])
    with pytest.raises(ConfigError) as caught:
        compile_config(parse_config(config, env={}).config)
    assert caught.value.issues[0].startswith(f"services[0].tls_ca_file: cannot read {missing}")

    only_key = upstream_config([https_service("half", 443, tls_client_key_file=missing)])
    with pytest.raises(ConfigError) as caught:
        parse_config(only_key, env={})
    assert "tls_client_key_file needs tls_client_cert_file" in caught.value.issues[0]


def test_server_context_is_tls_12_or_newer(ca: TestCA) -> None:
    from sluicegate.tls.server import ServerTls

    server = ca.issue_server("ctx")
    context = ServerTls(str(server.cert_file), str(server.key_file)).context()
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE


# ---------------------------------------------------------------- sluicegate serve


def serve(folder: Path, config: dict[str, Any], *extra: str) -> subprocess.Popen[str]:
    path = folder / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.Popen(
        [sys.executable, "-m", "sluicegate", "serve", "--config", str(path), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TLS_KEY_PASSWORD": "open sesame"},
    )


def test_serve_with_workers_over_mtls(ca: TestCA, tmp_path: Path) -> None:
    server = ca.issue_server("serve", password=b"open sesame")
    port = free_port()
    config = mtls_config(ca, server, "required")
    config["gateway"]["listen"] = f"127.0.0.1:{port}"
    config["gateway"]["tls"]["key_password"] = "${TLS_KEY_PASSWORD}"
    proc = serve(tmp_path, config, "--workers", "2")
    team_a = ca.issue_client("team-a-client", stem="team-a-serve")
    url = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(verify=ca.client_context(team_a)) as client:

            def answers() -> httpx.Response:
                assert proc.poll() is None, proc.communicate()
                try:
                    return chat(client, url)
                except httpx.TransportError as exc:
                    raise AssertionError("not listening yet") from exc

            answer = eventually(answers, seconds=30)
            assert answer.status_code == 200, answer.text
            # Every worker has the context: a few new connections all answer.
            for _ in range(4):
                with httpx.Client(verify=ca.client_context(team_a)) as fresh:
                    assert chat(fresh, url).status_code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert f"on https://127.0.0.1:{port} (2 workers)" in err
    assert "open sesame" not in out + err


def test_serve_refuses_a_key_it_cannot_open(ca: TestCA, tmp_path: Path) -> None:
    server = ca.issue_server("serve-locked", password=b"another password")
    config = mock_config(
        {
            "cert_file": str(server.cert_file),
            "key_file": str(server.key_file),
            "key_password": "${TLS_KEY_PASSWORD}",
        }
    )
    config["gateway"]["listen"] = f"127.0.0.1:{free_port()}"
    proc = serve(tmp_path, config)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"gateway.tls: cannot load the certificate {server.cert_file} with its key" in err
    assert "Traceback" not in err and "open sesame" not in out + err

    missing = config | {"gateway": {"tls": {"cert_file": str(tmp_path / "none.crt")}}}
    validate = subprocess.run(
        [sys.executable, "-m", "sluicegate", "config", "validate", "/dev/stdin"],
        input=yaml.safe_dump(missing),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert validate.returncode == 1
    assert f"gateway.tls.cert_file: cannot read {tmp_path / 'none.crt'}" in validate.stderr


def test_the_tls_examples_in_the_docs_load(ca: TestCA) -> None:
    """The TLS examples of security.md and deployment.md, their /etc/sluicegate/tls/ files
    made here."""
    from sluicegate.config.load import parse_config
    from sluicegate.routing.compile import compile_config
    from sluicegate.tls.server import ServerTls

    server, client = ca.issue_server("docs-gateway"), ca.issue_client("docs-client")
    files = {
        "gateway.crt": server.cert_file,
        "gateway.key": server.key_file,
        "tls.crt": server.cert_file,
        "tls.key": server.key_file,
        "clients-ca.pem": ca.cert_file,
        "internal-ca.pem": ca.cert_file,
        "gateway-client.crt": client.cert_file,
        "gateway-client.key": client.key_file,
    }
    docs = Path(__file__).resolve().parents[2] / "docs"
    text = (docs / "security.md").read_text() + (docs / "deployment.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "/sluicegate/tls/" in b]
    assert len(blocks) == 4
    for block in blocks:
        for name, path in files.items():
            block = block.replace(f"/etc/sluicegate/tls/{name}", str(path))
        assert "/etc/sluicegate/tls/" not in block
        example = yaml.safe_load(block)
        config: dict[str, Any] = {
            "services": [{"name": "demo", "provider": "mock"}, *example.get("services", [])],
            "rules": [{"name": "chat", "targets": [{"service": "demo"}]}],
            "consumers": example.get("consumers", []),
            "gateway": example.get("gateway", {}),
        }
        loaded = parse_config(config, env={"SLUICEGATE_TLS_KEY_PASSWORD": ""})
        compile_config(loaded.config)
        tls = loaded.config.gateway.tls
        if tls is not None:
            ServerTls.of(tls).build()
