# syntax=docker/dockerfile:1
# Rallypoint container image.
#
#   docker build -t rallypoint:local .
#   docker run --rm rallypoint:local --help
#
# The builder compiles RocksDB and librdkafka from source (allow 30-40 minutes on 2 cores the
# first time); BuildKit cache mounts keep the cargo registry and target folder between builds.

FROM rust:1-bookworm AS builder
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      clang libclang-dev libssl-dev libsasl2-dev liblz4-dev pkg-config cmake g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The target folder is a cache mount, so the binary is copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rallypoint \
 && install -m 0755 target/release/rallypoint /usr/local/bin/rallypoint

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 libsasl2-2 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rallypoint \
 && useradd --system --uid 10001 --gid rallypoint --home-dir /var/lib/rallypoint \
      --no-create-home --shell /usr/sbin/nologin rallypoint \
 && install -d -o rallypoint -g rallypoint -m 0750 /var/lib/rallypoint
COPY --from=builder /usr/local/bin/rallypoint /usr/local/bin/rallypoint
# Container defaults: state in the volume, metrics and probes reachable from outside.
# Every other key keeps its embedded default (config/defaults.toml) unless overridden.
ENV RALLYPOINT__STATE__DIR=/var/lib/rallypoint \
    RALLYPOINT__HTTP__LISTEN=0.0.0.0:9464
USER 10001:10001
WORKDIR /var/lib/rallypoint
VOLUME ["/var/lib/rallypoint"]
EXPOSE 9464
ENTRYPOINT ["rallypoint"]
CMD ["run"]
