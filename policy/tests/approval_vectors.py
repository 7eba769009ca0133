#!/usr/bin/env python3
"""Approval test vectors, computed independently of the Rust code.

Only the standard library (hashlib, struct, json) and `cryptography` (pinned in .ci/run) are used:
the statement layout is written out here from docs (docs/policy.md), not translated from
approval.rs. The keys are fixed, so everything is deterministic except the P-256 signatures
(ECDSA in `cryptography` is randomized); the Rust test compares the deterministic parts with the
committed policy/tests/vectors/approvals.json and verifies the P-256 signatures.

Usage: python3 policy/tests/approval_vectors.py > policy/tests/vectors/approvals.json
       python3 policy/tests/approval_vectors.py verify < signatures.json
"""

import hashlib
import json
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

APPROVAL_DOMAIN = b"nitro-signer/approval/v1"
BATCH_DOMAIN = b"nitro-signer/batch/v1"
POLICY_DOMAIN = b"nitro-signer/policy/v1"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# --- The statement (docs/policy.md, "Statement") -----------------------------------------


def statement_digest(key_id: bytes, user_id, subject: bytes, expires_at: int) -> bytes:
    assert len(APPROVAL_DOMAIN) == 24 and len(key_id) == 32 and len(subject) == 32
    uid = b"" if user_id is None else user_id.encode("utf-8")
    return hashlib.sha256(
        APPROVAL_DOMAIN
        + key_id
        + struct.pack(">H", len(uid))
        + uid
        + subject
        + struct.pack(">Q", expires_at)
    ).digest()


def batch_subject(hashes_: list) -> bytes:
    return hashlib.sha256(BATCH_DOMAIN + b"".join(hashes_)).digest()


def policy_subject(canonical_policy: bytes) -> bytes:
    return hashlib.sha256(POLICY_DOMAIN + canonical_policy).digest()


def sign(private_key, digest: bytes) -> bytes:
    """The 64-byte approval signature over the 32-byte statement digest."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(digest)
    # ECDSA P-256 with SHA-256: the ECDSA message is the digest, hashed once more by ECDSA.
    r, s = decode_dss_signature(private_key.sign(digest, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# --- Ed25519 small-order points, from the curve equation ---------------------------------------

ED_P = 2**255 - 19
ED_D = (-121665 * pow(121666, ED_P - 2, ED_P)) % ED_P
ED_L = 2**252 + 27742317777372353535851937790883648493
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)
ED_IDENTITY = (0, 1)


def ed_add(a, b):
    (x1, y1), (x2, y2) = a, b
    t = ED_D * x1 * x2 * y1 * y2 % ED_P
    x3 = (x1 * y2 + y1 * x2) * pow(1 + t, ED_P - 2, ED_P) % ED_P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, ED_P - 2, ED_P) % ED_P
    return (x3, y3)


def ed_mul(k, point):
    result = ED_IDENTITY
    while k:
        if k & 1:
            result = ed_add(result, point)
        point = ed_add(point, point)
        k >>= 1
    return result


def ed_point_with_y(y):
    u = (y * y - 1) * pow(ED_D * y * y + 1, ED_P - 2, ED_P) % ED_P
    x = pow(u, (ED_P + 3) // 8, ED_P)
    if x * x % ED_P != u:
        x = x * ED_SQRT_M1 % ED_P
    if x * x % ED_P != u:
        return None
    return (x, y)


def ed25519_small_order_y() -> list:
    """Every 255-bit y (sign bit clear) that decodes to a point of order 1, 2, 4 or 8.

    The torsion subgroup is cyclic of order 8: find a generator T as L*P of order 8, take its
    eight multiples, and add the non-canonical encodings y + p that still fit in 255 bits.
    """
    y = 2
    while True:
        point = ed_point_with_y(y)
        if point is not None:
            torsion = ed_mul(ED_L, point)
            if ed_mul(4, torsion) != ED_IDENTITY:
                break
        y += 1
    points = [ed_mul(k, torsion) for k in range(8)]
    assert all(ed_mul(8, p) == ED_IDENTITY for p in points)
    ys = {p[1] for p in points}
    ys |= {y + ED_P for y in ys if y + ED_P < 2**255}
    return sorted(ys)


# --- Vectors -----------------------------------------------------------------------------------


def hx(b: bytes) -> str:
    return "0x" + b.hex()


def main() -> None:
    ed_seed = bytes(range(0x01, 0x21))
    ed_key = ed25519.Ed25519PrivateKey.from_private_bytes(ed_seed)
    p256_scalar = int.from_bytes(bytes(range(0x21, 0x41)), "big")
    p256_key = ec.derive_private_key(p256_scalar, ec.SECP256R1())

    ed_public = ed_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    p256_public = p256_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    p256_public_compressed = p256_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )

    def key_file(kind, key, public):
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {"type": kind, "privateKey": hx(der), "publicKey": hx(public)}

    approvers = [
        {
            "name": "ops-1",
            "type": "ed25519",
            "seed": hx(ed_seed),
            "publicKey": hx(ed_public),
            "keyFile": key_file("ed25519", ed_key, ed_public),
        },
        {
            "name": "ops-2",
            "type": "p256",
            "privateScalar": hx(p256_scalar.to_bytes(32, "big")),
            "publicKey": hx(p256_public),
            "publicKeyCompressed": hx(p256_public_compressed),
            "keyFile": key_file("p256", p256_key, p256_public),
        },
    ]

    key_id = hashlib.sha256(b"nitro-signer approval vector key").digest()
    expires_at = 1767225600  # 2026-01-01T00:00:00Z
    batch_items = [hashlib.sha256(b"batch item %d" % i).digest() for i in (1, 2, 3)]
    canonical_policy = b'{"approvers":{},"rules":[],"version":1}'

    cases = [
        {
            "name": "seed key, user alice",
            "keyId": key_id,
            "userId": "alice",
            "subject": hashlib.sha256(b"signing hash of a transaction").digest(),
        },
        {
            "name": "imported key (no user id)",
            "keyId": key_id,
            "userId": None,
            "subject": hashlib.sha256(b"signing hash of a message").digest(),
        },
        {
            "name": "seed key, non-ASCII user id (length in bytes)",
            "keyId": key_id,
            "userId": "zo\u00eb-\U0001f980",
            "subject": hashlib.sha256(b"signing hash of a transaction").digest(),
        },
        {
            "name": "batch of 3",
            "keyId": key_id,
            "userId": "alice",
            "batchItems": batch_items,
            "subject": batch_subject(batch_items),
        },
        {
            "name": "policy change",
            "keyId": key_id,
            "userId": None,
            "canonicalPolicy": canonical_policy,
            "subject": policy_subject(canonical_policy),
        },
    ]

    out_cases = []
    for case in cases:
        digest = statement_digest(case["keyId"], case["userId"], case["subject"], expires_at)
        r, s = decode_dss_signature(p256_key.sign(digest, ec.ECDSA(hashes.SHA256())))
        low_s, high_s = min(s, P256_ORDER - s), max(s, P256_ORDER - s)
        out = {
            "name": case["name"],
            "keyId": hx(case["keyId"]),
            "userId": case["userId"],
        }
        if "batchItems" in case:
            out["batchItems"] = [hx(h) for h in case["batchItems"]]
        if "canonicalPolicy" in case:
            out["canonicalPolicy"] = case["canonicalPolicy"].decode("utf-8")
        out.update(
            {
                "subject": hx(case["subject"]),
                "expiresAt": expires_at,
                "digest": hx(digest),
                "ed25519Signature": hx(sign(ed_key, digest)),
                # Randomized: checked by verification, not compared.
                "p256Signature": hx(sign(p256_key, digest)),
                "p256SignatureLowS": hx(r.to_bytes(32, "big") + low_s.to_bytes(32, "big")),
                "p256SignatureHighS": hx(r.to_bytes(32, "big") + high_s.to_bytes(32, "big")),
                "p256SignatureDer": hx(encode_dss_signature(r, s)),
            }
        )
        out_cases.append(out)

    vectors = {
        "comment": "Generated by policy/tests/approval_vectors.py; p256Signature* are randomized.",
        "approvers": approvers,
        "cases": out_cases,
        "ed25519SmallOrderY": [hx(y.to_bytes(32, "little")) for y in ed25519_small_order_y()],
    }
    # UTF-8 whatever the locale: the user ids are not all ASCII.
    sys.stdout.buffer.write(json.dumps(vectors, indent=2, ensure_ascii=False).encode() + b"\n")


def verify_stdin() -> None:
    """`verify` mode: checks signatures made by the Rust code.

    Reads a JSON list of {"type", "publicKey", "digest", "signature"} from stdin, exits 1 unless
    every signature verifies under `cryptography`.
    """
    for item in json.load(sys.stdin):
        public = bytes.fromhex(item["publicKey"][2:])
        digest = bytes.fromhex(item["digest"][2:])
        sig = bytes.fromhex(item["signature"][2:])
        if item["type"] == "ed25519":
            ed25519.Ed25519PublicKey.from_public_bytes(public).verify(sig, digest)
        else:
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
            der = encode_dss_signature(
                int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
            )
            key.verify(der, digest, ec.ECDSA(hashes.SHA256()))
    print("ok")


if __name__ == "__main__":
    if sys.argv[1:] == ["verify"]:
        verify_stdin()
    else:
        main()
