#!/usr/bin/env bash
# The project's one test command: the README gives it and CI runs it unchanged.
#
#   scripts/test.sh
#
# Works on a fresh Debian 12 machine as root (or a user with sudo): installs what is missing,
# starts a private ClickHouse on free ports, runs every Rust test (unit, integration,
# end-to-end), then, if tests/dashboards/ exists, loads simulated conversations through a real
# `convolog serve` and runs the dashboard queries against them; last, it builds the Debian
# package, installs it, runs the installed convolog against the same ClickHouse and purges it.
# Everything it starts or installs is stopped or removed on exit; a failure names the stage
# that failed.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

# Pinned so a new release upstream cannot break the suite overnight.
python_requirements=(
  opentelemetry-sdk==1.45.2
  opentelemetry-exporter-otlp-proto-grpc==1.45.2
  opentelemetry-exporter-otlp-proto-http==1.45.2
  pytest==9.2.0
  chdb-core==26.9.0
  openapi-spec-validator==0.9.0
  selenium==4.38.0
  openinference-semantic-conventions==0.1.42
)
venv="$repo/.venv-test"
# The real agent frameworks that tests/e2e_frameworks.rs drives, each in a venv of its own so
# their dependencies cannot disturb the tests above (about a minute to install, once).
pipecat_requirements=(
  pipecat-ai[tracing]==1.14.0
  openinference-instrumentation-pipecat==2.0.9
  opentelemetry-sdk==1.45.2
  opentelemetry-exporter-otlp-proto-http==1.45.2
)
pipecat_venv="$repo/.venv-pipecat"
livekit_requirements=(
  livekit-agents==1.8.9
  opentelemetry-sdk==1.45.2
  opentelemetry-exporter-otlp-proto-http==1.45.2
)
livekit_venv="$repo/.venv-livekit"
simulated_sessions=30
# Seconds each fuzz target runs (0 skips the stage). The targets are built without a
# sanitizer (`-s none`: in safe Rust AddressSanitizer has little to find, and it slows both
# the build and the runs), into fuzz/target, so only the first build compiles every dependency with coverage
# instrumentation; later ones rebuild convolog and the targets.
fuzz_seconds=${CONVOLOG_FUZZ_SECONDS:-10}
cargo_deb_version=3.8.0

stage_name="setup"
work=""             # temp dir: ClickHouse data, logs
clickhouse_pid=""
convolog_pid=""
packaged_pid=""       # the installed /usr/bin/convolog serve
package_installed=""  # set from dpkg -i until dpkg --purge

stage() {
  stage_name=$1
  printf '\n===== %s =====\n' "$1"
}

if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi

cleanup() {
  local rc=$?
  set +e
  if [ -n "$convolog_pid" ]; then
    kill "$convolog_pid" 2>/dev/null
    wait "$convolog_pid" 2>/dev/null
  fi
  if [ -n "$packaged_pid" ]; then
    "${sudo[@]}" kill "$packaged_pid" 2>/dev/null
    wait "$packaged_pid" 2>/dev/null
  fi
  if [ -n "$package_installed" ]; then
    echo "purging the test install of the convolog package" >&2
    "${sudo[@]}" dpkg --purge convolog >/dev/null
  fi
  if [ -n "$work" ]; then
    [ -d "$work/cluster" ] && scripts/cluster.sh stop "$work/cluster"
    scripts/clickhouse.sh stop "$work/clickhouse"
    # Wait for the server to finish shutting down before deleting its data directory.
    for _ in $(seq 1 100); do
      kill -0 "$clickhouse_pid" 2>/dev/null || break
      sleep 0.1
    done
    if [ "$rc" = 0 ]; then
      rm -rf "$work"
    else
      echo "logs kept in $work" >&2
    fi
  fi
  if [ "$rc" = 0 ]; then
    printf '\n===== all stages passed =====\n'
  else
    printf '\n===== FAILED in stage: %s (exit %s) =====\n' "$stage_name" "$rc" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
# Ctrl-C and kill still go through cleanup (via the EXIT trap).
trap 'exit 130' INT
trap 'exit 143' TERM

# apt-get install with the given packages; a fresh machine has no package lists and stale
# ones make an install fail with 404s, so update first if there are none, and retry once.
apt_install() {
  [ $# -gt 0 ] || return 0
  echo "installing with apt: $*"
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    "${sudo[@]}" apt-get update -qq
  fi
  if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null; then
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
  fi
}

# Prints a TCP port that is free now, together with the next COUNT-1 ports
# (ClickHouse takes http, http+1 and http+2).
free_port() {
  local count=${1:-1}
  python3 - "$count" <<'EOF'
import socket, sys

count = int(sys.argv[1])
for _ in range(50):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
    if base + count > 65535:
        continue
    socks = []
    try:
        for port in range(base, base + count):
            t = socket.socket()
            socks.append(t)
            t.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        for t in socks:
            t.close()
    print(base)
    sys.exit(0)
sys.exit("no free port range found")
EOF
}

# Runs one SQL statement against the test ClickHouse; prints the result.
ch() {
  curl -sS --fail-with-body "$CONVOLOG_TEST_CLICKHOUSE_URL/" --data-binary "$1"
}

# Waits until the convolog serve with process PID answers /healthz on the API PORT; on failure
# shows the end of its LOG.
wait_for_healthz() {
  local pid=$1 port=$2 log=$3
  local deadline=$((SECONDS + 60))
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "convolog (pid $pid) did not answer /healthz on port $port; its log:" >&2
      tail -40 "$log" >&2
      exit 1
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------------------------
stage "install"

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
# Debian splits venv support (ensurepip) out of python3.
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
# The cluster tests (tests/cluster.rs, scripts/cluster.sh): ZooKeeper and its Java runtime.
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v java >/dev/null || missing+=(default-jre-headless)
# The pages' browser tests (Debian's packages): Chromium driven through WebDriver, and a
# spoken recording made with espeak-ng and sox for the player.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v sox >/dev/null || missing+=(sox)
apt_install "${missing[@]}"

# python_venv DIR REQUIREMENT...: a venv in DIR with exactly these pinned packages.
python_venv() {
  local dir=$1
  shift
  # A venv whose interpreter has gone (python upgraded or moved) is rebuilt from scratch.
  if [ -d "$dir" ] && ! "$dir/bin/python" -c 'import sys' 2>/dev/null; then
    rm -rf "$dir"
  fi
  [ -d "$dir" ] || python3 -m venv "$dir"
  # Reinstall only when the pinned list changes, so a warm run needs no network.
  if [ "$(cat "$dir/.requirements" 2>/dev/null)" != "$*" ]; then
    echo "installing python packages into $dir: $*"
    "$dir/bin/python" -m pip install -q --upgrade pip
    "$dir/bin/python" -m pip install -q "$@"
    echo "$*" > "$dir/.requirements"
  fi
  echo "python venv: $dir"
}
python_venv "$venv" "${python_requirements[@]}"
python_venv "$pipecat_venv" "${pipecat_requirements[@]}"
python_venv "$livekit_venv" "${livekit_requirements[@]}"

# The JavaScript end-to-end sender (tests/e2e_js.rs) uses the OpenTelemetry JS SDK; without
# Node that test skips itself.
if command -v npm >/dev/null 2>&1; then
  (cd tests/e2e-js && npm ci --no-audit --no-fund --silent)
else
  echo "npm not found: tests/e2e_js.rs will be skipped"
fi

if cargo nextest --version >/dev/null 2>&1; then
  rust_tests=(cargo nextest run --workspace --all-targets --no-fail-fast)
else
  echo "cargo-nextest not found; using cargo test"
  rust_tests=(cargo test --workspace --all-targets --no-fail-fast)
fi

# ---------------------------------------------------------------------------------------------
stage "clickhouse"

work=$(mktemp -d "${TMPDIR:-/tmp}/convolog-test.XXXXXX")
ch_port=$(free_port 3)
scripts/clickhouse.sh start "$work/clickhouse" "$ch_port"
# No pid file means another server already answered on that port: it is not ours to use.
if ! clickhouse_pid=$(cat "$work/clickhouse/pid" 2>/dev/null); then
  echo "port $ch_port was taken by another server before ClickHouse could start; run again" >&2
  exit 1
fi
export CONVOLOG_TEST_CLICKHOUSE_URL="http://127.0.0.1:$ch_port"
export CONVOLOG_TEST_PYTHON="$venv/bin/python"
export CONVOLOG_TEST_PIPECAT_PYTHON="$pipecat_venv/bin/python"
export CONVOLOG_TEST_LIVEKIT_PYTHON="$livekit_venv/bin/python"
echo "ClickHouse $(ch 'SELECT version()') on $CONVOLOG_TEST_CLICKHOUSE_URL (data in $work/clickhouse)"

# ---------------------------------------------------------------------------------------------
stage "rust tests: ${rust_tests[*]}"

"${rust_tests[@]}"

# ---------------------------------------------------------------------------------------------
# dashboards_stage NAME CLICKHOUSE_URL [CLUSTER]: simulated conversations through a real
# `convolog serve` on that ClickHouse (a cluster's server, with CLUSTER), then the dashboard
# tests against them.
dashboards_stage() {
  local name=$1 url=$2 cluster=${3:-}
  stage "dashboards$name: load simulated conversations"

  cargo build --bin convolog --bin convolog-simulate
  db="dash_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  local on=(--data-binary)
  [ -z "$cluster" ] && curl -sS --fail-with-body "$url/" "${on[@]}" "CREATE DATABASE $db" >/dev/null
  grpc_port=$(free_port)
  http_port=$(free_port)
  api_port=$(free_port)
  CONVOLOG_CLICKHOUSE_URL="$url" \
  CONVOLOG_CLICKHOUSE_CLUSTER="$cluster" \
  CONVOLOG_CLICKHOUSE_DATABASE="$db" \
  CONVOLOG_GRPC_LISTEN="127.0.0.1:$grpc_port" \
  CONVOLOG_HTTP_LISTEN="127.0.0.1:$http_port" \
  CONVOLOG_API_LISTEN="127.0.0.1:$api_port" \
    target/debug/convolog serve >"$work/convolog$name.log" 2>&1 &
  convolog_pid=$!
  echo "convolog serve (pid $convolog_pid) on database $db, log $work/convolog$name.log"
  wait_for_healthz "$convolog_pid" "$api_port" "$work/convolog$name.log"
  # Ready once the schema is applied: ON CLUSTER statements take a while.
  for _ in $(seq 1 120); do
    curl -fsS -o /dev/null "http://127.0.0.1:$api_port/readyz" 2>/dev/null && break
    sleep 1
  done

  target/debug/convolog-simulate --endpoint "http://127.0.0.1:$grpc_port" --protocol grpc \
    --count "$simulated_sessions" --rate 0 --seed 7

  # Sessions are written asynchronously after ingest: wait for all of them, then for the
  # totals to stop changing, so the dashboard tests see finished sessions.
  deadline=$((SECONDS + 60))
  last=""
  while :; do
    totals_sql="SELECT count(), sum(span_count), sum(turn_count) FROM $db.sessions_current"
    now=$(curl -sS --fail-with-body "$url/" "${on[@]}" "$totals_sql" 2>/dev/null | tr '\t' ' ') || now=""
    count=${now%% *}
    if [ "$count" = "$simulated_sessions" ] && [ "$now" = "$last" ]; then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "expected $simulated_sessions sessions in $db.sessions_current within 60 s;" \
           "last seen: ${now:-no answer} (count, spans, turns)" >&2
      # shows ClickHouse's error, if that was the problem
      curl -sS --fail-with-body "$url/" "${on[@]}" "$totals_sql" >&2 || true
      tail -40 "$work/convolog$name.log" >&2
      exit 1
    fi
    last=$now
    sleep 1
  done
  echo "$db.sessions_current: $now (sessions, spans, turns)"

  stage "dashboards$name: pytest tests/dashboards"
  # The agreement test asks this same `convolog serve` (still running: cleanup stops it on
  # exit) for every session's transcript and compares with the dashboards' counts.
  convolog_alive() {
    kill -0 "$convolog_pid" 2>/dev/null \
      && curl -fsS -o /dev/null "http://127.0.0.1:$api_port/healthz" 2>/dev/null
  }
  if ! convolog_alive; then
    echo "convolog serve (pid $convolog_pid) is gone before the dashboard tests; its log:" >&2
    tail -40 "$work/convolog$name.log" >&2
    exit 1
  fi
  pytest_rc=0
  CONVOLOG_TEST_CLICKHOUSE_URL="$url" CONVOLOG_TEST_DATABASE="$db" \
    CONVOLOG_TEST_API_URL="http://127.0.0.1:$api_port" \
    "$venv/bin/python" -m pytest -q tests/dashboards || pytest_rc=$?
  if ! convolog_alive; then
    echo "convolog serve (pid $convolog_pid) stopped while the dashboard tests ran; its log:" >&2
    tail -40 "$work/convolog$name.log" >&2
    exit 1
  fi
  # pytest exits 5 when it collected nothing: not a failure of the code under test.
  if [ "$pytest_rc" = 5 ]; then
    echo "WARNING: tests/dashboards exists but pytest collected no tests"
  elif [ "$pytest_rc" != 0 ]; then
    exit "$pytest_rc"
  fi
}

if [ -d tests/dashboards ]; then
  dashboards_stage "" "$CONVOLOG_TEST_CLICKHOUSE_URL"
  # The same on a cluster of two shards: the dashboards read the Distributed tables, each
  # server holding part of the rows (tests/cluster.rs covers two replicas). Its convolog
  # stops before the next one starts.
  kill "$convolog_pid" 2>/dev/null
  wait "$convolog_pid" 2>/dev/null || true
  # Ports below the ephemeral range: while the cluster starts, its servers connect to each
  # other, and an outgoing connection could take a port picked from that range.
  while :; do
    cluster_base=$((20000 + RANDOM % 12000))
    taken=""
    for port in $(seq "$cluster_base" $((cluster_base + 6))); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then taken=1; fi
    done
    [ -z "$taken" ] && break
  done
  scripts/cluster.sh start "$work/cluster" "$cluster_base" --topology shards
  dashboards_stage " on a cluster" "http://127.0.0.1:$((cluster_base + 1))" convolog
  kill "$convolog_pid" 2>/dev/null
  wait "$convolog_pid" 2>/dev/null || true
  convolog_pid=""
  scripts/cluster.sh stop "$work/cluster"
else
  echo
  echo "(no tests/dashboards/: dashboard stage skipped)"
fi

# ---------------------------------------------------------------------------------------------
stage "debian package: build"

# Another run of this script on the same machine would install and purge the same package:
# one at a time.
exec 9>"${TMPDIR:-/tmp}/convolog-test-package.lock"
if ! flock -w 1800 9; then
  echo "another scripts/test.sh held the package stage's lock for 30 minutes" >&2
  exit 1
fi
status=$(dpkg-query -W -f='${Status}' convolog 2>/dev/null || true)
if [ -n "$status" ] && [ "$status" != "unknown ok not-installed" ]; then
  echo "a convolog package is already on this machine ($status); this stage would replace" \
       "and purge it. Remove it first: dpkg --purge convolog" >&2
  exit 1
fi
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version "$cargo_deb_version"
command -v systemd-analyze >/dev/null || apt_install systemd
# Packages the debug binary the tests already built, so CI compiles nothing twice; the
# package's contents and scripts are those of a release (plain `cargo deb`).
cargo build --bin convolog
deb=$(cargo deb --no-build --profile dev | tail -1)
echo "built $deb"
case "$deb" in
  */convolog_*_amd64.deb) ;;
  *) echo "expected target/debian/convolog_<version>_amd64.deb, got: $deb" >&2; exit 1 ;;
esac

stage "debian package: install"
package_installed=1
"${sudo[@]}" dpkg -i "$deb"
conffiles=$(dpkg-query -W -f='${Conffiles}' convolog)
if ! grep -q '^ /etc/convolog/convolog.toml ' <<<"$conffiles"; then
  echo "/etc/convolog/convolog.toml is not a conffile of the package: $conffiles" >&2
  exit 1
fi
for path in /usr/bin/convolog /usr/lib/systemd/system/convolog.service \
            /usr/share/convolog/dashboards/overview.json; do
  [ -e "$path" ] || { echo "the package did not install $path" >&2; exit 1; }
done
id convolog >/dev/null
"${sudo[@]}" systemd-analyze verify /usr/lib/systemd/system/convolog.service

stage "debian package: run the installed convolog"
db="pkg_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
grpc_port=$(free_port)
http_port=$(free_port)
api_port=$(free_port)
# The packaged configuration as it is, pointed at the test ClickHouse and free ports, run as
# the package's user the way the unit runs it.
packaged=(
  "${sudo[@]}" setpriv --reuid=convolog --regid=convolog --init-groups --
  env CONVOLOG_CLICKHOUSE_URL="$CONVOLOG_TEST_CLICKHOUSE_URL"
      CONVOLOG_CLICKHOUSE_DATABASE="$db"
      CONVOLOG_GRPC_LISTEN="127.0.0.1:$grpc_port"
      CONVOLOG_HTTP_LISTEN="127.0.0.1:$http_port"
      CONVOLOG_API_LISTEN="127.0.0.1:$api_port"
  /usr/bin/convolog
)
"${packaged[@]}" doctor --config /etc/convolog/convolog.toml
"${packaged[@]}" serve --config /etc/convolog/convolog.toml >"$work/packaged.log" 2>&1 &
packaged_pid=$!
wait_for_healthz "$packaged_pid" "$api_port" "$work/packaged.log"
expected=$("$venv/bin/python" tests/e2e/send_conversation.py --shape pipecat --protocol grpc \
  --endpoint "http://127.0.0.1:$grpc_port" --session-id pkg-1)
# True once the API gives back every scripted turn (it derives them shortly after storing).
transcript_complete() {
  EXPECTED="$expected" "$venv/bin/python" - "http://127.0.0.1:$api_port" <<'EOF'
import json, os, sys, urllib.request
want = json.loads(os.environ["EXPECTED"])
url = f"{sys.argv[1]}/v1/sessions/{want['session_id']}/transcript"
try:
    got = json.load(urllib.request.urlopen(url, timeout=5))
except Exception:
    sys.exit(1)
said = [turn["user_text"] for turn in got["turns"]]
sys.exit(0 if said == [turn["user_text"] for turn in want["turns"]] else 1)
EOF
}
deadline=$((SECONDS + 60))
until transcript_complete; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "the installed convolog did not give back conversation pkg-1 within 60 s;" \
         "what it answers:" >&2
    curl -sS "http://127.0.0.1:$api_port/v1/sessions/pkg-1/transcript" >&2 || true
    tail -40 "$work/packaged.log" >&2
    exit 1
  fi
  sleep 0.5
done
echo "the installed convolog stored conversation pkg-1 and gave back its transcript"

stage "debian package: purge"
"${sudo[@]}" kill "$packaged_pid"
wait "$packaged_pid" || true
packaged_pid=""
"${sudo[@]}" dpkg --purge convolog
package_installed=""
for path in /usr/bin/convolog /etc/convolog /usr/lib/systemd/system/convolog.service /var/lib/convolog; do
  if [ -e "$path" ]; then
    echo "$path is still there after dpkg --purge" >&2
    exit 1
  fi
done

# ---------------------------------------------------------------------------------------------
if [ "$fuzz_seconds" -gt 0 ]; then
  stage "fuzz: each target for ${fuzz_seconds}s"

  rustup run nightly cargo --version >/dev/null 2>&1 \
    || rustup toolchain install nightly --profile minimal
  cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz
  cargo +nightly fuzz build -O -s none
  for target in $(cargo +nightly fuzz list); do
    # New inputs go to a scratch corpus; the small seed corpus in the repo stays as it is.
    mkdir -p "$work/corpus/$target"
    log="$work/fuzz-$target.log"
    if ! cargo +nightly fuzz run -O -s none "$target" "$work/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$fuzz_seconds" -print_final_stats=1 >"$log" 2>&1; then
      echo "fuzz target $target failed (the crashing input is under fuzz/artifacts/$target):" >&2
      tail -60 "$log" >&2
      exit 1
    fi
    echo "$target: $(grep -E '^stat::number_of_executed_units' "$log" || echo 'no stats')"
  done
fi
stage_name="done"
