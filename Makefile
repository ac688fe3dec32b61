# The one entry point: people, the README and CI all use these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test unit integration e2e lint format schemas broker chromium receiver bench clean

# The virtualenv, rebuilt when the dependencies change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

broker:
	@$(PYTHON) deploy/ensure_broker.py

chromium:
	@deploy/ensure_chromium.sh

## run: a producer, a router and two senders in the foreground (Ctrl-C stops all)
run: $(STAMP) broker
	@deploy/run-local.sh

## test: lint and type checks, then every test (unit, integration on RabbitMQ, end-to-end)
test: $(STAMP) broker chromium lint
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP) broker
	$(PY) -m pytest tests/integration

e2e: $(STAMP) broker chromium
	$(PY) -m pytest tests/e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## schemas: write schemas/json/*.json from the pydantic models
schemas: $(STAMP)
	$(PY) -m schemas.export

## bench: deliveries per second, latency and CPU per delivery beside a bare loop (BENCH_ARGS=...)
bench: $(STAMP) broker
	$(PY) -m tools.bench.throughput $(BENCH_ARGS)

## receiver: the quickstart's webhook receiver on :9000
receiver: $(STAMP)
	$(PY) -m tools.receiver --port 9000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
