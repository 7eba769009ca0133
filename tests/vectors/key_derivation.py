#!/usr/bin/env python3
"""Independent implementation of nitro-signer's per-user key derivation (docs/key-derivation.md).

Uses only Python's standard library (hmac, hashlib), so the vectors it prints do not come from the
Rust code they check. Prints the vector table of docs/key-derivation.md.
"""
import hashlib
import hmac

SALT = b"nitro-signer/secp256k1/v1"
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()  # RFC 5869 extract
    okm, block, counter = b"", b"", 1
    while len(okm) < length:  # RFC 5869 expand
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def derive(seed: bytes, user_id: str) -> bytes:
    uid = user_id.encode("utf-8")
    assert 1 <= len(uid) <= 256
    info = uid
    for counter in range(0, 256):
        if counter > 0:
            info = uid + b"\x00" + bytes([counter])
        okm = hkdf_sha256(seed, SALT, info)
        if 1 <= int.from_bytes(okm, "big") < N:
            return okm
    raise ValueError("no valid scalar")


VECTORS = [
    (bytes(range(32)), "alice"),
    (bytes(range(32)), "bob"),
    (bytes(range(32)), "Alice"),
    (bytes([0xFF] * 32), "user-0001"),
    (bytes([0x00] * 32), "0"),
    (bytes(range(32)), "é漢字🔑"),
    (bytes([0x42] * 32), "x" * 256),
]

if __name__ == "__main__":
    print("| seed | user id | private key |")
    print("|---|---|---|")
    for seed, uid in VECTORS:
        shown = uid if len(uid) < 40 else f'"x" × {len(uid)}'
        print(f"| `{seed.hex()}` | `{shown}` | `{derive(seed, uid).hex()}` |")
    # The retry path: the candidate a derivation would take after rejecting the first one.
    retry = hkdf_sha256(bytes(range(32)), SALT, b"alice" + b"\x00\x01")
    print()
    print(f"retry candidate for seed 000102…1f, user alice: `{retry.hex()}`")
