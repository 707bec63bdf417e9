#!/usr/bin/env bash
# The Kafka Streams peer (benches/peer): a Java application with the shape of Rallypoint's two
# stages (intake → 1-partition journal → stateful fold), exactly_once_v2, to benchmark side by
# side with Rallypoint on the same broker and input.
#
# Usage:
#   scripts/peer.sh build
#       Builds benches/peer with Maven into $RALLYPOINT_CACHE/peer/build (peer.jar + lib/),
#       quietly; does nothing when the sources have not changed since the last build.
#   scripts/peer.sh drain --bootstrap B --namespace NS --nations EST,LVA,... --stage intake|fold --expect N
#       [--app-id ID] [--state-dir DIR] [--threads T]   (state: a temporary folder by default)
#       Creates the peer's topics if missing (NS.peer.journal with 1 partition, NS.peer.out,
#       NS.peer.dlq), runs that stage until its output (the journal for intake, peer.out for
#       fold) holds N more committed records than when it started, stops it and prints one
#       JSON line on stdout:
#         {"stage":..,"events":N,"seconds":..,"events_per_s":..,"steady_events_per_s":..,"cpu_seconds":..,"wall_seconds":..}
#       steady_events_per_s is the rate over the second half of the N records (the JVM warm).
#       seconds and events_per_s run from the first committed output record to the N-th;
#       cpu_seconds is the peer JVM's user+system CPU from its launch to the N-th record.
#       Input topics are Rallypoint's (`rallypoint topics create`) and must exist.
#   scripts/peer.sh run [the same options, without --expect; --stage all by default]
#       Runs the peer in the foreground until Ctrl-C.
#
# NS follows Rallypoint's kafka.namespace: empty for none, else every topic is "NS.<name>".
# The application ids are <ID>-intake and <ID>-fold, ID defaulting to "NS.peer" ("peer").
# A stage keeps its consumer offsets and state between runs of the same ID: a second drain of
# the same input finds nothing new to do. Use a new --app-id (or namespace) for a fresh run.
#
# Environment:
#   RALLYPOINT_CACHE  cache root (default ~/.cache/rallypoint)
#   PEER_TIMEOUT      drain gives up after this many seconds (default 600)
#   PEER_IDLE         drain gives up when no output arrives for this many seconds (default 60)
#   PEER_JAVA_OPTS    JVM flags for the peer, e.g. "-Xmx1g"
#   PEER_LOG          the peer's log level (default warn; info shows Kafka's own logs)
#
# Diagnostics go to stderr; stdout holds only drain's JSON line.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src_dir="$repo_dir/benches/peer"
peer_dir="${RALLYPOINT_CACHE:-$HOME/.cache/rallypoint}/peer"
build_dir="$peer_dir/build"

log() { printf 'peer: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found; $2"
}

# A fingerprint of everything the build reads: rebuild only when it changes.
sources_hash() {
  (cd "$src_dir" && find pom.xml src -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

build() {
  need java "install Java 17 (scripts/install-deps.sh does)"
  need mvn "install Maven (scripts/install-deps.sh does)"
  mkdir -p "$peer_dir"
  local hash
  hash="$(sources_hash)"
  [[ -f "$build_dir/peer.jar" && "$(cat "$build_dir/.sources" 2>/dev/null)" == "$hash" ]] && return 0
  # One build at a time; the finished folder is renamed into place, so a drain never runs a
  # half-built classpath.
  exec 9>"$peer_dir/.lock"
  flock -w 900 9 || die "timed out waiting for another build of the peer"
  if [[ ! -f "$build_dir/peer.jar" || "$(cat "$build_dir/.sources" 2>/dev/null)" != "$hash" ]]; then
    rm -rf "$peer_dir"/.build.*
    local tmp
    tmp="$(mktemp -d "$peer_dir/.build.XXXXXX")"
    log "building benches/peer with Maven (the first build downloads Kafka Streams) ..."
    if ! mvn -B -q -Dstyle.color=never -f "$src_dir/pom.xml" -Dpeer.build.dir="$tmp" package >"$peer_dir/build.log" 2>&1; then
      tail -n 40 "$peer_dir/build.log" >&2
      rm -rf "$tmp"
      die "the Maven build failed (whole log: $peer_dir/build.log)"
    fi
    [[ -f "$tmp/peer.jar" && -d "$tmp/lib" ]] || { rm -rf "$tmp"; die "no peer.jar after the build"; }
    printf '%s\n' "$hash" >"$tmp/.sources"
    rm -rf "$build_dir"
    mv "$tmp" "$build_dir"
    log "built $build_dir"
  fi
  exec 9>&-
}

java_cmd() {
  # PEER_LOG sets slf4j-simple's level for the peer and for the drain's own client.
  local level="${PEER_LOG:-warn}"
  printf '%s\0' java "-Dorg.slf4j.simpleLogger.defaultLogLevel=$level" \
    -cp "$build_dir/peer.jar:$build_dir/lib/*"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  build)
    build
    ;;
  drain)
    build
    timeout_s="${PEER_TIMEOUT:-600}"
    [[ "$timeout_s" =~ ^[0-9]+$ ]] || die "PEER_TIMEOUT must be a number of seconds"
    mapfile -d '' java < <(java_cmd)
    # State of its own, removed afterwards (unless --state-dir is given), so that benchmark
    # runs do not pile up RocksDB folders in the cache.
    mkdir -p "$peer_dir"
    # Folders of drains that were killed outright (no EXIT trap then) are removed a day later.
    find "$peer_dir" -maxdepth 1 -name 'drain-state.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
    state="$(mktemp -d "$peer_dir/drain-state.XXXXXX")"
    trap 'rm -rf "$state"' EXIT
    # The drain enforces PEER_TIMEOUT itself; `timeout` is a backstop should it hang (its
    # SIGTERM makes the drain stop the peer). The peer inherits the -D flag through PEER_JAVA_OPTS.
    PEER_JAVA_OPTS="${java[1]} ${PEER_JAVA_OPTS:-}" PEER_CLK_TCK="$(getconf CLK_TCK)" \
      timeout -k 30 "$((timeout_s + 120))" "${java[@]}" rallypoint.peer.Drain \
      --state-dir "$state" --timeout "$timeout_s" "$@"
    ;;
  run)
    build
    mapfile -d '' java < <(java_cmd)
    exec "${java[@]}" rallypoint.peer.Peer --state-dir "$peer_dir/state" "$@"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
