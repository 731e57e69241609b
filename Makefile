# sluicegate — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_KEY := sk-demo-0123456789

.PHONY: run install dev test lint fmt bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when the project's metadata changed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
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
	$(BIN)/ruff check sluicegate tests
	$(BIN)/ruff format --check sluicegate tests
	$(BIN)/mypy

fmt: dev
	$(BIN)/ruff format sluicegate tests
	$(BIN)/ruff check --fix sluicegate tests

test: dev
	@scripts/ensure-services.sh
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest

# make bench BENCH_ARGS="--workers 2"   (see bench/run.sh for the options)
bench: install
	bench/run.sh $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
