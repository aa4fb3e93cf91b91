#!/usr/bin/env python3
"""Verify a Custos audit ledger from the outside, with no Custos code.

Fetches the signed checkpoint, the verifier key, every leaf and a sample of
proofs over the API, then checks:

  1. the checkpoint's Ed25519 signature (C2SP signed-note format) under the
     published verifier key, and that the key id matches the key;
  2. the Merkle root recomputed from every leaf (RFC 9162: leaf hash
     SHA-256(0x00 || leaf), node hash SHA-256(0x01 || left || right)) equals
     the signed root;
  3. inclusion proofs (RFC 9162 section 2.1.3.2) for a sample of leaves;
  4. with --previous FILE, an older checkpoint you kept: its signature, and a
     consistency proof (section 2.1.4.2) from it to the current checkpoint, which
     shows the log was only appended to since.

Every leaf must also decode as a JSON audit event.

Usage:
  verify_ledger.py --url https://custos.example:8443 --token TOKEN \\
                   [--cacert cert.pem] [--previous old-checkpoint.txt] [--save FILE]

Needs Python 3.9+ and the `cryptography` package (pip install cryptography).
Exit 0 and "OK ..." when everything verifies; exit 1 and "FAIL: ..." otherwise.
"""

import argparse
import base64
import hashlib
import json
import random
import ssl
import sys
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Fail(Exception):
    pass


def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def mth(hashes):
    """Merkle tree hash of a list of leaf hashes (RFC 9162 section 2.1.1)."""
    if not hashes:
        return sha256(b"")
    level = list(hashes)
    # Combine left to right, carrying an odd last node up unchanged: this is
    # the same tree as the recursive definition (split at the largest power of 2).
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2 == 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        raise Fail("inclusion: index beyond size")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise Fail("inclusion: proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Fail("inclusion: proof too short")
    if r != root:
        raise Fail(f"inclusion proof of leaf {index} does not lead to the root")


def verify_consistency(size1, size2, proof, root1, root2):
    """RFC 9162 section 2.1.4.2."""
    if size1 > size2:
        raise Fail("consistency: first size larger than second")
    if size1 == size2:
        if proof or root1 != root2:
            raise Fail("consistency: equal sizes need an empty proof and equal roots")
        return
    if size1 == 0:
        if proof:
            raise Fail("consistency: proof from the empty tree must be empty")
        return
    if not proof:
        raise Fail("consistency: empty proof")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Fail("consistency: proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Fail("consistency: proof too short")
    if fr != root1 or sr != root2:
        raise Fail("consistency proof does not match the two roots")


def parse_verifier_key(vkey):
    # The base64 key may itself contain "+": split at the first two only.
    name, key_id_hex, key_b64 = vkey.strip().split("+", 2)
    key = base64.b64decode(key_b64)
    if len(key) != 33 or key[0] != 0x01:
        raise Fail("verifier key is not an Ed25519 note key")
    key_id = sha256(name.encode() + b"\n" + key)[:4]
    if key_id.hex() != key_id_hex:
        raise Fail("verifier key id does not match the key")
    return name, key_id, Ed25519PublicKey.from_public_bytes(key[1:])


def verify_note(note, vkey):
    """Checks a C2SP signed note; returns (origin, size, root)."""
    name, key_id, pub = parse_verifier_key(vkey)
    if "\n\n" not in note:
        raise Fail("checkpoint has no signature block")
    body, sigs = note.split("\n\n", 1)
    body += "\n"
    good = False
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            raise Fail("malformed signature line")
        signer, sig_b64 = line[2:].rsplit(" ", 1)
        sig = base64.b64decode(sig_b64)
        if signer == name and sig[:4] == key_id:
            try:
                pub.verify(sig[4:], body.encode())
                good = True
            except InvalidSignature:
                raise Fail("checkpoint signature is invalid")
    if not good:
        raise Fail("checkpoint is not signed by the published key")
    lines = body.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    if len(root) != 32:
        raise Fail("checkpoint root is not 32 bytes")
    return origin, size, root


class Api:
    def __init__(self, url, token, cacert):
        self.url = url.rstrip("/")
        self.token = token
        self.ctx = ssl.create_default_context(cafile=cacert) if cacert else ssl.create_default_context()

    def get(self, path, text=False):
        req = urllib.request.Request(self.url + path, headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, context=self.ctx, timeout=60) as r:
            body = r.read()
        return body.decode() if text else json.loads(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--cacert")
    ap.add_argument("--previous", help="an older checkpoint note you kept")
    ap.add_argument("--save", help="write the verified checkpoint to this file")
    ap.add_argument("--samples", type=int, default=16, help="how many inclusion proofs to check")
    args = ap.parse_args()
    api = Api(args.url, args.token, args.cacert)
    try:
        vkey = api.get("/api/v1/audit/verifier-key", text=True).strip()
        note = api.get("/api/v1/audit/checkpoint", text=True)
        origin, size, root = verify_note(note, vkey)

        hashes = []
        for start in range(0, size, 1000):
            page = api.get(f"/api/v1/audit/leaves?start={start}&end={min(start + 1000, size)}")["leaves"]
            for leaf in page:
                if leaf["index"] != len(hashes):
                    raise Fail(f"leaf {len(hashes)} missing from the API answer")
                data = base64.b64decode(leaf["data"])
                event = json.loads(data)
                if event.get("v") != 1 or "action" not in event:
                    raise Fail(f"leaf {leaf['index']} is not an audit event")
                hashes.append(leaf_hash(data))
        if len(hashes) != size:
            raise Fail(f"the API returned {len(hashes)} leaves for a checkpoint of {size}")
        if mth(hashes) != root:
            raise Fail("the root recomputed from the leaves differs from the signed checkpoint")

        sample = {0, size - 1} if size else set()
        rng = random.Random(size)
        while size and len(sample) < min(args.samples, size):
            sample.add(rng.randrange(size))
        for i in sorted(sample):
            p = api.get(f"/api/v1/audit/proof/inclusion?index={i}&size={size}")
            proof = [base64.b64decode(x) for x in p["proof"]]
            if base64.b64decode(p["leaf_hash"]) != hashes[i]:
                raise Fail(f"the API's leaf hash for {i} differs from the hash of its data")
            verify_inclusion(i, size, hashes[i], proof, root)

        if args.previous:
            with open(args.previous, encoding="utf-8") as f:
                o1, size1, root1 = verify_note(f.read(), vkey)
            if o1 != origin:
                raise Fail("the previous checkpoint is from another log")
            p = api.get(f"/api/v1/audit/proof/consistency?from={size1}&to={size}")
            verify_consistency(size1, size, [base64.b64decode(x) for x in p["proof"]], root1, root)
            if mth(hashes[:size1]) != root1:
                raise Fail("the leaves no longer produce the previous checkpoint's root")
        if args.save:
            with open(args.save, "w", encoding="utf-8") as f:
                f.write(note)
    except Fail as e:
        print(f"FAIL: {e}")
        return 1
    print(f"OK origin={origin} size={size} root={base64.b64encode(root).decode()} "
          f"inclusion_proofs={len(sample)}" + (" consistent_with_previous" if args.previous else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
