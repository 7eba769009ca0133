//! Key blobs: what back ends store for each key, and what binds it at KMS.
//!
//! A key blob is the KMS ciphertext of a secret plus the metadata needed to use it, encoded as
//! CBOR (a map with the keys below) and carried as base64 in the HTTP API:
//!
//! | key | value |
//! |---|---|
//! | `v` | format version, `1` |
//! | `kind` | `"seed"` (a 32-byte master seed, users' keys derived from it on every curve), `"private-key"` (a secp256k1 key used as it is) or `"p256-private-key"` (a P-256 key used as it is) |
//! | `kms_key` | the KMS key id or ARN the secret is encrypted under |
//! | `owner` | optional owner/tenant label, 1–128 printable ASCII characters |
//! | `policy` | opt-ins beyond the safe defaults: any of `"raw-digest"`, `"pre-eip155"`, `"any-chain-authorization"` (sorted, no repeats); blobs made before policy documents |
//! | `policy_doc` | the key's policy document (`docs/policy.md`) as bytes of RFC 8785 canonical JSON; never with `policy` |
//! | `ciphertext` | the KMS `CiphertextBlob`: of the secret, or, with `sealed`, of a data key |
//! | `sealed` | optional: the secret sealed by the enclave under that data key (AES-256-GCM, see `enclave/src/sealing.rs`); blobs the enclave re-encrypts for a policy change have it |
//!
//! Everything except the ciphertext itself is bound through the KMS encryption context
//! ([`KeyMetadata::encryption_context`]): a blob whose kind, owner or policy was altered, or that is
//! presented as another kind or owner, fails to decrypt at KMS. The parent instance, which
//! stores and forwards blobs, therefore cannot turn a seed into a private key, move a key to
//! another tenant, grant a key raw-digest signing, or change or swap its policy document (the
//! context carries the document's SHA-256).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::protocol::codec::{self, Value};

/// Current format version.
pub const KEY_BLOB_VERSION: u8 = 1;
/// Largest accepted encoded blob.
pub const MAX_KEY_BLOB_LEN: usize = 48 * 1024;
/// Longest owner label.
pub const MAX_OWNER_LEN: usize = 128;
/// Longest sealed secret.
pub const MAX_SEALED_LEN: usize = 256;
/// Longest policy document a blob carries (canonical JSON).
pub const MAX_POLICY_DOC_LEN: usize = 32 * 1024;

/// Encryption-context names, all prefixed so they cannot collide with a caller's own.
pub mod context {
    /// The blob format version.
    pub const VERSION: &str = "nitro-signer:blob-version";
    /// `seed`, `private-key` or `p256-private-key`.
    pub const KIND: &str = "nitro-signer:kind";
    /// The owner label, when there is one.
    pub const OWNER: &str = "nitro-signer:owner";
    /// The policy opt-ins, comma-separated, when there are any.
    pub const POLICY: &str = "nitro-signer:policy";
    /// SHA-256 of the policy document's canonical JSON, lowercase hex, when there is one.
    pub const POLICY_SHA256: &str = "nitro-signer:policy-sha256";
}

/// What the ciphertext holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    /// A 32-byte master seed.
    Seed,
    /// A 32-byte secp256k1 private key.
    PrivateKey,
    /// A 32-byte ECDSA P-256 (secp256r1) private key.
    P256PrivateKey,
}

impl KeyKind {
    /// The name used in blobs and encryption contexts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seed => "seed",
            Self::PrivateKey => "private-key",
            Self::P256PrivateKey => "p256-private-key",
        }
    }

    /// The one curve an imported key is on; `None` for a seed, which derives keys on every
    /// curve.
    pub fn curve(self) -> Option<Curve> {
        match self {
            Self::Seed => None,
            Self::PrivateKey => Some(Curve::Secp256k1),
            Self::P256PrivateKey => Some(Curve::P256),
        }
    }
}

/// An elliptic curve keys are derived and used on (`docs/key-derivation.md`). A new curve is one
/// more variant, with its own derivation salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Curve {
    /// secp256k1: Ethereum, and Flow accounts with `signAlgo` 3.
    Secp256k1,
    /// ECDSA P-256 (secp256r1): Flow accounts with `signAlgo` 2.
    P256,
}

impl Curve {
    /// Flow's `signAlgo` code for an account key on this curve: 2 for P-256, 3 for secp256k1
    /// (`nitro_signer_flow::SIGN_ALGO_ECDSA_*`).
    pub fn flow_sign_algo(self) -> u8 {
        match self {
            Self::P256 => 2,
            Self::Secp256k1 => 3,
        }
    }

    /// The name used in the API (`"secp256k1"`, `"p256"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secp256k1 => "secp256k1",
            Self::P256 => "p256",
        }
    }
}

/// An opt-in beyond the safe defaults, fixed when the key is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyFlag {
    /// Sign caller-supplied 32-byte hashes.
    RawDigest,
    /// Sign legacy transactions without a chain id.
    PreEip155,
    /// Sign EIP-7702 authorizations valid on every chain.
    AnyChainAuthorization,
}

impl PolicyFlag {
    /// The name used in blobs and encryption contexts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RawDigest => "raw-digest",
            Self::PreEip155 => "pre-eip155",
            Self::AnyChainAuthorization => "any-chain-authorization",
        }
    }
}

/// Everything a blob says about its secret besides the ciphertext: the kind, the KMS key, the
/// owner and the opt-ins, checked, and all of it bound at KMS through
/// [`KeyMetadata::encryption_context`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMetadata {
    kind: KeyKind,
    kms_key: String,
    owner: Option<String>,
    policy: Vec<PolicyFlag>,
    document: Option<PolicyDocument>,
}

/// A policy document as a blob carries it: canonical JSON bytes (parsed and checked by the
/// enclave, see `nitro_signer_policy`) and their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PolicyDocument {
    canonical: Vec<u8>,
    sha256: [u8; 32],
}

/// A decoded, checked key blob: its [`KeyMetadata`] and the KMS ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBlob {
    metadata: KeyMetadata,
    ciphertext: Vec<u8>,
    sealed: Option<Vec<u8>>,
}

/// The CBOR map a blob is encoded as (see the module docs).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: u8,
    kind: KeyKind,
    kms_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    policy: Vec<PolicyFlag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy_doc: Option<serde_bytes::ByteBuf>,
    #[serde(with = "serde_bytes")]
    ciphertext: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<serde_bytes::ByteBuf>,
}

/// Why a key blob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyBlobError {
    /// Not a well-formed blob of this format.
    #[error("keyBlob: {0}")]
    Malformed(String),
    /// A format version this build does not read.
    #[error("keyBlob: unsupported format version {0}")]
    UnsupportedVersion(u8),
}

fn malformed(what: impl Into<String>) -> KeyBlobError {
    KeyBlobError::Malformed(what.into())
}

impl KeyMetadata {
    /// Checked metadata; `policy` is sorted and repeats dropped.
    pub fn new(
        kind: KeyKind,
        kms_key: impl Into<String>,
        owner: Option<String>,
        mut policy: Vec<PolicyFlag>,
    ) -> Result<Self, KeyBlobError> {
        policy.sort();
        policy.dedup();
        let metadata = Self {
            kind,
            kms_key: kms_key.into(),
            owner,
            policy,
            document: None,
        };
        metadata.check()?;
        Ok(metadata)
    }

    /// The same metadata with a policy document (its canonical JSON, which the caller has
    /// checked) in place of opt-ins.
    pub fn with_policy_document(mut self, canonical: Vec<u8>) -> Result<Self, KeyBlobError> {
        self.document = Some(PolicyDocument::new(canonical));
        self.check()?;
        Ok(self)
    }

    fn check(&self) -> Result<(), KeyBlobError> {
        if self.kms_key.is_empty() || self.kms_key.len() > 2048 {
            return Err(malformed("kms_key must be 1 to 2048 characters"));
        }
        if let Some(owner) = &self.owner
            && !is_owner_label(owner)
        {
            return Err(malformed(
                "owner must be 1 to 128 printable ASCII characters",
            ));
        }
        if self.policy.windows(2).any(|w| w.first() >= w.get(1)) {
            return Err(malformed("policy must be sorted without repeats"));
        }
        if let Some(document) = &self.document {
            if !self.policy.is_empty() {
                return Err(malformed(
                    "a blob has opt-ins (policy) or a policy document (policy_doc), not both",
                ));
            }
            if document.canonical.is_empty() || document.canonical.len() > MAX_POLICY_DOC_LEN {
                return Err(malformed(format!(
                    "policy_doc must be 1 to {MAX_POLICY_DOC_LEN} bytes"
                )));
            }
        }
        Ok(())
    }

    /// The KMS encryption context that binds this metadata to a ciphertext.
    pub fn encryption_context(&self) -> BTreeMap<String, String> {
        let mut ctx = BTreeMap::from([
            (context::VERSION.to_owned(), KEY_BLOB_VERSION.to_string()),
            (context::KIND.to_owned(), self.kind.as_str().to_owned()),
        ]);
        if let Some(owner) = &self.owner {
            ctx.insert(context::OWNER.to_owned(), owner.clone());
        }
        if !self.policy.is_empty() {
            let flags: Vec<&str> = self.policy.iter().map(|f| f.as_str()).collect();
            ctx.insert(context::POLICY.to_owned(), flags.join(","));
        }
        if let Some(document) = &self.document {
            let hex: String = document.sha256.iter().map(|b| format!("{b:02x}")).collect();
            ctx.insert(context::POLICY_SHA256.to_owned(), hex);
        }
        ctx
    }

    /// The policy document's canonical JSON, when the blob has one.
    pub fn policy_document(&self) -> Option<&[u8]> {
        self.document.as_ref().map(|d| d.canonical.as_slice())
    }

    /// SHA-256 of the policy document, when the blob has one.
    pub fn policy_hash(&self) -> Option<[u8; 32]> {
        self.document.as_ref().map(|d| d.sha256)
    }

    /// What the ciphertext holds.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The KMS key id or ARN.
    pub fn kms_key(&self) -> &str {
        &self.kms_key
    }

    /// The owner label.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The policy opt-ins, sorted (blobs made before policy documents).
    pub fn policy(&self) -> &[PolicyFlag] {
        &self.policy
    }
}

impl PolicyDocument {
    fn new(canonical: Vec<u8>) -> Self {
        use sha2::Digest as _;
        let sha256 = sha2::Sha256::digest(&canonical).into();
        Self { canonical, sha256 }
    }
}

/// Whether `label` is a valid owner label: 1 to [`MAX_OWNER_LEN`] printable ASCII characters.
pub fn is_owner_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_OWNER_LEN
        && label.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

impl KeyBlob {
    /// A blob of `metadata` and the KMS `ciphertext` made under its encryption context.
    pub fn new(metadata: KeyMetadata, ciphertext: Vec<u8>) -> Result<Self, KeyBlobError> {
        if ciphertext.is_empty() || ciphertext.len() > MAX_KEY_BLOB_LEN {
            return Err(malformed("ciphertext is empty or too long"));
        }
        Ok(Self {
            metadata,
            ciphertext,
            sealed: None,
        })
    }

    /// A blob whose secret is `sealed` by the enclave under a data key, and `ciphertext` the
    /// KMS `CiphertextBlob` of that data key, made under `metadata`'s encryption context.
    pub fn new_sealed(
        metadata: KeyMetadata,
        ciphertext: Vec<u8>,
        sealed: Vec<u8>,
    ) -> Result<Self, KeyBlobError> {
        if sealed.is_empty() || sealed.len() > MAX_SEALED_LEN {
            return Err(malformed(format!(
                "sealed must be 1 to {MAX_SEALED_LEN} bytes"
            )));
        }
        let mut blob = Self::new(metadata, ciphertext)?;
        blob.sealed = Some(sealed);
        Ok(blob)
    }

    /// Decodes and checks a blob.
    pub fn decode(bytes: &[u8]) -> Result<Self, KeyBlobError> {
        if bytes.len() > MAX_KEY_BLOB_LEN {
            return Err(malformed(format!("longer than {MAX_KEY_BLOB_LEN} bytes")));
        }
        match codec::decode::<Wire>(bytes) {
            // Other versions that happen to have this version's shape are refused here.
            Ok(wire) if wire.v != KEY_BLOB_VERSION => Err(KeyBlobError::UnsupportedVersion(wire.v)),
            Ok(wire) => {
                let metadata = KeyMetadata {
                    kind: wire.kind,
                    kms_key: wire.kms_key,
                    owner: wire.owner,
                    policy: wire.policy,
                    document: wire
                        .policy_doc
                        .map(|bytes| PolicyDocument::new(bytes.into_vec())),
                };
                metadata.check()?;
                match wire.sealed {
                    Some(sealed) => Self::new_sealed(metadata, wire.ciphertext, sealed.into_vec()),
                    None => Self::new(metadata, wire.ciphertext),
                }
            }
            Err(error) => {
                // A future format gets a precise error rather than "malformed". (Only on this
                // path: it decodes the blob a second time, generically.)
                if let Ok(Value::Map(map)) = codec::decode::<Value>(bytes)
                    && let Some(Value::Integer(v)) = map.get(&Value::Text("v".into()))
                    && *v != i128::from(KEY_BLOB_VERSION)
                {
                    return Err(KeyBlobError::UnsupportedVersion(
                        u8::try_from(*v).unwrap_or(u8::MAX),
                    ));
                }
                Err(malformed(error.to_string()))
            }
        }
    }

    /// The CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            v: KEY_BLOB_VERSION,
            kind: self.metadata.kind,
            kms_key: self.metadata.kms_key.clone(),
            owner: self.metadata.owner.clone(),
            policy: self.metadata.policy.clone(),
            policy_doc: self
                .metadata
                .document
                .as_ref()
                .map(|d| serde_bytes::ByteBuf::from(d.canonical.clone())),
            ciphertext: self.ciphertext.clone(),
            sealed: self.sealed.clone().map(serde_bytes::ByteBuf::from),
        };
        // A struct of strings, bytes and small integers always encodes.
        codec::encode(&wire).unwrap_or_default()
    }

    /// What the blob says about its secret.
    pub fn metadata(&self) -> &KeyMetadata {
        &self.metadata
    }

    /// The KMS `CiphertextBlob`.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The secret sealed under the data key `ciphertext` holds, for blobs that have one.
    pub fn sealed(&self) -> Option<&[u8]> {
        self.sealed.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::Digest as _;

    fn blob() -> KeyBlob {
        let metadata = KeyMetadata::new(
            KeyKind::Seed,
            "arn:aws:kms:us-east-1:111122223333:key/1234",
            Some("tenant-7".into()),
            vec![
                PolicyFlag::RawDigest,
                PolicyFlag::PreEip155,
                PolicyFlag::RawDigest,
            ],
        )
        .unwrap();
        KeyBlob::new(metadata, vec![1, 2, 3]).unwrap()
    }

    fn plain() -> KeyBlob {
        let metadata = KeyMetadata::new(KeyKind::PrivateKey, "k", None, vec![]).unwrap();
        KeyBlob::new(metadata, vec![9]).unwrap()
    }

    /// The blob's wire form, for encoding blobs `KeyBlob` would refuse to make.
    fn wire(blob: &KeyBlob) -> Wire {
        codec::decode(&blob.encode()).unwrap()
    }

    #[test]
    fn round_trips_and_binds_metadata() {
        let b = blob();
        assert_eq!(
            b.metadata().policy(),
            &[PolicyFlag::RawDigest, PolicyFlag::PreEip155]
        );
        assert_eq!(KeyBlob::decode(&b.encode()).unwrap(), b);
        let ctx = b.metadata().encryption_context();
        assert_eq!(ctx[context::KIND], "seed");
        assert_eq!(ctx[context::OWNER], "tenant-7");
        assert_eq!(ctx[context::POLICY], "raw-digest,pre-eip155");
        assert_eq!(ctx[context::VERSION], "1");
        // A blob without owner or policy has a smaller context, so it is a different binding.
        assert_eq!(plain().metadata().encryption_context().len(), 2);
    }

    #[test]
    fn a_policy_document_is_bound_by_its_hash() {
        let document = br#"{"rules":[{"effect":"allow","when":{}}],"version":1}"#.to_vec();
        let metadata = KeyMetadata::new(KeyKind::Seed, "k", None, vec![])
            .unwrap()
            .with_policy_document(document.clone())
            .unwrap();
        let blob = KeyBlob::new(metadata, vec![1]).unwrap();
        let decoded = KeyBlob::decode(&blob.encode()).unwrap();
        assert_eq!(decoded, blob);
        assert_eq!(decoded.metadata().policy_document(), Some(&document[..]));
        let ctx = decoded.metadata().encryption_context();
        // sha256 of the document, as `printf '%s' '…' | sha256sum` gives it.
        assert_eq!(
            ctx[context::POLICY_SHA256],
            hex::encode(sha2::Sha256::digest(&document))
        );
        // Another document, another binding.
        let other = KeyMetadata::new(KeyKind::Seed, "k", None, vec![])
            .unwrap()
            .with_policy_document(b"{}".to_vec())
            .unwrap();
        assert_ne!(
            other.encryption_context()[context::POLICY_SHA256],
            ctx[context::POLICY_SHA256]
        );
        // Opt-ins and a document together are refused.
        assert!(
            KeyMetadata::new(KeyKind::Seed, "k", None, vec![PolicyFlag::RawDigest])
                .unwrap()
                .with_policy_document(document)
                .is_err()
        );
    }

    #[test]
    fn golden_encoding() {
        // {"v": 1, "kind": "private-key", "kms_key": "k", "ciphertext": h'09'}
        assert_eq!(
            plain().encode(),
            [
                &[0xa4, 0x61, b'v', 0x01, 0x64][..],
                b"kind",
                &[0x6b],
                b"private-key",
                &[0x67],
                b"kms_key",
                &[0x61, b'k', 0x6a],
                b"ciphertext",
                &[0x41, 0x09],
            ]
            .concat()
        );
    }

    #[test]
    fn refuses_bad_blobs() {
        let encode = |wire: &Wire| codec::encode(wire).unwrap();
        let mut future = wire(&blob());
        future.v = 2;
        assert_eq!(
            KeyBlob::decode(&encode(&future)).unwrap_err(),
            KeyBlobError::UnsupportedVersion(2)
        );
        let mut unsorted = wire(&blob());
        unsorted.policy.reverse();
        assert!(KeyBlob::decode(&encode(&unsorted)).is_err());
        let mut owner = wire(&blob());
        owner.owner = Some("bad\nowner".into());
        assert!(KeyBlob::decode(&encode(&owner)).is_err());
        let mut empty = wire(&blob());
        empty.ciphertext.clear();
        assert!(KeyBlob::decode(&encode(&empty)).is_err());
        assert!(KeyBlob::decode(b"\xa0").is_err());
        assert!(KeyBlob::decode(&[0u8; MAX_KEY_BLOB_LEN + 1]).is_err());
        // Unknown fields are refused.
        let mut value: serde_cbor::Value = serde_cbor::from_slice(&blob().encode()).unwrap();
        if let serde_cbor::Value::Map(m) = &mut value {
            m.insert(
                serde_cbor::Value::Text("extra".into()),
                serde_cbor::Value::Bool(true),
            );
        }
        assert!(KeyBlob::decode(&serde_cbor::to_vec(&value).unwrap()).is_err());
        // A future version with a new shape still gets the precise error.
        if let serde_cbor::Value::Map(m) = &mut value {
            m.insert(
                serde_cbor::Value::Text("v".into()),
                serde_cbor::Value::Integer(3),
            );
        }
        assert_eq!(
            KeyBlob::decode(&serde_cbor::to_vec(&value).unwrap()).unwrap_err(),
            KeyBlobError::UnsupportedVersion(3)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(blob) = KeyBlob::decode(&bytes) {
                prop_assert_eq!(KeyBlob::decode(&blob.encode()).unwrap(), blob);
            }
        }
    }
}
