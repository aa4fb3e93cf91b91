#!/usr/bin/env python3
"""Verify a Custos purge certificate offline, with no Custos code.

A retention run (`custos retention run`, or Privacy > Retention in the web UI)
ends with a purge certificate, a JSON file. It states, per retention policy,
how many records were purged and how many a legal hold kept, and where the run
is in the audit ledger: the leaf that recorded its start, the leaf that
recorded its end with the counts, and a signed checkpoint covering both, with
their inclusion proofs. This script checks:

  1. the verifier key in the file is the key you trust (--key, obtained from
     the operator or an earlier export, not from this file);
  2. the checkpoint's Ed25519 signature (C2SP signed note) under that key;
  3. both leaves: each decodes as an audit event, SHA-256(0x00 || data) is its
     stated hash, and its RFC 9162 inclusion proof leads to the signed root;
  4. the first leaf is `retention.start` and the last `retention.finish`, both
     naming the certificate's run; the counts in the finish leaf are exactly
     the certificate's, policy by policy; and the ledger has room between the
     two leaves for one entry per purged record (each purge is recorded).

Usage:
  verify_certificate.py CERTIFICATE.json --key 'custos.local/ledger+1a2b3c4d+AY...'

Needs Python 3.9+ and the `cryptography` package. Exit 0 and "OK ..." when
everything verifies; exit 1 and "FAIL: ..." otherwise.
"""

import argparse
import base64
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify_ledger import Fail, leaf_hash, verify_inclusion, verify_note  # noqa: E402

FORMAT = "custos-purge-certificate/1"
# A policy's name: entity.anchor.Ny, e.g. orders.completed_at.2y.
POLICY = re.compile(r"^[a-z_]+\.[a-z_]+\.[0-9]+y$")


def checked_leaf(leaf, size, root):
    index = int(leaf["index"])
    data = base64.b64decode(leaf["data"], validate=True)
    h = leaf_hash(data)
    if h.hex() != leaf["leaf_hash"]:
        raise Fail(f"leaf {index}: its hash does not match its data")
    proof = [bytes.fromhex(x) for x in leaf["inclusion_proof"]]
    if any(len(p) != 32 for p in proof):
        raise Fail(f"leaf {index}: a proof hash is not 32 bytes")
    verify_inclusion(index, size, h, proof, root)
    event = json.loads(data)
    if event.get("v") != 1 or "action" not in event:
        raise Fail(f"leaf {index} is not an audit event")
    return index, event


def detail_words(event):
    """The `key=value` words of an event's detail."""
    out = {}
    for word in (event.get("detail") or "").split():
        if "=" in word:
            k, v = word.split("=", 1)
            out[k] = v
    return out


def verify(path, trusted_key):
    with open(path, encoding="utf-8") as f:
        cert = json.load(f)
    if cert.get("format") != FORMAT:
        raise Fail(f"not a Custos purge certificate (format {cert.get('format')!r})")
    ledger = cert["ledger"]
    if ledger["verifier_key"].strip() != trusted_key.strip():
        raise Fail("the certificate's verifier key is not the key you trust")
    origin, size, root = verify_note(ledger["checkpoint"], trusted_key)
    if int(ledger["tree_size"]) != size:
        raise Fail("the stated tree size is not the checkpoint's")
    leaves = {}
    for leaf in ledger["leaves"]:
        index, event = checked_leaf(leaf, size, root)
        leaves[index] = event
    first, last = int(ledger["first_index"]), int(ledger["last_index"])
    if first not in leaves or last not in leaves:
        raise Fail("the first and last leaves of the run are not both in the certificate")
    run = cert["run_id"]
    start, finish = leaves[first], leaves[last]
    if start["action"] != "retention.start" or detail_words(start).get("run") != run:
        raise Fail(f"leaf {first} does not record the start of run {run}")
    if finish["action"] != "retention.finish" or detail_words(finish).get("run") != run:
        raise Fail(f"leaf {last} does not record the end of run {run}")
    recorded = {k: v for k, v in detail_words(finish).items() if POLICY.match(k)}
    stated = {
        p["policy"]: f"purged:{int(p['purged'])},held:{int(p['held'])}" for p in cert["policies"]
    }
    if recorded != stated:
        raise Fail(f"the counts in the ledger {recorded} are not the certificate's {stated}")
    purged = sum(int(p["purged"]) for p in cert["policies"])
    if last - first - 1 < purged:
        raise Fail(
            f"{purged} records are said to be purged, but the ledger has only "
            f"{last - first - 1} entries between the run's start and end"
        )
    return origin, size, root, run, purged


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("certificate", help="the certificate JSON file")
    ap.add_argument("--key", required=True, help="the ledger's verifier key, from a source you trust")
    args = ap.parse_args()
    try:
        origin, size, root, run, purged = verify(args.certificate, args.key)
    except (Fail, ValueError, KeyError, IndexError, TypeError) as e:
        print(f"FAIL: {e}")
        return 1
    print(
        f"OK run {run}: purged {purged} records, recorded in origin={origin} "
        f"size={size} root={base64.b64encode(root).decode()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
