# Targets: setup, lint, test, demo. Everything runs from .venv (made by scripts/setup.sh).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup lint test demo bench

setup:
	bash scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

# Unit tests first (fast, no root), then integration (namespaces + dnsmasq), then e2e (dockerd).
test: setup lint
	$(PY) -m pytest -v -rs tests/unit tests/integration tests/e2e

demo: setup
	$(PY) -m tests.lab demo

# Prints what net-dhcp adds to `docker run`, as ratios measured in one run (asserts nothing).
bench: setup
	$(PY) -m bench.bench_start
	$(PY) -m bench.bench_scale
