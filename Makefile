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
	$(PY) -m pytest -v -rs tests/unit tests/integration tests/e2e

demo: setup
	$(PY) -m tests.lab demo

# Prints what net-dhcp adds to `docker run`, as ratios measured in one run (asserts nothing).
bench: setup
	$(PY) -m bench.bench_start
	$(PY) -m bench.bench_scale

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
