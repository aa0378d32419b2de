# Targets: setup, lint, test, demo, bench, plugin, plugin-push. Everything runs from .venv
# (made by scripts/setup.sh).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup lint test demo bench plugin plugin-push

setup:
	bash scripts/setup.sh

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

# Unit tests first (fast, no root), then integration (namespaces + dnsmasq), then e2e (dockerd).
test: setup lint
	$(PY) -m pytest -v -rs --durations=30 tests/unit tests/integration tests/e2e

demo: setup
	$(PY) -m tests.lab demo

# Measures net-dhcp against Docker's bridge driver on both engines (docker run, 50 at once,
# RSS and CPU per lease, serve start, CreateEndpoint split); prints a table, writes
# bench/results.json and asserts nothing. BENCH_ARGS, e.g. --quick or --engines docker28.
bench: setup
	$(PY) -m bench.bench $(BENCH_ARGS)

# The managed (v2) plugin, built without a registry (plugin/README.md): the rootfs goes to
# build/plugin/<version>-linux-<arch>/, then `docker plugin create PLUGIN_NAME:<that tag>`.
# ARCHS: amd64 386 arm64-v8 arm-v7, or all (default: this machine's).
PLUGIN_NAME ?= net-dhcp
ARCHS ?=

plugin: setup
	PLUGIN_NAME='$(PLUGIN_NAME)' bash scripts/build-plugin.sh --replace $(ARCHS)

# Maintainers: build, create and push every architecture's tag, e.g.
#   make plugin-push PLUGIN_NAME=registry.example.org/owner/net-dhcp   (or owner/net-dhcp)
plugin-push: setup
	PLUGIN_NAME='$(PLUGIN_NAME)' bash scripts/build-plugin.sh --replace --push $(or $(ARCHS),all)
