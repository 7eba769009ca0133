#![doc = include_str!("../README.md")]
//!
//! # Conventions
//!
//! Conventions follow Ethereum JSON-RPC: names are camelCase, quantities are minimal `0x` hex
//! (`"0x0"` for zero), byte strings are `0x` hex, addresses are EIP-55 checksummed. Key blobs and
//! attestation documents are standard base64 (with padding). One exception: an [`Approval`]'s
//! `expiresAt` is a JSON integer (Unix seconds), as approvers' tools write it. Request bodies
//! refuse unknown fields; answer bodies tolerate them, so that a client keeps working when answers
//! grow.
//!
//! Transactions, typed data, authorizations and policy documents are carried as the caller's
//! exact JSON text ([`RawValue`]): the enclave is the only parser that counts, and it refuses what it does not
//! accept (JSON numbers for quantities, unknown fields…) itself.
//!
//! Every error is `{"error": {"code": "snake_case_code", "message": "…"}}` ([`ErrorResponse`]).

use std::fmt;

use alloy_primitives::{Address, B256, U256};
use base64::Engine as _;
use nitro_signer_common::{UserId, key_blob::Curve, protocol::ErrorCode as Enclave};
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, MapAccess, Visitor},
    ser::SerializeMap,
};
use serde_json::value::RawValue;

pub mod json_rpc;

/// Most approvals one request carries: the enclave's own limit.
pub use nitro_signer_common::protocol::MAX_APPROVALS;
/// Most transactions accepted in one `POST /v1/sign/transactions`: the enclave's own limit.
pub use nitro_signer_common::protocol::MAX_BATCH;

/// A KMS-encrypted key blob, as stored by the caller. Travels as standard base64. Its `Debug`
/// shows only its length: blobs are not secret, but they have no place in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBlob(Vec<u8>);

impl KeyBlob {
    /// Wraps the blob's bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The blob's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The blob's bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The base64 text used in JSON.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }
}

impl From<Vec<u8>> for KeyBlob {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for KeyBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyBlob(<{} bytes>)", self.0.len())
    }
}

impl Serialize for KeyBlob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        base64_bytes::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for KeyBlob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        base64_bytes::deserialize(deserializer).map(Self)
    }
}

/// `POST /v1/keys`: `{"label"?, "policy"?}` (`"owner"` is accepted for `"label"`; giving both
/// is refused). An empty body means neither.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenerateKeyRequest {
    /// Owner or tenant label, bound to the key through the KMS encryption context.
    #[serde(default, alias = "owner", skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The key's policy document (a JSON object, see `docs/policy.md`), passed to the enclave as
    /// written: the enclave parses it, keeps its canonical form in the blob and binds its hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Box<RawValue>>,
    /// 32 bytes of the caller's choosing, repeated in the receipt (`docs/receipts.md`), so that
    /// a replayed answer (another key's) is told apart from this one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "hex_option_b256"
    )]
    pub nonce: Option<B256>,
}

/// `201` answer to `POST /v1/keys`, and the answer to `POST /v1/keys/policy`:
/// `{"keyBlob", "keyId", "policyHash"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyResponse {
    /// The key blob, to store.
    pub key_blob: KeyBlob,
    /// The key's stable public identifier, 32 bytes.
    #[serde(with = "hex_b256")]
    pub key_id: B256,
    /// SHA-256 of the key's policy document in canonical form (RFC 8785), when it has one: the
    /// blob's `nitro-signer:policy-sha256` encryption-context entry.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "hex_option_b256"
    )]
    pub policy_hash: Option<B256>,
    /// The enclave's receipt for this answer (see `docs/receipts.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// The enclave's receipt: `{"statement": "0x…", "signature": "0x…"}`. The statement's byte
/// layout and how to check it are in `docs/receipts.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Receipt {
    /// The statement the receipt key signed.
    #[serde(with = "hex_bytes")]
    pub statement: Vec<u8>,
    /// The receipt key's Ed25519 signature over `statement`, 64 bytes.
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

/// `POST /v1/keys/policy`: `{"keyBlob", "policy", "approvals"?}`. The key's secret is
/// re-encrypted under the new policy, if the approvals meet the current policy's `admins`
/// quorum; the answer is a [`KeyResponse`] with the new blob (the key id stays the same).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePolicyRequest {
    /// The key whose policy changes.
    pub key_blob: KeyBlob,
    /// The new policy document (a JSON object), passed to the enclave as written.
    pub policy: Box<RawValue>,
    /// The admins' approvals of the change (at most [`MAX_APPROVALS`]); absent means none.
    #[serde(default, deserialize_with = "at_most_max_approvals")]
    pub approvals: Vec<Approval>,
    /// 32 bytes of the caller's choosing, repeated in the receipt.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "hex_option_b256"
    )]
    pub nonce: Option<B256>,
}

/// An approver's signature over a request (see `docs/policy.md`):
/// `{"approver", "expiresAt", "signature"}`, `expiresAt` a JSON integer (Unix seconds) and
/// `signature` `0x` hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approval {
    /// The approver's name in the key's policy.
    pub approver: String,
    /// Unix seconds after which the approval no longer counts.
    pub expires_at: u64,
    /// The signature (64 bytes: Ed25519, or P-256 `r ‖ s`); the enclave checks it.
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

/// The `approvals` of a request: a list of at most [`MAX_APPROVALS`], refused while parsing
/// beyond that (before the rest of the list is read).
fn at_most_max_approvals<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Approval>, D::Error> {
    struct Bounded;

    impl<'de> Visitor<'de> for Bounded {
        type Value = Vec<Approval>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX_APPROVALS} approvals")
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut approvals = Vec::new();
            while let Some(approval) = seq.next_element::<Approval>()? {
                if approvals.len() == MAX_APPROVALS {
                    return Err(de::Error::custom(format!(
                        "more than {MAX_APPROVALS} approvals"
                    )));
                }
                approvals.push(approval);
            }
            Ok(approvals)
        }
    }

    deserializer.deserialize_seq(Bounded)
}

/// `POST /v1/address`: `{"keyBlob", "userId"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressRequest {
    /// The key.
    pub key_blob: KeyBlob,
    /// The user, for seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
}

/// One account the JSON-RPC endpoint serves: a file `ADDRESS.json` in the proxy's accounts
/// directory (`--accounts-dir`), written by `nitro-signer accounts add`:
/// `{"address", "keyBlob", "userId"?, "label"?}`. The proxy asks the enclave for the address of
/// `keyBlob` and `userId` when it loads the file, and refuses the account unless it is
/// `address` (see `docs/json-rpc.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountFile {
    /// The account's address, EIP-55 checksummed.
    #[serde(with = "checksummed")]
    pub address: Address,
    /// The key.
    pub key_blob: KeyBlob,
    /// The user, for seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// A name for people (at most 128 characters); not used for signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl AccountFile {
    /// Longest `label`, in characters.
    pub const MAX_LABEL_CHARS: usize = 128;

    /// Parses an account file strictly: unknown fields and repeated keys are refused, and a
    /// label must have at most [`AccountFile::MAX_LABEL_CHARS`] characters and no control
    /// characters. The error names the field.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        nitro_signer_eth::json::check(bytes).map_err(|error| error.to_string())?;
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let account: Self = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|error| format!("invalid account file: {error}"))?;
        deserializer
            .end()
            .map_err(|error| format!("invalid account file: {error}"))?;
        if let Some(label) = &account.label {
            Self::check_label(label)?;
        }
        Ok(account)
    }

    /// The rule for a `label`.
    pub fn check_label(label: &str) -> Result<(), String> {
        if label.chars().count() > Self::MAX_LABEL_CHARS || label.chars().any(char::is_control) {
            return Err(format!(
                "invalid field `label`: at most {} characters, no control characters",
                Self::MAX_LABEL_CHARS
            ));
        }
        Ok(())
    }
}

/// Answer to `POST /reload`: the accounts served after reading the accounts directory again,
/// and the files that were not taken, each with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadResponse {
    /// Addresses served now, in order.
    pub accounts: Vec<String>,
    /// Files refused (bad file, or an address the enclave does not confirm).
    pub refused: Vec<RefusedAccount>,
    /// Files whose address could not be checked yet (the enclave or KMS unavailable); the proxy
    /// tries them again every few seconds.
    pub pending: Vec<RefusedAccount>,
}

/// A file of the accounts directory that is not served, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusedAccount {
    /// The file's name in the accounts directory.
    pub file: String,
    /// Why it is not served.
    pub reason: String,
}

/// Answer to `POST /v1/address`: `{"address", "publicKey"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressResponse {
    /// The address, EIP-55 checksummed.
    #[serde(with = "checksummed")]
    pub address: Address,
    /// The uncompressed SEC1 public key, `0x04…` (65 bytes).
    #[serde(with = "hex_bytes")]
    pub public_key: Vec<u8>,
    /// The enclave's receipt for this answer (see `docs/receipts.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// `POST /v1/sign/transaction`: `{"keyBlob", "userId"?, "transaction": {…}, "approvals"?}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignTransactionRequest {
    /// The key.
    pub key_blob: KeyBlob,
    /// The user, for seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// An `eth_signTransaction` object, passed to the enclave as written.
    pub transaction: Box<RawValue>,
    /// Approvals for the key's policy (at most [`MAX_APPROVALS`]); absent means none.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_approvals"
    )]
    pub approvals: Vec<Approval>,
}

/// A signed transaction: the answer to `POST /v1/sign/transaction`, and each successful entry of
/// `POST /v1/sign/transactions`.
///
/// `{"from", "hash", "signingHash", "signature": {"r", "s", "yParity", "v"?}, "raw"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedTransaction {
    /// The signer.
    #[serde(with = "checksummed")]
    pub from: Address,
    /// The transaction hash.
    #[serde(with = "hex_b256")]
    pub hash: B256,
    /// The hash that was signed.
    #[serde(with = "hex_b256")]
    pub signing_hash: B256,
    /// The signature.
    pub signature: TransactionSignature,
    /// The EIP-2718 encoding, for `eth_sendRawTransaction`.
    #[serde(with = "hex_bytes")]
    pub raw: Vec<u8>,
    /// The enclave's receipt for this signature (see `docs/receipts.md`); absent in the entries
    /// of a batch, whose receipt covers the whole batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// A transaction's signature: `{"r", "s", "yParity", "v"?}`, all quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionSignature {
    /// `r`.
    #[serde(with = "quantity_u256")]
    pub r: U256,
    /// `s` (low-s).
    #[serde(with = "quantity_u256")]
    pub s: U256,
    /// The recovery id, `"0x0"` or `"0x1"`.
    #[serde(with = "quantity_bool")]
    pub y_parity: bool,
    /// Legacy transactions only: `v` (EIP-155: `35 + 2·chainId + yParity`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "quantity_option_u128"
    )]
    pub v: Option<u128>,
}

/// `POST /v1/sign/transactions`: `{"keyBlob", "userId"?, "transactions": [{…}, …],
/// "approvals"?}`; the approvals are over the whole batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignTransactionsRequest {
    /// The key.
    pub key_blob: KeyBlob,
    /// The user, for seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// `eth_signTransaction` objects (1 to [`MAX_BATCH`]), passed to the enclave as written.
    pub transactions: Vec<Box<RawValue>>,
    /// Approvals for the key's policy (at most [`MAX_APPROVALS`]); absent means none.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_approvals"
    )]
    pub approvals: Vec<Approval>,
}

/// Answer to `POST /v1/sign/transactions`: `{"results": [ … ]}`, one per transaction, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignTransactionsResponse {
    /// One result per transaction, in request order.
    pub results: Vec<BatchResult>,
    /// The enclave's receipt for every transaction it signed (none if it signed none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// One entry of [`SignTransactionsResponse`]: a [`SignedTransaction`] object, or
/// `{"error": {"code", "message"}}` for a transaction the enclave refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchResult {
    /// This transaction was refused; the others are unaffected.
    Error(ErrorResponse),
    /// This transaction was signed.
    Signed(Box<SignedTransaction>),
}

/// The EIP-191 message of `POST /v1/sign/message`: `"0x…"` bytes, or `{"utf8": "…"}` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Bytes, as `0x` hex.
    Bytes(Vec<u8>),
    /// UTF-8 text, signed as its bytes.
    Utf8(String),
}

impl Message {
    /// The bytes that are signed.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Self::Bytes(bytes) => bytes,
            Self::Utf8(text) => text.into_bytes(),
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Bytes(bytes) => hex_bytes::serialize(bytes, serializer),
            Self::Utf8(text) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("utf8", text)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MessageVisitor;

        impl<'de> Visitor<'de> for MessageVisitor {
            type Value = Message;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#""0x…" hex bytes or {"utf8": "…"}"#)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Message, E> {
                parse_hex(value).map(Message::Bytes).map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
                let mut text = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "utf8" {
                        return Err(de::Error::unknown_field(&key, &["utf8"]));
                    }
                    if text.is_some() {
                        return Err(de::Error::duplicate_field("utf8"));
                    }
                    text = Some(map.next_value::<String>()?);
                }
                text.map(Message::Utf8)
                    .ok_or_else(|| de::Error::missing_field("utf8"))
            }
        }

        deserializer.deserialize_any(MessageVisitor)
    }
}

/// `POST /v1/sign/message`: `{"keyBlob", "userId"?, "message": "0x…" | {"utf8": "…"},
/// "approvals"?}` (EIP-191).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignMessageRequest {
    /// The key.
    pub key_blob: KeyBlob,
    /// The user, for seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The message.
    pub message: Message,
    /// Approvals for the key's policy (at most [`MAX_APPROVALS`]); absent means none.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_approvals"
    )]
    pub approvals: Vec<Approval>,
}

/// `POST /v1/sign/typed-data`: `{"keyBlob", "userId"?, "typedData": {…}, "approvals"?}`
/// (EIP-712).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignTypedDataRequest {
    /// The key.
    pub key_blob: KeyBlob,
    /// The user, for seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// An `eth_signTypedData_v4` document, passed to the enclave as written.
    pub typed_data: Box<RawValue>,
    /// Approvals for the key's policy (at most [`MAX_APPROVALS`]); absent means none.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_approvals"
    )]
    pub approvals: Vec<Approval>,
}

/// `POST /v1/sign/digest`: `{"keyBlob", "userId"?, "digest": "0x<32 bytes>", "approvals"?}`.
/// The enclave signs only with keys whose blob opts in to raw digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignDigestRequest {
    /// The key.
    pub key_blob: KeyBlob,
    /// The user, for seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The 32-byte hash to sign as it is.
    #[serde(with = "hex_b256")]
    pub digest: B256,
    /// Approvals for the key's policy (at most [`MAX_APPROVALS`]); absent means none.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_approvals"
    )]
    pub approvals: Vec<Approval>,
}

/// Answer to message, typed-data and digest signing: `{"from", "hash", "signature"}`, where
/// `signature` is the 65 bytes `r ‖ s ‖ v` with `v` 27 or 28.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureResponse {
    /// The signer.
    #[serde(with = "checksummed")]
    pub from: Address,
    /// The hash that was signed.
    #[serde(with = "hex_b256")]
    pub hash: B256,
    /// `r ‖ s ‖ v`, 65 bytes.
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
    /// The enclave's receipt for this answer (see `docs/receipts.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// `POST /v1/flow/public-key`: `{"keyBlob", "userId"?, "curve", "hash"}`. `curve` is `"p256"`
/// or `"secp256k1"`; `hash` (`"sha2-256"` or `"sha3-256"`) is the hash algorithm the account
/// key will be registered with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowPublicKeyRequest {
    /// The key.
    pub key_blob: KeyBlob,
    /// The user, for seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The curve.
    pub curve: Curve,
    /// The account key's hash algorithm.
    pub hash: nitro_signer_flow::HashAlgorithm,
}

/// Answer to `POST /v1/flow/public-key`: `{"publicKey": "0x<64 bytes x ‖ y>", "accountKey":
/// "0x<RLP [publicKey, signAlgo, hashAlgo, weight]>"}`, the account key with weight 1000, to add
/// to a Flow account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowPublicKeyResponse {
    /// `x ‖ y`, 64 bytes.
    #[serde(with = "hex_bytes")]
    pub public_key: Vec<u8>,
    /// The account key's RLP encoding.
    #[serde(with = "hex_bytes")]
    pub account_key: Vec<u8>,
    /// The enclave's receipt for this answer (see `docs/receipts.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// `POST /v1/sign/flow-transaction`: `{"keyBlob", "userId"?, "curve", "hash", "role",
/// "signer": {"address", "keyIndex"}, "transaction", "approvals"?}` (`docs/flow.md`). Everything
/// but the key and approvals goes to the enclave as written, which parses it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignFlowTransactionRequest {
    /// The key.
    pub key_blob: KeyBlob,
    /// The user, for seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// `"p256"` or `"secp256k1"`, as written.
    pub curve: Box<RawValue>,
    /// `"sha2-256"` or `"sha3-256"`, as written.
    pub hash: Box<RawValue>,
    /// `"proposer"`, `"authorizer"` or `"payer"`, as written.
    pub role: Box<RawValue>,
    /// `{"address", "keyIndex"}`, as written.
    pub signer: Box<RawValue>,
    /// The transaction, as written.
    pub transaction: Box<RawValue>,
    /// Approvals for the key's policy (at most [`MAX_APPROVALS`]); absent means none.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_approvals"
    )]
    pub approvals: Vec<Approval>,
}

/// Answer to `POST /v1/sign/flow-transaction`: `{"signature": "0x<64 bytes r ‖ s>", "hash",
/// "message", "publicKey"}`: the signature, the hash signed, the message hashed (the domain tag
/// and the RLP of the payload or envelope), and the signing key (`x ‖ y`), whose fingerprint the
/// receipt names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowSignatureResponse {
    /// `r ‖ s`, 64 bytes.
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
    /// The hash signed.
    #[serde(with = "hex_b256")]
    pub hash: B256,
    /// The message hashed.
    #[serde(with = "hex_bytes")]
    pub message: Vec<u8>,
    /// The signing key, `x ‖ y` (64 bytes).
    #[serde(with = "hex_bytes")]
    pub public_key: Vec<u8>,
    /// The enclave's receipt for this answer (see `docs/receipts.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// `POST /v1/sign/authorization`: `{"keyBlob", "userId"?, "authorization": {"chainId",
/// "address", "nonce"}, "approvals"?}` (EIP-7702).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignAuthorizationRequest {
    /// The key.
    pub key_blob: KeyBlob,
    /// The user, for seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The authorization, passed to the enclave as written.
    pub authorization: Box<RawValue>,
    /// Approvals for the key's policy (at most [`MAX_APPROVALS`]); absent means none.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_approvals"
    )]
    pub approvals: Vec<Approval>,
}

/// Answer to `POST /v1/sign/authorization`: the signed tuple,
/// `{"from", "hash", "chainId", "address", "nonce", "yParity", "r", "s"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationResponse {
    /// The authority (signer).
    #[serde(with = "checksummed")]
    pub from: Address,
    /// The hash that was signed.
    #[serde(with = "hex_b256")]
    pub hash: B256,
    /// Chain id (0: any chain).
    #[serde(with = "quantity_u256")]
    pub chain_id: U256,
    /// The delegate contract.
    #[serde(with = "checksummed")]
    pub address: Address,
    /// The authority's nonce.
    #[serde(with = "quantity_u64")]
    pub nonce: u64,
    /// The recovery id, `"0x0"` or `"0x1"`.
    #[serde(with = "quantity_bool")]
    pub y_parity: bool,
    /// `r`.
    #[serde(with = "quantity_u256")]
    pub r: U256,
    /// `s` (low-s).
    #[serde(with = "quantity_u256")]
    pub s: U256,
    /// The enclave's receipt for this answer (see `docs/receipts.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}

/// `POST /v1/attestation`: `{"nonce": "0x…"}` (at most 512 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttestationRequest {
    /// The caller's nonce, placed in the document.
    #[serde(with = "hex_bytes")]
    pub nonce: Vec<u8>,
}

/// Answer to `POST /v1/attestation`: `{"document": base64}` (COSE_Sign1, as the NSM made it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponse {
    /// The attestation document.
    #[serde(with = "base64_bytes")]
    pub document: Vec<u8>,
}

/// Answer to `GET /healthz`: `{"status": "ok"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    /// `"ok"`.
    pub status: String,
}

/// `200` answer to `GET /readyz`: `{"status": "ready", "server", "simulated", "hasCredentials",
/// "cachedKeys", "cacheHits", "kmsCalls", "kmsErrors", "signatures"}` (counters as JSON numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyResponse {
    /// `"ready"`.
    pub status: String,
    /// The enclave's name and version.
    pub server: String,
    /// Whether the enclave runs in simulated mode (no Nitro isolation).
    pub simulated: bool,
    /// Whether the enclave holds unexpired AWS credentials.
    pub has_credentials: bool,
    /// Decrypted keys currently cached.
    pub cached_keys: u64,
    /// Key lookups answered from the cache.
    pub cache_hits: u64,
    /// Calls made to KMS.
    pub kms_calls: u64,
    /// KMS calls that failed.
    pub kms_errors: u64,
    /// Signatures made.
    pub signatures: u64,
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error.
    pub error: ApiError,
}

/// An error's code and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What kind of failure, for programs.
    pub code: ErrorCode,
    /// What went wrong, and which field, for people.
    pub message: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: impl Into<ErrorCode>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Every `error.code` of the HTTP API, `snake_case` on the wire: the enclave's codes (see
/// [`nitro_signer_common::protocol::ErrorCode`]) and the proxy's own. A code this build does not
/// know (from a newer proxy) reads as [`ErrorCode::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// From the enclave: [`Enclave::InvalidRequest`]; the message names the field.
    InvalidRequest,
    /// From the enclave: [`Enclave::InvalidKeyBlob`].
    InvalidKeyBlob,
    /// From the enclave: [`Enclave::PolicyRefused`] (the blob's opt-ins).
    PolicyRefused,
    /// From the enclave: [`Enclave::PolicyDenied`] (the key's policy document).
    PolicyDenied,
    /// From the enclave: [`Enclave::ApprovalsRequired`]: the key's policy needs more approvals.
    ApprovalsRequired,
    /// From the enclave: [`Enclave::KmsAccessDenied`].
    KmsAccessDenied,
    /// From the enclave: [`Enclave::KmsUnavailable`].
    KmsUnavailable,
    /// From the enclave: [`Enclave::NoCredentials`].
    NoCredentials,
    /// From the enclave: [`Enclave::Busy`]; retry shortly.
    Busy,
    /// From the enclave: [`Enclave::UnsupportedProtocol`].
    UnsupportedProtocol,
    /// From the enclave or the proxy: an internal failure; details are in the logs.
    Internal,
    /// The body exceeds the proxy's or the enclave's size limit.
    PayloadTooLarge,
    /// No such endpoint.
    NotFound,
    /// The endpoint does not accept this method.
    MethodNotAllowed,
    /// The enclave is not reachable.
    EnclaveUnavailable,
    /// The enclave did not answer in time.
    EnclaveTimeout,
    /// The enclave answered something that does not fit the request.
    EnclaveProtocolError,
    /// The proxy is at its concurrency limit; retry shortly.
    Overloaded,
    /// The request was not completed in time.
    RequestTimeout,
    /// The proxy requires an API key (`Authorization: Bearer …`) and none, or an unknown one,
    /// came (HTTP 401).
    Unauthorized,
    /// The caller's API key may not use this key blob's owner label, or create a key with this
    /// label (HTTP 403).
    Forbidden,
    /// A `POST` without `Content-Type: application/json` (HTTP 415).
    UnsupportedMediaType,
    /// The request carries an `Origin` header (it comes from a web page) that is not in the
    /// proxy's `--allowed-origins` (HTTP 403).
    OriginNotAllowed,
    /// The request's `Host` is not an IP address, `localhost` or one of the proxy's
    /// `--allowed-hosts` (HTTP 421).
    HostNotAllowed,
    /// A code this build does not know.
    Other(String),
}

impl ErrorCode {
    const NAMED: [(Self, &'static str); 24] = [
        (Self::InvalidRequest, "invalid_request"),
        (Self::InvalidKeyBlob, "invalid_key_blob"),
        (Self::PolicyRefused, "policy_refused"),
        (Self::PolicyDenied, "policy_denied"),
        (Self::ApprovalsRequired, "approvals_required"),
        (Self::KmsAccessDenied, "kms_access_denied"),
        (Self::KmsUnavailable, "kms_unavailable"),
        (Self::NoCredentials, "no_credentials"),
        (Self::Busy, "busy"),
        (Self::UnsupportedProtocol, "unsupported_protocol"),
        (Self::Internal, "internal"),
        (Self::PayloadTooLarge, "payload_too_large"),
        (Self::NotFound, "not_found"),
        (Self::MethodNotAllowed, "method_not_allowed"),
        (Self::EnclaveUnavailable, "enclave_unavailable"),
        (Self::EnclaveTimeout, "enclave_timeout"),
        (Self::EnclaveProtocolError, "enclave_protocol_error"),
        (Self::Overloaded, "overloaded"),
        (Self::RequestTimeout, "request_timeout"),
        (Self::Unauthorized, "unauthorized"),
        (Self::Forbidden, "forbidden"),
        (Self::UnsupportedMediaType, "unsupported_media_type"),
        (Self::OriginNotAllowed, "origin_not_allowed"),
        (Self::HostNotAllowed, "host_not_allowed"),
    ];

    /// The `snake_case` name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(name) => name,
            known => Self::NAMED
                .iter()
                .find(|(code, _)| code == known)
                .map_or("internal", |(_, name)| name),
        }
    }

    /// The code named `name`.
    pub fn from_name(name: &str) -> Self {
        Self::NAMED
            .iter()
            .find(|(_, known)| *known == name)
            .map_or_else(|| Self::Other(name.to_owned()), |(code, _)| code.clone())
    }
}

impl From<Enclave> for ErrorCode {
    fn from(code: Enclave) -> Self {
        Self::from_name(code.as_str())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from_name(&name))
    }
}

/// A quantity: minimal `0x` hex of big-endian bytes (`"0x0"` for zero).
pub fn quantity(big_endian: &[u8]) -> String {
    let digits = alloy_primitives::hex::encode(big_endian);
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        "0x0".to_owned()
    } else {
        format!("0x{digits}")
    }
}

/// `0x` hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    alloy_primitives::hex::encode_prefixed(bytes)
}

/// Bytes from `0x` hex. The error says why without repeating the input.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text
        .strip_prefix("0x")
        .ok_or("expected a 0x-prefixed hex string")?;
    if digits.len() % 2 != 0 {
        return Err("odd number of hex digits".to_owned());
    }
    // const-hex strips one `0x` itself: `text` has exactly one (checked above), so a second
    // one is refused as a non-hex digit.
    alloy_primitives::hex::decode(text).map_err(|error| format!("invalid hex: {error}"))
}

fn parse_quantity_digits(text: &str) -> Result<&str, String> {
    let digits = text
        .strip_prefix("0x")
        .ok_or("expected a 0x-prefixed hex quantity")?;
    if digits.is_empty() {
        return Err("empty hex quantity".to_owned());
    }
    Ok(digits)
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|error| {
                de::Error::custom(format!(
                    "invalid base64 (standard alphabet, padded): {error}"
                ))
            })
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::to_hex(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::parse_hex(&text).map_err(de::Error::custom)
    }
}

mod hex_b256 {
    use alloy_primitives::B256;
    use serde::{Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(value: &B256, serializer: S) -> Result<S::Ok, S::Error> {
        super::hex_bytes::serialize(value.as_slice(), serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<B256, D::Error> {
        let bytes = super::hex_bytes::deserialize(deserializer)?;
        B256::try_from(bytes.as_slice()).map_err(|_| {
            de::Error::custom(format!("expected 32 bytes of hex, got {}", bytes.len()))
        })
    }
}

mod hex_option_b256 {
    use alloy_primitives::B256;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<B256>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::hex_b256::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<B256>, D::Error> {
        let Some(text) = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)? else {
            return Ok(None);
        };
        let bytes = super::parse_hex(&text).map_err(de::Error::custom)?;
        B256::try_from(bytes.as_slice()).map(Some).map_err(|_| {
            de::Error::custom(format!("expected 32 bytes of hex, got {}", bytes.len()))
        })
    }
}

mod checksummed {
    use alloy_primitives::Address;
    use serde::{Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(
        address: &Address,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&address.to_checksum(None))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Address, D::Error> {
        let bytes = super::hex_bytes::deserialize(deserializer)?;
        Address::try_from(bytes.as_slice()).map_err(|_| {
            de::Error::custom(format!(
                "expected a 20-byte address, got {} bytes",
                bytes.len()
            ))
        })
    }
}

mod quantity_u256 {
    use alloy_primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(value: &U256, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::quantity(&value.to_be_bytes::<32>()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<U256, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let digits = super::parse_quantity_digits(&text).map_err(de::Error::custom)?;
        U256::from_str_radix(digits, 16)
            .map_err(|error| de::Error::custom(format!("invalid quantity: {error}")))
    }
}

mod quantity_u64 {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{value:#x}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let digits = super::parse_quantity_digits(&text).map_err(de::Error::custom)?;
        u64::from_str_radix(digits, 16)
            .map_err(|error| de::Error::custom(format!("invalid 64-bit quantity: {error}")))
    }
}

mod quantity_bool {
    use serde::{Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(value: &bool, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if *value { "0x1" } else { "0x0" })
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<bool, D::Error> {
        match super::quantity_u64::deserialize(deserializer)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(de::Error::custom(format!(
                "yParity must be 0x0 or 0x1, got {other:#x}"
            ))),
        }
    }
}

mod quantity_option_u128 {
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<u128>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.serialize_str(&format!("{value:#x}")),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u128>, D::Error> {
        let Some(text) = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)? else {
            return Ok(None);
        };
        let digits = super::parse_quantity_digits(&text).map_err(de::Error::custom)?;
        u128::from_str_radix(digits, 16)
            .map(Some)
            .map_err(|error| de::Error::custom(format!("invalid 128-bit quantity: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_requests_take_owner_for_label_but_not_both() {
        let request: GenerateKeyRequest =
            serde_json::from_str(r#"{"owner":"tenant-7","policy":{"version":1}}"#).unwrap();
        assert_eq!(request.label.as_deref(), Some("tenant-7"));
        assert_eq!(request.policy.unwrap().get(), r#"{"version":1}"#);
        assert!(
            serde_json::from_str::<GenerateKeyRequest>(r#"{"owner":"a","label":"b"}"#).is_err()
        );
    }

    #[test]
    fn error_codes_round_trip_and_cover_the_enclave_codes() {
        use nitro_signer_common::protocol::ErrorCode as Enclave;
        for (code, name) in ErrorCode::NAMED {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        for code in [
            Enclave::InvalidRequest,
            Enclave::InvalidKeyBlob,
            Enclave::PolicyRefused,
            Enclave::PolicyDenied,
            Enclave::ApprovalsRequired,
            Enclave::KmsAccessDenied,
            Enclave::KmsUnavailable,
            Enclave::NoCredentials,
            Enclave::Busy,
            Enclave::UnsupportedProtocol,
            Enclave::Internal,
        ] {
            let api = ErrorCode::from(code);
            assert!(!matches!(api, ErrorCode::Other(_)), "{code:?}");
            assert_eq!(api.as_str(), code.as_str());
        }
        let newer: ErrorCode = serde_json::from_str("\"quota_exceeded\"").unwrap();
        assert_eq!(newer, ErrorCode::Other("quota_exceeded".into()));
        assert_eq!(serde_json::to_string(&newer).unwrap(), "\"quota_exceeded\"");
    }

    #[test]
    fn quantities_are_minimal() {
        assert_eq!(quantity(&[0, 0]), "0x0");
        assert_eq!(quantity(&[]), "0x0");
        assert_eq!(quantity(&[0, 1, 0xab]), "0x1ab");
        assert_eq!(format!("{:#x}", 0u64), "0x0");
    }

    #[test]
    fn hex_needs_exactly_one_lowercase_prefix_and_whole_bytes() {
        assert_eq!(parse_hex("0x").unwrap(), b"");
        assert_eq!(parse_hex("0xAbcD").unwrap(), [0xab, 0xcd]);
        for bad in [
            "", "abcd", "0Xabcd", "0x0xab", "0x0Xab", "0xabc", "0xzz", "0x ab", " 0xab",
        ] {
            assert!(parse_hex(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn messages_take_hex_or_utf8() {
        let hex: Message = serde_json::from_str(r#""0x6869""#).unwrap();
        assert_eq!(hex, Message::Bytes(b"hi".to_vec()));
        let text: Message = serde_json::from_str(r#"{"utf8":"hi"}"#).unwrap();
        assert_eq!(text, Message::Utf8("hi".into()));
        assert_eq!(serde_json::to_string(&text).unwrap(), r#"{"utf8":"hi"}"#);
        assert_eq!(serde_json::to_string(&hex).unwrap(), r#""0x6869""#);
        for bad in [r#""6869""#, r#""0x686""#, r#"{"text":"hi"}"#, r#"{}"#, "1"] {
            assert!(serde_json::from_str::<Message>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn raw_payloads_keep_the_callers_text() {
        let body = r#"{"keyBlob":"AQI=","transaction":{ "nonce" : "0x1","x":1.50 }}"#;
        let request: SignTransactionRequest = serde_json::from_str(body).unwrap();
        assert_eq!(request.transaction.get(), r#"{ "nonce" : "0x1","x":1.50 }"#);
        assert_eq!(request.key_blob.as_bytes(), [1, 2]);
        assert_eq!(format!("{:?}", request.key_blob), "KeyBlob(<2 bytes>)");
    }

    #[test]
    fn signed_transactions_round_trip() {
        let signed = SignedTransaction {
            // An EIP-55 test vector.
            from: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
                .parse()
                .unwrap(),
            hash: B256::repeat_byte(1),
            signing_hash: B256::repeat_byte(2),
            signature: TransactionSignature {
                r: U256::from(0x1234u64),
                s: U256::ZERO,
                y_parity: true,
                v: None,
            },
            raw: vec![2, 0xc0],
            receipt: None,
        };
        let json = serde_json::to_value(&signed).unwrap();
        assert_eq!(
            json["signature"],
            serde_json::json!({"r": "0x1234", "s": "0x0", "yParity": "0x1"})
        );
        assert_eq!(json["from"], "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
        assert_eq!(json["raw"], "0x02c0");
        let back: SignedTransaction = serde_json::from_value(json).unwrap();
        assert_eq!(back, signed);
    }

    fn approval_json(n: usize) -> String {
        let one = format!(
            r#"{{"approver":"ops-1","expiresAt":1767225600,"signature":"0x{}"}}"#,
            "ab".repeat(64)
        );
        format!("[{}]", vec![one; n].join(","))
    }

    #[test]
    fn approvals_parse_strictly_and_at_most_sixteen() {
        let body = format!(
            r#"{{"keyBlob":"AQI=","digest":"0x{}","approvals":{}}}"#,
            "11".repeat(32),
            approval_json(MAX_APPROVALS)
        );
        let request: SignDigestRequest = serde_json::from_str(&body).unwrap();
        assert_eq!(request.approvals.len(), MAX_APPROVALS);
        let first = request.approvals.first().unwrap();
        assert_eq!(first.approver, "ops-1");
        assert_eq!(first.expires_at, 1_767_225_600);
        assert_eq!(first.signature, [0xab; 64]);
        // Written back, the same JSON shape.
        let back = serde_json::to_value(&request).unwrap();
        assert_eq!(back["approvals"][0]["expiresAt"], 1_767_225_600u64);
        assert_eq!(
            back["approvals"][0]["signature"],
            format!("0x{}", "ab".repeat(64))
        );
        // None given: none sent.
        let request: SignDigestRequest = serde_json::from_str(&format!(
            r#"{{"keyBlob":"AQI=","digest":"0x{}"}}"#,
            "11".repeat(32)
        ))
        .unwrap();
        assert!(request.approvals.is_empty());
        assert!(
            serde_json::to_value(&request)
                .unwrap()
                .get("approvals")
                .is_none()
        );

        let too_many = format!(
            r#"{{"keyBlob":"AQI=","message":"0x00","approvals":{}}}"#,
            approval_json(MAX_APPROVALS + 1)
        );
        let error = serde_json::from_str::<SignMessageRequest>(&too_many).unwrap_err();
        assert!(
            error.to_string().contains("more than 16 approvals"),
            "{error}"
        );
        for bad in [
            r#"[{"approver":"a","expiresAt":1,"signature":"0x00","extra":1}]"#,
            r#"[{"approver":"a","expiresAt":"1","signature":"0x00"}]"#,
            r#"[{"approver":"a","expiresAt":1.5,"signature":"0x00"}]"#,
            r#"[{"approver":"a","expiresAt":-1,"signature":"0x00"}]"#,
            r#"[{"approver":"a","expiresAt":1,"signature":"00"}]"#,
            r#"[{"approver":"a","expiresAt":1,"signature":"0xzz"}]"#,
            r#"[{"approver":"a","expiresAt":1}]"#,
            r#"{"approver":"a","expiresAt":1,"signature":"0x00"}"#,
        ] {
            let body = format!(r#"{{"keyBlob":"AQI=","message":"0x00","approvals":{bad}}}"#);
            assert!(
                serde_json::from_str::<SignMessageRequest>(&body).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn policies_keep_the_callers_text_and_hashes_are_optional() {
        let body = r#"{"label":"t","policy":{ "version" : 1 }}"#;
        let request: GenerateKeyRequest = serde_json::from_str(body).unwrap();
        assert_eq!(request.policy.unwrap().get(), r#"{ "version" : 1 }"#);
        let request: UpdatePolicyRequest =
            serde_json::from_str(r#"{"keyBlob":"AQI=","policy":{"version":1}}"#).unwrap();
        assert!(request.approvals.is_empty());
        assert!(
            serde_json::from_str::<UpdatePolicyRequest>(r#"{"keyBlob":"AQI="}"#).is_err(),
            "the policy is required"
        );

        let mut key = KeyResponse {
            key_blob: KeyBlob::new(vec![1]),
            key_id: B256::repeat_byte(0x1d),
            policy_hash: None,
            receipt: None,
        };
        let json = serde_json::to_value(&key).unwrap();
        assert!(json.get("policyHash").is_none());
        assert_eq!(serde_json::from_value::<KeyResponse>(json).unwrap(), key);
        key.policy_hash = Some(B256::repeat_byte(0x9a));
        let json = serde_json::to_value(&key).unwrap();
        assert_eq!(json["policyHash"], format!("0x{}", "9a".repeat(32)));
        assert_eq!(serde_json::from_value::<KeyResponse>(json).unwrap(), key);
    }
}
