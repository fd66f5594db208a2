# Helm chart checks. Included by the top-level Makefile; `make test` runs them through the
# integration tests (itests/tests/chart.rs, part of `make itest`).

.PHONY: chart-check chart-test

# helm lint + template (default, kind, production values) + server-side dry-run against the
# services harness API server.
chart-check: services-up
	eval "$$($(SERVICES_SH) env)" && scripts/chart-check.sh

# Only the chart's integration tests (lint, renders, dry-runs, RBAC reviews, helm install/upgrade).
chart-test: services-up
	$(SERVICES_SH) deps
	eval "$$($(SERVICES_SH) env)" && \
	export CARGO_TARGET_DIR="$${CARGO_TARGET_DIR:-$(ITEST_CARGO_TARGET_DIR)}" && \
	cargo build --release --locked --bin ecom && \
	ECOM_BIN="$$CARGO_TARGET_DIR/release/ecom" \
	cargo test --release --locked -p ecom-itests --test chart
