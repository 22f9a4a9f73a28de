#!/usr/bin/env bash
# End-to-end checks of `cairn bench` against any S3 server: run.sh points it
# at Cairn and at SeaweedFS (scripts/seaweedfs), so that the load generator
# is known to work on a server other than our own. What bench reports is
# checked against what s5cmd (a third-party client) then finds on the server.
#
# Usage: test_bench.sh ENDPOINT [NAME]
#   with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment and
#   CAIRN_BIN (the cairn binary), `s5cmd` and `python3` on PATH.
#
# Ends with "NAME: N passed, N failed" (NAME defaults to bench).
set -euo pipefail

ENDPOINT=${1:?usage: test_bench.sh ENDPOINT [NAME]}
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID must be set}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY must be set}"
: "${CAIRN_BIN:?CAIRN_BIN must be set}"

CLIENT=${2:-bench}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_loopback "$ENDPOINT"

isolate_aws_config

RUN_ID=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:8])')
B="e2e-bench-$RUN_ID"
S5=(s5cmd --endpoint-url "$ENDPOINT" --retry-count 0)

# bench OUT EXPECTED_EXIT ARGS...: cairn bench --json, exit code checked
bench() {
  local out=$1 want=$2 rc=0
  shift 2
  timeout "$CMD_TIMEOUT" "$CAIRN_BIN" bench "$@" --endpoint "$ENDPOINT" --bucket "$B" --json \
    >"$WORK/$out.json" 2>"$WORK/$out.err" || rc=$?
  if ((rc != want)); then
    fail_msg "cairn bench $* exited $rc, expected $want:"
    tail -n 20 "$WORK/$out.err" | sed 's/^/      | /' >&2
    return 1
  fi
}

# field OUT PHASE EXPR: EXPR (Python) over the phase dict `p` of OUT's result
field() {
  python3 - "$WORK/$1.json" "$2" "$3" <<'EOF'
import json, sys
result = json.load(open(sys.argv[1]))
p = next(x for x in result["phases"] if x["name"] == sys.argv[2])
print(eval(sys.argv[3]))
EOF
}

# s5_objects PREFIX: "COUNT TOTAL_BYTES" of the objects under PREFIX, by s5cmd
s5_objects() {
  "${S5[@]}" --json ls "s3://$B/$1*" 2>/dev/null |
    python3 -c 'import json,sys; rows=[json.loads(l) for l in sys.stdin if l.strip()]; print(len(rows), sum(r.get("size",0) for r in rows))'
}

check_put_payloads() {
  local n=0 variant failed=0
  for variant in "--payload signed" "--payload unsigned" "--payload signed --content-md5" \
    "--payload unsigned --content-md5 --checksum crc32c" "--payload unsigned --checksum crc32"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    bench "put$n" 0 put --count 8 --size 1KiB-3MiB -c 4 --no-cleanup --prefix "put$n/" $variant || return 1
    expect_eq "put$n ops" "$(field "put$n" put 'p["ops"]')" 8 || failed=1
    expect_eq "put$n errors" "$(field "put$n" put 'p["errors"]')" 0 || failed=1
    # s5cmd finds exactly what bench says it wrote.
    expect_eq "put$n objects" "$(s5_objects "put$n/")" "8 $(field "put$n" put 'p["bytes"]')" || failed=1
  done
  return "$failed"
}

check_get_verify() {
  bench get 0 get --objects 10 --count 30 --size 1KiB-2MiB -c 4 --verify --prefix get/ || return 1
  expect_eq "get ops" "$(field get get 'p["ops"]')" 30 &&
    expect_eq "get errors" "$(field get get 'p["errors"]')" 0 &&
    expect_eq "get bytes" "$(field get get 'p["bytes"]')" "$(field get prepare '3 * p["bytes"]')" &&
    expect_eq "cleaned up" "$(s5_objects get/)" "0 0"
}

check_list_and_delete() {
  bench list 0 list --objects 1200 --count 4 -c 1 --size 1 --prefix list/ || return 1
  expect_eq "keys listed" "$(field list list 'p["by_op"]["list"]["keys"]')" 2400 || return 1
  bench dirs 0 list --objects 200 --dirs 20 --delimiter / --count 1 -c 1 --size 1 --prefix dirs/ || return 1
  expect_eq "sub-prefixes listed" "$(field dirs list 'p["by_op"]["list"]["keys"]')" 20 || return 1
  bench delete 0 delete --objects 30 -c 4 --size 10 --no-cleanup --prefix del/ || return 1
  expect_eq "deleted" "$(field delete delete 'p["ops"]')" 30 &&
    expect_eq "none left" "$(s5_objects del/)" "0 0"
}

check_multipart_and_mixed() {
  bench mp 0 multipart --count 2 --size 11MiB --part-size 5MiB -c 2 --no-cleanup --prefix mp/ || return 1
  expect_eq "multipart objects" "$(s5_objects mp/)" "2 $((2 * 11 * 1024 * 1024))" || return 1
  "${S5[@]}" --json ls "s3://$B/mp/*" >"$WORK/mp.ls" 2>&1
  expect_contains "$WORK/mp.ls" '-3' || return 1
  bench mixed 0 mixed --objects 20 --count 200 -c 4 --size 4KiB --prefix mixed/ || return 1
  expect_eq "mixed ops" "$(field mixed mixed 'sum(s["ops"] + s["errors"] for s in p["by_op"].values())')" 200 &&
    expect_eq "mixed errors" "$(field mixed mixed 'p["errors"]')" 0
}

check_errors_by_code() {
  bench missing 1 get --skip-prepare --objects 3 --count 6 -c 2 --prefix nothing/ || return 1
  expect_eq "NoSuchKey counted" "$(field missing get 'p["by_op"]["get"]["errors_by_code"]')" "{'NoSuchKey': 6}"
}

step check_put_payloads "PutObject"
step check_get_verify "GetObject"
step check_list_and_delete "ListObjectsV2 DeleteObject"
step check_multipart_and_mixed "CreateMultipartUpload UploadPart CompleteMultipartUpload"
step check_errors_by_code "GetObject"

# Everything the checks kept, then the bucket.
"${S5[@]}" rm "s3://$B/*" >/dev/null 2>&1 || true
"${S5[@]}" rb "s3://$B" >/dev/null 2>&1 || true
finish
