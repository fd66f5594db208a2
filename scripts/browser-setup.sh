#!/usr/bin/env bash
# Installs what the dashboard's browser tests need, idempotently:
# Debian's `chromium` (no browser download of its own) and the pinned
# `playwright-core` from tests/browser/package-lock.json (`npm ci`).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v chromium >/dev/null 2>&1; then
    echo "browser-setup: installing chromium (Debian package)" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "browser-setup: installing node and npm (Debian packages)" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nodejs npm >/dev/null
fi

# `npm ci` only when the lock changed since the last install.
stamp=tests/browser/node_modules/.lock-stamp
if ! cmp -s tests/browser/package-lock.json "$stamp" 2>/dev/null; then
    echo "browser-setup: npm ci in tests/browser" >&2
    (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    cp tests/browser/package-lock.json "$stamp"
fi
echo "browser-setup: chromium $(chromium --version 2>/dev/null | awk '{print $2}'), node $(node --version)" >&2
