#!/usr/bin/env bash
# End-to-end checks for Cairn with s3cmd (PyPI `s3cmd`, pinned in
# tests/e2e/requirements.txt).
#
# Usage: test_s3cmd.sh ENDPOINT
#   with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment and
#   `s3cmd` and `python3` on PATH. run.sh sets all this up.
#
# s3cmd reads a config file written to a temporary directory (-c), never
# ~/.s3cfg: host_base and host_bucket both 127.0.0.1:PORT (path-style: no DNS
# for virtual hosts), use_https False, SigV4 (signature_v2 False), region
# us-east-1, and small multipart chunks (5 MiB, also for server-side copies)
# so that a 12 MiB file goes multipart. Only ENDPOINT is contacted.
#
# Ends with "s3cmd: N passed, N failed"; prints "op OPERATION ok|fail" lines.
set -euo pipefail

ENDPOINT=${1:?usage: test_s3cmd.sh ENDPOINT}
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID must be set}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY must be set}"

CLIENT=s3cmd
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-s3cmd.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_loopback "$ENDPOINT"
unset AWS_CA_BUNDLE 2>/dev/null || true

HOSTPORT=${ENDPOINT#http://}
cat >"$WORK/s3cfg" <<EOF
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = $HOSTPORT
host_bucket = $HOSTPORT
use_https = False
signature_v2 = False
bucket_location = us-east-1
multipart_chunk_size_mb = 5
multipart_copy_chunk_size_mb = 5
socket_timeout = 60
max_retries = 1
progress_meter = False
EOF

RUN_ID=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:8])')
B="e2e-s3cmd-$RUN_ID"
MIB=$((1024 * 1024))
MP_SIZE=$((12 * MIB + 5))   # 3 parts of 5 MiB

S3C=(s3cmd -c "$WORK/s3cfg" --no-progress)
sc() { local out=$1; shift; run "$out" "${S3C[@]}" "$@"; }
sc_fails() { local out=$1; shift; run_fails "$out" "${S3C[@]}" "$@"; }

mkdir -p "$WORK/up/tree/sub" "$WORK/down" "$WORK/sync"
make_file "$WORK/up/mp.bin" "$MP_SIZE" s3cmd-mp
make_file "$WORK/up/single.bin" $((3 * MIB + 1)) s3cmd-single
printf 'hello from s3cmd\n' >"$WORK/up/small.txt"
printf 'one\n' >"$WORK/up/tree/one.txt"
printf 'two\n' >"$WORK/up/tree/two.txt"
make_file "$WORK/up/tree/sub/three.bin" 200000 s3cmd-three

# etag_of KEY: the ETag column of `s3cmd ls -l` for s3://$B/KEY
# (date time size etag storage-class uri; `ls --list-md5` would show the MD5
# s3cmd keeps in its own metadata instead of a multipart ETag)
etag_of() {
  timeout "$CMD_TIMEOUT" "${S3C[@]}" ls -l "s3://$B/$1" 2>/dev/null | awk -v k="s3://$B/$1" '$NF == k {print $(NF-2)}'
}

s3c_mb() {
  sc mb mb "s3://$B" || return 1
  expect_contains "$WORK/mb.out" "Bucket 's3://$B/' created" || return 1
  sc ls_buckets ls || return 1
  expect_contains "$WORK/ls_buckets.out" "s3://$B"
}

s3c_put_single() {
  sc put_small put "$WORK/up/small.txt" "s3://$B/small.txt" || return 1
  sc put_single put --mime-type=text/x-e2e --add-header=x-amz-meta-color:blue "$WORK/up/single.bin" "s3://$B/single.bin" || return 1
  expect_eq "ETag of single.bin" "$(etag_of single.bin)" "$(md5 "$WORK/up/single.bin")" || return 1
  sc info_single info "s3://$B/single.bin" || return 1
  expect_contains "$WORK/info_single.out" "File size: $((3 * MIB + 1))" || return 1
  expect_contains "$WORK/info_single.out" "MIME type: text/x-e2e" || return 1
  expect_contains "$WORK/info_single.out" "MD5 sum:   $(md5 "$WORK/up/single.bin")" || return 1
  expect_contains "$WORK/info_single.out" "x-amz-meta-color: blue"
}

s3c_put_multipart() {
  sc put_mp put "$WORK/up/mp.bin" "s3://$B/dir/mp.bin" || return 1
  expect_eq "ETag of the multipart upload" "$(etag_of dir/mp.bin)" "$(multipart_etag "$WORK/up/mp.bin" $((5 * MIB)))" || return 1
  # streamed from stdin, length unknown: multipart as well
  timeout "$CMD_TIMEOUT" "${S3C[@]}" put - "s3://$B/streamed.bin" <"$WORK/up/mp.bin" >"$WORK/put_stdin.out" 2>"$WORK/put_stdin.err" ||
    { fail_msg "s3cmd put - failed:"; sed 's/^/      | /' "$WORK/put_stdin.err" >&2; return 1; }
  expect_eq "ETag of the stdin upload" "$(etag_of streamed.bin)" "$(multipart_etag "$WORK/up/mp.bin" $((5 * MIB)))" || return 1
  sc put_tree put --recursive "$WORK/up/tree/" "s3://$B/tree/" || return 1
  expect_eq "files uploaded from the tree" "$(grep -c '^upload:' "$WORK/put_tree.out")" 3
}

s3c_interrupted_upload() {
  # an upload interrupted after its first part stays listed; its parts can be
  # listed and the upload aborted (s3cmd multipart / listmp / abortmp)
  local fifo="$WORK/slow.fifo" pid writer upload_id="" i
  mkfifo "$fifo"
  # 6 MiB, then a stall: s3cmd sends part 1 (5 MiB) and waits for more
  ( head -c $((6 * MIB)) "$WORK/up/mp.bin"; exec sleep 60 ) >"$fifo" &
  writer=$!
  "${S3C[@]}" put - "s3://$B/interrupted.bin" <"$fifo" >"$WORK/put_slow.out" 2>&1 &
  pid=$!
  for ((i = 0; i < 40; i++)); do
    timeout 30 "${S3C[@]}" multipart "s3://$B" >"$WORK/mp_list.out" 2>&1 || true
    upload_id=$(awk -v k="s3://$B/interrupted.bin" '$2 == k {print $3}' "$WORK/mp_list.out")
    if [[ -n "$upload_id" ]] && timeout 30 "${S3C[@]}" listmp "s3://$B/interrupted.bin" "$upload_id" >"$WORK/listmp.out" 2>&1 &&
      grep -q '[0-9a-f]\{32\}' "$WORK/listmp.out"; then
      break
    fi
    sleep 0.2
  done
  # the interruption: s3cmd is killed before it sends more
  kill -KILL "$pid" 2>/dev/null || true
  kill -KILL "$writer" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  wait "$writer" 2>/dev/null || true
  [[ -n "$upload_id" ]] || fail_msg "the interrupted upload is not listed by 's3cmd multipart':" ||
    { sed 's/^/      | /' "$WORK/mp_list.out" "$WORK/put_slow.out" >&2; return 1; }
  # listmp: one line per uploaded part: LastModified PartNumber ETag Size
  expect_contains "$WORK/listmp.out" "$(head -c $((5 * MIB)) "$WORK/up/mp.bin" | md5sum | cut -d' ' -f1)" || return 1
  sc abortmp abortmp "s3://$B/interrupted.bin" "$upload_id" || return 1
  sc mp_after multipart "s3://$B" || return 1
  expect_not_contains "$WORK/mp_after.out" "$upload_id" || return 1
  sc_fails info_interrupted info "s3://$B/interrupted.bin"
}

s3c_list() {
  sc ls_top ls "s3://$B" || return 1
  expect_contains "$WORK/ls_top.out" "DIR  s3://$B/dir/" || return 1
  expect_contains "$WORK/ls_top.out" "s3://$B/small.txt" || return 1
  expect_not_contains "$WORK/ls_top.out" "mp.bin" || return 1
  sc ls_rec ls --recursive "s3://$B" || return 1
  local want
  want=$(printf '%s\n' "$MP_SIZE s3://$B/dir/mp.bin" "$((3 * MIB + 1)) s3://$B/single.bin" \
    "$(stat -c %s "$WORK/up/small.txt") s3://$B/small.txt" "$MP_SIZE s3://$B/streamed.bin" \
    "4 s3://$B/tree/one.txt" "200000 s3://$B/tree/sub/three.bin" "4 s3://$B/tree/two.txt" | sort)
  expect_eq "recursive listing (size, key)" "$(awk '{print $3, $4}' "$WORK/ls_rec.out" | sort)" "$want" || return 1
  sc la la || return 1
  expect_contains "$WORK/la.out" "s3://$B/small.txt" || return 1
  sc du du "s3://$B" || return 1
  expect_contains "$WORK/du.out" "7 objects"
}

s3c_get() {
  sc get_mp get "s3://$B/dir/mp.bin" "$WORK/down/mp.bin" || return 1
  expect_same "$WORK/up/mp.bin" "$WORK/down/mp.bin" || return 1
  sc get_small get "s3://$B/small.txt" "$WORK/down/small.txt" || return 1
  expect_same "$WORK/up/small.txt" "$WORK/down/small.txt" || return 1
  sc get_stdout get "s3://$B/single.bin" - || return 1
  expect_same "$WORK/up/single.bin" "$WORK/get_stdout.out" || return 1
  mkdir -p "$WORK/down/tree"
  sc get_tree get --recursive "s3://$B/tree/" "$WORK/down/tree/" || return 1
  diff -r "$WORK/up/tree" "$WORK/down/tree" >&2
}

s3c_info() {
  sc info_obj info "s3://$B/small.txt" || return 1
  expect_contains "$WORK/info_obj.out" "MD5 sum:   $(md5 "$WORK/up/small.txt")" || return 1
  expect_contains "$WORK/info_obj.out" "FULL_CONTROL" || return 1
  sc info_bucket info "s3://$B" || return 1
  expect_contains "$WORK/info_bucket.out" "Location:  us-east-1" || return 1
  expect_contains "$WORK/info_bucket.out" "FULL_CONTROL"
}

s3c_copy() {
  # server-side: CopyObject below 5 MiB, a multipart copy (UploadPartCopy) above
  sc cp_small cp "s3://$B/small.txt" "s3://$B/copies/small.txt" || return 1
  sc cp_mp cp "s3://$B/dir/mp.bin" "s3://$B/copies/mp.bin" || return 1
  sc get_copy get "s3://$B/copies/mp.bin" "$WORK/down/copy-mp.bin" || return 1
  expect_same "$WORK/up/mp.bin" "$WORK/down/copy-mp.bin" || return 1
  sc get_copy_small get "s3://$B/copies/small.txt" - || return 1
  expect_same "$WORK/up/small.txt" "$WORK/get_copy_small.out"
}

s3c_mv() {
  sc mv mv "s3://$B/copies/small.txt" "s3://$B/moved/small.txt" || return 1
  sc ls_mv ls --recursive "s3://$B" || return 1
  expect_contains "$WORK/ls_mv.out" "s3://$B/moved/small.txt" || return 1
  expect_not_contains "$WORK/ls_mv.out" "s3://$B/copies/small.txt" || return 1
  sc get_mv get "s3://$B/moved/small.txt" - || return 1
  expect_same "$WORK/up/small.txt" "$WORK/get_mv.out"
}

s3c_tagging() {
  sc settag settagging "s3://$B/small.txt" "project=cairn&stage=e2e" || return 1
  sc gettag gettagging "s3://$B/small.txt" || return 1
  expect_contains "$WORK/gettag.out" "project:	cairn" || return 1
  expect_contains "$WORK/gettag.out" "stage:	e2e" || return 1
  sc deltag deltagging "s3://$B/small.txt" || return 1
  sc gettag2 gettagging "s3://$B/small.txt" || return 1
  expect_not_contains "$WORK/gettag2.out" "project"
}

s3c_sync() {
  cp -r "$WORK/up/tree" "$WORK/sync/src"
  sc sync1 sync "$WORK/sync/src/" "s3://$B/synced/" || return 1
  expect_eq "files uploaded by the first sync" "$(grep -c '^upload:' "$WORK/sync1.out")" 3 || return 1
  printf 'one, changed\n' >"$WORK/sync/src/one.txt"
  printf 'four\n' >"$WORK/sync/src/four.txt"
  rm "$WORK/sync/src/two.txt"
  sc sync2 sync --delete-removed "$WORK/sync/src/" "s3://$B/synced/" || return 1
  expect_contains "$WORK/sync2.out" "-> 's3://$B/synced/one.txt'" || return 1
  expect_contains "$WORK/sync2.out" "-> 's3://$B/synced/four.txt'" || return 1
  expect_contains "$WORK/sync2.out" "delete: 's3://$B/synced/two.txt'" || return 1
  expect_not_contains "$WORK/sync2.out" "three.bin" || return 1
  sc sync_down sync "s3://$B/synced/" "$WORK/sync/dst/" || return 1
  diff -r "$WORK/sync/src" "$WORK/sync/dst" >&2
}

s3c_del() {
  sc del_one del "s3://$B/small.txt" || return 1
  expect_contains "$WORK/del_one.out" "delete: 's3://$B/small.txt'" || return 1
  sc_fails info_gone info "s3://$B/small.txt" || return 1
  sc del_rec del --recursive --force "s3://$B" || return 1
  sc ls_empty ls --recursive "s3://$B" || return 1
  expect_eq "listing after del --recursive" "$(cat "$WORK/ls_empty.out")" ""
}

s3c_rb() {
  sc rb rb "s3://$B" || return 1
  expect_contains "$WORK/rb.out" "Bucket 's3://$B/' removed" || return 1
  sc ls_after ls || return 1
  expect_not_contains "$WORK/ls_after.out" "s3://$B"
}

s3c_errors() {
  sc_fails get_missing get "s3://$B-missing/key" "$WORK/down/none" || return 1
  expect_contains "$WORK/get_missing.err" "does not exist" || return 1
  sc_fails mb_bad mb "s3://bad_bucket_name" || return 1
  expect_contains "$WORK/mb_bad.err" "InvalidBucketName"
}

echo "$(s3cmd --version 2>&1) against $ENDPOINT"
step s3c_mb "CreateBucket ListBuckets"
step s3c_put_single "PutObject HeadObject"
step s3c_put_multipart "CreateMultipartUpload UploadPart CompleteMultipartUpload"
step s3c_interrupted_upload "ListMultipartUploads ListParts AbortMultipartUpload"
step s3c_list "ListObjects ListBuckets"
step s3c_get "GetObject"
step s3c_info "HeadObject GetObjectAcl GetBucketLocation GetBucketAcl GetBucketVersioning GetBucketCors GetBucketPolicy GetBucketLifecycleConfiguration"
step s3c_copy "CopyObject UploadPartCopy PutObjectAcl"
step s3c_mv "CopyObject DeleteObject"
step s3c_tagging "PutObjectTagging GetObjectTagging DeleteObjectTagging"
step s3c_sync "ListObjects PutObject GetObject DeleteObject"
step s3c_del "DeleteObject DeleteObjects"
step s3c_rb "DeleteBucket"
step s3c_errors ""
if ((FAILED > 0)); then
  timeout 60 "${S3C[@]}" del --recursive --force "s3://$B" >/dev/null 2>&1 || true
  timeout 30 "${S3C[@]}" rb "s3://$B" >/dev/null 2>&1 || true
fi
finish
