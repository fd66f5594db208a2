# ecom-pipeline: the two entry points are `make demo` and `make test`.
# Build artefacts and downloads live outside the repository so repeated runs are fast.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/ecom-pipeline/target
CARGO ?= cargo
# One build profile everywhere (demo, tests, benchmarks, CI): release.
CARGO_FLAGS := --release --locked
ECOM := $(CARGO_TARGET_DIR)/release/ecom
DEMO_ARGS ?=

.PHONY: setup build demo test test-build unit-test lint fmt bench-clean help crds crd-check

help:
	@echo "make demo        run the whole pipeline on embedded stand-ins and serve the dashboard"
	@echo "make test        lint, unit and integration tests (starts the real services)"
	@echo "make bench-clean cleaning benchmark against PySpark and polars-python"
	@echo "make bench-pipeline  the whole batch pipeline against the seed's pipeline (ROWS, default 2000000)"
	@echo "make bench-streaming  end-to-end latency of 'ecom stream' at fixed rates (RATES=max: highest bounded rate)"
	@echo "make crds        regenerate crds/ecompipelines.yaml from the Rust types"

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build $(CARGO_FLAGS) --bin ecom

demo: build
	$(ECOM) demo $(DEMO_ARGS)

# The test build: every crate and test target of the workspace in one cargo invocation (one
# feature set, one profile), so `make test` compiles no crate twice. The `ecom` binary it
# leaves at $(ECOM) is the one the tests, the CRD check and the node's image use.
# Clippy runs inside it: cargo hands every workspace crate to clippy-driver (the wrapper
# `cargo clippy` itself uses), which compiles as rustc does and denies clippy's warnings, so
# lint costs no second pass over the dependencies. Every cargo run of the tests sets the same
# wrapper, so they reuse this build.
CLIPPY_DRIVER := $(shell rustc --print sysroot 2>/dev/null)/bin/clippy-driver
LINTED := RUSTC_WORKSPACE_WRAPPER=$(CLIPPY_DRIVER) CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
TEST_BUILD := $(LINTED) $(CARGO) test $(CARGO_FLAGS) --workspace --no-run

test-build: setup
	$(TEST_BUILD)

# fmt, clippy (inside the test build, over every target: lib, bins, tests) and the CRD check.
lint: test-build
	$(CARGO) fmt --all --check
	$(MAKE) --no-print-directory crd-check

# The committed CRD and the Helm chart's copy must equal what the Rust types generate
# (`make crds` regenerates both).
CHART_CRD := charts/ecom-pipeline/files/crds/ecompipelines.yaml
crd-check: test-build
	$(ECOM) crd | diff -u crds/ecompipelines.yaml - \
		|| { echo "crds/ecompipelines.yaml is stale: run 'make crds'" >&2; exit 1; }
	$(ECOM) crd | diff -u $(CHART_CRD) - \
		|| { echo "$(CHART_CRD) is stale: run 'make crds'" >&2; exit 1; }

crds: build
	$(ECOM) crd > crds/ecompipelines.yaml
	cp crds/ecompipelines.yaml $(CHART_CRD)

unit-test: setup
	$(LINTED) $(CARGO) test $(CARGO_FLAGS) --workspace --exclude ecom-itests

# Lint, then the unit and integration tests against the real services (one `cargo test
# --workspace` run), then the tests on the real one-node cluster (mk/node.mk). The services'
# downloads and builds run beside the Rust build (scripts/test.sh).
test:
	scripts/test.sh

bench-clean: build
	scripts/bench-clean.sh

# Dashboard load benchmark (10 M rows, wrk) against a per-request fact-table scan.
.PHONY: bench-dashboard
bench-dashboard: build
	scripts/bench-dashboard.sh

# Stage benchmark (produce, clean, load) against peers on the running services.
.PHONY: bench-stages
bench-stages: build
	scripts/bench-stages.sh

# Whole batch pipeline (produce, sink, clean, load) against the seed's pipeline (kafka-python
# producer and consumer, PySpark cleaning, happybase loader) on the running services.
.PHONY: bench-pipeline
bench-pipeline: build
	scripts/bench-pipeline.sh

# Streaming benchmark: end-to-end latency of `ecom stream` (produce -> visible on the
# dashboard) at fixed rates on the running services; RATES=max finds the highest bounded rate.
.PHONY: bench-streaming
bench-streaming: build
	scripts/bench-streaming.sh

# Duplicate-check benchmark: the cost of a micro-batch's cross-batch duplicate check against
# the number of batches before it, the streaming stage's check beside the batch cleaner's.
.PHONY: bench-dedup
bench-dedup: test-build
	scripts/bench-dedup.sh

fmt:
	$(CARGO) fmt --all

-include mk/services.mk
-include mk/browser.mk
-include mk/chart.mk
-include mk/kind.mk
-include mk/node.mk
-include mk/interop.mk

.PHONY: prepare-if-present itest-if-present node-test-if-present
prepare-if-present:
	@if [ -f mk/services.mk ]; then $(MAKE) --no-print-directory prepare; fi
itest-if-present:
	@if [ -f mk/services.mk ]; then $(MAKE) --no-print-directory itest; fi
node-test-if-present:
	@if [ -f mk/node.mk ]; then $(MAKE) --no-print-directory node-test; fi
