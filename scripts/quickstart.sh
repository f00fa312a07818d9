#!/usr/bin/env bash
# From a checkout to readable conversation logs in one command:
#
#   scripts/quickstart.sh        # build, start ClickHouse and convolog, simulate 20 conversations
#   scripts/quickstart.sh stop   # stop convolog and ClickHouse (data stays in .convolog-dev/)
#
# Everything lives under .convolog-dev/ in the checkout; delete it for a clean start.
# Ports: ClickHouse 18123-18125, OTLP gRPC 4317 and HTTP 4318, logs API 8080 (loopback only).
set -euo pipefail

cd "$(dirname "$0")/.."
dev=.convolog-dev
clickhouse_dir=$dev/clickhouse
clickhouse_url=http://127.0.0.1:18123
pid_file=$dev/convolog.pid
log_file=$dev/convolog.log
api=http://127.0.0.1:8080
# The settings of this convolog, for `doctor` and `serve` alike.
convolog_env=(
  CONVOLOG_CLICKHOUSE_URL=$clickhouse_url
  CONVOLOG_CLICKHOUSE_DATABASE=convolog
  CONVOLOG_GRPC_LISTEN=127.0.0.1:4317
  CONVOLOG_HTTP_LISTEN=127.0.0.1:4318
  CONVOLOG_API_LISTEN=127.0.0.1:8080
)

if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi

stop_convolog() {
  [ -f "$pid_file" ] || return 0
  local pid
  pid=$(cat "$pid_file")
  # A stale pid file may name a process that is not ours any more.
  if [ "$(ps -p "$pid" -o comm= 2>/dev/null)" = convolog ] && kill "$pid" 2>/dev/null; then
    # Give it time to flush what it has buffered into ClickHouse.
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  rm -f "$pid_file"
}

if [ "${1:-start}" = stop ]; then
  stop_convolog
  scripts/clickhouse.sh stop "$clickhouse_dir"
  echo "convolog and ClickHouse stopped (data kept in $dev/)"
  exit 0
elif [ "${1:-start}" != start ]; then
  echo "usage: scripts/quickstart.sh [start|stop]" >&2
  exit 2
fi

echo "==> installing what is missing"
if ! command -v cargo >/dev/null; then
  echo "cargo not found: install the Rust toolchain (https://rustup.rs) and run this again" >&2
  exit 1
fi
missing=()
command -v curl >/dev/null || missing+=(curl)
command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
if [ ${#missing[@]} -gt 0 ]; then
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "==> building convolog (release)"
cargo build --release

echo "==> starting ClickHouse on $clickhouse_url (data in $clickhouse_dir)"
mkdir -p "$dev"
scripts/clickhouse.sh start "$clickhouse_dir" 18123

# Restart so the binary just built is the one running.
stop_convolog
echo "==> checking the setup: convolog doctor"
if ! env "${convolog_env[@]}" target/release/convolog doctor; then
  echo "convolog doctor found a problem (above); fix it and run this again" >&2
  exit 1
fi

echo "==> starting convolog (log: $log_file)"
env "${convolog_env[@]}" nohup target/release/convolog serve </dev/null >"$log_file" 2>&1 &
echo $! > "$pid_file"
deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null "$api/healthz" 2>/dev/null; do
  if ! kill -0 "$(cat "$pid_file")" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
    echo "convolog did not come up; the end of $log_file:" >&2
    tail -30 "$log_file" >&2
    exit 1
  fi
  sleep 0.2
done

# The simulated ids are fixed (sim-1 .. sim-20): sending them again would add a second copy
# of each conversation to the same sessions, so a repeated quickstart keeps the first ones.
if curl -fsS -o /dev/null "$api/v1/sessions/sim-1/transcript" 2>/dev/null; then
  echo "==> simulated conversations already loaded (rm -rf $dev for a fresh start)"
else
  echo "==> sending 20 simulated conversations over OTLP gRPC (spans and debug logs)"
  target/release/convolog-simulate --endpoint http://127.0.0.1:4317 --protocol grpc \
    --count 20 --rate 5
  deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "$api/v1/sessions/sim-1/transcript" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "no transcript for sim-1 after 60 s; the end of $log_file:" >&2
      tail -30 "$log_file" >&2
      exit 1
    fi
    sleep 0.5
  done
fi

cat <<EOF

convolog is running: OTLP gRPC 127.0.0.1:4317, OTLP HTTP 127.0.0.1:4318, API $api
Point your agent's OTLP exporter at one of them, then read conversations with:

  curl '$api/v1/sessions/sim-1/transcript?format=text'
  curl '$api/v1/sessions/sim-1/logs'     # the agent's debug log lines, by step

or open $api/sessions/sim-1 in a browser: each step shows the lines it logged.

Stop everything with: scripts/quickstart.sh stop

---- sim-1 ----
EOF
curl -fsS "$api/v1/sessions/sim-1/transcript?format=text"
echo
