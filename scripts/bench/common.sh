# shellcheck shell=bash
# Shell helpers shared by the benchmark scripts (sourced, not run).
# The sourcing script sets BENCH_NAME first; it prefixes every message.

log() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# apt_install PACKAGE...: installs Debian packages (quietly).
apt_install() {
  log "installing Debian packages: $*"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# check_counts: ROWS and REPEAT must be positive integers.
check_counts() {
  [[ "$ROWS" =~ ^[0-9]+$ && "$ROWS" -gt 0 ]] || die "ROWS must be a positive integer, got '$ROWS'"
  [[ "$REPEAT" =~ ^[0-9]+$ && "$REPEAT" -gt 0 ]] || die "REPEAT must be a positive integer, got '$REPEAT'"
}
