#!/usr/bin/env bash
# Install the Debian packages Rallypoint needs to build and test.
# Idempotent: packages are checked with dpkg first, so apt is only touched
# (update + install) when something is actually missing; a second run is instant.
#
# Usage: scripts/install-deps.sh [EXTRA_PACKAGE...]
set -euo pipefail

packages=(
  clang libclang-dev          # bindgen / rdkafka-sys build
  pkg-config libssl-dev libsasl2-dev zlib1g-dev liblz4-dev  # librdkafka features
  kcat                        # independent Kafka client for tests
  prometheus                  # promtool check metrics
  python3 curl                # free-port picking, readiness checks
  g++ make                    # RocksDB and librdkafka compile from source
  openjdk-17-jre-headless maven  # scripts/kafka-local.sh runs a real broker from Maven Central
)
packages+=("$@")

missing=()
for pkg in "${packages[@]}"; do
  # "install ok installed" is the only state in which the package is usable.
  if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present" >&2
  exit 0
fi

# Root on CI and dev machines; fall back to sudo only where it exists.
as_root=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: not root and no sudo; please install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
