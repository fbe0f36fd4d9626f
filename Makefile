# Weir: two commands on a fresh machine.
#   make demo   build the host and the example plugins, run the quickstart
#               pipeline on an embedded Kafka cluster (no server needed)
#   make test   install and start every service the tests use, run the suite

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Build outside the clone so a fresh clone reuses the machine's cache.
CARGO_TARGET_DIR ?= $(HOME)/.cache/weir/target
export CARGO_TARGET_DIR
CARGO ?= cargo
PLUGIN_DIR := $(CARGO_TARGET_DIR)/wasm32-wasip2/plugin
export WEIR_PLUGIN_DIR := $(PLUGIN_DIR)
WEIR := $(CARGO_TARGET_DIR)/debug/weir
EXAMPLE_PLUGINS := -p weir-plugin-filter -p weir-plugin-transform -p weir-plugin-router -p weir-plugin-iot-telemetry -p weir-plugin-enrich

.PHONY: all setup build release image plugins python-plugins plugins-js demo test test-python test-js test-scylla lint fmt bench services-start services-stop clean-services

all: build plugins

setup:
	scripts/setup

build: setup
	$(CARGO) build -p weir

# The binary that ships (stripped, see [profile.release]); the Dockerfile
# runs the same cargo command.
release: setup
	$(CARGO) build --release --locked -p weir --bin weir

# The container image (needs Docker; see the Dockerfile).
IMAGE ?= weir:0.1.0
image:
	docker build -t $(IMAGE) .

plugins: setup
	$(CARGO) build --profile plugin --target wasm32-wasip2 $(EXAMPLE_PLUGINS)

# The Python plugins and fixtures, with the toolchain scripts/setup installs
# (.services/plugin-venv); each .wasm lands beside its source in build/.
PLUGIN_PYTHON := $(or $(WEIR_SERVICES_DIR),.services)/plugin-venv/bin/python
PYTHON_PLUGINS := plugins/filter-py plugins/fixtures-py/enrich plugins/fixtures-py/hostile plugins/fixtures-py/reference
python-plugins: setup
	for dir in $(PYTHON_PLUGINS); do PYTHONPATH=sdk-python $(PLUGIN_PYTHON) -m weir_sdk.build $$dir; done

# The native tests of the Python SDK and plugins (pytest, no Wasm).
test-python: setup
	for dir in sdk-python $(PYTHON_PLUGINS); do (cd $$dir && $(abspath $(PLUGIN_PYTHON)) -m pytest -q); done

# The TypeScript router as a component (sdk-js/README.md): prints its path.
plugins-js: setup
	scripts/node sdk-js/bin/weir-js-build.mjs plugins/router-ts

demo: build plugins
	python3 examples/quickstart/gen_events.py examples/quickstart/events.jsonl
	rm -rf examples/quickstart/out
	$(WEIR) run examples/quickstart/weir.toml --progress 0

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: setup services-start lint test-python test-js
	$(CARGO) test --workspace --no-fail-fast

# The JavaScript/TypeScript SDK, the TypeScript router and the JS fixtures
# under node --test (tsc type-checks the TypeScript first).
test-js: setup
	PATH="$$(dirname "$$(scripts/node -p process.execPath)"):$$PATH" npm test

# The scylla sink against a real ScyllaDB/Cassandra node (opt-in: no CQL
# server can be installed on the project's machines; docs/sinks/scylla.md).
test-scylla: setup
	@if [ -z "$${SCYLLA_NODES:-}" ]; then echo "test-scylla: set SCYLLA_NODES=host:port of a ScyllaDB/Cassandra node (see docs/sinks/scylla.md)" >&2; exit 2; fi
	$(CARGO) test -p weir-tests --test all scylla_cluster:: -- --ignored --test-threads 1

bench: setup services-start
	$(CARGO) bench -p weir-tests

fmt:
	$(CARGO) fmt --all

services-start:
	scripts/services start

services-stop:
	scripts/services stop
