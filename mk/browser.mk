# Browser tests of the dashboard (headless Debian chromium driven by playwright-core).
# Included by the top-level Makefile; `make itest` runs them with the other
# integration tests (itests/tests/dashboard_browser.rs, dashboard_live.rs) after
# this set-up. Screenshots are kept in test-output/browser/.

.PHONY: browser-setup browser-test

# Debian's chromium and `npm ci` of the pinned playwright-core (idempotent).
browser-setup:
	scripts/browser-setup.sh

# The integration tests need the browser: set it up first.
itest: browser-setup

# Only the dashboard's browser and live tests.
browser-test: browser-setup services-up
	eval "$$($(SERVICES_SH) env)" && \
	export CARGO_TARGET_DIR="$${CARGO_TARGET_DIR:-$(ITEST_CARGO_TARGET_DIR)}" && \
	cargo build --release --locked --bin ecom && \
	ECOM_BIN="$$CARGO_TARGET_DIR/release/ecom" \
	cargo test --release --locked -p ecom-itests --test dashboard_browser --test dashboard_live -- --nocapture
