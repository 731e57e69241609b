#!/usr/bin/env bash
# Known advisories in the locked dependencies (pip-audit against requirements-dev.lock).
# A found advisory fails. An advisory source that cannot be reached does not: pip-audit's
# sources are PyPI's JSON API and OSV, and a network that serves only PyPI's package index
# (a mirror, a proxy) reaches neither; the step then says so and passes.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-.venv/bin}"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
"$BIN/pip-audit" -r requirements-dev.lock --disable-pip --progress-spinner off \
    --format json --output "$report" 2>"$report.err"
status=$?
"$BIN/python" - "$report" "$status" "$report.err" <<'PY'
import json, sys
path, status, errors = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    deps = json.load(open(path))["dependencies"]
except (OSError, ValueError, KeyError):
    tail = open(errors).read().strip().splitlines()[-1:] or ["no output"]
    print(f"pip-audit: could not run or reach its advisory source ({tail[0]}); not checked")
    sys.exit(0)
found = [(d["name"], d["version"], v["id"]) for d in deps for v in d.get("vulns", [])]
audited = [d for d in deps if "skip_reason" not in d]
for name, version, advisory in found:
    print(f"pip-audit: {name} {version}: {advisory}")
if found:
    sys.exit(1)
if not audited:
    print(
        f"pip-audit: the advisory source answered for none of {len(deps)} dependencies "
        "(PyPI's JSON API is not served here); not checked"
    )
else:
    print(f"pip-audit: no known advisory in {len(audited)} of {len(deps)} dependencies")
PY
code=$?
rm -f "$report.err"
exit $code
