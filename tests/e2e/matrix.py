#!/usr/bin/env python3
"""Clients-by-operation matrix for the end-to-end suites (used by run.sh).

  matrix.py slice SERVER_LOG START_BYTE END_BYTE
      Prints "OPERATION STATUS" for each S3 request the server logged between
      the two byte offsets of its log (one client suite's requests). The
      server must log at `s3s=debug`, which names each request's operation
      ("resolved route op=...") and its response status.

  matrix.py build OUT.md RUN...
      Each RUN is CLIENT:LAYOUT:SUITE_OUTPUT:OPS_FILE. Reads the suites'
      "op OPERATION ok|fail" lines and the server-side operation lists, and
      writes a markdown table: one row per operation (a bracketed feature,
      "GetObject[range]", gets its own row), one column per client;
      ✓ = every check about it passed on every layout (and the server saw the
      client send it), ✗ = a check about it failed, blank = not exercised.
      Below the table: operations a client sent that no check is about, and
      any 5xx or 501 answers. Also prints the table.
"""

import re
import sys
from collections import defaultdict

SPAN = re.compile(r"call\{start_time=([^}]*)\}")
ROUTE = re.compile(r"resolved route op=(\w+)")
STATUS = re.compile(r"resp=Response \{ status: (\d+)")

ORDER = [
    "ListBuckets", "CreateBucket", "HeadBucket", "GetBucketLocation", "DeleteBucket",
    "GetBucketVersioning", "GetBucketAcl", "PutBucketAcl",
    "PutBucketCors", "GetBucketCors", "DeleteBucketCors",
    "GetBucketPolicy", "GetBucketLifecycleConfiguration", "GetBucketRequestPayment",
    "GetBucketOwnershipControls", "GetPublicAccessBlock",
    "PutObject", "PostObject", "GetObject", "HeadObject", "CopyObject",
    "DeleteObject", "DeleteObjects", "ListObjects", "ListObjectsV2",
    "GetObjectAttributes", "PutObjectTagging", "GetObjectTagging", "DeleteObjectTagging",
    "GetObjectAcl", "PutObjectAcl",
    "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload",
    "AbortMultipartUpload", "ListParts", "ListMultipartUploads",
]
CLIENT_ORDER = ["rust-sdk", "boto3", "awscli", "s5cmd", "rclone", "s3cmd", "minio"]


def slice_log(path, start, end):
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read(max(0, end - start)).decode("utf-8", "replace")
    ops, statuses, order = {}, {}, []
    for line in text.splitlines():
        span = SPAN.search(line)
        if not span:
            continue
        key = span.group(1)
        m = ROUTE.search(line)
        if m and key not in ops:
            ops[key] = m.group(1)
            order.append(key)
            continue
        m = STATUS.search(line)
        if m:
            statuses[key] = m.group(1)
    for key in order:
        print(ops[key], statuses.get(key, "-"))


def split_op(name):
    m = re.fullmatch(r"(\w+)\[([^\]]+)\]", name)
    return (m.group(1), m.group(2)) if m else (name, None)


def row_label(name):
    base, feature = split_op(name)
    return f"{base} ({feature})" if feature else base


def sort_key(name):
    base, feature = split_op(name)
    rank = ORDER.index(base) if base in ORDER else len(ORDER)
    return (rank, base, feature or "")


def build(out_path, runs):
    results = defaultdict(set)      # (client, op) -> {"ok", "fail"}
    issued = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))  # client -> op -> status -> n
    have_log = defaultdict(bool)    # client -> the server log named its operations
    clients = []
    for run in runs:
        client, _layout, out_file, ops_file = run.split(":", 3)
        if client not in clients:
            clients.append(client)
        try:
            with open(out_file, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = re.fullmatch(r"op (\S+) (ok|fail)\s*", line)
                    if m:
                        results[(client, m.group(1))].add(m.group(2))
        except OSError:
            pass
        try:
            with open(ops_file, encoding="utf-8") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2:
                        issued[client][parts[0]][parts[1]] += 1
                        have_log[client] = True
        except OSError:
            pass
    clients.sort(key=lambda c: CLIENT_ORDER.index(c) if c in CLIENT_ORDER else len(CLIENT_ORDER))

    declared = {op for (_, op) in results}
    # operations the server's s3s log names at all (a request the server
    # answers before s3s, such as a POST upload in some versions, is not named)
    logged = {op for client in issued for op in issued[client]}
    notes = []
    cells = {}
    for (client, op), outcomes in results.items():
        base, _ = split_op(op)
        if "fail" in outcomes:
            cells[(client, op)] = "✗"
        elif have_log[client] and base in logged and base not in issued[client]:
            cells[(client, op)] = ""
            notes.append(f"- {client}: a passing check is about {op}, but the server never saw {client} send {base}")
        else:
            cells[(client, op)] = "✓"

    lines = ["| Operation | " + " | ".join(clients) + " |", "|---|" + "---|" * len(clients)]
    for op in sorted(declared, key=sort_key):
        lines.append(f"| {row_label(op)} | " + " | ".join(cells.get((c, op), "") for c in clients) + " |")
    table = "\n".join(lines)

    extra = []
    for client in clients:
        checked = {split_op(op)[0] for (c, op) in results if c == client}
        others = sorted((op for op in issued[client] if op not in checked), key=sort_key)
        if others:
            desc = ", ".join(f"{op} ({', '.join(f'{s}×{n}' for s, n in sorted(issued[client][op].items()))})"
                             for op in others)
            extra.append(f"- {client}: {desc}")
    errors = []
    for client in clients:
        for op, statuses in sorted(issued[client].items(), key=lambda kv: sort_key(kv[0])):
            bad = {s: n for s, n in statuses.items() if s.startswith("5")}
            if bad:
                errors.append(f"- {client}: {op} answered " + ", ".join(f"{s}×{n}" for s, n in sorted(bad.items())))

    doc = [table, ""]
    doc.append("✓: every check about the operation passed on every layout run (1 and 4 drives); "
               "✗: a check about it failed; blank: not exercised by that client's suite. "
               "A bracketed feature has its own row.")
    if extra:
        doc += ["", "Also sent by the clients, not the subject of a check (server-side count by status):", *extra]
    if errors:
        doc += ["", "5xx answers (501 is NotImplemented):", *errors]
    if notes:
        doc += ["", "Inconsistencies between the checks and the server log:", *notes]
    text = "\n".join(doc) + "\n"
    if out_path != "-":
        with open(out_path, "w", encoding="utf-8") as f:
            f.write(text)
    print(text, end="")


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "slice":
        slice_log(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "build":
        build(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
