#!/usr/bin/env bash
# A real single-node Apache Kafka 4.x broker (KRaft, broker+controller in one JVM)
# on loopback, for tests on machines without Docker. The broker jars come from
# Maven Central (org.apache.kafka:kafka_2.13 and its runtime closure), Java 17+.
#
# Usage: scripts/kafka-local.sh start|stop [--clean]|clean|kill|status|bootstrap|topics ARGS...|transactions ARGS...
#
#   start      download (once, cached) + format (first time) + launch; waits until the
#              broker answers metadata; prints the bootstrap address as the LAST stdout line.
#              Running it again on a running broker just prints the address.
#   stop       SIGTERM, wait up to 30 s, then SIGKILL. Data, config and ports are kept, so
#              a later `start` brings back the same broker on the same port.
#   stop --clean | clean   stop, then delete the working folder.
#   kill       SIGKILL at once, as a crash would; data and ports are kept, as after stop.
#   status     exit 0 and print the address if running, else exit 1.
#   bootstrap  print the address (the broker keeps it across restarts); exit 1 if none yet.
#   topics     run Kafka's TopicCommand against this broker, e.g.
#              `scripts/kafka-local.sh topics --create --topic t1 --partitions 3`
#   transactions  run Kafka's TransactionsCommand against this broker, e.g.
#              `scripts/kafka-local.sh transactions find-hanging --broker-id 1`
#
# Environment:
#   KAFKA_VERSION     broker version (default 4.3.1; pinned per working folder once formatted)
#   RALLYPOINT_CACHE  jar cache root (default ~/.cache/rallypoint)
#   KAFKA_LOCAL_DIR   working folder (default <repo>/.rallypoint/kafka)
#   KAFKA_PORT        broker port on first start (default: a free one)
#   KAFKA_CONTROLLER_PORT  controller port on first start (default: a free one)
#   KAFKA_HEAP_OPTS   JVM heap flags (default -Xms256m -Xmx768m)
#   KAFKA_START_TIMEOUT  seconds to wait for the broker (default 90)
#   KAFKA_SASL_SSL    1 on first start: add a SASL_SSL listener (SCRAM-SHA-512, CA made here);
#                     address in <dir>/sasl_ssl_bootstrap, CA in <dir>/tls/ca.crt, user
#                     KAFKA_SASL_USER / KAFKA_SASL_PASSWORD (default rallypoint / rallypoint-secret)
#
# Diagnostics go to stderr only, so `addr=$(scripts/kafka-local.sh start | tail -n1)` works.
set -euo pipefail

readonly DEFAULT_KAFKA_VERSION=4.3.1
# Pinned so the download does not depend on whatever Maven picks as "latest".
readonly DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
# Written last into a complete jar folder; bump it when the folder's content changes.
readonly LIB_MARKER=.rallypoint-lib-v2

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work_dir="${KAFKA_LOCAL_DIR:-$repo_dir/.rallypoint/kafka}"
cache_root="${RALLYPOINT_CACHE:-$HOME/.cache/rallypoint}"
start_timeout="${KAFKA_START_TIMEOUT:-90}"

log() { printf 'kafka-local: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need() {
  local cmd=$1 hint=$2
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found; $hint"
}

# Version: an existing working folder keeps the version it was formatted with,
# because a different broker version may not read (or may upgrade) its metadata.
resolve_version() {
  local pinned=""
  [[ -f "$work_dir/kafka-version" ]] && pinned="$(<"$work_dir/kafka-version")"
  if [[ -n "$pinned" ]]; then
    if [[ -n "${KAFKA_VERSION:-}" && "$KAFKA_VERSION" != "$pinned" ]]; then
      die "$work_dir was formatted with Kafka $pinned, not $KAFKA_VERSION; run '$0 stop --clean' first"
    fi
    kafka_version="$pinned"
  else
    kafka_version="${KAFKA_VERSION:-$DEFAULT_KAFKA_VERSION}"
  fi
  lib_dir="$cache_root/kafka-$kafka_version/lib"
}

# Download kafka_2.13 + runtime closure once per version. Maven writes into a
# temporary folder that is renamed into place only when complete, so an
# interrupted download is never mistaken for a finished one. A lock serialises
# concurrent first starts (e.g. parallel test processes).
ensure_jars() {
  [[ -f "$lib_dir/$LIB_MARKER" ]] && return 0
  need mvn "install Maven (scripts/install-deps.sh does)"
  local vdir="$cache_root/kafka-$kafka_version"
  mkdir -p "$vdir"
  exec 8>"$vdir/.lock"
  flock -w 600 8 || die "timed out waiting for another download of Kafka $kafka_version"
  if [[ ! -f "$lib_dir/$LIB_MARKER" ]]; then
    rm -rf "$vdir"/.download.*   # left by an interrupted run; we hold the lock
    local tmp
    tmp="$(mktemp -d "$vdir/.download.XXXXXX")"
    # kafka-tools brings TopicCommand & co. for tests; the broker itself only needs kafka_2.13.
    cat >"$tmp/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rallypoint.local</groupId>
  <artifactId>kafka-local-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$kafka_version</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$kafka_version</version>
    </dependency>
  </dependencies>
</project>
EOF
    log "downloading Kafka $kafka_version and its runtime dependencies (once) ..."
    # mvn output goes to a log (stdout is reserved for the address); shown on failure.
    if ! mvn -B -f "$tmp/pom.xml" "$DEP_PLUGIN:copy-dependencies" \
      -DincludeScope=runtime -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1; then
      tail -n 30 "$tmp/mvn.log" >&2
      rm -rf "$tmp"
      die "Maven could not resolve org.apache.kafka:kafka_2.13:$kafka_version"
    fi
    [[ -f "$tmp/lib/kafka_2.13-$kafka_version.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13 jar missing after download"; }

    # The Maven closure has slf4j-api and log4j-core but no slf4j->log4j2 binding
    # (the release tarball adds it), so without one the broker logs nothing at all.
    # Add the binding that matches the log4j-core and slf4j-api versions found.
    local core binding="log4j-slf4j2-impl" f
    core=""
    for f in "$tmp"/lib/log4j-core-*.jar; do
      if [[ -e "$f" ]]; then core="${f##*/log4j-core-}"; core="${core%.jar}"; fi
    done
    [[ -n "$core" ]] || { rm -rf "$tmp"; die "no log4j-core in the Kafka $kafka_version closure"; }
    for f in "$tmp"/lib/slf4j-api-1.*.jar; do
      if [[ -e "$f" ]]; then binding="log4j-slf4j-impl"; fi
    done
    if ! mvn -B -f "$tmp/pom.xml" "$DEP_PLUGIN:copy" -Dartifact="org.apache.logging.log4j:$binding:$core" \
      -DoutputDirectory="$tmp/lib" >>"$tmp/mvn.log" 2>&1; then
      tail -n 30 "$tmp/mvn.log" >&2
      rm -rf "$tmp"
      die "Maven could not resolve org.apache.logging.log4j:$binding:$core"
    fi
    cp "$tmp/pom.xml" "$tmp/lib/.pom.xml"
    : >"$tmp/lib/$LIB_MARKER"
    rm -rf "$lib_dir"          # leftovers of a foreign/partial copy, if any
    mv "$tmp/lib" "$lib_dir"   # atomic rename on the same filesystem
    rm -rf "$tmp"
  fi
  flock -u 8
  exec 8>&-
}

kafka_java() {   # run a Kafka tool class with the cached jars
  java -Dlog4j2.configurationFile="$work_dir/tools-log4j2.properties" -cp "$lib_dir/*" "$@"
}

# Two distinct free loopback ports (sockets held open together so they differ).
free_ports() {
  need python3 "install python3 (scripts/install-deps.sh does)"
  python3 - <<'EOF'
import socket
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

port_free() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

# First start only: ports, config, logging config, storage format.
init_work_dir() {
  [[ -f "$work_dir/.formatted" ]] && return 0
  # A half-done earlier init (interrupted format) starts over from scratch.
  rm -rf "$work_dir/data"

  local port cport p
  read -r port cport < <(free_ports)
  port="${KAFKA_PORT:-$port}"
  cport="${KAFKA_CONTROLLER_PORT:-$cport}"
  [[ "$port" != "$cport" ]] || die "broker and controller ports must differ ($port)"
  for p in "$port" "$cport"; do
    port_free "$p" || die "port $p is in use by another process"
  done

  # Optional second listener: SASL_SSL with SCRAM-SHA-512 and a CA made here, for tests of
  # secure feeds. Its address goes to <dir>/sasl_ssl_bootstrap, the CA to <dir>/tls/ca.crt.
  local listeners="PLAINTEXT://127.0.0.1:$port" advertised="PLAINTEXT://127.0.0.1:$port" secure_props=""
  if [[ "${KAFKA_SASL_SSL:-}" == 1 ]]; then
    local sport
    sport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    make_tls "$work_dir/tls"
    listeners="$listeners,SASL_SSL://127.0.0.1:$sport"
    advertised="$advertised,SASL_SSL://127.0.0.1:$sport"
    secure_props="sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$work_dir/tls/broker.pem"
    printf '127.0.0.1:%s\n' "$sport" >"$work_dir/sasl_ssl_bootstrap"
  fi

  cat >"$work_dir/server.properties" <<EOF
# Generated by scripts/kafka-local.sh on first start; reused (with its ports) on later starts.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$advertised
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
$secure_props
controller.listener.names=CONTROLLER
log.dirs=$work_dir/data

# One node: every replication factor / min ISR must be 1, or init_transactions
# and consumer group joins hang waiting for replicas that never exist.
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Small internal topics and no rebalance delay make tests start fast.
num.partitions=1
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0

# Tests create their topics explicitly; typos must fail, not create topics.
auto.create.topics.enable=false

# Abort timed-out (e.g. crashed producer's) transactions promptly, and expire
# stale transactional ids sooner, so fencing/recovery tests do not wait long.
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
transaction.remove.expired.transaction.cleanup.interval.ms=60000

# Modest thread counts for a 2-core machine.
num.network.threads=2
num.io.threads=4
EOF

  # Command-line tools (StorageTool, TopicCommand) log WARN+ to stderr instead of
  # sharing the broker's log file.
  cat >"$work_dir/tools-log4j2.properties" <<'EOF'
status = warn
name = rallypoint-kafka-tools
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF

  cat >"$work_dir/log4j2.properties" <<EOF
# Broker logs to a file in the working folder; INFO for Kafka, WARN for chatty parts.
status = warn
name = rallypoint-kafka-local
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $work_dir/logs/server.log
appender.file.filePattern = $work_dir/logs/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
EOF

  local cluster_id
  cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid | tail -n1)"
  [[ -n "$cluster_id" ]] || die "StorageTool random-uuid gave no id"
  log "formatting storage (cluster id $cluster_id, broker port $port, controller port $cport)"
  mkdir -p "$work_dir/logs"
  local scram=()
  if [[ -f "$work_dir/sasl_ssl_bootstrap" ]]; then
    # SCRAM users of the secure listener (KRaft stores them in the metadata log at format).
    scram=(--add-scram "SCRAM-SHA-512=[name=${KAFKA_SASL_USER:-rallypoint},password=${KAFKA_SASL_PASSWORD:-rallypoint-secret}]")
  fi
  if ! kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$work_dir/server.properties" \
    "${scram[@]}" >"$work_dir/logs/format.log" 2>&1; then
    cat "$work_dir/logs/format.log" >&2
    die "storage format failed"
  fi
  printf '%s\n' "$cluster_id" >"$work_dir/cluster.id"
  printf '%s\n' "$kafka_version" >"$work_dir/kafka-version"
  printf '127.0.0.1:%s\n' "$port" >"$work_dir/bootstrap"
  : >"$work_dir/.formatted"   # written last: init is complete
}

# A throwaway CA and a broker certificate for 127.0.0.1, in PEM files under $1.
make_tls() {
  local dir=$1
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rallypoint-test-ca" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$dir/broker.key" -out "$dir/broker.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/san.ext"
  openssl x509 -req -in "$dir/broker.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/san.ext" -out "$dir/broker.crt" 2>/dev/null
  # Kafka's PEM keystore: the PKCS#8 key, then the certificate chain.
  cat "$dir/broker.key" "$dir/broker.crt" "$dir/ca.crt" >"$dir/broker.pem"
}

config_port() {   # $1 = listener name
  sed -n "s/^listeners=.*$1:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p" "$work_dir/server.properties"
}

# Running = pid file names a live JVM that runs kafka.Kafka on *this* folder's
# config (guards against a recycled pid after a crash or reboot).
running_pid() {
  local pid
  [[ -f "$work_dir/broker.pid" ]] || return 1
  pid="$(<"$work_dir/broker.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $work_dir/server.properties" || return 1
  echo "$pid"
}

# Alive and not a zombie: in containers whose PID 1 does not reap orphans, a
# dead broker stays a zombie and `kill -0` would report it alive forever.
pid_alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"          # drop "pid (comm) "; comm may contain spaces
  [[ -n "$stat" && "${stat:0:1}" != Z ]]
}

bootstrap_addr() {
  [[ -f "$work_dir/bootstrap" ]] || return 1
  cat "$work_dir/bootstrap"
}

log_tail() {
  log "---- last lines of $work_dir/logs/server.log ----"
  tail -n 40 "$work_dir/logs/server.log" >&2 2>/dev/null || true
  if [[ -s "$work_dir/logs/stdout.log" ]]; then
    log "---- $work_dir/logs/stdout.log ----"
    tail -n 20 "$work_dir/logs/stdout.log" >&2 || true
  fi
}

lock_work_dir() {
  # A folder this script creates (or finds empty) is marked as ours, so
  # `clean` may delete it; a foreign non-empty folder is never deleted.
  if [[ ! -d "$work_dir" ]] || [[ -z "$(ls -A "$work_dir")" ]]; then
    mkdir -p "$work_dir"
    : >"$work_dir/.kafka-local"
  fi
  exec 9>"$work_dir/.lock"
  flock -w 120 9 || die "another kafka-local.sh holds $work_dir/.lock"
}

cmd_start() {
  lock_work_dir
  if running_pid >/dev/null; then
    bootstrap_addr
    return 0
  fi
  need java "install Java 17+ (scripts/install-deps.sh does)"
  need kcat "install it with scripts/install-deps.sh (Debian package kcat)"
  resolve_version
  ensure_jars
  init_work_dir

  local addr port cport p
  addr="$(bootstrap_addr)"
  port="$(config_port PLAINTEXT)"
  cport="$(config_port CONTROLLER)"
  # Same ports as before are required (clients and tests keep the address).
  for p in "$port" "$cport"; do
    port_free "$p" || die "port $p (from $work_dir/server.properties) is in use by another process"
  done

  mkdir -p "$work_dir/logs"
  rm -f "$work_dir/broker.pid"   # stale after a crash; the new JVM writes its own
  local heap
  read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
  local started=$SECONDS
  log "starting Kafka $kafka_version on $addr (logs: $work_dir/logs/server.log)"
  # setsid: own session, so the broker survives the calling shell and its
  # terminal/hangups. The inner shell writes its own pid and then execs java,
  # so the pid file names the JVM itself. fd 9 (our lock) must not leak into it.
  # shellcheck disable=SC2016  # $$ and "$@" expand in the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$work_dir/broker.pid" \
    java "${heap[@]}" \
    -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$work_dir/log4j2.properties" \
    -cp "$lib_dir/*" kafka.Kafka "$work_dir/server.properties" \
    </dev/null >"$work_dir/logs/stdout.log" 2>&1 9>&- &

  local deadline=$((SECONDS + start_timeout)) pid=""
  while ((SECONDS < deadline)); do
    pid="$(running_pid || true)"
    if [[ -z "$pid" && -f "$work_dir/broker.pid" ]] && ! pid_alive "$(<"$work_dir/broker.pid")"; then
      log_tail
      die "broker exited during startup"
    fi
    if [[ -n "$pid" ]] && kcat -b "$addr" -L -m 2 >/dev/null 2>&1; then
      log "broker up (pid $pid) after $((SECONDS - started)) s"
      echo "$addr"
      return 0
    fi
    sleep 0.5
  done
  log_tail
  # The pid file was written by this run's JVM (removed before launch), so it is ours.
  if [[ -f "$work_dir/broker.pid" ]]; then kill -KILL "$(<"$work_dir/broker.pid")" 2>/dev/null || true; fi
  die "broker did not answer on $addr within $start_timeout s"
}

cmd_stop() {
  local clean=${1:-}
  [[ -d "$work_dir" ]] || return 0   # nothing was ever started here
  lock_work_dir
  local pid
  if pid="$(running_pid)"; then
    log "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if pid_alive "$pid"; then
      log "broker did not stop within 30 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      while pid_alive "$pid"; do sleep 0.1; done
    fi
  fi
  rm -f "$work_dir/broker.pid"
  if [[ "$clean" == --clean ]]; then
    # Only delete a folder this script created.
    if [[ -f "$work_dir/.kafka-local" ]]; then
      rm -rf "$work_dir"
      log "removed $work_dir"
    else
      die "$work_dir was not created by kafka-local.sh; not deleting it"
    fi
  fi
}

# SIGKILL, as a crash would: no clean shutdown, no flushed logs. Data and ports are kept.
cmd_kill() {
  [[ -d "$work_dir" ]] || return 0
  lock_work_dir
  local pid
  if pid="$(running_pid)"; then
    log "killing broker (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$work_dir/broker.pid"
}

cmd_status() {
  [[ -d "$work_dir" ]] || return 1
  running_pid >/dev/null || return 1
  bootstrap_addr
}

cmd_topics() {
  local addr
  addr="$(cmd_status)" || die "broker is not running"
  resolve_version
  kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$addr" "$@"
}

cmd_transactions() {   # Kafka's transactions tool: list, describe, find-hanging, abort
  local addr
  addr="$(cmd_status)" || die "broker is not running"
  resolve_version
  kafka_java org.apache.kafka.tools.TransactionsCommand --bootstrap-server "$addr" "$@"
}

case "${1:-}" in
  start) cmd_start ;;
  stop)
    [[ "${2:-}" == "" || "${2:-}" == --clean ]] || die "usage: $0 stop [--clean]"
    cmd_stop "${2:-}" ;;
  clean) cmd_stop --clean ;;
  kill) cmd_kill ;;
  status) cmd_status ;;
  bootstrap) bootstrap_addr || die "no broker configured in $work_dir yet (run '$0 start')" ;;
  topics) shift; cmd_topics "$@" ;;
  transactions) shift; cmd_transactions "$@" ;;
  *)
    echo "usage: $0 start | stop [--clean] | clean | kill | status | bootstrap | topics ARGS... | transactions ARGS..." >&2
    exit 2 ;;
esac
