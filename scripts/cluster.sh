#!/usr/bin/env bash
# Starts a private ClickHouse cluster for development and tests: one ZooKeeper and two
# ClickHouse servers (scripts/clickhouse.sh) with their own data, logs and ports, no systemd.
#
#   scripts/cluster.sh start DIR BASEPORT [--topology replicas|shards]
#   scripts/cluster.sh stop DIR
#
# The cluster is named `convolog`. Topology `replicas` (the default) is one shard of two
# replicas; `shards` is two shards of one replica each. Ports, from BASEPORT:
#   BASEPORT      ZooKeeper client port
#   BASEPORT+1..3 first ClickHouse server: HTTP, native, interserver
#   BASEPORT+4..6 second ClickHouse server: HTTP, native, interserver
# Each server's macros are `shard` and `replica` (see README, "Running on a ClickHouse
# cluster"). `start` returns once both servers answer and prints their HTTP URLs.
set -euo pipefail

usage="usage: cluster.sh start DIR BASEPORT [--topology replicas|shards] | stop DIR"
cmd=${1:?$usage}
dir=$(realpath -m "${2:?$usage}")
here=$(dirname "$0")

install_zookeeper() {
  [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null && return
  echo "installing zookeeper and a Java runtime from the distribution's packages" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zookeeper default-jre-headless >/dev/null
}

# The part of a server's configuration that makes it a member of the cluster.
server_config() {
  local shard=$1 replica=$2
  cat <<EOF
<yandex>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$zk_port</port></node>
    </zookeeper>
    <macros>
        <shard>$shard</shard>
        <replica>$replica</replica>
    </macros>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <remote_servers>
        <convolog>
$remote_shards
        </convolog>
    </remote_servers>
</yandex>
EOF
}

case "$cmd" in
start)
  base=${3:?$usage}
  topology=replicas
  if [ "${4:-}" = "--topology" ]; then topology=${5:?$usage}; fi
  zk_port=$base
  http1=$((base + 1))
  http2=$((base + 4))
  replica1="<replica><host>127.0.0.1</host><port>$((http1 + 1))</port></replica>"
  replica2="<replica><host>127.0.0.1</host><port>$((http2 + 1))</port></replica>"
  # internal_replication: a Distributed insert goes to one replica of a shard and the
  # Replicated table copies it to the others.
  case "$topology" in
  replicas)
    remote_shards="<shard><internal_replication>true</internal_replication>$replica1$replica2</shard>"
    macros1="01 r1"
    macros2="01 r2"
    ;;
  shards)
    remote_shards="<shard><internal_replication>true</internal_replication>$replica1</shard>
<shard><internal_replication>true</internal_replication>$replica2</shard>"
    macros1="01 r1"
    macros2="02 r1"
    ;;
  *) echo "$usage" >&2; exit 2 ;;
  esac
  install_zookeeper
  mkdir -p "$dir/zookeeper/data" "$dir/ch1/config.d" "$dir/ch2/config.d"
  cat >"$dir/zookeeper/zoo.cfg" <<EOF
tickTime=2000
dataDir=$dir/zookeeper/data
clientPort=$zk_port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr
EOF
  if ! [ -f "$dir/zookeeper/pid" ] || ! kill -0 "$(cat "$dir/zookeeper/pid")" 2>/dev/null; then
    nohup java -Dzookeeper.log.dir="$dir/zookeeper" -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
      org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zookeeper/zoo.cfg" \
      >"$dir/zookeeper/stdout.log" 2>&1 &
    echo $! >"$dir/zookeeper/pid"
  fi
  # ClickHouse 18.16 may crash when ZooKeeper accepts connections but does not serve yet.
  zk_serving="exec 3<>/dev/tcp/127.0.0.1/$zk_port && printf srvr >&3 && grep -q '^Mode: standalone' <&3"
  for i in $(seq 1 150); do
    if timeout 2 bash -c "$zk_serving" 2>/dev/null; then break; fi
    if [ "$i" = 150 ]; then
      echo "ZooKeeper did not listen on $zk_port; see $dir/zookeeper/stdout.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  # shellcheck disable=SC2086
  server_config $macros1 >"$dir/ch1/config.d/cluster.xml"
  # shellcheck disable=SC2086
  server_config $macros2 >"$dir/ch2/config.d/cluster.xml"
  "$here/clickhouse.sh" start "$dir/ch1" "$http1"
  "$here/clickhouse.sh" start "$dir/ch2" "$http2"
  # ON CLUSTER statements need ZooKeeper: wait until each server reaches it.
  for port in "$http1" "$http2"; do
    for i in $(seq 1 100); do
      if curl -fsS "http://127.0.0.1:$port/?query=SELECT%20count()%20FROM%20system.zookeeper%20WHERE%20path%3D'/'" >/dev/null 2>&1; then
        break
      fi
      if [ "$i" = 100 ]; then
        echo "ClickHouse on $port does not reach ZooKeeper on $zk_port; see $dir/zookeeper/" >&2
        exit 1
      fi
      sleep 0.2
    done
  done
  echo "cluster convolog ($topology): http://127.0.0.1:$http1 http://127.0.0.1:$http2 (ZooKeeper 127.0.0.1:$zk_port)"
  ;;
stop)
  "$here/clickhouse.sh" stop "$dir/ch1"
  "$here/clickhouse.sh" stop "$dir/ch2"
  if [ -f "$dir/zookeeper/pid" ]; then
    pid=$(cat "$dir/zookeeper/pid")
    kill "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$dir/zookeeper/pid"
  fi
  ;;
*)
  echo "$usage" >&2
  exit 2
  ;;
esac
