"""``sluicegate config apply`` and ``export`` on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet

from sluicegate.cli import main
from sluicegate.stores.open import open_store
from tests.fakes.gateway import RunningGateway
from tests.fakes.stores import BACKENDS, store_url

SECRET = "sk-upstream-secret-0001"
TEAM_KEY = "sk-team-key-0002"
ADMIN_KEY = "adm-sync-key-0001"


def config(store: str) -> dict[str, Any]:
    return {
        "gateway": {"store": store, "admin_key": ADMIN_KEY},
        "upstreams": [
            {
                "name": "pool",
                "algorithm": "least-connections",
                "targets": [{"url": "http://127.0.0.1:9", "weight": 2}],
                "credentials": {"header_name": "Authorization", "header_value": "Bearer ${SECRET}"},
            }
        ],
        "services": [
            {
                "name": "local",
                "type": "upstream",
                "provider": "openai-compatible",
                "upstream": "pool",
            },
            {"name": "demo", "provider": "mock", "timeout": "30s", "tags": ["demo"]},
        ],
        "rules": [
            {"name": "chat", "match": {"models": ["chat"]}, "targets": [{"service": "demo"}]},
            # Not "*": the reordered file below puts it first, and "chat" would never match.
            {"name": "all", "match": {"models": ["gpt-*"]}, "targets": [{"service": "local"}]},
        ],
        "consumers": [{"name": "team-a", "keys": ["${TEAM_KEY}"], "rules": ["chat"]}],
    }


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as found:
        yield found


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICEGATE_MASTER_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("SECRET", SECRET)
    monkeypatch.setenv("TEAM_KEY", TEAM_KEY)


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    assert SECRET not in out + err and TEAM_KEY not in out + err
    return code, out.splitlines(), err


def version(url: str) -> int:
    async def read() -> int:
        store = open_store(url)
        await store.open()
        try:
            return await store.config_version()
        finally:
            await store.close()

    return asyncio.run(read())


def test_apply_is_idempotent_and_a_dry_run_writes_nothing(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "gw.yaml", config(url))
    before = version(url)
    code, lines, _ = cli(capsys, "config", "apply", str(path), "--dry-run")
    assert code == 0
    assert lines == [
        "+ upstream pool",
        "+ service local",
        "+ service demo",
        "+ rule chat",
        "+ rule all",
        "+ consumer team-a",
        "dry run: 6 change(s), nothing written",
    ]
    assert version(url) == before

    code, lines, _ = cli(capsys, "config", "apply", str(path))
    assert code == 0 and lines[-1].startswith("applied 6 change(s)")
    assert version(url) == before + 1  # one transaction, one bump
    assert cli(capsys, "config", "apply", str(path))[1] == ["no changes"]
    assert version(url) == before + 1

    # Edit, remove, add, reorder: the diff names each, then nothing is left to do.
    doc = config(url)
    doc["services"][1]["timeout"] = 31
    doc["consumers"] = []
    doc["rules"] = [
        {"name": "new", "match": {"models": ["new"]}, "targets": [{"service": "demo"}]},
        *reversed(doc["rules"]),
    ]
    write(path, doc)
    code, lines, _ = cli(capsys, "config", "apply", str(path), "--dry-run")
    assert lines == [
        "~ service demo",
        "+ rule new",
        "~ rule all (order)",
        "~ rule chat (order)",
        "- consumer team-a",
        "dry run: 5 change(s), nothing written",
    ]
    assert cli(capsys, "config", "apply", str(path))[0] == 0
    assert cli(capsys, "config", "apply", str(path))[1] == ["no changes"]
    # A changed secret is a change, though it is never shown.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SECRET", "sk-another-secret")
        assert cli(capsys, "config", "apply", str(path), "--dry-run")[1][0] == "~ upstream pool"


def test_an_invalid_result_writes_nothing(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = config(url)
    doc["rules"][0]["targets"] = [{"service": "nope"}]
    before = version(url)
    code, _, err = cli(capsys, "config", "apply", str(write(tmp_path / "bad.yaml", doc)))
    assert code == 1 and "rules[0].targets[0].service: unknown service 'nope'" in err
    assert version(url) == before

    with pytest.MonkeyPatch.context() as patch:  # a secret cannot be stored without a master key
        patch.delenv("SLUICEGATE_MASTER_KEY")
        code, _, err = cli(capsys, "config", "apply", str(write(tmp_path / "gw.yaml", config(url))))
    assert code == 1 and "upstreams/pool: storing credentials.header_value needs" in err
    assert version(url) == before


def test_export_then_apply_round_trips(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "gw.yaml", config(url))
    assert cli(capsys, "config", "apply", str(path))[0] == 0
    # A secret written through the Admin API has no ${VAR} form to go back to.
    gateway = RunningGateway({"gateway": {"admin_key": ADMIN_KEY, "store": url}}).start()
    try:
        created = httpx.post(
            gateway.url + "/admin/services",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json={
                "name": "api-made",
                "provider": "openai",
                "credentials": {"header_name": "Authorization", "header_value": SECRET},
            },
        )
        assert created.status_code == 201, created.text
        answer = httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {TEAM_KEY}"},
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 200, answer.text  # the applied entities route
        for where in ("/admin/consumers/team-a", "/admin/upstreams/pool"):
            shown = httpx.get(gateway.url + where, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            assert shown.status_code == 200, shown.text
            assert "template" not in shown.text and "${" not in shown.text
        pool = httpx.get(
            gateway.url + "/admin/upstreams/pool", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ).json()
        assert pool["credentials"]["secrets_set"] == ["header_value"]
    finally:
        gateway.stop()

    out = tmp_path / "export.yaml"
    code, _, err = cli(capsys, "config", "export", "--config", str(path), "--output", str(out))
    assert code == 0, err
    text = out.read_text()
    assert SECRET not in text and TEAM_KEY not in text
    assert "Bearer ${SECRET}" in text and "${TEAM_KEY}" in text
    assert "${SG_SERVICES_API_MADE_HEADER_VALUE}" in text
    assert (
        "#   SG_SERVICES_API_MADE_HEADER_VALUE: credentials.header_value of services/api-made"
        in (text)
    )
    exported = yaml.safe_load(text)
    assert [s["name"] for s in exported["services"]] == ["local", "demo", "api-made"]
    assert exported["services"][0]["upstream"] == "pool"

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SG_SERVICES_API_MADE_HEADER_VALUE", SECRET)
        assert cli(capsys, "config", "apply", str(out))[1] == ["no changes"]
        # And into an empty store: the same entities, so its export is the same.
        second = f"sqlite:///{tmp_path / 'second.db'}"
        code, lines, _ = cli(capsys, "config", "apply", str(out), "--store", second)
        assert code == 0 and len(lines) == 8  # seven entities and the summary
        again = tmp_path / "again.yaml"
        assert cli(capsys, "config", "export", "--store", second, "-o", str(again))[0] == 0
    strip = {"gateway"}
    first_doc = {k: v for k, v in exported.items() if k not in strip}
    second_doc = {k: v for k, v in yaml.safe_load(again.read_text()).items() if k not in strip}
    assert first_doc == second_doc


def test_a_running_gateway_follows_an_apply(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = RunningGateway({"gateway": {"store": url}}).start()
    try:
        path = write(tmp_path / "gw.yaml", config(url))
        assert cli(capsys, "config", "apply", str(path))[0] == 0
        deadline = 50
        for _ in range(deadline):
            answer = httpx.post(
                gateway.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {TEAM_KEY}"},
                json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
            )
            if answer.status_code == 200:
                break
            asyncio.run(asyncio.sleep(0.05))
        assert answer.status_code == 200, answer.text
        assert gateway.runtime.table.describe()["rules"] == ["chat", "all"]
    finally:
        gateway.stop()


def test_apply_and_export_carry_every_gateway(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = config(url)
    doc["gateways"] = [
        {
            "name": "team-b",
            "hosts": ["b.example.com"],
            "tags": ["b"],
            "services": [{"name": "demo", "provider": "mock"}],
            "rules": [
                {"name": "chat", "match": {"models": ["b"]}, "targets": [{"service": "demo"}]}
            ],
            "consumers": [{"name": "team-b", "keys": ["${TEAM_KEY}-b"]}],
        }
    ]
    path = write(tmp_path / "gw.yaml", doc)
    code, lines, _ = cli(capsys, "config", "apply", str(path))
    assert code == 0
    assert "+ gateway team-b" in lines and "+ service demo (gateway team-b)" in lines
    assert cli(capsys, "config", "apply", str(path))[1] == ["no changes"]

    # A gateway reading only the store routes the applied tenant by its host.
    gateway = RunningGateway({"gateway": {"admin_key": ADMIN_KEY, "store": url}}).start()
    try:
        answer = httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {TEAM_KEY}-b", "Host": "b.example.com"},
            json={"model": "b", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 200, answer.text
    finally:
        gateway.stop()

    out = tmp_path / "export.yaml"
    assert cli(capsys, "config", "export", "--config", str(path), "--output", str(out))[0] == 0
    exported = yaml.safe_load(out.read_text())
    (tenant,) = exported["gateways"]
    assert tenant["name"] == "team-b" and tenant["hosts"] == ["b.example.com"]
    assert tenant["tags"] == ["b"] and tenant["consumers"][0]["keys"] == ["${TEAM_KEY}-b"]
    assert cli(capsys, "config", "apply", str(out))[1] == ["no changes"]

    # Dropping the tenant from the file removes it, its entities first.
    del doc["gateways"]
    code, lines, _ = cli(capsys, "config", "apply", str(write(path, doc)))
    assert (
        code == 0
        and lines[0] == "- gateway team-b"
        and "- consumer team-b (gateway team-b)" in lines
    )
    assert cli(capsys, "config", "apply", str(path))[1] == ["no changes"]


def test_apply_carries_each_gateways_own_auth(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    mock = {"services": [{"name": "demo", "provider": "mock"}]}

    def rules(model: str) -> list[dict[str, Any]]:
        return [{"name": "chat", "match": {"models": [model]}, "targets": [{"service": "demo"}]}]

    token_auth = {"jwt": {"public_key": pem, "issuer": "https://idp.test/", "audience": "fin"}}
    doc = config(url)
    doc["gateways"] = [
        {"name": "lab", "auth": "none", **mock, "rules": rules("lab")},
        {
            "name": "fin",
            "auth": token_auth,
            **mock,
            "rules": rules("fin"),
            "consumers": [{"name": "bob"}],
        },
    ]
    path = write(tmp_path / "gw.yaml", doc)
    assert cli(capsys, "config", "apply", str(path))[0] == 0
    assert cli(capsys, "config", "apply", str(path))[1] == ["no changes"]

    import time

    import jwt

    claims = {"iss": "https://idp.test/", "aud": "fin", "sub": "bob", "exp": time.time() + 60}
    token = jwt.encode(claims, private, algorithm="ES256")
    gateway = RunningGateway({"gateway": {"store": url}}, keyless=False).start()
    try:
        lab = httpx.get(gateway.url + "/gw/lab/v1/models")
        assert lab.status_code == 200, lab.text  # auth: none came with the gateway
        fin = httpx.get(gateway.url + "/gw/fin/v1/models")
        assert fin.status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(gateway.url + "/gw/fin/v1/models", headers=bearer).status_code == 200
    finally:
        gateway.stop()

    out = tmp_path / "export.yaml"
    assert cli(capsys, "config", "export", "--config", str(path), "--output", str(out))[0] == 0
    exported = {t["name"]: t for t in yaml.safe_load(out.read_text())["gateways"]}
    assert exported["lab"]["auth"] == "none"
    assert exported["fin"]["auth"]["jwt"]["audience"] == "fin"
    assert cli(capsys, "config", "apply", str(out))[1] == ["no changes"]

    # A shared secret is not written into the store.
    doc["gateways"][1]["auth"] = {"jwt": {"secret": "s" * 40, "audience": "fin"}}
    code, _, err = cli(capsys, "config", "apply", str(write(path, doc)))
    assert code == 1 and "gateways[1].auth.jwt.secret" in err, err


def test_apply_errors_name_places_in_the_applied_file(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = config(url)
    assert cli(capsys, "config", "apply", str(write(tmp_path / "gw.yaml", doc)))[0] == 0
    # team-a leaves out its keys (it keeps the stored one); a new consumer listed before
    # it brings the same key. The store lists team-a first, the file lists it second.
    doc["consumers"] = [{"name": "newcomer", "keys": ["${TEAM_KEY}"]}, {"name": "team-a"}]
    before = version(url)
    code, _, err = cli(capsys, "config", "apply", str(write(tmp_path / "gw.yaml", doc)))
    assert code == 1
    assert "consumers[0].keys: a key is already held by consumer 'team-a'" in err, err
    assert "consumers[1]" not in err
    assert version(url) == before


def test_apply_refuses_to_leave_a_minted_key_without_its_rule(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = config(url)
    path = write(tmp_path / "gw.yaml", doc)
    assert cli(capsys, "config", "apply", str(path))[0] == 0
    gateway = RunningGateway({"gateway": {"store": url, "admin_key": ADMIN_KEY}}).start()
    try:
        minted = httpx.post(
            gateway.url + "/admin/consumers/team-a/keys",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            json={"rules": ["chat"]},
        )
        assert minted.status_code == 201, minted.text
        prefix = minted.json()["prefix"]
        # The file drops "chat" (and team-a's own list): the key would name a rule that is
        # gone, so the restarted gateway would leave it out; apply says so and writes nothing.
        doc["rules"] = [doc["rules"][1]]
        doc["consumers"] = [{"name": "team-a", "keys": ["${TEAM_KEY}"]}]
        before = version(url)
        code, _, err = cli(capsys, "config", "apply", str(write(path, doc)))
        assert code == 1
        assert f"store key '{prefix}': rules[0]: unknown rule 'chat'" in err, err
        assert version(url) == before
    finally:
        gateway.stop()
