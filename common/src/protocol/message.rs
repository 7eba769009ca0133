//! The messages. Every type here is part of the wire format: renaming a field or a variant is a
//! protocol change, caught by the golden byte tests below.
//!
//! The request-side types (what the enclave decodes: [`Hello`], [`Request`] and everything in
//! it) are as strict as the HTTP API: unknown fields and variants are refused, and so is a struct
//! in the array form (see [`codec::decode`](super::codec::decode) for the rest of the one form).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf};
use zeroize::Zeroizing;

use super::codec::map_only;
use crate::{UserId, key_blob::Curve};

/// The client's first frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// Protocol versions the client speaks.
    pub versions: Vec<u32>,
    /// Who is calling, for the enclave's logs (e.g. `nitro-signer-proxy 0.1.0`).
    pub client: String,
}

/// The enclave's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelloReply {
    /// The connection is open at this version.
    Welcome(Welcome),
    /// No common version; the enclave closes the connection.
    Refused(ErrorBody),
}

/// The agreed version and what the client is talking to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version for the rest of the connection.
    pub version: u32,
    /// The enclave's name and version.
    pub server: String,
    /// Whether the enclave runs in simulated mode (simulated NSM, no Nitro isolation).
    pub simulated: bool,
}

/// One request. `id` is chosen by the client and echoed in the [`Response`].
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Matches the answer to the request.
    pub id: u64,
    /// What is asked.
    pub body: RequestBody,
}

/// What a client can ask the enclave.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestBody {
    /// Generate a new master seed inside the enclave and return it encrypted under the enclave's
    /// configured KMS key.
    #[serde(deserialize_with = "map_only")]
    GenerateKey(GenerateKey),
    /// The address and public key of a key (and user).
    #[serde(deserialize_with = "map_only")]
    Address(KeyRef),
    /// Sign one payload with a key (and user).
    #[serde(deserialize_with = "map_only")]
    Sign(SignRequest),
    /// Sign several transactions with one key and user.
    #[serde(deserialize_with = "map_only")]
    SignBatch(SignBatchRequest),
    /// An attestation document over the caller's nonce.
    #[serde(deserialize_with = "map_only")]
    Attest(AttestRequest),
    /// Health and counters.
    Status,
    /// AWS credentials for the enclave's KMS calls (the parent's instance role).
    #[serde(deserialize_with = "map_only")]
    SetCredentials(AwsCredentials),
    /// Re-encrypt a key under a new policy, approved by the current policy's admins; answered
    /// with [`ResponseBody::Key`].
    #[serde(deserialize_with = "map_only")]
    UpdatePolicy(UpdatePolicy),
    /// The public key of a key (and user) on a curve; answered with
    /// [`ResponseBody::PublicKey`].
    #[serde(deserialize_with = "map_only")]
    PublicKey(PublicKeyRequest),
    /// Sign a Flow transaction; answered with [`ResponseBody::FlowSigned`].
    #[serde(deserialize_with = "map_only")]
    SignFlow(SignFlowRequest),
}

impl RequestBody {
    /// The variant's wire name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::GenerateKey(_) => "generate_key",
            Self::Address(_) => "address",
            Self::Sign(_) => "sign",
            Self::SignBatch(_) => "sign_batch",
            Self::Attest(_) => "attest",
            Self::Status => "status",
            Self::SetCredentials(_) => "set_credentials",
            Self::UpdatePolicy(_) => "update_policy",
            Self::PublicKey(_) => "public_key",
            Self::SignFlow(_) => "sign_flow",
        }
    }
}

/// [`RequestBody::GenerateKey`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateKey {
    /// Optional owner/tenant label, bound to the key through the KMS encryption context.
    pub owner: Option<String>,
    /// The key's policy document, as the caller's JSON text; the enclave parses it, keeps its
    /// canonical form in the blob and binds its hash through the encryption context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The caller's nonce, repeated in the receipt so that the caller can tell its own answer
    /// from a replayed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<ByteArray<32>>,
}

/// An approver's signature over a request (see `docs/policy.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approver's name in the key's policy.
    pub approver: String,
    /// Unix seconds after which the approval no longer counts.
    pub expires_at: u64,
    /// The signature: 64 bytes (Ed25519, or P-256 `r ‖ s`).
    pub signature: ByteBuf,
}

/// A struct element of a list, refused in the array form (see [`map_only`]).
struct MapOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        map_only(deserializer).map(Self)
    }
}

/// Most approvals one request carries; refused while decoding.
pub const MAX_APPROVALS: usize = 16;

fn at_most_max_approvals<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Approval>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<Approval>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "at most {MAX_APPROVALS} approvals")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(MapOnly(item)) = seq.next_element()? {
                if items.len() == MAX_APPROVALS {
                    return Err(serde::de::Error::custom(format!(
                        "more than {MAX_APPROVALS} approvals"
                    )));
                }
                items.push(item);
            }
            Ok(items)
        }
    }
    deserializer.deserialize_seq(Bounded)
}

/// [`RequestBody::UpdatePolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePolicy {
    /// The key blob whose policy changes.
    pub key_blob: ByteBuf,
    /// The new policy document, as the caller's JSON text.
    pub policy: String,
    /// Approvals meeting the current policy's `admins` quorum, over the policy-change subject.
    #[serde(deserialize_with = "at_most_max_approvals")]
    pub approvals: Vec<Approval>,
    /// The caller's nonce, repeated in the receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<ByteArray<32>>,
}

/// Which key signs: a key blob and, for seeds, the user whose derived key is meant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    /// The encoded key blob.
    pub key_blob: ByteBuf,
    /// The user, required for seeds and refused for imported private keys.
    pub user_id: Option<UserId>,
}

/// [`RequestBody::PublicKey`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyRequest {
    /// The key.
    #[serde(deserialize_with = "map_only")]
    pub key: KeyRef,
    /// The curve: a seed derives a key on each; an imported key is on one.
    pub curve: Curve,
}

/// [`RequestBody::SignFlow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignFlowRequest {
    /// The signing key.
    #[serde(deserialize_with = "map_only")]
    pub key: KeyRef,
    /// `{"curve", "hash", "role", "signer": {"address", "keyIndex"}, "transaction"}` as the
    /// caller's JSON text; the enclave parses it (`nitro_signer_flow`).
    pub request: String,
    /// Approvals for the key's policy, over the hash signed.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_approvals"
    )]
    pub approvals: Vec<Approval>,
}

/// [`RequestBody::Sign`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// The signing key.
    #[serde(deserialize_with = "map_only")]
    pub key: KeyRef,
    /// What to sign.
    pub payload: SignPayload,
    /// Approvals for the key's policy, over the signing hash.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_approvals"
    )]
    pub approvals: Vec<Approval>,
}

/// What to sign. JSON payloads travel as the caller's JSON text; the enclave parses them itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignPayload {
    /// An `eth_signTransaction` object, as JSON.
    Transaction(String),
    /// EIP-191 personal message bytes.
    Message(ByteBuf),
    /// An `eth_signTypedData_v4` document, as JSON.
    TypedData(String),
    /// An EIP-7702 authorization `{chainId, address, nonce}`, as JSON.
    Authorization(String),
    /// A 32-byte hash signed as it is; only for keys whose blob carries the raw-digest opt-in.
    Digest(ByteArray<32>),
}

/// [`RequestBody::SignBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignBatchRequest {
    /// The signing key.
    #[serde(deserialize_with = "map_only")]
    pub key: KeyRef,
    /// `eth_signTransaction` objects, as JSON; at most [`MAX_BATCH`](super::MAX_BATCH), refused
    /// while decoding (an empty CBOR string is one byte on the wire and 24 in memory, so an
    /// unbounded list would let one frame take many times its size).
    #[serde(deserialize_with = "at_most_max_batch")]
    pub transactions: Vec<String>,
    /// Approvals for the key's policy, over the batch subject (see `docs/policy.md`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_approvals"
    )]
    pub approvals: Vec<Approval>,
}

fn at_most_max_batch<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    use serde::de::{Error, SeqAccess, Visitor};

    struct Batch;

    impl<'de> Visitor<'de> for Batch {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "at most {} transactions", super::MAX_BATCH)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(super::MAX_BATCH));
            while let Some(item) = seq.next_element::<String>()? {
                if items.len() == super::MAX_BATCH {
                    return Err(A::Error::invalid_length(items.len() + 1, &self));
                }
                items.push(item);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_seq(Batch)
}

/// [`RequestBody::Attest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestRequest {
    /// The caller's nonce, placed in the document (at most 512 bytes).
    pub nonce: ByteBuf,
}

/// Temporary AWS credentials. The secret parts are zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Zeroizing<String>,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<Zeroizing<String>>,
    /// When the credentials expire, in seconds since the Unix epoch.
    pub expires_at: Option<u64>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The answer to the request with the same `id`.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The answer.
    pub body: ResponseBody,
    /// The enclave's receipt for what it did (see [`crate::receipt`]): on every successful
    /// answer that creates a key, derives an address, signs or changes a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<crate::receipt::Receipt>,
}

/// Answers, one kind per request kind, or an error.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseBody {
    /// A new key.
    Key(NewKey),
    /// An address.
    Address(AddressInfo),
    /// A signature.
    Signed(Box<Signed>),
    /// One result per transaction, in request order.
    SignedBatch(Vec<BatchItem>),
    /// An attestation document.
    Attestation(AttestationDocument),
    /// Status and counters.
    Status(Status),
    /// Credentials stored.
    CredentialsSet,
    /// The request failed.
    Error(ErrorBody),
    /// A public key on a curve.
    PublicKey(PublicKeyInfo),
    /// A Flow transaction signature.
    FlowSigned(FlowSigned),
}

impl ResponseBody {
    /// The variant's wire name, for logs and error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Key(_) => "key",
            Self::Address(_) => "address",
            Self::Signed(_) => "signed",
            Self::SignedBatch(_) => "signed_batch",
            Self::Attestation(_) => "attestation",
            Self::Status(_) => "status",
            Self::CredentialsSet => "credentials_set",
            Self::Error(_) => "error",
            Self::PublicKey(_) => "public_key",
            Self::FlowSigned(_) => "flow_signed",
        }
    }
}

/// [`ResponseBody::Key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    /// The encoded key blob to store.
    pub key_blob: ByteBuf,
    /// The key's stable public identifier (see `docs/key-derivation.md`).
    pub key_id: ByteArray<32>,
    /// SHA-256 of the blob's policy in canonical form, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<ByteArray<32>>,
}

/// [`ResponseBody::PublicKey`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyInfo {
    /// The curve.
    pub curve: Curve,
    /// The public point, `x ‖ y` (64 bytes).
    pub public_key: ByteArray<64>,
}

/// [`ResponseBody::FlowSigned`]: what the enclave signed and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowSigned {
    /// `r ‖ s`, each 32 bytes big-endian.
    pub signature: ByteArray<64>,
    /// The hash signed: SHA2-256 or SHA3-256 of `message`.
    pub hash: ByteArray<32>,
    /// The message hashed: the transaction domain tag and the RLP of the payload or envelope.
    pub message: ByteBuf,
    /// The signer's public key, `x ‖ y` (64 bytes).
    pub public_key: ByteArray<64>,
}

/// [`ResponseBody::Address`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressInfo {
    /// The Ethereum address.
    pub address: ByteArray<20>,
    /// The uncompressed SEC1 public key (65 bytes).
    pub public_key: ByteBuf,
}

/// A signature over a hash the enclave computed itself, by the key of `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signer's address.
    pub from: ByteArray<20>,
    /// The hash the enclave computed and signed.
    pub signing_hash: ByteArray<32>,
    /// `r`, big-endian.
    pub r: ByteArray<32>,
    /// `s`, big-endian, low-s.
    pub s: ByteArray<32>,
    /// The recovery id.
    pub y_parity: bool,
}

/// [`ResponseBody::Signed`]: one variant per kind of output, so that a reader never has to
/// check which optional parts are there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signed {
    /// The answer to [`SignPayload::Transaction`].
    Transaction(SignedTransaction),
    /// The answer to [`SignPayload::Authorization`].
    Authorization(SignedAuthorization),
    /// The answer to [`SignPayload::Message`], [`SignPayload::TypedData`] and
    /// [`SignPayload::Digest`]: the signature is the whole result.
    Signature(Signature),
}

impl Signed {
    /// The signature, whatever it completes.
    pub fn signature(&self) -> &Signature {
        match self {
            Self::Transaction(signed) => &signed.signature,
            Self::Authorization(signed) => &signed.signature,
            Self::Signature(signature) => signature,
        }
    }

    /// The variant's name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transaction(_) => "transaction",
            Self::Authorization(_) => "authorization",
            Self::Signature(_) => "signature",
        }
    }
}

/// A signed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    /// The signature over the transaction's signing hash.
    pub signature: Signature,
    /// Legacy transactions' `v` as a big-endian `u128` (`35 + 2·chainId + yParity` does not fit
    /// a CBOR integer for the largest chain ids); `None` for typed transactions.
    pub v: Option<ByteArray<16>>,
    /// EIP-2718 encoding, for `eth_sendRawTransaction`.
    pub raw: ByteBuf,
    /// The transaction hash.
    pub hash: ByteArray<32>,
}

/// A signed EIP-7702 authorization: the signature and the tuple that was signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAuthorization {
    /// The signature over the tuple's signing hash.
    pub signature: Signature,
    /// Chain id, big-endian 256-bit.
    pub chain_id: ByteArray<32>,
    /// The delegate contract.
    pub address: ByteArray<20>,
    /// The authority's nonce.
    pub nonce: u64,
}

/// One entry of [`ResponseBody::SignedBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchItem {
    /// This transaction was signed.
    Signed(Box<SignedTransaction>),
    /// This transaction was refused; the others are unaffected.
    Error(ErrorBody),
}

/// [`ResponseBody::Attestation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationDocument {
    /// The COSE_Sign1 document, as the NSM produced it.
    pub document: ByteBuf,
}

/// [`ResponseBody::Status`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The enclave's name and version.
    pub server: String,
    /// Whether the enclave runs in simulated mode.
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
    /// CPU time the enclave process has used, user and system, in microseconds (10 ms
    /// resolution; 0 when unknown).
    #[serde(default)]
    pub cpu_micros: u64,
    /// The enclave process's resident memory in bytes (0 when unknown).
    #[serde(default)]
    pub resident_bytes: u64,
}

/// A typed failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What kind of failure, for programs.
    pub code: ErrorCode,
    /// What went wrong and which field, for people. Never contains secrets.
    pub message: String,
}

impl ErrorBody {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

/// Failure kinds. The HTTP API reports them as `error.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed or its payload is invalid.
    InvalidRequest,
    /// The key blob is malformed, or KMS refused it as ciphertext (another key, altered metadata).
    InvalidKeyBlob,
    /// The key's opt-ins do not allow this signature (raw digest, pre-EIP-155, any-chain 7702).
    PolicyRefused,
    /// The key's policy denies this request: a deny rule matched, no rule allows it, or the
    /// policy expired.
    PolicyDenied,
    /// The key's policy allows this request only with more approvals.
    ApprovalsRequired,
    /// KMS denied the enclave access (key policy, attestation conditions, credentials).
    KmsAccessDenied,
    /// KMS could not be reached or failed.
    KmsUnavailable,
    /// The enclave has no AWS credentials KMS accepts: none yet, or KMS rejected the ones the
    /// parent forwarded (unknown or expired, or the enclave's clock is off).
    NoCredentials,
    /// The enclave is at its limit of in-flight requests.
    Busy,
    /// The peers share no protocol version.
    UnsupportedProtocol,
    /// An internal failure; details are in the enclave's log.
    Internal,
}

impl ErrorCode {
    /// The `snake_case` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidKeyBlob => "invalid_key_blob",
            Self::PolicyRefused => "policy_refused",
            Self::PolicyDenied => "policy_denied",
            Self::ApprovalsRequired => "approvals_required",
            Self::KmsAccessDenied => "kms_access_denied",
            Self::KmsUnavailable => "kms_unavailable",
            Self::NoCredentials => "no_credentials",
            Self::Busy => "busy",
            Self::UnsupportedProtocol => "unsupported_protocol",
            Self::Internal => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::{decode, encode};

    fn golden<T>(message: T, expected_hex: &str)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug,
    {
        let bytes = encode(&message).unwrap();
        assert_eq!(hex::encode(&bytes), expected_hex, "{message:?}");
        assert_eq!(decode::<T>(&bytes).unwrap(), message);
    }

    fn key() -> KeyRef {
        KeyRef {
            key_blob: ByteBuf::from(vec![0xb1, 0x0b]),
            user_id: Some(UserId::new("u").unwrap()),
        }
    }

    fn request(body: RequestBody) -> Request {
        Request { id: 7, body }
    }

    /// Decodes hand-made hex (spaces allowed) as a [`Request`].
    fn request_from(hex_text: &str) -> Result<Request, crate::protocol::codec::CodecError> {
        decode::<Request>(&hex::decode(hex_text.replace(' ', "")).unwrap())
    }

    // Pieces of hand-made CBOR: `{"id": 7, "body": ...}` heads, and an attest body's nonce.
    const ID_7: &str = "626964 07";
    const BODY: &str = "64626f6479";
    const ATTEST: &str = "66617474657374";
    const NONCE: &str = "656e6f6e6365 420102";
    const EXTRA_0: &str = "656578747261 00";

    #[test]
    fn the_hand_made_forms_decode() {
        // The baseline the refusals below differ from by one thing each.
        assert_eq!(
            request_from(&format!("a2 {ID_7} {BODY} 66737461747573")).unwrap(),
            request(RequestBody::Status)
        );
        assert!(request_from(&format!("a2 {ID_7} {BODY} a1 {ATTEST} a1 {NONCE}")).is_ok());
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        let top = request_from(&format!("a3 {ID_7} {BODY} 66737461747573 {EXTRA_0}"));
        let nested = request_from(&format!(
            "a2 {ID_7} {BODY} a1 {ATTEST} a2 {NONCE} {EXTRA_0}"
        ));
        for error in [top.unwrap_err(), nested.unwrap_err()] {
            let error = error.to_string();
            assert!(error.contains("unknown field `extra`"), "{error}");
        }
        // Hello, a key reference and an approval.
        let hello = "a3 6876657273696f6e73 8101 66636c69656e74 6163";
        let hello = hex::decode(format!("{hello} {EXTRA_0}").replace(' ', "")).unwrap();
        assert!(decode::<Hello>(&hello).is_err());
        let mut key = encode(&key()).unwrap();
        key[0] += 1;
        key.extend(hex::decode(EXTRA_0.replace(' ', "")).unwrap());
        assert!(
            decode::<KeyRef>(&key)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
        let mut approval = encode(&approval()).unwrap();
        approval[0] += 1;
        approval.extend(hex::decode(EXTRA_0.replace(' ', "")).unwrap());
        assert!(decode::<Approval>(&approval).is_err());
    }

    fn approval() -> Approval {
        Approval {
            approver: "a".into(),
            expires_at: 1,
            signature: ByteBuf::from(vec![0; 64]),
        }
    }

    #[test]
    fn optional_fields_may_still_be_left_out() {
        // `GenerateKey` with only `owner` (older clients send neither `policy` nor `nonce`), a
        // sign request without `approvals`, and a key reference without `user_id`.
        let generate = request_from(&format!(
            "a2 {ID_7} {BODY} a1 6c67656e65726174655f6b6579 a1 656f776e6572 f6"
        ));
        assert_eq!(
            generate.unwrap(),
            request(RequestBody::GenerateKey(GenerateKey {
                owner: None,
                policy: None,
                nonce: None
            }))
        );
        let address = request_from(&format!(
            "a2 {ID_7} {BODY} a1 6761646472657373 a1 686b65795f626c6f62 41b1"
        ));
        let RequestBody::Address(key) = address.unwrap().body else {
            panic!()
        };
        assert_eq!(key.user_id, None);
    }

    #[test]
    fn the_array_form_of_structs_is_refused() {
        // The whole request as `[7, "status"]`.
        let error = request_from("82 07 66737461747573")
            .unwrap_err()
            .to_string();
        assert!(error.contains("not an array"), "{error}");
        // The attest body as `[h'0102']`.
        let error = request_from(&format!("a2 {ID_7} {BODY} a1 {ATTEST} 81 420102"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("expected a map"), "{error}");
        // A sign request's key as `[h'b1', "u"]`.
        let sign = SignRequest {
            key: key(),
            payload: SignPayload::Digest(ByteArray::new([0; 32])),
            approvals: vec![approval()],
        };
        let good = encode(&request(RequestBody::Sign(sign))).unwrap();
        assert!(decode::<Request>(&good).is_ok());
        let key_map = encode(&key()).unwrap();
        let key_array = hex::decode("82 42b10b 6175".replace(' ', "")).unwrap();
        let bad = replace(&good, &key_map, &key_array);
        assert!(
            decode::<Request>(&bad)
                .unwrap_err()
                .to_string()
                .contains("expected a map")
        );
        // An approval as `["a", 1, h'00…']`.
        let approval_map = encode(&approval()).unwrap();
        let approval_array = encode(&("a", 1, ByteBuf::from(vec![0; 64]))).unwrap();
        let bad = replace(&good, &approval_map, &approval_array);
        assert!(
            decode::<Request>(&bad)
                .unwrap_err()
                .to_string()
                .contains("expected a map")
        );
    }

    /// `haystack` with the one occurrence of `needle` replaced.
    fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
        let at = haystack
            .windows(needle.len())
            .position(|window| window == needle)
            .unwrap();
        [&haystack[..at], with, &haystack[at + needle.len()..]].concat()
    }

    #[test]
    fn packed_keys_and_legacy_enums_are_refused() {
        // `{0: 7, 1: "status"}`: serde_cbor's "packed" struct form, fields by index.
        assert!(request_from("a2 00 07 01 66737461747573").is_err());
        // The body as `["status"]` and `["attest", {...}]`: the legacy enum form.
        assert!(request_from(&format!("a2 {ID_7} {BODY} 81 66737461747573")).is_err());
        assert!(request_from(&format!("a2 {ID_7} {BODY} 82 {ATTEST} a1 {NONCE}")).is_err());
    }

    #[test]
    fn tags_are_refused_with_a_typed_error() {
        use crate::protocol::codec::CodecError;
        // The self-describe tag 55799 in front of a valid request.
        let error = request_from(&format!("d9d9f7 a2 {ID_7} {BODY} 66737461747573")).unwrap_err();
        assert!(
            matches!(
                error,
                CodecError::Tagged {
                    tag: 55_799,
                    offset: 0
                }
            ),
            "{error:?}"
        );
        // A tag deep inside (24, "encoded CBOR", on the nonce), after a byte string that holds
        // a tag's byte pattern, which must not count.
        let error = request_from(&format!(
            "a2 {ID_7} {BODY} a1 {ATTEST} a2 6565787472 61 41d9 {NONCE}"
        ));
        assert!(error.unwrap_err().to_string().contains("unknown field"));
        let error = request_from(&format!(
            "a2 {ID_7} {BODY} a1 {ATTEST} a1 656e6f6e6365 d818 420102"
        ))
        .unwrap_err();
        assert!(
            matches!(
                error,
                CodecError::Tagged {
                    tag: 24,
                    offset: 25
                }
            ),
            "{error:?}"
        );
        assert!(decode::<Hello>(&hex::decode("c0a0").unwrap()).is_err());
    }

    #[test]
    fn golden_requests() {
        golden(
            Hello {
                versions: vec![1],
                client: "c".into(),
            },
            "a26876657273696f6e73810166636c69656e746163",
        );
        golden(
            request(RequestBody::GenerateKey(GenerateKey {
                policy: None,
                owner: Some("t".into()),
                nonce: None,
            })),
            "a26269640764626f6479a16c67656e65726174655f6b6579a1656f776e65726174",
        );
        golden(
            request(RequestBody::Address(key())),
            "a26269640764626f6479a16761646472657373a2686b65795f626c6f6242b10b67757365725f69646175",
        );
        golden(
            request(RequestBody::Sign(SignRequest {
                approvals: Vec::new(),
                key: key(),
                payload: SignPayload::Transaction("{}".into()),
            })),
            "a26269640764626f6479a1647369676ea2636b6579a2686b65795f626c6f6242b10b67757365725f69646175677061796c6f6164a16b7472616e73616374696f6e627b7d",
        );
        golden(
            request(RequestBody::Sign(SignRequest {
                approvals: Vec::new(),
                key: key(),
                payload: SignPayload::Message(ByteBuf::from(b"hi".to_vec())),
            })),
            "a26269640764626f6479a1647369676ea2636b6579a2686b65795f626c6f6242b10b67757365725f69646175677061796c6f6164a1676d657373616765426869",
        );
        golden(
            request(RequestBody::Sign(SignRequest {
                approvals: Vec::new(),
                key: key(),
                payload: SignPayload::TypedData("{}".into()),
            })),
            "a26269640764626f6479a1647369676ea2636b6579a2686b65795f626c6f6242b10b67757365725f69646175677061796c6f6164a16a74797065645f64617461627b7d",
        );
        golden(
            request(RequestBody::Sign(SignRequest {
                approvals: Vec::new(),
                key: key(),
                payload: SignPayload::Authorization("{}".into()),
            })),
            "a26269640764626f6479a1647369676ea2636b6579a2686b65795f626c6f6242b10b67757365725f69646175677061796c6f6164a16d617574686f72697a6174696f6e627b7d",
        );
        golden(
            request(RequestBody::Sign(SignRequest {
                approvals: Vec::new(),
                key: key(),
                payload: SignPayload::Digest(ByteArray::new([0x11; 32])),
            })),
            "a26269640764626f6479a1647369676ea2636b6579a2686b65795f626c6f6242b10b67757365725f69646175677061796c6f6164a16664696765737458201111111111111111111111111111111111111111111111111111111111111111",
        );
        golden(
            request(RequestBody::SignBatch(SignBatchRequest {
                approvals: Vec::new(),
                key: key(),
                transactions: vec!["{}".into(), "[]".into()],
            })),
            "a26269640764626f6479a16a7369676e5f6261746368a2636b6579a2686b65795f626c6f6242b10b67757365725f696461756c7472616e73616374696f6e7382627b7d625b5d",
        );
        golden(
            request(RequestBody::Attest(AttestRequest {
                nonce: ByteBuf::from(vec![1, 2]),
            })),
            "a26269640764626f6479a166617474657374a1656e6f6e6365420102",
        );
        golden(
            request(RequestBody::Status),
            "a26269640764626f647966737461747573",
        );
        golden(
            request(RequestBody::SetCredentials(AwsCredentials {
                access_key_id: "AK".into(),
                secret_access_key: Zeroizing::new("SK".into()),
                session_token: Some(Zeroizing::new("ST".into())),
                expires_at: Some(1_800_000_000),
            })),
            "a26269640764626f6479a16f7365745f63726564656e7469616c73a46d6163636573735f6b65795f696462414b717365637265745f6163636573735f6b657962534b6d73657373696f6e5f746f6b656e6253546a657870697265735f61741a6b49d200",
        );
    }

    fn signature() -> Signature {
        Signature {
            from: ByteArray::new([0xf0; 20]),
            signing_hash: ByteArray::new([0x5a; 32]),
            r: ByteArray::new([0x01; 32]),
            s: ByteArray::new([0x02; 32]),
            y_parity: true,
        }
    }

    fn signed_transaction() -> SignedTransaction {
        SignedTransaction {
            signature: signature(),
            v: Some(ByteArray::new(
                (u128::from(u64::MAX) * 2 + 36).to_be_bytes(),
            )),
            raw: ByteBuf::from(vec![0x02, 0xc0]),
            hash: ByteArray::new([0x3c; 32]),
        }
    }

    fn response(body: ResponseBody) -> Response {
        Response {
            id: 7,
            body,
            receipt: None,
        }
    }

    #[test]
    fn a_status_without_resource_figures_still_decodes() {
        // From an enclave older than `cpu_micros` and `resident_bytes`.
        let bytes = hex::decode(
            "a26269640764626f6479a166737461747573a86673657276657261736973696d756c61746564f56f686173\
             5f63726564656e7469616c73f56b6361636865645f6b657973016a63616368655f6869747302696b6d735f\
             63616c6c73036a6b6d735f6572726f7273046a7369676e61747572657305",
        )
        .unwrap();
        let response: Response = decode(&bytes).unwrap();
        let ResponseBody::Status(status) = response.body else {
            panic!("{response:?}")
        };
        assert_eq!(
            (status.signatures, status.cpu_micros, status.resident_bytes),
            (5, 0, 0)
        );
    }

    #[test]
    fn golden_responses() {
        golden(
            HelloReply::Welcome(Welcome {
                version: 1,
                server: "s".into(),
                simulated: true,
            }),
            "a16777656c636f6d65a36776657273696f6e016673657276657261736973696d756c61746564f5",
        );
        golden(
            HelloReply::Refused(ErrorBody::new(ErrorCode::UnsupportedProtocol, "m")),
            "a16772656675736564a264636f646574756e737570706f727465645f70726f746f636f6c676d657373616765616d",
        );
        golden(
            response(ResponseBody::Key(NewKey {
                policy_hash: None,
                key_blob: ByteBuf::from(vec![0xb1]),
                key_id: ByteArray::new([0x1d; 32]),
            })),
            "a26269640764626f6479a1636b6579a2686b65795f626c6f6241b1666b65795f696458201d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d",
        );
        golden(
            response(ResponseBody::Address(AddressInfo {
                address: ByteArray::new([0xad; 20]),
                public_key: ByteBuf::from(vec![0x04]),
            })),
            "a26269640764626f6479a16761646472657373a2676164647265737354adadadadadadadadadadadadadadadadadadadad6a7075626c69635f6b65794104",
        );
        golden(
            response(ResponseBody::Signed(Box::new(Signed::Transaction(
                signed_transaction(),
            )))),
            "a26269640764626f6479a1667369676e6564a16b7472616e73616374696f6ea4697369676e6174757265a56466726f6d54f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f06c7369676e696e675f6861736858205a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a61725820010101010101010101010101010101010101010101010101010101010101010161735820020202020202020202020202020202020202020202020202020202020202020268795f706172697479f561765000000000000000020000000000000022637261774202c0646861736858203c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c",
        );
        golden(
            response(ResponseBody::Signed(Box::new(Signed::Authorization(
                SignedAuthorization {
                    signature: signature(),
                    chain_id: ByteArray::new([0; 32]),
                    address: ByteArray::new([0xad; 20]),
                    nonce: 9,
                },
            )))),
            "a26269640764626f6479a1667369676e6564a16d617574686f72697a6174696f6ea4697369676e6174757265a56466726f6d54f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f06c7369676e696e675f6861736858205a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a61725820010101010101010101010101010101010101010101010101010101010101010161735820020202020202020202020202020202020202020202020202020202020202020268795f706172697479f568636861696e5f696458200000000000000000000000000000000000000000000000000000000000000000676164647265737354adadadadadadadadadadadadadadadadadadadad656e6f6e636509",
        );
        golden(
            response(ResponseBody::Signed(Box::new(Signed::Signature(
                signature(),
            )))),
            "a26269640764626f6479a1667369676e6564a1697369676e6174757265a56466726f6d54f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f06c7369676e696e675f6861736858205a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a61725820010101010101010101010101010101010101010101010101010101010101010161735820020202020202020202020202020202020202020202020202020202020202020268795f706172697479f5",
        );
        golden(
            response(ResponseBody::SignedBatch(vec![
                BatchItem::Signed(Box::new(signed_transaction())),
                BatchItem::Error(ErrorBody::new(ErrorCode::PolicyRefused, "m")),
            ])),
            "a26269640764626f6479a16c7369676e65645f626174636882a1667369676e6564a4697369676e6174757265a56466726f6d54f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f06c7369676e696e675f6861736858205a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a61725820010101010101010101010101010101010101010101010101010101010101010161735820020202020202020202020202020202020202020202020202020202020202020268795f706172697479f561765000000000000000020000000000000022637261774202c0646861736858203c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3ca1656572726f72a264636f64656e706f6c6963795f72656675736564676d657373616765616d",
        );
        golden(
            response(ResponseBody::Attestation(AttestationDocument {
                document: ByteBuf::from(vec![0x84]),
            })),
            "a26269640764626f6479a16b6174746573746174696f6ea168646f63756d656e744184",
        );
        golden(
            response(ResponseBody::Status(Status {
                server: "s".into(),
                simulated: true,
                has_credentials: true,
                cached_keys: 1,
                cache_hits: 2,
                kms_calls: 3,
                kms_errors: 4,
                signatures: 5,
                cpu_micros: 6,
                resident_bytes: 7,
            })),
            "a26269640764626f6479a166737461747573aa6673657276657261736973696d756c61746564f56f6861735f63726564656e7469616c73f56b6361636865645f6b657973016a63616368655f6869747302696b6d735f63616c6c73036a6b6d735f6572726f7273046a7369676e617475726573056a6370755f6d6963726f73066e7265736964656e745f627974657307",
        );
        golden(
            response(ResponseBody::CredentialsSet),
            "a26269640764626f64796f63726564656e7469616c735f736574",
        );
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidKeyBlob,
            ErrorCode::PolicyRefused,
            ErrorCode::KmsAccessDenied,
            ErrorCode::KmsUnavailable,
            ErrorCode::NoCredentials,
            ErrorCode::Busy,
            ErrorCode::UnsupportedProtocol,
            ErrorCode::Internal,
        ] {
            let bytes = encode(&code).unwrap();
            let name: String = decode(&bytes).unwrap();
            assert_eq!(name, code.as_str());
        }
    }

    #[test]
    fn credentials_never_print_their_secrets() {
        let credentials = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Zeroizing::new("wJalrXUtnFEMI".into()),
            session_token: Some(Zeroizing::new("IQoJb3JpZ2lu".into())),
            expires_at: None,
        };
        let printed = format!("{credentials:?}");
        assert!(printed.contains("AKIDEXAMPLE"));
        assert!(!printed.contains("wJalrXUtnFEMI"));
        assert!(!printed.contains("IQoJb3JpZ2lu"));
    }

    #[test]
    fn a_batch_longer_than_max_batch_is_refused_while_decoding() {
        let batch = |len: usize| {
            encode(&request(RequestBody::SignBatch(SignBatchRequest {
                approvals: Vec::new(),
                key: key(),
                transactions: vec![String::new(); len],
            })))
            .unwrap()
        };
        assert!(decode::<Request>(&batch(crate::protocol::MAX_BATCH)).is_ok());
        let error = decode::<Request>(&batch(crate::protocol::MAX_BATCH + 1)).unwrap_err();
        assert!(error.to_string().contains("at most 1000"), "{error}");
    }

    #[test]
    fn unknown_variants_and_bad_user_ids_are_refused() {
        let bytes = encode(&serde_cbor::Value::Map(
            [
                (
                    serde_cbor::Value::Text("id".into()),
                    serde_cbor::Value::Integer(1),
                ),
                (
                    serde_cbor::Value::Text("body".into()),
                    serde_cbor::Value::Text("format_disk".into()),
                ),
            ]
            .into_iter()
            .collect(),
        ))
        .unwrap();
        assert!(decode::<Request>(&bytes).is_err());

        let mut key = key();
        key.user_id = None;
        let mut bytes = encode(&request(RequestBody::Address(key))).unwrap();
        // Replace the null user id (0xf6, the last byte) with an empty text string.
        *bytes.last_mut().unwrap() = 0x60;
        let error = decode::<Request>(&bytes).unwrap_err().to_string();
        assert!(error.contains("user id is empty"), "{error}");
    }
}
