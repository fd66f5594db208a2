# One image for the operator, every stage Job and the dashboard: the `ecom` binary on a small
# Debian runtime, running as a non-root numeric user (the pods also set runAsUser 65532).
#
#   docker build -t ecom:dev .
#
# builds `ecom` from source (stage `build`) and puts it on the runtime stage. BuildKit is
# needed (the default builder of current Docker; RUN --mount below). No `# syntax=` line: the
# frontend built into the daemon is used, so nothing is pulled but the two base images, and
# with local images of those names (scripts/images.sh bases) nothing at all.
#
#   docker build --target prebuilt -t ecom:dev CONTEXT
#
# puts an `ecom` already built elsewhere (CONTEXT holds this file and the binary, named ecom)
# on the same runtime stage; scripts/images.sh ecom --prebuilt BIN does this for the tests.
# The runtime stage comes first and the Rust stage last, so that even a builder that builds
# every stage up to its target never needs the Rust stage for `prebuilt`.
#
# The runtime stage installs Debian packages: where the build has no default network (an
# engine without a bridge), pass --network host.
ARG RUST_IMAGE=rust:1.95-trixie
ARG RUNTIME_IMAGE=debian:trixie-slim

# Runtime: the binary links libc, libm, libgcc_s, libz and OpenSSL 3 (librdkafka's TLS and
# SCRAM; checked with ldd); ca-certificates for https sources and for Kafka over TLS.
# (On a bookworm runtime the OpenSSL package is named libssl3.)
FROM ${RUNTIME_IMAGE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates zlib1g libssl3t64 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 ecom \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /work --shell /usr/sbin/nologin ecom \
 && install -d -o 65532 -g 65532 /work
LABEL org.opencontainers.image.title="ecom" \
      org.opencontainers.image.description="ecom-pipeline: operator, pipeline stages and dashboard" \
      org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
WORKDIR /work
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ecom"]
CMD ["--help"]

# The runtime stage with a binary built outside (mode 0755, owned by root like the default's).
FROM runtime AS prebuilt
COPY ecom /usr/local/bin/ecom

# Build stage: librdkafka is compiled from source by rdkafka-sys (cmake, a C/C++ toolchain);
# its bundled build picks up the curl, OpenSSL and zlib headers when present.
FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake g++ make pkg-config python3 libcurl4-openssl-dev libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the build directory between builds of the same machine.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ecom \
 && install -D -m 0755 target/release/ecom /out/ecom \
 && strip /out/ecom

# The default target: the runtime stage with the binary built from source above.
FROM runtime
COPY --from=build /out/ecom /usr/local/bin/ecom
