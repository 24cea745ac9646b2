#!/usr/bin/env bash
# Fetches Apache Kafka (the broker, org.apache.kafka:kafka_2.13, with all its runtime dependencies
# and a logging binding) from Maven Central with Maven into a cache directory outside the
# repository, writes a log4j.properties beside it, and prints the Kafka home directory as its last
# line on stdout: the broker's classpath is "<home>/lib/*" (main class kafka.Kafka, storage format
# with kafka.tools.StorageTool), its logging -Dlog4j.configuration=file:<home>/log4j.properties.
# It also writes <home>/kafka.jsa, a class-data archive of a broker's start-up (AppCDS), which the
# harness passes to every broker it starts: about 0.8 s less start-up and 40 MB less memory each.
# Needs java (17) and mvn; Maven's own repository stays its default (~/.m2).
# Idempotent: a lib directory whose marker lists jars that are all present is reused as is, without
# running Maven; an existing archive is kept.
#
# Why 3.9 and not 4.x: Dapr's pubsub.kafka component (sarama) speaks Kafka protocol 2.0.0 unless the
# component sets `version`, and Kafka 4.0 removed the old request versions such clients send
# (KIP-896), so a 4.x broker refuses them. 3.9.x is the last line that serves them; 3.9.2 is its
# newest patch release on Maven Central. Kafka 3.9 declares its log4j (reload4j) dependency
# compileOnly, so the POM brings no SLF4J binding: reload4j and slf4j-reload4j are added here, at
# the versions the 3.9 binary distribution ships (without them SLF4J falls back to NOP: no logs).
set -euo pipefail

VERSION="3.9.2"
RELOAD4J="1.2.25"
SLF4J="1.7.36"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
CACHE="${PUBSUB_TCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pubsub-tck}/kafka"
HOME_DIR="$CACHE/apache-$VERSION"
LIB="$HOME_DIR/lib"
MARKER="$LIB/.complete"

# The marker is written last, after every jar was copied; it lists them, one a line.
complete() {
  [ -s "$MARKER" ] || return 1
  local jar
  while IFS= read -r jar; do
    [ -s "$LIB/$jar" ] || return 1
  done < "$MARKER"
}

# Console logging to stdout: INFO for the broker itself (the harness can wait for
# "Kafka Server started"), WARN for the loggers that repeat every request, partition or client.
write_log4j() {
  local want="$HOME_DIR/log4j.properties" tmp
  tmp="$want.tmp.$$"
  cat > "$tmp" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Target=System.out
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.kafka.controller=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.kafka.log=WARN
log4j.logger.kafka.server.KafkaConfig=WARN
log4j.logger.kafka.server.ClientQuotaManager$ThrottledChannelReaper=WARN
log4j.logger.kafka.server.DelayedOperationPurgatory$ExpiredOperationReaper=WARN
log4j.logger.kafka.server.NodeToControllerRequestThread=WARN
log4j.logger.kafka.network.ConnectionQuotas=WARN
log4j.logger.org.apache.kafka.common.config.AbstractConfig=WARN
log4j.logger.kafka.cluster=WARN
log4j.logger.kafka.server.metadata=WARN
log4j.logger.kafka.server.BrokerMetadataCheckpoint=WARN
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN
log4j.logger.org.apache.kafka.storage=WARN
log4j.logger.org.apache.kafka.raft=WARN
log4j.logger.org.apache.kafka.metadata=WARN
log4j.logger.org.apache.kafka.controller=WARN
log4j.logger.org.apache.kafka.image=WARN
log4j.logger.org.apache.kafka.coordinator=WARN
log4j.logger.org.apache.zookeeper=WARN
EOF
  if cmp -s "$tmp" "$want"; then rm -f "$tmp"; else mv -f "$tmp" "$want"; fi
}

if ! complete; then
  for tool in java mvn; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "scripts/kafka.sh: $tool is required to fetch Apache Kafka $VERSION" >&2
      exit 2
    fi
  done
  echo "scripts/kafka.sh: fetching Apache Kafka $VERSION and its dependencies (about 60 jars) with Maven" >&2
  mkdir -p "$HOME_DIR"
  work="$(mktemp -d)"
  stage="$HOME_DIR/lib.tmp.$$"
  trap 'rm -rf "$work" "$stage"' EXIT
  cat > "$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.pubsub-tck</groupId>
  <artifactId>kafka-classpath</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>ch.qos.reload4j</groupId><artifactId>reload4j</artifactId><version>$RELOAD4J</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>$SLF4J</version></dependency>
  </dependencies>
</project>
EOF
  # -C: fail on a checksum mismatch instead of warning. Progress: one line per ten files
  # downloaded (Maven's lines, without the bare colour resets Maven 3.8 writes even in batch
  # mode); errors in full.
  (cd "$work" && mvn -B -C -Dstyle.color=never "$DEP_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$stage" 2>&1) | sed 's/\x1b\[[0-9;]*m//g' |
    awk '/^Downloaded from/ { n++; if (n % 10 == 0) print "scripts/kafka.sh: downloaded " n " files"; next }
         /ERROR|FAIL/ { print }' >&2
  (cd "$stage" && ls -1 -- *.jar) > "$stage/.list"
  if ! grep -qx "kafka_2.13-$VERSION.jar" "$stage/.list" || ! grep -qx "slf4j-reload4j-$SLF4J.jar" "$stage/.list"; then
    echo "scripts/kafka.sh: Maven did not copy kafka_2.13-$VERSION.jar and slf4j-reload4j-$SLF4J.jar" >&2
    exit 2
  fi
  mv -f "$stage/.list" "$stage/.complete"
  rm -rf "$LIB"
  mv -T "$stage" "$LIB" 2>/dev/null || complete || { echo "scripts/kafka.sh: could not move $stage to $LIB" >&2; exit 2; }
fi
write_log4j

# The class-data archive: one broker started with -XX:ArchiveClassesAtExit and stopped with SIGTERM
# (the JVM writes the archive only on an orderly exit). A missing or stale archive is harmless:
# the JVM ignores it. The broker listens on two free loopback ports found by trying to connect.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 10000))
    (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}
archive() {
  local jsa="$HOME_DIR/kafka.jsa" dir port cport pid
  [ -s "$jsa" ] && return 0
  port="$(free_port)" && cport="$(free_port)" || return 0
  dir="$(mktemp -d)"
  cat > "$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.cleaner.dedupe.buffer.size=2097152
EOF
  echo "scripts/kafka.sh: recording a class-data archive of the broker's start-up (once)" >&2
  local jvm=(-Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1
    "-Dlog4j.configuration=file:$HOME_DIR/log4j.properties" -cp "$LIB/*")
  if ! java "${jvm[@]}" kafka.tools.StorageTool format -t pubsubtckarchive00000a \
    -c "$dir/server.properties" >"$dir/format.log" 2>&1; then
    echo "scripts/kafka.sh: formatting storage failed; no archive (brokers start without it):" >&2
    tail -n 5 "$dir/format.log" >&2
    rm -rf "$dir"
    return 0
  fi
  java -XX:ArchiveClassesAtExit="$jsa.tmp" -Xlog:cds=off -Xlog:cds+dynamic=off "${jvm[@]}" \
    kafka.Kafka "$dir/server.properties" >"$dir/broker.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    grep -q "Kafka Server started" "$dir/broker.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1 # polling the log for the start-up line, with a 60 s deadline
  done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ -s "$jsa.tmp" ]; then mv -f "$jsa.tmp" "$jsa"; else rm -f "$jsa.tmp"; fi
  rm -rf "$dir"
}
archive
echo "$HOME_DIR"

