# shellcheck shell=bash
# Sourced by scripts/images.sh: images for the chart's development Kafka, HDFS and HBase, built
# from the jars scripts/services.sh resolves with Maven and a Java runtime linked from this
# machine's JDK. Each image lays its jars out where the chart's templates look for them, the
# same paths as the public images (README: "Development services"):
#   localhost/ecom-jre:<java>            Debian + a jlink'd runtime at /opt/java (java on PATH)
#   localhost/ecom-kafka:$KAFKA_VERSION  /opt/kafka/libs/*.jar                   (as apache/kafka)
#   localhost/ecom-hadoop:$HADOOP_VERSION /opt/hadoop/share/hadoop/common/lib/*.jar (as apache/hadoop)
#   localhost/ecom-hbase:$HBASE_VERSION  /opt/hbase/lib/*.jar
# Every image runs as UID 1000 (a passwd entry exists) and starts nothing by itself: the chart
# gives the command.

dev_image() { printf 'localhost/ecom-%s:%s' "$1" "$2"; }

# The JDK whose runtime goes into the images: $JAVA_HOME, else the one `javac` belongs to.
jdk_home() {
  local javac
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/jlink ]]; then
    printf '%s' "$JAVA_HOME"
    return 0
  fi
  javac="$(readlink -f "$(command -v javac 2>/dev/null)" 2>/dev/null)" ||
    die "no JDK found (javac); install Debian's openjdk-17-jdk-headless"
  [[ -x $(dirname "$javac")/jlink ]] || die "$(dirname "$javac") has no jlink; install a full JDK 17"
  dirname "$(dirname "$javac")"
}

jre_image() {
  local home="$1" major
  major="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$home/release")"
  [[ -n $major ]] || die "$home/release names no JAVA_VERSION"
  dev_image jre "$major"
}

# localhost/ecom-jre:<major>: debian:trixie-slim plus every module of the JDK, linked by jlink
# without debug symbols, headers or man pages.
cmd_jre() {
  local home image key dir start base
  ensure_docker
  home="$(jdk_home)"
  image="$(jre_image "$home")"
  base="$(dockerfile_default RUNTIME_IMAGE)"
  need_local_bases "$base"
  key="$(printf '%s\n' "$(cat "$home/release")" "$(dk image inspect -f '{{.Id}}' "$base")" \
    "$(declare -f cmd_jre)" | sha_text)"
  up_to_date "$image" "$key" && return 0
  start="$(now)"
  dir="$IMAGES_CACHE/jre-$key"
  rm -rf "$dir"
  mkdir -p "$dir"
  "$home/bin/jlink" --add-modules ALL-MODULE-PATH --strip-debug --no-header-files \
    --no-man-pages --output "$dir/java" || die "jlink of $home failed"
  build_small_image "$image" "$dir" "$key" "$dir/build.log" <<DOCKERFILE
FROM $base
COPY java /opt/java
RUN echo 'ecom:x:1000:1000:ecom dev service:/tmp:/usr/sbin/nologin' >>/etc/passwd && \
    echo 'ecom:x:1000:' >>/etc/group && /opt/java/bin/java -Xshare:dump >/dev/null
ENV JAVA_HOME=/opt/java PATH=/opt/java/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
USER 1000:1000
WORKDIR /tmp
DOCKERFILE
  log "$image built in $(since "$start")s ($(image_mb "$image")): $(dk run --rm --network none "$image" java -version 2>&1 | head -n 1)"
}

# dev_service_image NAME VERSION LIB-DIR DEST [EXTRA-RUN]: the JRE image plus the jars of
# LIB-DIR at DEST.
dev_service_image() {
  local name="$1" version="$2" lib="$3" dest="$4" extra="${5:-true}" image jre key dir start
  [[ -d $lib ]] || die "$lib does not exist: run scripts/services.sh up (it resolves the $name jars with Maven)"
  image="$(dev_image "$name" "$version")"
  jre="$(jre_image "$(jdk_home)")"
  key="$(printf '%s\n' "$(ls -l "$lib")" "$(dk image inspect -f '{{.Id}}' "$jre")" "$dest" "$extra" \
    "$(declare -f dev_service_image)" | sha_text)"
  up_to_date "$image" "$key" && return 0
  start="$(now)"
  dir="$IMAGES_CACHE/$name-$key"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp -a "$lib" "$dir/lib"
  build_small_image "$image" "$dir" "$key" "$dir/build.log" <<DOCKERFILE
FROM $jre
COPY lib $dest
USER 0:0
RUN $extra
USER 1000:1000
DOCKERFILE
  rm -rf "$dir/lib"
  log "$image built in $(since "$start")s ($(image_mb "$image"))"
}

# The three development service images (the JRE image first).
cmd_dev_services() {
  local hadoop_share=/opt/hadoop/share/hadoop
  cmd_bases
  cmd_jre
  dev_service_image kafka "$KAFKA_VERSION" "$ECOM_CACHE/kafka-$KAFKA_VERSION/lib" /opt/kafka/libs
  # The Maven jars carry no web UI resources; the NameNode's and DataNode's HTTP servers (whose
  # /jmx the chart's readiness probes read) only need the folders on the classpath.
  dev_service_image hadoop "$HADOOP_VERSION" "$ECOM_CACHE/hadoop-$HADOOP_VERSION/lib" \
    "$hadoop_share/common/lib" "mkdir -p $hadoop_share/hdfs/webapps/hdfs $hadoop_share/hdfs/webapps/datanode $hadoop_share/hdfs/webapps/static"
  dev_service_image hbase "$HBASE_VERSION" "$ECOM_CACHE/hbase-$HBASE_VERSION/lib" /opt/hbase/lib
}

# The development service images, one a line: Kafka, Hadoop, HBase (scripts/cluster-up.sh
# reads them in this order).
dev_service_images() {
  printf '%s\n' "$(dev_image kafka "$KAFKA_VERSION")" "$(dev_image hadoop "$HADOOP_VERSION")" \
    "$(dev_image hbase "$HBASE_VERSION")"
}
