"""Every config example in the README and docs/ is a config that loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sluicegate.config.load import parse_config, references
from sluicegate.config.model import Config
from sluicegate.routing.compile import compile_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```", re.S | re.M)
CONFIG_KEYS = set(Config.model_fields)


def blocks() -> list[tuple[str, str, str]]:
    """(where, language, text) of every fenced block."""
    found = []
    for path in DOCS:
        for i, match in enumerate(FENCE.finditer(path.read_text(encoding="utf-8"))):
            found.append((f"{path.name}#{i}", match.group(1), match.group(2)))
    return found


def examples() -> list[tuple[str, str]]:
    return [(where, text) for where, lang, text in blocks() if lang == "yaml"]


def env_value(name: str) -> str:
    """What a reader's environment would hold: a URL where the name says so, else a value
    long enough for any key or secret."""
    if "REDIS" in name:
        return "redis://127.0.0.1:6379/0"
    if "STORE" in name or "DATABASE" in name:
        return "sqlite:///sluicegate.db"
    if name.endswith(("_URL", "_ENDPOINT")):
        return "https://example.com/"
    return f"{name.lower()}-example-0123456789abcdef0123456789"


def env_for(text: str) -> dict[str, str]:
    names = {name for line in text.splitlines() for name in references(line)}
    return {name: env_value(name) for name in names}


@pytest.mark.parametrize(("where", "block"), examples())
def test_example_config_loads(where: str, block: str) -> None:
    data = yaml.safe_load(block)
    assert isinstance(data, dict) and set(data) <= CONFIG_KEYS, (
        f"{where}: a yaml block is a config (top-level keys: {', '.join(sorted(CONFIG_KEYS))})"
    )
    # A fragment shown for one section is validated as a whole file would be: what it
    # names must be in it too.
    loaded = parse_config(data, env=env_for(block))
    if "rules" in data:
        compile_config(loaded.config, loaded.warnings)


def test_every_config_example_is_marked_yaml() -> None:
    # An example fenced as text or with no language would be skipped above.
    key = re.compile(rf"^({'|'.join(sorted(CONFIG_KEYS))}):(\s|$)", re.M)
    untagged = [
        where
        for where, lang, text in blocks()
        if lang not in ("yaml", "bash", "sh", "python", "json") and key.search(text)
    ]
    assert not untagged, f"config examples fenced without ```yaml: {untagged}"


def test_examples_load() -> None:
    from sluicegate.config.load import load_config

    for path in sorted((ROOT / "examples").glob("*.yaml")):
        load_config(path, env={"TEAM_A_KEY": "sk-team-a-example"})


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings (a repeated one gets -1, -2, …)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"#{1,6} (.*)", line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_every_link_between_the_docs_leads_somewhere() -> None:
    broken = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            name, _, fragment = target.partition("#")
            dest = path.parent / name if name else path
            if not dest.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif fragment and fragment not in anchors(dest.read_text(encoding="utf-8")):
                broken.append(f"{path.name}: {target} (no such heading)")
    assert not broken, "links to nowhere:\n" + "\n".join(broken)


def test_observability_lists_every_metric_with_its_labels() -> None:
    from prometheus_client import Counter

    from sluicegate.telemetry.metrics import Metrics

    text = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    row = re.compile(r"^\| `((?:sluicegate|gen_ai)_[a-z_]+)` \| [a-z]+ \|([^|]*)\|", re.M)
    documented: dict[str, list[str]] = {}
    for name, labels in row.findall(text):
        plain = re.sub(r"\([^)]*\)", "", labels)
        documented[name] = [label.strip() for label in plain.split(",") if label.strip()]
    metrics = Metrics(lambda: [])
    expected: dict[str, list[str] | None] = {}
    for metric in vars(metrics).values():
        if hasattr(metric, "_labelnames"):
            suffix = "_total" if isinstance(metric, Counter) else ""
            expected[metric._name + suffix] = list(metric._labelnames)
    for family in metrics.registry.collect():  # the table's gauges, made when scraped
        expected.setdefault(family.name + ("_total" if family.type == "counter" else ""), None)
    problems = [f"{name}: not in the table" for name in expected if name not in documented]
    problems += [
        f"{name}: labels {documented[name]}, the gateway's {labels}"
        for name, labels in expected.items()
        if labels is not None and name in documented and documented[name] != labels
    ]
    problems += [f"{name}: no such metric" for name in documented if name not in expected]
    assert not problems, "docs/observability.md's metric table:\n" + "\n".join(problems)


def test_observability_names_every_audit_column_and_filter() -> None:
    from sluicegate.stores.base import AUDIT_FILTERS, AUDIT_ROW_COLUMNS

    text = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    section = text[text.index("## Audit log") :]
    section = section[: section.index("\n## ", 1)]
    named = set(re.findall(r"`([a-z_]+)`", section))
    missing = [c for c in (*AUDIT_ROW_COLUMNS, *AUDIT_FILTERS) if c not in named]
    assert not missing, f"docs/observability.md's audit log section never names {missing}"


def test_every_config_field_the_docs_name_exists() -> None:
    from sluicegate.config.reference import rows

    paths = {row.path for row in rows()}
    paths |= {f"{path}[]" for path in paths}  # a list's items
    known = paths | {path.replace("[]", "") for path in paths}
    tops = "|".join(sorted(CONFIG_KEYS))
    named = re.compile(rf"`((?:{tops})(?:\[\])?(?:\.[a-z_]+(?:\[\])?)+)`")
    unknown = [
        f"{path.name}: {found}"
        for path in DOCS
        for found in named.findall(path.read_text(encoding="utf-8"))
        if found not in known
    ]
    assert not unknown, "fields the config does not have:\n" + "\n".join(unknown)
