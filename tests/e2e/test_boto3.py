#!/usr/bin/env python3
"""End-to-end S3 checks for Cairn with boto3.

Usage: test_boto3.py ENDPOINT [ACCESS_KEY SECRET_KEY]
       (or CAIRN_E2E_ENDPOINT / CAIRN_E2E_ACCESS_KEY / CAIRN_E2E_SECRET_KEY)

Every check runs even when an earlier one fails; each failure is reported
with the last HTTP request/response the client saw, and the script ends
with "N passed, N failed" and a non-zero exit status if anything failed.
The assertions encode what Amazon S3 answers: a failing check is a server
bug (or a test bug), never something to paper over here.

Only the given endpoint (expected to be on 127.0.0.1) is ever contacted.
"""

import base64
import gzip
import hashlib
import http.client
import os
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore
import botocore.handlers
from boto3.s3.transfer import TransferConfig
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "us-east-1"
KIB = 1024
MIB = 1024 * 1024
HTTP_TIMEOUT = 60  # seconds, per request


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
RUN_ID = uuid.uuid4().hex[:8]

# The last request and response seen by any client, shown when a check fails.
_LAST = threading.local()


def _text(value):
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _on_before_send(request, **_):
    body = request.body
    if isinstance(body, (bytes, bytearray)):
        size = len(body)
    else:
        size = "stream"
    _LAST.request = (request.method, request.url, {k: _text(v) for k, v in request.headers.items()}, size)


def _on_response(response_dict, exception=None, **_):
    if response_dict is None:
        _LAST.response = f"no response: {exception!r}"
        return
    body = response_dict.get("body")
    if isinstance(body, (bytes, bytearray)):
        body = body[:600]
    else:
        body = "<stream>"
    _LAST.response = (response_dict.get("status_code"), dict(response_dict.get("headers", {})), body)


def describe_last_exchange():
    req = getattr(_LAST, "request", None)
    resp = getattr(_LAST, "response", None)
    lines = []
    if req:
        method, url, headers, size = req
        lines.append(f"    last request:  {method} {url}  (body: {size} bytes)")
        for k in sorted(headers):
            if k.lower() in ("authorization",):
                continue
            lines.append(f"        {k}: {headers[k]}")
    if resp:
        if isinstance(resp, tuple):
            status, headers, body = resp
            lines.append(f"    last response: HTTP {status}")
            for k in sorted(headers):
                lines.append(f"        {k}: {headers[k]}")
            lines.append(f"        body: {body!r}")
        else:
            lines.append(f"    last response: {resp}")
    return "\n".join(lines)


def make_client(access_key=ACCESS_KEY, secret_key=SECRET_KEY, **config):
    cfg = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=HTTP_TIMEOUT,
        **config,
    )
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=cfg,
    )
    client.meta.events.register("before-send.s3", _on_before_send)
    client.meta.events.register("response-received.s3", _on_response)
    return client


S3 = make_client()


# --------------------------------------------------------------------------
# helpers

def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def quoted_md5(data):
    return f'"{md5_hex(data)}"'


def payload(size, seed):
    """Deterministic pseudo-random bytes (not compressible, not periodic)."""
    out = bytearray()
    counter = 0
    seed_bytes = f"{seed}".encode()
    while len(out) < size:
        out += hashlib.sha256(seed_bytes + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def status_of(err):
    return err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def code_of(err):
    return err.response.get("Error", {}).get("Code")


def expect_error(fn, code, status, *args, **kwargs):
    """Call fn; it must fail with the given S3 error code and HTTP status.

    `code` may be a tuple of acceptable codes (HEAD responses have no body,
    so botocore reports the status number as the code)."""
    try:
        result = fn(*args, **kwargs)
    except ClientError as err:
        codes = code if isinstance(code, tuple) else (code,)
        got_code, got_status = code_of(err), status_of(err)
        assert got_code in codes and got_status == status, (
            f"expected error {code} / HTTP {status}, got {got_code!r} / HTTP {got_status}: "
            f"{err.response.get('Error')}"
        )
        return err
    raise AssertionError(f"expected error {code} / HTTP {status}, but the call succeeded: {_short(result)}")


def _short(result):
    if isinstance(result, dict):
        result = {k: v for k, v in result.items() if k != "ResponseMetadata"}
    text = repr(result)
    return text if len(text) < 400 else text[:400] + "..."


def eq(actual, expected, what):
    assert actual == expected, f"{what}: expected {expected!r}, got {actual!r}"


def get_bytes(bucket, key, **kwargs):
    resp = S3.get_object(Bucket=bucket, Key=key, **kwargs)
    return resp, resp["Body"].read()


def raw_request(method, url, data=None, headers=None):
    """Plain urllib request (for presigned URLs); returns (status, headers, body)."""
    assert url.startswith(ENDPOINT + "/"), f"refusing to contact {url}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
            return resp.status, _lower_keys(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, _lower_keys(err.headers), err.read()


def _lower_keys(headers):
    return {k.lower(): v for k, v in headers.items()}


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def raw_signed(method, path, headers, body=b"", body_fn=None):
    """Send one header-signed SigV4 request with http.client.

    The headers (including Content-Length, X-Amz-Content-SHA256 and any
    streaming headers) are signed by botocore's SigV4Auth; the body is sent
    as given, or built by body_fn(auth, request, seed_signature) when it
    depends on the seed signature (signed aws-chunked payloads).
    Returns (status, lower-cased headers, body)."""
    parsed = urllib.parse.urlsplit(ENDPOINT)
    req = AWSRequest(method=method, url=ENDPOINT + path, headers=dict(headers), data=b"")
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION)
    auth.add_auth(req)
    if body_fn is not None:
        seed = req.headers["Authorization"].rsplit("Signature=", 1)[1]
        body = body_fn(auth, req, seed)
    send_headers = {k: _text(v) for k, v in req.headers.items()}
    _LAST.request = (method, ENDPOINT + path, send_headers, len(body))
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=HTTP_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=send_headers)
        resp = conn.getresponse()
        result = (resp.status, _lower_keys(resp.headers), resp.read())
    finally:
        conn.close()
    _LAST.response = (result[0], result[1], result[2][:600])
    return result


def _read_http_response(stream):
    """Read one Content-Length framed HTTP/1.1 response from a socket's
    makefile("rb"). Returns (status, lower-cased headers, body), or None on EOF."""
    status_line = stream.readline()
    if not status_line:
        return None
    status = int(status_line.split()[1])
    headers = {}
    while True:
        line = stream.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return status, headers, body


def signed_request_head(method, path, headers):
    """The bytes of a SigV4-signed HTTP/1.1 request head (no body)."""
    parsed = urllib.parse.urlsplit(ENDPOINT)
    req = AWSRequest(method=method, url=ENDPOINT + path, headers=dict(headers), data=b"")
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(req)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parsed.hostname}:{parsed.port}"]
    lines += [f"{k}: {_text(v)}" for k, v in req.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunk_signature(auth, req, previous, chunk):
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256-PAYLOAD", req.context["timestamp"], auth.credential_scope(req),
        previous, EMPTY_SHA256, hashlib.sha256(chunk).hexdigest(),
    ])
    return auth.signature(string_to_sign, req)


def _trailer_signature(auth, req, previous, trailer_text):
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256-TRAILER", req.context["timestamp"], auth.credential_scope(req),
        previous, hashlib.sha256(trailer_text.encode()).hexdigest(),
    ])
    return auth.signature(string_to_sign, req)


def _split(data, chunk_size):
    return [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]


def aws_chunked_put(bucket, key, data, mode, chunk_size=64 * KIB, crc=None, tamper=False):
    """PutObject with an aws-chunked body, the way the AWS SDKs (Java, Go,
    JS, .NET...) stream uploads:
      mode "unsigned-trailer": STREAMING-UNSIGNED-PAYLOAD-TRAILER
      mode "signed":           STREAMING-AWS4-HMAC-SHA256-PAYLOAD
      mode "signed-trailer":   STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER
    crc overrides the trailing CRC32; tamper flips a byte of the first chunk
    after it was signed."""
    chunks = _split(data, chunk_size)
    crc = crc or crc32_b64(data)
    trailer_line = f"x-amz-checksum-crc32:{crc}"
    sha = {
        "unsigned-trailer": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "signed": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "signed-trailer": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    }[mode]
    signed = mode.startswith("signed")
    trailer = mode.endswith("trailer")

    def chunk_len(n):
        head = len(f"{n:x}") + (len(";chunk-signature=") + 64 if signed else 0)
        return head + 2 + n + 2

    length = sum(chunk_len(len(c)) for c in chunks)
    length += len("0") + (len(";chunk-signature=") + 64 if signed else 0) + 2
    if trailer:
        length += len(trailer_line) + 2
        if signed:
            length += len("x-amz-trailer-signature:") + 64 + 2
    length += 2

    headers = {
        "Content-Encoding": "aws-chunked",
        "Content-Length": str(length),
        "X-Amz-Content-SHA256": sha,
        "X-Amz-Decoded-Content-Length": str(len(data)),
    }
    if trailer:
        headers["X-Amz-Trailer"] = "x-amz-checksum-crc32"

    def build(auth, req, seed):
        out, previous = bytearray(), seed
        for i, chunk in enumerate(chunks):
            if signed:
                previous = _chunk_signature(auth, req, previous, chunk)
                out += f"{len(chunk):x};chunk-signature={previous}\r\n".encode()
            else:
                out += f"{len(chunk):x}\r\n".encode()
            if tamper and i == 0:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            out += chunk + b"\r\n"
        if signed:
            previous = _chunk_signature(auth, req, previous, b"")
            out += f"0;chunk-signature={previous}\r\n".encode()
        else:
            out += b"0\r\n"
        if trailer:
            out += trailer_line.encode() + b"\r\n"
            if signed:
                sig = _trailer_signature(auth, req, previous, trailer_line + "\n")
                out += f"x-amz-trailer-signature:{sig}\r\n".encode()
        out += b"\r\n"
        assert len(out) == length, f"test bug: aws-chunked length {len(out)} != {length}"
        return bytes(out)

    path = "/" + bucket + "/" + urllib.parse.quote(key, safe="/~")
    return raw_signed("PUT", path, headers, body_fn=build)


def xml_error_code(body):
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.split("}")[-1] == "Code":
            return el.text
    return None


# --------------------------------------------------------------------------
# checks

CHECKS = []


def check(*ops):
    """Registers a check. Used bare (@check) or with the S3 operations the
    check is about (@check("PutObject", "GetObject[range]")): when it ends,
    main() prints `op NAME ok|fail` for each of them, which run.sh collects
    into the clients-by-operation matrix. A bracketed suffix names a feature
    of the operation that gets its own row."""
    if len(ops) == 1 and callable(ops[0]):
        ops[0].ops = ()
        CHECKS.append(ops[0])
        return ops[0]

    def register(fn):
        fn.ops = ops
        CHECKS.append(fn)
        return fn
    return register


BUCKET = f"e2e-boto3-{RUN_ID}"          # main data bucket
LIST_BUCKET = f"e2e-boto3-list-{RUN_ID}"  # listing fixtures
TMP_BUCKET = f"e2e-boto3-tmp-{RUN_ID}"    # bucket lifecycle
SIZES = [0, 1, 1000, 300 * KIB, MIB + 1, 5 * MIB + 123]
OBJECTS = {}  # key -> bytes, filled by test_put_get_sizes


@check("CreateBucket")
def test_create_bucket():
    resp = S3.create_bucket(Bucket=BUCKET)
    eq(status_of_resp(resp), 200, "CreateBucket status")
    S3.create_bucket(Bucket=LIST_BUCKET)


def status_of_resp(resp):
    return resp["ResponseMetadata"]["HTTPStatusCode"]


@check("CreateBucket", "HeadBucket", "ListBuckets", "GetBucketLocation", "DeleteBucket")
def test_bucket_lifecycle():
    S3.create_bucket(Bucket=TMP_BUCKET)
    eq(status_of_resp(S3.head_bucket(Bucket=TMP_BUCKET)), 200, "HeadBucket status")

    listed = S3.list_buckets()
    names = [b["Name"] for b in listed["Buckets"]]
    assert TMP_BUCKET in names and BUCKET in names, f"ListBuckets misses our buckets: {names}"
    for b in listed["Buckets"]:
        assert b.get("CreationDate") is not None, f"bucket without CreationDate: {b}"
    eq(names, sorted(names), "ListBuckets order")

    loc = S3.get_bucket_location(Bucket=TMP_BUCKET)
    # Amazon S3 answers an empty LocationConstraint for us-east-1 (botocore: None).
    assert loc.get("LocationConstraint") in (None, ""), f"GetBucketLocation: {loc.get('LocationConstraint')!r}"

    expect_error(S3.create_bucket, "BucketAlreadyOwnedByYou", 409, Bucket=TMP_BUCKET)

    S3.put_object(Bucket=TMP_BUCKET, Key="x", Body=b"x")
    expect_error(S3.delete_bucket, "BucketNotEmpty", 409, Bucket=TMP_BUCKET)
    S3.delete_object(Bucket=TMP_BUCKET, Key="x")

    eq(status_of_resp(S3.delete_bucket(Bucket=TMP_BUCKET)), 204, "DeleteBucket status")
    expect_error(S3.head_bucket, ("404", "NotFound", "NoSuchBucket"), 404, Bucket=TMP_BUCKET)
    names = [b["Name"] for b in S3.list_buckets()["Buckets"]]
    assert TMP_BUCKET not in names, f"deleted bucket still listed: {names}"
    expect_error(S3.delete_bucket, "NoSuchBucket", 404, Bucket=TMP_BUCKET)


@check("PutObject", "GetObject", "HeadObject")
def test_put_get_sizes():
    for size in SIZES:
        key = f"sizes/obj-{size}"
        data = payload(size, key)
        OBJECTS[key] = data
        put = S3.put_object(Bucket=BUCKET, Key=key, Body=data)
        eq(put.get("ETag"), quoted_md5(data), f"PutObject ETag for {size} bytes")

        resp, got = get_bytes(BUCKET, key)
        eq(len(got), size, f"GetObject length for {size} bytes")
        assert got == data, f"GetObject body differs for {size} bytes"
        eq(resp.get("ETag"), quoted_md5(data), f"GetObject ETag for {size} bytes")
        eq(resp.get("ContentLength"), size, f"GetObject Content-Length for {size} bytes")

        head = S3.head_object(Bucket=BUCKET, Key=key)
        eq(head.get("ContentLength"), size, f"HeadObject Content-Length for {size} bytes")
        eq(head.get("ETag"), quoted_md5(data), f"HeadObject ETag for {size} bytes")
        assert head.get("LastModified") is not None, "HeadObject without Last-Modified"


@check("PutObject")
def test_overwrite():
    key = "overwrite/k"
    S3.put_object(Bucket=BUCKET, Key=key, Body=b"first version")
    S3.put_object(Bucket=BUCKET, Key=key, Body=b"second")
    _, got = get_bytes(BUCKET, key)
    eq(got, b"second", "body after overwrite")
    eq(S3.head_object(Bucket=BUCKET, Key=key)["ContentLength"], 6, "length after overwrite")


@check("GetObject[range]")
def test_range_gets():
    assert OBJECTS, "depends on test_put_get_sizes"
    cases = []
    big = "sizes/obj-%d" % (5 * MIB + 123)
    mib1 = "sizes/obj-%d" % (MIB + 1)
    k300 = "sizes/obj-%d" % (300 * KIB)
    for key in (big, mib1, k300):
        n = len(OBJECTS[key])
        cases += [
            (key, "bytes=0-99", 0, 99),
            (key, "bytes=0-0", 0, 0),
            (key, "bytes=-10", n - 10, n - 1),
            (key, "bytes=100-", 100, n - 1),
            (key, f"bytes={n - 5}-{n + 1000}", n - 5, n - 1),  # end past the size is clamped
            (key, f"bytes={n - 1}-{n - 1}", n - 1, n - 1),
        ]
    # across the 1 MiB boundary
    cases += [
        (big, f"bytes={MIB - 1000}-{MIB + 1000}", MIB - 1000, MIB + 1000),
        (big, f"bytes={MIB - 1}-{MIB}", MIB - 1, MIB),
        (big, f"bytes={3 * MIB - 7}-{4 * MIB + 9}", 3 * MIB - 7, 4 * MIB + 9),
        (mib1, f"bytes={MIB - 10}-{MIB}", MIB - 10, MIB),
        (mib1, f"bytes={MIB}-", MIB, MIB),
    ]
    for key, rng, first, last in cases:
        data = OBJECTS[key]
        resp, got = get_bytes(BUCKET, key, Range=rng)
        what = f"GET {key} Range {rng}"
        eq(status_of_resp(resp), 206, f"{what}: status")
        eq(resp.get("ContentRange"), f"bytes {first}-{last}/{len(data)}", f"{what}: Content-Range")
        eq(resp.get("ContentLength"), last - first + 1, f"{what}: Content-Length")
        assert got == data[first:last + 1], f"{what}: body differs (got {len(got)} bytes)"


@check("GetObject[range]")
def test_range_unsatisfiable():
    key = "sizes/obj-1000"
    expect_error(S3.get_object, "InvalidRange", 416, Bucket=BUCKET, Key=key, Range="bytes=1000-")
    expect_error(S3.get_object, "InvalidRange", 416, Bucket=BUCKET, Key=key, Range="bytes=5000-6000")
    expect_error(S3.get_object, "InvalidRange", 416, Bucket=BUCKET, Key="sizes/obj-0", Range="bytes=0-0")


@check("GetObject[range]")
def test_range_ignored():
    """S3 (like RFC 9110) ignores a Range header it cannot use and answers
    200 with the whole object: multiple ranges, other units, last < first,
    and syntax errors."""
    key = "sizes/obj-1000"
    data = OBJECTS[key]
    problems = []
    for rng in ("bytes=0-1,3-4", "items=0-1", "bytes=5-2", "bytes=abc"):
        try:
            resp, got = get_bytes(BUCKET, key, Range=rng)
        except ClientError as err:
            problems.append(f"Range {rng}: HTTP {status_of(err)} {code_of(err)} ({err.response['Error'].get('Message')}), "
                            f"S3 answers 200 with the whole object")
            continue
        if status_of_resp(resp) != 200 or got != data:
            problems.append(f"Range {rng}: HTTP {status_of_resp(resp)} with {len(got)} bytes, "
                            f"S3 answers 200 with the whole object")
    assert not problems, "unusable Range headers are not ignored:\n      " + "\n      ".join(problems)


@check("PutObject", "GetObject", "ListObjectsV2")
def test_odd_keys():
    """Keys are opaque strings in S3: nothing is normalised."""
    keys = ["odd/folder/", "odd//double", "odd/./dot", "odd/../dotdot", "odd/..", "odd/trailing space ",
            "odd/q?x#y", "odd/new\nline", "odd/back\\slash", "odd/semi;colon", "odd/tab\tkey"]
    for key in keys:
        S3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    for key in keys:
        _, got = get_bytes(BUCKET, key)
        eq(got, key.encode(), f"body of {key!r}")
    listed = [o["Key"] for o in S3.list_objects_v2(Bucket=BUCKET, Prefix="odd/").get("Contents", [])]
    eq(listed, sorted(keys, key=str.encode), "listing of odd keys")
    resp = S3.list_objects_v2(Bucket=BUCKET, Prefix="odd/", Delimiter="/")
    expected_prefixes = sorted({"odd/" + k[4:].split("/")[0] + "/" for k in keys if "/" in k[4:]}, key=str.encode)
    eq([p["Prefix"] for p in resp.get("CommonPrefixes", [])], expected_prefixes, "CommonPrefixes of odd keys")
    for key in keys:
        S3.delete_object(Bucket=BUCKET, Key=key)
    eq(S3.list_objects_v2(Bucket=BUCKET, Prefix="odd/").get("KeyCount"), 0, "odd keys after delete")


@check("PutObject", "HeadObject", "GetObject")
def test_metadata_and_headers():
    key = "meta/doc.txt.gz"
    data = gzip.compress(b"hello cairn " * 100)
    put = S3.put_object(
        Bucket=BUCKET,
        Key=key,
        Body=data,
        Metadata={"color": "blue", "Mixed-Case": "Some Value", "empty": ""},
        ContentType="text/x-cairn; charset=utf-8",
        ContentDisposition='attachment; filename="doc.txt"',
        CacheControl="max-age=60, public",
        ContentEncoding="gzip",
        ContentLanguage="en-GB",
    )
    eq(put["ETag"], quoted_md5(data), "PutObject ETag")
    for op in ("head", "get"):
        if op == "head":
            resp = S3.head_object(Bucket=BUCKET, Key=key)
        else:
            resp, got = get_bytes(BUCKET, key)
            assert got == data, "GetObject body differs (Content-Encoding must not be decoded by the server)"
        # S3 lower-cases user metadata names.
        eq(resp.get("Metadata"), {"color": "blue", "mixed-case": "Some Value", "empty": ""}, f"{op}: Metadata")
        eq(resp.get("ContentType"), "text/x-cairn; charset=utf-8", f"{op}: Content-Type")
        eq(resp.get("ContentDisposition"), 'attachment; filename="doc.txt"', f"{op}: Content-Disposition")
        eq(resp.get("CacheControl"), "max-age=60, public", f"{op}: Cache-Control")
        eq(resp.get("ContentEncoding"), "gzip", f"{op}: Content-Encoding")
        eq(resp.get("ContentLanguage"), "en-GB", f"{op}: Content-Language")


@check("PutObject[aws-chunked]")
def test_aws_chunked_trailer_upload():
    """PutObject the way botocore sends it over HTTPS by default:
    Content-Encoding: aws-chunked, x-amz-content-sha256:
    STREAMING-UNSIGNED-PAYLOAD-TRAILER, and a trailing x-amz-checksum-crc32.
    (Over plain http botocore puts the CRC32 in a header instead, which
    test_put_get_sizes covers; here we force the https code path.)"""
    client = make_client()

    def force_trailer(params, **_):
        algo = params.get("context", {}).get("checksum", {}).get("request_algorithm")
        if isinstance(algo, dict):
            algo["in"] = "trailer"

    client.meta.events.register("before-call.s3.PutObject", force_trailer)
    # S3 stores the object without the aws-chunked content coding; these
    # mismatches are collected so that the data checks still run for all sizes.
    encoding_problems = []
    for size in (0, 1000, 300 * KIB, MIB + 1, 2 * MIB + 5):
        key = f"chunked/obj-{size}"
        data = payload(size, key)
        put = client.put_object(Bucket=BUCKET, Key=key, Body=data)
        req_headers = {k.lower(): v for k, v in _LAST.request[2].items()}
        eq(req_headers.get("x-amz-content-sha256"), "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
           "test setup: request must be aws-chunked with a trailer")
        eq(put.get("ETag"), quoted_md5(data), f"aws-chunked PutObject ETag for {size} bytes")
        resp, got = get_bytes(BUCKET, key)
        assert got == data, f"aws-chunked upload of {size} bytes reads back differently ({len(got)} bytes)"
        eq(resp.get("ContentLength"), size, f"aws-chunked upload of {size} bytes: Content-Length")
        if resp.get("ContentEncoding"):
            encoding_problems.append(f"{size} bytes, no Content-Encoding sent: GET answers "
                                     f"Content-Encoding {resp.get('ContentEncoding')!r}, S3 answers none")

    key = "chunked/gzip"
    data = gzip.compress(payload(5000, key))
    client.put_object(Bucket=BUCKET, Key=key, Body=data, ContentEncoding="gzip")
    resp, got = get_bytes(BUCKET, key)
    assert got == data, "aws-chunked gzip upload reads back differently"
    if resp.get("ContentEncoding") != "gzip":
        encoding_problems.append(f"'Content-Encoding: gzip,aws-chunked' sent: GET answers "
                                 f"Content-Encoding {resp.get('ContentEncoding')!r}, S3 answers 'gzip'")
    assert not encoding_problems, "aws-chunked kept in the stored Content-Encoding:\n      " + "\n      ".join(encoding_problems)


@check("PutObject[aws-chunked]")
def test_aws_chunked_sdk_styles():
    """aws-chunked uploads as the other AWS SDKs send them (fixed
    Content-Length, 64 KiB chunks), with and without chunk signatures."""
    problems = []
    for mode in ("unsigned-trailer", "signed", "signed-trailer"):
        for size in (0, 1000, 200 * KIB + 3, MIB + 1):
            key = f"sdk-chunked/{mode}-{size}"
            data = payload(size, key)
            status, headers, body = aws_chunked_put(BUCKET, key, data, mode)
            if status != 200:
                problems.append(f"{mode}, {size} bytes: HTTP {status} {xml_error_code(body)}: {body[:200]!r}")
                continue
            if headers.get("etag") != quoted_md5(data):
                problems.append(f"{mode}, {size} bytes: ETag {headers.get('etag')} != {quoted_md5(data)}")
            resp, got = get_bytes(BUCKET, key)
            if got != data:
                problems.append(f"{mode}, {size} bytes: reads back {len(got)} different bytes")
    assert not problems, "aws-chunked uploads failed:\n      " + "\n      ".join(problems)


@check("PutObject[aws-chunked]")
def test_aws_chunked_integrity_errors():
    key = "sdk-chunked/integrity"
    old = b"previous version"
    S3.put_object(Bucket=BUCKET, Key=key, Body=old)
    data = payload(150 * KIB, key)
    wrong_crc = crc32_b64(b"not the data")
    problems = []
    cases = [
        ("unsigned-trailer", dict(crc=wrong_crc), 400, "BadDigest"),
        ("signed-trailer", dict(crc=wrong_crc), 400, "BadDigest"),
        ("signed", dict(tamper=True), 403, "SignatureDoesNotMatch"),
        ("signed-trailer", dict(tamper=True), 403, "SignatureDoesNotMatch"),
    ]
    for mode, kwargs, want_status, want_code in cases:
        status, _, body = aws_chunked_put(BUCKET, key, data, mode, **kwargs)
        got_code = xml_error_code(body)
        if (status, got_code) != (want_status, want_code):
            problems.append(f"{mode} {kwargs}: expected HTTP {want_status} {want_code}, "
                            f"got HTTP {status} {got_code}: {body[:200]!r}")
        _, got = get_bytes(BUCKET, key)
        if got != old:
            problems.append(f"{mode} {kwargs}: object changed to {len(got)} bytes after a rejected upload")
            S3.put_object(Bucket=BUCKET, Key=key, Body=old)
    assert not problems, "corrupt aws-chunked uploads:\n      " + "\n      ".join(problems)


@check
def test_early_error_with_unread_body():
    """A PUT sent with `Expect: 100-continue` that the server rejects before
    reading the body (here: NoSuchBucket). botocore sends every PutObject
    this way and, on a final status, does not send the body (RFC 9110
    10.1.1) and then reuses the connection. The server has not read the
    announced body, so it must say `Connection: close` (and close), or else
    read the next request as a request. Without that, the next request on
    the connection either meets a silent close or has its first bytes eaten
    as the missing body ("GET" arrives as "ET": SignatureDoesNotMatch)."""
    parsed = urllib.parse.urlsplit(ENDPOINT)
    missing = f"/e2e-missing-{RUN_ID}"
    body = b"x"  # one byte: "GET" becomes "ET", which still parses as a request
    put = signed_request_head("PUT", missing + "/k", {
        "Content-Length": str(len(body)),
        "Expect": "100-continue",
        "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(),
    })
    get = signed_request_head("GET", missing + "?list-type=2", {"X-Amz-Content-SHA256": EMPTY_SHA256})
    problems = []

    # 1. as botocore does it: headers only, wait for the answer, reuse the connection
    with socket.create_connection((parsed.hostname, parsed.port), timeout=5) as sock:
        stream = sock.makefile("rb")
        sock.sendall(put)
        first = _read_http_response(stream)
        assert first is not None, "no response to the PUT"
        eq((first[0], xml_error_code(first[2])), (404, "NoSuchBucket"), "early answer to the PUT")
        if first[1].get("connection", "").lower() != "close":
            problems.append("the early 404 to a PUT whose body was never read has no 'Connection: close'")
            try:
                sock.sendall(get)
                second = _read_http_response(stream)
            except OSError as err:
                second = err
            if not (isinstance(second, tuple) and (second[0], xml_error_code(second[2])) == (404, "NoSuchBucket")):
                if isinstance(second, tuple):
                    what = f"HTTP {second[0]} {xml_error_code(second[2])}"
                else:
                    what = "the connection was closed" if second is None else repr(second)
                problems.append(f"a GET sent next on that kept-alive connection got: {what} "
                                f"(expected HTTP 404 NoSuchBucket)")

    # 2. the next request already in flight when the early answer goes out
    with socket.create_connection((parsed.hostname, parsed.port), timeout=5) as sock:
        stream = sock.makefile("rb")
        sock.sendall(put + get)
        first = _read_http_response(stream)
        assert first is not None, "no response to the PUT"
        if first[1].get("connection", "").lower() != "close":
            try:
                second = _read_http_response(stream)
            except OSError as err:
                second = err
            if isinstance(second, tuple) and (second[0], xml_error_code(second[2])) != (404, "NoSuchBucket"):
                problems.append(f"with the GET right behind the PUT, the GET was misread: HTTP {second[0]} "
                                f"{xml_error_code(second[2])} (its first byte was taken as the PUT body)")
    assert not problems, "early error responses leave the connection in a bad state:\n      " + "\n      ".join(problems)


@check("PutObject[checksum]")
def test_checksum_header_mismatch():
    key = "checksum/bad-crc"
    S3.put_object(Bucket=BUCKET, Key=key, Body=b"original")
    # CRC32 of something else: the server must verify the checksum header botocore sends.
    expect_error(S3.put_object, "BadDigest", 400,
                 Bucket=BUCKET, Key=key, Body=b"tampered", ChecksumCRC32="AAAAAA==")
    _, got = get_bytes(BUCKET, key)
    eq(got, b"original", "object after rejected PutObject")


@check("PutObject")
def test_bad_content_md5():
    key = "checksum/bad-md5"
    old = b"the old contents"
    S3.put_object(Bucket=BUCKET, Key=key, Body=old)
    wrong_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    expect_error(S3.put_object, "BadDigest", 400, Bucket=BUCKET, Key=key, Body=b"new contents", ContentMD5=wrong_md5)
    resp, got = get_bytes(BUCKET, key)
    eq(got, old, "object after BadDigest")
    eq(resp["ETag"], quoted_md5(old), "ETag after BadDigest")
    # a correct Content-MD5 is accepted
    good_md5 = base64.b64encode(hashlib.md5(b"new contents").digest()).decode()
    S3.put_object(Bucket=BUCKET, Key=key, Body=b"new contents", ContentMD5=good_md5)
    _, got = get_bytes(BUCKET, key)
    eq(got, b"new contents", "object after PutObject with a correct Content-MD5")


@check("PutObject")
def test_malformed_content_md5():
    expect_error(S3.put_object, "InvalidDigest", 400, Bucket=BUCKET, Key="checksum/malformed-md5",
                 Body=b"data", ContentMD5="not-a-md5")
    expect_error(S3.head_object, ("404", "NotFound", "NoSuchKey"), 404, Bucket=BUCKET, Key="checksum/malformed-md5")


def _setup_listing():
    keys = [
        "a/1", "a/2", "a/b/3", "a/b/4", "b/1", "c", "d e/f", "plus+sign", "pct%41", "x/y/z",
        "\u00fcn\u00efc\u00f6de/\u043a\u043b\u044e\u0447", "amp&lt<gt>",
    ]
    keys += [f"many/{i:03d}" for i in range(25)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda k: S3.put_object(Bucket=LIST_BUCKET, Key=k, Body=k.encode()), keys))
    return sorted(keys, key=lambda k: k.encode())


LIST_KEYS = []


@check("ListObjectsV2")
def test_listing_v2():
    LIST_KEYS[:] = _setup_listing()
    keys = LIST_KEYS

    resp = S3.list_objects_v2(Bucket=LIST_BUCKET)
    got = [o["Key"] for o in resp.get("Contents", [])]
    eq(got, keys, "ListObjectsV2 (all keys, byte order)")
    eq(resp.get("KeyCount"), len(keys), "KeyCount")
    eq(resp.get("IsTruncated"), False, "IsTruncated")
    for o in resp["Contents"]:
        eq(o.get("Size"), len(o["Key"].encode()), f"Size of {o['Key']}")
        eq(o.get("ETag"), quoted_md5(o["Key"].encode()), f"ETag of {o['Key']} in listing")
        assert o.get("LastModified") is not None, f"no LastModified for {o['Key']}"

    resp = S3.list_objects_v2(Bucket=LIST_BUCKET, Prefix="a/")
    eq([o["Key"] for o in resp.get("Contents", [])], ["a/1", "a/2", "a/b/3", "a/b/4"], "Prefix=a/")
    eq(resp.get("Prefix"), "a/", "echoed Prefix")

    resp = S3.list_objects_v2(Bucket=LIST_BUCKET, Delimiter="/")
    eq([o["Key"] for o in resp.get("Contents", [])],
       sorted([k for k in keys if "/" not in k], key=str.encode), "Delimiter=/ contents")
    expected_prefixes = sorted({k.split("/")[0] + "/" for k in keys if "/" in k}, key=str.encode)
    eq([p["Prefix"] for p in resp.get("CommonPrefixes", [])], expected_prefixes, "Delimiter=/ CommonPrefixes")
    eq(resp.get("KeyCount"), len(resp.get("Contents", [])) + len(expected_prefixes), "KeyCount with delimiter")

    resp = S3.list_objects_v2(Bucket=LIST_BUCKET, Prefix="a/", Delimiter="/")
    eq([o["Key"] for o in resp.get("Contents", [])], ["a/1", "a/2"], "Prefix=a/ Delimiter=/ contents")
    eq([p["Prefix"] for p in resp.get("CommonPrefixes", [])], ["a/b/"], "Prefix=a/ Delimiter=/ CommonPrefixes")

    resp = S3.list_objects_v2(Bucket=LIST_BUCKET, Prefix="nothing-here/")
    eq(resp.get("Contents", []), [], "Prefix matching nothing")
    eq(resp.get("KeyCount"), 0, "KeyCount for empty result")

    resp = S3.list_objects_v2(Bucket=LIST_BUCKET, StartAfter="b/1")
    eq([o["Key"] for o in resp.get("Contents", [])], [k for k in keys if k.encode() > b"b/1"], "StartAfter=b/1")
    eq(resp.get("StartAfter"), "b/1", "echoed StartAfter")


@check("ListObjectsV2")
def test_listing_v2_pagination():
    keys = LIST_KEYS
    assert keys, "depends on test_listing_v2"
    got, token, pages = [], None, 0
    while pages < 100:
        kwargs = {"Bucket": LIST_BUCKET, "MaxKeys": 4}
        if token:
            kwargs["ContinuationToken"] = token
        resp = S3.list_objects_v2(**kwargs)
        pages += 1
        page = [o["Key"] for o in resp.get("Contents", [])]
        assert len(page) <= 4, f"page {pages} has {len(page)} keys > MaxKeys=4"
        eq(resp.get("MaxKeys"), 4, "echoed MaxKeys")
        eq(resp.get("KeyCount"), len(page), f"KeyCount on page {pages}")
        if token:
            eq(resp.get("ContinuationToken"), token, "echoed ContinuationToken")
        got += page
        if not resp.get("IsTruncated"):
            assert not resp.get("NextContinuationToken"), "NextContinuationToken on the last page"
            break
        token = resp.get("NextContinuationToken")
        assert token, f"IsTruncated without NextContinuationToken on page {pages}"
    eq(got, keys, "keys collected through ContinuationToken pages")
    eq(pages, -(-len(keys) // 4), "number of pages with MaxKeys=4")

    # the paginator, with and without a delimiter
    pager = S3.get_paginator("list_objects_v2")
    got, pages = [], 0
    for page in pager.paginate(Bucket=LIST_BUCKET, PaginationConfig={"PageSize": 3, "MaxItems": 1000}):
        pages += 1
        got += [o["Key"] for o in page.get("Contents", [])]
    eq(got, keys, "paginator (PageSize=3) keys")
    eq(pages, -(-len(keys) // 3), "paginator page count")

    got_keys, got_prefixes = [], []
    for page in pager.paginate(Bucket=LIST_BUCKET, Delimiter="/", PaginationConfig={"PageSize": 2, "MaxItems": 1000}):
        got_keys += [o["Key"] for o in page.get("Contents", [])]
        got_prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    eq(got_keys, sorted([k for k in keys if "/" not in k], key=str.encode), "paginator with Delimiter: keys")
    eq(got_prefixes, sorted({k.split("/")[0] + "/" for k in keys if "/" in k}, key=str.encode),
       "paginator with Delimiter: CommonPrefixes (each exactly once)")

    got = []
    for page in pager.paginate(Bucket=LIST_BUCKET, Prefix="many/", StartAfter="many/010",
                               PaginationConfig={"PageSize": 5, "MaxItems": 1000}):
        got += [o["Key"] for o in page.get("Contents", [])]
    eq(got, [f"many/{i:03d}" for i in range(11, 25)], "paginator with Prefix and StartAfter")


@check("ListObjects")
def test_listing_v1():
    keys = LIST_KEYS
    assert keys, "depends on test_listing_v2"
    resp = S3.list_objects(Bucket=LIST_BUCKET)
    eq([o["Key"] for o in resp.get("Contents", [])], keys, "ListObjects v1 all keys")
    eq(resp.get("IsTruncated"), False, "v1 IsTruncated")

    resp = S3.list_objects(Bucket=LIST_BUCKET, Marker="a/2")
    eq([o["Key"] for o in resp.get("Contents", [])], [k for k in keys if k.encode() > b"a/2"], "v1 Marker=a/2")
    eq(resp.get("Marker"), "a/2", "echoed Marker")

    resp = S3.list_objects(Bucket=LIST_BUCKET, Prefix="many/", MaxKeys=10)
    eq([o["Key"] for o in resp["Contents"]], [f"many/{i:03d}" for i in range(10)], "v1 MaxKeys=10 first page")
    eq(resp.get("IsTruncated"), True, "v1 IsTruncated with MaxKeys")
    resp = S3.list_objects(Bucket=LIST_BUCKET, Prefix="many/", MaxKeys=10, Marker="many/009")
    eq([o["Key"] for o in resp["Contents"]], [f"many/{i:03d}" for i in range(10, 20)], "v1 second page via Marker")

    # with a delimiter, a truncated v1 listing must carry NextMarker
    resp = S3.list_objects(Bucket=LIST_BUCKET, Delimiter="/", MaxKeys=2)
    eq(resp.get("IsTruncated"), True, "v1 Delimiter MaxKeys=2 IsTruncated")
    assert resp.get("NextMarker"), f"v1 truncated listing with Delimiter lacks NextMarker: {_short(resp)}"

    pager = S3.get_paginator("list_objects")
    got_keys, got_prefixes = [], []
    for page in pager.paginate(Bucket=LIST_BUCKET, Delimiter="/", PaginationConfig={"PageSize": 2, "MaxItems": 1000}):
        got_keys += [o["Key"] for o in page.get("Contents", [])]
        got_prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    eq(got_keys, sorted([k for k in keys if "/" not in k], key=str.encode), "v1 paginator with Delimiter: keys")
    eq(got_prefixes, sorted({k.split("/")[0] + "/" for k in keys if "/" in k}, key=str.encode),
       "v1 paginator with Delimiter: CommonPrefixes")

    got = []
    for page in pager.paginate(Bucket=LIST_BUCKET, PaginationConfig={"PageSize": 7, "MaxItems": 1000}):
        got += [o["Key"] for o in page.get("Contents", [])]
    eq(got, keys, "v1 paginator (PageSize=7) keys")


@check("ListObjectsV2", "ListObjects")
def test_listing_encoding_type_url():
    keys = LIST_KEYS
    assert keys, "depends on test_listing_v2"
    # botocore's default handler asks for encoding-type=url and decodes the
    # answer, so the listings above already went through it.  Here we ask
    # explicitly, so botocore leaves the keys as the server sent them.
    for op in (S3.list_objects_v2, S3.list_objects):
        resp = op(Bucket=LIST_BUCKET, EncodingType="url")
        eq(resp.get("EncodingType"), "url", f"{op.__name__}: echoed EncodingType")
        raw = [o["Key"] for o in resp.get("Contents", [])]
        decoded = [urllib.parse.unquote_plus(k) for k in raw]
        eq(decoded, keys, f"{op.__name__}: url-decoded keys")
        raw_by_key = dict(zip(decoded, raw))
        for key in ("d e/f", "plus+sign", "pct%41"):
            assert raw_by_key[key] != key, f"{op.__name__}: key {key!r} was not url-encoded: {raw_by_key[key]!r}"
        resp = op(Bucket=LIST_BUCKET, EncodingType="url", Delimiter="/")
        prefixes = [urllib.parse.unquote_plus(p["Prefix"]) for p in resp.get("CommonPrefixes", [])]
        assert "d e/" in prefixes, f"{op.__name__}: CommonPrefixes not url-decodable: {resp.get('CommonPrefixes')}"


@check("GetObject", "HeadObject")
def test_special_keys_roundtrip():
    keys = ["d e/f", "plus+sign", "pct%41", "\u00fcn\u00efc\u00f6de/\u043a\u043b\u044e\u0447", "amp&lt<gt>"]
    for key in keys:
        _, got = get_bytes(LIST_BUCKET, key)
        eq(got, key.encode(), f"body of special key {key!r}")
        eq(S3.head_object(Bucket=LIST_BUCKET, Key=key)["ContentLength"], len(key.encode()), f"head {key!r}")


@check
def test_missing_things():
    expect_error(S3.head_object, ("404", "NotFound", "NoSuchKey"), 404, Bucket=BUCKET, Key="no/such/key")
    expect_error(S3.get_object, "NoSuchKey", 404, Bucket=BUCKET, Key="no/such/key")
    missing = f"e2e-missing-{RUN_ID}"
    expect_error(S3.get_object, "NoSuchBucket", 404, Bucket=missing, Key="k")
    expect_error(S3.put_object, "NoSuchBucket", 404, Bucket=missing, Key="k", Body=b"x")
    expect_error(S3.list_objects_v2, "NoSuchBucket", 404, Bucket=missing)
    expect_error(S3.list_objects, "NoSuchBucket", 404, Bucket=missing)
    expect_error(S3.head_bucket, ("404", "NotFound", "NoSuchBucket"), 404, Bucket=missing)
    expect_error(S3.head_object, ("404", "NotFound", "NoSuchBucket"), 404, Bucket=missing, Key="k")
    expect_error(S3.get_bucket_location, "NoSuchBucket", 404, Bucket=missing)
    expect_error(S3.delete_bucket, "NoSuchBucket", 404, Bucket=missing)


@check("CreateBucket")
def test_invalid_bucket_names():
    client = make_client()
    # botocore refuses some names before sending; we want the server's answer.
    client.meta.events.unregister("before-parameter-build.s3", botocore.handlers.validate_bucket_name)
    bad = ["ab", "a" * 64, "Bad-Uppercase", "bad_underscore", "bad..dots", "-leading-dash",
           "trailing-dash-", "192.168.5.4", "bad!char"]
    failures = []
    for name in bad:
        try:
            expect_error(client.create_bucket, "InvalidBucketName", 400, Bucket=name)
        except AssertionError as err:
            failures.append(f"{name!r}: {err}")
    names = [b["Name"] for b in S3.list_buckets()["Buckets"]]
    created = [n for n in bad if n in names]
    assert not failures, "CreateBucket with invalid names:\n      " + "\n      ".join(failures)
    assert not created, f"invalid bucket names were created: {created}"


@check("PutObject")
def test_key_length():
    ok_key = ("k" * 99 + "/") * 10 + "k" * 24  # exactly 1024 bytes
    eq(len(ok_key.encode()), 1024, "test setup")
    S3.put_object(Bucket=BUCKET, Key=ok_key, Body=b"long")
    _, got = get_bytes(BUCKET, ok_key)
    eq(got, b"long", "1024-byte key body")
    S3.delete_object(Bucket=BUCKET, Key=ok_key)

    too_long = "k" * 1025
    expect_error(S3.put_object, "KeyTooLongError", 400, Bucket=BUCKET, Key=too_long, Body=b"x")
    too_long_segments = ("k" * 99 + "/") * 10 + "k" * 25
    expect_error(S3.put_object, "KeyTooLongError", 400, Bucket=BUCKET, Key=too_long_segments, Body=b"x")


@check
def test_long_path_segment():
    # S3 keys are opaque: one 300-byte "path segment" is a valid key.
    key = "seg/" + "s" * 300
    S3.put_object(Bucket=BUCKET, Key=key, Body=b"segment")
    _, got = get_bytes(BUCKET, key)
    eq(got, b"segment", "body of a key with a 300-byte segment")
    listed = [o["Key"] for o in S3.list_objects_v2(Bucket=BUCKET, Prefix="seg/").get("Contents", [])]
    eq(listed, [key], "listing of the long-segment key")
    S3.delete_object(Bucket=BUCKET, Key=key)


@check
def test_bad_credentials():
    wrong_secret = make_client(secret_key=SECRET_KEY + "-wrong")
    expect_error(wrong_secret.list_buckets, "SignatureDoesNotMatch", 403)
    expect_error(wrong_secret.get_object, "SignatureDoesNotMatch", 403, Bucket=BUCKET, Key="sizes/obj-1")
    expect_error(wrong_secret.put_object, "SignatureDoesNotMatch", 403, Bucket=BUCKET, Key="auth/x", Body=b"x")
    unknown = make_client(access_key="NOSUCHACCESSKEY" + RUN_ID.upper())
    expect_error(unknown.list_buckets, "InvalidAccessKeyId", 403)
    expect_error(unknown.get_object, "InvalidAccessKeyId", 403, Bucket=BUCKET, Key="sizes/obj-1")
    expect_error(S3.head_object, ("404", "NotFound", "NoSuchKey"), 404, Bucket=BUCKET, Key="auth/x")


@check
def test_anonymous_denied():
    status, _, body = raw_request("GET", f"{ENDPOINT}/{BUCKET}/sizes/obj-1")
    eq(status, 403, "anonymous GET status")
    eq(xml_error_code(body), "AccessDenied", "anonymous GET error code")
    status, _, body = raw_request("PUT", f"{ENDPOINT}/{BUCKET}/anon", data=b"x")
    eq(status, 403, "anonymous PUT status")
    expect_error(S3.head_object, ("404", "NotFound", "NoSuchKey"), 404, Bucket=BUCKET, Key="anon")


@check("GetObject[presigned]", "PutObject[presigned]")
def test_presigned_urls():
    key = "presigned/get"
    data = payload(70 * KIB, key)
    S3.put_object(Bucket=BUCKET, Key=key, Body=data)
    url = S3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300)
    status, headers, body = raw_request("GET", url)
    eq(status, 200, "presigned GET status")
    assert body == data, "presigned GET body differs"
    eq(headers.get("etag"), quoted_md5(data), "presigned GET ETag")

    # presigned GET with response-header overrides
    url = S3.generate_presigned_url(
        "get_object",
        Params={"Bucket": BUCKET, "Key": key, "ResponseContentType": "text/plain",
                "ResponseContentDisposition": "inline"},
        ExpiresIn=300,
    )
    status, headers, body = raw_request("GET", url)
    eq(status, 200, "presigned GET with response-* overrides: status")
    eq(headers.get("content-type"), "text/plain", "response-content-type override")
    eq(headers.get("content-disposition"), "inline", "response-content-disposition override")

    put_key = "presigned/put"
    put_data = payload(123 * KIB, put_key)
    url = S3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": put_key}, ExpiresIn=300)
    status, headers, body = raw_request("PUT", url, data=put_data)
    eq(status, 200, f"presigned PUT status (body {body[:300]!r})")
    eq(headers.get("etag"), quoted_md5(put_data), "presigned PUT ETag")
    _, got = get_bytes(BUCKET, put_key)
    assert got == put_data, "object written by presigned PUT differs"

    # tampering with the signed URL must fail
    url = S3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=300)
    tampered = url.replace("/presigned/get?", "/presigned/put?")
    status, _, body = raw_request("GET", tampered)
    eq(status, 403, "tampered presigned URL status")
    eq(xml_error_code(body), "SignatureDoesNotMatch", "tampered presigned URL error code")


@check("GetObject[presigned]")
def test_presigned_expired():
    key = "presigned/get"
    url = S3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=1)
    time.sleep(2.5)
    status, _, body = raw_request("GET", url)
    eq(status, 403, f"expired presigned GET status (body {body[:300]!r})")
    eq(xml_error_code(body), "AccessDenied", "expired presigned GET error code")


@check("PutObject", "GetObject[range]")
def test_transfer_manager():
    import tempfile

    cfg = TransferConfig(multipart_threshold=64 * MIB, max_concurrency=4)
    data = payload(3 * MIB + 17, "transfer")
    with tempfile.TemporaryDirectory(prefix="cairn-e2e-") as tmp:
        src = os.path.join(tmp, "src.bin")
        dst = os.path.join(tmp, "dst.bin")
        with open(src, "wb") as f:
            f.write(data)
        S3.upload_file(src, BUCKET, "transfer/file.bin", Config=cfg)
        S3.download_file(BUCKET, "transfer/file.bin", dst, Config=cfg)
        with open(dst, "rb") as f:
            assert f.read() == data, "download_file differs from upload_file"
        # a ranged, concurrent download (multipart_threshold below the size)
        ranged = TransferConfig(multipart_threshold=1 * MIB, multipart_chunksize=1 * MIB, max_concurrency=4)
        S3.download_file(BUCKET, "transfer/file.bin", dst, Config=ranged)
        with open(dst, "rb") as f:
            assert f.read() == data, "ranged concurrent download_file differs"


@check("PutObject")
def test_concurrent_puts():
    def put(i):
        data = payload(10 * KIB + i, f"conc-{i}")
        S3.put_object(Bucket=BUCKET, Key=f"conc/{i:02d}", Body=data)
        return data

    with ThreadPoolExecutor(4) as pool:
        datas = list(pool.map(put, range(16)))
    for i, data in enumerate(datas):
        _, got = get_bytes(BUCKET, f"conc/{i:02d}")
        assert got == data, f"conc/{i:02d} differs"
    # concurrent overwrites of one key: the final object is one of the versions, intact
    versions = [payload(200 * KIB, f"race-{i}") for i in range(6)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda d: S3.put_object(Bucket=BUCKET, Key="conc/race", Body=d), versions))
    resp, got = get_bytes(BUCKET, "conc/race")
    assert got in versions, "concurrently overwritten object is not one of the written versions"
    eq(resp["ETag"], quoted_md5(got), "ETag of concurrently overwritten object")


# --------------------------------------------------------------------------
# multipart uploads, copies, batch deletes, tagging, conditional requests,
# checksums, attributes, ACL/versioning/CORS stubs, POST uploads

def multipart_etag(parts):
    """The S3 ETag of a multipart object: MD5 of the parts' binary MD5s, '-N'."""
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def _crc_table(poly, width):
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc_table(0x82F63B78, 32)
_CRC64NVME_TABLE = _crc_table(0x9A6C9329AC4BC9B5, 64)


def _crc_reflected(data, table, mask):
    crc = mask
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def crc32c(data):
    return _crc_reflected(data, _CRC32C_TABLE, 0xFFFFFFFF)


def crc64nvme(data):
    return _crc_reflected(data, _CRC64NVME_TABLE, 0xFFFFFFFFFFFFFFFF)


assert crc32c(b"123456789") == 0xE3069283, "test bug: CRC32C"
assert crc64nvme(b"123456789") == 0xAE8B14860A799888, "test bug: CRC64NVME"


def checksum_b64(algorithm, data):
    """The value S3 puts in x-amz-checksum-<algorithm> for data."""
    if algorithm == "CRC32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "CRC32C":
        raw = crc32c(data).to_bytes(4, "big")
    elif algorithm == "CRC64NVME":
        raw = crc64nvme(data).to_bytes(8, "big")
    elif algorithm == "SHA1":
        raw = hashlib.sha1(data).digest()
    elif algorithm == "SHA256":
        raw = hashlib.sha256(data).digest()
    else:
        raise ValueError(algorithm)
    return base64.b64encode(raw).decode()


MP_BUCKET = f"e2e-boto3-mp-{RUN_ID}"


def _abort_all_uploads(bucket):
    try:
        uploads = S3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    except ClientError:
        return
    for u in uploads:
        try:
            S3.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
        except ClientError:
            pass


@check("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "GetObject", "HeadObject")
def test_multipart_transfer_manager():
    """upload_file above its multipart threshold: 5 MiB parts of a 12 MiB file
    (3 parts), the way applications upload big files with boto3."""
    import tempfile

    S3.create_bucket(Bucket=MP_BUCKET)
    cfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=3)
    data = payload(12 * MIB + 345, "mp-transfer")
    parts = [data[i:i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    seen_ops = []
    client = make_client()
    client.meta.events.register("before-call.s3", lambda model, **_: seen_ops.append(model.name))
    with tempfile.TemporaryDirectory(prefix="cairn-e2e-") as tmp:
        src = os.path.join(tmp, "src.bin")
        dst = os.path.join(tmp, "dst.bin")
        with open(src, "wb") as f:
            f.write(data)
        client.upload_file(src, MP_BUCKET, "mp/transfer.bin", Config=cfg)
        assert "CreateMultipartUpload" in seen_ops, f"test setup: upload_file did not go multipart: {seen_ops}"
        eq(seen_ops.count("UploadPart"), 3, "UploadPart calls")
        head = S3.head_object(Bucket=MP_BUCKET, Key="mp/transfer.bin")
        eq(head["ContentLength"], len(data), "HeadObject Content-Length")
        eq(head["ETag"], multipart_etag(parts), "multipart ETag (MD5 of the part MD5s, -3)")
        client.download_file(MP_BUCKET, "mp/transfer.bin", dst, Config=cfg)
        with open(dst, "rb") as f:
            assert f.read() == data, "download_file differs from the multipart upload"
    # botocore sends CRC32 checksums with the parts (CreateMultipartUpload
    # ChecksumAlgorithm=CRC32, no checksum type): S3 then keeps a COMPOSITE
    # checksum, the CRC32 of the parts' CRC32s, "-3"
    composite = zlib.crc32(b"".join(zlib.crc32(p).to_bytes(4, "big") for p in parts)).to_bytes(4, "big")
    head = S3.head_object(Bucket=MP_BUCKET, Key="mp/transfer.bin", ChecksumMode="ENABLED")
    eq((head.get("ChecksumCRC32"), head.get("ChecksumType")),
       (base64.b64encode(composite).decode() + "-3", "COMPOSITE"), "HeadObject ChecksumMode=ENABLED (CRC32, type)")
    # ranged reads across part boundaries
    for first, last in ((5 * MIB - 10, 5 * MIB + 9), (0, 12 * MIB + 344), (10 * MIB - 1, 10 * MIB)):
        resp, got = get_bytes(MP_BUCKET, "mp/transfer.bin", Range=f"bytes={first}-{last}")
        assert got == data[first:last + 1], f"Range {first}-{last} of the multipart object differs"
    OBJECTS["mp/transfer.bin"] = data


@check("CreateMultipartUpload", "UploadPart", "ListParts", "ListMultipartUploads", "CompleteMultipartUpload")
def test_multipart_low_level():
    key = "mp/low-level.bin"
    p1, p2, p3 = payload(5 * MIB, "lp1"), payload(5 * MIB + 1, "lp2"), payload(1234, "lp3")
    create = S3.create_multipart_upload(Bucket=MP_BUCKET, Key=key, ContentType="application/x-cairn",
                                        Metadata={"origin": "e2e"})
    upload_id = create["UploadId"]
    eq((create.get("Bucket"), create.get("Key")), (MP_BUCKET, key), "CreateMultipartUpload Bucket/Key")
    try:
        etags = {}
        # out of order, and part 2 twice (the second upload replaces the first)
        for number, body in ((3, p3), (1, p1), (2, b"replaced below"), (2, p2)):
            resp = S3.upload_part(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
            eq(resp["ETag"], quoted_md5(body), f"UploadPart {number} ETag")
            etags[number] = resp["ETag"]

        listed = S3.list_parts(Bucket=MP_BUCKET, Key=key, UploadId=upload_id)
        eq([(p["PartNumber"], p["ETag"], p["Size"]) for p in listed.get("Parts", [])],
           [(1, quoted_md5(p1), len(p1)), (2, quoted_md5(p2), len(p2)), (3, quoted_md5(p3), len(p3))],
           "ListParts (PartNumber, ETag, Size)")
        eq(listed.get("UploadId"), upload_id, "ListParts UploadId")
        paged = S3.list_parts(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, MaxParts=2)
        eq([p["PartNumber"] for p in paged.get("Parts", [])], [1, 2], "ListParts MaxParts=2")
        eq(paged.get("IsTruncated"), True, "ListParts IsTruncated")
        rest = S3.list_parts(Bucket=MP_BUCKET, Key=key, UploadId=upload_id,
                             PartNumberMarker=int(paged["NextPartNumberMarker"]))
        eq([p["PartNumber"] for p in rest.get("Parts", [])], [3], "ListParts after NextPartNumberMarker")

        uploads = S3.list_multipart_uploads(Bucket=MP_BUCKET).get("Uploads", [])
        assert (key, upload_id) in [(u["Key"], u["UploadId"]) for u in uploads], \
            f"ListMultipartUploads misses the upload: {uploads}"
        uploads = S3.list_multipart_uploads(Bucket=MP_BUCKET, Prefix="mp/low").get("Uploads", [])
        eq([u["Key"] for u in uploads], [key], "ListMultipartUploads Prefix=mp/low")
        # not visible as an object before completion
        expect_error(S3.head_object, ("404", "NotFound", "NoSuchKey"), 404, Bucket=MP_BUCKET, Key=key)

        done = S3.complete_multipart_upload(
            Bucket=MP_BUCKET, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]})
        eq(done.get("ETag"), multipart_etag([p1, p2, p3]), "CompleteMultipartUpload ETag")
        eq((done.get("Bucket"), done.get("Key")), (MP_BUCKET, key), "CompleteMultipartUpload Bucket/Key")
    except Exception:
        _abort_all_uploads(MP_BUCKET)
        raise
    resp, got = get_bytes(MP_BUCKET, key)
    assert got == p1 + p2 + p3, "completed multipart object differs"
    eq(resp.get("ETag"), multipart_etag([p1, p2, p3]), "GetObject ETag of the multipart object")
    eq(resp.get("ContentType"), "application/x-cairn", "Content-Type given at CreateMultipartUpload")
    eq(resp.get("Metadata"), {"origin": "e2e"}, "Metadata given at CreateMultipartUpload")
    uploads = S3.list_multipart_uploads(Bucket=MP_BUCKET).get("Uploads", [])
    assert upload_id not in [u["UploadId"] for u in uploads], "completed upload still listed"
    expect_error(S3.list_parts, "NoSuchUpload", 404, Bucket=MP_BUCKET, Key=key, UploadId=upload_id)
    OBJECTS[key] = p1 + p2 + p3


@check("AbortMultipartUpload")
def test_multipart_abort():
    key = "mp/aborted.bin"
    upload_id = S3.create_multipart_upload(Bucket=MP_BUCKET, Key=key)["UploadId"]
    S3.upload_part(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=payload(100 * KIB, "ab"))
    eq(status_of_resp(S3.abort_multipart_upload(Bucket=MP_BUCKET, Key=key, UploadId=upload_id)), 204,
       "AbortMultipartUpload status")
    expect_error(S3.list_parts, "NoSuchUpload", 404, Bucket=MP_BUCKET, Key=key, UploadId=upload_id)
    expect_error(S3.upload_part, "NoSuchUpload", 404, Bucket=MP_BUCKET, Key=key, UploadId=upload_id,
                 PartNumber=2, Body=b"late")
    expect_error(S3.complete_multipart_upload, "NoSuchUpload", 404, Bucket=MP_BUCKET, Key=key, UploadId=upload_id,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": quoted_md5(b"x")}]})
    uploads = S3.list_multipart_uploads(Bucket=MP_BUCKET).get("Uploads", [])
    assert upload_id not in [u["UploadId"] for u in uploads], "aborted upload still listed"
    expect_error(S3.head_object, ("404", "NotFound", "NoSuchKey"), 404, Bucket=MP_BUCKET, Key=key)


@check("CompleteMultipartUpload")
def test_multipart_complete_errors():
    """CompleteMultipartUpload refusals: a wrong part ETag (InvalidPart), parts
    out of order (InvalidPartOrder), a non-last part under 5 MiB
    (EntityTooSmall). After each, the upload is still there and completes."""
    key = "mp/errors.bin"
    p1, p2 = payload(5 * MIB, "e1"), payload(1000, "e2")
    small = payload(1000, "e-small")
    upload_id = S3.create_multipart_upload(Bucket=MP_BUCKET, Key=key)["UploadId"]
    try:
        e1 = S3.upload_part(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=p1)["ETag"]
        e2 = S3.upload_part(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, PartNumber=2, Body=p2)["ETag"]
        problems = []

        def refused(parts, code, status, what):
            try:
                expect_error(S3.complete_multipart_upload, code, status, Bucket=MP_BUCKET, Key=key,
                             UploadId=upload_id, MultipartUpload={"Parts": parts})
            except AssertionError as err:
                problems.append(f"{what}: {err}")

        refused([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": quoted_md5(b"wrong")}],
                "InvalidPart", 400, "wrong ETag for part 2")
        refused([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}],
                "InvalidPart", 400, "part 3 never uploaded")
        refused([{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}],
                "InvalidPartOrder", 400, "parts out of order")
        e_small = S3.upload_part(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, PartNumber=3, Body=small)["ETag"]
        refused([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}, {"PartNumber": 3, "ETag": e_small}],
                "EntityTooSmall", 400, "part 2 (1000 bytes) is not the last part")
        expect_error(S3.head_object, ("404", "NotFound", "NoSuchKey"), 404, Bucket=MP_BUCKET, Key=key)
        # the upload survives refused completions; a subset of the parts completes it
        done = S3.complete_multipart_upload(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        eq(done.get("ETag"), multipart_etag([p1, p2]), "ETag after completing with parts 1 and 2")
        _, got = get_bytes(MP_BUCKET, key)
        assert got == p1 + p2, "object completed from parts 1 and 2 differs"
        assert not problems, "CompleteMultipartUpload answers:\n      " + "\n      ".join(problems)
    finally:
        _abort_all_uploads(MP_BUCKET)


@check("UploadPartCopy")
def test_upload_part_copy():
    src = OBJECTS.get("mp/transfer.bin")
    assert src, "depends on test_multipart_transfer_manager"
    key = "mp/part-copy.bin"
    upload_id = S3.create_multipart_upload(Bucket=MP_BUCKET, Key=key)["UploadId"]
    try:
        r1 = S3.upload_part_copy(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, PartNumber=1,
                                 CopySource={"Bucket": MP_BUCKET, "Key": "mp/transfer.bin"},
                                 CopySourceRange=f"bytes=0-{5 * MIB - 1}")
        eq(r1["CopyPartResult"]["ETag"], quoted_md5(src[:5 * MIB]), "UploadPartCopy (range) ETag")
        tail = payload(777, "pc-tail")
        S3.put_object(Bucket=MP_BUCKET, Key="mp/small-src", Body=tail)
        r2 = S3.upload_part_copy(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, PartNumber=2,
                                 CopySource=f"{MP_BUCKET}/mp/small-src")
        eq(r2["CopyPartResult"]["ETag"], quoted_md5(tail), "UploadPartCopy (whole object) ETag")
        # a range past the end of the source: S3 answers 400 InvalidArgument ("Range
        # specified is not valid for source object of size: 777"; MinIO: 416
        # InvalidRange), never a silently shortened part
        try:
            result = S3.upload_part_copy(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, PartNumber=3,
                                         CopySource={"Bucket": MP_BUCKET, "Key": "mp/small-src"},
                                         CopySourceRange="bytes=700-800")
            raise AssertionError("UploadPartCopy with x-amz-copy-source-range bytes=700-800 of a 777-byte source "
                                 f"succeeded (S3: 400 InvalidArgument): {_short(result)}")
        except ClientError as err:
            assert (code_of(err), status_of(err)) in (("InvalidArgument", 400), ("InvalidRange", 416)), \
                f"copy-source-range past the end: {code_of(err)} / HTTP {status_of(err)}, S3 answers InvalidArgument / 400"
        done = S3.complete_multipart_upload(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
                      {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]}]})
        eq(done["ETag"], multipart_etag([src[:5 * MIB], tail]), "ETag of the object made of copied parts")
        _, got = get_bytes(MP_BUCKET, key)
        assert got == src[:5 * MIB] + tail, "object made of copied parts differs"
    finally:
        _abort_all_uploads(MP_BUCKET)


@check("GetObjectAttributes")
def test_get_object_attributes():
    data = payload(3000, "attrs")
    S3.put_object(Bucket=MP_BUCKET, Key="attrs/single", Body=data, ChecksumAlgorithm="SHA256")
    want = {"ETag": md5_hex(data),  # S3 sends this ETag without quotes
            "ObjectSize": len(data), "StorageClass": "STANDARD",
            "Checksum": {"ChecksumSHA256": checksum_b64("SHA256", data), "ChecksumType": "FULL_OBJECT"}}
    problems = []
    # one attribute per request, then all of them in one (SDKs send them
    # comma-separated in one x-amz-object-attributes header)
    for attrs in [[a] for a in want] + [list(want)]:
        resp = S3.get_object_attributes(Bucket=MP_BUCKET, Key="attrs/single", ObjectAttributes=attrs)
        for a in attrs:
            if resp.get(a) != want[a]:
                problems.append(f"ObjectAttributes={','.join(attrs)}: {a} is {resp.get(a)!r}, S3 answers {want[a]!r}")
        if resp.get("LastModified") is None:
            problems.append(f"ObjectAttributes={','.join(attrs)}: no Last-Modified")

    mp = OBJECTS.get("mp/low-level.bin")
    assert mp, "depends on test_multipart_low_level"
    for attrs in (["ObjectParts"], ["ObjectSize", "ObjectParts"]):
        resp = S3.get_object_attributes(Bucket=MP_BUCKET, Key="mp/low-level.bin", ObjectAttributes=attrs)
        if resp.get("ObjectParts", {}).get("TotalPartsCount") != 3:
            problems.append(f"multipart object, ObjectAttributes={','.join(attrs)}: ObjectParts is "
                            f"{resp.get('ObjectParts')!r}, S3 answers TotalPartsCount 3")
    try:
        expect_error(S3.get_object_attributes, "NoSuchKey", 404, Bucket=MP_BUCKET, Key="attrs/missing",
                     ObjectAttributes=["ETag"])
    except AssertionError as err:
        problems.append(f"missing key: {err}")
    assert not problems, "GetObjectAttributes:\n      " + "\n      ".join(problems)


@check("CopyObject")
def test_copy_object():
    src_key = "copy/src.txt"
    data = payload(300 * KIB, src_key)
    S3.put_object(Bucket=BUCKET, Key=src_key, Body=data, ContentType="text/x-src",
                  Metadata={"color": "red"})
    # same bucket, metadata copied
    resp = S3.copy_object(Bucket=BUCKET, Key="copy/dst.txt", CopySource={"Bucket": BUCKET, "Key": src_key})
    eq(resp["CopyObjectResult"]["ETag"], quoted_md5(data), "CopyObject ETag")
    assert resp["CopyObjectResult"].get("LastModified") is not None, "CopyObjectResult without LastModified"
    got_resp, got = get_bytes(BUCKET, "copy/dst.txt")
    assert got == data, "copied object differs"
    eq(got_resp.get("Metadata"), {"color": "red"}, "metadata after CopyObject (COPY)")
    eq(got_resp.get("ContentType"), "text/x-src", "Content-Type after CopyObject (COPY)")
    # across buckets, metadata replaced
    S3.copy_object(Bucket=MP_BUCKET, Key="copy/replaced.txt", CopySource=f"{BUCKET}/{src_key}",
                   MetadataDirective="REPLACE", Metadata={"shape": "round"}, ContentType="text/x-new")
    head = S3.head_object(Bucket=MP_BUCKET, Key="copy/replaced.txt")
    eq(head.get("Metadata"), {"shape": "round"}, "metadata after CopyObject (REPLACE)")
    eq(head.get("ContentType"), "text/x-new", "Content-Type after CopyObject (REPLACE)")
    eq(head.get("ContentLength"), len(data), "length of the cross-bucket copy")
    # a multipart source
    mp = OBJECTS.get("mp/transfer.bin")
    if mp:
        S3.copy_object(Bucket=BUCKET, Key="copy/of-multipart", CopySource={"Bucket": MP_BUCKET, "Key": "mp/transfer.bin"})
        _, got = get_bytes(BUCKET, "copy/of-multipart")
        assert got == mp, "copy of a multipart object differs"
        S3.delete_object(Bucket=BUCKET, Key="copy/of-multipart")
    # special characters in the copy source
    odd = "copy/sp ace+plus%pct\u00e9"
    S3.put_object(Bucket=BUCKET, Key=odd, Body=b"odd")
    S3.copy_object(Bucket=BUCKET, Key="copy/odd-copy", CopySource={"Bucket": BUCKET, "Key": odd})
    eq(get_bytes(BUCKET, "copy/odd-copy")[1], b"odd", "copy of a key with special characters")
    # onto itself: only with a change (S3: InvalidRequest otherwise)
    expect_error(S3.copy_object, "InvalidRequest", 400, Bucket=BUCKET, Key=src_key,
                 CopySource={"Bucket": BUCKET, "Key": src_key})
    S3.copy_object(Bucket=BUCKET, Key=src_key, CopySource={"Bucket": BUCKET, "Key": src_key},
                   MetadataDirective="REPLACE", Metadata={"color": "green"})
    eq(S3.head_object(Bucket=BUCKET, Key=src_key).get("Metadata"), {"color": "green"}, "metadata after self-copy")
    # errors
    expect_error(S3.copy_object, "NoSuchKey", 404, Bucket=BUCKET, Key="copy/x",
                 CopySource={"Bucket": BUCKET, "Key": "copy/missing"})
    expect_error(S3.copy_object, "PreconditionFailed", 412, Bucket=BUCKET, Key="copy/x",
                 CopySource={"Bucket": BUCKET, "Key": src_key}, CopySourceIfMatch='"0123456789abcdef0123456789abcdef"')
    S3.copy_object(Bucket=BUCKET, Key="copy/x", CopySource={"Bucket": BUCKET, "Key": src_key},
                   CopySourceIfMatch=quoted_md5(data))
    expect_error(S3.copy_object, "PreconditionFailed", 412, Bucket=BUCKET, Key="copy/y",
                 CopySource={"Bucket": BUCKET, "Key": src_key}, CopySourceIfNoneMatch=quoted_md5(data))


@check("DeleteObjects")
def test_delete_objects_batch():
    keys = [f"batch/{i}" for i in range(5)]
    for k in keys:
        S3.put_object(Bucket=BUCKET, Key=k, Body=k.encode())
    resp = S3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[:3] + ["batch/missing"]]})
    # S3 reports a key that did not exist as deleted, too
    eq(sorted(d["Key"] for d in resp.get("Deleted", [])), sorted(keys[:3] + ["batch/missing"]), "Deleted keys")
    eq(resp.get("Errors", []), [], "DeleteObjects Errors")
    listed = [o["Key"] for o in S3.list_objects_v2(Bucket=BUCKET, Prefix="batch/").get("Contents", [])]
    eq(listed, keys[3:], "keys left after DeleteObjects")
    resp = S3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[3:]], "Quiet": True})
    eq(resp.get("Deleted", []), [], "Quiet DeleteObjects lists nothing")
    eq(S3.list_objects_v2(Bucket=BUCKET, Prefix="batch/").get("KeyCount"), 0, "keys left after quiet DeleteObjects")
    expect_error(S3.delete_objects, "NoSuchBucket", 404, Bucket=f"e2e-missing-{RUN_ID}",
                 Delete={"Objects": [{"Key": "k"}]})


@check("PutObjectTagging", "GetObjectTagging", "DeleteObjectTagging", "PutObject[tagging]")
def test_object_tagging():
    key = "tags/obj"
    S3.put_object(Bucket=BUCKET, Key=key, Body=b"tagged", Tagging="project=cairn&stage=e2e")
    tags = S3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    eq(sorted((t["Key"], t["Value"]) for t in tags), [("project", "cairn"), ("stage", "e2e")], "tags from PutObject")
    resp, _ = get_bytes(BUCKET, key)
    eq(resp.get("TagCount"), 2, "GetObject x-amz-tagging-count")
    S3.put_object_tagging(Bucket=BUCKET, Key=key, Tagging={"TagSet": [{"Key": "only", "Value": "one"}]})
    tags = S3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    eq([(t["Key"], t["Value"]) for t in tags], [("only", "one")], "tags after PutObjectTagging")
    eq(status_of_resp(S3.delete_object_tagging(Bucket=BUCKET, Key=key)), 204, "DeleteObjectTagging status")
    eq(S3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"], [], "tags after DeleteObjectTagging")
    expect_error(S3.get_object_tagging, "NoSuchKey", 404, Bucket=BUCKET, Key="tags/missing")
    expect_error(S3.put_object_tagging, "InvalidTag", 400, Bucket=BUCKET, Key=key,
                 Tagging={"TagSet": [{"Key": "dup", "Value": "1"}, {"Key": "dup", "Value": "2"}]})
    # copies keep the tags unless told to replace them
    S3.put_object_tagging(Bucket=BUCKET, Key=key, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    S3.copy_object(Bucket=BUCKET, Key="tags/copy", CopySource={"Bucket": BUCKET, "Key": key})
    eq([(t["Key"], t["Value"]) for t in S3.get_object_tagging(Bucket=BUCKET, Key="tags/copy")["TagSet"]],
       [("k", "v")], "tags of a copy (TaggingDirective COPY)")
    S3.copy_object(Bucket=BUCKET, Key="tags/copy2", CopySource={"Bucket": BUCKET, "Key": key},
                   TaggingDirective="REPLACE", Tagging="new=tag")
    eq([(t["Key"], t["Value"]) for t in S3.get_object_tagging(Bucket=BUCKET, Key="tags/copy2")["TagSet"]],
       [("new", "tag")], "tags of a copy (TaggingDirective REPLACE)")


@check("GetObject[conditional]", "HeadObject[conditional]")
def test_conditional_requests():
    key = "cond/obj"
    data = b"conditional"
    S3.put_object(Bucket=BUCKET, Key=key, Body=data)
    etag = quoted_md5(data)
    last_modified = S3.head_object(Bucket=BUCKET, Key=key)["LastModified"]
    from datetime import timedelta
    past = last_modified - timedelta(days=1)
    future = last_modified + timedelta(days=1)
    problems = []

    def case(what, want, **cond):
        for op in ("get", "head"):
            try:
                if op == "get":
                    resp = S3.get_object(Bucket=BUCKET, Key=key, **cond)
                    body = resp["Body"].read()
                else:
                    resp = S3.head_object(Bucket=BUCKET, Key=key, **cond)
                    body = None
                got = status_of_resp(resp)
                if got == 200 and op == "get" and body != data:
                    problems.append(f"{op} {what}: body differs")
            except ClientError as err:
                got = status_of(err)
                if got == 412 and op == "get" and code_of(err) != "PreconditionFailed":
                    problems.append(f"{op} {what}: 412 with code {code_of(err)!r}, S3 says PreconditionFailed")
            if got != want:
                problems.append(f"{op} {what}: HTTP {got}, S3 answers {want}")

    case("If-Match: current ETag", 200, IfMatch=etag)
    case("If-Match: *", 200, IfMatch="*")
    case("If-Match: other ETag", 412, IfMatch='"0123456789abcdef0123456789abcdef"')
    case("If-None-Match: current ETag", 304, IfNoneMatch=etag)
    case("If-None-Match: *", 304, IfNoneMatch="*")
    case("If-None-Match: other ETag", 200, IfNoneMatch='"0123456789abcdef0123456789abcdef"')
    case("If-Modified-Since: a day later", 304, IfModifiedSince=future)
    case("If-Modified-Since: a day earlier", 200, IfModifiedSince=past)
    case("If-Unmodified-Since: a day earlier", 412, IfUnmodifiedSince=past)
    case("If-Unmodified-Since: a day later", 200, IfUnmodifiedSince=future)
    # RFC 9110 / S3: If-Match true + If-Unmodified-Since false -> 200;
    # If-None-Match false + If-Modified-Since true -> 304
    case("If-Match true, If-Unmodified-Since false", 200, IfMatch=etag, IfUnmodifiedSince=past)
    case("If-None-Match false, If-Modified-Since true", 304, IfNoneMatch=etag, IfModifiedSince=past)
    assert not problems, "conditional requests:\n      " + "\n      ".join(problems)


@check("PutObject[conditional]")
def test_conditional_put():
    """PutObject with If-None-Match: * (create only) and If-Match (S3 since 2024)."""
    key = "cond/put"
    S3.put_object(Bucket=BUCKET, Key=key, Body=b"v1", IfNoneMatch="*")
    expect_error(S3.put_object, "PreconditionFailed", 412, Bucket=BUCKET, Key=key, Body=b"v2", IfNoneMatch="*")
    eq(get_bytes(BUCKET, key)[1], b"v1", "object after a refused If-None-Match PUT")
    expect_error(S3.put_object, "PreconditionFailed", 412, Bucket=BUCKET, Key=key, Body=b"v2",
                 IfMatch='"0123456789abcdef0123456789abcdef"')
    S3.put_object(Bucket=BUCKET, Key=key, Body=b"v3", IfMatch=quoted_md5(b"v1"))
    eq(get_bytes(BUCKET, key)[1], b"v3", "object after an If-Match PUT")


CHECKSUM_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")


@check("PutObject[checksum]", "GetObject[checksum]", "HeadObject[checksum]")
def test_checksums():
    """Each checksum algorithm: PutObject with the checksum header, then GET
    and HEAD with ChecksumMode=ENABLED answer it back; a wrong one is BadDigest.
    botocore computes CRC32, SHA1 and SHA256 itself (ChecksumAlgorithm=...);
    CRC32C and CRC64NVME need awscrt there, so the test passes the value."""
    problems = []
    for algo in CHECKSUM_ALGORITHMS:
        key = f"checksum/{algo.lower()}"
        data = payload(100 * KIB + 7, key)
        want = checksum_b64(algo, data)
        field = "Checksum" + algo
        try:
            if algo in ("CRC32C", "CRC64NVME"):
                put = S3.put_object(Bucket=BUCKET, Key=key, Body=data, **{field: want})
            else:
                put = S3.put_object(Bucket=BUCKET, Key=key, Body=data, ChecksumAlgorithm=algo)
        except ClientError as err:
            problems.append(f"{algo}: PutObject failed: {code_of(err)} {err.response['Error'].get('Message')}")
            continue
        if put.get(field) != want:
            problems.append(f"{algo}: PutObject answered {field}={put.get(field)!r}, expected {want!r}")
        resp = S3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        body = resp["Body"].read()
        if body != data:
            problems.append(f"{algo}: body differs")
        if resp.get(field) != want:
            problems.append(f"{algo}: GetObject ChecksumMode=ENABLED answered {field}={resp.get(field)!r}, expected {want!r}")
        head = S3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        if head.get(field) != want:
            problems.append(f"{algo}: HeadObject ChecksumMode=ENABLED answered {field}={head.get(field)!r}")
        if head.get("ChecksumType") not in (None, "FULL_OBJECT"):
            problems.append(f"{algo}: ChecksumType {head.get('ChecksumType')!r}, S3 answers FULL_OBJECT")
        try:
            expect_error(S3.put_object, "BadDigest", 400, Bucket=BUCKET, Key=key, Body=data + b"!",
                         **{field: want})
        except AssertionError as err:
            problems.append(f"{algo}: wrong checksum: {err}")
        if get_bytes(BUCKET, key)[1] != data:
            problems.append(f"{algo}: object changed by a refused PUT")
    assert not problems, "checksums:\n      " + "\n      ".join(problems)


@check("CreateMultipartUpload[checksum]", "UploadPart[checksum]", "CompleteMultipartUpload[checksum]")
def test_multipart_checksums():
    """A multipart upload with ChecksumAlgorithm=SHA256: each part's checksum is
    checked and listed; the object's checksum is the composite one
    (checksum of the part checksums, '-N')."""
    key = "mp/checksummed.bin"
    p1, p2 = payload(5 * MIB, "ck1"), payload(4321, "ck2")
    upload_id = S3.create_multipart_upload(Bucket=MP_BUCKET, Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
    try:
        parts = []
        for n, body in ((1, p1), (2, p2)):
            resp = S3.upload_part(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, PartNumber=n, Body=body,
                                  ChecksumAlgorithm="SHA256")
            eq(resp.get("ChecksumSHA256"), checksum_b64("SHA256", body), f"UploadPart {n} ChecksumSHA256")
            parts.append({"PartNumber": n, "ETag": resp["ETag"], "ChecksumSHA256": resp.get("ChecksumSHA256")})
        expect_error(S3.upload_part, "BadDigest", 400, Bucket=MP_BUCKET, Key=key, UploadId=upload_id,
                     PartNumber=3, Body=b"xyz", ChecksumSHA256=checksum_b64("SHA256", b"abc"))
        listed = S3.list_parts(Bucket=MP_BUCKET, Key=key, UploadId=upload_id).get("Parts", [])
        eq([p.get("ChecksumSHA256") for p in listed], [checksum_b64("SHA256", p1), checksum_b64("SHA256", p2)],
           "ListParts ChecksumSHA256")
        S3.complete_multipart_upload(Bucket=MP_BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    finally:
        _abort_all_uploads(MP_BUCKET)
    composite = hashlib.sha256(hashlib.sha256(p1).digest() + hashlib.sha256(p2).digest()).digest()
    want = base64.b64encode(composite).decode() + "-2"
    head = S3.head_object(Bucket=MP_BUCKET, Key=key, ChecksumMode="ENABLED")
    eq(head.get("ChecksumSHA256"), want, "composite ChecksumSHA256 of the multipart object")
    resp, got = get_bytes(MP_BUCKET, key)
    assert got == p1 + p2, "checksummed multipart object differs"


@check("GetBucketVersioning", "GetBucketAcl", "PutBucketAcl", "GetObjectAcl", "PutObjectAcl")
def test_acl_and_versioning_stubs():
    resp = S3.get_bucket_versioning(Bucket=BUCKET)
    eq(resp.get("Status"), None, "GetBucketVersioning Status of a never-versioned bucket")
    acl = S3.get_bucket_acl(Bucket=BUCKET)
    grants = [(g["Grantee"].get("Type"), g["Permission"]) for g in acl.get("Grants", [])]
    eq(grants, [("CanonicalUser", "FULL_CONTROL")], "GetBucketAcl grants")
    assert acl.get("Owner", {}).get("ID"), f"GetBucketAcl without Owner ID: {_short(acl)}"
    S3.put_bucket_acl(Bucket=BUCKET, ACL="private")
    S3.put_object(Bucket=BUCKET, Key="acl/obj", Body=b"acl", ACL="private")
    acl = S3.get_object_acl(Bucket=BUCKET, Key="acl/obj")
    eq([g["Permission"] for g in acl.get("Grants", [])], ["FULL_CONTROL"], "GetObjectAcl grants")
    S3.put_object_acl(Bucket=BUCKET, Key="acl/obj", ACL="private")
    # anything that is not private is refused, and nothing becomes public
    try:
        S3.put_object_acl(Bucket=BUCKET, Key="acl/obj", ACL="public-read")
        raise AssertionError("PutObjectAcl public-read succeeded on a server without public access")
    except ClientError as err:
        assert status_of(err) in (400, 403, 501), f"PutObjectAcl public-read: HTTP {status_of(err)}"
    status, _, _ = raw_request("GET", f"{ENDPOINT}/{BUCKET}/acl/obj")
    eq(status, 403, "anonymous GET after the refused public-read ACL")


@check("PutBucketCors", "GetBucketCors", "DeleteBucketCors")
def test_bucket_cors():
    rules = [{"AllowedOrigins": ["https://app.example"], "AllowedMethods": ["GET", "PUT"],
              "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600}]
    expect_error(S3.get_bucket_cors, "NoSuchCORSConfiguration", 404, Bucket=BUCKET)
    S3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": rules})
    got = S3.get_bucket_cors(Bucket=BUCKET)["CORSRules"]
    eq([(r["AllowedOrigins"], sorted(r["AllowedMethods"])) for r in got], [(["https://app.example"], ["GET", "PUT"])],
       "GetBucketCors rules")
    # a browser preflight (anonymous OPTIONS)
    status, headers, _ = raw_request("OPTIONS", f"{ENDPOINT}/{BUCKET}/sizes/obj-1000", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type"})
    eq(status, 200, "preflight status for an allowed origin")
    eq(headers.get("access-control-allow-origin"), "https://app.example", "Access-Control-Allow-Origin")
    assert "PUT" in headers.get("access-control-allow-methods", ""), f"Access-Control-Allow-Methods: {headers}"
    status, headers, _ = raw_request("OPTIONS", f"{ENDPOINT}/{BUCKET}/sizes/obj-1000", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    eq(status, 403, "preflight status for an origin not allowed")
    # a real GET with Origin gets the CORS response headers
    # (a presigned URL, so that urllib can send the Origin header)
    url = S3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "sizes/obj-1000"}, ExpiresIn=300)
    status, headers, _ = raw_request("GET", url, headers={"Origin": "https://app.example"})
    eq(status, 200, "GET with Origin")
    eq(headers.get("access-control-allow-origin"), "https://app.example", "Access-Control-Allow-Origin on GET")
    eq(status_of_resp(S3.delete_bucket_cors(Bucket=BUCKET)), 204, "DeleteBucketCors status")
    expect_error(S3.get_bucket_cors, "NoSuchCORSConfiguration", 404, Bucket=BUCKET)


@check("PostObject")
def test_post_policy_upload():
    """A browser-style POST upload with a presigned policy
    (generate_presigned_post), and one that breaks the policy."""
    key = "post/upload.txt"
    data = payload(50 * KIB, key)
    post = S3.generate_presigned_post(
        BUCKET, key, Fields={"Content-Type": "text/plain", "success_action_status": "201"},
        Conditions=[{"Content-Type": "text/plain"}, {"success_action_status": "201"},
                    ["content-length-range", 1, 1 * MIB]],
        ExpiresIn=300)

    def send(fields, body):
        boundary = "----cairn-e2e-" + uuid.uuid4().hex
        out = bytearray()
        for name, value in fields.items():
            out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                    f"{value}\r\n").encode()
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"u.txt\"\r\n"
                f"Content-Type: text/plain\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()
        return raw_request("POST", post["url"], data=bytes(out),
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})

    status, headers, body = send(post["fields"], data)
    eq(status, 201, f"POST upload status (body {body[:300]!r})")
    resp, got = get_bytes(BUCKET, key)
    assert got == data, "object uploaded by POST differs"
    eq(resp.get("ContentType"), "text/plain", "Content-Type of the POST upload")
    problems = []
    # S3 sends the ETag header on POST uploads (browser uploaders read it), and
    # with success_action_status=201 a PostResponse whose ETag is quoted
    if headers.get("etag") != quoted_md5(data):
        problems.append(f"ETag header {headers.get('etag')!r}, S3 sends {quoted_md5(data)!r}")
    try:
        root = ET.fromstring(body)
        fields = {el.tag.split("}")[-1]: el.text for el in root}
    except ET.ParseError:
        fields = {}
    if (fields.get("Bucket"), fields.get("Key"), fields.get("ETag")) != (BUCKET, key, quoted_md5(data)):
        problems.append(f"PostResponse {fields}, S3 answers Bucket {BUCKET}, Key {key}, ETag {quoted_md5(data)}")
    # a field the policy does not allow
    bad = dict(post["fields"], **{"Content-Type": "image/png"})
    status, _, body = send(bad, b"other")
    if (status, xml_error_code(body)) != (403, "AccessDenied"):
        problems.append(f"a field outside the policy: HTTP {status} {xml_error_code(body)}, S3 answers 403 "
                        f"AccessDenied (Invalid according to Policy: Policy Condition failed)")
    assert status >= 400, f"POST with a field outside the policy succeeded: HTTP {status}"
    eq(get_bytes(BUCKET, key)[1], data, "object after a refused POST")
    # over the content-length-range
    status, _, body = send(post["fields"], payload(MIB + 1, "big"))
    eq((status, xml_error_code(body)), (400, "EntityTooLarge"), "POST over content-length-range")
    assert not problems, "POST upload response:\n      " + "\n      ".join(problems)


@check("DeleteBucket")
def test_delete_multipart_bucket():
    _abort_all_uploads(MP_BUCKET)
    _empty_bucket(MP_BUCKET)
    eq(status_of_resp(S3.delete_bucket(Bucket=MP_BUCKET)), 204, "DeleteBucket of the multipart bucket")


@check("DeleteObject", "DeleteBucket")
def test_delete_objects_and_buckets():
    key = "sizes/obj-1"
    eq(status_of_resp(S3.delete_object(Bucket=BUCKET, Key=key)), 204, "DeleteObject status")
    expect_error(S3.head_object, ("404", "NotFound", "NoSuchKey"), 404, Bucket=BUCKET, Key=key)
    expect_error(S3.get_object, "NoSuchKey", 404, Bucket=BUCKET, Key=key)
    # deleting a missing key succeeds, as in S3
    eq(status_of_resp(S3.delete_object(Bucket=BUCKET, Key="never/existed")), 204, "DeleteObject of a missing key")

    for bucket in (BUCKET, LIST_BUCKET):
        _empty_bucket(bucket)
        eq(S3.list_objects_v2(Bucket=bucket).get("KeyCount"), 0, f"{bucket} empty after deletes")
        eq(status_of_resp(S3.delete_bucket(Bucket=bucket)), 204, f"DeleteBucket {bucket}")
        expect_error(S3.head_bucket, ("404", "NotFound", "NoSuchBucket"), 404, Bucket=bucket)


def _empty_bucket(bucket):
    pager = S3.get_paginator("list_objects_v2")
    for _ in range(3):
        keys = []
        for page in pager.paginate(Bucket=bucket, PaginationConfig={"PageSize": 100, "MaxItems": 5000}):
            keys += [o["Key"] for o in page.get("Contents", [])]
        if not keys:
            return
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda k: S3.delete_object(Bucket=bucket, Key=k), keys))


def cleanup():
    """Best effort: leave no buckets behind even after failures."""
    for bucket in (BUCKET, LIST_BUCKET, TMP_BUCKET, MP_BUCKET):
        try:
            _abort_all_uploads(bucket)
            _empty_bucket(bucket)
            S3.delete_bucket(Bucket=bucket)
        except Exception:
            pass


def main():
    print(f"boto3 {boto3.__version__} / botocore {botocore.__version__} against {ENDPOINT}")
    passed, failed = [], []
    deadline = time.monotonic() + 200
    for fn in CHECKS:
        if time.monotonic() > deadline:
            failed.append(fn.__name__)
            print(f"  FAIL {fn.__name__}: suite deadline exceeded, not run")
            for op in fn.ops:
                print(f"op {op} fail")
            continue
        _LAST.request = _LAST.response = None
        start = time.monotonic()
        try:
            fn()
        except Exception as err:  # noqa: BLE001 - every failure is reported
            failed.append(fn.__name__)
            kind = "" if isinstance(err, AssertionError) else f"{type(err).__name__}: "
            print(f"  FAIL {fn.__name__}: {kind}{err}")
            if not isinstance(err, AssertionError):
                tb = traceback.extract_tb(err.__traceback__)
                frames = [f for f in tb if f.filename == __file__]
                if frames:
                    print(f"    at line {frames[-1].lineno}: {frames[-1].line}")
            print(describe_last_exchange())
        else:
            passed.append(fn.__name__)
            print(f"  ok   {fn.__name__} ({time.monotonic() - start:.1f}s)")
        outcome = "fail" if failed and failed[-1] == fn.__name__ else "ok"
        for op in fn.ops:
            print(f"op {op} {outcome}")
    cleanup()
    print(f"boto3: {len(passed)} passed, {len(failed)} failed")
    if failed:
        print("boto3 failed checks: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
