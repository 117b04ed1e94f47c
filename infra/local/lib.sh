# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared code for infra/local/{up,down,status,kafka-cli,cqlsh}. Sourced, not executed.
#
# Local cluster = real Apache Kafka 4.x (KRaft, combined broker+controller) + real Apache
# Cassandra 5.0, run as plain JVMs from jars fetched from Maven Central (no Docker, no tarballs).
#
#   downloads (jars, cqlsh venv, maven repo)  ${CHAT_INFRA_CACHE:-$HOME/.cache/chat-infra}
#   runtime state (data, logs, pid files)     ${CHAT_INFRA_STATE:-/tmp/chat-infra}
#   secure mode (certificates, passwords,     ${CHAT_INFRA_STATE:-/tmp/chat-infra}/secure
#     client settings; `up --secure` only)
#   mode of the cluster in the state dir      $STATE/mode: "plain" or "secure"
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
SECURE_DIR="$STATE/secure"

# How the cluster in $STATE was started: "plain" (default) or "secure" (infra/local/up --secure).
# infra/local/up writes it; the other scripts follow it. infra/local/down deletes it.
state_mode() {
  local m=""
  [[ -f "$STATE/mode" ]] && m="$(<"$STATE/mode")"
  echo "${m:-plain}"
}
MODE="$(state_mode)"

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
  # secure mode: passwords inside, so create it mode 600 first ('>' keeps the mode)
  if [[ "$MODE" == secure ]]; then secure_write "$dir/server.properties" </dev/null; fi
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
    if [[ "$MODE" == secure ]]; then kafka_secure_config "$i" "$n"; fi
  } >"$dir/server.properties"
}

# kafka_secure_config I N : the lines that secure node I of N (they override the ones above).
#   CLIENT     client port,   SASL_SSL (SCRAM-SHA-512); also the inter-broker listener, as admin
#   FAULTS     client+20000,  SASL_SSL (SCRAM-SHA-512), advertised as client+21000 (Toxiproxy)
#   CONTROLLER controller,    SSL with required client certificates: only the nodes, which all
#              present the server certificate CN=chat-infra-node (KRaft controllers cannot use
#              SCRAM: the credentials live in the metadata log they serve)
kafka_secure_config() {
  local i="$1" n="$2" d="$SECURE_DIR" jaas
  jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$KAFKA_ADMIN_USER\" password=\"$(<"$d/kafka-admin.password")\";"
  echo
  echo "# ---- secure mode (infra/local/up --secure)"
  echo "listeners=CLIENT://$HOST:$(kafka_client_port "$i" "$n"),CONTROLLER://$HOST:$(kafka_ctrl_port "$i" "$n"),FAULTS://$HOST:$(kafka_faults_port "$i" "$n")"
  echo "advertised.listeners=CLIENT://$HOST:$(kafka_client_port "$i" "$n"),FAULTS://$HOST:$(kafka_proxied_port "$i" "$n")"
  echo "listener.security.protocol.map=CLIENT:SASL_SSL,FAULTS:SASL_SSL,CONTROLLER:SSL"
  echo "inter.broker.listener.name=CLIENT"
  echo "sasl.enabled.mechanisms=SCRAM-SHA-512"
  echo "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512"
  echo "listener.name.client.scram-sha-512.sasl.jaas.config=$jaas"
  echo "listener.name.faults.scram-sha-512.sasl.jaas.config=$jaas"
  echo "ssl.keystore.type=PKCS12"
  echo "ssl.keystore.location=$d/server.p12"
  echo "ssl.keystore.password=$(<"$d/keystore.password")"
  echo "ssl.key.password=$(<"$d/keystore.password")"
  echo "ssl.truststore.type=PEM"
  echo "ssl.truststore.location=$d/ca.pem"
  echo "ssl.client.auth=none"
  echo "listener.name.controller.ssl.client.auth=required"
  echo "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
  # admin: operators and the inter-broker connections; CN=...: the nodes on the mTLS
  # controller listener (raft, broker registration and heartbeats, forwarded requests)
  echo "super.users=User:$KAFKA_ADMIN_USER;User:CN=$SERVER_CN"
  echo "allow.everyone.if.no.acl.found=false"
}

# A Kafka-style random cluster id (16 random bytes, base64url, no padding, not starting with '-').
kafka_cluster_id() {
  local id
  while :; do
    id="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    [[ "$id" != -* ]] && { echo "$id"; return; }
  done
}

# Admin-client settings of the readiness probes: the short timeouts of probe.properties, plus
# SASL_SSL as admin in secure mode.
kafka_probe_config() {
  if [[ "$MODE" == secure ]]; then echo "$SECURE_DIR/kafka-probe.properties"
  else echo "$INFRA_DIR/kafka/probe.properties"; fi
}

# kafka_ready I N : one metadata request (TopicCommand --list) against broker I only.
kafka_ready() {
  local port; port="$(kafka_client_port "$1" "$2")"
  port_open "$port" || return 1
  kafka_tool_cmd
  timeout 20 "${KAFKA_TOOL[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$port" \
    --command-config "$(kafka_probe_config)" --list >/dev/null 2>&1
}

# Number of brokers in the cluster metadata, as seen through bootstrap $1.
kafka_broker_count() {
  kafka_tool_cmd
  timeout 20 "${KAFKA_TOOL[@]}" org.apache.kafka.tools.BrokerApiVersionsCommand \
    --bootstrap-server "$1" --command-config "$(kafka_probe_config)" 2>/dev/null \
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
    "-Dcassandra.config=file://$(cassandra_config)"
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

# The yaml the node runs with: the shared one, or in secure mode the copy made from it by
# cassandra_secure_yaml.
cassandra_config() {
  if [[ "$MODE" == secure ]]; then echo "$SECURE_DIR/cassandra.yaml"
  else echo "$INFRA_DIR/cassandra/cassandra.yaml"; fi
}

# cqlsh 6.2.2 with cassandra-driver 3.30.1 never checks the server's certificate: the driver
# builds its SSLContext with `options = cert_reqs` where `verify_mode = cert_reqs` was meant, and
# cqlsh asks for PROTOCOL_TLS, whose verify_mode defaults to CERT_NONE, so `[ssl] validate =
# true` has no effect. Secure mode runs cqlsh through this shim, which sets verify_mode as asked
# (the chain is then checked against the certfile; cqlsh never checks the host name).
CQLSH_TLS_SHIM='
import sys, warnings
warnings.filterwarnings("ignore", category=DeprecationWarning)   # hidden when cqlsh runs as a script
from cassandra import connection as _c
_build = _c.Connection._build_ssl_context_from_options
def _build_checked(self):
    reqs = (self.ssl_options or {}).get("cert_reqs")
    ctx = _build(self)
    if reqs is not None:
        ctx.verify_mode = reqs
    return ctx
_c.Connection._build_ssl_context_from_options = _build_checked
from cqlshlib.__main__ import main
sys.argv[0] = "cqlsh"
sys.exit(main())
'

# CQLSH_CMD: cqlsh as the mode wants it. Secure mode: TLS checked against ca.pem (through the
# shim above), as admin, from $SECURE_DIR/cqlshrc.
cqlsh_cmd() {
  CQLSH_CMD=("$CQLSH")
  if [[ "$MODE" == secure ]]; then
    CQLSH_CMD=("$(dirname "$CQLSH")/python3" -c "$CQLSH_TLS_SHIM" --cqlshrc "$SECURE_DIR/cqlshrc")
  fi
}

cassandra_ready() {
  port_open "$CASSANDRA_CQL_PORT" || return 1
  cqlsh_find_cached || return 1
  cqlsh_cmd
  timeout 20 "${CQLSH_CMD[@]}" "$HOST" "$CASSANDRA_CQL_PORT" --connect-timeout=5 \
    --request-timeout=10 -e "describe keyspaces" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------------
# secure mode (infra/local/up --secure)
#
# Made once per state dir by secure_init, under $SECURE_DIR (mode 700, files mode 600;
# infra/local/down deletes them with the rest of the state):
#   ca.pem, ca.key             the local CA that signs everything below
#   server.pem, server.key     CN=chat-infra-node, SAN IP:127.0.0.1,DNS:localhost, serverAuth +
#   server.p12                 clientAuth; the same PKCS12 keystore (with the chain) serves every
#                              broker and Cassandra
#   truststore.p12             ca.pem as a PKCS12 truststore (Cassandra, should client
#                              certificates ever be required)
#   client.pem, client.key     CN=chat, signed by the CA, clientAuth: for mutual-TLS tests
#   other-ca.pem, other-ca.key an unrelated CA, for tests that check an untrusted CA is refused
#   keystore.password          password of server.p12 and truststore.p12
#   kafka-admin.password, kafka-chat.password   SCRAM-SHA-512 users admin (super user), chat
#   cql-admin.password, cql-chat.password       Cassandra roles admin (superuser), chat
#                              (all random, written without a trailing newline)
# Rewritten by every `up --secure` (derived from the above):
#   kafka-admin.properties, kafka-chat.properties   Kafka client settings (SASL_SSL) per user
#   kafka-controller.properties                     SSL + node certificate, for --bootstrap-controller
#   kafka-probe.properties                          probe.properties + admin, for readiness probes
#   cqlshrc, cqlsh-admin.credentials, cqlsh-chat.credentials   cqlsh over TLS as admin / chat
#   cassandra.yaml                                  infra/cassandra/cassandra.yaml + auth + TLS

SERVER_CN=chat-infra-node     # subject of the nodes' certificate (Kafka principal User:CN=...)
KAFKA_ADMIN_USER="admin"
KAFKA_CHAT_USER="chat"
CQL_ADMIN_USER="admin"
CQL_CHAT_USER="chat"

rand_secret() { openssl rand -hex 24; }   # 192 bits; hex is safe in JAAS, CQL, yaml and shell

# secure_write FILE : stdin -> FILE, created mode 600
secure_write() { ( umask 077 && cat >"$1" ); }

# secure_init : certificates and passwords, once per state dir (atomic: made aside, then moved).
secure_init() {
  [[ -f "$SECURE_DIR/.complete" ]] && return 0
  need_cmd openssl "needed for the certificates of the secure mode"
  local keytool tmp="$SECURE_DIR.tmp.$$" log="$STATE/secure-init.log"
  keytool="$(dirname "$(readlink -f "$JAVA")")/keytool"
  [[ -x "$keytool" ]] || keytool="$(command -v keytool)" || die "keytool (JDK) not found"
  rm -rf "$tmp" "$SECURE_DIR"
  ( umask 077 && mkdir -p "$tmp" )
  (
    cd "$tmp" || exit 1
    umask 077
    for f in keystore kafka-admin kafka-chat cql-admin cql-chat; do
      printf '%s' "$(rand_secret)" >"$f.password"
    done
    # ca NAME CN
    ca() {
      openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout "$1.key" -out "$1.pem" \
        -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    }
    # leaf NAME CN EXTENDED_KEY_USAGE [EXTRA_EXTENSION_LINE]
    leaf() {
      openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" -subj "/CN=$2"
      printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s\n' \
        "$3" "${4:-}" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
        -sha256 -days 825 -extfile "$1.ext" -out "$1.pem"
      rm -f "$1.csr" "$1.ext"
    }
    ca ca chat-local-ca
    ca other-ca chat-local-other-ca
    leaf server "$SERVER_CN" serverAuth,clientAuth "subjectAltName=IP:127.0.0.1,DNS:localhost"
    leaf client "$KAFKA_CHAT_USER" clientAuth
    openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -name "$SERVER_CN" \
      -passout file:keystore.password -out server.p12
    "$keytool" -importcert -noprompt -alias chat-local-ca -file ca.pem -keystore truststore.p12 \
      -storetype PKCS12 -storepass:file keystore.password
    # (set -e does not reach in here) the proof that every step above worked:
    openssl verify -CAfile ca.pem server.pem client.pem \
      && openssl pkcs12 -in server.p12 -passin file:keystore.password -nokeys -noout \
      && "$keytool" -list -keystore truststore.p12 -storepass:file keystore.password >/dev/null \
      && touch .complete
  ) >"$log" 2>&1
  if [[ ! -f "$tmp/.complete" ]]; then
    rm -rf "$tmp"
    die_with_log "could not make the certificates of the secure mode" "$log"
  fi
  mv "$tmp" "$SECURE_DIR"
  rm -f "$log"
}

# secure_client_files : the client settings derived from the certificates and passwords.
secure_client_files() {
  local d="$SECURE_DIR" u
  for u in "$KAFKA_ADMIN_USER:kafka-admin" "$KAFKA_CHAT_USER:kafka-chat"; do
    {
      echo "# Kafka client settings for user ${u%%:*} of the local secure cluster (infra/local/up --secure)"
      echo "security.protocol=SASL_SSL"
      echo "sasl.mechanism=SCRAM-SHA-512"
      echo "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"${u%%:*}\" password=\"$(<"$d/${u#*:}.password")\";"
      echo "ssl.truststore.type=PEM"
      echo "ssl.truststore.location=$d/ca.pem"
    } | secure_write "$d/${u#*:}.properties"
  done
  { cat "$INFRA_DIR/kafka/probe.properties"; echo; cat "$d/kafka-admin.properties"; } \
    | secure_write "$d/kafka-probe.properties"
  {
    echo "# Kafka client settings for the CONTROLLER listener (--bootstrap-controller): mutual TLS"
    echo "# with the nodes' own certificate (a super user)"
    echo "security.protocol=SSL"
    echo "ssl.keystore.type=PKCS12"
    echo "ssl.keystore.location=$d/server.p12"
    echo "ssl.keystore.password=$(<"$d/keystore.password")"
    echo "ssl.truststore.type=PEM"
    echo "ssl.truststore.location=$d/ca.pem"
  } | secure_write "$d/kafka-controller.properties"
  for u in "$CQL_ADMIN_USER:cql-admin:cqlsh-admin" "$CQL_CHAT_USER:cql-chat:cqlsh-chat"; do
    local f="${u#*:}"
    printf '[plain_text_auth]\nusername = %s\npassword = %s\n' "${u%%:*}" "$(<"$d/${f%%:*}.password")" \
      | secure_write "$d/${u##*:}.credentials"
  done
  {
    echo "; cqlsh over TLS (certificate checked against ca.pem) as the Cassandra superuser admin."
    echo "; Another role: cqlsh --cqlshrc $d/cqlshrc --credentials $d/cqlsh-chat.credentials"
    echo "[connection]"
    echo "ssl = true"
    echo "[authentication]"
    echo "credentials = $d/cqlsh-admin.credentials"
    echo "[ssl]"
    echo "certfile = $d/ca.pem"
    echo "validate = true"
  } | secure_write "$d/cqlshrc"
}

# cassandra_secure_yaml : $SECURE_DIR/cassandra.yaml = infra/cassandra/cassandra.yaml without
# the keys below (and their indented values), then those keys set for auth + client TLS.
# (Cassandra's yaml loader rejects duplicate keys, so overriding needs a real copy.)
cassandra_secure_yaml() {
  local d="$SECURE_DIR" out="$SECURE_DIR/cassandra.yaml" dups
  {
    awk -v keys="authenticator authorizer role_manager client_encryption_options" '
      BEGIN { n = split(keys, a, " "); for (i = 1; i <= n; i++) skip[a[i]] = 1 }
      /^[^ \t]/ { k = $0; sub(/:.*/, "", k); dropping = (k in skip) }   # a top-level line
      !dropping { print }'  "$INFRA_DIR/cassandra/cassandra.yaml"
    echo
    echo "# ---- secure mode, generated by infra/local/up --secure from $INFRA_DIR/cassandra/cassandra.yaml"
    echo "authenticator: PasswordAuthenticator"
    echo "authorizer: CassandraAuthorizer"
    echo "role_manager: CassandraRoleManager"
    echo "client_encryption_options:"
    echo "  enabled: true"
    echo "  optional: false"
    echo "  keystore: $d/server.p12"
    echo "  keystore_password: $(<"$d/keystore.password")"
    echo "  store_type: PKCS12"
    echo "  require_client_auth: false"
    echo "  truststore: $d/truststore.p12"
    echo "  truststore_password: $(<"$d/keystore.password")"
  } | secure_write "$out"
  dups="$(grep -oE '^[A-Za-z_][A-Za-z0-9_]*:' "$out" | sort | uniq -d | tr '\n' ' ')"
  [[ -z "$dups" ]] || die "duplicate keys in $out: $dups"
}

# cql_as CREDENTIALS_FILE cqlsh-args... : cqlsh over TLS with the given credentials
cql_as() {
  local creds="$1"; shift
  cqlsh_cmd
  timeout 30 "${CQLSH_CMD[@]}" --credentials "$creds" "$HOST" "$CASSANDRA_CQL_PORT" \
    --connect-timeout=5 --request-timeout=10 "$@"
}

# cassandra_setup_roles : once per data dir, as soon as the node takes logins. Returns 1 while
# the default superuser cassandra/cassandra is not there yet (the caller retries).
#   admin  SUPERUSER, LOGIN, random password (created by cassandra/cassandra)
#   chat   LOGIN, NOT SUPERUSER, random password, GRANT CREATE ON ALL KEYSPACES only (Cassandra
#          gives the creator of a keyspace every permission on it and its tables)
#   cassandra  LOGIN = false afterwards
cassandra_setup_roles() {
  local d="$SECURE_DIR" log="$CASSANDRA_DIR/roles-setup.log" out
  [[ -f "$CASSANDRA_DIR/roles.done" ]] && return 0
  port_open "$CASSANDRA_CQL_PORT" || return 1
  if ! cql_as "$d/cqlsh-admin.credentials" -e "SELECT release_version FROM system.local" >>"$log" 2>&1; then
    printf '[plain_text_auth]\nusername = cassandra\npassword = cassandra\n' \
      | secure_write "$d/cqlsh-cassandra.credentials"
    printf "CREATE ROLE IF NOT EXISTS %s WITH PASSWORD = '%s' AND SUPERUSER = true AND LOGIN = true;\n" \
      "$CQL_ADMIN_USER" "$(<"$d/cql-admin.password")" | secure_write "$d/roles-admin.cql"
    cql_as "$d/cqlsh-cassandra.credentials" -f "$d/roles-admin.cql" >>"$log" 2>&1 || return 1
  fi
  {
    printf "CREATE ROLE IF NOT EXISTS %s WITH PASSWORD = '%s' AND LOGIN = true AND SUPERUSER = false;\n" \
      "$CQL_CHAT_USER" "$(<"$d/cql-chat.password")"
    echo "GRANT CREATE ON ALL KEYSPACES TO $CQL_CHAT_USER;"
    echo "ALTER ROLE cassandra WITH LOGIN = false;"
    echo "SELECT data_center FROM system.local;"   # for CHAT_CQL_LOCAL_DC (status --env)
  } | secure_write "$d/roles-chat.cql"
  out="$(cql_as "$d/cqlsh-admin.credentials" -f "$d/roles-chat.cql" 2>>"$log")" || return 1
  rm -f "$d/roles-admin.cql" "$d/roles-chat.cql" "$d/cqlsh-cassandra.credentials"
  touch "$CASSANDRA_DIR/roles.done"
  printf '%s\n' "$out" | cassandra_parse_dc >"$CASSANDRA_DIR/local_dc.tmp" || true
  [[ -s "$CASSANDRA_DIR/local_dc.tmp" ]] && mv "$CASSANDRA_DIR/local_dc.tmp" "$CASSANDRA_DIR/local_dc"
  rm -f "$CASSANDRA_DIR/local_dc.tmp"
}

# cqlsh's table output of "SELECT data_center ..." on stdin -> the value
cassandra_parse_dc() { awk '/^-+$/ { getline; gsub(/[ \t]/, ""); if ($0 != "") { print; found = 1 }; exit } END { exit !found }'; }

# cassandra_local_dc : the data center the node reports, saved in $CASSANDRA_DIR/local_dc.
cassandra_local_dc() {
  local dc
  cqlsh_cmd
  dc="$(timeout 30 "${CQLSH_CMD[@]}" "$HOST" "$CASSANDRA_CQL_PORT" --connect-timeout=5 \
    --request-timeout=10 -e "SELECT data_center FROM system.local" 2>/dev/null | cassandra_parse_dc)" \
    || return 1
  printf '%s\n' "$dc" >"$CASSANDRA_DIR/local_dc"
}

# kafka_setup_acls N : once per cluster. User chat may do anything on every topic and every
# group (literal wildcard '*'), nothing at cluster level (no Alter, no ACL changes): it creates
# and configures topics, produces idempotently (KIP-679: Write on the topic is enough),
# consumes, commits, lists offsets, reads metadata and topic configs.
kafka_setup_acls() {
  local n="$1" log="$STATE/kafka/acls.log" bootstrap
  [[ -f "$STATE/kafka/acls.done" ]] && return 0
  bootstrap="$(kafka_bootstrap "$n")"
  kafka_tool_cmd
  timeout 60 "${KAFKA_TOOL[@]}" org.apache.kafka.tools.AclCommand --bootstrap-server "$bootstrap" \
    --command-config "$SECURE_DIR/kafka-admin.properties" --add \
    --allow-principal "User:$KAFKA_CHAT_USER" --operation All --topic '*' --group '*' >"$log" 2>&1 \
    || die_with_log "could not create the ACLs of user $KAFKA_CHAT_USER" "$log"
  touch "$STATE/kafka/acls.done"
}

# env_line NAME VALUE : NAME=VALUE for sh/bash, single-quoted unless plainly safe
# `export NAME=value`, quoted when needed: `eval` of the lines is all a shell needs (and
# the roles started from it inherit them).
env_line() {
  if [[ "$2" =~ ^[A-Za-z0-9_./:,@%+=-]*$ ]]; then printf 'export %s=%s\n' "$1" "$2"
  else printf "export %s='%s'\n" "$1" "${2//\'/\'\\\'\'}"; fi
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
