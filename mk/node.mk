# The real one-node cluster (scripts/services.sh group `node`, scripts/cluster-up.sh).
# Included by the top-level Makefile; `make test` runs `node-test` after the other tests.

.PHONY: cluster-up cluster-down node-test

# The node, the images (ecom from the release build, the development services from Maven jars)
# loaded onto it, the chart installed with values-kind.yaml in namespace ecom (the operator and
# the development Kafka, HDFS and HBase as pods); then apply manifests/pipeline-*.yaml (README).
cluster-up: build
	scripts/cluster-up.sh

# Stops the node (pods, containerd, kubelet, controllers) and leaves the other services up.
cluster-down:
	$(SERVICES_SH) down node

# The real-node tests (itests/tests/real_node*.rs, tests named real_node_*) on a fresh cluster:
# the API server is restarted on empty storage first, so nothing the stand-in tests of
# `make itest` left behind is seen by the real controllers.
node-test: test-build
	$(SERVICES_SH) down node kube
	ECOM_BIN="$(ECOM)" scripts/cluster-up.sh
	eval "$$($(SERVICES_SH) env)" && \
	export CARGO_TARGET_DIR="$${CARGO_TARGET_DIR:-$(ITEST_CARGO_TARGET_DIR)}" && \
	ECOM_BIN="$(ECOM)" $(LINTED) \
	cargo test --release --locked --workspace real_node -- --test-threads 1
