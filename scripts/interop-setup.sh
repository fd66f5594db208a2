#!/usr/bin/env bash
# The Python environment of the clean-layer interop test (itests/tests/clean_interop.rs):
# PySpark and DuckDB, pinned, in a venv at $ECOM_CACHE/interop-venv (made once, remade only
# when the pins change; idempotent). PySpark needs Java, which the services' set-up installs.
set -euo pipefail

ECOM_CACHE="${ECOM_CACHE:-$HOME/.cache/ecom-pipeline}"
VENV="$ECOM_CACHE/interop-venv"
PINS="pyspark==3.5.9 duckdb==1.4.3"

log() { printf '[interop-setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -x "$VENV/bin/python" && "$(cat "$VENV/.pins" 2>/dev/null)" == "$PINS" ]]; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  log "installing python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
log "installing $PINS into $VENV"
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install -q --disable-pip-version-check $PINS
printf '%s' "$PINS" >"$VENV/.pins"
log "ready: $VENV"
