# Real services for integration tests (Kafka, HDFS, HBase + Thrift, kube-apiserver + etcd).
# Included by the top-level Makefile. See scripts/README-services.md.

SERVICES_SH ?= scripts/services.sh
ITEST_CARGO_TARGET_DIR ?= $(HOME)/.cache/ecom-pipeline/target

.PHONY: services-up services-down services-status services-logs itest

services-up:
	$(SERVICES_SH) up

services-down:
	$(SERVICES_SH) down

services-status:
	$(SERVICES_SH) status

services-logs:
	$(SERVICES_SH) logs

# Brings the services up (or reuses running ones), loads their environment, runs the smoke tests.
itest: services-up
	$(SERVICES_SH) deps
	eval "$$($(SERVICES_SH) env)" && \
	CARGO_TARGET_DIR="$${CARGO_TARGET_DIR:-$(ITEST_CARGO_TARGET_DIR)}" \
	cargo test --release --locked -p ecom-itests
