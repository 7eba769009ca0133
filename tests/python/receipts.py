"""An independent verifier of nitro-signer receipts, written from docs/receipts.md with Python
`cryptography` and `cbor2`. Nothing here comes from nitro-signer. Used by cli/tests/receipts_e2e.rs.

    python3 receipts.py verify < input.json
    python3 receipts.py mutations < input.json

input: {"document": "<base64 COSE_Sign1>", "nonce": "<hex>", "rootSha256": "<hex>",
        "pcrs": {"0": "<hex>", "1": "<hex>", "2": "<hex>"},
        "receipts": [{"statement": "0x…", "signature": "0x…"}, …]}

`verify` checks the attestation document (COSE signature, certificate chain to the pinned root,
PCR0-2, not a debug enclave, nonce, the receipt key in `public_key` and `user_data`), then every
receipt (layout, Ed25519 signature by the attested key) and prints the decoded statements.

`mutations` changes every byte, one at a time (its lowest bit flipped), of the document, of each
statement and of each signature, and prints how many changes were refused (all must be) and how
many were tried.
"""

import base64
import hashlib
import json
import struct
import sys
from datetime import datetime, timezone

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

RECEIPT_DOMAIN = b"nitro-signer/receipt/v1"
RECEIPT_KEY_USER_DATA = b"nitro-signer/receipt-key/v1"
OPERATIONS = {
    1: "generate_key", 2: "address", 3: "sign_transaction", 4: "sign_batch",
    5: "sign_message", 6: "sign_typed_data", 7: "sign_authorization", 8: "sign_digest",
    9: "update_policy", 10: "flow_public_key", 11: "sign_flow",
}


class Refused(Exception):
    pass


def forbidden_in_user_id(c):
    """The characters docs/key-derivation.md forbids in user ids."""
    n = ord(c)
    return (
        n <= 0x1F
        or 0x7F <= n <= 0x9F
        or n == 0x61C
        or 0x200B <= n <= 0x200F
        or 0x2028 <= n <= 0x202E
        or n == 0x2060
        or 0x2066 <= n <= 0x2069
        or n == 0xFEFF
    )


def verify_document(document, nonce, root_sha256, pcrs):
    """The receipt key an attestation document binds, after checking it all."""
    try:
        return _verify_document(document, nonce, root_sha256, pcrs)
    except Refused:
        raise
    except Exception as e:  # anything malformed is refused, never trusted
        raise Refused(f"malformed document: {e!r}")


def _verify_document(document, nonce, root_sha256, pcrs):
    try:
        cose = cbor2.loads(document)
    except Exception as e:
        raise Refused(f"document is not CBOR: {e}")
    if isinstance(cose, cbor2.CBORTag):
        cose = cose.value
    if not isinstance(cose, list) or len(cose) != 4:
        raise Refused("not a COSE_Sign1 array")
    protected, unprotected, payload_bytes, signature = cose
    if not all(isinstance(x, bytes) for x in (protected, payload_bytes, signature)):
        raise Refused("COSE fields are not byte strings")
    if unprotected != {}:
        raise Refused("unexpected unprotected header")
    if cbor2.loads(protected) != {1: -35}:
        raise Refused("protected header is not ES384")
    payload = cbor2.loads(payload_bytes)
    if not isinstance(payload, dict):
        raise Refused("payload is not a map")
    if payload.get("digest") != "SHA384":
        raise Refused("digest is not SHA384")
    try:
        leaf = x509.load_der_x509_certificate(payload["certificate"])
        chain = [x509.load_der_x509_certificate(c) for c in payload["cabundle"]]
    except Exception as e:
        raise Refused(f"bad certificate: {e}")
    if len(signature) != 96:
        raise Refused("signature is not 96 bytes")
    sig_structure = cbor2.dumps(["Signature1", protected, b"", payload_bytes])
    der = encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    try:
        leaf.public_key().verify(der, sig_structure, ec.ECDSA(hashes.SHA384()))
    except (InvalidSignature, Exception):
        raise Refused("COSE signature does not verify")
    if not chain or hashlib.sha256(payload["cabundle"][0]).hexdigest() != root_sha256:
        raise Refused("root is not the pinned root")
    now = datetime.now(timezone.utc)
    certs = chain + [leaf]
    for issuer, cert in zip(certs, certs[1:]):
        if cert.issuer != issuer.subject:
            raise Refused("issuer name does not chain")
        try:
            issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                       ec.ECDSA(cert.signature_hash_algorithm))
        except (InvalidSignature, Exception):
            raise Refused("certificate signature does not verify")
    for cert in certs:
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            raise Refused("certificate not valid now")
    if sorted(int(i) for i in pcrs) != [0, 1, 2]:
        raise Refused("PCR0, PCR1 and PCR2 must all be pinned")
    document_pcrs = payload.get("pcrs", {})
    for index, expected in pcrs.items():
        if document_pcrs.get(int(index)) != bytes.fromhex(expected):
            raise Refused(f"PCR{index} does not match")
    if all(document_pcrs.get(i) == bytes(48) for i in range(3)):
        raise Refused("debug enclave")
    if payload.get("nonce") != nonce:
        raise Refused("nonce does not match")
    if payload.get("user_data") != RECEIPT_KEY_USER_DATA:
        raise Refused("user_data does not name a receipt key")
    try:
        key = serialization.load_der_public_key(payload["public_key"])
    except Exception:
        raise Refused("public_key is not a SubjectPublicKeyInfo")
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise Refused("public_key is not Ed25519")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, n):
        if self.at + n > len(self.data):
            raise Refused("truncated statement")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def optional(self, n):
        flag = self.u8()
        if flag == 0:
            return None
        if flag != 1:
            raise Refused("presence flag is not 0 or 1")
        return "0x" + self.take(n).hex()


def decode_statement(data):
    """docs/receipts.md, "Statement layout"."""
    r = Reader(data)
    if r.take(len(RECEIPT_DOMAIN)) != RECEIPT_DOMAIN:
        raise Refused("not a receipt statement")
    code = r.u8()
    if code not in OPERATIONS:
        raise Refused("unknown operation")
    s = {"operation": OPERATIONS[code]}
    s["receiptKey"] = "0x" + r.take(32).hex()
    s["sequence"] = r.u64()
    s["timeMs"] = r.u64()
    s["keyId"] = "0x" + r.take(32).hex()
    s["blobHash"] = "0x" + r.take(32).hex()
    s["policyHash"] = r.optional(32)
    flag = r.u8()
    if flag == 1:
        length = r.u16()
        if not 1 <= length <= 256:
            raise Refused("user id is 1 to 256 bytes")
        s["userId"] = r.take(length).decode("utf-8")
        if any(forbidden_in_user_id(c) for c in s["userId"]):
            raise Refused("user id has a control or invisible formatting character")
    elif flag == 0:
        s["userId"] = None
    else:
        raise Refused("presence flag is not 0 or 1")
    s["address"] = r.optional(20)
    s["approvalsDigest"] = r.optional(32)
    s["previousBlobHash"] = r.optional(32)
    s["requestNonce"] = r.optional(32)
    items = []
    for _ in range(r.u16()):
        index = r.u16()
        items.append({"index": index, "hash": "0x" + r.take(32).hex(), "signature": "0x" + r.take(65).hex()})
    s["items"] = items
    if r.at != len(data):
        raise Refused("bytes after the last item")
    check_consistency(s)
    return s


def check_consistency(s):
    """The rules of docs/receipts.md, "Which fields each operation has"."""
    op = s["operation"]
    signs = op.startswith("sign_")
    if s["sequence"] == 0:
        raise Refused("sequence 0")
    if signs or op in ("address", "flow_public_key"):
        if s["address"] is None:
            raise Refused("no address")
    elif s["address"] is not None or s["userId"] is not None:
        raise Refused("key receipts name no address or user")
    if (op == "update_policy") != (s["previousBlobHash"] is not None):
        raise Refused("previous blob only for policy changes")
    if s["requestNonce"] is not None and op not in ("generate_key", "update_policy"):
        raise Refused("request nonce only for key creation and policy changes")
    if op == "update_policy" and s["policyHash"] is None:
        raise Refused("policy change without policy hash")
    if s["approvalsDigest"] is not None and not (signs or op == "update_policy"):
        raise Refused("approvals digest on an operation that is not approved")
    items = s["items"]
    if not signs:
        if items:
            raise Refused("items on an operation that signs nothing")
    elif op != "sign_batch":
        if len(items) != 1 or items[0]["index"] != 0:
            raise Refused("single signature is one item at index 0")
    else:
        indices = [i["index"] for i in items]
        if not items or any(a >= b for a, b in zip(indices, indices[1:])) or indices[-1] >= 1000:
            raise Refused("batch items out of order")
    for item in items:
        if bytes.fromhex(item["signature"][2:])[64] > 1:
            raise Refused("yParity is not 0 or 1")
        if op == "sign_flow" and bytes.fromhex(item["signature"][2:])[64] != 0:
            raise Refused("a Flow signature's yParity byte is 0")


def verify_receipt(receipt_key, statement, signature):
    try:
        decoded = decode_statement(statement)
    except Refused:
        raise
    except Exception as e:
        raise Refused(f"malformed statement: {e!r}")
    if decoded["receiptKey"] != "0x" + receipt_key.hex():
        raise Refused("signed by another receipt key")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(receipt_key).verify(signature, statement)
    except InvalidSignature:
        raise Refused("receipt signature does not verify")
    return decoded


def hexbytes(text):
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def main():
    command = sys.argv[1]
    request = json.load(sys.stdin)
    document = base64.b64decode(request["document"])
    nonce = hexbytes(request["nonce"])
    root, pcrs = request["rootSha256"], request["pcrs"]
    receipts = [(hexbytes(r["statement"]), hexbytes(r["signature"])) for r in request["receipts"]]
    key = verify_document(document, nonce, root, pcrs)
    if command == "verify":
        print(json.dumps({"receiptKey": "0x" + key.hex(),
                          "statements": [verify_receipt(key, s, g) for s, g in receipts]}))
        return
    assert command == "mutations"
    tried = refused = 0

    def attempt(check):
        nonlocal tried, refused
        tried += 1
        try:
            check()
        except Refused:
            refused += 1

    for i in range(len(document)):
        changed = bytearray(document)
        changed[i] ^= 0x01
        attempt(lambda: verify_document(bytes(changed), nonce, root, pcrs))
    for statement, signature in receipts:
        for i in range(len(statement)):
            changed = bytearray(statement)
            changed[i] ^= 0x01
            attempt(lambda: verify_receipt(key, bytes(changed), signature))
        for i in range(len(signature)):
            changed = bytearray(signature)
            changed[i] ^= 0x01
            attempt(lambda: verify_receipt(key, statement, bytes(changed)))
    print(json.dumps({"tried": tried, "refused": refused}))


if __name__ == "__main__":
    try:
        main()
    except Refused as e:
        print(f"refused: {e}", file=sys.stderr)
        sys.exit(1)
