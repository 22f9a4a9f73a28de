# Shared helpers for the shell client suites (test_awscli.sh, test_s5cmd.sh,
# test_rclone.sh, test_s3cmd.sh). Source it after setting CLIENT (the name
# printed in the summary line) and WORK (a scratch directory).
#
# Conventions, the same as the Python suites':
#   * every check runs, even after a failure;
#   * each check prints "  ok   NAME (Ns)" or "  FAIL NAME" plus details;
#   * each check names the S3 operations it is about, and prints
#     "op OPERATION ok|fail" for each (run.sh turns these into the
#     clients-by-operation matrix; "Op[feature]" gets its own row);
#   * the suite ends with "CLIENT: N passed, N failed" and exits non-zero if
#     anything failed.

: "${CLIENT:?CLIENT must be set before sourcing lib.sh}"
: "${WORK:?WORK must be set before sourcing lib.sh}"

CMD_TIMEOUT=${CMD_TIMEOUT:-120}  # seconds for any one client command

# require_loopback ENDPOINT: refuse anything but http://127.0.0.1:PORT
require_loopback() {
  case "$1" in
    http://127.0.0.1:[0-9]*) ;;
    *) echo "refusing to test a non-loopback endpoint: $1" >&2; exit 2 ;;
  esac
}

fail_msg() { echo "    $*" >&2; return 1; }

# isolate_aws_config: AWS config and credentials files in $WORK (never
# ~/.aws), region us-east-1, no instance metadata, no inherited profile or
# endpoint; credentials stay those of the environment.
isolate_aws_config() {
  export AWS_CONFIG_FILE="$WORK/aws-config" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
  : >"$AWS_CONFIG_FILE"
  : >"$AWS_SHARED_CREDENTIALS_FILE"
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
  unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN S3_ENDPOINT_URL AWS_ENDPOINT_URL 2>/dev/null || true
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
  [[ "$2" == "$3" ]] || fail_msg "$1: expected [$3], got [$2]"
}

# expect_contains FILE STRING (fixed string)
expect_contains() {
  grep -qF -- "$2" "$1" || { fail_msg "expected [$2] in $(basename "$1"):"; sed 's/^/      | /' "$1" | head -n 40 >&2; return 1; }
}

expect_not_contains() {
  ! grep -qF -- "$2" "$1" || { fail_msg "did not expect [$2] in $(basename "$1"):"; sed 's/^/      | /' "$1" | head -n 40 >&2; return 1; }
}

# expect_same FILE1 FILE2: byte-for-byte equal
expect_same() {
  cmp -- "$1" "$2" >&2 || fail_msg "$2 differs from $1"
}

# run OUT CMD...: runs CMD bounded by CMD_TIMEOUT, stdout to $WORK/OUT.out and
# stderr to $WORK/OUT.err; on failure shows the command and its stderr.
run() {
  local out=$1 rc=0
  shift
  timeout "$CMD_TIMEOUT" "$@" >"$WORK/$out.out" 2>"$WORK/$out.err" || rc=$?
  if ((rc != 0)); then
    fail_msg "$* failed (exit $rc$( ((rc == 124)) && echo ", timed out after ${CMD_TIMEOUT}s")):"
    tail -n 30 "$WORK/$out.err" | sed 's/^/      | /' >&2
    tail -n 10 "$WORK/$out.out" | sed 's/^/      > /' >&2
    return 1
  fi
}

# run_fails OUT CMD...: like run, but the command must fail (exit non-zero,
# not a timeout).
run_fails() {
  local out=$1 rc=0
  shift
  timeout "$CMD_TIMEOUT" "$@" >"$WORK/$out.out" 2>"$WORK/$out.err" || rc=$?
  if ((rc == 0)); then
    fail_msg "$* succeeded, it should have failed"
    return 1
  fi
  if ((rc == 124)); then
    fail_msg "$* timed out after ${CMD_TIMEOUT}s"
    return 1
  fi
}

md5() { md5sum "$1" | cut -d' ' -f1; }

# multipart_etag FILE PART_SIZE_BYTES: the S3 ETag (without quotes) of FILE
# uploaded in parts of PART_SIZE_BYTES: MD5 of the parts' MD5s, "-N".
multipart_etag() {
  python3 - "$1" "$2" <<'EOF'
import hashlib, sys
size = int(sys.argv[2])
digests = []
with open(sys.argv[1], "rb") as f:
    while True:
        chunk = f.read(size)
        if not chunk:
            break
        digests.append(hashlib.md5(chunk).digest())
print(f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}")
EOF
}

# composite_crc32 FILE PART_SIZE_BYTES: the composite x-amz-checksum-crc32 of
# FILE uploaded in parts of PART_SIZE_BYTES with CRC32 part checksums: the
# CRC32 of the parts' CRC32s, base64, "-N".
composite_crc32() {
  python3 - "$1" "$2" <<'EOF'
import base64, sys, zlib
size, crcs, n = int(sys.argv[2]), b"", 0
with open(sys.argv[1], "rb") as f:
    while True:
        chunk = f.read(size)
        if not chunk:
            break
        crcs += zlib.crc32(chunk).to_bytes(4, "big")
        n += 1
print(base64.b64encode(zlib.crc32(crcs).to_bytes(4, "big")).decode() + f"-{n}")
EOF
}

# make_file PATH SIZE SEED: deterministic, incompressible content
make_file() {
  python3 - "$1" "$2" "$3" <<'EOF'
import hashlib, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
block = 1 << 20
with open(path, "wb") as f:
    written, counter = 0, 0
    while written < size:
        # a SHAKE stream per MiB: fast, and no two MiB alike
        chunk = hashlib.shake_256(seed + counter.to_bytes(8, "big")).digest(min(block, size - written))
        f.write(chunk)
        written += len(chunk)
        counter += 1
EOF
}

PASSED=0
FAILED=0
FAILED_NAMES=()

# step NAME "OP1 OP2 ...": runs the function NAME as one check
step() {
  local name=$1 ops=${2:-} start=$SECONDS outcome op
  if "$name"; then
    PASSED=$((PASSED + 1))
    outcome=ok
    echo "  ok   $name ($((SECONDS - start))s)"
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$name")
    outcome=fail
    echo "  FAIL $name"
  fi
  for op in $ops; do
    echo "op $op $outcome"
  done
}

# finish: prints the summary line and exits
finish() {
  echo "$CLIENT: $PASSED passed, $FAILED failed"
  if ((FAILED > 0)); then
    echo "$CLIENT failed checks: ${FAILED_NAMES[*]}"
    exit 1
  fi
  exit 0
}
