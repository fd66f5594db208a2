# Real services for integration tests (Kafka, HDFS, HBase + Thrift, kube-apiserver + etcd).
# Included by the top-level Makefile. See scripts/README-services.md.

SERVICES_SH ?= scripts/services.sh
ITEST_CARGO_TARGET_DIR ?= $(HOME)/.cache/ecom-pipeline/target

.PHONY: services-up services-down services-status services-logs prepare itest

# Everything the tests' services need, downloaded and built, nothing started: the Maven jars,
# etcd, the Kubernetes binaries, Helm, the node's pause and CoreDNS images, and the images of
# the chart's development services (`make test` runs this beside the Rust build).
prepare:
	$(SERVICES_SH) prepare
	scripts/images.sh dev-services

services-up:
	$(SERVICES_SH) up

services-down:
	$(SERVICES_SH) down

services-status:
	$(SERVICES_SH) status

services-logs:
	$(SERVICES_SH) logs

# Brings the services up (or reuses running ones), loads their environment and runs every test
# of the workspace but the real-node ones (named real_node_*, run by `make node-test` on a
# fresh cluster), from the one test build (`make test-build`; `ecom` is its ECOM_BIN). A running
# node is stopped and the API server restarted on empty storage first: the node's controllers
# would act on the stand-in tests' Jobs, and a chart installed by `make cluster-up` would
# collide with the chart tests' releases.
itest: test-build
	@# The stand-in tests need an API server without controllers or kubelet, and without what
	@# `make cluster-up` or the node tests installed: stop the node, restart kube on empty storage.
	$(SERVICES_SH) down node kube
	$(SERVICES_SH) up
	$(SERVICES_SH) deps
	eval "$$($(SERVICES_SH) env)" && \
	export CARGO_TARGET_DIR="$${CARGO_TARGET_DIR:-$(ITEST_CARGO_TARGET_DIR)}" && \
	ECOM_BIN="$$CARGO_TARGET_DIR/release/ecom" $(LINTED) \
	cargo test --release --locked --workspace -- --skip real_node
