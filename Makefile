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
EXAMPLE_PLUGINS := -p weir-plugin-filter -p weir-plugin-transform -p weir-plugin-router

.PHONY: all setup build plugins demo test lint fmt bench services-start services-stop clean-services

all: build plugins

setup:
	scripts/setup

build: setup
	$(CARGO) build -p weir

plugins: setup
	$(CARGO) build --profile plugin --target wasm32-wasip2 $(EXAMPLE_PLUGINS)

demo: build plugins
	python3 examples/quickstart/gen_events.py examples/quickstart/events.jsonl
	rm -rf examples/quickstart/out
	$(WEIR) run examples/quickstart/weir.toml --progress 0

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: setup services-start lint
	$(CARGO) test --workspace --no-fail-fast

bench: setup services-start
	$(CARGO) bench -p weir-tests

fmt:
	$(CARGO) fmt --all

services-start:
	scripts/services start

services-stop:
	scripts/services stop
