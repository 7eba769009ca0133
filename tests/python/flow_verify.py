"""Flow signatures and account keys from nitro-signer, checked with code this project did not
write: `cryptography` (OpenSSL) verifies each ECDSA signature over the message with the account
key's hash (SHA2-256 or SHA3-256), on P-256 or secp256k1, and `rlp` decodes each account key.

Used by cli/tests/flow_e2e.rs:

    python3 flow_verify.py < checks.json
        checks: [{"curve": "p256" | "secp256k1", "hash": "sha2-256" | "sha3-256",
                  "publicKey": "0x<x ‖ y>", "message": "0x…", "signature": "0x<r ‖ s>",
                  "accountKey": "0x…" (optional)}, …]
        prints {"verified": N, "accountKeys": M}; exits non-zero at the first failure
"""

import json
import sys

import rlp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

CURVES = {"p256": (ec.SECP256R1(), 2), "secp256k1": (ec.SECP256K1(), 3)}
HASHES = {"sha2-256": (hashes.SHA256, 1), "sha3-256": (hashes.SHA3_256, 3)}


def unhex(text):
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def main():
    checks = json.load(sys.stdin)
    verified = account_keys = 0
    for check in checks:
        curve, sign_algo = CURVES[check["curve"]]
        hash_class, hash_algo = HASHES[check["hash"]]
        xy = unhex(check["publicKey"])
        assert len(xy) == 64, "a Flow public key is 64 bytes"
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + xy)
        signature = unhex(check["signature"])
        assert len(signature) == 64, "a Flow signature is r ‖ s, 64 bytes"
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        # Raises InvalidSignature if it does not verify.
        public_key.verify(der, unhex(check["message"]), ec.ECDSA(hash_class()))
        verified += 1
        if "accountKey" in check:
            key, algo, hash_code, weight = rlp.decode(unhex(check["accountKey"]))
            assert key == xy, "accountKey: another public key"
            assert int.from_bytes(algo, "big") == sign_algo, "accountKey: signAlgo"
            assert int.from_bytes(hash_code, "big") == hash_algo, "accountKey: hashAlgo"
            assert int.from_bytes(weight, "big") == 1000, "accountKey: weight"
            account_keys += 1
    print(json.dumps({"verified": verified, "accountKeys": account_keys}))


main()
