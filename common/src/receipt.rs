//! Receipts: the enclave's signed record of what it did.
//!
//! At start the enclave makes an Ed25519 receipt key that never leaves it and binds it with NSM
//! attestation documents whose `public_key` is the key's SubjectPublicKeyInfo and whose
//! `user_data` is [`RECEIPT_KEY_USER_DATA`]. Every answer that matters (a key created, an
//! address, signatures, a policy change) carries a [`Receipt`]: the receipt key's signature over a
//! [`Statement`] of what was done. A back end that verified one attestation document of the boot
//! checks every receipt of that boot with one signature verification.
//!
//! The byte layout is specified in `docs/receipts.md`; [`Statement::encode`] and
//! [`Statement::decode`] are its reference. Decoding is strict: every field's presence must fit
//! the operation, and nothing may follow the last field, so one statement has one encoding.

use std::fmt;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf};
use sha2::{Digest, Sha256};

use crate::{UserId, key_blob::Curve, protocol::MAX_BATCH};

/// The first bytes of every statement.
pub const RECEIPT_DOMAIN: &[u8] = b"nitro-signer/receipt/v1";

/// The first bytes hashed into an approvals digest.
pub const APPROVALS_DOMAIN: &[u8] = b"nitro-signer/approvals/v1";

/// `user_data` of the attestation documents that bind a receipt key.
pub const RECEIPT_KEY_USER_DATA: &[u8] = b"nitro-signer/receipt-key/v1";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Length of a signature in a [`SignedItem`]: `r ‖ s ‖ yParity`.
pub const ITEM_SIGNATURE_LEN: usize = 65;

/// The `address` field of Flow receipts: the last 20 bytes of SHA-256 of `signAlgo ‖ x ‖ y`,
/// where `signAlgo` is the Flow code of the key's curve ([`Curve::flow_sign_algo`]: 2 P-256,
/// 3 secp256k1) and `x ‖ y` its 64-byte public key: it binds the curve and the key in the field
/// every key receipt has.
pub fn flow_key_fingerprint(curve: Curve, public_key_xy: &[u8; 64]) -> [u8; 20] {
    let mut input = [0u8; 65];
    input[0] = curve.flow_sign_algo();
    input[1..].copy_from_slice(public_key_xy);
    let digest: [u8; 32] = Sha256::digest(input).into();
    let mut fingerprint = [0u8; 20];
    for (out, byte) in fingerprint.iter_mut().zip(digest.iter().skip(12)) {
        *out = *byte;
    }
    fingerprint
}

/// The receipt key's SubjectPublicKeyInfo DER, as attestation documents carry it.
pub fn receipt_key_spki(key: &[u8; 32]) -> [u8; 44] {
    let mut spki = [0u8; 44];
    spki[..12].copy_from_slice(&ED25519_SPKI_PREFIX);
    spki[12..].copy_from_slice(key);
    spki
}

/// The Ed25519 key of a SubjectPublicKeyInfo DER, if it is one.
pub fn receipt_key_from_spki(spki: &[u8]) -> Option<[u8; 32]> {
    let key = spki.strip_prefix(&ED25519_SPKI_PREFIX)?;
    key.try_into().ok()
}

/// What the enclave did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Operation {
    /// A key was generated; the blob is the new one.
    GenerateKey,
    /// An address was derived.
    Address,
    /// A transaction was signed.
    SignTransaction,
    /// Transactions of a batch were signed (the items say which).
    SignBatch,
    /// An EIP-191 personal message was signed.
    SignMessage,
    /// EIP-712 typed data was signed.
    SignTypedData,
    /// An EIP-7702 authorization was signed.
    SignAuthorization,
    /// A raw digest was signed.
    SignDigest,
    /// A key moved to a new policy; the blob is the new one.
    UpdatePolicy,
    /// A Flow account key's public key was derived; `address` is its [`flow_key_fingerprint`].
    FlowPublicKey,
    /// A Flow transaction was signed; `address` is the signing key's [`flow_key_fingerprint`],
    /// the item's `yParity` byte is 0.
    SignFlow,
}

impl Operation {
    const ALL: [Self; 11] = [
        Self::GenerateKey,
        Self::Address,
        Self::SignTransaction,
        Self::SignBatch,
        Self::SignMessage,
        Self::SignTypedData,
        Self::SignAuthorization,
        Self::SignDigest,
        Self::UpdatePolicy,
        Self::FlowPublicKey,
        Self::SignFlow,
    ];

    /// The byte that stands for the operation in a statement.
    pub fn code(self) -> u8 {
        match self {
            Self::GenerateKey => 1,
            Self::Address => 2,
            Self::SignTransaction => 3,
            Self::SignBatch => 4,
            Self::SignMessage => 5,
            Self::SignTypedData => 6,
            Self::SignAuthorization => 7,
            Self::SignDigest => 8,
            Self::UpdatePolicy => 9,
            Self::FlowPublicKey => 10,
            Self::SignFlow => 11,
        }
    }

    /// The operation of a code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.code() == code)
    }

    /// The `snake_case` name, as the audit log writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GenerateKey => "generate_key",
            Self::Address => "address",
            Self::SignTransaction => "sign_transaction",
            Self::SignBatch => "sign_batch",
            Self::SignMessage => "sign_message",
            Self::SignTypedData => "sign_typed_data",
            Self::SignAuthorization => "sign_authorization",
            Self::SignDigest => "sign_digest",
            Self::UpdatePolicy => "update_policy",
            Self::FlowPublicKey => "flow_public_key",
            Self::SignFlow => "sign_flow",
        }
    }

    /// The operation of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    /// Whether the operation signs (and its statement lists what it signed).
    pub fn signs(self) -> bool {
        !matches!(
            self,
            Self::GenerateKey | Self::Address | Self::UpdatePolicy | Self::FlowPublicKey
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signature the enclave made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedItem {
    /// Position in the request: 0 for single requests, the transaction's index in a batch.
    pub index: u16,
    /// The hash the enclave computed and signed.
    pub hash: [u8; 32],
    /// `r ‖ s ‖ yParity` (0 or 1).
    pub signature: [u8; ITEM_SIGNATURE_LEN],
}

/// What a receipt says. See `docs/receipts.md` for the byte layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// What was done.
    pub operation: Operation,
    /// The receipt key of the boot (Ed25519 public key), which signs the statement.
    pub receipt_key: [u8; 32],
    /// Position among the boot's receipts, from 1, without gaps.
    pub sequence: u64,
    /// The enclave's clock when the receipt was made, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The key's id (see `docs/key-derivation.md`).
    pub key_id: [u8; 32],
    /// SHA-256 of the key blob used, or made (key generation, policy change).
    pub blob_hash: [u8; 32],
    /// SHA-256 of the blob's policy document in canonical form, when it has one.
    pub policy_hash: Option<[u8; 32]>,
    /// The user whose derived key was used.
    pub user_id: Option<UserId>,
    /// The signer's address (absent for key generation and policy changes).
    pub address: Option<[u8; 20]>,
    /// [`approvals_digest`] of the approvals that were counted, when any were.
    pub approvals_digest: Option<[u8; 32]>,
    /// For a policy change: SHA-256 of the blob that was replaced.
    pub previous_blob_hash: Option<[u8; 32]>,
    /// For key creation and policy changes: the caller's nonce, when the request carried one,
    /// so that a back end can tell its own answer from a replayed one.
    pub request_nonce: Option<[u8; 32]>,
    /// What was signed, by index (strictly increasing).
    pub items: Vec<SignedItem>,
}

/// Why a statement or receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The statement bytes do not follow the layout.
    #[error("malformed receipt statement: {0}")]
    Malformed(&'static str),
    /// The statement is well formed but its fields do not fit its operation.
    #[error("receipt statement does not fit its operation: {0}")]
    Inconsistent(&'static str),
    /// The receipt is signed by another key than the one expected.
    #[error("receipt is signed by a receipt key that was not attested")]
    UnknownKey,
    /// The signature does not verify.
    #[error("receipt signature does not verify")]
    BadSignature,
    /// No randomness for a nonce.
    #[error("the system has no randomness for a nonce")]
    NoRandomness,
}

impl Statement {
    /// The statement's bytes, as the receipt key signs them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            RECEIPT_DOMAIN.len() + 250 + self.items.len() * (2 + 32 + ITEM_SIGNATURE_LEN),
        );
        out.extend_from_slice(RECEIPT_DOMAIN);
        out.push(self.operation.code());
        out.extend_from_slice(&self.receipt_key);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.blob_hash);
        put_optional(&mut out, self.policy_hash.as_ref().map(|h| h.as_slice()));
        match &self.user_id {
            None => out.push(0),
            Some(user) => {
                out.push(1);
                // `UserId::MAX_LEN` is 256: always fits two bytes.
                let len = u16::try_from(user.as_str().len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(user.as_str().as_bytes());
            }
        }
        put_optional(&mut out, self.address.as_ref().map(|a| a.as_slice()));
        put_optional(
            &mut out,
            self.approvals_digest.as_ref().map(|d| d.as_slice()),
        );
        put_optional(
            &mut out,
            self.previous_blob_hash.as_ref().map(|h| h.as_slice()),
        );
        put_optional(&mut out, self.request_nonce.as_ref().map(|n| n.as_slice()));
        // At most `MAX_BATCH` items: always fits two bytes.
        let count = u16::try_from(self.items.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for item in &self.items {
            out.extend_from_slice(&item.index.to_be_bytes());
            out.extend_from_slice(&item.hash);
            out.extend_from_slice(&item.signature);
        }
        out
    }

    /// Parses statement bytes, refusing anything [`Self::encode`] would not have produced for a
    /// consistent statement.
    pub fn decode(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let mut reader = Reader(bytes);
        if reader.take(RECEIPT_DOMAIN.len())? != RECEIPT_DOMAIN {
            return Err(ReceiptError::Malformed(
                "not a nitro-signer/receipt/v1 statement",
            ));
        }
        let operation = Operation::from_code(reader.byte()?)
            .ok_or(ReceiptError::Malformed("unknown operation"))?;
        let receipt_key = reader.array()?;
        let sequence = u64::from_be_bytes(reader.array()?);
        let time_ms = u64::from_be_bytes(reader.array()?);
        let key_id = reader.array()?;
        let blob_hash = reader.array()?;
        let policy_hash = reader.optional()?;
        let user_id = if reader.flag()? {
            let len = usize::from(u16::from_be_bytes(reader.array()?));
            let text = std::str::from_utf8(reader.take(len)?)
                .map_err(|_| ReceiptError::Malformed("user id is not UTF-8"))?;
            Some(UserId::new(text).map_err(|_| ReceiptError::Malformed("invalid user id"))?)
        } else {
            None
        };
        let address = reader.optional()?;
        let approvals_digest = reader.optional()?;
        let previous_blob_hash = reader.optional()?;
        let request_nonce = reader.optional()?;
        let count = usize::from(u16::from_be_bytes(reader.array()?));
        if count > MAX_BATCH {
            return Err(ReceiptError::Malformed("more items than a batch holds"));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let index = u16::from_be_bytes(reader.array()?);
            let hash = reader.array()?;
            let signature = reader.array()?;
            items.push(SignedItem {
                index,
                hash,
                signature,
            });
        }
        if !reader.0.is_empty() {
            return Err(ReceiptError::Malformed("bytes after the last item"));
        }
        let statement = Self {
            operation,
            receipt_key,
            sequence,
            time_ms,
            key_id,
            blob_hash,
            policy_hash,
            user_id,
            address,
            approvals_digest,
            previous_blob_hash,
            request_nonce,
            items,
        };
        statement.check()?;
        Ok(statement)
    }

    /// Checks that the fields fit the operation (what [`Self::decode`] enforces).
    pub fn check(&self) -> Result<(), ReceiptError> {
        use ReceiptError::Inconsistent;
        if self.sequence == 0 {
            return Err(Inconsistent("sequence numbers start at 1"));
        }
        let op = self.operation;
        if op.signs() || matches!(op, Operation::Address | Operation::FlowPublicKey) {
            if self.address.is_none() {
                return Err(Inconsistent(
                    "an address or signature receipt names the address",
                ));
            }
        } else if self.address.is_some() || self.user_id.is_some() {
            return Err(Inconsistent("key receipts name no address and no user"));
        }
        if (op == Operation::UpdatePolicy) != self.previous_blob_hash.is_some() {
            return Err(Inconsistent("only a policy change names a previous blob"));
        }
        if self.request_nonce.is_some()
            && !matches!(op, Operation::GenerateKey | Operation::UpdatePolicy)
        {
            return Err(Inconsistent(
                "only key creation and policy changes carry a nonce",
            ));
        }
        if op == Operation::UpdatePolicy && self.policy_hash.is_none() {
            return Err(Inconsistent("a policy change names the new policy"));
        }
        if self.approvals_digest.is_some() && !(op.signs() || op == Operation::UpdatePolicy) {
            return Err(Inconsistent(
                "only signatures and policy changes are approved",
            ));
        }
        match (op.signs(), op == Operation::SignBatch, self.items.len()) {
            (false, _, 0) => {}
            (false, _, _) => return Err(Inconsistent("only signing operations list items")),
            (true, false, 1) if self.items.first().is_some_and(|i| i.index == 0) => {}
            (true, false, _) => {
                return Err(Inconsistent("a single signature is one item at index 0"));
            }
            (true, true, 0) => return Err(Inconsistent("a batch receipt lists what was signed")),
            (true, true, _) => {
                let increasing = self
                    .items
                    .windows(2)
                    .all(|pair| matches!(pair, [a, b] if a.index < b.index));
                let in_range = self
                    .items
                    .last()
                    .is_some_and(|i| usize::from(i.index) < MAX_BATCH);
                if !increasing || !in_range {
                    return Err(Inconsistent(
                        "batch items are in strictly increasing index order within the batch",
                    ));
                }
            }
        }
        for item in &self.items {
            if item.signature[64] > 1 {
                return Err(Inconsistent("yParity is 0 or 1"));
            }
            if op == Operation::SignFlow && item.signature[64] != 0 {
                return Err(Inconsistent("a Flow signature's yParity byte is 0"));
            }
        }
        Ok(())
    }
}

fn put_optional(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            out.extend_from_slice(value);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReceiptError> {
        if self.0.len() < n {
            return Err(ReceiptError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, ReceiptError> {
        Ok(self.array::<1>()?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReceiptError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn flag(&mut self) -> Result<bool, ReceiptError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ReceiptError::Malformed("presence flags are 0 or 1")),
        }
    }

    fn optional<const N: usize>(&mut self) -> Result<Option<[u8; N]>, ReceiptError> {
        if self.flag()? {
            self.array().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A statement and the receipt key's signature over it, as answers carry them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The [`Statement`]'s bytes.
    pub statement: ByteBuf,
    /// Ed25519 signature over `statement` by the statement's receipt key.
    pub signature: ByteArray<64>,
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("statement", &format_args!("{} bytes", self.statement.len()))
            .finish_non_exhaustive()
    }
}

impl Receipt {
    /// Decodes the statement without checking the signature: nothing it says can be trusted.
    pub fn statement_unverified(&self) -> Result<Statement, ReceiptError> {
        Statement::decode(&self.statement)
    }

    /// Decodes the statement and verifies the signature with `trusted_key`, which must be the
    /// key the statement names (a receipt key the caller verified through attestation).
    pub fn verify(&self, trusted_key: &[u8; 32]) -> Result<Statement, ReceiptError> {
        let statement = Statement::decode(&self.statement)?;
        if &statement.receipt_key != trusted_key {
            return Err(ReceiptError::UnknownKey);
        }
        UnparsedPublicKey::new(&ED25519, trusted_key)
            .verify(&self.statement, self.signature.as_slice())
            .map_err(|_| ReceiptError::BadSignature)?;
        Ok(statement)
    }
}

/// One approval as it is hashed into an [`approvals_digest`].
#[derive(Debug, Clone, Copy)]
pub struct CountedApproval<'a> {
    /// The approver's name in the policy.
    pub approver: &'a str,
    /// The approval's expiry, Unix seconds.
    pub expires_at: u64,
    /// The approval's signature.
    pub signature: &'a [u8],
}

/// SHA-256 over the approvals that were counted, in the order the request carried them:
/// `APPROVALS_DOMAIN ‖ count (u8) ‖ for each: name length (u8) ‖ name ‖ expiresAt (u64 BE) ‖
/// signature length (u8) ‖ signature`.
pub fn approvals_digest(approvals: &[CountedApproval<'_>]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(APPROVALS_DOMAIN);
    // Names are at most 64 bytes, signatures 64, and a request carries at most 16 approvals.
    hasher.update([u8::try_from(approvals.len()).unwrap_or(u8::MAX)]);
    for approval in approvals {
        let name = approval.approver.as_bytes();
        hasher.update([u8::try_from(name.len()).unwrap_or(u8::MAX)]);
        hasher.update(name);
        hasher.update(approval.expires_at.to_be_bytes());
        hasher.update([u8::try_from(approval.signature.len()).unwrap_or(u8::MAX)]);
        hasher.update(approval.signature);
    }
    hasher.finalize().into()
}

/// 32 random bytes, for the nonce of an attestation request or a key request. Fails only if
/// the system has no randomness at all.
pub fn random_nonce() -> Result<[u8; 32], ReceiptError> {
    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| ReceiptError::NoRandomness)?;
    Ok(nonce)
}

/// SHA-256 of a key blob's bytes, as statements name blobs.
pub fn blob_hash(blob: &[u8]) -> [u8; 32] {
    Sha256::digest(blob).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(operation: Operation) -> Statement {
        let signs = operation.signs();
        let names_key = matches!(operation, Operation::Address | Operation::FlowPublicKey);
        Statement {
            operation,
            receipt_key: [0x11; 32],
            sequence: 7,
            time_ms: 1_764_770_000_123,
            key_id: [0x22; 32],
            blob_hash: [0x33; 32],
            policy_hash: Some([0x44; 32]),
            user_id: (signs || names_key).then(|| UserId::new("alice").unwrap()),
            address: (signs || names_key).then_some([0x55; 20]),
            approvals_digest: signs.then_some([0x66; 32]),
            previous_blob_hash: (operation == Operation::UpdatePolicy).then_some([0x77; 32]),
            request_nonce: (!signs && !names_key).then_some([0x99; 32]),
            items: if signs {
                let mut signature = [1; 65];
                // A Flow signature's yParity byte is 0.
                signature[64] = u8::from(operation != Operation::SignFlow);
                vec![SignedItem {
                    index: 0,
                    hash: [0x88; 32],
                    signature,
                }]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn statements_round_trip_for_every_operation() {
        for op in Operation::ALL {
            let statement = sample(op);
            let bytes = statement.encode();
            assert_eq!(Statement::decode(&bytes).unwrap(), statement, "{op}");
            assert_eq!(Operation::from_name(op.as_str()), Some(op));
        }
    }

    #[test]
    fn flow_receipts_follow_their_rules() {
        // A Flow signature's yParity byte is 0; a public-key receipt lists no items.
        let mut statement = sample(Operation::SignFlow);
        statement.items[0].signature[64] = 1;
        assert_eq!(
            Statement::decode(&statement.encode()),
            Err(ReceiptError::Inconsistent(
                "a Flow signature's yParity byte is 0"
            ))
        );
        let mut statement = sample(Operation::FlowPublicKey);
        statement.items = sample(Operation::SignFlow).items;
        assert!(Statement::decode(&statement.encode()).is_err());
        let mut statement = sample(Operation::FlowPublicKey);
        statement.address = None;
        assert!(Statement::decode(&statement.encode()).is_err());
        // The fingerprint binds the curve: one key, two fingerprints.
        let key = [0x42; 64];
        assert_ne!(
            flow_key_fingerprint(Curve::P256, &key),
            flow_key_fingerprint(Curve::Secp256k1, &key)
        );
    }

    #[test]
    fn trailing_and_truncated_bytes_are_refused() {
        let bytes = sample(Operation::SignMessage).encode();
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Statement::decode(&longer).is_err());
        for len in 0..bytes.len() {
            assert!(Statement::decode(&bytes[..len]).is_err(), "{len}");
        }
    }

    #[test]
    fn fields_must_fit_the_operation() {
        let mut s = sample(Operation::GenerateKey);
        s.address = Some([0; 20]);
        assert!(Statement::decode(&s.encode()).is_err());
        let mut s = sample(Operation::SignTransaction);
        s.items.clear();
        assert!(Statement::decode(&s.encode()).is_err());
        let mut s = sample(Operation::SignBatch);
        s.items = vec![s.items[0], s.items[0]];
        assert!(Statement::decode(&s.encode()).is_err());
        let mut s = sample(Operation::UpdatePolicy);
        s.previous_blob_hash = None;
        assert!(Statement::decode(&s.encode()).is_err());
        let mut s = sample(Operation::Address);
        s.sequence = 0;
        assert!(Statement::decode(&s.encode()).is_err());
    }

    /// The vectors of `docs/receipts.md`, made with Python `cryptography` from the layout.
    #[test]
    fn documented_vectors() {
        let key: [u8; 32] =
            hex::decode("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
                .unwrap()
                .try_into()
                .unwrap();
        let approvals = approvals_digest(&[CountedApproval {
            approver: "ops",
            expires_at: 1_796_300_600,
            signature: &[0x55; 64],
        }]);
        assert_eq!(
            hex::encode(approvals),
            "ee31d228204744c7b1e5635cc22cf716abdb8a61a53d67a861245f19b8f4910c"
        );
        let mut signature = [0x77; 65];
        signature[64] = 1;
        let transaction = Statement {
            operation: Operation::SignTransaction,
            receipt_key: key,
            sequence: 42,
            time_ms: 1_796_300_000_000,
            key_id: [0x11; 32],
            blob_hash: [0x22; 32],
            policy_hash: Some([0x33; 32]),
            user_id: Some(UserId::new("alice").unwrap()),
            address: Some([0x44; 20]),
            approvals_digest: Some(approvals),
            previous_blob_hash: None,
            request_nonce: None,
            items: vec![SignedItem {
                index: 0,
                hash: [0x66; 32],
                signature,
            }],
        };
        let created = Statement {
            operation: Operation::GenerateKey,
            sequence: 1,
            policy_hash: None,
            user_id: None,
            address: None,
            approvals_digest: None,
            request_nonce: Some([0x88; 32]),
            items: Vec::new(),
            ..transaction.clone()
        };
        for (statement, bytes, signature) in [
            (
                transaction,
                "6e6974726f2d7369676e65722f726563656970742f76310303a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8000000000000002a000001a23bd2cb0011111111111111111111111111111111111111111111111111111111111111112222222222222222222222222222222222222222222222222222222222222222013333333333333333333333333333333333333333333333333333333333333333010005616c69636501444444444444444444444444444444444444444401ee31d228204744c7b1e5635cc22cf716abdb8a61a53d67a861245f19b8f4910c00000001000066666666666666666666666666666666666666666666666666666666666666667777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777701",
                "9613d2d1ae939424e38f12b824c0fb5ef987dd702a8682686ad8eddefecfdecf6d01285619144c92dd3ed9cb612fec5dd0477ece552ed67a5b8826603f145602",
            ),
            (
                created,
                "6e6974726f2d7369676e65722f726563656970742f76310103a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b80000000000000001000001a23bd2cb001111111111111111111111111111111111111111111111111111111111111111222222222222222222222222222222222222222222222222222222222222222200000000000188888888888888888888888888888888888888888888888888888888888888880000",
                "d484612340ce35ffd5df067e9a8fdf7119ec075642595cb07c85c2ccfbc914226f690c651581537349b33139c67726b040dd44c7bdd4e0d6c5fa53757804fd09",
            ),
        ] {
            assert_eq!(hex::encode(statement.encode()), bytes);
            let receipt = Receipt {
                statement: ByteBuf::from(hex::decode(bytes).unwrap()),
                signature: ByteArray::new(hex::decode(signature).unwrap().try_into().unwrap()),
            };
            assert_eq!(receipt.verify(&key).unwrap(), statement);
            assert_eq!(receipt.verify(&[0; 32]), Err(ReceiptError::UnknownKey));
        }
        // The `sign_flow` vector: the fingerprint of the first P-256 derivation vector's key.
        let xy: [u8; 64] = hex::decode(
            "85cac42373c7a8c50ab67fe328cf1dc0b3a6f8b4167101e9c15485f5ad86f71e\
             c00bf654aa2a30fe213cca6aeecb8f4c07a223543e4ce7feefae466cbda8f0ab",
        )
        .unwrap()
        .try_into()
        .unwrap();
        let fingerprint = flow_key_fingerprint(Curve::P256, &xy);
        assert_eq!(
            hex::encode(fingerprint),
            "8848b5d83b2065b55856f3112247067bd16529fc"
        );
        let mut flow_signature = [0x77; 65];
        flow_signature[64] = 0;
        let flow = Statement {
            operation: Operation::SignFlow,
            receipt_key: key,
            sequence: 43,
            time_ms: 1_796_300_000_000,
            key_id: [0x11; 32],
            blob_hash: [0x22; 32],
            policy_hash: None,
            user_id: Some(UserId::new("alice").unwrap()),
            address: Some(fingerprint),
            approvals_digest: None,
            previous_blob_hash: None,
            request_nonce: None,
            items: vec![SignedItem {
                index: 0,
                hash: [0x66; 32],
                signature: flow_signature,
            }],
        };
        let bytes = "6e6974726f2d7369676e65722f726563656970742f76310b03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8000000000000002b000001a23bd2cb001111111111111111111111111111111111111111111111111111111111111111222222222222222222222222222222222222222222222222222222222222222200010005616c696365018848b5d83b2065b55856f3112247067bd16529fc0000000001000066666666666666666666666666666666666666666666666666666666666666667777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777777700";
        assert_eq!(hex::encode(flow.encode()), bytes);
        let receipt = Receipt {
            statement: ByteBuf::from(hex::decode(bytes).unwrap()),
            signature: ByteArray::new(
                hex::decode("70932b80ac6684b7ce05e9086a7fbef07e981e86cb4586072f3c86fb1bbe8129262e1e9a8de1ed563c41509f62385a5f55ef6aecdea894a26b03a37db9950e05")
                    .unwrap()
                    .try_into()
                    .unwrap(),
            ),
        };
        assert_eq!(receipt.verify(&key).unwrap(), flow);
        assert_eq!(
            hex::encode(receipt_key_spki(&key)),
            "302a300506032b657003210003a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
        );
    }

    #[test]
    fn spki_round_trips() {
        let key = [9u8; 32];
        assert_eq!(receipt_key_from_spki(&receipt_key_spki(&key)), Some(key));
        assert_eq!(receipt_key_from_spki(&[0u8; 44]), None);
        assert_eq!(receipt_key_from_spki(&receipt_key_spki(&key)[..43]), None);
    }
}
