#!/usr/bin/env bash
# End-to-end checks for Cairn with the AWS CLI (v1, from tests/e2e/requirements.txt).
#
# Usage: test_awscli.sh ENDPOINT
#   with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the environment, and
#   `aws` plus a `python3` (used to parse JSON) on PATH. run.sh sets all this up.
#
# Every check runs even if an earlier one failed; the script ends with
# "awscli: N passed, N failed" and exits non-zero if anything failed.
# Only ENDPOINT (127.0.0.1) is contacted. Uses its own temporary AWS config
# file (multipart threshold 64 MB: Cairn has no multipart upload yet), never ~/.aws.
set -euo pipefail

ENDPOINT=${1:?usage: test_awscli.sh ENDPOINT}
: "${AWS_ACCESS_KEY_ID:?AWS_ACCESS_KEY_ID must be set}"
: "${AWS_SECRET_ACCESS_KEY:?AWS_SECRET_ACCESS_KEY must be set}"
case "$ENDPOINT" in
  http://127.0.0.1:*) ;;
  *) echo "refusing to test a non-loopback endpoint: $ENDPOINT" >&2; exit 2 ;;
esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-awscli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

export AWS_CONFIG_FILE="$WORK/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 \
  AWS_REQUEST_CHECKSUM_CALCULATION AWS_RESPONSE_CHECKSUM_VALIDATION AWS_CA_BUNDLE 2>/dev/null || true
aws configure set default.region us-east-1
aws configure set default.s3.multipart_threshold 64MB
aws configure set default.s3.addressing_style path
aws configure set default.s3.signature_version s3v4
aws configure set default.retry_mode standard
aws configure set default.max_attempts 1

RUN_ID=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:8])')
B1="e2e-cli-s3-$RUN_ID"
B2="e2e-cli-api-$RUN_ID"

awsx() { timeout 120 aws --endpoint-url "$ENDPOINT" --cli-connect-timeout 5 --cli-read-timeout 60 "$@"; }

# json FILE EXPR: print a Python expression evaluated over the parsed JSON `d`.
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

fail_msg() { echo "    $*" >&2; return 1; }

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
  [[ "$2" == "$3" ]] || fail_msg "$1: expected [$3], got [$2]"
}

# expect_contains FILE PATTERN (a fixed string)
expect_contains() {
  grep -qF -- "$2" "$1" || { fail_msg "expected [$2] in output:"; sed 's/^/      | /' "$1" >&2; return 1; }
}

expect_not_contains() {
  ! grep -qF -- "$2" "$1" || { fail_msg "did not expect [$2] in output:"; sed 's/^/      | /' "$1" >&2; return 1; }
}

# run_aws OUT_BASENAME ARGS...: runs aws, stdout -> $WORK/OUT.out, stderr -> $WORK/OUT.err
run_aws() {
  local out=$1; shift
  if ! awsx "$@" >"$WORK/$out.out" 2>"$WORK/$out.err"; then
    fail_msg "aws $* failed:"
    sed 's/^/      | /' "$WORK/$out.err" >&2
    return 1
  fi
}

PASSED=0
FAILED=0
FAILED_NAMES=()
step() {
  local name=$1
  local start=$SECONDS
  if "$name"; then
    PASSED=$((PASSED + 1))
    echo "  ok   $name ($((SECONDS - start))s)"
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$name")
    echo "  FAIL $name"
  fi
}

md5() { md5sum "$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------- fixtures
mkdir -p "$WORK/up/tree/sub" "$WORK/down"
head -c $((20 * 1024 * 1024 + 7)) /dev/urandom >"$WORK/up/big.bin"
printf 'hello from the cairn e2e suite\n' >"$WORK/up/small.txt"
printf 'one\n' >"$WORK/up/tree/one.txt"
printf 'two\n' >"$WORK/up/tree/two.txt"
head -c 300000 /dev/urandom >"$WORK/up/tree/sub/three.bin"

# ---------------------------------------------------------------- aws s3
s3_mb() {
  run_aws mb s3 mb "s3://$B1" || return 1
  expect_contains "$WORK/mb.out" "make_bucket: $B1"
}

s3_cp_up() {
  run_aws cp_big s3 cp "$WORK/up/big.bin" "s3://$B1/dir/big.bin" || return 1
  expect_contains "$WORK/cp_big.out" "upload:" || return 1
  run_aws cp_small s3 cp "$WORK/up/small.txt" "s3://$B1/small.txt" || return 1
  run_aws cp_tree s3 cp --recursive "$WORK/up/tree" "s3://$B1/tree/" || return 1
  # the single-PUT ETag of the big file must be its MD5
  run_aws head_big s3api head-object --bucket "$B1" --key dir/big.bin || return 1
  expect_eq "ETag of dir/big.bin" "$(json "$WORK/head_big.out" 'd["ETag"]')" "\"$(md5 "$WORK/up/big.bin")\"" || return 1
  expect_eq "ContentLength of dir/big.bin" "$(json "$WORK/head_big.out" 'd["ContentLength"]')" "$((20 * 1024 * 1024 + 7))"
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
  expect_contains "$WORK/ls_rec.out" " $((20 * 1024 * 1024 + 7)) dir/big.bin" || return 1
  expect_contains "$WORK/ls_rec.out" " 31 small.txt" || return 1
  expect_contains "$WORK/ls_rec.out" "tree/one.txt" || return 1
  expect_contains "$WORK/ls_rec.out" " 300000 tree/sub/three.bin" || return 1
  expect_eq "number of objects in recursive listing" "$(wc -l <"$WORK/ls_rec.out" | tr -d ' ')" 5 || return 1
  run_aws ls_prefix s3 ls "s3://$B1/tree/" || return 1
  expect_contains "$WORK/ls_prefix.out" "PRE sub/" || return 1
  expect_contains "$WORK/ls_prefix.out" "two.txt"
}

s3_cp_down() {
  run_aws get_big s3 cp "s3://$B1/dir/big.bin" "$WORK/down/big.bin" || return 1
  cmp "$WORK/up/big.bin" "$WORK/down/big.bin" >&2 || return 1
  run_aws get_small s3 cp "s3://$B1/small.txt" "$WORK/down/small.txt" || return 1
  cmp "$WORK/up/small.txt" "$WORK/down/small.txt" >&2 || return 1
  run_aws get_stdout s3 cp "s3://$B1/small.txt" - || return 1
  cmp "$WORK/up/small.txt" "$WORK/get_stdout.out" >&2 || return 1
  run_aws sync_down s3 sync "s3://$B1/tree" "$WORK/down/tree" || return 1
  diff -r "$WORK/up/tree" "$WORK/down/tree" >&2
}

s3_rb_not_empty() {
  if awsx s3 rb "s3://$B1" >"$WORK/rb_full.out" 2>"$WORK/rb_full.err"; then
    fail_msg "aws s3 rb of a non-empty bucket succeeded"
    return 1
  fi
  expect_contains "$WORK/rb_full.err" "BucketNotEmpty"
}

s3_rm() {
  run_aws rm_small s3 rm "s3://$B1/small.txt" || return 1
  expect_contains "$WORK/rm_small.out" "delete: s3://$B1/small.txt" || return 1
  run_aws ls_after_rm s3 ls --recursive "s3://$B1" || return 1
  expect_not_contains "$WORK/ls_after_rm.out" "small.txt" || return 1
  expect_contains "$WORK/ls_after_rm.out" "dir/big.bin" || return 1
  run_aws rm_rec s3 rm --recursive "s3://$B1/" || return 1
  expect_contains "$WORK/rm_rec.out" "delete: s3://$B1/tree/sub/three.bin" || return 1
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
  run_aws api_put_more s3 cp --recursive "$WORK/more" "s3://$B2/" || return 1
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
  cmp "$WORK/up/small.txt" "$WORK/down/a.txt" >&2 || return 1
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

api_expected_failures() {
  if awsx s3api get-object --bucket "$B2" --key no/such/key "$WORK/down/none" >"$WORK/api_nokey.out" 2>"$WORK/api_nokey.err"; then
    fail_msg "get-object of a missing key succeeded"
    return 1
  fi
  expect_contains "$WORK/api_nokey.err" "NoSuchKey" || return 1
  if awsx s3api head-object --bucket "$B2" --key no/such/key >"$WORK/api_nohead.out" 2>"$WORK/api_nohead.err"; then
    fail_msg "head-object of a missing key succeeded"
    return 1
  fi
  expect_contains "$WORK/api_nohead.err" "404" || return 1
  if awsx s3api list-objects-v2 --bucket "$B2-missing" >"$WORK/api_nobucket.out" 2>"$WORK/api_nobucket.err"; then
    fail_msg "list-objects-v2 of a missing bucket succeeded"
    return 1
  fi
  expect_contains "$WORK/api_nobucket.err" "NoSuchBucket" || return 1
  if AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY-wrong" awsx s3api list-buckets >"$WORK/api_badsig.out" 2>"$WORK/api_badsig.err"; then
    fail_msg "list-buckets with a wrong secret key succeeded"
    return 1
  fi
  expect_contains "$WORK/api_badsig.err" "SignatureDoesNotMatch"
}

api_delete() {
  run_aws api_rm s3api delete-object --bucket "$B2" --key docs/a.txt || return 1
  run_aws api_list_rm s3api list-objects-v2 --bucket "$B2" || return 1
  expect_eq "keys after delete-object" "$(json "$WORK/api_list_rm.out" '[o["Key"] for o in d.get("Contents", [])]')" \
    "['docs/b.txt', 'docs/sub/c.txt', 'top.txt']" || return 1
  run_aws api_rm_rest s3 rm --recursive "s3://$B2/" || return 1
  # --no-paginate: the CLI's own pagination drops KeyCount from the merged result
  run_aws api_list_empty s3api list-objects-v2 --bucket "$B2" --no-paginate || return 1
  expect_eq "KeyCount after deleting everything" "$(json "$WORK/api_list_empty.out" 'd.get("KeyCount")')" 0 || return 1
  expect_eq "Contents after deleting everything" "$(json "$WORK/api_list_empty.out" 'd.get("Contents")')" None || return 1
  run_aws api_rb s3api delete-bucket --bucket "$B2" || return 1
  if awsx s3api head-bucket --bucket "$B2" >"$WORK/api_hb.out" 2>"$WORK/api_hb.err"; then
    fail_msg "head-bucket after delete-bucket succeeded"
    return 1
  fi
  expect_contains "$WORK/api_hb.err" "404"
}

cleanup_buckets() {
  local b
  for b in "$B1" "$B2"; do
    awsx s3 rb --force "s3://$b" >/dev/null 2>&1 || true
  done
}

echo "$(aws --version 2>&1) against $ENDPOINT"
for name in s3_mb s3_cp_up s3_ls s3_cp_down s3_rb_not_empty s3_rm s3_rb \
  api_create_bucket api_put_object api_head_object api_get_object api_list_objects_v2 \
  api_get_bucket_location api_expected_failures api_delete; do
  step "$name"
done
if ((FAILED > 0)); then
  cleanup_buckets
fi

echo "awscli: $PASSED passed, $FAILED failed"
if ((FAILED > 0)); then
  echo "awscli failed checks: ${FAILED_NAMES[*]}"
  exit 1
fi
