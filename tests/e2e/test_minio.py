#!/usr/bin/env python3
"""End-to-end S3 checks for Cairn with the MinIO Python SDK (`minio`).

Usage: test_minio.py ENDPOINT [ACCESS_KEY SECRET_KEY]
       (or CAIRN_E2E_ENDPOINT / CAIRN_E2E_ACCESS_KEY / CAIRN_E2E_SECRET_KEY)

The client is built as an application would build it (endpoint, keys,
secure=False; no region, so the SDK asks GetBucketLocation), with an HTTP
pool that does not retry, so that a retry cannot hide a failure. Part sizes
are set to the 5 MiB minimum so that a 12 MiB upload goes multipart.

Every check runs even when an earlier one fails; a failure prints the SDK's
HTTP trace of the check's last requests. Each check names the S3 operations it
is about and prints "op OPERATION ok|fail" for them (run.sh builds the
clients-by-operation matrix from these). Ends with "minio: N passed, N failed".
Only the given endpoint (127.0.0.1) is contacted.
"""

import hashlib
import io
import os
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import urllib3
from urllib3.util.retry import Retry

import minio
from minio import Minio
from minio.commonconfig import REPLACE, ComposeSource, CopySource, Tags
from minio.datatypes import PostPolicy
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

KIB = 1024
MIB = 1024 * 1024
PART = 5 * MIB
HTTP_TIMEOUT = 60


def _arg(i, env):
    if len(sys.argv) > i:
        return sys.argv[i]
    value = os.environ.get(env)
    if not value:
        sys.exit(f"usage: {sys.argv[0]} ENDPOINT [ACCESS_KEY SECRET_KEY] (or set {env})")
    return value


ENDPOINT = _arg(1, "CAIRN_E2E_ENDPOINT").rstrip("/")
ACCESS_KEY = _arg(2, "CAIRN_E2E_ACCESS_KEY")
SECRET_KEY = _arg(3, "CAIRN_E2E_SECRET_KEY")
_parsed = urllib.parse.urlsplit(ENDPOINT)
if _parsed.scheme != "http" or _parsed.hostname != "127.0.0.1":
    sys.exit(f"refusing to test a non-loopback endpoint: {ENDPOINT}")
RUN_ID = uuid.uuid4().hex[:8]
BUCKET = f"e2e-minio-{RUN_ID}"
OTHER = f"e2e-minio-other-{RUN_ID}"


def make_client():
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=HTTP_TIMEOUT),
        maxsize=10,
        retries=Retry(total=0, redirect=0),
    )
    return Minio(_parsed.netloc, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False, http_client=http)


MC = make_client()
TRACE = io.StringIO()


# --------------------------------------------------------------------------
# helpers

def payload(size, seed):
    out = bytearray()
    counter = 0
    seed = str(seed).encode()
    while len(out) < size:
        out += hashlib.shake_256(seed + counter.to_bytes(8, "big")).digest(min(MIB, size - len(out)))
        counter += 1
    return bytes(out)


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def multipart_etag(data, part_size):
    parts = [data[i:i + part_size] for i in range(0, len(data), part_size)]
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f"{digest}-{len(parts)}"


def eq(actual, expected, what):
    assert actual == expected, f"{what}: expected {expected!r}, got {actual!r}"


def read_object(key, bucket=BUCKET, **kwargs):
    resp = MC.get_object(bucket, key, **kwargs)
    try:
        return resp.read()
    finally:
        resp.close()
        resp.release_conn()


def expect_s3_error(code, fn, *args, **kwargs):
    try:
        result = fn(*args, **kwargs)
    except S3Error as err:
        assert err.code == code, f"expected S3 error {code}, got {err.code}: {err.message}"
        return err
    raise AssertionError(f"expected S3 error {code}, but the call succeeded: {result!r}")


def raw_request(method, url, data=None, headers=None):
    assert url.startswith(ENDPOINT + "/"), f"refusing to contact {url}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


# --------------------------------------------------------------------------
# checks

CHECKS = []


def check(*ops):
    def register(fn):
        fn.ops = ops
        CHECKS.append(fn)
        return fn
    return register


DATA = {}


@check("CreateBucket", "HeadBucket", "ListBuckets")
def test_make_bucket():
    MC.make_bucket(BUCKET)
    MC.make_bucket(OTHER)
    assert MC.bucket_exists(BUCKET), "bucket_exists is False for a new bucket"
    assert not MC.bucket_exists(f"e2e-minio-missing-{RUN_ID}"), "bucket_exists is True for a missing bucket"
    names = [b.name for b in MC.list_buckets()]
    assert BUCKET in names and OTHER in names, f"list_buckets misses our buckets: {names}"
    expect_s3_error("BucketAlreadyOwnedByYou", MC.make_bucket, BUCKET)


@check("GetBucketLocation")
def test_bucket_location():
    # a client given no region asks each bucket's location before its first
    # request to it (and caches it): a fresh client, so that it asks here
    client = make_client()
    client.trace_on(TRACE)
    eq(client._get_region(BUCKET), "us-east-1", "bucket region")  # noqa: SLF001 - the SDK's GetBucketLocation


@check("PutObject", "HeadObject")
def test_put_single():
    key = "single/small.txt"
    data = b"hello from the minio sdk\n"
    res = MC.put_object(BUCKET, key, io.BytesIO(data), len(data), content_type="text/x-e2e",
                        metadata={"color": "blue"})
    eq(res.etag, md5_hex(data), "put_object ETag")
    st = MC.stat_object(BUCKET, key)
    eq(st.size, len(data), "stat_object size")
    eq(st.etag, md5_hex(data), "stat_object ETag")
    eq(st.content_type, "text/x-e2e", "stat_object content type")
    eq({k.lower(): v for k, v in st.metadata.items()}.get("x-amz-meta-color"), "blue", "stat_object metadata")
    assert st.last_modified is not None, "stat_object without last_modified"
    # 3 MiB: under the part size, still one PutObject
    key = "single/3mib.bin"
    data = payload(3 * MIB + 1, key)
    res = MC.put_object(BUCKET, key, io.BytesIO(data), len(data), part_size=PART)
    eq(res.etag, md5_hex(data), "put_object ETag of 3 MiB")
    DATA[key] = data


@check("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
def test_put_multipart():
    # a stream of unknown length, 5 MiB parts
    key = "mp/stream.bin"
    data = payload(12 * MIB + 5, key)
    res = MC.put_object(BUCKET, key, io.BytesIO(data), -1, part_size=PART)
    eq(res.etag, multipart_etag(data, PART), "ETag of a multipart put_object (length -1)")
    DATA[key] = data
    # known length above the part size
    key = "mp/known.bin"
    data = payload(11 * MIB, key)
    res = MC.put_object(BUCKET, key, io.BytesIO(data), len(data), part_size=PART, metadata={"kind": "mp"})
    eq(res.etag, multipart_etag(data, PART), "ETag of a multipart put_object (known length)")
    st = MC.stat_object(BUCKET, key)
    eq(st.size, len(data), "size of the multipart object")
    eq({k.lower(): v for k, v in st.metadata.items()}.get("x-amz-meta-kind"), "mp", "metadata of the multipart object")
    DATA[key] = data


@check("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "GetObject")
def test_fput_fget():
    key = "files/twelve.bin"
    data = payload(12 * MIB + 7, key)
    with tempfile.TemporaryDirectory(prefix="cairn-e2e-minio-") as tmp:
        src = os.path.join(tmp, "src.bin")
        dst = os.path.join(tmp, "dst.bin")
        with open(src, "wb") as f:
            f.write(data)
        res = MC.fput_object(BUCKET, key, src)  # the SDK's default part size: 5 MiB here
        eq(res.etag, multipart_etag(data, PART), "fput_object ETag")
        MC.fget_object(BUCKET, key, dst)
        with open(dst, "rb") as f:
            assert f.read() == data, "fget_object differs from fput_object"
    DATA[key] = data


@check("ListObjectsV2")
def test_list_objects():
    got = sorted(o.object_name for o in MC.list_objects(BUCKET, recursive=True))
    eq(got, sorted(["files/twelve.bin", "mp/known.bin", "mp/stream.bin", "single/3mib.bin", "single/small.txt"]),
       "recursive listing")
    top = [(o.object_name, o.is_dir) for o in MC.list_objects(BUCKET)]
    eq(top, [("files/", True), ("mp/", True), ("single/", True)], "top-level listing (prefixes)")
    objs = {o.object_name: o for o in MC.list_objects(BUCKET, prefix="mp/")}
    eq(sorted(objs), ["mp/known.bin", "mp/stream.bin"], "listing with prefix mp/")
    eq(objs["mp/known.bin"].size, 11 * MIB, "size in the listing")
    eq(objs["mp/known.bin"].etag, multipart_etag(DATA["mp/known.bin"], PART), "ETag in the listing")
    got = [o.object_name for o in MC.list_objects(BUCKET, recursive=True, start_after="mp/known.bin")]
    eq(got, ["mp/stream.bin", "single/3mib.bin", "single/small.txt"], "listing with start_after")


@check("ListObjects")
def test_list_objects_v1():
    got = sorted(o.object_name for o in MC.list_objects(BUCKET, recursive=True, use_api_v1=True))
    eq(got, sorted(["files/twelve.bin", "mp/known.bin", "mp/stream.bin", "single/3mib.bin", "single/small.txt"]),
       "recursive ListObjects v1")


@check("GetObject", "GetObject[range]")
def test_get_object():
    for key, data in DATA.items():
        got = read_object(key)
        assert got == data, f"get_object {key} differs ({len(got)} bytes)"
    data = DATA["mp/stream.bin"]
    for offset, length in ((0, 10), (PART - 3, 6), (2 * PART + 1, 4)):
        got = read_object("mp/stream.bin", offset=offset, length=length)
        eq(got, data[offset:offset + length], f"get_object offset={offset} length={length}")
    got = read_object("mp/stream.bin", offset=len(data) - 100)
    eq(got, data[-100:], "get_object from an offset to the end")


@check("CopyObject")
def test_copy_object():
    src = DATA["single/3mib.bin"]
    res = MC.copy_object(OTHER, "copies/3mib.bin", CopySource(BUCKET, "single/3mib.bin"))
    eq(res.etag, md5_hex(src), "copy_object ETag")
    eq(read_object("copies/3mib.bin", bucket=OTHER), src, "copied object")
    MC.copy_object(BUCKET, "copies/replaced.txt", CopySource(BUCKET, "single/small.txt"),
                   metadata={"shape": "round"}, metadata_directive=REPLACE)
    st = MC.stat_object(BUCKET, "copies/replaced.txt")
    meta = {k.lower(): v for k, v in st.metadata.items()}
    eq((meta.get("x-amz-meta-shape"), meta.get("x-amz-meta-color")), ("round", None), "metadata after a REPLACE copy")
    # a multipart source (under 5 GiB: still one CopyObject)
    MC.copy_object(BUCKET, "copies/stream.bin", CopySource(BUCKET, "mp/stream.bin"))
    eq(read_object("copies/stream.bin"), DATA["mp/stream.bin"], "copy of a multipart object")
    # conditional copies
    MC.copy_object(BUCKET, "copies/cond.txt", CopySource(BUCKET, "single/small.txt",
                                                          match_etag=md5_hex(b"hello from the minio sdk\n")))
    expect_s3_error("PreconditionFailed", MC.copy_object, BUCKET, "copies/cond2.txt",
                    CopySource(BUCKET, "single/small.txt", match_etag="0123456789abcdef0123456789abcdef"))
    expect_s3_error("NoSuchKey", MC.copy_object, BUCKET, "copies/x", CopySource(BUCKET, "single/missing"))


@check("CreateMultipartUpload", "UploadPartCopy", "CompleteMultipartUpload")
def test_compose_object():
    """compose_object: server-side concatenation, UploadPartCopy with ranges."""
    big = DATA["mp/stream.bin"]
    small = DATA["single/3mib.bin"]
    sources = [
        ComposeSource(BUCKET, "mp/stream.bin", offset=0, length=PART),
        ComposeSource(BUCKET, "mp/known.bin"),
        ComposeSource(BUCKET, "single/3mib.bin"),
    ]
    MC.compose_object(BUCKET, "composed/all.bin", sources)
    want = big[:PART] + DATA["mp/known.bin"] + small
    got = read_object("composed/all.bin")
    assert got == want, f"composed object differs ({len(got)} bytes, expected {len(want)})"
    eq(MC.stat_object(BUCKET, "composed/all.bin").size, len(want), "size of the composed object")


@check("CreateMultipartUpload", "UploadPart", "ListMultipartUploads", "ListParts", "AbortMultipartUpload")
def test_multipart_list_and_abort():
    """The SDK's own multipart calls, as its put_object uses them: an upload
    left open is listed with its parts, then aborted."""
    key = "mp/left-open.bin"
    upload_id = MC._create_multipart_upload(BUCKET, key, {})  # noqa: SLF001
    try:
        part = payload(PART, "open-1")
        etag = MC._upload_part(BUCKET, key, part, None, upload_id, 1)  # noqa: SLF001
        eq(etag, md5_hex(part), "UploadPart ETag")
        uploads = MC._list_multipart_uploads(BUCKET, prefix="mp/").uploads  # noqa: SLF001
        eq([(u.object_name, u.upload_id) for u in uploads], [(key, upload_id)], "ListMultipartUploads")
        parts = MC._list_parts(BUCKET, key, upload_id).parts  # noqa: SLF001
        eq([(p.part_number, p.etag, p.size) for p in parts], [(1, md5_hex(part), PART)], "ListParts")
    finally:
        MC._abort_multipart_upload(BUCKET, key, upload_id)  # noqa: SLF001
    eq(MC._list_multipart_uploads(BUCKET, prefix="mp/").uploads, [], "uploads after abort")  # noqa: SLF001
    expect_s3_error("NoSuchUpload", MC._list_parts, BUCKET, key, upload_id)  # noqa: SLF001
    expect_s3_error("NoSuchKey", MC.stat_object, BUCKET, key)


@check("PutObjectTagging", "GetObjectTagging", "DeleteObjectTagging", "PutObject[tagging]")
def test_tags():
    tags = Tags.new_object_tags()
    tags["project"] = "cairn"
    tags["stage"] = "e2e"
    MC.set_object_tags(BUCKET, "single/small.txt", tags)
    eq(dict(MC.get_object_tags(BUCKET, "single/small.txt") or {}), {"project": "cairn", "stage": "e2e"},
       "get_object_tags")
    MC.delete_object_tags(BUCKET, "single/small.txt")
    eq(dict(MC.get_object_tags(BUCKET, "single/small.txt") or {}), {}, "tags after delete_object_tags")
    tags = Tags.new_object_tags()
    tags["at"] = "upload"
    MC.put_object(BUCKET, "tags/at-upload", io.BytesIO(b"t"), 1, tags=tags)
    eq(dict(MC.get_object_tags(BUCKET, "tags/at-upload") or {}), {"at": "upload"}, "tags given to put_object")


@check("GetObject[presigned]", "PutObject[presigned]")
def test_presigned():
    url = MC.presigned_put_object(BUCKET, "presigned/put.bin", expires=timedelta(minutes=5))
    data = payload(100 * KIB, "presigned")
    status, headers, body = raw_request("PUT", url, data=data)
    eq(status, 200, f"presigned PUT status ({body[:200]!r})")
    url = MC.presigned_get_object(BUCKET, "presigned/put.bin", expires=timedelta(minutes=5))
    status, headers, body = raw_request("GET", url)
    eq(status, 200, "presigned GET status")
    assert body == data, "presigned GET body differs"
    eq(headers.get("etag"), f'"{md5_hex(data)}"', "presigned GET ETag")


@check("PostObject")
def test_post_policy():
    key = "post/upload.txt"
    data = payload(20 * KIB, key)
    policy = PostPolicy(BUCKET, datetime.now(timezone.utc) + timedelta(minutes=5))
    policy.add_equals_condition("key", key)
    policy.add_content_length_range_condition(1, MIB)
    fields = MC.presigned_post_policy(policy)
    fields["key"] = key
    boundary = "----cairn-e2e-" + uuid.uuid4().hex
    body = bytearray()
    for name, value in fields.items():
        body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"u.txt\"\r\n"
             f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    status, _, resp = raw_request("POST", f"{ENDPOINT}/{BUCKET}", data=bytes(body),
                                  headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status in (200, 201, 204), f"POST upload: HTTP {status} {resp[:300]!r}"
    eq(read_object(key), data, "object uploaded with the POST policy")


@check("GetBucketVersioning")
def test_versioning_status():
    # S3 answers an empty VersioningConfiguration for a bucket that was never
    # versioned (the SDK reports no status, or "Off")
    status = MC.get_bucket_versioning(BUCKET).status
    assert status in (None, "Off"), f"versioning status of a new bucket: {status!r}"


@check("DeleteObject", "DeleteObjects")
def test_remove_objects():
    MC.remove_object(BUCKET, "single/small.txt")
    expect_s3_error("NoSuchKey", MC.stat_object, BUCKET, "single/small.txt")
    MC.remove_object(BUCKET, "single/never-existed")  # S3: deleting a missing key succeeds
    keys = [o.object_name for o in MC.list_objects(BUCKET, recursive=True)]
    errors = list(MC.remove_objects(BUCKET, [DeleteObject(k) for k in keys + ["missing/key"]]))
    eq([(e.code, e.name) for e in errors], [], "remove_objects errors")
    eq([o.object_name for o in MC.list_objects(BUCKET, recursive=True)], [], "listing after remove_objects")


@check("DeleteBucket")
def test_remove_bucket():
    for o in MC.list_objects(OTHER, recursive=True):
        MC.remove_object(OTHER, o.object_name)
    MC.remove_bucket(OTHER)
    MC.remove_bucket(BUCKET)
    assert not MC.bucket_exists(BUCKET), "bucket_exists after remove_bucket"
    expect_s3_error("NoSuchBucket", MC.remove_bucket, BUCKET)


@check()
def test_errors():
    missing = f"e2e-minio-missing-{RUN_ID}"
    expect_s3_error("NoSuchBucket", MC.list_objects(missing).__iter__().__next__)
    wrong = Minio(_parsed.netloc, access_key=ACCESS_KEY, secret_key=SECRET_KEY + "-wrong", secure=False,
                  region="us-east-1", http_client=urllib3.PoolManager(retries=Retry(total=0)))
    expect_s3_error("SignatureDoesNotMatch", wrong.list_buckets)


def cleanup():
    for bucket in (BUCKET, OTHER):
        try:
            for u in MC._list_multipart_uploads(bucket).uploads:  # noqa: SLF001
                MC._abort_multipart_upload(bucket, u.object_name, u.upload_id)  # noqa: SLF001
            for o in MC.list_objects(bucket, recursive=True):
                MC.remove_object(bucket, o.object_name)
            MC.remove_bucket(bucket)
        except Exception:  # noqa: BLE001 - best effort
            pass


def _trace_tail(lines=40):
    text = TRACE.getvalue().splitlines()
    out = [line for line in text if not line.lower().startswith("authorization")]
    return "\n".join("    | " + line for line in out[-lines:])


def main():
    print(f"minio {minio.__version__} against {ENDPOINT}")
    passed, failed = [], []
    deadline = time.monotonic() + 200
    for fn in CHECKS:
        TRACE.seek(0)
        TRACE.truncate()
        MC.trace_on(TRACE)
        start = time.monotonic()
        ok = False
        if time.monotonic() > deadline:
            print(f"  FAIL {fn.__name__}: suite deadline exceeded, not run")
        else:
            try:
                fn()
                ok = True
            except Exception as err:  # noqa: BLE001 - every failure is reported
                kind = "" if isinstance(err, AssertionError) else f"{type(err).__name__}: "
                print(f"  FAIL {fn.__name__}: {kind}{err}")
                if not isinstance(err, AssertionError):
                    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == __file__]
                    if frames:
                        print(f"    at line {frames[-1].lineno}: {frames[-1].line}")
                print("    last HTTP exchanges (SDK trace):")
                print(_trace_tail())
        MC.trace_off()
        if ok:
            passed.append(fn.__name__)
            print(f"  ok   {fn.__name__} ({time.monotonic() - start:.1f}s)")
        else:
            failed.append(fn.__name__)
        for op in fn.ops:
            print(f"op {op} {'ok' if ok else 'fail'}")
    cleanup()
    print(f"minio: {len(passed)} passed, {len(failed)} failed")
    if failed:
        print("minio failed checks: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
