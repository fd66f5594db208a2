#!/usr/bin/env bash
# Real Kafka, HDFS, HBase (+ Thrift) and a Kubernetes API server (+ etcd) as local
# processes on 127.0.0.1, for the integration tests, benchmarks and developers.
#
#   scripts/services.sh up     [GROUP...]   resolve/build (cached), start, wait until each answers
#   scripts/services.sh prepare [GROUP...]  only resolve/build (downloads, Go builds, node images)
#   scripts/services.sh down   [GROUP...]   stop what this script started, wipe per-run data
#   scripts/services.sh status [GROUP...]   which processes run (exit 3 if any is down)
#   scripts/services.sh env                 print `export` lines for tests and tools
#   scripts/services.sh logs   [COMPONENT] [LINES]   last log lines (default: every component)
#   scripts/services.sh deps                Debian packages the Rust smoke tests need to build
#   scripts/services.sh pid    COMPONENT    the process id of a running component (exit 3 if down)
#
# GROUPs: kafka kafka-sasl hdfs hbase kube (default: these, or $ECOM_SERVICES), and node (a
# one-node cluster on kube's API server: scripts/services/node.sh; `up node` starts kube too,
# `down` without groups stops it first).
# COMPONENTs: kafka kafka-sasl namenode datanode hbase thrift thrift-framed etcd apiserver
#   containerd controller-manager scheduler kubelet kube-proxy.
# Versions: scripts/versions.env. Caches: $ECOM_CACHE (default ~/.cache/ecom-pipeline).
# State, data and logs: $ECOM_STATE (default ~/.cache/ecom-pipeline/state).
# See scripts/README-services.md for ports and the other knobs.
# shellcheck disable=SC2317 # the readiness probes are called indirectly, through wait_ready
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVICES_DIR="$SCRIPT_DIR/services"

# shellcheck source=versions.env disable=SC1091
source "$SCRIPT_DIR/versions.env"

ECOM_CACHE="${ECOM_CACHE:-$HOME/.cache/ecom-pipeline}"
ECOM_STATE="${ECOM_STATE:-$HOME/.cache/ecom-pipeline/state}"
# The node's address: a /32 on the loopback device (added by `up`, as root). Every server binds
# to and advertises ECOM_HOST, which as root defaults to this address so that pods on the node
# (group `node`) reach the same addresses as the host; without root it is 127.0.0.1.
ECOM_NODE_IP="${ECOM_NODE_IP:-10.250.0.1}"
if [[ -z ${ECOM_HOST:-} ]]; then
  if [[ $(id -u) -eq 0 ]]; then ECOM_HOST="$ECOM_NODE_IP"; else ECOM_HOST=127.0.0.1; fi
fi

ECOM_KAFKA_PORT="${ECOM_KAFKA_PORT:-9092}"
ECOM_KAFKA_CONTROLLER_PORT="${ECOM_KAFKA_CONTROLLER_PORT:-9093}"
# A second, separate broker for the secured-Kafka tests, with three client listeners:
# SASL_PLAINTEXT (mechanism PLAIN, also its inter-broker listener), SSL (TLS only) and
# SASL_SSL (mechanism SCRAM-SHA-512); TLS with a certificate of a test CA (KAFKA_PKI_DIR).
ECOM_KAFKA_SASL_PORT="${ECOM_KAFKA_SASL_PORT:-9094}"
ECOM_KAFKA_SASL_CONTROLLER_PORT="${ECOM_KAFKA_SASL_CONTROLLER_PORT:-9095}"
ECOM_KAFKA_SSL_PORT="${ECOM_KAFKA_SSL_PORT:-9096}"
ECOM_KAFKA_SASL_SSL_PORT="${ECOM_KAFKA_SASL_SSL_PORT:-9097}"
ECOM_KAFKA_SASL_USER="${ECOM_KAFKA_SASL_USER:-ecom}"
ECOM_KAFKA_SASL_PASSWORD="${ECOM_KAFKA_SASL_PASSWORD:-ecom-sasl-secret}"
# The SCRAM-SHA-512 user of the SASL_SSL listener (created when the storage is formatted).
ECOM_KAFKA_SCRAM_USER="${ECOM_KAFKA_SCRAM_USER:-ecom-scram}"
ECOM_KAFKA_SCRAM_PASSWORD="${ECOM_KAFKA_SCRAM_PASSWORD:-ecom-scram-secret}"
ECOM_HDFS_PORT="${ECOM_HDFS_PORT:-9000}"
ECOM_HDFS_HTTP_PORT="${ECOM_HDFS_HTTP_PORT:-9870}"
ECOM_HDFS_DATANODE_PORT="${ECOM_HDFS_DATANODE_PORT:-9866}"
ECOM_HDFS_DATANODE_HTTP_PORT="${ECOM_HDFS_DATANODE_HTTP_PORT:-9864}"
ECOM_HDFS_DATANODE_IPC_PORT="${ECOM_HDFS_DATANODE_IPC_PORT:-9867}"
ECOM_ZK_PORT="${ECOM_ZK_PORT:-2181}"
ECOM_HBASE_MASTER_PORT="${ECOM_HBASE_MASTER_PORT:-16000}"
ECOM_HBASE_REGIONSERVER_PORT="${ECOM_HBASE_REGIONSERVER_PORT:-16020}"
ECOM_HBASE_THRIFT_PORT="${ECOM_HBASE_THRIFT_PORT:-9090}"
# A second Thrift server on the same HBase, framed transport and compact protocol (-f -c).
ECOM_HBASE_THRIFT_FRAMED_PORT="${ECOM_HBASE_THRIFT_FRAMED_PORT:-9091}"
ECOM_ETCD_PORT="${ECOM_ETCD_PORT:-2379}"
ECOM_ETCD_PEER_PORT="${ECOM_ETCD_PEER_PORT:-2380}"
ECOM_APISERVER_PORT="${ECOM_APISERVER_PORT:-6443}"

# Explicit, small JVM heaps: the machine has 2 cores and a Rust build runs beside the services.
ECOM_KAFKA_HEAP="${ECOM_KAFKA_HEAP:-512m}"
ECOM_KAFKA_SASL_HEAP="${ECOM_KAFKA_SASL_HEAP:-256m}"
ECOM_NAMENODE_HEAP="${ECOM_NAMENODE_HEAP:-384m}"
ECOM_DATANODE_HEAP="${ECOM_DATANODE_HEAP:-256m}"
# HBase and its Thrift gateway get fixed heaps with a large young generation: sized for a
# 500,000-row load (scripts/README-services.md, "HBase settings").
ECOM_HBASE_HEAP="${ECOM_HBASE_HEAP:-1280m}"
ECOM_HBASE_YOUNG="${ECOM_HBASE_YOUNG:-320m}"
ECOM_THRIFT_HEAP="${ECOM_THRIFT_HEAP:-384m}"
ECOM_THRIFT_YOUNG="${ECOM_THRIFT_YOUNG:-256m}"
# Seconds each group may take to answer after it was started.
ECOM_UP_TIMEOUT="${ECOM_UP_TIMEOUT:-240}"

ALL_GROUPS=(kafka kafka-sasl hdfs hbase kube)
ALL_COMPONENTS=(kafka kafka-sasl namenode datanode hbase thrift thrift-framed etcd apiserver
  containerd controller-manager scheduler kubelet kube-proxy)

KAFKA_HOME="$ECOM_CACHE/kafka-$KAFKA_VERSION"
HADOOP_HOME_DIR="$ECOM_CACHE/hadoop-$HADOOP_VERSION"
HBASE_HOME_DIR="$ECOM_CACHE/hbase-$HBASE_VERSION"
K8S_HOME="$ECOM_CACHE/k8s-$KUBERNETES_VERSION"
ETCD_HOME="$ECOM_CACHE/etcd-$ETCD_VERSION"
HELM_HOME="$ECOM_CACHE/helm-$HELM_VERSION"

# Everything built from k8s.io/kubernetes, in one `go build` (one module graph, one cache).
K8S_BINARIES=(kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler kube-proxy)
KUBE_APISERVER_BIN="$K8S_HOME/bin/kube-apiserver"
KUBECTL_BIN="$K8S_HOME/bin/kubectl"
ETCD_BIN="$ETCD_HOME/bin/etcd"
HELM_BIN="$HELM_HOME/bin/helm"

RUN_DIR="$ECOM_STATE/run"
LOG_DIR="$ECOM_STATE/logs"
KUBE_DIR="$ECOM_STATE/kube"
PKI_DIR="$KUBE_DIR/pki"
# The test CA and the secured broker's certificate, kept across restarts (like PKI_DIR).
KAFKA_PKI_DIR="$ECOM_STATE/kafka-pki"
KUBECONFIG_FILE="$KUBE_DIR/kubeconfig"

JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
JAVAC="${JAVA_HOME:+$JAVA_HOME/bin/}javac"
# Flags every service JVM gets; the add-opens set is what HBase and Hadoop need on JDK 17.
JVM_COMMON=(-XX:+UseSerialGC -Xss512k -Djava.net.preferIPv4Stack=true -Djava.awt.headless=true)
JDK17_OPENS=(
  -Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true
  --add-modules jdk.unsupported
  --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens java.base/java.net=ALL-UNNAMED
  --add-opens java.base/java.nio=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
  --add-opens java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
  --add-exports java.base/sun.net.dns=ALL-UNNAMED
  --add-exports java.base/sun.net.util=ALL-UNNAMED
  --add-exports java.security.jgss/sun.security.krb5=ALL-UNNAMED
)
# Short-lived helper JVMs (formatters, probes): start fast, C1 only.
JVM_TOOL=(-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -Xmx256m -Djava.net.preferIPv4Stack=true)

APT_UPDATED=0

# shellcheck source=services/node.sh
source "$SERVICES_DIR/node.sh"

# ---------------------------------------------------------------------------------------------
# helpers

log() { printf '[services %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  printf '[services] ERROR: %s\n' "$*" >&2
  exit 1
}

need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed; $2"
}

# shellcheck source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

sha_of() { cat "$@" | sha256sum | cut -c1-16; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") >/dev/null 2>&1; }

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$LOG_DIR" "$1"; }

# Prints the pid of COMPONENT if the process recorded in its pid file is alive and is ours
# (its command line names our state dir); otherwise prints nothing and returns 1.
running_pid() {
  local pf pid
  pf="$(pid_file "$1")"
  [[ -f $pf ]] || return 1
  pid="$(<"$pf")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$ECOM_STATE" || return 1
  printf '%s\n' "$pid"
}

# start_component NAME WORKDIR CMD...: start detached in its own session, record its pid.
start_component() {
  local name="$1" workdir="$2"
  shift 2
  local log
  log="$(log_file "$name")"
  mkdir -p "$workdir" "$RUN_DIR" "$LOG_DIR"
  printf '\n===== %s: starting %s =====\n' "$(date -Is)" "$name" >>"$log"
  (cd "$workdir" && exec setsid "$@" >>"$log" 2>&1 </dev/null) &
  printf '%s\n' "$!" >"$(pid_file "$name")"
  log "started $name (pid $!), log: $log"
}

# stop_component NAME [GRACE-SECONDS]: SIGTERM, then SIGKILL after the grace period.
stop_component() {
  local name="$1" grace="${2:-20}" pid i
  if pid="$(running_pid "$name")"; then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 5; i++)); do
      [[ -d /proc/$pid ]] || break
      sleep 0.2
    done
    if [[ -d /proc/$pid ]]; then
      log "$name did not stop within ${grace}s; sending SIGKILL to pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  rm -f "$(pid_file "$name")"
}

show_log_tail() {
  local name="$1" n="${2:-30}" log
  log="$(log_file "$name")"
  if [[ -f $log ]]; then
    printf -- '----- last %s lines of %s -----\n' "$n" "$log" >&2
    tail -n "$n" "$log" >&2
  else
    printf -- '----- no log for %s (%s) -----\n' "$name" "$log" >&2
  fi
}

# fail_group GROUP MESSAGE: print the components' last log lines and exit.
fail_group() {
  local group="$1" c
  shift
  printf '[services] ERROR: %s\n' "$*" >&2
  for c in $(group_components "$group"); do show_log_tail "$c" 30; done
  exit 1
}

# wait_ready GROUP DESCRIPTION CHECK-FUNCTION [ARGS...]: poll the check until it passes, a
# component of the group dies, or ECOM_UP_TIMEOUT runs out.
wait_ready() {
  local group="$1" what="$2"
  shift 2
  local start=$SECONDS c
  while true; do
    if "$@" >>"$LOG_DIR/probe-$group.log" 2>&1; then
      log "$what answers ($((SECONDS - start))s)"
      return 0
    fi
    for c in $(group_components "$group"); do
      # Components not started yet have no pid file; a started one must still be alive.
      [[ ! -f "$(pid_file "$c")" ]] || running_pid "$c" >/dev/null ||
        fail_group "$group" "$c exited while waiting for: $what (probe log: $LOG_DIR/probe-$group.log)"
    done
    if ((SECONDS - start >= ECOM_UP_TIMEOUT)); then
      tail -n 10 "$LOG_DIR/probe-$group.log" >&2 || true
      fail_group "$group" "timed out after ${ECOM_UP_TIMEOUT}s waiting for: $what"
    fi
    sleep 1
  done
}

group_components() {
  case "$1" in
    kafka) echo kafka ;;
    kafka-sasl) echo kafka-sasl ;;
    hdfs) echo namenode datanode ;;
    hbase) echo hbase thrift thrift-framed ;;
    kube) echo etcd apiserver ;;
    node) echo containerd controller-manager scheduler kubelet kube-proxy ;;
    *) die "unknown service group '$1' (expected one of: ${ALL_GROUPS[*]})" ;;
  esac
}

group_ports() {
  case "$1" in
    kafka) echo "$ECOM_KAFKA_PORT $ECOM_KAFKA_CONTROLLER_PORT" ;;
    kafka-sasl) echo "$ECOM_KAFKA_SASL_PORT $ECOM_KAFKA_SASL_CONTROLLER_PORT $ECOM_KAFKA_SSL_PORT $ECOM_KAFKA_SASL_SSL_PORT" ;;
    hdfs) echo "$ECOM_HDFS_PORT $ECOM_HDFS_HTTP_PORT $ECOM_HDFS_DATANODE_PORT $ECOM_HDFS_DATANODE_HTTP_PORT $ECOM_HDFS_DATANODE_IPC_PORT" ;;
    hbase) echo "$ECOM_ZK_PORT $ECOM_HBASE_MASTER_PORT $ECOM_HBASE_REGIONSERVER_PORT $ECOM_HBASE_THRIFT_PORT $ECOM_HBASE_THRIFT_FRAMED_PORT" ;;
    kube) echo "$ECOM_ETCD_PORT $ECOM_ETCD_PEER_PORT $ECOM_APISERVER_PORT" ;;
    node) echo 10250 ;;
  esac
}

# Wait for the group's ports to be released (a previous run may still be closing them), and
# refuse to start if something that is not ours holds them.
check_ports_free() {
  local group="$1" p i
  for p in $(group_ports "$group"); do
    for ((i = 0; i < 30; i++)); do
      port_open "$ECOM_HOST" "$p" || continue 2
      sleep 1
    done
    die "port $ECOM_HOST:$p (needed by $group) is in use by a process this script did not start; stop it or set the ECOM_*_PORT variables (see scripts/README-services.md)"
  done
}

xml_props() {
  # xml_props NAME VALUE [NAME VALUE...] -> Hadoop-style configuration XML on stdout
  printf '<?xml version="1.0"?>\n<!-- generated by scripts/services.sh -->\n<configuration>\n'
  while (($# >= 2)); do
    printf '  <property><name>%s</name><value>%s</value></property>\n' "$1" "$2"
    shift 2
  done
  printf '</configuration>\n'
}

# ---------------------------------------------------------------------------------------------
# resolve and build (cached, keyed by version)

need_java() {
  need_cmd "$JAVA" "install a JDK 17 (Debian: openjdk-17-jdk-headless)"
  local v
  v="$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [[ ${v%%.*} =~ ^[0-9]+$ && ${v%%.*} -ge 17 ]] || die "Java 17 or newer is needed, found '$v' ($JAVA)"
}

# maven_resolve HOME POM PROPERTY=VALUE...: copy the runtime dependencies of POM into HOME/lib
# unless a previous run already did it for the same pom and properties.
maven_resolve() {
  local home="$1" pom="$2"
  shift 2
  local key props=() kv
  key="$(printf '%s\n' "$@" | cat - "$pom" | sha256sum | cut -c1-16)"
  if [[ -f $home/.resolved && "$(<"$home/.resolved")" == "$key" && -d $home/lib ]]; then
    return 0
  fi
  ensure_cmd mvn maven
  for kv in "$@"; do props+=("-D$kv"); done
  log "resolving $(basename "$(dirname "$pom")") ($*) with Maven into $home/lib"
  rm -rf "${home:?}/lib" "${home:?}/.resolved"
  mkdir -p "$home"
  if ! mvn -B -q -f "$pom" "${props[@]}" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$home/lib" >"$home/mvn.log" 2>&1; then
    tail -n 30 "$home/mvn.log" >&2
    die "Maven could not resolve $pom with $* (full log: $home/mvn.log)"
  fi
  printf '%s\n' "$key" >"$home/.resolved"
}

# compile_probe HOME SOURCE CLASSPATH: javac a readiness probe into HOME/probes (cached).
compile_probe() {
  local home="$1" src="$2" cp="$3" key out
  key="$(sha_of "$src")"
  out="$home/probes"
  if [[ -f $out/.key-$(basename "$src") && "$(<"$out/.key-$(basename "$src")")" == "$key" ]]; then
    return 0
  fi
  mkdir -p "$out"
  need_cmd "$JAVAC" "install a JDK 17 (Debian: openjdk-17-jdk-headless)"
  "$JAVAC" -nowarn -d "$out" -cp "$cp" "$src" || die "could not compile probe $src"
  printf '%s\n' "$key" >"$out/.key-$(basename "$src")"
}

resolve_kafka() {
  maven_resolve "$KAFKA_HOME" "$SERVICES_DIR/kafka/pom.xml" \
    "kafka.version=$KAFKA_VERSION" "log4j2.version=$KAFKA_LOG4J2_VERSION"
  compile_probe "$KAFKA_HOME" "$SERVICES_DIR/probes/KafkaProbe.java" "$KAFKA_HOME/lib/*"
}

resolve_hdfs() {
  maven_resolve "$HADOOP_HOME_DIR" "$SERVICES_DIR/hdfs/pom.xml" "hadoop.version=$HADOOP_VERSION"
  compile_probe "$HADOOP_HOME_DIR" "$SERVICES_DIR/probes/HdfsProbe.java" "$HADOOP_HOME_DIR/lib/*"
}

resolve_hbase() {
  maven_resolve "$HBASE_HOME_DIR" "$SERVICES_DIR/hbase/pom.xml" "hbase.version=$HBASE_VERSION"
  compile_probe "$HBASE_HOME_DIR" "$SERVICES_DIR/probes/HbaseThriftProbe.java" "$HBASE_HOME_DIR/lib/*"
}

go_env() {
  need_cmd go "install Go 1.24 or newer"
  # Builds must not inherit a workspace or vendor mode from the caller.
  export GOWORK=off CGO_ENABLED=0
}

# kube-apiserver, kubectl and the node's components (kubelet, kube-controller-manager,
# kube-scheduler, kube-proxy) from k8s.io/kubernetes. Its go.mod points every k8s.io staging
# module at ./staging/..., which only works inside its own repository, so build through a
# generated wrapper module that requires k8s.io/kubernetes and replaces each staging module
# with its published v0.<minor>.<patch> release.
build_kubernetes() {
  local bin missing=0
  for bin in "${K8S_BINARIES[@]}"; do [[ -x $K8S_HOME/bin/$bin ]] || missing=1; done
  if ((missing == 0)) && [[ -f $K8S_HOME/.built ]]; then
    return 0
  fi
  go_env
  local src="$K8S_HOME/src" staging_version="v0.${KUBERNETES_VERSION#v1.}" modfile minor
  minor="${KUBERNETES_VERSION#v1.}"
  minor="${minor%%.*}"
  log "building ${K8S_BINARIES[*]} $KUBERNETES_VERSION (staging modules at $staging_version); a cold build takes about 15-25 minutes on 2 cores"
  mkdir -p "$src" "$K8S_HOME/bin"
  modfile="$(cd "$K8S_HOME" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')" ||
    die "could not download Go module k8s.io/kubernetes@$KUBERNETES_VERSION"
  [[ -f $modfile ]] || die "no go.mod found for k8s.io/kubernetes@$KUBERNETES_VERSION"
  {
    printf 'module ecom-pipeline/services/kubernetes\n\ngo 1.24.0\n\n'
    printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$KUBERNETES_VERSION"
    sed -n 's#^[[:space:]]*\(k8s.io/[A-Za-z0-9./-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging_version"'#p' "$modfile"
    printf ')\n\ntool (\n'
    printf '\tk8s.io/kubernetes/cmd/%s\n' "${K8S_BINARIES[@]}"
    printf ')\n'
  } >"$src/go.mod"
  rm -f "$src/go.sum"
  (cd "$src" && go mod tidy) >"$K8S_HOME/build.log" 2>&1 || {
    tail -n 30 "$K8S_HOME/build.log" >&2
    die "go mod tidy failed for the kubernetes wrapper module (log: $K8S_HOME/build.log)"
  }
  local ldflags="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  (cd "$src" && go build -mod=mod -trimpath -ldflags "$ldflags" -o "$K8S_HOME/bin/" \
    "${K8S_BINARIES[@]/#/k8s.io/kubernetes/cmd/}") >>"$K8S_HOME/build.log" 2>&1 || {
    tail -n 30 "$K8S_HOME/build.log" >&2
    die "building ${K8S_BINARIES[*]} $KUBERNETES_VERSION failed (log: $K8S_HOME/build.log)"
  }
  date -Is >"$K8S_HOME/.built"
}

# etcd: the server module's etcdmain package is the real etcd main; a one-line wrapper calls it.
build_etcd() {
  if [[ -x $ETCD_BIN && -f $ETCD_HOME/.built ]]; then
    return 0
  fi
  go_env
  local src="$ETCD_HOME/src"
  log "building etcd $ETCD_VERSION from go.etcd.io/etcd/server/v3"
  mkdir -p "$src" "$ETCD_HOME/bin"
  cp "$SERVICES_DIR/etcd/main.go" "$src/main.go"
  printf 'module ecom-pipeline/services/etcd\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$src/go.mod"
  rm -f "$src/go.sum"
  (cd "$src" && go mod tidy && go build -mod=mod -trimpath -ldflags "-s -w" -o "$ETCD_BIN" .) \
    >"$ETCD_HOME/build.log" 2>&1 || {
    tail -n 30 "$ETCD_HOME/build.log" >&2
    die "building etcd $ETCD_VERSION (go.etcd.io/etcd/server/v3) failed (log: $ETCD_HOME/build.log)"
  }
  date -Is >"$ETCD_HOME/.built"
}

build_helm() {
  if [[ -x $HELM_BIN && -f $HELM_HOME/.built ]]; then
    return 0
  fi
  go_env
  log "installing helm $HELM_VERSION from helm.sh/helm/v3/cmd/helm"
  mkdir -p "$HELM_HOME/bin"
  GOBIN="$HELM_HOME/bin" GOFLAGS="" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$HELM_HOME/build.log" 2>&1 || {
    tail -n 30 "$HELM_HOME/build.log" >&2
    die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed (log: $HELM_HOME/build.log)"
  }
  date -Is >"$HELM_HOME/.built"
}

resolve_group() {
  case "$1" in
    kafka | kafka-sasl) need_java && resolve_kafka ;;
    hdfs) need_java && resolve_hdfs ;;
    hbase) need_java && resolve_hbase ;;
    kube)
      need_cmd openssl "install Debian package openssl"
      need_cmd curl "install Debian package curl"
      build_etcd
      build_kubernetes
      build_helm
      ;;
    node) resolve_node ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Kafka (KRaft, one node acting as broker and controller)

log4j2_config() {
  # A log4j2 properties config writing INFO to stdout (the component's log file).
  cat <<'EOF'
# generated by scripts/services.sh
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = %d{ISO8601} %-5p [%t] %c{1}: %m%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.kafka.name = org.apache.kafka
logger.kafka.level = info
logger.zk.name = org.apache.zookeeper
logger.zk.level = warn
EOF
}

log4j1_config() {
  cat <<'EOF'
# generated by scripts/services.sh
log4j.rootLogger=INFO, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
log4j.logger.org.apache.zookeeper=WARN
log4j.logger.org.apache.hadoop.hbase.zookeeper=WARN
log4j.logger.org.apache.hadoop.metrics2=WARN
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
EOF
}

# start_kafka_broker NAME LISTENERS CONTROLLER-PORT MIN-HEAP MAX-HEAP [FORMAT-ARG...]
#   < EXTRA-PROPERTIES:
# one single-node KRaft broker (broker and controller) as component NAME, its state in
# $ECOM_STATE/NAME (wiped first). LISTENERS is `PROTOCOL:PORT[ PROTOCOL:PORT...]`, one client
# listener per security protocol (named after it); the first is also the inter-broker one.
# The server.properties lines it reads on standard input are appended to the common ones;
# the FORMAT-ARGs go to `StorageTool format` (e.g. `--add-scram`). The config directory is
# private: a SASL broker's config holds the password.
start_kafka_broker() {
  local name="$1" listeners="$2" controller_port="$3" xms="$4" xmx="$5"
  shift 5
  local dir="$ECOM_STATE/$name" cluster_id l protocol="" bind="" advertised="" map=""
  for l in $listeners; do
    [[ -n $protocol ]] || protocol="${l%%:*}"
    bind+="${l%%:*}://$ECOM_HOST:${l#*:},"
    map+="${l%%:*}:${l%%:*},"
  done
  advertised="${bind%,}"
  rm -rf "$dir"
  mkdir -p "$dir/data" "$dir/conf"
  chmod 700 "$dir/conf"
  log4j2_config >"$dir/conf/log4j2.properties"
  {
    cat <<EOF
# generated by scripts/services.sh
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$ECOM_HOST:$controller_port
listeners=${bind}CONTROLLER://$ECOM_HOST:$controller_port
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=$protocol
listener.security.protocol.map=${map}CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
log.retention.hours=24
log.segment.bytes=67108864
EOF
    cat
  } >"$dir/conf/server.properties"
  chmod 600 "$dir/conf/server.properties"
  # A random KRaft cluster id: 16 random bytes, URL-safe base64 without padding. One that
  # starts with '-' would be read by kafka-storage as an option (1 start in 64): draw again.
  cluster_id="-"
  while [[ "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  done
  log "formatting the KRaft storage of $name (cluster id $cluster_id)"
  "$JAVA" "${JVM_TOOL[@]}" -Dlog4j2.configurationFile="$dir/conf/log4j2.properties" \
    -cp "$KAFKA_HOME/lib/*" kafka.tools.StorageTool format \
    -t "$cluster_id" -c "$dir/conf/server.properties" "$@" >>"$(log_file "$name")" 2>&1 ||
    fail_group "$name" "kafka.tools.StorageTool format failed ($name)"
  start_component "$name" "$dir" "$JAVA" "${JVM_COMMON[@]}" -Xms"$xms" -Xmx"$xmx" \
    -Dlog4j2.configurationFile="$dir/conf/log4j2.properties" -Dkafka.logs.dir="$dir" \
    -cp "$KAFKA_HOME/lib/*" kafka.Kafka "$dir/conf/server.properties"
}

start_kafka() {
  start_kafka_broker kafka "PLAINTEXT:$ECOM_KAFKA_PORT" "$ECOM_KAFKA_CONTROLLER_PORT" \
    128m "$ECOM_KAFKA_HEAP" <<EOF
offsets.topic.num.partitions=4
num.network.threads=2
num.io.threads=4
background.threads=2
EOF
}

# Produce a message and read it back: with kcat when available, else with Kafka's console tools.
kafka_roundtrip() {
  local bootstrap="$ECOM_HOST:$ECOM_KAFKA_PORT" topic="ecom-ready" msg
  port_open "$ECOM_HOST" "$ECOM_KAFKA_PORT" || return 1
  msg="ready-$(date +%s%N)"
  if command -v kcat >/dev/null 2>&1; then
    printf '%s\n' "$msg" | timeout 30 kcat -b "$bootstrap" -t "$topic" -P -X message.timeout.ms=10000 || return 1
    timeout 30 kcat -b "$bootstrap" -t "$topic" -C -o beginning -e -q | grep -qxF "$msg"
  else
    printf '%s\n' "$msg" | timeout 60 "$JAVA" "${JVM_TOOL[@]}" -cp "$KAFKA_HOME/lib/*" \
      org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$bootstrap" --topic "$topic" || return 1
    timeout 60 "$JAVA" "${JVM_TOOL[@]}" -cp "$KAFKA_HOME/lib/*" org.apache.kafka.tools.consumer.ConsoleConsumer \
      --bootstrap-server "$bootstrap" --topic "$topic" --from-beginning --timeout-ms 10000 | grep -qxF "$msg"
  fi
}

ready_kafka() {
  command -v kcat >/dev/null 2>&1 || apt_install kcat ||
    log "kcat not available; checking Kafka with its own console tools"
  wait_ready kafka "Kafka at $ECOM_HOST:$ECOM_KAFKA_PORT (produce + consume)" kafka_roundtrip
}

# ---------------------------------------------------------------------------------------------
# Secured Kafka: a second KRaft node (own ports and data dir, same distribution) for the
# secured-Kafka tests, with three client listeners, each named after its protocol:
#   SASL_PLAINTEXT, mechanism PLAIN (the user is in its JAAS line), also inter-broker;
#   SSL, TLS only;
#   SASL_SSL, mechanism SCRAM-SHA-512 (the user is created in the cluster metadata when the
#   storage is formatted: `StorageTool format --add-scram`, no client call after start).
# TLS serves a certificate of a test CA ($KAFKA_PKI_DIR/ca.crt, which clients trust) from PEM
# files (ssl.keystore.type=PEM: no keytool, no key store password).

# The secured broker's listeners, for start_kafka_broker.
kafka_sasl_listeners() {
  printf 'SASL_PLAINTEXT:%s SSL:%s SASL_SSL:%s' \
    "$ECOM_KAFKA_SASL_PORT" "$ECOM_KAFKA_SSL_PORT" "$ECOM_KAFKA_SASL_SSL_PORT"
}

# A test CA and the secured broker's certificate, for the names clients dial: localhost,
# 127.0.0.1, ECOM_HOST and the node address (where the node's pods reach host services). Made
# once and kept across restarts, so that a CA file a test or a Secret holds stays valid; made
# again when ECOM_HOST changed. Delete $KAFKA_PKI_DIR to renew it.
ensure_kafka_pki() {
  local dir="$KAFKA_PKI_DIR" sans="DNS:localhost,IP:127.0.0.1,IP:$ECOM_HOST"
  [[ $ECOM_NODE_IP == "$ECOM_HOST" ]] || sans+=",IP:$ECOM_NODE_IP"
  if [[ -f $dir/.complete ]] &&
    openssl x509 -noout -ext subjectAltName -in "$dir/broker.crt" 2>/dev/null | grep -q "IP Address:$ECOM_HOST\(,\|$\)"; then
    return 0
  fi
  need_cmd openssl "install Debian package openssl"
  log "generating the Kafka test CA and the secured broker's certificate in $dir"
  rm -rf "$dir"
  mkdir -p "$dir" "$LOG_DIR"
  (
    cd "$dir"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.crt \
      -subj "/CN=ecom-pipeline-kafka-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout broker.key -out broker.csr -subj "/CN=kafka-sasl"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=$sans" >broker.ext
    openssl x509 -req -sha256 -days 3650 -in broker.csr -CA ca.crt -CAkey ca.key \
      -set_serial "0x$(openssl rand -hex 16)" -extfile broker.ext -out broker.crt
    # The broker's PEM key store: its unencrypted PKCS#8 key, then its certificate chain.
    cat broker.key broker.crt ca.crt >broker.pem
    rm -f broker.csr broker.ext
    chmod 644 ca.crt
  ) >"$LOG_DIR/kafka-pki.log" 2>&1 || {
    tail -n 30 "$LOG_DIR/kafka-pki.log" >&2
    die "openssl failed while generating the Kafka test CA (log: $LOG_DIR/kafka-pki.log)"
  }
  touch "$dir/.complete"
}

# The JAAS line of the PLAIN login module: the broker's own identity and the accepted user.
kafka_sasl_jaas() {
  printf 'org.apache.kafka.common.security.plain.PlainLoginModule required username="%s" password="%s" user_%s="%s";' \
    "$ECOM_KAFKA_SASL_USER" "$ECOM_KAFKA_SASL_PASSWORD" "$ECOM_KAFKA_SASL_USER" "$ECOM_KAFKA_SASL_PASSWORD"
}

start_kafka_sasl() {
  # StorageTool reads `[name=...,password=...]` without quoting.
  [[ $ECOM_KAFKA_SCRAM_USER =~ ^[A-Za-z0-9._-]+$ && $ECOM_KAFKA_SCRAM_PASSWORD =~ ^[A-Za-z0-9._-]+$ ]] ||
    die "ECOM_KAFKA_SCRAM_USER and ECOM_KAFKA_SCRAM_PASSWORD may hold only letters, digits, '.', '_' and '-'"
  ensure_kafka_pki
  start_kafka_broker kafka-sasl "$(kafka_sasl_listeners)" "$ECOM_KAFKA_SASL_CONTROLLER_PORT" \
    64m "$ECOM_KAFKA_SASL_HEAP" \
    --add-scram "SCRAM-SHA-512=[name=$ECOM_KAFKA_SCRAM_USER,password=$ECOM_KAFKA_SCRAM_PASSWORD]" <<EOF
sasl.enabled.mechanisms=PLAIN
sasl.mechanism.inter.broker.protocol=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=$(kafka_sasl_jaas)
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_PKI_DIR/broker.pem
ssl.client.auth=none
offsets.topic.num.partitions=2
num.network.threads=1
num.io.threads=2
background.threads=1
EOF
}

# Whether the running secured broker was started with other listeners or an older
# certificate than this script now makes (an older services.sh, a renewed CA): `up` restarts it.
kafka_sasl_outdated() {
  local conf="$ECOM_STATE/kafka-sasl/conf/server.properties" want="" l
  for l in $(kafka_sasl_listeners); do want+="${l%%:*}://$ECOM_HOST:${l#*:},"; done
  want="listeners=${want}CONTROLLER://$ECOM_HOST:$ECOM_KAFKA_SASL_CONTROLLER_PORT"
  ! grep -qxF "$want" "$conf" 2>/dev/null || [[ $KAFKA_PKI_DIR/broker.pem -nt $conf ]]
}

# Whether kcat's librdkafka can authenticate with SCRAM to Kafka 4: before librdkafka 2.6.1
# its client-final-message repeats the client nonce, which Kafka 4 refuses as invalid
# credentials (Debian 12's kcat links librdkafka 2.0.2).
kcat_scram_ok() {
  local v
  v="$(kcat -V 2>&1 | sed -n 's/.*librdkafka \([0-9][0-9.]*\).*/\1/p' | head -n 1)"
  [[ -n $v ]] && [[ "$(printf '%s\n' 2.6.1 "$v" | sort -V | head -n 1)" == 2.6.1 ]]
}

# kafka_secure_roundtrip PORT PROTOCOL [MECHANISM USER PASSWORD]: produce a message through
# the secured broker's listener on PORT and consume it back (TLS trusting only the test CA):
# with kcat, or else (and for SCRAM unless kcat's librdkafka is recent enough) with the Java
# client in one JVM (probes/KafkaProbe.java) and a client config file.
kafka_secure_roundtrip() {
  local port="$1" protocol="$2" mechanism="${3:-}" user="${4:-}" password="${5:-}"
  local bootstrap="$ECOM_HOST:$port" topic="ecom-ready" msg ca="$KAFKA_PKI_DIR/ca.crt"
  local conf="$ECOM_STATE/kafka-sasl/conf/client-$protocol.properties"
  port_open "$ECOM_HOST" "$port" || return 1
  msg="ready-$protocol-$(date +%s%N)"
  if command -v kcat >/dev/null 2>&1 && { [[ $mechanism != SCRAM-* ]] || kcat_scram_ok; }; then
    local x=(-X "security.protocol=$protocol")
    [[ $protocol != *SSL ]] || x+=(-X "ssl.ca.location=$ca")
    [[ -z $mechanism ]] ||
      x+=(-X "sasl.mechanisms=$mechanism" -X "sasl.username=$user" -X "sasl.password=$password")
    printf '%s\n' "$msg" | timeout 30 kcat -b "$bootstrap" "${x[@]}" -t "$topic" -P -X message.timeout.ms=10000 || return 1
    timeout 30 kcat -b "$bootstrap" "${x[@]}" -t "$topic" -C -o beginning -e -q | grep -qxF "$msg"
  else
    local module=""
    case "$mechanism" in
      PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
      SCRAM-*) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
    esac
    {
      printf 'security.protocol=%s\n' "$protocol"
      [[ $protocol != *SSL ]] || printf 'ssl.truststore.type=PEM\nssl.truststore.location=%s\n' "$ca"
      [[ -z $module ]] || printf 'sasl.mechanism=%s\nsasl.jaas.config=%s required username="%s" password="%s";\n' \
        "$mechanism" "$module" "$user" "$password"
    } >"$conf"
    timeout 60 "$JAVA" "${JVM_TOOL[@]}" -cp "$KAFKA_HOME/lib/*:$KAFKA_HOME/probes" \
      KafkaProbe "$bootstrap" "$conf" "$topic"
  fi
}

kafka_sasl_roundtrip() {
  kafka_secure_roundtrip "$ECOM_KAFKA_SASL_PORT" SASL_PLAINTEXT PLAIN "$ECOM_KAFKA_SASL_USER" "$ECOM_KAFKA_SASL_PASSWORD"
}

kafka_ssl_roundtrip() { kafka_secure_roundtrip "$ECOM_KAFKA_SSL_PORT" SSL; }

kafka_scram_roundtrip() {
  kafka_secure_roundtrip "$ECOM_KAFKA_SASL_SSL_PORT" SASL_SSL SCRAM-SHA-512 "$ECOM_KAFKA_SCRAM_USER" "$ECOM_KAFKA_SCRAM_PASSWORD"
}

ready_kafka_sasl() {
  command -v kcat >/dev/null 2>&1 || apt_install kcat ||
    log "kcat not available; checking the secured Kafka with its own console tools"
  wait_ready kafka-sasl "Kafka SASL_PLAINTEXT/PLAIN at $ECOM_HOST:$ECOM_KAFKA_SASL_PORT (produce + consume as $ECOM_KAFKA_SASL_USER)" kafka_sasl_roundtrip
  wait_ready kafka-sasl "Kafka SSL at $ECOM_HOST:$ECOM_KAFKA_SSL_PORT (produce + consume, trusting $KAFKA_PKI_DIR/ca.crt)" kafka_ssl_roundtrip
  wait_ready kafka-sasl "Kafka SASL_SSL/SCRAM-SHA-512 at $ECOM_HOST:$ECOM_KAFKA_SASL_SSL_PORT (produce + consume as $ECOM_KAFKA_SCRAM_USER)" kafka_scram_roundtrip
}

# ---------------------------------------------------------------------------------------------
# HDFS (one NameNode, one DataNode)

HDFS_CONF_DIR="$ECOM_STATE/hdfs/conf"

hdfs_java() {
  # hdfs_java ROLE HEAP CLASS ARGS...: command line of an HDFS JVM
  local role="$1" heap="$2"
  shift 2
  printf '%s\0' "$JAVA" "${JVM_COMMON[@]}" "${JDK17_OPENS[@]}" -Xms64m -Xmx"$heap" \
    -Dhadoop.home.dir="$ECOM_STATE/hdfs" -Dhadoop.log.dir="$LOG_DIR" -Dhadoop.id.str="$role" \
    -Dlog4j.configuration="file:$HDFS_CONF_DIR/log4j.properties" \
    -cp "$HDFS_CONF_DIR:$HADOOP_HOME_DIR/lib/*" "$@"
}

start_hdfs() {
  local dir="$ECOM_STATE/hdfs" cmd=()
  rm -rf "$dir"
  # The Maven jars carry no web UI resources; the HTTP servers only need the folders to exist.
  mkdir -p "$dir/name" "$dir/data" "$dir/tmp" "$HDFS_CONF_DIR/webapps/hdfs" \
    "$HDFS_CONF_DIR/webapps/datanode" "$HDFS_CONF_DIR/webapps/static"
  chmod 700 "$dir/data"
  log4j1_config >"$HDFS_CONF_DIR/log4j.properties"
  xml_props \
    fs.defaultFS "hdfs://$ECOM_HOST:$ECOM_HDFS_PORT" \
    hadoop.tmp.dir "$dir/tmp" \
    hadoop.security.authentication simple \
    >"$HDFS_CONF_DIR/core-site.xml"
  xml_props \
    dfs.namenode.rpc-address "$ECOM_HOST:$ECOM_HDFS_PORT" \
    dfs.namenode.rpc-bind-host "$ECOM_HOST" \
    dfs.namenode.http-address "$ECOM_HOST:$ECOM_HDFS_HTTP_PORT" \
    dfs.namenode.name.dir "file://$dir/name" \
    dfs.datanode.data.dir "file://$dir/data" \
    dfs.datanode.address "$ECOM_HOST:$ECOM_HDFS_DATANODE_PORT" \
    dfs.datanode.http.address "$ECOM_HOST:$ECOM_HDFS_DATANODE_HTTP_PORT" \
    dfs.datanode.ipc.address "$ECOM_HOST:$ECOM_HDFS_DATANODE_IPC_PORT" \
    dfs.datanode.hostname "$ECOM_HOST" \
    dfs.namenode.datanode.registration.ip-hostname-check false \
    dfs.replication 1 \
    dfs.permissions.enabled false \
    dfs.namenode.safemode.extension 0 \
    dfs.namenode.safemode.min.datanodes 0 \
    dfs.namenode.handler.count 10 \
    dfs.datanode.handler.count 5 \
    dfs.heartbeat.interval 1 \
    dfs.namenode.heartbeat.recheck-interval 10000 \
    dfs.datanode.du.reserved 0 \
    >"$HDFS_CONF_DIR/hdfs-site.xml"
  log "formatting the HDFS NameNode"
  mapfile -d '' cmd < <(hdfs_java namenode 256m org.apache.hadoop.hdfs.server.namenode.NameNode \
    -format -force -nonInteractive -clusterId ecom-pipeline)
  (cd "$dir" && "${cmd[@]}") >>"$(log_file namenode)" 2>&1 || fail_group hdfs "NameNode -format failed"
  mapfile -d '' cmd < <(hdfs_java namenode "$ECOM_NAMENODE_HEAP" org.apache.hadoop.hdfs.server.namenode.NameNode)
  start_component namenode "$dir" "${cmd[@]}"
  mapfile -d '' cmd < <(hdfs_java datanode "$ECOM_DATANODE_HEAP" org.apache.hadoop.hdfs.server.datanode.DataNode)
  start_component datanode "$dir" "${cmd[@]}"
}

hdfs_roundtrip() {
  port_open "$ECOM_HOST" "$ECOM_HDFS_PORT" || return 1
  port_open "$ECOM_HOST" "$ECOM_HDFS_DATANODE_PORT" || return 1
  timeout 90 "$JAVA" "${JVM_TOOL[@]}" -Dlog4j.configuration="file:$HDFS_CONF_DIR/log4j.properties" \
    -Dhadoop.home.dir="$ECOM_STATE/hdfs" -Dlog4j.rootLogger=WARN,out \
    -cp "$HDFS_CONF_DIR:$HADOOP_HOME_DIR/lib/*:$HADOOP_HOME_DIR/probes" \
    HdfsProbe "hdfs://$ECOM_HOST:$ECOM_HDFS_PORT"
}

ready_hdfs() {
  wait_ready hdfs "HDFS at hdfs://$ECOM_HOST:$ECOM_HDFS_PORT (write + read a file)" hdfs_roundtrip
}

# ---------------------------------------------------------------------------------------------
# HBase (standalone HMaster with its region server and ZooKeeper in one JVM) + Thrift 1 server

HBASE_CONF_DIR="$ECOM_STATE/hbase/conf"

# hbase_java NAME HEAP YOUNG [JVM-OPTION...] CLASS ARGS...: the command line, NUL-separated.
hbase_java() {
  local name="$1" heap="$2" young="$3"
  shift 3
  printf '%s\0' "$JAVA" "${JVM_COMMON[@]}" "${JDK17_OPENS[@]}" -Xms"$heap" -Xmx"$heap" -Xmn"$young" \
    -Dhbase.log.dir="$LOG_DIR" -Dhbase.id.str="$name" -Dhbase.home.dir="$ECOM_STATE/hbase" \
    -Dhadoop.home.dir="$ECOM_STATE/hbase" \
    -Dlog4j.configuration="file:$HBASE_CONF_DIR/log4j.properties" \
    -cp "$HBASE_CONF_DIR:$HBASE_HOME_DIR/lib/*" "$@"
}

start_hbase() {
  local dir="$ECOM_STATE/hbase" cmd=()
  rm -rf "$dir"
  mkdir -p "$dir/root" "$dir/zk" "$dir/tmp" "$HBASE_CONF_DIR"
  log4j1_config >"$HBASE_CONF_DIR/log4j.properties"
  # ZooKeeper, the master and the region server live in this one JVM and name themselves
  # `localhost`: they stay on 127.0.0.1. Clients use the Thrift servers, on ECOM_HOST.
  xml_props \
    hbase.cluster.distributed false \
    hbase.rootdir "file://$dir/root" \
    hbase.tmp.dir "$dir/tmp" \
    hbase.unsafe.stream.capability.enforce false \
    hbase.zookeeper.quorum 127.0.0.1 \
    hbase.zookeeper.property.clientPort "$ECOM_ZK_PORT" \
    hbase.zookeeper.property.dataDir "$dir/zk" \
    hbase.master.port "$ECOM_HBASE_MASTER_PORT" \
    hbase.master.ipc.address 127.0.0.1 \
    hbase.master.info.port -1 \
    hbase.regionserver.port "$ECOM_HBASE_REGIONSERVER_PORT" \
    hbase.regionserver.ipc.address 127.0.0.1 \
    hbase.regionserver.info.port -1 \
    hbase.regionserver.handler.count 10 \
    hbase.thrift.info.port -1 \
    hbase.thrift.info.bindAddress "$ECOM_HOST" \
    hbase.regionserver.thrift.port "$ECOM_HBASE_THRIFT_PORT" \
    hbase.regionserver.thrift.ipaddress "$ECOM_HOST" \
    hbase.defaults.for.version.skip true \
    hbase.master.wait.on.regionservers.mintostart 1 \
    hbase.client.retries.number 10 \
    hbase.hregion.memstore.flush.size 268435456 \
    >"$HBASE_CONF_DIR/hbase-site.xml"
  # Memstore chunks (2 MB MSLAB arrays) are allocated straight in the old generation, and
  # cells that survive one young collection are promoted at the next, so the serial
  # collector copies the memstore's data at most once.
  mapfile -d '' cmd < <(hbase_java master "$ECOM_HBASE_HEAP" "$ECOM_HBASE_YOUNG" \
    -XX:PretenureSizeThreshold=1m -XX:MaxTenuringThreshold=1 org.apache.hadoop.hbase.master.HMaster start)
  start_component hbase "$dir" "${cmd[@]}"
  # Thrift 1 (the `Hbase` service), binary protocol, buffered (unframed) transport.
  mapfile -d '' cmd < <(hbase_java thrift "$ECOM_THRIFT_HEAP" "$ECOM_THRIFT_YOUNG" org.apache.hadoop.hbase.thrift.ThriftServer \
    -p "$ECOM_HBASE_THRIFT_PORT" -b "$ECOM_HOST" start)
  start_component thrift "$dir" "${cmd[@]}"
  # The same service framed and compact (-f -c), as servers in -hsha or -nonblocking mode run;
  # small heap, it only serves the tests of the client's framed/compact wire.
  mapfile -d '' cmd < <(hbase_java thrift-framed 192m 96m org.apache.hadoop.hbase.thrift.ThriftServer \
    -p "$ECOM_HBASE_THRIFT_FRAMED_PORT" -b "$ECOM_HOST" -f -c start)
  start_component thrift-framed "$dir" "${cmd[@]}"
}

hbase_roundtrip() {
  port_open 127.0.0.1 "$ECOM_ZK_PORT" || return 1
  port_open "$ECOM_HOST" "$ECOM_HBASE_THRIFT_PORT" || return 1
  timeout 120 "$JAVA" "${JVM_TOOL[@]}" -cp "$HBASE_HOME_DIR/lib/*:$HBASE_HOME_DIR/probes" \
    -Dlog4j.configuration="file:$HBASE_CONF_DIR/log4j.properties" \
    HbaseThriftProbe "$ECOM_HOST" "$ECOM_HBASE_THRIFT_PORT"
}

ready_hbase() {
  wait_ready hbase "HBase Thrift at $ECOM_HOST:$ECOM_HBASE_THRIFT_PORT (create table, put, get)" hbase_roundtrip
  # The framed server shares the HBase the probe just used; it only has to listen.
  wait_ready hbase "HBase Thrift (framed, compact) at $ECOM_HOST:$ECOM_HBASE_THRIFT_FRAMED_PORT (listening)" \
    port_open "$ECOM_HOST" "$ECOM_HBASE_THRIFT_FRAMED_PORT"
}

# ---------------------------------------------------------------------------------------------
# Kubernetes API server + etcd

# A CA, the API server's serving certificate, an admin client certificate (group
# system:masters) and the service-account signing key. Kept across restarts so that an
# exported KUBECONFIG stays valid; delete $ECOM_STATE/kube/pki to renew.
ensure_pki() {
  # A PKI made for another address (ECOM_HOST changed) is made again.
  if [[ -f $PKI_DIR/.complete ]] &&
    openssl x509 -noout -ext subjectAltName -in "$PKI_DIR/apiserver.crt" 2>/dev/null | grep -q "IP Address:$ECOM_HOST\(,\|$\)"; then
    ensure_node_pki
    return 0
  fi
  log "generating the API server PKI in $PKI_DIR"
  rm -rf "$PKI_DIR"
  mkdir -p "$PKI_DIR"
  (
    cd "$PKI_DIR"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.crt \
      -subj "/CN=ecom-pipeline-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:$ECOM_HOST,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1" \
      >apiserver.ext
    openssl x509 -req -sha256 -days 3650 -in apiserver.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
      -extfile apiserver.ext -out apiserver.crt
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=ecom-admin"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" >admin.ext
    openssl x509 -req -sha256 -days 3650 -in admin.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
      -extfile admin.ext -out admin.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    rm -f ./*.csr ./*.ext
  ) >"$LOG_DIR/pki.log" 2>&1 || {
    tail -n 30 "$LOG_DIR/pki.log" >&2
    die "openssl failed while generating the API server PKI (log: $LOG_DIR/pki.log)"
  }
  touch "$PKI_DIR/.complete"
  ensure_node_pki
}

# kubeconfig_file FILE USER CERT: a kubeconfig of the API server for user USER with the client
# certificate $PKI_DIR/CERT.crt and its key, embedded; written whole or not at all.
kubeconfig_file() {
  local file="$1" user="$2" cert="$3" tmp="$1.tmp"
  (umask 077 && : >"$tmp")
  cat >"$tmp" <<EOF
# generated by scripts/services.sh: client certificate $cert.crt ($user)
apiVersion: v1
kind: Config
clusters:
- name: ecom-local
  cluster:
    server: https://$ECOM_HOST:$ECOM_APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI_DIR/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI_DIR/$cert.crt")
    client-key-data: $(base64 -w0 <"$PKI_DIR/$cert.key")
contexts:
- name: ecom-local
  context:
    cluster: ecom-local
    user: $user
    namespace: default
current-context: ecom-local
EOF
  mv "$tmp" "$file"
}

# The admin's kubeconfig (group system:masters), exported as KUBECONFIG.
write_kubeconfig() { kubeconfig_file "$KUBECONFIG_FILE" ecom-admin admin; }

start_kube() {
  # The `kubernetes` Service points pods at ECOM_HOST, which must not be a loopback address.
  local reconciler=none
  [[ $ECOM_HOST == 127.* ]] || reconciler=lease
  mkdir -p "$KUBE_DIR" "$LOG_DIR"
  rm -rf "$KUBE_DIR/etcd" "$KUBE_DIR/apiserver"
  mkdir -p "$KUBE_DIR/etcd" "$KUBE_DIR/apiserver"
  ensure_pki
  write_kubeconfig
  start_component etcd "$KUBE_DIR/etcd" env GOMEMLIMIT=512MiB "$ETCD_BIN" \
    --name ecom --data-dir "$KUBE_DIR/etcd/data" \
    --listen-client-urls "http://$ECOM_HOST:$ECOM_ETCD_PORT" \
    --advertise-client-urls "http://$ECOM_HOST:$ECOM_ETCD_PORT" \
    --listen-peer-urls "http://$ECOM_HOST:$ECOM_ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://$ECOM_HOST:$ECOM_ETCD_PEER_PORT" \
    --initial-cluster "ecom=http://$ECOM_HOST:$ECOM_ETCD_PEER_PORT" \
    --initial-cluster-state new --unsafe-no-fsync --log-level warn
  wait_ready kube "etcd at http://$ECOM_HOST:$ECOM_ETCD_PORT (/health)" etcd_healthy
  start_component apiserver "$KUBE_DIR/apiserver" env GOMEMLIMIT=768MiB "$KUBE_APISERVER_BIN" \
    --etcd-servers "http://$ECOM_HOST:$ECOM_ETCD_PORT" \
    --bind-address "$ECOM_HOST" --advertise-address "$ECOM_HOST" --secure-port "$ECOM_APISERVER_PORT" \
    --tls-cert-file "$PKI_DIR/apiserver.crt" --tls-private-key-file "$PKI_DIR/apiserver.key" \
    --client-ca-file "$PKI_DIR/ca.crt" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$PKI_DIR/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI_DIR/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer "https://kubernetes.default.svc" \
    --service-account-key-file "$PKI_DIR/sa.pub" \
    --service-account-signing-key-file "$PKI_DIR/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --cert-dir "$KUBE_DIR/apiserver" \
    --endpoint-reconciler-type "$reconciler" \
    --profiling=false --v 1
}

etcd_healthy() {
  curl -fsS --max-time 5 "http://$ECOM_HOST:$ECOM_ETCD_PORT/health" | grep -q '"health":"true"'
}

apiserver_ready() {
  curl -fsS --max-time 10 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" --key "$PKI_DIR/admin.key" \
    "https://$ECOM_HOST:$ECOM_APISERVER_PORT/readyz" | grep -qx ok
}

ready_kube() {
  wait_ready kube "etcd at http://$ECOM_HOST:$ECOM_ETCD_PORT (/health)" etcd_healthy
  wait_ready kube "kube-apiserver at https://$ECOM_HOST:$ECOM_APISERVER_PORT (/readyz as ecom-admin)" apiserver_ready
}

# ---------------------------------------------------------------------------------------------
# commands

# Is every component of the group running?
group_running() {
  local c
  for c in $(group_components "$1"); do
    running_pid "$c" >/dev/null || return 1
  done
}

stop_group() {
  local group="$1" comps c i
  [[ $group != node ]] || { stop_node; return 0; }
  read -r -a comps <<<"$(group_components "$group")"
  # Stop in reverse start order (thrift before the master, apiserver before etcd, ...).
  for ((i = ${#comps[@]} - 1; i >= 0; i--)); do
    c="${comps[i]}"
    # HBase's local mode stops its embedded ZooKeeper before the region server has let go of
    # it, then retries for minutes; its data is wiped below anyway, so do not wait long.
    if [[ $c == hbase ]]; then
      stop_component "$c" 5
    else
      stop_component "$c"
    fi
  done
  case "$group" in
    kafka) rm -rf "$ECOM_STATE/kafka" ;;
    kafka-sasl) rm -rf "$ECOM_STATE/kafka-sasl" ;;
    hdfs) rm -rf "$ECOM_STATE/hdfs" ;;
    hbase) rm -rf "$ECOM_STATE/hbase" ;;
    kube) rm -rf "$KUBE_DIR/etcd" "$KUBE_DIR/apiserver" ;;
  esac
}

selected_groups() {
  if (($# > 0)); then
    printf '%s\n' "$@"
  else
    # shellcheck disable=SC2086 # ECOM_SERVICES is a space-separated list
    printf '%s\n' ${ECOM_SERVICES:-${ALL_GROUPS[*]}}
  fi
}

# The node's address on the loopback device (see ECOM_NODE_IP above).
ensure_node_ip() {
  [[ $ECOM_HOST == "$ECOM_NODE_IP" ]] || return 0
  # Not `ip ... | grep -q`: under pipefail, ip killed by SIGPIPE once grep has matched made
  # the check fail now and then, and the add below then failed on the existing address.
  [[ "$(ip -4 addr show dev lo 2>/dev/null)" == *" $ECOM_NODE_IP/"* ]] && return 0
  ensure_cmd ip iproute2
  ip addr add "$ECOM_NODE_IP/32" dev lo || die "could not add the node address $ECOM_NODE_IP/32 to the loopback device"
  log "added the node address $ECOM_NODE_IP/32 to the loopback device"
}

# has_group NAME GROUP...: is NAME among the groups?
has_group() {
  local want="$1"
  shift
  [[ " $* " == *" $want "* ]]
}

# resolve_groups GROUP...: resolves (downloads, builds) each group, saying which took long.
resolve_groups() {
  local g t
  for g in "$@"; do
    t=$SECONDS
    resolve_group "$g"
    ((SECONDS - t < 2)) || log "$g: resolve/build took $((SECONDS - t))s"
  done
}

cmd_up() {
  local groups=() g started=() t0=$SECONDS with_node=0
  mapfile -t groups < <(selected_groups "$@")
  for g in "${groups[@]}"; do group_components "$g" >/dev/null; done
  # The node runs around kube's API server and starts after every other group.
  if has_group node "${groups[@]}"; then
    with_node=1
    mapfile -t groups < <(printf '%s\n' "${groups[@]}" | grep -vx node)
    has_group kube "${groups[@]}" || groups+=(kube)
  fi
  mkdir -p "$ECOM_CACHE" "$RUN_DIR" "$LOG_DIR"
  ensure_node_ip
  : >"$LOG_DIR/probe-kafka.log"
  : >"$LOG_DIR/probe-kafka-sasl.log"
  : >"$LOG_DIR/probe-hdfs.log"
  : >"$LOG_DIR/probe-hbase.log"
  : >"$LOG_DIR/probe-kube.log"
  : >"$LOG_DIR/probe-node.log"

  resolve_groups "${groups[@]}" $( ((with_node)) && echo node)
  # Before the reuse check below: a renewed CA means a restart of the secured broker.
  if has_group kafka-sasl "${groups[@]}"; then ensure_kafka_pki; fi

  # Start what is not running (a group with a dead component is restarted whole, on fresh data).
  for g in "${groups[@]}"; do
    if group_running "$g"; then
      if [[ $g == kafka-sasl ]] && kafka_sasl_outdated; then
        log "$g: running with other listeners or an older certificate than this script makes; restarting it"
      else
        log "$g: already running, reusing it"
        continue
      fi
    fi
    # A node outlives no API server it was registered with.
    [[ $g != kube ]] || stop_group node
    stop_group "$g"
    check_ports_free "$g"
    case "$g" in
      kafka) start_kafka ;;
      kafka-sasl) start_kafka_sasl ;;
      hdfs) start_hdfs ;;
      hbase) start_hbase ;;
      kube) start_kube ;;
    esac
    started+=("$g")
  done

  # Every group, reused or new, must really answer.
  for g in "${groups[@]}"; do
    case "$g" in
      kafka) ready_kafka ;;
      kafka-sasl) ready_kafka_sasl ;;
      hdfs) ready_hdfs ;;
      hbase) ready_hbase ;;
      kube) ready_kube ;;
    esac
  done
  if ((with_node)); then
    if group_running node; then
      log "node: already running, reusing it"
    elif ! has_group kube "${started[@]}" && restart_dead_node_components; then
      started+=(node)
    else
      stop_group node
      check_ports_free node
      start_node
      started+=(node)
    fi
    ready_node
    groups+=(node)
  fi
  log "up: ${groups[*]} ready in $((SECONDS - t0))s${started[*]:+ (started: ${started[*]})}"
  log "load the environment with: eval \"\$(scripts/services.sh env)\""
}

# Downloads and builds what `up` needs, starting nothing: `make test` runs it beside the Rust
# build, so a fresh machine's Maven downloads and Go builds overlap the compile.
cmd_prepare() {
  local groups=() g t0=$SECONDS
  if (($# == 0)) && [[ -z ${ECOM_SERVICES:-} ]]; then set -- "${ALL_GROUPS[@]}" node; fi
  mapfile -t groups < <(selected_groups "$@")
  for g in "${groups[@]}"; do group_components "$g" >/dev/null; done
  mkdir -p "$ECOM_CACHE" "$RUN_DIR" "$LOG_DIR"
  resolve_groups "${groups[@]}"
  log "prepare: ${groups[*]} resolved and built in $((SECONDS - t0))s"
}

cmd_down() {
  local groups=() g
  if (($# == 0)) && [[ -z ${ECOM_SERVICES:-} ]]; then set -- node "${ALL_GROUPS[@]}"; fi
  mapfile -t groups < <(selected_groups "$@")
  for g in "${groups[@]}"; do group_components "$g" >/dev/null; done
  # The node goes first: its kubelet and controllers talk to kube's API server.
  if has_group kube "${groups[@]}" || has_group node "${groups[@]}"; then stop_group node; fi
  for g in "${groups[@]}"; do [[ $g == node ]] || stop_group "$g"; done
  log "down: ${groups[*]} stopped, per-run data removed"
}

cmd_status() {
  local groups=() g c pid rc=0
  mapfile -t groups < <(selected_groups "$@")
  for g in "${groups[@]}"; do
    for c in $(group_components "$g"); do
      if pid="$(running_pid "$c")"; then
        printf '%-10s %-13s running  pid %s\n' "$g" "$c" "$pid"
      else
        printf '%-10s %-13s stopped\n' "$g" "$c"
        rc=3
      fi
    done
  done
  return "$rc"
}

cmd_env() {
  printf 'export KAFKA_BOOTSTRAP=%q\n' "$ECOM_HOST:$ECOM_KAFKA_PORT"
  printf 'export KAFKA_SASL_BOOTSTRAP=%q\n' "$ECOM_HOST:$ECOM_KAFKA_SASL_PORT"
  printf 'export KAFKA_SASL_MECHANISM=PLAIN\n'
  printf 'export KAFKA_SASL_USER=%q\n' "$ECOM_KAFKA_SASL_USER"
  printf 'export KAFKA_SASL_PASSWORD=%q\n' "$ECOM_KAFKA_SASL_PASSWORD"
  printf 'export KAFKA_SSL_BOOTSTRAP=%q\n' "$ECOM_HOST:$ECOM_KAFKA_SSL_PORT"
  printf 'export KAFKA_SASL_SSL_BOOTSTRAP=%q\n' "$ECOM_HOST:$ECOM_KAFKA_SASL_SSL_PORT"
  printf 'export KAFKA_SASL_SSL_MECHANISM=SCRAM-SHA-512\n'
  printf 'export KAFKA_SCRAM_USER=%q\n' "$ECOM_KAFKA_SCRAM_USER"
  printf 'export KAFKA_SCRAM_PASSWORD=%q\n' "$ECOM_KAFKA_SCRAM_PASSWORD"
  printf 'export KAFKA_TLS_CA=%q\n' "$KAFKA_PKI_DIR/ca.crt"
  printf 'export HDFS_URL=%q\n' "hdfs://$ECOM_HOST:$ECOM_HDFS_PORT"
  printf 'export HDFS_HTTP_URL=%q\n' "http://$ECOM_HOST:$ECOM_HDFS_HTTP_PORT"
  printf 'export HBASE_THRIFT=%q\n' "$ECOM_HOST:$ECOM_HBASE_THRIFT_PORT"
  printf 'export HBASE_THRIFT_FRAMED=%q\n' "$ECOM_HOST:$ECOM_HBASE_THRIFT_FRAMED_PORT"
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_FILE"
  printf 'export KUBECTL=%q\n' "$KUBECTL_BIN"
  printf 'export HELM=%q\n' "$HELM_BIN"
  printf 'export ECOM_STATE=%q\n' "$ECOM_STATE"
  printf 'export ECOM_NODE_IP=%q\n' "$ECOM_NODE_IP"
  printf 'export ECOM_NODE_NAME=%q\n' "$NODE_NAME"
  printf 'export ECOM_CONTAINERD_SOCK=%q\n' "$CONTAINERD_SOCK"
}

cmd_logs() {
  local c lines="${2:-50}"
  if (($# >= 1)) && [[ -n $1 && $1 != all ]]; then
    [[ " ${ALL_COMPONENTS[*]} " == *" $1 "* ]] ||
      die "unknown component '$1' (expected one of: ${ALL_COMPONENTS[*]})"
    show_log_tail "$1" "$lines" 2>&1
    return 0
  fi
  for c in "${ALL_COMPONENTS[@]}"; do show_log_tail "$c" "$lines" 2>&1; done
}

# Build prerequisites of the Rust smoke tests (itests/): rdkafka's cmake build of the bundled
# librdkafka 2.12 includes <curl/curl.h> even when built without curl, so the header must exist.
cmd_deps() {
  ensure_cmd cmake cmake
  ensure_cmd cc gcc
  if ! printf '#include <curl/curl.h>\n' | cc -E -x c - >/dev/null 2>&1; then
    apt_install libcurl4-openssl-dev ||
      die "curl/curl.h is missing (needed to build rdkafka-sys) and installing Debian package libcurl4-openssl-dev failed"
  fi
}

cmd_pid() {
  (($# == 1)) || die "pid takes one COMPONENT (one of: ${ALL_COMPONENTS[*]})"
  [[ " ${ALL_COMPONENTS[*]} " == *" $1 "* ]] ||
    die "unknown component '$1' (expected one of: ${ALL_COMPONENTS[*]})"
  running_pid "$1" || { log "$1 is not running"; return 3; }
}

usage() {
  sed -n '2,/^# See scripts/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  local verb="${1:-}"
  (($# > 0)) && shift
  case "$verb" in
    up) cmd_up "$@" ;;
    prepare) cmd_prepare "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    env) cmd_env ;;
    logs) cmd_logs "$@" ;;
    deps) cmd_deps ;;
    pid) cmd_pid "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      die "unknown command '${verb}' (expected up, prepare, down, status, env, logs, deps or pid)"
      ;;
  esac
}

# One line, so that bash has read all it will run even if this file changes meanwhile.
main "$@"; exit $?
