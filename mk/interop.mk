# The clean layer read by other engines (itests/tests/clean_interop.rs): PySpark and DuckDB
# in a pinned venv. Included by the top-level Makefile; the venv is made while the Rust
# build runs (`prepare`) and again, if missing, before the integration tests (idempotent).

.PHONY: interop-setup

interop-setup:
	scripts/interop-setup.sh

prepare: interop-setup
itest: interop-setup
