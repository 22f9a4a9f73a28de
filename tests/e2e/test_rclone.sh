#!/usr/bin/env bash
# End-to-end checks for Cairn with rclone (Debian's package; run.sh installs
# it with apt-get when it is missing).
#
# Usage: test_rclone.sh ENDPOINT
#   with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment and
#   `rclone` and `python3` on PATH.
#
# The remote "cairn:" is configured only through RCLONE_CONFIG_CAIRN_*
# environment variables, as a user would for MinIO (provider Minio, the
# endpoint, the keys, path-style addressing); RCLONE_CONFIG points at an
# empty file in a temporary directory, never ~/.config/rclone. Chunk sizes are
# lowered (--s3-upload-cutoff 5M --s3-chunk-size 5M, and --s3-copy-cutoff 5M
# for the server-side multipart copy) so that a 12 MiB file goes multipart;
# retries are off so that nothing hides a failure. Only ENDPOINT is contacted.
#
# Ends with "rclone: N passed, N failed"; prints "op OPERATION ok|fail" lines.
set -euo pipefail

ENDPOINT=${1:?usage: test_rclone.sh ENDPOINT}
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID must be set}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY must be set}"

CLIENT=rclone
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-rclone.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_loopback "$ENDPOINT"

# rclone's S3 backend reads AWS_CA_BUNDLE and fails on it with a custom endpoint
unset AWS_CA_BUNDLE AWS_PROFILE AWS_SESSION_TOKEN 2>/dev/null || true
export AWS_CONFIG_FILE="$WORK/aws-config" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
export RCLONE_CONFIG="$WORK/rclone.conf"
: >"$RCLONE_CONFIG"
export RCLONE_CACHE_DIR="$WORK/cache"
export RCLONE_CONFIG_CAIRN_TYPE=s3
export RCLONE_CONFIG_CAIRN_PROVIDER=Minio
export RCLONE_CONFIG_CAIRN_ENDPOINT="$ENDPOINT"
export RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
export RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
export RCLONE_CONFIG_CAIRN_REGION=us-east-1
export RCLONE_CONFIG_CAIRN_FORCE_PATH_STYLE=true

RUN_ID=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:8])')
B="e2e-rclone-$RUN_ID"
MIB=$((1024 * 1024))
MP_SIZE=$((12 * MIB + 5))   # 3 parts of 5 MiB

RC=(rclone --retries 1 --low-level-retries 1 --contimeout 5s --timeout 60s --s3-upload-cutoff 5M --s3-chunk-size 5M)
rc() { local out=$1; shift; run "$out" "${RC[@]}" "$@"; }
rc_fails() { local out=$1; shift; run_fails "$out" "${RC[@]}" "$@"; }
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

mkdir -p "$WORK/up/tree/sub" "$WORK/down" "$WORK/sync"
make_file "$WORK/up/mp.bin" "$MP_SIZE" rclone-mp
make_file "$WORK/up/single.bin" $((3 * MIB + 1)) rclone-single
printf 'hello from rclone\n' >"$WORK/up/small.txt"
printf 'one\n' >"$WORK/up/tree/one.txt"
printf 'two\n' >"$WORK/up/tree/two.txt"
make_file "$WORK/up/tree/sub/three.bin" 200000 rclone-three

rc_mkdir() {
  rc mkdir mkdir "cairn:$B" || return 1
  rc lsd lsd cairn: || return 1
  expect_contains "$WORK/lsd.out" " $B"
}

rc_upload_single() {
  rc put_small copyto "$WORK/up/small.txt" "cairn:$B/small.txt" || return 1
  rc put_single copyto "$WORK/up/single.bin" "cairn:$B/single.bin" || return 1
  # a single PUT: the ETag is the MD5, which rclone reports as the md5 hash
  rc md5_single md5sum "cairn:$B/single.bin" || return 1
  expect_eq "md5sum of single.bin" "$(cut -d' ' -f1 "$WORK/md5_single.out")" "$(md5 "$WORK/up/single.bin")"
}

rc_upload_multipart() {
  rc put_mp copyto "$WORK/up/mp.bin" "cairn:$B/dir/mp.bin" || return 1
  # rclone keeps the whole file's MD5 in metadata for multipart uploads and
  # checks sizes and hashes itself; ask the object's ETag through lsjson too
  rc ls_mp lsjson --hash --stat "cairn:$B/dir/mp.bin" || return 1
  expect_eq "size of the multipart upload" "$(json "$WORK/ls_mp.out" 'd["Size"]')" "$MP_SIZE" || return 1
  expect_eq "md5 of the multipart upload" "$(json "$WORK/ls_mp.out" 'd["Hashes"]["md5"]')" "$(md5 "$WORK/up/mp.bin")" || return 1
  rc put_tree copy "$WORK/up/tree" "cairn:$B/tree" || return 1
  rc check_tree check "$WORK/up/tree" "cairn:$B/tree" || return 1
  expect_contains "$WORK/check_tree.err" "0 differences found"
}

rc_list() {
  rc lsf lsf "cairn:$B" || return 1
  expect_eq "top level" "$(sort "$WORK/lsf.out" | tr '\n' ' ')" "dir/ single.bin small.txt tree/ " || return 1
  rc lsf_rec lsf -R --files-only "cairn:$B" || return 1
  expect_eq "recursive listing" "$(sort "$WORK/lsf_rec.out" | tr '\n' ' ')" \
    "dir/mp.bin single.bin small.txt tree/one.txt tree/sub/three.bin tree/two.txt " || return 1
  rc lsl lsl "cairn:$B/tree" || return 1
  expect_contains "$WORK/lsl.out" "   200000 " || return 1
  rc size size "cairn:$B" || return 1
  expect_contains "$WORK/size.out" "Total objects: 6"
}

rc_download() {
  rc get_mp copyto "cairn:$B/dir/mp.bin" "$WORK/down/mp.bin" || return 1
  expect_same "$WORK/up/mp.bin" "$WORK/down/mp.bin" || return 1
  # multi-threaded download: ranged GETs
  rc get_mt copyto --multi-thread-cutoff 5M --multi-thread-streams 3 "cairn:$B/single.bin" "$WORK/down/single.bin" || return 1
  expect_same "$WORK/up/single.bin" "$WORK/down/single.bin" || return 1
  rc cat_small cat "cairn:$B/small.txt" || return 1
  expect_same "$WORK/up/small.txt" "$WORK/cat_small.out" || return 1
  rc cat_range cat --offset 6 --count 4 "cairn:$B/small.txt" || return 1
  expect_eq "cat --offset 6 --count 4" "$(cat "$WORK/cat_range.out")" "from" || return 1
  rc get_tree copy "cairn:$B/tree" "$WORK/down/tree" || return 1
  diff -r "$WORK/up/tree" "$WORK/down/tree" >&2
}

rc_server_side_copy() {
  # below --s3-copy-cutoff: CopyObject; above it: a multipart upload of
  # UploadPartCopy parts
  rc copy_small copyto "cairn:$B/small.txt" "cairn:$B/copies/small.txt" || return 1
  rc copy_mp copyto --s3-copy-cutoff 5M "cairn:$B/dir/mp.bin" "cairn:$B/copies/mp.bin" || return 1
  rc get_copy copyto "cairn:$B/copies/mp.bin" "$WORK/down/copy-mp.bin" || return 1
  expect_same "$WORK/up/mp.bin" "$WORK/down/copy-mp.bin" || return 1
  rc cat_copy cat "cairn:$B/copies/small.txt" || return 1
  expect_same "$WORK/up/small.txt" "$WORK/cat_copy.out"
}

rc_move() {
  rc moveto moveto "cairn:$B/copies/small.txt" "cairn:$B/moved/small.txt" || return 1
  rc lsf_mv lsf -R --files-only "cairn:$B" || return 1
  expect_contains "$WORK/lsf_mv.out" "moved/small.txt" || return 1
  expect_not_contains "$WORK/lsf_mv.out" "copies/small.txt" || return 1
  rc cat_mv cat "cairn:$B/moved/small.txt" || return 1
  expect_same "$WORK/up/small.txt" "$WORK/cat_mv.out"
}

rc_sync() {
  cp -r "$WORK/up/tree" "$WORK/sync/src"
  rc sync1 sync "$WORK/sync/src" "cairn:$B/synced" || return 1
  printf 'one, changed\n' >"$WORK/sync/src/one.txt"
  printf 'four\n' >"$WORK/sync/src/four.txt"
  rm "$WORK/sync/src/two.txt"
  rc sync2 sync -v "$WORK/sync/src" "cairn:$B/synced" || return 1
  expect_contains "$WORK/sync2.err" "one.txt: Copied (replaced existing)" || return 1
  expect_contains "$WORK/sync2.err" "four.txt: Copied (new)" || return 1
  expect_contains "$WORK/sync2.err" "two.txt: Deleted" || return 1
  expect_not_contains "$WORK/sync2.err" "three.bin: Copied" || return 1
  rc sync_down sync "cairn:$B/synced" "$WORK/sync/dst" || return 1
  diff -r "$WORK/sync/src" "$WORK/sync/dst" >&2 || return 1
  rc check_sync check "$WORK/sync/src" "cairn:$B/synced" || return 1
  expect_contains "$WORK/check_sync.err" "0 differences found"
}

rc_delete() {
  rc deletefile deletefile "cairn:$B/small.txt" || return 1
  # (rclone cat or copyto of a missing file does nothing and succeeds: list)
  rc lsf_gone lsf --files-only "cairn:$B" || return 1
  ! grep -qx "small.txt" "$WORK/lsf_gone.out" || fail_msg "small.txt is still listed after deletefile" || return 1
  rc delete_dir delete "cairn:$B/tree" || return 1
  rc lsf_del lsf -R --files-only "cairn:$B" || return 1
  expect_not_contains "$WORK/lsf_del.out" "tree/" || return 1
  expect_contains "$WORK/lsf_del.out" "dir/mp.bin"
}

rc_purge() {
  # deletes every object, then the bucket
  rc purge purge "cairn:$B" || return 1
  rc lsd_after lsd cairn: || return 1
  expect_not_contains "$WORK/lsd_after.out" " $B"
}

rc_errors() {
  rc_fails cat_missing cat "cairn:$B-missing/key" || return 1
  rc_fails ls_missing lsf "cairn:$B-missing" || return 1
  expect_contains "$WORK/ls_missing.err" "directory not found"
}

echo "$(rclone version 2>/dev/null | head -n1) against $ENDPOINT"
step rc_mkdir "CreateBucket ListBuckets"
step rc_upload_single "PutObject HeadObject"
step rc_upload_multipart "CreateMultipartUpload UploadPart CompleteMultipartUpload"
step rc_list "ListObjectsV2"
step rc_download "GetObject GetObject[range]"
step rc_server_side_copy "CopyObject UploadPartCopy"
step rc_move "CopyObject DeleteObject"
step rc_sync "ListObjectsV2 PutObject GetObject DeleteObject"
step rc_delete "DeleteObject"
step rc_purge "DeleteObject DeleteBucket GetBucketVersioning"
step rc_errors ""
if ((FAILED > 0)); then
  timeout 60 "${RC[@]}" purge "cairn:$B" >/dev/null 2>&1 || true
fi
finish
