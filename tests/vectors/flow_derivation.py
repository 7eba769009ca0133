#!/usr/bin/env python3
"""Independent implementation of nitro-signer's per-user derivations of Flow account keys
(docs/key-derivation.md, "Flow account keys"): P-256, and secp256k1 with the Flow salt.

The derivation uses only Python's standard library (hmac, hashlib, through key_derivation.py); the public keys are computed
with `cryptography` (OpenSSL), so nothing printed comes from the Rust code it checks. Prints the
vector table of docs/key-derivation.md for the curve given as the argument: `p256` (the default)
or `flow-secp256k1`.
"""
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import serialization

# The RFC 5869 HKDF written out with hmac and hashlib, shared with the secp256k1 generator.
from key_derivation import hkdf_sha256

import sys

CURVES = {
    # name: (salt, group order, curve)
    "p256": (
        b"nitro-signer/p256/v1",
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        ec.SECP256R1(),
    ),
    "flow-secp256k1": (
        b"nitro-signer/flow-secp256k1/v1",
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
        ec.SECP256K1(),
    ),
}


def derive(seed: bytes, user_id: str, salt: bytes, order: int) -> bytes:
    uid = user_id.encode("utf-8")
    assert 1 <= len(uid) <= 256
    for counter in range(0, 256):
        info = uid if counter == 0 else uid + b"\x00" + bytes([counter])
        okm = hkdf_sha256(seed, salt, info)
        if 1 <= int.from_bytes(okm, "big") < order:
            return okm
    raise ValueError("no valid scalar")


def public_key(private: bytes, curve) -> bytes:
    """The 64-byte x ‖ y of the key's public point (Flow's public key form)."""
    key = ec.derive_private_key(int.from_bytes(private, "big"), curve)
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
    name = sys.argv[1] if len(sys.argv) > 1 else "p256"
    salt, order, curve = CURVES[name]
    print("| seed | user id | private key | public key (x ‖ y) |")
    print("|---|---|---|---|")
    for seed, uid in VECTORS:
        shown = uid if len(uid) < 40 else f'"x" × {len(uid)}'
        private = derive(seed, uid, salt, order)
        print(f"| `{seed.hex()}` | `{shown}` | `{private.hex()}` | `{public_key(private, curve).hex()}` |")
    retry = hkdf_sha256(bytes(range(32)), salt, b"alice" + b"\x00\x01")
    label = "P-256" if name == "p256" else "Flow secp256k1"
    print()
    print(f"{label} retry candidate for seed 000102…1f, user alice: `{retry.hex()}`")
