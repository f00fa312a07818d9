#!/usr/bin/env bash
# Installs (if needed) and starts a private ClickHouse server for development, tests and the
# quickstart: its own config, data and log directory, its own ports, no systemd.
#
#   scripts/clickhouse.sh start DIR HTTP_PORT [TIMEZONE]  # returns once SELECT 1 answers
#   scripts/clickhouse.sh stop DIR                        # returns once the server is gone
#
# TIMEZONE (e.g. Asia/Kolkata) sets the server's <timezone>; by default it is the machine's.
set -euo pipefail

cmd=${1:?usage: clickhouse.sh start|stop DIR [HTTP_PORT]}
dir=$(realpath -m "${2:?usage: clickhouse.sh start|stop DIR [HTTP_PORT]}")

install_server() {
  command -v clickhouse-server >/dev/null && return
  echo "installing clickhouse-server from the distribution's packages" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
}

case "$cmd" in
start)
  http_port=${3:-18123}
  tcp_port=$((http_port + 1))
  interserver_port=$((http_port + 2))
  timezone=${4:-}
  install_server
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
  # Take the distribution's config and rewrite only paths and ports; TLS ports are dropped
  # (no certificates here) and the server listens on loopback only.
  sed -e "s#/var/lib/clickhouse/tmp/#$dir/tmp/#" \
      -e "s#/var/lib/clickhouse/user_files/#$dir/user_files/#" \
      -e "s#/var/lib/clickhouse/format_schemas/#$dir/format_schemas/#" \
      -e "s#/var/lib/clickhouse/#$dir/data/#" \
      -e "s#/var/log/clickhouse-server/#$dir/log/#" \
      -e "s#<http_port>8123</http_port>#<http_port>$http_port</http_port>#" \
      -e "s#<tcp_port>9000</tcp_port>#<tcp_port>$tcp_port</tcp_port>#" \
      -e "s#<interserver_http_port>9009</interserver_http_port>#<interserver_http_port>$interserver_port</interserver_http_port>#" \
      -e "/<https_port>/d" -e "/<tcp_port_secure>/d" -e "/<listen_host>::1<\/listen_host>/d" \
      /etc/clickhouse-server/config.xml > "$dir/config.xml"
  if [ -n "$timezone" ]; then
    sed -i -e "s#<!-- <timezone>.*</timezone> -->#<timezone>$timezone</timezone>#" "$dir/config.xml"
    grep -q "<timezone>$timezone</timezone>" "$dir/config.xml" \
      || { echo "could not set the time zone in $dir/config.xml" >&2; exit 1; }
  fi
  cp /etc/clickhouse-server/users.xml "$dir/users.xml"
  if curl -fsS "http://127.0.0.1:$http_port/?query=SELECT%201" >/dev/null 2>&1; then
    exit 0
  fi
  nohup clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
  echo $! > "$dir/pid"
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$http_port/?query=SELECT%201" >/dev/null 2>&1; then
      exit 0
    fi
    sleep 0.2
  done
  echo "ClickHouse did not answer on port $http_port; see $dir/log/" >&2
  tail -20 "$dir/log/clickhouse-server.err.log" >&2 || true
  exit 1
  ;;
stop)
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    # Not gone after 30 s: no longer waiting for a clean shutdown.
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$dir/pid"
  fi
  ;;
*)
  echo "usage: clickhouse.sh start|stop DIR [HTTP_PORT]" >&2
  exit 2
  ;;
esac
