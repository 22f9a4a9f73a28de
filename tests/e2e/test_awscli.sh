#!/usr/bin/env bash
# End-to-end checks for Cairn with the AWS CLI (v1, from tests/e2e/requirements.txt).
#
# Usage: test_awscli.sh ENDPOINT
#   with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment, and
#   `aws` plus a `python3` (used to parse JSON) on PATH. run.sh sets all this up.
#
# The CLI runs with its defaults (multipart threshold and part size 8 MiB),
# except for path-style addressing (there is no DNS for virtual hosts on
# 127.0.0.1) and no retries (a retry would hide a failure). It uses its own
# temporary config files, never ~/.aws. Only ENDPOINT (127.0.0.1) is contacted.
#
# Every check runs even if an earlier one failed; each prints
# "op OPERATION ok|fail" lines for the S3 operations it is about, and the
# script ends with "awscli: N passed, N failed" (non-zero exit on failure).
set -euo pipefail

ENDPOINT=${1:?usage: test_awscli.sh ENDPOINT}
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID must be set}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY must be set}"

CLIENT=awscli
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-awscli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_loopback "$ENDPOINT"

export AWS_CONFIG_FILE="$WORK/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 \
  AWS_REQUEST_CHECKSUM_CALCULATION AWS_RESPONSE_CHECKSUM_VALIDATION AWS_CA_BUNDLE 2>/dev/null || true
aws configure set default.region us-east-1
aws configure set default.s3.addressing_style path
aws configure set default.s3.signature_version s3v4
aws configure set default.retry_mode standard
aws configure set default.max_attempts 1

RUN_ID=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:8])')
B1="e2e-cli-s3-$RUN_ID"
B2="e2e-cli-api-$RUN_ID"
MIB=$((1024 * 1024))
BIG_SIZE=$((100 * MIB))   # 13 parts of the CLI's default 8 MiB

AWS=(aws --endpoint-url "$ENDPOINT" --cli-connect-timeout 5 --cli-read-timeout 60)
# run_aws OUT ARGS...: aws with stdout/stderr in $WORK/OUT.{out,err}
run_aws() { local out=$1; shift; run "$out" "${AWS[@]}" "$@"; }
# aws_fails OUT ARGS...: the aws command must fail
aws_fails() { local out=$1; shift; run_fails "$out" "${AWS[@]}" "$@"; }

# json FILE EXPR: print a Python expression evaluated over the parsed JSON `d`.
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# ---------------------------------------------------------------- fixtures
mkdir -p "$WORK/up/tree/sub" "$WORK/down" "$WORK/sync"
make_file "$WORK/up/big.bin" "$BIG_SIZE" big
printf 'hello from the cairn e2e suite\n' >"$WORK/up/small.txt"
printf 'one\n' >"$WORK/up/tree/one.txt"
printf 'two\n' >"$WORK/up/tree/two.txt"
make_file "$WORK/up/tree/sub/three.bin" 300000 three

# ---------------------------------------------------------------- aws s3
s3_mb() {
  run_aws mb s3 mb "s3://$B1" || return 1
  expect_contains "$WORK/mb.out" "make_bucket: $B1"
}

s3_cp_up() {
  run_aws cp_small s3 cp --no-progress "$WORK/up/small.txt" "s3://$B1/small.txt" || return 1
  expect_contains "$WORK/cp_small.out" "upload:" || return 1
  run_aws cp_tree s3 cp --no-progress --recursive "$WORK/up/tree" "s3://$B1/tree/" || return 1
  run_aws head_small s3api head-object --bucket "$B1" --key small.txt || return 1
  expect_eq "ETag of small.txt" "$(json "$WORK/head_small.out" 'd["ETag"]')" "\"$(md5 "$WORK/up/small.txt")\""
}

s3_cp_multipart() {
  # 100 MiB: above the CLI's default 8 MiB threshold, so CreateMultipartUpload,
  # 13 UploadParts of 8 MiB, CompleteMultipartUpload
  run_aws cp_big s3 cp --no-progress "$WORK/up/big.bin" "s3://$B1/dir/big.bin" || return 1
  expect_contains "$WORK/cp_big.out" "upload:" || return 1
  run_aws head_big s3api head-object --bucket "$B1" --key dir/big.bin || return 1
  expect_eq "ETag of dir/big.bin (MD5 of the 13 part MD5s)" "$(json "$WORK/head_big.out" 'd["ETag"]')" \
    "\"$(multipart_etag "$WORK/up/big.bin" $((8 * MIB)))\"" || return 1
  expect_eq "ContentLength of dir/big.bin" "$(json "$WORK/head_big.out" 'd["ContentLength"]')" "$BIG_SIZE" || return 1
  # the CLI sends CRC32s with the parts: S3 keeps the composite CRC32 ("-13")
  run_aws head_big_ck s3api head-object --bucket "$B1" --key dir/big.bin --checksum-mode ENABLED || return 1
  expect_eq "ChecksumCRC32 of dir/big.bin" "$(json "$WORK/head_big_ck.out" 'd.get("ChecksumCRC32")')" \
    "$(composite_crc32 "$WORK/up/big.bin" $((8 * MIB)))"
}

s3_ls() {
  run_aws ls_buckets s3 ls || return 1
  expect_contains "$WORK/ls_buckets.out" "$B1" || return 1
  run_aws ls_top s3 ls "s3://$B1" || return 1
  expect_contains "$WORK/ls_top.out" "PRE dir/" || return 1
  expect_contains "$WORK/ls_top.out" "PRE tree/" || return 1
  expect_contains "$WORK/ls_top.out" " 31 small.txt" || return 1
  expect_not_contains "$WORK/ls_top.out" "big.bin" || return 1
  run_aws ls_rec s3 ls --recursive "s3://$B1" || return 1
  expect_contains "$WORK/ls_rec.out" " $BIG_SIZE dir/big.bin" || return 1
  expect_contains "$WORK/ls_rec.out" " 31 small.txt" || return 1
  expect_contains "$WORK/ls_rec.out" "tree/one.txt" || return 1
  expect_contains "$WORK/ls_rec.out" " 300000 tree/sub/three.bin" || return 1
  expect_eq "number of objects in recursive listing" "$(wc -l <"$WORK/ls_rec.out" | tr -d ' ')" 5 || return 1
  run_aws ls_prefix s3 ls "s3://$B1/tree/" || return 1
  expect_contains "$WORK/ls_prefix.out" "PRE sub/" || return 1
  expect_contains "$WORK/ls_prefix.out" "two.txt"
}

s3_cp_down() {
  # the 100 MiB object comes down in 8 MiB ranged GETs
  run_aws get_big s3 cp --no-progress "s3://$B1/dir/big.bin" "$WORK/down/big.bin" || return 1
  expect_same "$WORK/up/big.bin" "$WORK/down/big.bin" || return 1
  run_aws get_small s3 cp --no-progress "s3://$B1/small.txt" "$WORK/down/small.txt" || return 1
  expect_same "$WORK/up/small.txt" "$WORK/down/small.txt" || return 1
  run_aws get_stdout s3 cp "s3://$B1/small.txt" - || return 1
  expect_same "$WORK/up/small.txt" "$WORK/get_stdout.out"
}

s3_sync() {
  # up: everything new is uploaded; a second sync uploads only what changed;
  # --delete removes what is gone locally
  cp -r "$WORK/up/tree" "$WORK/sync/src"
  run_aws sync_up1 s3 sync --no-progress "$WORK/sync/src" "s3://$B1/synced" || return 1
  expect_eq "files uploaded by the first sync" "$(grep -c '^upload:' "$WORK/sync_up1.out")" 3 || return 1
  printf 'one, changed\n' >"$WORK/sync/src/one.txt"
  printf 'four\n' >"$WORK/sync/src/four.txt"
  rm "$WORK/sync/src/two.txt"
  run_aws sync_up2 s3 sync --no-progress --delete "$WORK/sync/src" "s3://$B1/synced" || return 1
  # (the CLI prints local paths relative to the current directory)
  expect_contains "$WORK/sync_up2.out" "sync/src/one.txt to s3://$B1/synced/one.txt" || return 1
  expect_contains "$WORK/sync_up2.out" "sync/src/four.txt to s3://$B1/synced/four.txt" || return 1
  expect_contains "$WORK/sync_up2.out" "delete: s3://$B1/synced/two.txt" || return 1
  expect_not_contains "$WORK/sync_up2.out" "three.bin" || return 1
  run_aws sync_up3 s3 sync --no-progress "$WORK/sync/src" "s3://$B1/synced" || return 1
  expect_eq "output of a sync with nothing to do" "$(cat "$WORK/sync_up3.out")" "" || return 1
  # down: into an empty directory, then compare the trees
  run_aws sync_down s3 sync --no-progress "s3://$B1/synced" "$WORK/sync/dst" || return 1
  diff -r "$WORK/sync/src" "$WORK/sync/dst" >&2 || return 1
  run_aws sync_down_tree s3 sync --no-progress "s3://$B1/tree" "$WORK/down/tree" || return 1
  diff -r "$WORK/up/tree" "$WORK/down/tree" >&2
}

s3_cp_s3_to_s3() {
  # server-side copies: a small object (CopyObject) and the 100 MiB one (over
  # the threshold: a multipart upload of UploadPartCopy parts)
  run_aws cp_s3_small s3 cp --no-progress "s3://$B1/small.txt" "s3://$B1/copies/small.txt" || return 1
  expect_contains "$WORK/cp_s3_small.out" "copy: s3://$B1/small.txt to s3://$B1/copies/small.txt" || return 1
  run_aws cp_s3_big s3 cp --no-progress "s3://$B1/dir/big.bin" "s3://$B1/copies/big.bin" || return 1
  run_aws head_copy s3api head-object --bucket "$B1" --key copies/big.bin || return 1
  expect_eq "ContentLength of the copy" "$(json "$WORK/head_copy.out" 'd["ContentLength"]')" "$BIG_SIZE" || return 1
  expect_eq "ETag of the multipart copy" "$(json "$WORK/head_copy.out" 'd["ETag"]')" \
    "\"$(multipart_etag "$WORK/up/big.bin" $((8 * MIB)))\"" || return 1
  run_aws get_copy s3 cp --no-progress "s3://$B1/copies/big.bin" "$WORK/down/big-copy.bin" || return 1
  expect_same "$WORK/up/big.bin" "$WORK/down/big-copy.bin" || return 1
  rm -f "$WORK/down/big-copy.bin"
  run_aws get_copy_small s3 cp "s3://$B1/copies/small.txt" - || return 1
  expect_same "$WORK/up/small.txt" "$WORK/get_copy_small.out"
}

s3_mv() {
  run_aws mv s3 mv --no-progress "s3://$B1/copies/small.txt" "s3://$B1/moved/small.txt" || return 1
  expect_contains "$WORK/mv.out" "move: s3://$B1/copies/small.txt to s3://$B1/moved/small.txt" || return 1
  run_aws ls_mv s3 ls --recursive "s3://$B1/" || return 1
  expect_contains "$WORK/ls_mv.out" "moved/small.txt" || return 1
  expect_not_contains "$WORK/ls_mv.out" "copies/small.txt" || return 1
  run_aws get_mv s3 cp "s3://$B1/moved/small.txt" - || return 1
  expect_same "$WORK/up/small.txt" "$WORK/get_mv.out" || return 1
  # and a local file moved up
  cp "$WORK/up/small.txt" "$WORK/to-move.txt"
  run_aws mv_up s3 mv --no-progress "$WORK/to-move.txt" "s3://$B1/moved/up.txt" || return 1
  [[ ! -e "$WORK/to-move.txt" ]] || fail_msg "the local file is still there after aws s3 mv"
}

s3_rb_not_empty() {
  aws_fails rb_full s3 rb "s3://$B1" || return 1
  expect_contains "$WORK/rb_full.err" "BucketNotEmpty"
}

s3_rm() {
  run_aws rm_small s3 rm "s3://$B1/small.txt" || return 1
  expect_contains "$WORK/rm_small.out" "delete: s3://$B1/small.txt" || return 1
  run_aws ls_after_rm s3 ls --recursive "s3://$B1" || return 1
  expect_not_contains "$WORK/ls_after_rm.out" " small.txt" || return 1
  expect_contains "$WORK/ls_after_rm.out" "dir/big.bin" || return 1
  run_aws rm_rec s3 rm --recursive "s3://$B1/" || return 1
  expect_contains "$WORK/rm_rec.out" "delete: s3://$B1/tree/sub/three.bin" || return 1
  expect_contains "$WORK/rm_rec.out" "delete: s3://$B1/dir/big.bin" || return 1
  run_aws ls_empty s3 ls --recursive "s3://$B1" || return 1
  expect_eq "recursive listing after rm --recursive" "$(cat "$WORK/ls_empty.out")" ""
}

s3_rb() {
  run_aws rb s3 rb "s3://$B1" || return 1
  expect_contains "$WORK/rb.out" "remove_bucket: $B1" || return 1
  run_aws ls_after_rb s3 ls || return 1
  expect_not_contains "$WORK/ls_after_rb.out" "$B1"
}

# ---------------------------------------------------------------- aws s3api
api_create_bucket() {
  run_aws api_mb s3api create-bucket --bucket "$B2" || return 1
  expect_eq "create-bucket Location" "$(json "$WORK/api_mb.out" 'd.get("Location")')" "/$B2" || return 1
  run_aws api_head_bucket s3api head-bucket --bucket "$B2"
}

api_put_object() {
  run_aws api_put s3api put-object --bucket "$B2" --key docs/a.txt --body "$WORK/up/small.txt" \
    --metadata color=blue,owner=e2e --content-type "text/plain; charset=utf-8" || return 1
  expect_eq "put-object ETag" "$(json "$WORK/api_put.out" 'd["ETag"]')" "\"$(md5 "$WORK/up/small.txt")\"" || return 1
  # a few more keys for the listing checks, in one CLI call
  mkdir -p "$WORK/more/docs/sub"
  cp "$WORK/up/tree/one.txt" "$WORK/more/docs/b.txt"
  cp "$WORK/up/tree/one.txt" "$WORK/more/docs/sub/c.txt"
  cp "$WORK/up/tree/one.txt" "$WORK/more/top.txt"
  run_aws api_put_more s3 cp --no-progress --recursive "$WORK/more" "s3://$B2/"
}

api_head_object() {
  run_aws api_head s3api head-object --bucket "$B2" --key docs/a.txt || return 1
  expect_eq "ContentLength" "$(json "$WORK/api_head.out" 'd["ContentLength"]')" 31 || return 1
  expect_eq "Metadata" "$(json "$WORK/api_head.out" 'sorted(d["Metadata"].items())')" "[('color', 'blue'), ('owner', 'e2e')]" || return 1
  expect_eq "ContentType" "$(json "$WORK/api_head.out" 'd["ContentType"]')" "text/plain; charset=utf-8" || return 1
  expect_eq "ETag" "$(json "$WORK/api_head.out" 'd["ETag"]')" "\"$(md5 "$WORK/up/small.txt")\"" || return 1
  # --query works as well
  run_aws api_head_q s3api head-object --bucket "$B2" --key docs/a.txt --query Metadata.color --output text || return 1
  expect_eq "--query Metadata.color" "$(cat "$WORK/api_head_q.out")" "blue"
}

api_get_object() {
  run_aws api_get s3api get-object --bucket "$B2" --key docs/a.txt "$WORK/down/a.txt" || return 1
  expect_same "$WORK/up/small.txt" "$WORK/down/a.txt" || return 1
  expect_eq "get-object ContentLength" "$(json "$WORK/api_get.out" 'd["ContentLength"]')" 31 || return 1
  expect_eq "get-object Metadata" "$(json "$WORK/api_get.out" 'd["Metadata"].get("color")')" "blue" || return 1
  run_aws api_get_range s3api get-object --bucket "$B2" --key docs/a.txt --range bytes=6-9 "$WORK/down/a.part" || return 1
  expect_eq "ranged get-object body" "$(cat "$WORK/down/a.part")" "from" || return 1
  expect_eq "ranged get-object ContentRange" "$(json "$WORK/api_get_range.out" 'd["ContentRange"]')" "bytes 6-9/31"
}

api_list_objects_v2() {
  run_aws api_list s3api list-objects-v2 --bucket "$B2" --prefix docs/ --delimiter / || return 1
  expect_eq "Contents" "$(json "$WORK/api_list.out" '[o["Key"] for o in d.get("Contents", [])]')" "['docs/a.txt', 'docs/b.txt']" || return 1
  expect_eq "CommonPrefixes" "$(json "$WORK/api_list.out" '[p["Prefix"] for p in d.get("CommonPrefixes", [])]')" "['docs/sub/']" || return 1
  run_aws api_list_all s3api list-objects-v2 --bucket "$B2" || return 1
  expect_eq "all keys" "$(json "$WORK/api_list_all.out" '[o["Key"] for o in d.get("Contents", [])]')" \
    "['docs/a.txt', 'docs/b.txt', 'docs/sub/c.txt', 'top.txt']" || return 1
  # the CLI paginates on its own with --page-size
  run_aws api_list_paged s3api list-objects-v2 --bucket "$B2" --page-size 1 || return 1
  expect_eq "keys with --page-size 1" "$(json "$WORK/api_list_paged.out" '[o["Key"] for o in d.get("Contents", [])]')" \
    "['docs/a.txt', 'docs/b.txt', 'docs/sub/c.txt', 'top.txt']"
}

api_get_bucket_location() {
  run_aws api_loc s3api get-bucket-location --bucket "$B2" || return 1
  # Amazon S3 answers null for us-east-1
  expect_eq "LocationConstraint" "$(json "$WORK/api_loc.out" 'd.get("LocationConstraint")')" "None"
}

api_multipart() {
  # the low-level calls: 2 parts (8 MiB + the rest of a 12 MiB + 5 file)
  local key=mp/manual.bin
  make_file "$WORK/mp.bin" $((12 * MIB + 5)) manual
  head -c $((8 * MIB)) "$WORK/mp.bin" >"$WORK/mp.part1"
  tail -c +$((8 * MIB + 1)) "$WORK/mp.bin" >"$WORK/mp.part2"
  run_aws api_mpu_create s3api create-multipart-upload --bucket "$B2" --key "$key" --content-type application/x-e2e || return 1
  local upload_id
  upload_id=$(json "$WORK/api_mpu_create.out" 'd["UploadId"]')
  [[ -n "$upload_id" ]] || fail_msg "create-multipart-upload gave no UploadId" || return 1
  run_aws api_mpu_p2 s3api upload-part --bucket "$B2" --key "$key" --upload-id "$upload_id" --part-number 2 --body "$WORK/mp.part2" || return 1
  run_aws api_mpu_p1 s3api upload-part --bucket "$B2" --key "$key" --upload-id "$upload_id" --part-number 1 --body "$WORK/mp.part1" || return 1
  expect_eq "upload-part 1 ETag" "$(json "$WORK/api_mpu_p1.out" 'd["ETag"]')" "\"$(md5 "$WORK/mp.part1")\"" || return 1
  run_aws api_mpu_uploads s3api list-multipart-uploads --bucket "$B2" || return 1
  expect_eq "list-multipart-uploads" "$(json "$WORK/api_mpu_uploads.out" '[(u["Key"], u["UploadId"]) for u in d.get("Uploads", [])]')" \
    "[('$key', '$upload_id')]" || return 1
  run_aws api_mpu_parts s3api list-parts --bucket "$B2" --key "$key" --upload-id "$upload_id" || return 1
  expect_eq "list-parts" "$(json "$WORK/api_mpu_parts.out" '[(p["PartNumber"], p["Size"]) for p in d.get("Parts", [])]')" \
    "[(1, $((8 * MIB))), (2, $((4 * MIB + 5)))]" || return 1
  json "$WORK/api_mpu_parts.out" '__import__("json").dumps({"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in d["Parts"]]})' >"$WORK/mp-parts.json"
  run_aws api_mpu_complete s3api complete-multipart-upload --bucket "$B2" --key "$key" --upload-id "$upload_id" \
    --multipart-upload "file://$WORK/mp-parts.json" || return 1
  expect_eq "complete-multipart-upload ETag" "$(json "$WORK/api_mpu_complete.out" 'd["ETag"]')" \
    "\"$(multipart_etag "$WORK/mp.bin" $((8 * MIB)))\"" || return 1
  run_aws api_mpu_get s3api get-object --bucket "$B2" --key "$key" "$WORK/down/mp.bin" || return 1
  expect_same "$WORK/mp.bin" "$WORK/down/mp.bin" || return 1
  expect_eq "ContentType from create-multipart-upload" "$(json "$WORK/api_mpu_get.out" 'd["ContentType"]')" application/x-e2e || return 1
  run_aws api_mpu_none s3api list-multipart-uploads --bucket "$B2" || return 1
  expect_eq "uploads after completion" "$(json "$WORK/api_mpu_none.out" 'd.get("Uploads", [])')" "[]"
}

api_multipart_abort() {
  local key=mp/aborted.bin upload_id
  run_aws api_abort_create s3api create-multipart-upload --bucket "$B2" --key "$key" || return 1
  upload_id=$(json "$WORK/api_abort_create.out" 'd["UploadId"]')
  run_aws api_abort_p1 s3api upload-part --bucket "$B2" --key "$key" --upload-id "$upload_id" --part-number 1 --body "$WORK/up/small.txt" || return 1
  run_aws api_abort s3api abort-multipart-upload --bucket "$B2" --key "$key" --upload-id "$upload_id" || return 1
  aws_fails api_abort_parts s3api list-parts --bucket "$B2" --key "$key" --upload-id "$upload_id" || return 1
  expect_contains "$WORK/api_abort_parts.err" "NoSuchUpload" || return 1
  run_aws api_abort_uploads s3api list-multipart-uploads --bucket "$B2" || return 1
  expect_eq "uploads after abort" "$(json "$WORK/api_abort_uploads.out" 'd.get("Uploads", [])')" "[]" || return 1
  aws_fails api_abort_head s3api head-object --bucket "$B2" --key "$key" || return 1
  expect_contains "$WORK/api_abort_head.err" "404"
}

api_copy_object() {
  run_aws api_copy s3api copy-object --bucket "$B2" --key copies/a.txt --copy-source "$B2/docs/a.txt" || return 1
  expect_eq "copy-object ETag" "$(json "$WORK/api_copy.out" 'd["CopyObjectResult"]["ETag"]')" "\"$(md5 "$WORK/up/small.txt")\"" || return 1
  run_aws api_copy_head s3api head-object --bucket "$B2" --key copies/a.txt || return 1
  expect_eq "metadata of the copy" "$(json "$WORK/api_copy_head.out" 'd["Metadata"].get("color")')" blue || return 1
  run_aws api_copy_replace s3api copy-object --bucket "$B2" --key copies/a2.txt --copy-source "$B2/docs/a.txt" \
    --metadata-directive REPLACE --metadata shape=round --content-type text/x-replaced || return 1
  run_aws api_copy_head2 s3api head-object --bucket "$B2" --key copies/a2.txt || return 1
  expect_eq "metadata after REPLACE" "$(json "$WORK/api_copy_head2.out" 'd["Metadata"]')" "{'shape': 'round'}" || return 1
  expect_eq "Content-Type after REPLACE" "$(json "$WORK/api_copy_head2.out" 'd["ContentType"]')" text/x-replaced || return 1
  run_aws api_copy_get s3api get-object --bucket "$B2" --key copies/a2.txt "$WORK/down/a2.txt" || return 1
  expect_same "$WORK/up/small.txt" "$WORK/down/a2.txt" || return 1
  aws_fails api_copy_missing s3api copy-object --bucket "$B2" --key copies/x --copy-source "$B2/docs/missing" || return 1
  expect_contains "$WORK/api_copy_missing.err" "NoSuchKey"
}

api_tagging() {
  run_aws api_tag_put s3api put-object-tagging --bucket "$B2" --key docs/a.txt \
    --tagging 'TagSet=[{Key=project,Value=cairn},{Key=stage,Value=e2e}]' || return 1
  run_aws api_tag_get s3api get-object-tagging --bucket "$B2" --key docs/a.txt || return 1
  expect_eq "get-object-tagging" "$(json "$WORK/api_tag_get.out" 'sorted((t["Key"], t["Value"]) for t in d["TagSet"])')" \
    "[('project', 'cairn'), ('stage', 'e2e')]" || return 1
  run_aws api_tag_put_obj s3api put-object --bucket "$B2" --key docs/tagged.txt --body "$WORK/up/small.txt" --tagging "k=v&x=y" || return 1
  run_aws api_tag_get2 s3api get-object-tagging --bucket "$B2" --key docs/tagged.txt || return 1
  expect_eq "tags from put-object --tagging" "$(json "$WORK/api_tag_get2.out" 'sorted((t["Key"], t["Value"]) for t in d["TagSet"])')" \
    "[('k', 'v'), ('x', 'y')]" || return 1
  run_aws api_tag_del s3api delete-object-tagging --bucket "$B2" --key docs/tagged.txt || return 1
  run_aws api_tag_get3 s3api get-object-tagging --bucket "$B2" --key docs/tagged.txt || return 1
  expect_eq "tags after delete-object-tagging" "$(json "$WORK/api_tag_get3.out" 'd["TagSet"]')" "[]"
}

api_get_object_attributes() {
  run_aws api_attrs s3api get-object-attributes --bucket "$B2" --key docs/a.txt --object-attributes ETag ObjectSize StorageClass || return 1
  local problems=0
  expect_eq "get-object-attributes ObjectSize" "$(json "$WORK/api_attrs.out" 'd.get("ObjectSize")')" 31 || problems=1
  expect_eq "get-object-attributes StorageClass" "$(json "$WORK/api_attrs.out" 'd.get("StorageClass")')" STANDARD || problems=1
  # S3 answers this ETag without quotes
  expect_eq "get-object-attributes ETag" "$(json "$WORK/api_attrs.out" 'd.get("ETag")')" "$(md5 "$WORK/up/small.txt")" || problems=1
  run_aws api_attrs_mp s3api get-object-attributes --bucket "$B2" --key mp/manual.bin --object-attributes ObjectParts || return 1
  expect_eq "get-object-attributes ObjectParts.TotalPartsCount" "$(json "$WORK/api_attrs_mp.out" 'd.get("ObjectParts", {}).get("TotalPartsCount")')" 2 || problems=1
  return "$problems"
}

api_delete_objects() {
  cat >"$WORK/delete.json" <<EOF
{"Objects": [{"Key": "copies/a.txt"}, {"Key": "copies/a2.txt"}, {"Key": "docs/never-existed"}], "Quiet": false}
EOF
  run_aws api_delete_objects s3api delete-objects --bucket "$B2" --delete "file://$WORK/delete.json" || return 1
  expect_eq "delete-objects Deleted" "$(json "$WORK/api_delete_objects.out" 'sorted(x["Key"] for x in d.get("Deleted", []))')" \
    "['copies/a.txt', 'copies/a2.txt', 'docs/never-existed']" || return 1
  expect_eq "delete-objects Errors" "$(json "$WORK/api_delete_objects.out" 'd.get("Errors", [])')" "[]" || return 1
  run_aws api_list_del s3api list-objects-v2 --bucket "$B2" --prefix copies/ --no-paginate || return 1
  expect_eq "KeyCount under copies/ after delete-objects" "$(json "$WORK/api_list_del.out" 'd.get("KeyCount")')" 0
}

api_expected_failures() {
  aws_fails api_nokey s3api get-object --bucket "$B2" --key no/such/key "$WORK/down/none" || return 1
  expect_contains "$WORK/api_nokey.err" "NoSuchKey" || return 1
  aws_fails api_nohead s3api head-object --bucket "$B2" --key no/such/key || return 1
  expect_contains "$WORK/api_nohead.err" "404" || return 1
  aws_fails api_nobucket s3api list-objects-v2 --bucket "$B2-missing" || return 1
  expect_contains "$WORK/api_nobucket.err" "NoSuchBucket" || return 1
  AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY-wrong" aws_fails api_badsig s3api list-buckets || return 1
  expect_contains "$WORK/api_badsig.err" "SignatureDoesNotMatch"
}

api_delete() {
  run_aws api_rm s3api delete-object --bucket "$B2" --key docs/a.txt || return 1
  run_aws api_list_rm s3api list-objects-v2 --bucket "$B2" || return 1
  expect_eq "keys after delete-object" "$(json "$WORK/api_list_rm.out" '[o["Key"] for o in d.get("Contents", [])]')" \
    "['docs/b.txt', 'docs/sub/c.txt', 'docs/tagged.txt', 'mp/manual.bin', 'top.txt']" || return 1
  run_aws api_rm_rest s3 rm --recursive "s3://$B2/" || return 1
  # --no-paginate: the CLI's own pagination drops KeyCount from the merged result
  run_aws api_list_empty s3api list-objects-v2 --bucket "$B2" --no-paginate || return 1
  expect_eq "KeyCount after deleting everything" "$(json "$WORK/api_list_empty.out" 'd.get("KeyCount")')" 0 || return 1
  expect_eq "Contents after deleting everything" "$(json "$WORK/api_list_empty.out" 'd.get("Contents")')" None || return 1
  run_aws api_rb s3api delete-bucket --bucket "$B2" || return 1
  aws_fails api_hb s3api head-bucket --bucket "$B2" || return 1
  expect_contains "$WORK/api_hb.err" "404"
}

cleanup_buckets() {
  local b
  for b in "$B1" "$B2"; do
    timeout 120 aws --endpoint-url "$ENDPOINT" s3 rb --force "s3://$b" >/dev/null 2>&1 || true
  done
}

echo "$(aws --version 2>&1) against $ENDPOINT"
step s3_mb "CreateBucket"
step s3_cp_up "PutObject"
step s3_cp_multipart "CreateMultipartUpload UploadPart CompleteMultipartUpload"
step s3_ls "ListBuckets ListObjectsV2"
step s3_cp_down "GetObject GetObject[range]"
step s3_sync "ListObjectsV2 PutObject GetObject DeleteObject"
step s3_cp_s3_to_s3 "CopyObject UploadPartCopy"
step s3_mv "CopyObject DeleteObject"
step s3_rb_not_empty "DeleteBucket"
step s3_rm "DeleteObject"
step s3_rb "DeleteBucket"
step api_create_bucket "CreateBucket HeadBucket"
step api_put_object "PutObject"
step api_head_object "HeadObject"
step api_get_object "GetObject GetObject[range]"
step api_list_objects_v2 "ListObjectsV2"
step api_get_bucket_location "GetBucketLocation"
step api_multipart "CreateMultipartUpload UploadPart ListMultipartUploads ListParts CompleteMultipartUpload"
step api_multipart_abort "AbortMultipartUpload"
step api_copy_object "CopyObject"
step api_tagging "PutObjectTagging GetObjectTagging DeleteObjectTagging PutObject[tagging]"
step api_get_object_attributes "GetObjectAttributes"
step api_delete_objects "DeleteObjects"
step api_expected_failures ""
step api_delete "DeleteObject DeleteBucket"
if ((FAILED > 0)); then
  cleanup_buckets
fi
finish
