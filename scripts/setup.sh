#!/usr/bin/env bash
# Installs what building ecom needs, once: a C/C++ toolchain and cmake (for the
# bundled librdkafka), pkg-config and curl. Idempotent: does nothing when all is there.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
# Headers the bundled librdkafka build picks up (it enables curl when libcurl is present).
for pkg in libcurl4-openssl-dev libssl-dev zlib1g-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done

if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install a Rust toolchain (1.89 or newer) with rustup first" >&2
  exit 1
fi

# `make test` compiles the workspace through clippy-driver and checks formatting with rustfmt.
sysroot="$(rustc --print sysroot)"
if [[ ! -x $sysroot/bin/clippy-driver || ! -x $sysroot/bin/rustfmt ]]; then
  if command -v rustup >/dev/null 2>&1; then
    echo "setup: adding the clippy and rustfmt components" >&2
    rustup component add clippy rustfmt
  else
    echo "setup: clippy-driver or rustfmt is missing from $sysroot; install them with the toolchain" >&2
    exit 1
  fi
fi
