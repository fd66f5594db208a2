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

# check_prerequisites: the counts are valid, the ecom binary ($ECOM) is built, and GNU time
# ($TIME) and python3 are installed (installing the Debian packages if not).
check_prerequisites() {
  check_counts
  [[ -x "$ECOM" ]] || die "$ECOM not found: run 'make build' (or 'make $BENCH_NAME', which builds it)"
  [[ -x "$TIME" ]] || apt_install time
  command -v python3 >/dev/null 2>&1 || apt_install python3
}

# check_counts: ROWS and REPEAT must be positive integers.
check_counts() {
  [[ "$ROWS" =~ ^[0-9]+$ && "$ROWS" -gt 0 ]] || die "ROWS must be a positive integer, got '$ROWS'"
  [[ "$REPEAT" =~ ^[0-9]+$ && "$REPEAT" -gt 0 ]] || die "REPEAT must be a positive integer, got '$REPEAT'"
}

# ensure_venv DIR PINS: a Python venv at DIR holding exactly the pip requirements PINS
# (space-separated), made once and remade only when PINS change.
ensure_venv() {
  local dir=$1 pins=$2
  if [[ -x "$dir/bin/python" && "$(cat "$dir/.bench-pins" 2>/dev/null)" == "$pins" ]]; then
    return
  fi
  python3 -m venv "$dir" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$dir"; }
  log "installing $pins into $dir"
  # shellcheck disable=SC2086
  "$dir/bin/python" -m pip install -q --disable-pip-version-check $pins
  printf '%s' "$pins" >"$dir/.bench-pins"
}
