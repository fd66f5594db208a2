#!/usr/bin/env bash
# Container images of the project, built on this machine with no image registry: a private
# Docker engine, local Debian base images, the ecom image, a pause image and CoreDNS.
#
#   scripts/images.sh docker-up              start the private dockerd, wait until it answers
#   scripts/images.sh docker-down            stop it; leaves no process or mount behind
#   scripts/images.sh env                    print the `export DOCKER_HOST=...` line for it
#   scripts/images.sh bases                  the Dockerfile's base images, from local parts
#   scripts/images.sh ecom [--prebuilt BIN]  the project's Dockerfile -> $ECOM_IMAGE (ecom:dev);
#                                            runs `bases` first (cached)
#   scripts/images.sh pause                  localhost/ecom-pause:3.10 (scripts/images/pause.c)
#   scripts/images.sh coredns                localhost/ecom-coredns:$COREDNS_VERSION
#   scripts/images.sh jre                    localhost/ecom-jre:<major>, linked from this JDK
#   scripts/images.sh dev-services           the chart's development Kafka, HDFS and HBase
#                                            images from the harness's Maven jars
#                                            (scripts/images/dev-services.sh)
#   scripts/images.sh dev-service-images     their names: Kafka, Hadoop, HBase, one a line
#   scripts/images.sh load SOCKET [IMAGE...] import IMAGEs (default: those three) into the
#                                            containerd at SOCKET, namespace k8s.io
#   scripts/images.sh load-check             `load` into a throwaway containerd, run pause and ecom
#   scripts/images.sh all [--prebuilt BIN]   docker-up, bases, pause, coredns, ecom
#
# Every build step starts the private engine when it is down. Versions: scripts/versions.env.
# Caches (engine data root, root filesystems, Go builds): $ECOM_CACHE (~/.cache/ecom-pipeline).
# Runtime state (socket, pid file, exec root, logs): $ECOM_STATE ($ECOM_CACHE/state).
# Docker client: $ECOM_DOCKER, else Debian's /usr/bin/docker (BuildKit built in). See docs/image.md.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
IMAGES_DIR="$SCRIPT_DIR/images"

# shellcheck source=versions.env disable=SC1091
source "$SCRIPT_DIR/versions.env"

ECOM_CACHE="${ECOM_CACHE:-$HOME/.cache/ecom-pipeline}"
ECOM_STATE="${ECOM_STATE:-$HOME/.cache/ecom-pipeline/state}"
ECOM_IMAGE="${ECOM_IMAGE:-ecom:dev}"
# Seconds dockerd may take to answer, and to stop.
ECOM_DOCKER_TIMEOUT="${ECOM_DOCKER_TIMEOUT:-60}"

DOCKER_STATE="$ECOM_STATE/docker"
DOCKER_SOCK="$DOCKER_STATE/docker.sock"
DOCKER_EXEC_ROOT="$DOCKER_STATE/exec"
DOCKER_PIDFILE="$DOCKER_STATE/dockerd.pid"
DOCKER_DATA_ROOT="$ECOM_CACHE/docker"
DOCKERD_LOG="$ECOM_STATE/logs/dockerd.log"

# Root filesystem tarballs, the pause build, temporary build contexts.
IMAGES_CACHE="$ECOM_CACHE/images"
COREDNS_HOME="$ECOM_CACHE/coredns-$COREDNS_VERSION"

DEBIAN_SUITE=trixie
PAUSE_IMAGE=localhost/ecom-pause:3.10
COREDNS_IMAGE="localhost/ecom-coredns:$COREDNS_VERSION"
# CA certificates added to the machine's trust store (update-ca-certificates); the rust base
# trusts them too.
LOCAL_CA_DIR=/usr/local/share/ca-certificates
# Label holding the hash of what an image was built from; a build is skipped when it matches.
INPUTS_LABEL=org.ecom-pipeline.inputs
# Label set on images imported into containerd: the Docker image id they came from.
ID_LABEL=org.ecom-pipeline.docker-id

# ---------------------------------------------------------------------------------------------
# helpers

log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  printf '[images] ERROR: %s\n' "$*" >&2
  exit 1
}

need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed; $2"
}
# shellcheck source=lib/apt.sh
source "$SCRIPT_DIR/lib/apt.sh"

now() { date +%s.%N; }
# Seconds since START (a `now` value), one decimal.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

sha_text() { sha256sum | cut -c1-16; }

# The Docker client: the CLI of Debian's Docker package (20.10) builds with the daemon's
# built-in BuildKit when DOCKER_BUILDKIT=1; newer CLIs need the buildx plugin for that.
docker_cli() {
  if [[ -n ${ECOM_DOCKER:-} ]]; then
    printf '%s' "$ECOM_DOCKER"
  elif [[ -x /usr/bin/docker ]]; then
    printf '/usr/bin/docker'
  else
    command -v docker || die "no docker client; install Debian's Docker package"
  fi
}

# docker against the private engine.
dk() { DOCKER_HOST="unix://$DOCKER_SOCK" "$(docker_cli)" "$@"; }

# docker build with BuildKit against the private engine; refuses a client that would fall back
# to the legacy builder (it cannot run the Dockerfile's RUN --mount).
dk_build() {
  local cli major
  cli="$(docker_cli)"
  major="$("$cli" version -f '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)" || major=0
  if [[ $major =~ ^[0-9]+$ ]] && ((major >= 23)) && ! "$cli" buildx version >/dev/null 2>&1; then
    die "$cli (client $major.x) has no buildx plugin, so it cannot build with BuildKit;" \
      "set ECOM_DOCKER=/usr/bin/docker (Debian's Docker package)"
  fi
  DOCKER_HOST="unix://$DOCKER_SOCK" DOCKER_BUILDKIT=1 "$cli" build --progress=plain "$@"
}

image_exists() { dk image inspect "$1" >/dev/null 2>&1; }
image_label() { dk image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null; }
image_mb() { dk image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.1f MB", $1 / 1000000 }'; }
# up_to_date IMAGE KEY: true (and says so) when IMAGE was built from inputs hashing to KEY.
up_to_date() {
  [[ $(image_label "$1" "$INPUTS_LABEL") == "$2" ]] || return 1
  log "$1 is up to date ($(image_mb "$1"))"
}

# The default of `ARG NAME=...` in the project's Dockerfile.
dockerfile_default() {
  sed -n "s/^ARG $1=//p" "$REPO_DIR/Dockerfile" | head -n 1
}

# Processes whose command line names PATH (dockerd and its containerd and shims name the exec
# root), one pid a line.
pids_naming() {
  local proc
  for proc in /proc/[0-9]*; do
    if tr '\0' ' ' <"$proc/cmdline" 2>/dev/null | grep -qF -- "$1"; then
      printf '%s\n' "${proc#/proc/}"
    fi
  done
}

# Unmounts PATH and every mount point under it, deepest first (logging each); prints how
# many there were.
unmount_under() {
  local mounts mnt n=0
  mounts="$(awk -v p="$1" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/mounts | sort -r)"
  for mnt in $mounts; do
    log "unmounting leftover $mnt"
    umount "$mnt" 2>/dev/null || umount -l "$mnt" || true
    n=$((n + 1))
  done
  printf '%s' "$n"
}

# ---------------------------------------------------------------------------------------------
# the private Docker engine

dockerd_pid() {
  local pid
  pid="$(cat "$DOCKER_PIDFILE" 2>/dev/null)" || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--exec-root $DOCKER_EXEC_ROOT" || return 1
  printf '%s' "$pid"
}

docker_answers() { dk info >/dev/null 2>&1; }

cmd_docker_up() {
  local pid start deadline
  if dockerd_pid >/dev/null && docker_answers; then
    return 0
  fi
  ensure_cmd dockerd docker.io
  [[ $(id -u) -eq 0 ]] || die "dockerd needs root"
  mkdir -p "$DOCKER_STATE" "$DOCKER_EXEC_ROOT" "$DOCKER_DATA_ROOT" "$(dirname "$DOCKERD_LOG")"
  start="$(now)"
  if ! pid="$(dockerd_pid)"; then
    # Left by a dockerd that was killed: its pid may be a zombie or another process by now,
    # and dockerd refuses to start while the file names a live pid.
    rm -f "$DOCKER_SOCK" "$DOCKER_PIDFILE"
    # An empty configuration file, so that a host /etc/docker/daemon.json does not apply.
    printf '{}\n' >"$DOCKER_STATE/daemon.json"
    log "starting dockerd (socket $DOCKER_SOCK, data root $DOCKER_DATA_ROOT, log $DOCKERD_LOG)"
    # No iptables rules, no docker0 bridge: a Kubernetes node with its own CNI bridge and
    # kube-proxy runs on the same machine. Builds that need the network use --network host.
    setsid dockerd \
      --config-file "$DOCKER_STATE/daemon.json" \
      --data-root "$DOCKER_DATA_ROOT" \
      --exec-root "$DOCKER_EXEC_ROOT" \
      --pidfile "$DOCKER_PIDFILE" \
      -H "unix://$DOCKER_SOCK" \
      --iptables=false --ip-masq=false --bridge=none \
      --storage-driver overlay2 \
      --exec-opt native.cgroupdriver=cgroupfs \
      >>"$DOCKERD_LOG" 2>&1 </dev/null &
    pid=$!
  fi
  deadline=$((SECONDS + ECOM_DOCKER_TIMEOUT))
  until docker_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$DOCKERD_LOG" >&2
      die "dockerd exited (log: $DOCKERD_LOG)"
    fi
    ((SECONDS < deadline)) || die "dockerd did not answer within ${ECOM_DOCKER_TIMEOUT}s (log: $DOCKERD_LOG)"
    sleep 0.5
  done
  log "dockerd answers after $(since "$start")s: $(dk info -f 'server {{.ServerVersion}}, {{.Driver}}, cgroup driver {{.CgroupDriver}}')"
}

ensure_docker() { docker_answers || cmd_docker_up; }

# Waits until none of PIDS lives; after TIMEOUT seconds sends SIGKILL to what is left.
wait_gone() {
  local timeout="$1" pid alive deadline
  shift
  deadline=$((SECONDS + timeout))
  while :; do
    alive=()
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]} == 0)) && return 0
    if ((SECONDS >= deadline)); then
      log "still running after ${timeout}s, killing: ${alive[*]}"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      sleep 1
      return 0
    fi
    sleep 0.5
  done
}

cmd_docker_down() {
  local pid others mounts
  if pid="$(dockerd_pid)"; then
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    wait_gone "$ECOM_DOCKER_TIMEOUT" "$pid"
  else
    log "dockerd is not running"
  fi
  # Its containerd and any shim exit with it; wait for them, by the exec root they name.
  mapfile -t others < <(pids_naming "$DOCKER_EXEC_ROOT")
  ((${#others[@]} == 0)) || wait_gone 30 "${others[@]}"
  mounts="$(unmount_under "$DOCKER_EXEC_ROOT")"
  mounts=$((mounts + $(unmount_under "$DOCKER_DATA_ROOT")))
  ((mounts == 0)) || log "unmounted $mounts leftover mount(s) under $DOCKER_EXEC_ROOT / $DOCKER_DATA_ROOT"
  rm -f "$DOCKER_SOCK" "$DOCKER_PIDFILE"
}

cmd_env() {
  printf 'export DOCKER_HOST=unix://%s\n' "$DOCKER_SOCK"
}

# ---------------------------------------------------------------------------------------------
# base images: debian:<suite>-slim from debootstrap, rust:<version>-<suite> with the host's Rust

# "URI SUITE" of every enabled `deb` entry of the host's apt sources (one-line and deb822).
apt_entries() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^#/ || $i !~ /:/) continue
          key = tolower(substr($i, 1, index($i, ":") - 1)); value = substr($i, index($i, ":") + 1)
          if (key == "types") types = value; else if (key == "uris") uris = value
          else if (key == "suites") suites = value; else if (key == "enabled") enabled = value
        }
        if (types !~ /(^|[ \t])deb([ \t]|$)/ || enabled ~ /no/) next
        nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
        for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++) if (u[a] != "" && s[b] != "") print u[a], s[b]
      }' "$f"
  done
}

# The host's Debian archive URI (KIND main) or security archive URI (KIND security).
host_mirror() {
  local uri
  if [[ $1 == security ]]; then
    uri="$(apt_entries | awk '$2 ~ /-security$/ { print $1; exit }')"
  else
    uri="$(apt_entries | awk '$2 !~ /-(security|updates|backports|proposed-updates)$/ && $1 ~ /debian\/?$/ { print $1; exit }')"
    [[ -n $uri ]] || uri="$(apt_entries | awk '$2 !~ /-/ { print $1; exit }')"
  fi
  printf '%s' "${uri%/}"
}

# True when the archive at URI publishes SUITE.
serves_suite() { curl -fsS --max-time 60 -o /dev/null "$1/dists/$2/InRelease" 2>/dev/null; }

# Writes the image's apt and dpkg configuration into ROOT: the host's mirrors for SUITE, and
# the usual container settings (no documentation, no package caches, no service starts).
write_base_files() {
  local root="$1" suite="$2" mirror="$3" security="$4"
  rm -f "$root/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$mirror" "$suite" "$suite"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [[ -n $security ]]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$suite"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } >"$root/etc/apt/sources.list.d/debian.sources"
  cat >"$root/etc/dpkg/dpkg.cfg.d/ecom-slim" <<'CFG'
# Container image: no documentation, manual pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
  cat >"$root/etc/apt/apt.conf.d/ecom-container" <<'CFG'
// Container image: no binary caches, no translations, downloaded packages removed after use.
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT::Install-Suggests "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
CFG
  printf '#!/bin/sh\n# Services are never started inside an image build.\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
}

# Removes what an image must not carry: apt lists and caches, logs, the build host's identity,
# and the files the dpkg excludes above would not have installed.
clean_rootfs() {
  local root="$1"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.cache
  find "$root/var/log" -type f -delete
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/groff/* "$root"/usr/share/lintian/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  : >"$root/etc/machine-id"
  : >"$root/etc/resolv.conf"
  printf 'localhost\n' >"$root/etc/hostname"
}

# debootstrap SUITE into a fresh directory and pack it as TARBALL (no device nodes: the
# runtime provides /dev).
make_rootfs() {
  local suite="$1" mirror="$2" security="$3" tarball="$4" work rootfs left
  ensure_cmd debootstrap debootstrap
  [[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
  work="$(mktemp -d "$IMAGES_CACHE/rootfs.XXXXXX")"
  rootfs="$work/rootfs"
  log "debootstrap --variant=minbase $suite from $mirror (log: $work/debootstrap.log)"
  if ! debootstrap --variant=minbase --arch=amd64 "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
    left="$(unmount_under "$work")"
    tail -n 20 "$work/debootstrap.log" >&2
    cp "$work/debootstrap.log" "$IMAGES_CACHE/debootstrap-failed.log"
    rm -rf "$work"
    die "debootstrap $suite failed ($left mount(s) cleaned; log: $IMAGES_CACHE/debootstrap-failed.log)"
  fi
  left="$(unmount_under "$work")"
  ((left == 0)) || log "unmounted $left mount(s) debootstrap left under $work"
  write_base_files "$rootfs" "$suite" "$mirror" "$security"
  clean_rootfs "$rootfs"
  tar --numeric-owner --xattrs --acls -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' \
    --exclude='./sys/*' -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$work"
}

build_debian_base() {
  local image="$1" suite="$2" mirror security key tarball start
  mirror="$(host_mirror main)"
  security="$(host_mirror security)"
  [[ -n $mirror ]] || die "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/*.sources"
  serves_suite "$mirror" "$suite" ||
    die "the Debian mirror $mirror does not serve '$suite' ($mirror/dists/$suite/InRelease); $image cannot be built here"
  if [[ -n $security ]] && ! serves_suite "$security" "$suite-security"; then
    log "$security does not serve $suite-security; the image's apt sources leave it out"
    security=""
  fi
  # The inputs: suite, mirrors and the recipe itself (the functions' text).
  key="$(printf '%s\n' "$suite" "$mirror" "$security" "$(declare -f make_rootfs write_base_files clean_rootfs)" | sha_text)"
  up_to_date "$image" "$key" && return 0
  mkdir -p "$IMAGES_CACHE"
  tarball="$IMAGES_CACHE/rootfs-$suite-$key.tar"
  if [[ ! -f $tarball ]]; then
    start="$(now)"
    make_rootfs "$suite" "$mirror" "$security" "$tarball"
    log "root filesystem $tarball ($(du -m "$tarball" | cut -f1) MB) in $(since "$start")s"
  fi
  start="$(now)"
  dk import --change 'CMD ["bash"]' --change "LABEL $INPUTS_LABEL=$key" \
    --change "LABEL org.ecom-pipeline.debian-suite=$suite" "$tarball" "$image" >/dev/null
  # shellcheck disable=SC2016 # expanded by the image's shell
  dk run --rm --network none "$image" sh -c '. /etc/os-release && test "$VERSION_CODENAME" = "$1"' sh "$suite" ||
    die "$image does not report VERSION_CODENAME=$suite"
  log "$image imported in $(since "$start")s ($(image_mb "$image"))"
}

# rust:<version>-<suite>: the Debian base, the packages the public rust images carry for
# linking (ca-certificates gcc libc6-dev), and the host's active Rust toolchain under rustup's
# and cargo's homes, with the environment the public rust images set.
build_rust_base() {
  local image="$1" base="$2" suite="$3" sysroot release host toolchain key ctx start tag_version rustup_bin
  need_cmd rustc "install a Rust toolchain"
  sysroot="$(rustc --print sysroot)"
  release="$(rustc -vV | sed -n 's/^release: //p')"
  host="$(rustc -vV | sed -n 's/^host: //p')"
  tag_version="${image#*:}"
  tag_version="${tag_version%%-*}"
  [[ $release == "$tag_version" || $release == "$tag_version".* ]] ||
    die "the host's rustc is $release but the Dockerfile names $image; the image would not hold the version its tag says"
  [[ $host == x86_64-unknown-linux-gnu ]] || die "the host's toolchain is $host; the image needs x86_64-unknown-linux-gnu"
  rustup_bin="$(command -v rustup || true)"
  toolchain="$release-$host"
  key="$(printf '%s\n' "$(image_label "$base" "$INPUTS_LABEL")" "$(rustc -vV)" "$(cargo -V)" \
    "$(cat "${LOCAL_CA_DIR}"/*.crt 2>/dev/null)" "$(declare -f build_rust_base rust_context)" | sha_text)"
  up_to_date "$image" "$key" && return 0
  start="$(now)"
  ctx="$(mktemp -d "$IMAGES_CACHE/rust-context.XXXXXX")"
  rust_context "$ctx" "$sysroot" "$toolchain" "$rustup_bin"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $base
COPY local-ca/ /usr/local/share/ca-certificates/
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \\
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup \\
    CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=$release
COPY rustup /usr/local/rustup
COPY cargo /usr/local/cargo
RUN rustc --version && cargo --version
LABEL $INPUTS_LABEL=$key org.ecom-pipeline.rust-version=$release
DOCKERFILE
  log "building $image from $base + the host's $toolchain ($(du -sm "$ctx" | cut -f1) MB)"
  dk_build --network host -t "$image" "$ctx" >"$IMAGES_CACHE/rust-base.log" 2>&1 || {
    tail -n 30 "$IMAGES_CACHE/rust-base.log" >&2
    rm -rf "$ctx"
    die "building $image failed (log: $IMAGES_CACHE/rust-base.log)"
  }
  rm -rf "$ctx"
  log "$image built in $(since "$start")s ($(image_mb "$image")): $(dk run --rm --network none "$image" rustc --version)"
}

# The build context of the rust base: rustup/toolchains/TOOLCHAIN (hard links to the host's
# sysroot where possible, without its HTML documentation), cargo/bin with rustup's proxies (or
# plain links into the toolchain when the host has no rustup), and local-ca/ with the CA
# certificates this machine adds to Debian's (a TLS-inspecting egress proxy's, say): cargo in
# the build stage reaches crates.io the way the host does. The runtime image gets none of them.
rust_context() {
  local ctx="$1" sysroot="$2" toolchain="$3" rustup_bin="$4" tool
  mkdir -p "$ctx/rustup/toolchains" "$ctx/cargo/bin" "$ctx/local-ca"
  cp "$LOCAL_CA_DIR"/*.crt "$ctx/local-ca/" 2>/dev/null || true
  cp -al "$sysroot/." "$ctx/rustup/toolchains/$toolchain/" 2>/dev/null ||
    cp -a "$sysroot/." "$ctx/rustup/toolchains/$toolchain/"
  rm -rf "$ctx/rustup/toolchains/$toolchain/share/doc"
  if [[ -n $rustup_bin ]]; then
    cp "$(readlink -f "$rustup_bin")" "$ctx/cargo/bin/rustup"
    printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$toolchain" >"$ctx/rustup/settings.toml"
  fi
  for tool in "$ctx/rustup/toolchains/$toolchain"/bin/*; do
    tool="$(basename "$tool")"
    if [[ -n $rustup_bin ]]; then
      ln -s rustup "$ctx/cargo/bin/$tool"
    else
      ln -s "/usr/local/rustup/toolchains/$toolchain/bin/$tool" "$ctx/cargo/bin/$tool"
    fi
  done
}

cmd_bases() {
  local runtime_image rust_image
  runtime_image="$(dockerfile_default RUNTIME_IMAGE)"
  rust_image="$(dockerfile_default RUST_IMAGE)"
  [[ $runtime_image == *"$DEBIAN_SUITE"* && $rust_image == *"$DEBIAN_SUITE"* ]] ||
    die "the Dockerfile's defaults ($runtime_image, $rust_image) are not $DEBIAN_SUITE images; update DEBIAN_SUITE in $0"
  ensure_docker
  build_debian_base "$runtime_image" "$DEBIAN_SUITE"
  build_rust_base "$rust_image" "$runtime_image" "$DEBIAN_SUITE"
}

# ---------------------------------------------------------------------------------------------
# ecom: the project's Dockerfile

# The base images a build of the Dockerfile resolves must exist in the private engine: a
# missing one would be pulled from a registry.
need_local_bases() {
  local image
  for image in "$@"; do
    image_exists "$image" || die "$image is not in the private engine; run scripts/images.sh bases first"
  done
}

cmd_ecom() {
  local prebuilt="" start ctx
  while (($# > 0)); do
    case "$1" in
      --prebuilt)
        (($# >= 2)) || die "--prebuilt needs the path of an ecom binary"
        prebuilt="$2"
        shift 2
        ;;
      *) die "unknown argument '$1' to ecom (expected --prebuilt BIN)" ;;
    esac
  done
  [[ -z $prebuilt || (-f $prebuilt && -x $prebuilt) ]] || die "$prebuilt is not an executable file"
  # The Dockerfile's base images must be the local ones: a missing one would be pulled.
  cmd_bases
  start="$(now)"
  if [[ -n $prebuilt ]]; then
    need_local_bases "$(dockerfile_default RUNTIME_IMAGE)"
    mkdir -p "$IMAGES_CACHE"
    ctx="$(mktemp -d "$IMAGES_CACHE/ecom-context.XXXXXX")"
    cp "$REPO_DIR/Dockerfile" "$ctx/Dockerfile"
    # Stripped like the from-source build's binary.
    strip -o "$ctx/ecom" "$prebuilt" 2>/dev/null || cp "$prebuilt" "$ctx/ecom"
    chmod 0755 "$ctx/ecom"
    log "building $ECOM_IMAGE --target prebuilt from $prebuilt (log: $IMAGES_CACHE/ecom-prebuilt.log)"
    dk_build --network host --target prebuilt -t "$ECOM_IMAGE" "$ctx" >"$IMAGES_CACHE/ecom-prebuilt.log" 2>&1 || {
      tail -n 30 "$IMAGES_CACHE/ecom-prebuilt.log" >&2
      rm -rf "$ctx"
      die "building $ECOM_IMAGE from $prebuilt failed (log: $IMAGES_CACHE/ecom-prebuilt.log)"
    }
    rm -rf "$ctx"
  else
    need_local_bases "$(dockerfile_default RUNTIME_IMAGE)" "$(dockerfile_default RUST_IMAGE)"
    log "building $ECOM_IMAGE from source with $REPO_DIR/Dockerfile (compiles the workspace: 25-30 minutes on 2 cores when cold)"
    dk_build --network host -t "$ECOM_IMAGE" "$REPO_DIR"
  fi
  local config='user {{.Config.User}}, workdir {{.Config.WorkingDir}}, entrypoint {{json .Config.Entrypoint}}'
  log "$ECOM_IMAGE: $(image_mb "$ECOM_IMAGE") in $(since "$start")s; $(dk image inspect -f "$config" "$ECOM_IMAGE")"
  log "docker run --rm $ECOM_IMAGE --version: $(dk run --rm --network none "$ECOM_IMAGE" --version)"
}

# ---------------------------------------------------------------------------------------------
# pause: the pod sandbox image

# Builds IMAGE from the Dockerfile text on stdin in the context directory CTX unless IMAGE
# carries the inputs label KEY; LOG keeps the build's output.
build_small_image() {
  local image="$1" ctx="$2" key="$3" logf="$4"
  cat >"$ctx/Dockerfile"
  dk_build --network host -t "$image" --label "$INPUTS_LABEL=$key" "$ctx" >"$logf" 2>&1 || {
    tail -n 30 "$logf" >&2
    die "building $image failed (log: $logf)"
  }
}

cmd_pause() {
  local src="$IMAGES_DIR/pause.c" dir key start
  need_cmd gcc "install Debian's gcc and libc6-dev"
  ensure_docker
  key="$(printf '%s\n' "$(cat "$src")" "$(gcc --version | head -n 1)" "$(declare -f cmd_pause)" | sha_text)"
  up_to_date "$PAUSE_IMAGE" "$key" && return 0
  start="$(now)"
  dir="$IMAGES_CACHE/pause-$key"
  mkdir -p "$dir"
  gcc -static -Os -Wall -Wextra -Werror -o "$dir/pause" "$src"
  strip "$dir/pause"
  build_small_image "$PAUSE_IMAGE" "$dir" "$key" "$dir/build.log" <<'DOCKERFILE'
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
DOCKERFILE
  log "$PAUSE_IMAGE built in $(since "$start")s ($(image_mb "$PAUSE_IMAGE")): $(dk run --rm --network none "$PAUSE_IMAGE" -v)"
}

# ---------------------------------------------------------------------------------------------
# coredns: the cluster DNS image

# CoreDNS's main package is the module root; build a generated wrapper module whose main (from
# scripts/images/coredns/main.go) imports the standard plugin set and calls coremain.Run.
build_coredns() {
  local src="$COREDNS_HOME/src" bin="$COREDNS_HOME/bin/coredns"
  if [[ -x $bin && -f $COREDNS_HOME/.built ]] && cmp -s "$IMAGES_DIR/coredns/main.go" "$src/main.go"; then
    return 0
  fi
  need_cmd go "install Go 1.25 or newer"
  log "building CoreDNS $COREDNS_VERSION from github.com/coredns/coredns (log: $COREDNS_HOME/build.log)"
  mkdir -p "$src" "$COREDNS_HOME/bin"
  rm -f "$COREDNS_HOME/.built"
  cp "$IMAGES_DIR/coredns/main.go" "$src/main.go"
  printf 'module ecom-pipeline/images/coredns\n\ngo 1.25.0\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" >"$src/go.mod"
  rm -f "$src/go.sum"
  (cd "$src" && export GOWORK=off CGO_ENABLED=0 && go mod tidy &&
    go build -mod=mod -trimpath -ldflags "-s -w" -o "$bin" .) >"$COREDNS_HOME/build.log" 2>&1 || {
    tail -n 30 "$COREDNS_HOME/build.log" >&2
    die "building CoreDNS $COREDNS_VERSION failed (log: $COREDNS_HOME/build.log)"
  }
  date -Is >"$COREDNS_HOME/.built"
}

cmd_coredns() {
  local key start
  ensure_docker
  start="$(now)"
  build_coredns
  key="$(printf '%s\n' "$COREDNS_VERSION" "$(sha256sum <"$COREDNS_HOME/bin/coredns")" "$(declare -f cmd_coredns)" | sha_text)"
  up_to_date "$COREDNS_IMAGE" "$key" && return 0
  mkdir -p "$COREDNS_HOME/image"
  cp "$COREDNS_HOME/bin/coredns" "$COREDNS_HOME/image/coredns"
  build_small_image "$COREDNS_IMAGE" "$COREDNS_HOME/image" "$key" "$COREDNS_HOME/image.log" <<'DOCKERFILE'
FROM scratch
COPY coredns /coredns
EXPOSE 53 53/udp
ENTRYPOINT ["/coredns"]
DOCKERFILE
  local version
  version="$(dk run --rm --network none "$COREDNS_IMAGE" -version | head -n 1)"
  log "$COREDNS_IMAGE built in $(since "$start")s ($(image_mb "$COREDNS_IMAGE")): $version"
}

# shellcheck source=images/dev-services.sh
source "$IMAGES_DIR/dev-services.sh"

# ---------------------------------------------------------------------------------------------
# load: the images into a containerd (namespace k8s.io, where the CRI plugin looks)

CTR_SOCK=""
ctr_k8s() { ctr --address "$CTR_SOCK" --namespace k8s.io "$@"; }

# The images a node needs, in the private engine.
node_images() { printf '%s\n' "$ECOM_IMAGE" "$PAUSE_IMAGE" "$COREDNS_IMAGE"; }

# The reference containerd keeps the Docker image IMAGE under: ctr import completes a name
# without a registry domain the way the kubelet does (domain, and library/ for one path part).
ctr_ref() {
  local image="$1" ref domain
  while read -r ref; do
    if [[ $ref == "$image" ]]; then
      printf '%s' "$ref"
      return 0
    fi
    domain="${ref%%/*}"
    [[ $domain == *.* ]] || continue
    if [[ $image != */* && $ref == "$domain/library/$image" ]] || [[ $image == */* && $ref == "$domain/$image" ]]; then
      printf '%s' "$ref"
      return 0
    fi
  done < <(ctr_k8s images ls -q)
  return 1
}

# The Docker image id recorded on the containerd image REF by an earlier load.
ctr_loaded_id() {
  ctr_k8s images ls "name==$1" | grep -o "$ID_LABEL=sha256:[0-9a-f]*" | head -n 1 | cut -d= -f2
}

load_image() {
  local image="$1" id ref start
  id="$(dk image inspect -f '{{.Id}}' "$image" 2>/dev/null)" ||
    die "$image is not in the private engine; build it first (scripts/images.sh all)"
  if ref="$(ctr_ref "$image")" && [[ $(ctr_loaded_id "$ref") == "$id" ]]; then
    log "$ref is already loaded (${id:7:12})"
    return 0
  fi
  start="$(now)"
  dk save "$image" | ctr_k8s images import --all-platforms - >/dev/null ||
    die "importing $image into the containerd at $CTR_SOCK failed"
  ref="$(ctr_ref "$image")" || die "$image was imported but containerd lists no matching image"
  ctr_k8s images label "$ref" "$ID_LABEL=$id" >/dev/null
  log "loaded $image as $ref (${id:7:12}) in $(since "$start")s"
}

cmd_load() {
  (($# >= 1)) || die "usage: scripts/images.sh load SOCKET [IMAGE...] (SOCKET: the containerd's gRPC socket)"
  CTR_SOCK="$1"
  shift
  [[ -S $CTR_SOCK ]] || die "$CTR_SOCK is not a socket"
  ensure_cmd ctr containerd
  ensure_docker
  local images=("$@") image
  ((${#images[@]} > 0)) || mapfile -t images < <(node_images)
  for image in "${images[@]}"; do load_image "$image"; done
  ctr_k8s images ls -q
}

# A throwaway containerd (CRI off: nothing but images, snapshots and tasks) under DIR.
start_scratch_containerd() {
  local dir="$1"
  mkdir -p "$dir/root" "$dir/state"
  cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
TOML
  setsid containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$dir/containerd.pid"
  local deadline=$((SECONDS + 30))
  until ctr --address "$dir/containerd.sock" version >/dev/null 2>&1; do
    kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null || {
      tail -n 20 "$dir/containerd.log" >&2
      die "the throwaway containerd exited (log: $dir/containerd.log)"
    }
    ((SECONDS < deadline)) || die "the throwaway containerd did not answer (log: $dir/containerd.log)"
    sleep 0.2
  done
}

# shellcheck disable=SC2317 # called from an EXIT trap
stop_scratch_containerd() {
  local dir="$1" had_run_dir="$2" pid left
  pid="$(cat "$dir/containerd.pid" 2>/dev/null)" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait_gone 30 "$pid"
  left="$(unmount_under "$dir")"
  ((left == 0)) || log "unmounted $left mount(s) the throwaway containerd left under $dir"
  rm -rf "$dir"
  # containerd 1.6 puts shim sockets under /run/containerd/s whatever its state dir: remove
  # the empty directories when the check created /run/containerd.
  if [[ $had_run_dir == 0 && -d /run/containerd ]]; then
    find /run/containerd -depth -type d -empty -delete
  fi
}

# `load` into a containerd started for the purpose, then run the pause image (stopped with
# SIGTERM, it must exit 0) and `ecom --version` through `ctr run`.
cmd_load_check() {
  ensure_cmd containerd containerd
  ensure_cmd ctr containerd
  ensure_docker
  local dir pause_ref ecom_ref status ctr_pid had_run_dir=0 run_opts
  [[ -e /run/containerd ]] && had_run_dir=1
  dir="$(mktemp -d "$ECOM_STATE/containerd-check.XXXXXX")"
  # shellcheck disable=SC2064 # the values are fixed now
  trap "stop_scratch_containerd '$dir' '$had_run_dir'" EXIT
  start_scratch_containerd "$dir"
  cmd_load "$dir/containerd.sock"
  pause_ref="$(ctr_ref "$PAUSE_IMAGE")"
  ecom_ref="$(ctr_ref "$ECOM_IMAGE")"
  # The tasks' FIFOs and runc state stay in the throwaway directory too.
  run_opts=(--rm --fifo-dir "$dir/fifo" --runc-root "$dir/runc")
  ctr_k8s run "${run_opts[@]}" "$pause_ref" ecom-pause-check >"$dir/pause.out" 2>&1 &
  ctr_pid=$!
  local deadline=$((SECONDS + 30))
  until ctr_k8s tasks ls 2>/dev/null | grep -q '^ecom-pause-check .*RUNNING'; do
    kill -0 "$ctr_pid" 2>/dev/null || die "the pause container exited at once: $(cat "$dir/pause.out")"
    ((SECONDS < deadline)) || die "the pause container did not start"
    sleep 0.2
  done
  ctr_k8s tasks ls | awk 'NR == 1 || $1 == "ecom-pause-check"' >&2
  ctr_k8s tasks kill --signal SIGTERM ecom-pause-check
  status=0
  wait "$ctr_pid" || status=$?
  ((status == 0)) || die "the pause container ended with status $status after SIGTERM (want 0)"
  log "ctr run $pause_ref: running, SIGTERM -> exit 0"
  log "ctr run $ecom_ref --version: $(ctr_k8s run "${run_opts[@]}" "$ecom_ref" ecom-check /usr/local/bin/ecom --version)"
  local id pwd
  id="$(ctr_k8s run "${run_opts[@]}" "$ecom_ref" ecom-id-check /usr/bin/id)"
  pwd="$(ctr_k8s run "${run_opts[@]}" "$ecom_ref" ecom-pwd-check /bin/pwd)"
  log "ctr run $ecom_ref id: $id in $pwd"
}

cmd_all() {
  local prebuilt=()
  while (($# > 0)); do
    case "$1" in
      --prebuilt)
        (($# >= 2)) || die "--prebuilt needs the path of an ecom binary"
        prebuilt=(--prebuilt "$2")
        shift 2
        ;;
      *) die "unknown argument '$1' to all (expected --prebuilt BIN)" ;;
    esac
  done
  local start step
  start="$(now)"
  cmd_docker_up
  for step in bases pause coredns; do "cmd_$step"; done
  cmd_ecom "${prebuilt[@]}"
  log "all images in $(since "$start")s"
}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

main() {
  local verb="${1:-}"
  (($# > 0)) && shift
  case "$verb" in
    docker-up) cmd_docker_up ;;
    docker-down) cmd_docker_down ;;
    env) cmd_env ;;
    bases) cmd_bases ;;
    ecom) cmd_ecom "$@" ;;
    pause) cmd_pause ;;
    coredns) cmd_coredns ;;
    jre) cmd_jre ;;
    dev-services) cmd_dev_services ;;
    dev-service-images) dev_service_images ;;
    load) cmd_load "$@" ;;
    load-check) cmd_load_check ;;
    all) cmd_all "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      die "unknown command '${verb}' (expected docker-up, docker-down, env, bases, ecom, pause, coredns, load, load-check or all)"
      ;;
  esac
}

# One line, so that bash has read all it will run even if this file changes meanwhile.
main "$@"; exit $?
