# Installing missing commands from Debian packages, shared by scripts/services.sh and
# scripts/images.sh. The caller defines `log` and `die`.

APT_UPDATED=${APT_UPDATED:-0}

# apt-get install the given Debian packages (root only); apt-get update at most once per run.
apt_install() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    return 1
  fi
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update (to install: $*)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
    APT_UPDATED=1
  fi
  log "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ensure_cmd CMD DEBIAN_PACKAGE: install the package if the command is missing.
ensure_cmd() {
  command -v "$1" >/dev/null 2>&1 && return 0
  apt_install "$2" || die "'$1' is missing and installing Debian package '$2' failed"
  command -v "$1" >/dev/null 2>&1 || die "'$1' still missing after installing '$2'"
}
