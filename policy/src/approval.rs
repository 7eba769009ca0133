//! M-of-N approvals: an approver's signature over a fixed, domain-separated statement.
//!
//! The statement names the key, the user, the exact hash the enclave will sign and an expiry:
//!
//! ```text
//! digest = SHA-256( "nitro-signer/approval/v1"      24 ASCII bytes
//!                   ‖ keyId                         32 bytes
//!                   ‖ u16_be(len(userId)) ‖ userId  UTF-8; empty for an imported key and a policy change
//!                   ‖ subject                       32 bytes
//!                   ‖ u64_be(expiresAt) )
//! ```
//!
//! The approver signs the 32-byte `digest`: Ed25519 over it directly, ECDSA P-256 with SHA-256
//! over it (so ECDSA hashes it once more), as 64 bytes `r ‖ s`. The subject is the signing hash
//! itself, [`batch_subject`] for a batch, [`policy_subject`] for a policy change. The format is
//! specified in `docs/policy.md`, "Approvals".
//!
//! Verification ([`valid_approvers`]) is on the enclave's hot path: it checks the cheap things
//! (expiry, approver name, signature length, approver already counted) before any hashing or
//! signature verification, hashes the statement prefix once and each distinct `expiresAt` once,
//! and allocates nothing but the result set.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, ParsedPublicKey, UnparsedPublicKey,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Domain separation of the approval statement (24 bytes, the first bytes hashed).
pub const APPROVAL_DOMAIN: &[u8; 24] = b"nitro-signer/approval/v1";
/// Domain separation of a batch's subject ([`batch_subject`]).
pub const BATCH_DOMAIN: &[u8] = b"nitro-signer/batch/v1";
/// Domain separation of a policy change's subject ([`policy_subject`]).
pub const POLICY_DOMAIN: &[u8] = b"nitro-signer/policy/v1";
/// Longest validity of an approval: one whose `expiresAt` is more than this many seconds after
/// the enclave's clock does not count.
pub const MAX_VALIDITY_SECS: u64 = 86_400;
/// Most approvals one request may carry; [`deserialize_approvals`] refuses more, and
/// [`valid_approvers`] looks at no more than this many.
pub const MAX_APPROVALS: usize = 16;
/// Length of every valid approval signature: Ed25519, and P-256 as `r ‖ s`.
pub const SIGNATURE_LEN: usize = 64;
/// Longest signature an [`Approval`] decodes (a DER-encoded P-256 signature is at most 72 bytes,
/// so anything a confused client sends still decodes and is reported as not counting).
pub const MAX_SIGNATURE_LEN: usize = 128;

const ED25519_KEY_LEN: usize = 32;
const P256_COMPRESSED_LEN: usize = 33;
const P256_UNCOMPRESSED_LEN: usize = 65;

/// The `y` coordinates (sign bit clear, little-endian) of the Ed25519 points of order 1, 2, 4 and
/// 8, in canonical and in non-canonical (`y + p`) encoding. `tests/approval_vectors.py` computes
/// the list from the curve equation; it is also libsodium's blocklist.
const ED25519_SMALL_ORDER_Y: [[u8; 32]; 7] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    p_plus(-1),
    p_plus(0),
    p_plus(1),
];

/// `p + delta` (`p = 2^255 - 19`), little-endian, for `delta` in -1..=1.
const fn p_plus(delta: i8) -> [u8; 32] {
    let mut bytes = [0xff; 32];
    bytes[0] = (0xed_i16 + delta as i16) as u8;
    bytes[31] = 0x7f;
    bytes
}

/// Why an approver key, key file or signing operation was refused. The messages name the
/// key-file field at fault and never quote secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// An Ed25519 public key that is not 32 bytes.
    #[error("publicKey: an Ed25519 public key is 32 bytes, got {len}")]
    Ed25519KeyLength {
        /// Bytes given.
        len: usize,
    },
    /// An Ed25519 public key of small order: signatures under it can be forged.
    #[error("publicKey: the Ed25519 public key is a point of small order")]
    Ed25519SmallOrder,
    /// A P-256 public key that is not 33 or 65 bytes.
    #[error(
        "publicKey: a P-256 public key is 33 (compressed) or 65 (uncompressed) SEC1 bytes, got {len}"
    )]
    P256KeyLength {
        /// Bytes given.
        len: usize,
    },
    /// A P-256 public key that is not a point on the curve.
    #[error("publicKey: not a SEC1-encoded point on P-256")]
    P256InvalidPoint,
    /// A hex field that is not `0x` followed by an even number of hex digits.
    #[error("{field}: expected 0x-prefixed hex with an even number of digits")]
    Hex {
        /// The key-file field.
        field: &'static str,
    },
    /// A private key that is not an unencrypted PKCS#8 key of the stated type.
    #[error("privateKey: not an unencrypted PKCS#8 {kind} private key")]
    PrivateKeyRejected {
        /// The key file's `type`.
        kind: &'static str,
    },
    /// A key file whose `publicKey` is not the private key's.
    #[error("publicKey: does not match privateKey")]
    PublicKeyMismatch,
    /// A key file that is not the documented JSON object.
    #[error("key file: {0}")]
    KeyFile(String),
    /// The random number generator failed while generating a key.
    #[error("privateKey: key generation failed")]
    KeyGeneration,
    /// Signing failed (the random number generator, for P-256).
    #[error("signature: signing failed")]
    Signing,
}

/// The two kinds of approver key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApproverKind {
    /// Ed25519 (RFC 8032), signing the statement digest.
    Ed25519,
    /// ECDSA on P-256 with SHA-256 over the statement digest.
    P256,
}

impl ApproverKind {
    /// `"ed25519"` or `"p256"`, as in policies and key files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::P256 => "p256",
        }
    }
}

/// An approver's public key, as a policy names it. Build it with [`ApproverKey::ed25519`] or
/// [`ApproverKey::p256`], which validate it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApproverKey {
    /// Ed25519, the 32-byte encoded point.
    Ed25519([u8; 32]),
    /// P-256, SEC1: 33 bytes (compressed) or 65 bytes (uncompressed), kept as given.
    P256(Box<[u8]>),
}

impl ApproverKey {
    /// An Ed25519 public key: exactly 32 bytes, not one of the small-order points (under which
    /// signatures can be forged without the private key).
    ///
    /// Other invalid encodings (a `y` with no point on the curve) are not detected here: aws-lc
    /// has no cheap point decoding to call, and no signature ever verifies under such a key.
    pub fn ed25519(bytes: &[u8]) -> Result<Self, ApprovalError> {
        let key: [u8; ED25519_KEY_LEN] = bytes
            .try_into()
            .map_err(|_| ApprovalError::Ed25519KeyLength { len: bytes.len() })?;
        if ed25519_small_order(&key) {
            return Err(ApprovalError::Ed25519SmallOrder);
        }
        Ok(Self::Ed25519(key))
    }

    /// A P-256 public key: SEC1, compressed (33 bytes, `02`/`03` ‖ x) or uncompressed (65 bytes,
    /// `04` ‖ x ‖ y), and a point on the curve.
    ///
    /// The key is kept as given, and aws-lc decodes it at every verification: for a compressed
    /// key that includes the decompression, about 11 µs more than the ~52 µs of a verification
    /// under an uncompressed key (`benches/approvals.rs`).
    pub fn p256(sec1: &[u8]) -> Result<Self, ApprovalError> {
        let prefix_ok = match (sec1.len(), sec1.first()) {
            (P256_COMPRESSED_LEN, Some(0x02 | 0x03)) | (P256_UNCOMPRESSED_LEN, Some(0x04)) => true,
            (P256_COMPRESSED_LEN | P256_UNCOMPRESSED_LEN, _) => false,
            (len, _) => return Err(ApprovalError::P256KeyLength { len }),
        };
        // aws-lc decodes the point and checks that it is on the curve (and not the identity,
        // which has no 33- or 65-byte encoding anyway).
        if !prefix_ok || ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, sec1).is_err() {
            return Err(ApprovalError::P256InvalidPoint);
        }
        Ok(Self::P256(sec1.into()))
    }

    /// Whether `signature` is this key's signature over the statement `digest`: Ed25519 over the
    /// 32 bytes; P-256 ECDSA with SHA-256 over the 32 bytes, as 64 bytes `r ‖ s`. Both low-s and
    /// high-s P-256 signatures verify (KMS, WebCrypto and HSMs do not normalise `s`; a second
    /// form of the same approval gains nothing, since approvers are counted, not signatures).
    pub fn verify(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        if signature.len() != SIGNATURE_LEN {
            return false;
        }
        match self {
            // Checked again here: the variant can be built without `ed25519()`.
            Self::Ed25519(key) => {
                !ed25519_small_order(key)
                    && UnparsedPublicKey::new(&ED25519, key)
                        .verify(digest, signature)
                        .is_ok()
            }
            Self::P256(key) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key)
                .verify(digest, signature)
                .is_ok(),
        }
    }

    /// The key's kind.
    pub fn approver_kind(&self) -> ApproverKind {
        match self {
            Self::Ed25519(_) => ApproverKind::Ed25519,
            Self::P256(_) => ApproverKind::P256,
        }
    }

    /// `"ed25519"` or `"p256"`.
    pub fn kind(&self) -> &'static str {
        self.approver_kind().as_str()
    }

    /// The key's bytes: 32 for Ed25519, SEC1 as given for P-256.
    pub fn public_key(&self) -> &[u8] {
        match self {
            Self::Ed25519(key) => key,
            Self::P256(key) => key,
        }
    }
}

fn ed25519_small_order(key: &[u8; 32]) -> bool {
    // The sign bit of x does not change the order: compare y only.
    let mut y = *key;
    if let Some(last) = y.last_mut() {
        *last &= 0x7f;
    }
    ED25519_SMALL_ORDER_Y.contains(&y)
}

/// One approval, as a request carries it:
/// `{"approver":"ops-1","expiresAt":1767225600,"signature":"0x…"}`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approval {
    /// The approver's name in the policy.
    pub approver: String,
    /// Unix seconds: from this second on (`expiresAt <= now`), the approval no longer counts.
    pub expires_at: u64,
    /// The 64-byte signature over the statement digest; JSON: `0x`-prefixed hex, at most
    /// [`MAX_SIGNATURE_LEN`] bytes.
    #[serde(with = "signature_hex")]
    pub signature: Vec<u8>,
}

/// Deserializes a request's list of approvals, refusing more than [`MAX_APPROVALS`] before
/// decoding (or allocating for) the extra ones. For `#[serde(deserialize_with)]`.
pub fn deserialize_approvals<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Approval>, D::Error> {
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<Approval>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX_APPROVALS} approvals")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_APPROVALS));
            while let Some(approval) = seq.next_element()? {
                if out.len() == MAX_APPROVALS {
                    return Err(serde::de::Error::custom(format_args!(
                        "approvals: at most {MAX_APPROVALS} approvals in one request"
                    )));
                }
                out.push(approval);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Bounded)
}

/// The statement hashed up to and excluding `expiresAt`, which is all that differs between the
/// approvals of one request.
fn statement_prefix(key_id: &[u8; 32], user_id: Option<&str>, subject: &[u8; 32]) -> Sha256 {
    let user_id = user_id.unwrap_or_default().as_bytes();
    // A `UserId` is at most 256 bytes. Saturating keeps this total for longer strings, and the
    // encoding stays injective: every other field is fixed-size, so the total length alone
    // fixes the user id's length.
    let len = u16::try_from(user_id.len()).unwrap_or(u16::MAX);
    let mut hasher = Sha256::new();
    hasher.update(APPROVAL_DOMAIN);
    hasher.update(key_id);
    hasher.update(len.to_be_bytes());
    hasher.update(user_id);
    hasher.update(subject);
    hasher
}

fn finish_statement(mut prefix: Sha256, expires_at: u64) -> [u8; 32] {
    prefix.update(expires_at.to_be_bytes());
    prefix.finalize().into()
}

/// The statement digest an approver signs (layout in the module docs). `user_id` is `None` for
/// an imported key and for a policy change; `None` and `Some("")` give the same statement.
pub fn statement_digest(
    key_id: &[u8; 32],
    user_id: Option<&str>,
    subject: &[u8; 32],
    expires_at: u64,
) -> [u8; 32] {
    finish_statement(statement_prefix(key_id, user_id, subject), expires_at)
}

/// The subject of a batch: `SHA-256(BATCH_DOMAIN ‖ h_1 ‖ … ‖ h_n)` over the items' signing
/// hashes, in order.
pub fn batch_subject(hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(BATCH_DOMAIN);
    for hash in hashes {
        hasher.update(hash);
    }
    hasher.finalize().into()
}

/// The subject of a policy change: `SHA-256(POLICY_DOMAIN ‖ JCS(new policy))`, given the
/// RFC 8785 canonical bytes.
pub fn policy_subject(canonical_policy: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(POLICY_DOMAIN);
    hasher.update(canonical_policy);
    hasher.finalize().into()
}

/// What an approval must be over, and the enclave's clock.
#[derive(Debug, Clone, Copy)]
pub struct Statement<'a> {
    /// The key id returned at the key's creation.
    pub key_id: &'a [u8; 32],
    /// The user id of a seed key's request; `None` for an imported key and a policy change.
    pub user_id: Option<&'a str>,
    /// The hash the enclave will sign, [`batch_subject`] or [`policy_subject`].
    pub subject: &'a [u8; 32],
    /// The enclave's clock, Unix seconds.
    pub now: u64,
}

/// Digests already computed for one request, by `expiresAt`; at most one per approval looked at.
struct DigestCache {
    entries: [(u64, [u8; 32]); MAX_APPROVALS],
    len: usize,
}

impl DigestCache {
    fn get(&self, expires_at: u64) -> Option<[u8; 32]> {
        self.entries
            .iter()
            .take(self.len)
            .find(|(e, _)| *e == expires_at)
            .map(|(_, digest)| *digest)
    }

    fn insert(&mut self, expires_at: u64, digest: [u8; 32]) {
        if let Some(slot) = self.entries.get_mut(self.len) {
            *slot = (expires_at, digest);
            self.len += 1;
        }
    }
}

/// The distinct approvers (names, as in the policy) whose approval is valid for `statement`.
///
/// An approval counts if its approver is in `approvers`, `now < expiresAt <= now + 86400`, and
/// its signature verifies over [`statement_digest`] of `statement` and its `expiresAt`. An
/// approver already counted is not verified again. Only the first [`MAX_APPROVALS`] approvals
/// are looked at (requests with more are refused when decoded).
pub fn valid_approvers<'p>(
    approvers: &'p BTreeMap<String, ApproverKey>,
    approvals: &[Approval],
    statement: &Statement<'_>,
) -> BTreeSet<&'p str> {
    let mut valid = BTreeSet::new();
    let latest = statement.now.saturating_add(MAX_VALIDITY_SECS);
    let mut prefix = None;
    let mut digests = DigestCache {
        entries: [(0, [0; 32]); MAX_APPROVALS],
        len: 0,
    };
    for approval in approvals.iter().take(MAX_APPROVALS) {
        let expires_at = approval.expires_at;
        if expires_at <= statement.now || expires_at > latest {
            continue;
        }
        let Some((name, key)) = approvers.get_key_value(approval.approver.as_str()) else {
            continue;
        };
        if approval.signature.len() != SIGNATURE_LEN || valid.contains(name.as_str()) {
            continue;
        }
        let digest = match digests.get(expires_at) {
            Some(digest) => digest,
            None => {
                let prefix = prefix.get_or_insert_with(|| {
                    statement_prefix(statement.key_id, statement.user_id, statement.subject)
                });
                let digest = finish_statement(prefix.clone(), expires_at);
                digests.insert(expires_at, digest);
                digest
            }
        };
        if key.verify(&digest, &approval.signature) {
            valid.insert(name.as_str());
        }
    }
    valid
}

enum SecretKey {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

/// An approver's private key, for `nitro-signer approvers keygen`, `nitro-signer approve`, tests
/// and load generation. Never in the enclave. Not `Clone`; `Debug` shows the public key only.
///
/// The key file (see [`ApproverSecret::to_file_json`]) is one JSON object:
/// `{"type":"ed25519"|"p256","privateKey":"0x<PKCS#8 DER>","publicKey":"0x<public key>"}`, the
/// public key as in a policy (Ed25519: 32 bytes; P-256: SEC1, written uncompressed).
pub struct ApproverSecret {
    key: SecretKey,
    /// The PKCS#8 document the key was built from, written back by `to_file_json`.
    pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ApproverSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApproverSecret")
            .field("type", &self.kind().as_str())
            .field("public_key", &HexDisplay(self.public_key_bytes()))
            .finish_non_exhaustive()
    }
}

struct HexDisplay<'a>(&'a [u8]);

impl fmt::Debug for HexDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(2 + 2 * self.0.len());
        push_hex(&mut s, self.0);
        f.write_str(&s)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyFile<'a> {
    #[serde(rename = "type")]
    kind: ApproverKind,
    // Borrowed: the secret is not copied out of the caller's buffer (hex needs no escapes).
    #[serde(borrow)]
    private_key: &'a str,
    #[serde(borrow)]
    public_key: &'a str,
}

impl ApproverSecret {
    /// A new random key of `kind`.
    pub fn generate(kind: ApproverKind) -> Result<Self, ApprovalError> {
        let rng = SystemRandom::new();
        // PKCS#8 v1 for both: what OpenSSL and `cryptography` write and read.
        let document = match kind {
            ApproverKind::Ed25519 => Ed25519KeyPair::generate_pkcs8v1(&rng),
            ApproverKind::P256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
        }
        .map_err(|_| ApprovalError::KeyGeneration)?;
        Self::from_pkcs8(kind, Zeroizing::new(document.as_ref().to_vec()))
    }

    /// The key from an unencrypted PKCS#8 document (v1, or v2 for Ed25519).
    pub fn from_pkcs8(
        kind: ApproverKind,
        pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<Self, ApprovalError> {
        let rejected = |_| ApprovalError::PrivateKeyRejected {
            kind: kind.as_str(),
        };
        let key = match kind {
            ApproverKind::Ed25519 => {
                SecretKey::Ed25519(Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(rejected)?)
            }
            ApproverKind::P256 => SecretKey::P256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
                    .map_err(rejected)?,
            ),
        };
        Ok(Self { key, pkcs8 })
    }

    /// The key's kind.
    pub fn kind(&self) -> ApproverKind {
        match self.key {
            SecretKey::Ed25519(_) => ApproverKind::Ed25519,
            SecretKey::P256(_) => ApproverKind::P256,
        }
    }

    fn public_key_bytes(&self) -> &[u8] {
        match &self.key {
            SecretKey::Ed25519(key) => key.public_key().as_ref(),
            SecretKey::P256(key) => key.public_key().as_ref(),
        }
    }

    /// The public key to put in a policy (P-256: uncompressed SEC1).
    pub fn public_key(&self) -> ApproverKey {
        match &self.key {
            SecretKey::Ed25519(key) => {
                let mut bytes = [0; ED25519_KEY_LEN];
                bytes.copy_from_slice(key.public_key().as_ref());
                ApproverKey::Ed25519(bytes)
            }
            SecretKey::P256(key) => ApproverKey::P256(key.public_key().as_ref().into()),
        }
    }

    /// The 64-byte signature over a statement digest (see [`ApproverKey::verify`]). P-256
    /// signatures are randomized.
    pub fn sign(&self, digest: &[u8; 32]) -> Result<Vec<u8>, ApprovalError> {
        let signature = match &self.key {
            SecretKey::Ed25519(key) => key.sign(digest),
            SecretKey::P256(key) => key
                .sign(&SystemRandom::new(), digest)
                .map_err(|_| ApprovalError::Signing)?,
        };
        Ok(signature.as_ref().to_vec())
    }

    /// The approval of `name` (this key's approver name in the policy) for the statement over
    /// `key_id`, `user_id`, `subject`, valid until `expires_at`.
    pub fn approve(
        &self,
        name: &str,
        key_id: &[u8; 32],
        user_id: Option<&str>,
        subject: &[u8; 32],
        expires_at: u64,
    ) -> Result<Approval, ApprovalError> {
        let digest = statement_digest(key_id, user_id, subject, expires_at);
        Ok(Approval {
            approver: name.to_owned(),
            expires_at,
            signature: self.sign(&digest)?,
        })
    }

    /// The key file, one line of JSON:
    /// `{"type":"ed25519"|"p256","privateKey":"0x<PKCS#8 DER hex>","publicKey":"0x<hex>"}`.
    /// `privateKey` is the unencrypted PKCS#8 document (v1 as generated here, or as read);
    /// `publicKey` is the key as a policy names it (P-256: uncompressed SEC1). The string is
    /// zeroized on drop; write it to a file only the approver can read.
    pub fn to_file_json(&self) -> Zeroizing<String> {
        let public = self.public_key_bytes();
        // Sized up front so that no reallocation leaves a copy of the key behind.
        let mut out = Zeroizing::new(String::with_capacity(
            64 + 2 * self.pkcs8.len() + 2 * public.len(),
        ));
        out.push_str("{\"type\":\"");
        out.push_str(self.kind().as_str());
        out.push_str("\",\"privateKey\":\"");
        push_hex(&mut out, &self.pkcs8);
        out.push_str("\",\"publicKey\":\"");
        push_hex(&mut out, public);
        out.push_str("\"}\n");
        out
    }

    /// Reads a key file (see [`ApproverSecret::to_file_json`]); its `publicKey` must be the
    /// private key's, compressed or not for P-256.
    pub fn from_file_json(json: &str) -> Result<Self, ApprovalError> {
        let file: KeyFile<'_> =
            serde_json::from_str(json).map_err(|e| ApprovalError::KeyFile(e.to_string()))?;
        let public =
            decode_hex(file.public_key).ok_or(ApprovalError::Hex { field: "publicKey" })?;
        let stated = match file.kind {
            ApproverKind::Ed25519 => ApproverKey::ed25519(&public)?,
            ApproverKind::P256 => ApproverKey::p256(&public)?,
        };
        let pkcs8 = Zeroizing::new(decode_hex(file.private_key).ok_or(ApprovalError::Hex {
            field: "privateKey",
        })?);
        let secret = Self::from_pkcs8(file.kind, pkcs8)?;
        let actual = secret.public_key_bytes();
        // Only a P-256 key can be stated compressed: an Ed25519 key that happens to start with
        // 0x02 or 0x03 (2 in 256 do) is compared as it is.
        let matches = match (file.kind, stated.public_key()) {
            (ApproverKind::P256, compressed @ [0x02 | 0x03, ..]) => {
                compress_p256(actual).is_some_and(|c| c.as_slice() == compressed)
            }
            (_, stated) => stated == actual,
        };
        if !matches {
            return Err(ApprovalError::PublicKeyMismatch);
        }
        Ok(secret)
    }
}

/// The compressed SEC1 form of an uncompressed P-256 point.
fn compress_p256(uncompressed: &[u8]) -> Option<[u8; P256_COMPRESSED_LEN]> {
    let (&[0x04], xy) = uncompressed.split_at_checked(1)? else {
        return None;
    };
    let (x, y) = xy.split_at_checked(32)?;
    let mut out = [0; P256_COMPRESSED_LEN];
    let (prefix, out_x) = out.split_at_mut(1);
    prefix.copy_from_slice(&[0x02 | (y.last()? & 1)]);
    out_x.copy_from_slice(x);
    Some(out)
}

fn hex_digit(nibble: u8) -> char {
    char::from(if nibble < 10 {
        b'0' + nibble
    } else {
        b'a' + nibble - 10
    })
}

/// Appends `0x` and the lower-case hex of `bytes`.
fn push_hex(out: &mut String, bytes: &[u8]) {
    out.push_str("0x");
    for byte in bytes {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `0x` (lower-case, once) followed by an even number of hex digits of either case.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let digits = s.strip_prefix("0x")?.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(hex_value(*hi)? << 4 | hex_value(*lo)?),
            _ => None,
        })
        .collect()
}

/// `Approval::signature` as `0x`-prefixed hex.
mod signature_hex {
    use std::fmt;

    use serde::de::{self, Deserializer, Visitor};

    use super::{MAX_SIGNATURE_LEN, Serializer, decode_hex, push_hex};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(2 + 2 * bytes.len());
        push_hex(&mut out, bytes);
        s.serialize_str(&out)
    }

    struct SignatureVisitor;

    impl Visitor<'_> for SignatureVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "signature: 0x-prefixed hex, an even number of digits, at most {MAX_SIGNATURE_LEN} bytes"
            )
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
            // Length first: nothing is decoded (or allocated) for an oversized string.
            if v.len() > 2 + 2 * MAX_SIGNATURE_LEN {
                return Err(E::custom(format_args!(
                    "signature: at most {MAX_SIGNATURE_LEN} bytes"
                )));
            }
            decode_hex(v).ok_or_else(|| {
                E::custom("signature: expected 0x-prefixed hex with an even number of digits")
            })
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_str(SignatureVisitor)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_767_222_000;
    const KEY_ID: [u8; 32] = [0x11; 32];
    const SUBJECT: [u8; 32] = [0x22; 32];
    const USER: Option<&str> = Some("alice");

    struct Fixture {
        secrets: Vec<(&'static str, ApproverSecret)>,
        approvers: BTreeMap<String, ApproverKey>,
    }

    fn fixture() -> Fixture {
        let secrets = vec![
            (
                "ops-1",
                ApproverSecret::generate(ApproverKind::Ed25519).unwrap(),
            ),
            (
                "ops-2",
                ApproverSecret::generate(ApproverKind::Ed25519).unwrap(),
            ),
            ("hsm", ApproverSecret::generate(ApproverKind::P256).unwrap()),
        ];
        let approvers = secrets
            .iter()
            .map(|(name, s)| (name.to_string(), s.public_key()))
            .collect();
        Fixture { secrets, approvers }
    }

    impl Fixture {
        fn secret(&self, name: &str) -> &ApproverSecret {
            &self.secrets.iter().find(|(n, _)| *n == name).unwrap().1
        }

        fn approve(&self, name: &str, expires_at: u64) -> Approval {
            self.secret(name)
                .approve(name, &KEY_ID, USER, &SUBJECT, expires_at)
                .unwrap()
        }

        fn count(&self, approvals: &[Approval]) -> Vec<&str> {
            valid_approvers(&self.approvers, approvals, &statement())
                .into_iter()
                .collect()
        }
    }

    fn statement() -> Statement<'static> {
        Statement {
            key_id: &KEY_ID,
            user_id: USER,
            subject: &SUBJECT,
            now: NOW,
        }
    }

    #[test]
    fn counts_distinct_valid_approvers() {
        let f = fixture();
        let exp = NOW + 600;
        assert!(f.count(&[]).is_empty());
        assert_eq!(f.count(&[f.approve("ops-1", exp)]), ["ops-1"]);
        assert_eq!(
            f.count(&[f.approve("ops-1", exp), f.approve("ops-2", exp + 1)]),
            ["ops-1", "ops-2"]
        );
        assert_eq!(
            f.count(&[f.approve("hsm", exp), f.approve("ops-2", exp)]),
            ["hsm", "ops-2"]
        );
    }

    #[test]
    fn a_duplicate_approver_counts_once() {
        let f = fixture();
        let a = f.approve("ops-1", NOW + 60);
        let b = f.approve("ops-1", NOW + 120);
        assert_eq!(f.count(&[a.clone(), a.clone(), b]), ["ops-1"]);
        // A bad copy first does not stop a good one later from counting.
        let mut bad = a.clone();
        bad.signature[0] ^= 1;
        assert_eq!(f.count(&[bad.clone(), a]), ["ops-1"]);
        assert!(f.count(&[bad]).is_empty());
    }

    #[test]
    fn validity_window() {
        let f = fixture();
        assert!(f.count(&[f.approve("ops-1", NOW - 1)]).is_empty());
        assert!(f.count(&[f.approve("ops-1", 0)]).is_empty());
        // expiresAt == now is expired.
        assert!(f.count(&[f.approve("ops-1", NOW)]).is_empty());
        assert_eq!(f.count(&[f.approve("ops-1", NOW + 1)]), ["ops-1"]);
        assert_eq!(
            f.count(&[f.approve("ops-1", NOW + MAX_VALIDITY_SECS)]),
            ["ops-1"]
        );
        assert!(
            f.count(&[f.approve("ops-1", NOW + MAX_VALIDITY_SECS + 1)])
                .is_empty()
        );
        assert!(f.count(&[f.approve("ops-1", u64::MAX)]).is_empty());
    }

    #[test]
    fn the_clock_at_the_end_of_time_does_not_overflow() {
        let f = fixture();
        let approval = f
            .secret("ops-1")
            .approve("ops-1", &KEY_ID, USER, &SUBJECT, u64::MAX)
            .unwrap();
        let st = Statement {
            now: u64::MAX - 1,
            ..statement()
        };
        assert_eq!(valid_approvers(&f.approvers, &[approval], &st).len(), 1);
    }

    #[test]
    fn unknown_approver_does_not_count() {
        let f = fixture();
        let mut a = f.approve("ops-1", NOW + 60);
        a.approver = "ops-9".into();
        assert!(f.count(std::slice::from_ref(&a)).is_empty());
        // Another approver's name on ops-1's signature does not count either.
        a.approver = "ops-2".into();
        assert!(f.count(&[a]).is_empty());
    }

    #[test]
    fn an_approval_of_another_statement_does_not_count() {
        let f = fixture();
        let exp = NOW + 60;
        for name in ["ops-1", "hsm"] {
            let s = f.secret(name);
            let other = [0x33; 32];
            let approvals = [
                s.approve(name, &KEY_ID, USER, &other, exp).unwrap(),
                s.approve(name, &other, USER, &SUBJECT, exp).unwrap(),
                s.approve(name, &KEY_ID, Some("bob"), &SUBJECT, exp)
                    .unwrap(),
                s.approve(name, &KEY_ID, None, &SUBJECT, exp).unwrap(),
            ];
            for a in approvals {
                assert!(f.count(&[a]).is_empty(), "{name}");
            }
        }
    }

    #[test]
    fn the_digest_binds_the_user_id_length() {
        // "ab" ‖ subject vs "a" ‖ "b" ‖ subject[..31]: the length prefix keeps them apart.
        let mut shifted = [0; 32];
        shifted[0] = b'b';
        assert_ne!(
            statement_digest(&KEY_ID, Some("ab"), &[0; 32], 1),
            statement_digest(&KEY_ID, Some("a"), &shifted, 1)
        );
        assert_eq!(
            statement_digest(&KEY_ID, None, &SUBJECT, 1),
            statement_digest(&KEY_ID, Some(""), &SUBJECT, 1)
        );
    }

    /// `n - s` for a big-endian 32-byte `s`, `n` the order of P-256.
    fn p256_negate_s(s: &[u8]) -> Vec<u8> {
        const N: [u8; 32] = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
            0xfc, 0x63, 0x25, 0x51,
        ];
        let mut out = vec![0; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let d = i16::from(N[i]) - i16::from(s[i]) - borrow;
            borrow = i16::from(d < 0);
            out[i] = d.rem_euclid(256) as u8;
        }
        assert_eq!(borrow, 0);
        out
    }

    #[test]
    fn p256_high_s_counts_and_der_does_not() {
        let f = fixture();
        let a = f.approve("hsm", NOW + 60);
        assert_eq!(f.count(std::slice::from_ref(&a)), ["hsm"]);
        // Decided: both forms of s count (KMS and WebCrypto do not normalise s, and counting
        // approvers rather than signatures makes the second form worthless to an attacker).
        let mut other_s = a.clone();
        other_s.signature = [&a.signature[..32], &p256_negate_s(&a.signature[32..])].concat();
        assert_ne!(other_s.signature, a.signature);
        assert_eq!(f.count(&[other_s]), ["hsm"]);
        // The DER form of the same signature does not.
        let der = |int: &[u8]| {
            let trimmed: Vec<u8> = int.iter().copied().skip_while(|b| *b == 0).collect();
            let mut v = if trimmed[0] & 0x80 != 0 {
                vec![0]
            } else {
                vec![]
            };
            v.extend(trimmed);
            [vec![0x02, v.len() as u8], v].concat()
        };
        let body = [der(&a.signature[..32]), der(&a.signature[32..])].concat();
        let mut as_der = a.clone();
        as_der.signature = [vec![0x30, body.len() as u8], body].concat();
        assert_ne!(as_der.signature.len(), 64);
        assert!(f.count(&[as_der]).is_empty());
        // Neither does a signature of the wrong length, or all zeros.
        for sig in [vec![], vec![0; 63], vec![0; 64], vec![0; 65]] {
            let mut x = a.clone();
            x.signature = sig;
            assert!(f.count(&[x]).is_empty());
        }
    }

    #[test]
    fn ed25519_malleated_s_does_not_verify() {
        // S + L, the non-canonical twin of S: RFC 8032 requires S < L.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let f = fixture();
        let a = f.approve("ops-1", NOW + 60);
        let mut sig = a.signature.clone();
        let mut carry = 0u16;
        for i in 0..32 {
            let sum = u16::from(sig[32 + i]) + u16::from(L[i]) + carry;
            sig[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        let mut x = a;
        x.signature = sig;
        assert!(f.count(&[x]).is_empty());
    }

    #[test]
    fn only_the_first_max_approvals_are_looked_at() {
        let f = fixture();
        let mut approvals = vec![f.approve("ops-1", NOW); MAX_APPROVALS];
        approvals.push(f.approve("ops-2", NOW + 60));
        assert!(f.count(&approvals).is_empty());
        approvals.remove(0);
        assert_eq!(f.count(&approvals), ["ops-2"]);
    }

    #[test]
    fn approval_json() {
        let a = Approval {
            approver: "ops-1".into(),
            expires_at: 1_767_225_600,
            signature: vec![0xab, 0x01],
        };
        let json = r#"{"approver":"ops-1","expiresAt":1767225600,"signature":"0xab01"}"#;
        assert_eq!(serde_json::to_string(&a).unwrap(), json);
        assert_eq!(serde_json::from_str::<Approval>(json).unwrap(), a);
        let upper = r#"{"approver":"ops-1","expiresAt":1767225600,"signature":"0xAB01"}"#;
        assert_eq!(serde_json::from_str::<Approval>(upper).unwrap(), a);
    }

    #[test]
    fn malformed_approval_json_is_refused() {
        let long = format!("0x{}", "00".repeat(MAX_SIGNATURE_LEN + 1));
        let max = format!("0x{}", "00".repeat(MAX_SIGNATURE_LEN));
        let ok = |sig: &str| {
            serde_json::from_str::<Approval>(&format!(
                r#"{{"approver":"a","expiresAt":1,"signature":"{sig}"}}"#
            ))
        };
        assert!(ok("0x").is_ok());
        assert!(ok(&max).is_ok());
        for (bad, why) in [
            ("ab01", "signature: expected 0x"),
            ("0xab0", "signature: expected 0x"),
            ("0xzz", "signature: expected 0x"),
            ("0X ab", "signature: expected 0x"),
            ("0x0xab", "signature: expected 0x"),
            ("0x+1", "signature: expected 0x"),
            ("0xéé", "signature: expected 0x"),
            (long.as_str(), "signature: at most 128 bytes"),
        ] {
            let err = ok(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        for json in [
            r#"{"approver":"a","expiresAt":1,"signature":"0x","extra":1}"#,
            r#"{"approver":"a","expiresAt":1}"#,
            r#"{"approver":"a","expiresAt":"1","signature":"0x"}"#,
            r#"{"approver":"a","expiresAt":-1,"signature":"0x"}"#,
            r#"{"approver":"a","expiresAt":1.5,"signature":"0x"}"#,
            r#"{"approver":"a","expires_at":1,"signature":"0x"}"#,
            r#"{"approver":"a","expiresAt":1,"signature":[1,2]}"#,
        ] {
            assert!(serde_json::from_str::<Approval>(json).is_err(), "{json}");
        }
        let unknown = serde_json::from_str::<Approval>(
            r#"{"approver":"a","expiresAt":1,"signature":"0x","x":1}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("unknown field `x`"), "{unknown}");
    }

    #[derive(Deserialize, Debug)]
    struct Request {
        #[serde(deserialize_with = "deserialize_approvals")]
        approvals: Vec<Approval>,
    }

    #[test]
    fn at_most_max_approvals_decode() {
        let one = r#"{"approver":"a","expiresAt":1,"signature":"0x"}"#;
        let list = |n| format!(r#"{{"approvals":[{}]}}"#, vec![one; n].join(","));
        assert_eq!(
            serde_json::from_str::<Request>(&list(MAX_APPROVALS))
                .unwrap()
                .approvals
                .len(),
            MAX_APPROVALS
        );
        assert_eq!(
            serde_json::from_str::<Request>(&list(0))
                .unwrap()
                .approvals
                .len(),
            0
        );
        let err = serde_json::from_str::<Request>(&list(MAX_APPROVALS + 1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 16 approvals"), "{err}");
    }

    #[test]
    fn ed25519_keys() {
        let good = ApproverSecret::generate(ApproverKind::Ed25519)
            .unwrap()
            .public_key();
        assert_eq!(ApproverKey::ed25519(good.public_key()).unwrap(), good);
        assert_eq!(good.kind(), "ed25519");
        for len in [0, 31, 33, 64] {
            assert_eq!(
                ApproverKey::ed25519(&vec![9; len]),
                Err(ApprovalError::Ed25519KeyLength { len })
            );
        }
        for y in ED25519_SMALL_ORDER_Y {
            for sign in [0, 0x80] {
                let mut key = y;
                key[31] |= sign;
                assert_eq!(
                    ApproverKey::ed25519(&key),
                    Err(ApprovalError::Ed25519SmallOrder)
                );
                // Not even when built directly: nothing verifies under it.
                assert!(!ApproverKey::Ed25519(key).verify(&[0; 32], &[0; 64]));
            }
        }
        // The classic forgery under the identity key: R = identity, S = 0.
        let mut forged = [0; 64];
        forged[0] = 1;
        assert!(!ApproverKey::Ed25519(ED25519_SMALL_ORDER_Y[1]).verify(&[7; 32], &forged));
    }

    #[test]
    fn p256_keys() {
        let secret = ApproverSecret::generate(ApproverKind::P256).unwrap();
        let full = secret.public_key();
        assert_eq!(full.kind(), "p256");
        assert_eq!(full.public_key().len(), 65);
        let compressed = compress_p256(full.public_key()).unwrap();
        let short = ApproverKey::p256(&compressed).unwrap();
        assert_eq!(ApproverKey::p256(full.public_key()).unwrap(), full);
        // Both encodings verify the same signature.
        let digest = [5; 32];
        let sig = secret.sign(&digest).unwrap();
        assert!(full.verify(&digest, &sig));
        assert!(short.verify(&digest, &sig));
        assert!(!short.verify(&[6; 32], &sig));
        for len in [0, 1, 32, 34, 64, 66, 91] {
            assert_eq!(
                ApproverKey::p256(&vec![4; len]),
                Err(ApprovalError::P256KeyLength { len })
            );
        }
        // Wrong prefixes, and a point off the curve.
        let mut flipped_prefix = full.public_key().to_vec();
        flipped_prefix[0] = 0x06;
        let mut off_curve = full.public_key().to_vec();
        off_curve[64] ^= 1;
        let mut compressed_as_04 = compressed;
        compressed_as_04[0] = 0x04;
        for bad in [
            &flipped_prefix[..],
            &off_curve,
            &compressed_as_04,
            &[0u8; 33],
            &[0u8; 65],
        ] {
            assert_eq!(ApproverKey::p256(bad), Err(ApprovalError::P256InvalidPoint));
        }
        // An x with no point on the curve: x = 0 has y² = b, a non-residue... or not; find one.
        let no_point = (0u8..=255)
            .map(|x| {
                let mut k = [0u8; 33];
                k[0] = 2;
                k[32] = x;
                k
            })
            .find(|k| ApproverKey::p256(k).is_err());
        assert!(no_point.is_some());
    }

    #[test]
    fn an_ed25519_signature_does_not_verify_under_p256_and_back() {
        let f = fixture();
        let a = f.approve("ops-1", NOW + 60);
        let mut moved = a.clone();
        moved.approver = "hsm".into();
        assert!(f.count(&[moved]).is_empty());
        let h = f.approve("hsm", NOW + 60);
        let mut moved = h;
        moved.approver = "ops-1".into();
        assert!(f.count(&[moved]).is_empty());
    }

    #[test]
    fn key_files_round_trip() {
        for kind in [ApproverKind::Ed25519, ApproverKind::P256] {
            let secret = ApproverSecret::generate(kind).unwrap();
            let json = secret.to_file_json();
            assert!(json.ends_with("\"}\n"));
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(value["type"], kind.as_str());
            let back = ApproverSecret::from_file_json(&json).unwrap();
            assert_eq!(back.public_key(), secret.public_key());
            assert_eq!(*back.to_file_json(), *json);
            // Signs for the same key.
            let sig = back.sign(&[1; 32]).unwrap();
            assert_eq!(sig.len(), 64);
            assert!(secret.public_key().verify(&[1; 32], &sig));
            // Debug shows the public key and nothing of the private one.
            let debug = format!("{secret:?}");
            let public = value["publicKey"].as_str().unwrap();
            assert!(debug.contains(public), "{debug}");
            assert!(debug.len() < public.len() + 64, "{debug}");
        }
    }

    /// Ed25519 keys whose first byte is 0x02 or 0x03 (as a compressed P-256 key's is) read
    /// back: about 1 generated key in 128, so this looks for some.
    #[test]
    fn ed25519_key_files_starting_like_a_compressed_point_round_trip() {
        let mut found = 0;
        for _ in 0..4096 {
            let secret = ApproverSecret::generate(ApproverKind::Ed25519).unwrap();
            if !matches!(secret.public_key_bytes().first(), Some(0x02 | 0x03)) {
                continue;
            }
            found += 1;
            let json = secret.to_file_json();
            let back = ApproverSecret::from_file_json(&json).unwrap();
            assert_eq!(back.public_key(), secret.public_key());
        }
        assert!(found > 0, "no key starting with 0x02 or 0x03 in 4096");
    }

    #[test]
    fn key_file_with_compressed_p256_public_key() {
        let secret = ApproverSecret::generate(ApproverKind::P256).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&secret.to_file_json()).unwrap();
        let compressed = compress_p256(secret.public_key().public_key()).unwrap();
        let mut hex = String::new();
        push_hex(&mut hex, &compressed);
        value["publicKey"] = hex.clone().into();
        assert!(ApproverSecret::from_file_json(&value.to_string()).is_ok());
        // The other parity is another point: refused.
        let mut other = compressed;
        other[0] ^= 1;
        let mut hex = String::new();
        push_hex(&mut hex, &other);
        value["publicKey"] = hex.into();
        assert_eq!(
            ApproverSecret::from_file_json(&value.to_string()).unwrap_err(),
            ApprovalError::PublicKeyMismatch
        );
    }

    #[test]
    fn bad_key_files_are_refused() {
        let ed = ApproverSecret::generate(ApproverKind::Ed25519).unwrap();
        let p = ApproverSecret::generate(ApproverKind::P256).unwrap();
        let ed_json: serde_json::Value = serde_json::from_str(&ed.to_file_json()).unwrap();
        let p_json: serde_json::Value = serde_json::from_str(&p.to_file_json()).unwrap();
        let with = |base: &serde_json::Value, field: &str, v: serde_json::Value| {
            let mut x = base.clone();
            x[field] = v;
            ApproverSecret::from_file_json(&x.to_string())
                .unwrap_err()
                .to_string()
        };
        let other_ed = ApproverSecret::generate(ApproverKind::Ed25519).unwrap();
        let other_pub = serde_json::from_str::<serde_json::Value>(&other_ed.to_file_json())
            .unwrap()["publicKey"]
            .clone();
        for (err, want) in [
            (
                with(&ed_json, "publicKey", other_pub),
                "publicKey: does not match",
            ),
            (
                with(&ed_json, "publicKey", "0x00".into()),
                "publicKey: an Ed25519",
            ),
            (
                with(&ed_json, "publicKey", "00".into()),
                "publicKey: expected 0x",
            ),
            (
                with(&ed_json, "privateKey", "0x123".into()),
                "privateKey: expected 0x",
            ),
            (
                with(&ed_json, "privateKey", "0x00".into()),
                "privateKey: not an unencrypted PKCS#8 ed25519",
            ),
            (
                with(&ed_json, "privateKey", p_json["privateKey"].clone()),
                "privateKey: not an unencrypted PKCS#8 ed25519",
            ),
            (
                with(&p_json, "privateKey", ed_json["privateKey"].clone()),
                "privateKey: not an unencrypted PKCS#8 p256",
            ),
            (
                with(&ed_json, "type", "rsa".into()),
                "key file: unknown variant `rsa`",
            ),
            (
                with(&ed_json, "extra", 1.into()),
                "key file: unknown field `extra`",
            ),
        ] {
            assert!(err.contains(want), "{err} (want {want})");
        }
        assert!(ApproverSecret::from_file_json("").is_err());
        assert!(ApproverSecret::from_file_json("{}").is_err());
    }

    fn arb_approval() -> impl Strategy<Value = Approval> {
        (
            prop_oneof![
                Just("ops-1".to_string()),
                Just("ops-2".to_string()),
                Just("hsm".to_string()),
                ".{0,12}",
            ],
            prop_oneof![
                Just(NOW),
                Just(NOW + 1),
                Just(NOW + MAX_VALIDITY_SECS),
                Just(NOW + MAX_VALIDITY_SECS + 1),
                any::<u64>(),
            ],
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 64),
                proptest::collection::vec(any::<u8>(), 0..200),
            ],
        )
            .prop_map(|(approver, expires_at, signature)| Approval {
                approver,
                expires_at,
                signature,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_approvals_never_panic_and_never_count(
            approvals in proptest::collection::vec(arb_approval(), 0..24),
            now in prop_oneof![Just(NOW), any::<u64>()],
            user in proptest::option::of(".{0,300}"),
        ) {
            let f = fixture_static();
            let st = Statement { key_id: &KEY_ID, user_id: user.as_deref(), subject: &SUBJECT, now };
            // Random signatures are forgeries: nothing counts.
            prop_assert!(valid_approvers(&f.approvers, &approvals, &st).is_empty());
            // And a JSON round trip is exact.
            for a in &approvals {
                if a.signature.len() <= MAX_SIGNATURE_LEN {
                    let json = serde_json::to_string(a).unwrap();
                    prop_assert_eq!(&serde_json::from_str::<Approval>(&json).unwrap(), a);
                }
            }
        }

        #[test]
        fn arbitrary_json_never_panics(json in ".{0,200}") {
            let _ = serde_json::from_str::<Approval>(&json);
            let _ = ApproverSecret::from_file_json(&json);
        }
    }

    fn fixture_static() -> &'static Fixture {
        static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        FIXTURE.get_or_init(fixture)
    }
}
