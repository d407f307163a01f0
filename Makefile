# Developer entry points. Every target calls the tools in .venv by path, so no
# virtual environment needs to be activated.
#
#   make install      system packages (when missing), .venv, streamfeat[dev]
#   make stack-up     start the local Kafka broker and Redis server
#   make stack-down   stop them
#   make test         run the tests against the local stack
#   make test-long    run the long-running suites (marker "long")
#   make lint         ruff and mypy
#   make demo         run the flights demo
#   make bench        run the benchmarks with their baselines (results in bench/results/)

SHELL := /bin/bash

VENV := .venv
STREAMFEAT := $(VENV)/bin/streamfeat
PYTEST := $(VENV)/bin/pytest
# Extra pytest arguments, such as a test path: make test PYTEST_ARGS=tests/devstack
PYTEST_ARGS ?=
# pip runs again only when pyproject.toml is newer than this marker.
INSTALL_MARKER := $(VENV)/.streamfeat-installed
# apt-get needs root; a developer who is not root gets it through sudo.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: install system-packages stack-up stack-down test test-long lint demo bench

install: system-packages $(INSTALL_MARKER)

# The local stack runs Debian's redis-server and Kafka on Java 17+, whose jars
# Maven resolves. Packages are installed only when their command is missing.
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
		echo "Installing$$missing with apt-get"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null; \
	fi

$(INSTALL_MARKER): pyproject.toml
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

stack-up: install
	@$(STREAMFEAT) stack up

stack-down: install
	@$(STREAMFEAT) stack down

# Run $(1) with the local stack up. The stack is stopped afterwards, whether the
# command passed or failed, unless it was already running before (then it
# belongs to someone else, such as a developer's open session). The EXIT trap
# leaves the command's exit code as the recipe's exit code.
define with_stack
	@if $(STREAMFEAT) stack status >/dev/null 2>&1; then stop_after=false; else stop_after=true; fi; \
	$(STREAMFEAT) stack up || exit $$?; \
	if $$stop_after; then trap '$(STREAMFEAT) stack down' EXIT; fi; \
	$(1)
endef

test: install
	$(call with_stack,$(PYTEST) -W error $(PYTEST_ARGS))

test-long: install
	$(call with_stack,$(PYTEST) -W error -m long $(PYTEST_ARGS))

lint: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy

demo: install
	@$(STREAMFEAT) demo topologies/flights.yml

# The benchmarks' peers (the bench extra) are installed only for make bench.
BENCH_MARKER := $(VENV)/.streamfeat-bench-installed

$(BENCH_MARKER): pyproject.toml
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $@

bench: install $(BENCH_MARKER)
	@$(VENV)/bin/python -m bench.run
