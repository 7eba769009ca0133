#!/usr/bin/env python3
"""Independent implementation of nitro-signer's per-user P-256 key derivation
(docs/key-derivation.md, "P-256").

The derivation uses only Python's standard library (hmac, hashlib, through key_derivation.py); the public keys are computed
with `cryptography` (OpenSSL), so nothing printed comes from the Rust code it checks. Prints the
P-256 vector table of docs/key-derivation.md.
"""
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import serialization

# The RFC 5869 HKDF written out with hmac and hashlib, shared with the secp256k1 generator.
from key_derivation import hkdf_sha256

SALT = b"nitro-signer/p256/v1"
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def derive(seed: bytes, user_id: str) -> bytes:
    uid = user_id.encode("utf-8")
    assert 1 <= len(uid) <= 256
    for counter in range(0, 256):
        info = uid if counter == 0 else uid + b"\x00" + bytes([counter])
        okm = hkdf_sha256(seed, SALT, info)
        if 1 <= int.from_bytes(okm, "big") < N:
            return okm
    raise ValueError("no valid scalar")


def public_key(private: bytes) -> bytes:
    """The 64-byte x ‖ y of the key's public point (Flow's public key form)."""
    key = ec.derive_private_key(int.from_bytes(private, "big"), ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point[1:]


VECTORS = [
    (bytes(range(32)), "alice"),
    (bytes(range(32)), "bob"),
    (bytes([0xFF] * 32), "user-0001"),
    (bytes([0x00] * 32), "0"),
    (bytes(range(32)), "é漢字🔑"),
    (bytes([0x42] * 32), "x" * 256),
]

if __name__ == "__main__":
    print("| seed | user id | private key | public key (x ‖ y) |")
    print("|---|---|---|---|")
    for seed, uid in VECTORS:
        shown = uid if len(uid) < 40 else f'"x" × {len(uid)}'
        private = derive(seed, uid)
        print(f"| `{seed.hex()}` | `{shown}` | `{private.hex()}` | `{public_key(private).hex()}` |")
    retry = hkdf_sha256(bytes(range(32)), SALT, b"alice" + b"\x00\x01")
    print()
    print(f"P-256 retry candidate for seed 000102…1f, user alice: `{retry.hex()}`")
