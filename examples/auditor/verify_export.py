#!/usr/bin/env python3
"""Verify a CSV export of the Custos audit ledger offline, with no Custos code.

An export (web UI: Audit ledger > Export with proofs) is one CSV file: a header,
one `leaf` row per event, then a `checkpoint` row whose `data` column is a
signed checkpoint note and a `verifier_key` row whose `data` is the ledger's
note verifier key. This script checks:

  1. the verifier key in the file is the key you trust (--key, obtained from
     the operator or an earlier export, not from this file);
  2. the checkpoint's Ed25519 signature (C2SP signed note) under that key;
  3. for every leaf row: `data` decodes as an audit event, SHA-256(0x00 || data)
     equals `leaf_hash`, `tree_size` is the checkpoint's size, and the
     `inclusion_proof` (RFC 9162 section 2.1.3.2) leads from the leaf hash to
     the signed root.

Usage:
  verify_export.py EXPORT.csv --key 'custos.local/ledger+1a2b3c4d+AY...'

Needs Python 3.9+ and the `cryptography` package. Exit 0 and "OK ..." when
everything verifies; exit 1 and "FAIL: ..." otherwise.
"""

import argparse
import base64
import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify_ledger import Fail, leaf_hash, verify_inclusion, verify_note  # noqa: E402

COLUMNS = [
    "row", "index", "time", "actor", "action", "subject_id", "record", "categories",
    "purpose", "outcome", "client", "request_id", "detail", "leaf_hash", "tree_size",
    "inclusion_proof", "data",
]


def verify(path, trusted_key):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        rows = list(reader)
    if header != COLUMNS:
        raise Fail("the header is not that of a Custos ledger export")
    if len(rows) < 3 or rows[-2][0] != "checkpoint" or rows[-1][0] != "verifier_key":
        raise Fail("the last two rows must be the checkpoint and the verifier key")
    col = {name: i for i, name in enumerate(COLUMNS)}
    file_key = rows[-1][col["data"]].strip()
    if file_key != trusted_key.strip():
        raise Fail("the file's verifier key is not the key you trust")
    origin, size, root = verify_note(rows[-2][col["data"]], trusted_key)
    seen = set()
    for r in rows[:-2]:
        if len(r) != len(COLUMNS) or r[0] != "leaf":
            raise Fail("a row before the checkpoint is not a leaf row")
        index = int(r[col["index"]])
        if index in seen:
            raise Fail(f"leaf {index} appears twice")
        seen.add(index)
        if int(r[col["tree_size"]]) != size:
            raise Fail(f"leaf {index}: its tree size is not the checkpoint's")
        data = r[col["data"]].encode("utf-8")
        event = json.loads(data)
        if event.get("v") != 1 or "action" not in event:
            raise Fail(f"leaf {index} is not an audit event")
        h = leaf_hash(data)
        if h.hex() != r[col["leaf_hash"]]:
            raise Fail(f"leaf {index}: its hash does not match its data")
        proof = [bytes.fromhex(x) for x in r[col["inclusion_proof"]].split()]
        if any(len(p) != 32 for p in proof):
            raise Fail(f"leaf {index}: a proof hash is not 32 bytes")
        verify_inclusion(index, size, h, proof, root)
    return origin, size, root, len(seen)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("export", help="the CSV file")
    ap.add_argument("--key", required=True, help="the ledger's verifier key, from a source you trust")
    args = ap.parse_args()
    try:
        origin, size, root, n = verify(args.export, args.key)
    except (Fail, ValueError, KeyError, IndexError) as e:
        print(f"FAIL: {e}")
        return 1
    print(f"OK {n} events included in origin={origin} size={size} "
          f"root={base64.b64encode(root).decode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
