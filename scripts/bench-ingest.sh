#!/usr/bin/env bash
# Ingest benchmark: a private ClickHouse and a release `convolog serve` on free ports, driven by
# the pre-encoded OTLP/gRPC load generator in benches/ingest.rs; prints one table.
#
#   scripts/bench-ingest.sh [--rotel | --cluster] [--convolog PATH] [LOAD OPTIONS]
#
# --convolog PATH runs that convolog binary instead of building this tree's (to compare two
# versions under the same conditions, e.g. one built from an earlier commit).
#
# LOAD OPTIONS go to the load generator (defaults: --duration 20 --in-flight 32 --spans 400
# --runs 2 --connections 4 --settle 10 --freshness-duration 20); `cargo bench --bench ingest
# -- --help` lists them; `--turn-by-turn [--interleave N] [--turns N]` sends conversations
# turn by turn as they happen instead of whole. --rotel also runs the same load against rotel's OTLP receiver with its
# blackhole exporter (installed from PyPI into .venv-bench/), after convolog and ClickHouse
# are stopped, and puts its figures beside convolog's.
#
# --cluster runs on a local ClickHouse cluster instead (scripts/cluster.sh: one shard of two
# replicas) with two `convolog serve` on it, each talking to its own server: first one instance
# alone under the load, then both at once, each under the same load from a generator of its
# own; the table puts the runs side by side (add the two instances' rates for the total).
#
# Everything it starts is stopped on exit. The servers' logs stay in target/bench-ingest/.
set -euo pipefail

cd "$(dirname "$0")/.."

rotel_version=0.0.1a15
database=bench
logs=target/bench-ingest
with_rotel=""
with_cluster=""
convolog_bin=""
load_args=()
while [ $# -gt 0 ]; do
  case "$1" in
  --rotel) with_rotel=1 ;;
  --cluster) with_cluster=1 ;;
  --convolog)
    convolog_bin="$2"
    shift
    ;;
  *) load_args+=("$1") ;;
  esac
  shift
done

work=""
convolog_pid=""
second_pid=""
clickhouse_pid=""
rotel_pid=""

stop() { # PID: ask, then wait for it to go
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
}

stop_clickhouse() {
  [ -n "$clickhouse_pid" ] || return 0
  scripts/clickhouse.sh stop "$work/clickhouse"
  for _ in $(seq 1 150); do
    kill -0 "$clickhouse_pid" 2>/dev/null || break
    sleep 0.1
  done
  clickhouse_pid=""
}

cleanup() {
  local rc=$?
  set +e
  stop "$convolog_pid"
  stop "$second_pid"
  stop "$rotel_pid"
  stop_clickhouse
  [ -n "$with_cluster" ] && [ -n "$work" ] && scripts/cluster.sh stop "$work/cluster"
  if [ -n "$work" ]; then
    cp "$work"/clickhouse/log/clickhouse-server.err.log "$logs/" 2>/dev/null
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Markdown rows of TSV files (figure, value) side by side: one row per figure of the first
# file, in its order; "-" where a file has no such figure.
side_by_side() {
  awk -F'\t' '
    FNR == 1 { file++ }
    file == 1 { order[++rows] = $1 }
    { value[file, $1] = $2 }
    END {
      for (r = 1; r <= rows; r++) {
        line = "| " order[r] " |"
        for (f = 1; f <= file; f++) {
          v = ((f, order[r]) in value) ? value[f, order[r]] : "-"
          line = line " " v " |"
        }
        print line
      }
    }' "$@"
}


# A base port with the next 12 free too: ClickHouse takes 3, convolog 3, rotel 2; a cluster
# 7 and two convolog 6.
free_base_port() {
  local base port taken
  for _ in $(seq 1 50); do
    base=$((20000 + RANDOM % 12000))
    taken=""
    for port in $(seq "$base" $((base + 12))); do
      if listens "$port"; then taken=1; break; fi
    done
    [ -z "$taken" ] && { echo "$base"; return; }
  done
  echo "no free port range found" >&2
  return 1
}

answers() { # URL
  curl -fsS -o /dev/null "$1" 2>/dev/null
}

listens() { # PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_until() { # PID LOG CHECK...: until CHECK succeeds, while PID lives (60 s at most)
  local pid=$1 log=$2 deadline=$((SECONDS + 60))
  shift 2
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "no success from '$*'; the log ($log):" >&2
      tail -30 "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

load() { # OUT_FILE ARGS...: the load generator, built with the bench profile (release)
  local out=$1
  shift
  cargo bench -q --bench ingest -- --out "$out" "$@" "${load_args[@]}"
}

echo "building (release)" >&2
if [ -z "$convolog_bin" ]; then
  cargo build -q --release --bin convolog
  convolog_bin=target/release/convolog
fi
cargo bench -q --bench ingest --no-run

if [ -n "$with_rotel" ]; then
  venv=.venv-bench
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip show rotel 2>/dev/null | grep -qx "Version: $rotel_version" ||
    "$venv/bin/python" -m pip install -q "rotel==$rotel_version"
  # The package's own binary, not its Python wrapper, so the pid measured is the receiver's.
  rotel_agent=$("$venv/bin/python" -c \
    'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')
fi

mkdir -p "$logs"
work=$(mktemp -d "${TMPDIR:-/tmp}/convolog-bench.XXXXXX")
base=$(free_base_port)

if [ -n "$with_cluster" ]; then
  scripts/cluster.sh start "$work/cluster" "$base" >&2
  serve_on_cluster() { # SERVER (1 or 2): convolog on that server, its ports after the cluster's
    local first=$((base + 7 + 3 * ($1 - 1)))
    CONVOLOG_CLICKHOUSE_URL="http://127.0.0.1:$((base + 1 + 3 * ($1 - 1)))" \
    CONVOLOG_CLICKHOUSE_CLUSTER=convolog \
    CONVOLOG_CLICKHOUSE_DATABASE="$database" \
    CONVOLOG_GRPC_LISTEN="127.0.0.1:$first" \
    CONVOLOG_HTTP_LISTEN="127.0.0.1:$((first + 1))" \
    CONVOLOG_API_LISTEN="127.0.0.1:$((first + 2))" \
      "$convolog_bin" serve >"$logs/convolog-$1.log" 2>&1 &
  }
  load_on() { # SERVER OUT_FILE: the load against the convolog on that server
    local first=$((base + 7 + 3 * ($1 - 1))) pid_var
    pid_var=$([ "$1" = 1 ] && echo "$convolog_pid" || echo "$second_pid")
    load "$2" --endpoint "http://127.0.0.1:$first" --server-pid "$pid_var" \
      --clickhouse-pid "$(cat "$work/cluster/ch$1/pid")" \
      --clickhouse-url "http://127.0.0.1:$((base + 1 + 3 * ($1 - 1)))" --database "$database" \
      >/dev/null
  }
  serve_on_cluster 1
  convolog_pid=$!
  wait_until "$convolog_pid" "$logs/convolog-1.log" answers "http://127.0.0.1:$((base + 9))/readyz"
  serve_on_cluster 2
  second_pid=$!
  wait_until "$second_pid" "$logs/convolog-2.log" answers "http://127.0.0.1:$((base + 12))/readyz"
  echo "cluster: convolog (pid $convolog_pid) and convolog (pid $second_pid)" >&2
  machine="$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
  load_on 1 "$work/one.tsv"
  # The generators run side by side: each its own cargo-built binary run, no build lock held.
  load_on 1 "$work/two-a.tsv" &
  first_load=$!
  load_on 2 "$work/two-b.tsv"
  wait "$first_load"
  echo
  echo "machine: $machine"
  echo
  echo "| figure | one instance | two instances: first | second |"
  echo "|---|---|---|---|"
  side_by_side "$work/one.tsv" "$work/two-a.tsv" "$work/two-b.tsv"
  exit 0
fi

ch_port=$base
grpc_port=$((base + 3))
http_port=$((base + 4))
api_port=$((base + 5))

scripts/clickhouse.sh start "$work/clickhouse" "$ch_port"
# No pid file: another server already answered on that port, not ours to measure.
if ! clickhouse_pid=$(cat "$work/clickhouse/pid" 2>/dev/null); then
  echo "port $ch_port was taken before ClickHouse could start; run again" >&2
  exit 1
fi
clickhouse_url="http://127.0.0.1:$ch_port"
clickhouse_version=$(curl -fsS "$clickhouse_url/?query=SELECT%20version()")
curl -fsS "$clickhouse_url/" --data-binary "CREATE DATABASE $database" >/dev/null

CONVOLOG_CLICKHOUSE_URL="$clickhouse_url" \
CONVOLOG_CLICKHOUSE_DATABASE="$database" \
CONVOLOG_GRPC_LISTEN="127.0.0.1:$grpc_port" \
CONVOLOG_HTTP_LISTEN="127.0.0.1:$http_port" \
CONVOLOG_API_LISTEN="127.0.0.1:$api_port" \
  "$convolog_bin" serve >"$logs/convolog.log" 2>&1 &
convolog_pid=$!
wait_until "$convolog_pid" "$logs/convolog.log" answers "http://127.0.0.1:$api_port/readyz"

machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
machine+=" $(free -g | awk '/^Mem:/ {print $2}') GiB, ClickHouse $clickhouse_version,"
machine+=" load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"

echo "convolog serve (pid $convolog_pid), ClickHouse $clickhouse_version (pid $clickhouse_pid)" >&2
load "$work/convolog.tsv" \
  --endpoint "http://127.0.0.1:$grpc_port" --server-pid "$convolog_pid" \
  --clickhouse-pid "$clickhouse_pid" --clickhouse-url "$clickhouse_url" --database "$database" \
  --api "http://127.0.0.1:$api_port" >/dev/null

columns=("$work/convolog.tsv")
headers="| figure | convolog |"
if [ -n "$with_rotel" ]; then
  # The machine to itself: convolog and ClickHouse go first.
  stop "$convolog_pid"
  convolog_pid=""
  stop_clickhouse
  rotel_grpc=$((base + 6))
  "$rotel_agent" start --exporter blackhole --pid-file "$work/rotel.pid" \
    --otlp-grpc-endpoint "127.0.0.1:$rotel_grpc" --otlp-http-endpoint "127.0.0.1:$((base + 7))" \
    >"$logs/rotel.log" 2>&1 &
  rotel_pid=$!
  wait_until "$rotel_pid" "$logs/rotel.log" listens "$rotel_grpc"
  echo "rotel $rotel_version (pid $rotel_pid), blackhole exporter" >&2
  load "$work/rotel.tsv" --endpoint "http://127.0.0.1:$rotel_grpc" --server-pid "$rotel_pid" \
    >/dev/null
  columns+=("$work/rotel.tsv")
  headers+=" rotel (blackhole) |"
fi

echo
echo "machine: $machine"
echo
echo "$headers"
echo "|---|---|$([ -n "$with_rotel" ] && echo -n '---|')"
side_by_side "${columns[@]}"
