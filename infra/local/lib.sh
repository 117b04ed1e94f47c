# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared code for infra/local/{up,down,status,kafka-cli,cqlsh}. Sourced, not executed.
#
# Local cluster = real Apache Kafka 4.x (KRaft, combined broker+controller) + real Apache
# Cassandra 5.0, run as plain JVMs from jars fetched from Maven Central (no Docker, no tarballs).
#
#   downloads (jars, cqlsh venv, maven repo)  ${CHAT_INFRA_CACHE:-$HOME/.cache/chat-infra}
#   runtime state (data, logs, pid files)     ${CHAT_INFRA_STATE:-/tmp/chat-infra}
#
# Ports (all bound to 127.0.0.1):
#   Kafka, 1 broker:   client 9092, controller 9093
#   Kafka, N brokers:  client 9092..9092+N-1, controller 19092..19092+N-1
#   Kafka, faults:     each broker also listens on its client port + 20000 and advertises
#                      client port + 21000 there, where a fault-injection proxy (Toxiproxy,
#                      started by the network-fault tests) forwards to it; a client that
#                      bootstraps through the proxy stays behind it. Unused otherwise.
#   Cassandra:         CQL 9042, storage 7000, JMX 7199 (local only)

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CHAT_INFRA_CACHE:-$HOME/.cache/chat-infra}"
STATE="${CHAT_INFRA_STATE:-/tmp/chat-infra}"
M2_REPO="${CHAT_INFRA_M2:-$CACHE/m2}"   # private maven repo, so one directory is the whole cache

# Versions, first one that resolves wins. Override with space-separated lists.
KAFKA_VERSIONS="${CHAT_KAFKA_VERSIONS:-4.4.0 4.3.1 4.1.1}"
CASSANDRA_VERSIONS="${CHAT_CASSANDRA_VERSIONS:-5.0.8 5.0.7 5.0.6}"
CQLSH_PIP="${CHAT_CQLSH_PIP:-cqlsh==6.2.2 cassandra-driver==3.30.1}"

KAFKA_WAIT_S="${CHAT_KAFKA_WAIT_S:-60}"
CASSANDRA_WAIT_S="${CHAT_CASSANDRA_WAIT_S:-180}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
MAX_HEAP_SIZE="${MAX_HEAP_SIZE:-1G}"   # Cassandra heap (-Xms = -Xmx); G1, so no -Xmn (as cassandra-env.sh)
# Extra JVM flags (space-separated): KAFKA_EXTRA_OPTS, CASSANDRA_EXTRA_OPTS

HOST=127.0.0.1
CASSANDRA_CQL_PORT=9042
CASSANDRA_STORAGE_PORT=7000
CASSANDRA_JMX_PORT=7199

PROG="${PROG:-$(basename "$0")}"

# ---------------------------------------------------------------------------------------------
# output / time helpers

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
now_ns() { date +%s%N; }
# secs_since START_NS -> "12.3s"
secs_since() {
  local ms=$(( ($(now_ns) - $1) / 1000000 ))
  printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
}
# die_with_log "message" LOGFILE
die_with_log() {
  {
    printf '%s: %s\n' "$PROG" "$1"
    if [[ -s "$2" ]]; then
      printf -- '--- last 20 lines of %s ---\n' "$2"
      tail -n 20 "$2"
    fi
  } >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# prerequisites

find_java() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    JAVA="$(command -v java)"
  else
    die "java not found (JDK 17+ required; set JAVA_HOME or put java on PATH)"
  fi
  local v
  v="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  [[ "$v" =~ ^[0-9]+$ ]] || die "cannot tell the version of $JAVA"
  (( v >= 17 )) || die "java $v found at $JAVA; Kafka 4 needs java 17+"
}

need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$1 not found ($2)"; }

# ---------------------------------------------------------------------------------------------
# processes and ports

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# "pid 123 (python3)" of whoever listens on TCP port $1, or "" if unknown.
port_owner() {
  command -v ss >/dev/null 2>&1 || return 0
  ss -ltnpH "( sport = :$1 )" 2>/dev/null \
    | sed -n 's/.*users:((\"\([^\"]*\)\",pid=\([0-9]*\).*/pid \2 (\1)/p' | head -n1
}

# die unless every port in "$@" is free
require_ports_free() {
  local p owner
  for p in "$@"; do
    if port_open "$p"; then
      owner="$(port_owner "$p")"
      die "port $p is taken by another process (not ours)${owner:+: $owner}"
    fi
  done
}

# live_pid PIDFILE MARKER -> prints pid if the process is alive and its command line contains
# MARKER (a path unique to this state dir), so a recycled pid is never mistaken for ours.
live_pid() {
  local pidfile="$1" marker="$2" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker" || return 1
  printf '%s\n' "$pid"
}

# launch PIDFILE LOGFILE CWD cmd... : start detached (own session, so the caller's process group
# or terminal going away does not kill it); the pid file holds the JVM's own pid.
launch() {
  local pidfile="$1" logfile="$2" cwd="$3"; shift 3
  rm -f "$pidfile"
  # shellcheck disable=SC2016  # $$ and $0 belong to the inner bash
  # 9>&-: do not leak the flock fd into the daemon (it would hold the lock forever)
  ( cd "$cwd" && exec setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" \
      >"$logfile" 2>&1 </dev/null 9>&- ) &
  local i
  for i in $(seq 1 50); do [[ -s "$pidfile" ]] && return 0; sleep 0.1; done
  die "could not start $*"
}

rss_mb() { awk '/^VmRSS:/ { printf "%d MiB", $2/1024 }' "/proc/$1/status" 2>/dev/null || true; }

state_init() {
  mkdir -p "$STATE" || die "cannot create state dir $STATE"
  touch "$STATE/.chat-infra-state"
}

# serialize up/down against each other
take_lock() {
  state_init
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$STATE/.lock"
    flock -w 600 9 || die "another infra/local command holds $STATE/.lock"
  fi
}

# ---------------------------------------------------------------------------------------------
# Kafka

kafka_client_port() { if (( $2 == 1 )); then echo 9092; else echo $((9092 + $1 - 1)); fi; }
kafka_ctrl_port()   { if (( $2 == 1 )); then echo 9093; else echo $((19092 + $1 - 1)); fi; }
kafka_faults_port() { echo $(( $(kafka_client_port "$1" "$2") + 20000 )); }
# Both below Linux's ephemeral range (32768-60999), where a client's own connection could
# already hold the port.
kafka_proxied_port() { echo $(( $(kafka_client_port "$1" "$2") + 21000 )); }
kafka_node_dir()    { echo "$STATE/kafka/n$1"; }
kafka_marker()      { echo "$(kafka_node_dir "$1")/server.properties"; }
kafka_pid()         { live_pid "$(kafka_node_dir "$1")/pid" "$(kafka_marker "$1")"; }
kafka_state_brokers() { [[ -f "$STATE/kafka/brokers" ]] && cat "$STATE/kafka/brokers" || echo 0; }
kafka_bootstrap() {
  local n="$1" i out=""
  for ((i = 1; i <= n; i++)); do out+="${out:+,}$HOST:$(kafka_client_port "$i" "$n")"; done
  echo "$out"
}

pom_hash() { sha256sum "$1" | cut -c1-8; }

# Sets KAFKA_VERSION, KAFKA_LIBS, KAFKA_STORAGE_TOOL from the cache (no download). Returns 1 if none.
kafka_find_cached() {
  local v d h
  h="$(pom_hash "$INFRA_DIR/kafka/pom.xml")"
  for v in $KAFKA_VERSIONS; do
    d="$CACHE/kafka-$v-$h"
    if [[ -f "$d/.complete" ]]; then
      KAFKA_VERSION="$v"; KAFKA_LIBS="$d/libs"; KAFKA_STORAGE_TOOL="$(<"$d/.storage-tool")"
      return 0
    fi
  done
  return 1
}

# Fetch Kafka jars with maven (first version in KAFKA_VERSIONS that resolves).
kafka_fetch() {
  kafka_find_cached && return 0
  need_cmd mvn "needed once to fetch the Kafka jars into $CACHE"
  local v d h tmp log="$CACHE/logs/mvn-kafka.log" c
  h="$(pom_hash "$INFRA_DIR/kafka/pom.xml")"
  mkdir -p "$CACHE/logs"; : >"$log"
  for v in $KAFKA_VERSIONS; do
    d="$CACHE/kafka-$v-$h"; tmp="$d.tmp.$$"
    rm -rf "$tmp"; mkdir -p "$tmp"
    echo "### kafka $v" >>"$log"
    if mvn -q -B -Dstyle.color=never -f "$INFRA_DIR/kafka/pom.xml" -Dmaven.repo.local="$M2_REPO" \
        -Dkafka.version="$v" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp/libs" >>"$log" 2>&1 \
       && [[ -f "$tmp/libs/kafka_2.13-$v.jar" ]]; then
      # The StorageTool class moved between 4.x releases: find the one that runs.
      for c in kafka.tools.StorageTool org.apache.kafka.tools.StorageTool; do
        if "$JAVA" -Dlog4j2.configurationFile="file:$INFRA_DIR/kafka/log4j2-tools.properties" \
            -cp "$tmp/libs/*" "$c" random-uuid >>"$log" 2>&1; then
          echo "$c" >"$tmp/.storage-tool"; break
        fi
      done
      if [[ -f "$tmp/.storage-tool" ]]; then
        touch "$tmp/.complete"; rm -rf "$d"; mv "$tmp" "$d"
        kafka_find_cached; return 0
      fi
      echo "no StorageTool class runs with kafka $v" >>"$log"
    fi
    rm -rf "$tmp"
  done
  die "could not fetch Kafka jars from Maven Central (tried $KAFKA_VERSIONS); see $log"
}

kafka_java_opts() {
  # shellcheck disable=SC2206
  KAFKA_JAVA=("$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
    -Dlog4j2.configurationFile="file:$INFRA_DIR/kafka/log4j2.properties" ${KAFKA_EXTRA_OPTS:-})
}

# Java command line for a short-lived Kafka CLI tool (C1 only: starts ~40% faster).
kafka_tool_cmd() {
  KAFKA_TOOL=("$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="file:$INFRA_DIR/kafka/log4j2-tools.properties" -cp "$KAFKA_LIBS/*")
}

# kafka_write_config I N CLUSTER_ID
kafka_write_config() {
  local i="$1" n="$2" dir rf isr voters="" j
  dir="$(kafka_node_dir "$i")"
  rf=$(( n < 3 ? n : 3 )); isr=$(( rf >= 3 ? 2 : 1 ))
  for ((j = 1; j <= n; j++)); do voters+="${voters:+,}$j@$HOST:$(kafka_ctrl_port "$j" "$n")"; done
  mkdir -p "$dir/data"
  {
    cat "$INFRA_DIR/kafka/server.properties"
    echo
    echo "# ---- generated by infra/local/up for node $i of $n"
    echo "node.id=$i"
    echo "controller.quorum.voters=$voters"
    echo "listeners=PLAINTEXT://$HOST:$(kafka_client_port "$i" "$n"),CONTROLLER://$HOST:$(kafka_ctrl_port "$i" "$n"),FAULTS://$HOST:$(kafka_faults_port "$i" "$n")"
    echo "advertised.listeners=PLAINTEXT://$HOST:$(kafka_client_port "$i" "$n"),FAULTS://$HOST:$(kafka_proxied_port "$i" "$n")"
    echo "log.dirs=$dir/data"
    echo "default.replication.factor=$rf"
    echo "min.insync.replicas=$isr"
    echo "offsets.topic.replication.factor=$rf"
    echo "transaction.state.log.replication.factor=$rf"
    echo "transaction.state.log.min.isr=$isr"
    echo "share.coordinator.state.topic.replication.factor=$rf"
    echo "share.coordinator.state.topic.min.isr=$isr"
  } >"$dir/server.properties"
}

# A Kafka-style random cluster id (16 random bytes, base64url, no padding, not starting with '-').
kafka_cluster_id() {
  local id
  while :; do
    id="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    [[ "$id" != -* ]] && { echo "$id"; return; }
  done
}

# kafka_ready I N : one metadata request (TopicCommand --list) against broker I only.
kafka_ready() {
  local port; port="$(kafka_client_port "$1" "$2")"
  port_open "$port" || return 1
  kafka_tool_cmd
  timeout 20 "${KAFKA_TOOL[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$port" \
    --command-config "$INFRA_DIR/kafka/probe.properties" --list >/dev/null 2>&1
}

# Number of brokers in the cluster metadata, as seen through bootstrap $1.
kafka_broker_count() {
  kafka_tool_cmd
  timeout 20 "${KAFKA_TOOL[@]}" org.apache.kafka.tools.BrokerApiVersionsCommand \
    --bootstrap-server "$1" --command-config "$INFRA_DIR/kafka/probe.properties" 2>/dev/null \
    | grep -cE '^[^ ]+:[0-9]+ \(id: [0-9]+'
}

# ---------------------------------------------------------------------------------------------
# Cassandra

CASSANDRA_DIR="$STATE/cassandra"
cassandra_marker() { echo "-Dcassandra.storagedir=$CASSANDRA_DIR/data"; }
cassandra_pid() { live_pid "$CASSANDRA_DIR/pid" "$(cassandra_marker)"; }

cassandra_find_cached() {
  local v d h
  h="$(pom_hash "$INFRA_DIR/cassandra/pom.xml")"
  for v in $CASSANDRA_VERSIONS; do
    d="$CACHE/cassandra-$v-$h"
    if [[ -f "$d/.complete" ]]; then CASSANDRA_VERSION="$v"; CASSANDRA_LIBS="$d/lib"; return 0; fi
  done
  return 1
}

# Fetch org.apache.cassandra:cassandra-all + dependencies. (The binary tarball
# apache-cassandra:<v>:tar.gz:bin is not on Maven Central for 4.x/5.x.)
cassandra_fetch() {
  cassandra_find_cached && return 0
  need_cmd mvn "needed once to fetch the Cassandra jars into $CACHE"
  local v d h tmp log="$CACHE/logs/mvn-cassandra.log"
  h="$(pom_hash "$INFRA_DIR/cassandra/pom.xml")"
  mkdir -p "$CACHE/logs"; : >"$log"
  for v in $CASSANDRA_VERSIONS; do
    d="$CACHE/cassandra-$v-$h"; tmp="$d.tmp.$$"
    rm -rf "$tmp"; mkdir -p "$tmp"
    echo "### cassandra $v" >>"$log"
    if mvn -q -B -Dstyle.color=never -f "$INFRA_DIR/cassandra/pom.xml" -Dmaven.repo.local="$M2_REPO" \
        -Dcassandra.version="$v" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp/lib" >>"$log" 2>&1 \
       && [[ -f "$tmp/lib/cassandra-all-$v.jar" ]]; then
      touch "$tmp/.complete"; rm -rf "$d"; mv "$tmp" "$d"
      cassandra_find_cached; return 0
    fi
    rm -rf "$tmp"
  done
  die "could not fetch Cassandra jars from Maven Central (tried $CASSANDRA_VERSIONS); see $log"
}

# cqlsh from PyPI in a venv inside the cache. Sets CQLSH.
cqlsh_find_cached() {
  local d="$CACHE/venv-cqlsh"
  if [[ -f "$d/.complete" && "$(<"$d/.complete")" == "$CQLSH_PIP" && -x "$d/bin/cqlsh" ]]; then
    CQLSH="$d/bin/cqlsh"; return 0
  fi
  return 1
}

cqlsh_fetch() {
  cqlsh_find_cached && return 0
  need_cmd python3 "needed for cqlsh"
  local d="$CACHE/venv-cqlsh" log="$CACHE/logs/pip-cqlsh.log"
  mkdir -p "$CACHE/logs"; rm -rf "$d"
  python3 -m venv "$d" >"$log" 2>&1 \
    || die "python3 -m venv failed (on Debian: apt-get install -y python3-venv); see $log"
  # shellcheck disable=SC2086
  "$d/bin/pip" install -q --disable-pip-version-check $CQLSH_PIP >>"$log" 2>&1 \
    || { rm -rf "$d"; die "pip install $CQLSH_PIP failed; see $log"; }
  echo "$CQLSH_PIP" >"$d/.complete"
  cqlsh_find_cached
}

# The module access Cassandra's classes need on Java 17 (conf/jvm17-server.options); the
# server and nodetool both run with it.
CASSANDRA_MODULE_OPTS=(
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
  --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
  --add-exports java.sql/java.sql=ALL-UNNAMED
  --add-exports java.base/java.lang.ref=ALL-UNNAMED
  --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
  --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
  --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
  --add-opens java.base/java.lang.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
  --add-opens java.base/jdk.internal.math=ALL-UNNAMED
  --add-opens java.base/jdk.internal.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
  --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
)

cassandra_java_cmd() {
  local agent=() j
  for j in "$CASSANDRA_LIBS"/jamm-*.jar; do [[ -f "$j" ]] && agent=("-javaagent:$j"); done
  # shellcheck disable=SC2206  # CASSANDRA_EXTRA_OPTS is split on purpose
  CASSANDRA_JAVA=("$JAVA" "-Xms$MAX_HEAP_SIZE" "-Xmx$MAX_HEAP_SIZE"
    # conf/jvm-server.options + conf/jvm17-server.options (Cassandra 5.0), minus AlwaysPreTouch
    -ea -da:net.openhft... -XX:+UseThreadPriorities -XX:+HeapDumpOnOutOfMemoryError
    -XX:+ExitOnOutOfMemoryError -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem
    -Djava.net.preferIPv4Stack=true
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m
    -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
    -Djdk.attach.allowAttachSelf=true
    "${CASSANDRA_MODULE_OPTS[@]}"
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11
    "${agent[@]}"
    # what cassandra-env.sh / bin/cassandra would set
    "-Dcassandra.config=file://$INFRA_DIR/cassandra/cassandra.yaml"
    "-Dlogback.configurationFile=file://$INFRA_DIR/cassandra/logback.xml"
    "$(cassandra_marker)"
    "-Dcassandra.logdir=$CASSANDRA_DIR"
    "-Dcassandra.triggers_dir=$CASSANDRA_DIR/triggers"
    -Dcassandra-foreground=yes
    "-Dcassandra.jmx.local.port=$CASSANDRA_JMX_PORT"
    "-Dcom.sun.management.jmxremote.rmi.port=$CASSANDRA_JMX_PORT"
    "-Djava.rmi.server.hostname=$HOST"
    # fast start for a lone test node
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=100
    -Dcassandra.superuser_setup_delay_ms=0
    # test-only switches (Cassandra's own test harness): no fsync, no forced flush of system
    # tables on schema changes. Data survives a clean stop, not a power cut. Fine for tests.
    -Dcassandra.skip_sync=true -Dcassandra.unsafesystem=true
    ${CASSANDRA_EXTRA_OPTS:-}
    -cp "$CASSANDRA_LIBS/*" org.apache.cassandra.service.CassandraDaemon)
}

cassandra_ready() {
  port_open "$CASSANDRA_CQL_PORT" || return 1
  cqlsh_find_cached || return 1
  timeout 20 "$CQLSH" "$HOST" "$CASSANDRA_CQL_PORT" --connect-timeout=5 --request-timeout=10 \
    -e "describe keyspaces" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------------
# stopping

# stop_pids GRACE_S "label pid" ... : TERM all, wait up to GRACE_S, then KILL the rest.
# Only ever called with pids that live_pid() vouched for.
stop_pids() {
  local grace="$1"; shift
  local entry pid label t0 left
  t0="$(now_ns)"
  for entry in "$@"; do kill -TERM "${entry##* }" 2>/dev/null || true; done
  while :; do
    left=()
    for entry in "$@"; do kill -0 "${entry##* }" 2>/dev/null && left+=("$entry"); done
    (( ${#left[@]} == 0 )) && break
    if (( ($(now_ns) - t0) / 1000000000 >= grace )); then
      for entry in "${left[@]}"; do
        label="${entry% *}"; pid="${entry##* }"
        say "$label (pid $pid) did not stop after ${grace}s: KILL"
        kill -KILL "$pid" 2>/dev/null || true
      done
      sleep 0.5
      break
    fi
    sleep 0.2
  done
}
