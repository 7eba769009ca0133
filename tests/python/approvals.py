"""Approvals for nitro-signer, made the way a back end would: the subject computed with
eth-account, the statement of docs/policy.md built by hand, signed with `cryptography`.

Nothing here comes from nitro-signer. Used by cli/tests/policy_e2e.rs:

    python3 approvals.py keys
        prints {"ed25519": "0x<32 bytes>", "p256": "0x<33 bytes>"}: the approvers' public keys
    python3 approvals.py approve < request.json
        request: {"keyId": "0x…", "userId": "alice" | null, "expiresAt": N,
                  "signers": ["ed25519", "p256"], "names": {"ed25519": "ops-1", …},
                  "transaction": {…} | "message": "text" | "batch": [{…}, …] | "policy": {…}}
        prints the approvals, a JSON array of {"approver", "expiresAt", "signature"}
"""

import hashlib
import json
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from eth_account._utils.legacy_transactions import serializable_unsigned_transaction_from_dict
from eth_account.messages import _hash_eip191_message, encode_defunct

# Fixed test keys: an Ed25519 seed and a P-256 scalar.
ED25519 = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
P256 = ec.derive_private_key(0x1D2C3B4A5F6E7D8C9BAAB9C8D7E6F5041322314F5E6D7C8B9AA9B8C7D6E5F4A3, ec.SECP256R1())


def public_keys():
    ed = ED25519.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    p = P256.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    return {"ed25519": "0x" + ed.hex(), "p256": "0x" + p.hex()}


def quantity(value):
    return int(value, 16) if isinstance(value, str) else value


def transaction_hash(tx):
    """The transaction's signing hash, as eth-account computes it."""
    fields = {}
    for key, value in tx.items():
        if key in ("from",):
            continue
        if key == "input":
            key = "data"
        if key in ("type", "chainId", "nonce", "gas", "gasPrice", "maxFeePerGas",
                   "maxPriorityFeePerGas", "value"):
            value = quantity(value)
        fields[key] = value
    if "type" in fields and fields["type"] >= 1:
        fields.setdefault("accessList", [])
    fields.setdefault("data", "0x")
    return serializable_unsigned_transaction_from_dict(fields).hash()


def subject(request):
    if "transaction" in request:
        return bytes(transaction_hash(request["transaction"]))
    if "message" in request:
        return bytes(_hash_eip191_message(encode_defunct(text=request["message"])))
    if "batch" in request:
        return hashlib.sha256(
            b"nitro-signer/batch/v1" + b"".join(bytes(transaction_hash(tx)) for tx in request["batch"])
        ).digest()
    if "policy" in request:
        # RFC 8785 for a document of ASCII strings and small integers: sorted keys, no spaces.
        canonical = json.dumps(request["policy"], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(b"nitro-signer/policy/v1" + canonical.encode()).digest()
    raise SystemExit("nothing to approve")


def statement(key_id, user_id, subject_hash, expires_at):
    user = (user_id or "").encode()
    return hashlib.sha256(
        b"nitro-signer/approval/v1"
        + key_id
        + struct.pack(">H", len(user))
        + user
        + subject_hash
        + struct.pack(">Q", expires_at)
    ).digest()


def sign(kind, digest):
    if kind == "ed25519":
        return ED25519.sign(digest)
    r, s = decode_dss_signature(P256.sign(digest, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def main():
    if sys.argv[1:] == ["keys"]:
        print(json.dumps(public_keys()))
        return
    if sys.argv[1:] != ["approve"]:
        raise SystemExit(__doc__)
    request = json.load(sys.stdin)
    key_id = bytes.fromhex(request["keyId"][2:])
    digest = statement(key_id, request.get("userId"), subject(request), request["expiresAt"])
    approvals = [
        {
            "approver": request["names"][kind],
            "expiresAt": request["expiresAt"],
            "signature": "0x" + sign(kind, digest).hex(),
        }
        for kind in request["signers"]
    ]
    print(json.dumps(approvals))


main()
