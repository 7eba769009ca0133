//! The emulated KMS operations, independent of the HTTP protocol that carries them.
//!
//! Like KMS where it matters:
//! - ciphertexts are authenticated (AES-256-GCM) and bound to the key and the exact encryption
//!   context: a changed byte, another context or another key gives `InvalidCiphertextException`;
//! - every operation is checked against the key's policy; with a `Recipient`, the attestation
//!   document is verified against the configured root first and its PCRs become the
//!   `kms:RecipientAttestation:*` condition values;
//! - with a `Recipient`, the plaintext is never returned: it is sealed to the document's public
//!   key as `CiphertextForRecipient`.
//!
//! Keys persist in the data directory, one owner-only JSON file each, so ciphertexts stay
//! decryptable across restarts.

use std::{
    collections::BTreeMap,
    fs,
    path::PathBuf,
    sync::RwLock,
    time::{Duration, SystemTime},
};

use aws_lc_rs::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand,
};
use nitro_signer_common::{
    attestation::{Expectations, RootOfTrust, Verifier},
    private_file,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{
    envelope,
    policy::{ConditionKey, Decision, KeyPolicy, RequestContext},
};

/// An encryption context: string pairs bound to a ciphertext.
pub type EncryptionContext = BTreeMap<String, String>;

/// KMS errors, by the exception names of the KMS API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// `NotFoundException`.
    #[error("{0}")]
    NotFound(String),
    /// `InvalidCiphertextException`: the ciphertext, key or encryption context do not match.
    #[error("")]
    InvalidCiphertext,
    /// `IncorrectKeyException`: the ciphertext is under another key than the one named.
    #[error("The key ID in the request does not identify a CMK that can perform this operation.")]
    IncorrectKey,
    /// `AccessDeniedException`: the key policy does not allow the request.
    #[error("{0}")]
    AccessDenied(String),
    /// `ValidationException`: a malformed parameter.
    #[error("{0}")]
    Validation(String),
    /// `KMSInternalException`.
    #[error("{0}")]
    Internal(String),
    /// `MalformedPolicyDocumentException`: the key policy is invalid or would lock its creator out.
    #[error("{0}")]
    MalformedPolicy(String),
    /// `SerializationException`: the request body is not the JSON the operation takes.
    #[error("{0}")]
    Serialization(String),
    /// `UnknownOperationException`: an `X-Amz-Target` the emulator does not serve.
    #[error("{0}")]
    UnknownOperation(String),
}

impl KmsError {
    /// The `__type` of the error in the KMS JSON protocol.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "NotFoundException",
            Self::InvalidCiphertext => "InvalidCiphertextException",
            Self::IncorrectKey => "IncorrectKeyException",
            Self::AccessDenied(_) => "AccessDeniedException",
            Self::Validation(_) => "ValidationException",
            Self::Internal(_) => "KMSInternalException",
            Self::MalformedPolicy(_) => "MalformedPolicyDocumentException",
            Self::Serialization(_) => "SerializationException",
            Self::UnknownOperation(_) => "UnknownOperationException",
        }
    }
}

fn internal(e: impl std::fmt::Display) -> KmsError {
    KmsError::Internal(e.to_string())
}

/// A `Recipient` parameter: the attestation document of the enclave to encrypt to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// COSE_Sign1 attestation document carrying the enclave's RSA public key.
    pub attestation_document: Vec<u8>,
}

/// Key metadata, as `DescribeKey` and `CreateKey` return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMetadata {
    /// The key id (a UUID).
    pub key_id: String,
    /// The key ARN.
    pub arn: String,
    /// The description given at creation.
    pub description: String,
    /// Seconds since the Unix epoch.
    pub creation_date: u64,
}

/// The answer to `Decrypt`, `GenerateDataKey` or `GenerateRandom`: the plaintext, or with a
/// `Recipient` the envelope sealed to it. `Debug` never shows the plaintext.
pub enum Secret {
    /// The plaintext (no recipient).
    Plaintext(Zeroizing<Vec<u8>>),
    /// `CiphertextForRecipient`.
    ForRecipient(Vec<u8>),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plaintext(p) => write!(f, "Plaintext(<{} bytes redacted>)", p.len()),
            Self::ForRecipient(e) => write!(f, "ForRecipient({} bytes)", e.len()),
        }
    }
}

/// The answer to `GenerateDataKey`.
#[derive(Debug)]
pub struct DataKey {
    /// The key ARN.
    pub key_arn: String,
    /// The data key encrypted under the KMS key.
    pub ciphertext_blob: Vec<u8>,
    /// The data key itself.
    pub secret: Secret,
}

/// What a key file holds.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoredKey {
    key_id: String,
    arn: String,
    description: String,
    creation_date: u64,
    policy: String,
    /// The 256-bit key, hex. The emulator's stand-in for an HSM.
    material: String,
}

struct Key {
    metadata: KeyMetadata,
    policy: KeyPolicy,
    cipher: LessSafeKey,
}

/// Where the emulated KMS says it is: the region and account in its key ARNs, and the region
/// that callers' SigV4 signatures must be scoped to; and who its callers are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsConfig {
    /// AWS region, e.g. `us-east-1`.
    pub region: String,
    /// AWS account id: 12 digits.
    pub account_id: String,
    /// The IAM principal (an ARN) that the emulator's one set of credentials stands for, as key
    /// policies see it. `None`: the account itself, `arn:aws:iam::ACCOUNT:root`, which every
    /// statement naming the account or `*` applies to.
    pub principal: Option<String>,
}

impl Default for KmsConfig {
    /// `us-east-1` and `111122223333` (the account of the AWS documentation's examples); callers
    /// are that account's root.
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            account_id: "111122223333".into(),
            principal: None,
        }
    }
}

impl KmsConfig {
    /// Checks that the region and account id have the shape AWS gives them, so that they can
    /// be put in ARNs and SigV4 scopes as they are.
    pub fn validate(&self) -> Result<(), KmsError> {
        let region_ok = !self.region.is_empty()
            && self.region.len() <= 32
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !self.region.starts_with('-')
            && !self.region.ends_with('-');
        if !region_ok {
            return Err(KmsError::Validation(format!(
                "region {:?} is not an AWS region name (like us-east-1)",
                self.region
            )));
        }
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(KmsError::Validation(format!(
                "account id {:?} is not 12 digits",
                self.account_id
            )));
        }
        if let Some(principal) = &self.principal {
            let ok = principal.starts_with("arn:")
                && principal.bytes().all(|b| b.is_ascii_graphic())
                && !principal.contains('*');
            if !ok {
                return Err(KmsError::Validation(format!(
                    "principal {principal:?} is not an ARN"
                )));
            }
        }
        Ok(())
    }

    /// The principal key policies are evaluated for.
    pub fn caller(&self) -> String {
        self.principal
            .clone()
            .unwrap_or_else(|| format!("arn:aws:iam::{}:root", self.account_id))
    }

    /// The ARN prefix of this region and account's keys.
    fn key_arn_prefix(&self) -> String {
        format!("arn:aws:kms:{}:{}:key/", self.region, self.account_id)
    }
}

/// The emulated KMS.
pub struct Kms {
    dir: PathBuf,
    config: KmsConfig,
    /// [`KmsConfig::caller`].
    caller: String,
    attestation_root: RootOfTrust,
    keys: RwLock<BTreeMap<String, Key>>,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Ciphertext format version.
const BLOB_VERSION: u8 = 1;
/// Length of a key id (a UUID in text form).
const KEY_ID_LEN: usize = 36;
/// Largest plaintext `Encrypt` takes.
const MAX_PLAINTEXT: usize = 4096;
/// How old an attestation document KMS accepts.
const MAX_ATTESTATION_AGE: Duration = Duration::from_secs(5 * 60);

fn new_key_id() -> Result<String, KmsError> {
    let mut b = [0u8; 16];
    rand::fill(&mut b).map_err(internal)?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

/// AAD binding a ciphertext to its key and exact encryption context.
fn aad(key_id: &str, context: &EncryptionContext) -> Vec<u8> {
    let mut out = b"nitro-signer-kms-emulator/v1\0".to_vec();
    out.extend_from_slice(key_id.as_bytes());
    for (k, v) in context {
        for part in [k, v] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

impl Key {
    fn from_stored(stored: StoredKey) -> Result<Self, KmsError> {
        let material =
            Zeroizing::new(hex::decode(&stored.material).map_err(|_| internal("bad key file"))?);
        let cipher = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &material).map_err(internal)?);
        let policy = KeyPolicy::parse(&stored.policy).map_err(internal)?;
        Ok(Self {
            metadata: KeyMetadata {
                key_id: stored.key_id,
                arn: stored.arn,
                description: stored.description,
                creation_date: stored.creation_date,
            },
            policy,
            cipher,
        })
    }

    fn authorize(
        &self,
        caller: &str,
        action: &str,
        context: &RequestContext,
    ) -> Result<(), KmsError> {
        // KMS's own wording, which tells an explicit deny from a missing allow.
        let why = match self.policy.decide(caller, action, context) {
            Decision::Allowed => return Ok(()),
            Decision::NotAllowed => {
                format!("because no resource-based policy allows the {action} action")
            }
            Decision::ExplicitDeny => "with an explicit deny in a resource-based policy".to_owned(),
        };
        Err(KmsError::AccessDenied(format!(
            "User: {caller} is not authorized to perform: {action} on resource: {} {why}",
            self.metadata.arn,
        )))
    }

    fn seal(&self, plaintext: &[u8], context: &EncryptionContext) -> Result<Vec<u8>, KmsError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).map_err(internal)?;
        let mut sealed = plaintext.to_vec();
        self.cipher
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(&self.metadata.key_id, context)),
                &mut sealed,
            )
            .map_err(internal)?;
        let mut blob = vec![BLOB_VERSION];
        blob.extend_from_slice(self.metadata.key_id.as_bytes());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }
}

/// The key id in a ciphertext blob's clear header, if it has the shape of one.
pub(crate) fn ciphertext_key_id(blob: &[u8]) -> Option<&str> {
    split_blob(blob)
        .ok()
        .map(|(key_id, _, _)| key_id)
        .filter(|key_id| is_key_id(key_id))
}

/// Whether `id` is a key id: a UUID in text form.
fn is_key_id(id: &str) -> bool {
    id.len() == KEY_ID_LEN
        && id.bytes().enumerate().all(|(i, b)| {
            if [8, 13, 18, 23].contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// Splits a ciphertext blob into key id, nonce and sealed bytes.
fn split_blob(blob: &[u8]) -> Result<(&str, [u8; NONCE_LEN], &[u8]), KmsError> {
    let (&version, rest) = blob.split_first().ok_or(KmsError::InvalidCiphertext)?;
    if version != BLOB_VERSION {
        return Err(KmsError::InvalidCiphertext);
    }
    let (key_id, rest) = rest
        .split_at_checked(KEY_ID_LEN)
        .ok_or(KmsError::InvalidCiphertext)?;
    let key_id = std::str::from_utf8(key_id).map_err(|_| KmsError::InvalidCiphertext)?;
    let (nonce, sealed) = rest
        .split_at_checked(NONCE_LEN)
        .ok_or(KmsError::InvalidCiphertext)?;
    let nonce = nonce.try_into().map_err(|_| KmsError::InvalidCiphertext)?;
    Ok((key_id, nonce, sealed))
}

impl Kms {
    /// Opens (or creates) the emulator's state in `dir` with the default region and account
    /// ([`KmsConfig::default`]). Recipients' attestation documents must chain to
    /// `attestation_root`.
    pub fn open(dir: impl Into<PathBuf>, attestation_root: RootOfTrust) -> Result<Self, KmsError> {
        Self::open_with(dir, attestation_root, KmsConfig::default())
    }

    /// Opens (or creates) the emulator's state in `dir` as the KMS of `config`'s region and
    /// account. Recipients' attestation documents must chain to `attestation_root`.
    ///
    /// Keys are regional, as in KMS: a data directory whose keys were created under another
    /// region or account is refused rather than served under ARNs that would not match.
    pub fn open_with(
        dir: impl Into<PathBuf>,
        attestation_root: RootOfTrust,
        config: KmsConfig,
    ) -> Result<Self, KmsError> {
        config.validate()?;
        let prefix = config.key_arn_prefix();
        let dir = dir.into();
        let keys_dir = dir.join("keys");
        private_file::create_private_dir(&dir).map_err(internal)?;
        private_file::create_private_dir(&keys_dir).map_err(internal)?;
        let mut keys = BTreeMap::new();
        for entry in fs::read_dir(&keys_dir).map_err(internal)? {
            let path = entry.map_err(internal)?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = Zeroizing::new(fs::read_to_string(&path).map_err(internal)?);
                let stored: StoredKey = serde_json::from_str(&text).map_err(internal)?;
                let key = Key::from_stored(stored)?;
                if key.metadata.arn.strip_prefix(prefix.as_str()) != Some(&key.metadata.key_id) {
                    return Err(KmsError::Internal(format!(
                        "{} holds key {}, which is not a key of region {} and account {}: start \
                         with the region and account it was created with, or another data \
                         directory",
                        dir.display(),
                        key.metadata.arn,
                        config.region,
                        config.account_id
                    )));
                }
                keys.insert(key.metadata.key_id.clone(), key);
            }
        }
        Ok(Self {
            dir,
            caller: config.caller(),
            config,
            attestation_root,
            keys: RwLock::new(keys),
        })
    }

    /// The region and account this KMS serves.
    pub fn config(&self) -> &KmsConfig {
        &self.config
    }

    /// `CreateKey`: a symmetric encryption key with `policy` (KMS's default policy if `None`).
    ///
    /// Like KMS, a policy that would not let its creator (the caller) change it later (no
    /// `kms:PutKeyPolicy`) is refused unless `bypass_lockout_check` is set.
    pub fn create_key(
        &self,
        description: &str,
        policy: Option<&str>,
        bypass_lockout_check: bool,
    ) -> Result<KeyMetadata, KmsError> {
        let policy_source = match policy {
            Some(p) => {
                let parsed =
                    KeyPolicy::parse(p).map_err(|e| KmsError::MalformedPolicy(e.to_string()))?;
                if !bypass_lockout_check
                    && !parsed.allows(&self.caller, "kms:PutKeyPolicy", &RequestContext::new())
                {
                    return Err(KmsError::MalformedPolicy(
                        "The new key policy will not allow you to update the key policy in the \
                         future."
                            .into(),
                    ));
                }
                p.to_owned()
            }
            None => KeyPolicy::allow_all().source().to_owned(),
        };
        let key_id = new_key_id()?;
        let mut material = Zeroizing::new([0u8; 32]);
        rand::fill(material.as_mut_slice()).map_err(internal)?;
        let stored = StoredKey {
            arn: format!("{}{key_id}", self.config.key_arn_prefix()),
            key_id: key_id.clone(),
            description: description.to_owned(),
            creation_date: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_err(internal)?
                .as_secs(),
            policy: policy_source,
            material: hex::encode(material.as_slice()),
        };
        let json = Zeroizing::new(serde_json::to_vec_pretty(&stored).map_err(internal)?);
        private_file::write_private(&self.dir.join("keys").join(format!("{key_id}.json")), &json)
            .map_err(internal)?;
        let key = Key::from_stored(stored)?;
        let metadata = key.metadata.clone();
        self.keys.write().map_err(internal)?.insert(key_id, key);
        Ok(metadata)
    }

    /// The key id named by `key_id`: a bare key id, or exactly this emulator's key ARN for it.
    /// Like KMS, an ARN of another region or account names another key; aliases are not
    /// supported.
    fn resolve_key_id<'k>(&self, key_id: &'k str) -> Result<&'k str, KmsError> {
        let prefix = self.config.key_arn_prefix();
        let id = key_id.strip_prefix(prefix.as_str()).unwrap_or(key_id);
        if !is_key_id(id) {
            let why = if key_id.starts_with("alias/") || key_id.contains(":alias/") {
                "aliases are not supported by the emulator"
            } else {
                "not a key id or a key ARN of this region and account"
            };
            return Err(KmsError::NotFound(format!(
                "Key '{key_id}' does not exist ({why})"
            )));
        }
        Ok(id)
    }

    /// Runs `f` with the key named by `key_id` (an id or an ARN).
    fn with_key<T>(
        &self,
        key_id: &str,
        f: impl FnOnce(&Key) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        let id = self.resolve_key_id(key_id)?;
        let keys = self.keys.read().map_err(internal)?;
        let key = keys
            .get(id)
            .ok_or_else(|| KmsError::NotFound(format!("Key '{key_id}' does not exist")))?;
        f(key)
    }

    /// `DescribeKey`.
    pub fn describe_key(&self, key_id: &str) -> Result<KeyMetadata, KmsError> {
        self.with_key(key_id, |key| {
            key.authorize(&self.caller, "kms:DescribeKey", &RequestContext::new())?;
            Ok(key.metadata.clone())
        })
    }

    /// `ListKeys`.
    pub fn list_keys(&self) -> Result<Vec<KeyMetadata>, KmsError> {
        Ok(self
            .keys
            .read()
            .map_err(internal)?
            .values()
            .map(|k| k.metadata.clone())
            .collect())
    }

    /// Verifies a recipient's document and returns its condition values and public key.
    fn recipient(&self, recipient: &Recipient) -> Result<(RequestContext, Vec<u8>), KmsError> {
        // KMS itself accepts debug-mode documents; key policies pinning PCRs refuse them.
        let expectations = Expectations {
            allow_debug: true,
            max_age: Some(MAX_ATTESTATION_AGE),
            ..Expectations::default()
        };
        let verified = Verifier::dangerous_unpinned(self.attestation_root, expectations)
            .verify(&recipient.attestation_document, SystemTime::now())
            .map_err(|e| KmsError::Validation(format!("Invalid attestation document: {e}")))?;
        let document = verified.document();
        let public_key = document
            .public_key
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                KmsError::Validation("The attestation document has no public key".into())
            })?;
        let mut context: RequestContext = document
            .pcrs
            .iter()
            .map(|(i, pcr)| (ConditionKey::Pcr(*i), hex::encode(pcr)))
            .collect();
        if let Some(pcr0) = document.pcrs.get(&0) {
            context.insert(ConditionKey::ImageSha384, hex::encode(pcr0));
        }
        Ok((context, public_key))
    }

    fn deliver(
        plaintext: Zeroizing<Vec<u8>>,
        recipient_key: Option<&[u8]>,
    ) -> Result<Secret, KmsError> {
        match recipient_key {
            Some(spki) => envelope::seal(spki, &plaintext)
                .map(Secret::ForRecipient)
                .map_err(|e| KmsError::Validation(format!("Recipient public key: {e}"))),
            None => Ok(Secret::Plaintext(plaintext)),
        }
    }

    fn request_context(
        &self,
        recipient: Option<&Recipient>,
    ) -> Result<(RequestContext, Option<Vec<u8>>), KmsError> {
        match recipient {
            Some(r) => self.recipient(r).map(|(c, k)| (c, Some(k))),
            None => Ok((RequestContext::new(), None)),
        }
    }

    /// `Encrypt`.
    pub fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<(String, Vec<u8>), KmsError> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(KmsError::Validation(format!(
                "Plaintext must be 1 to {MAX_PLAINTEXT} bytes"
            )));
        }
        self.with_key(key_id, |key| {
            key.authorize(
                &self.caller,
                "kms:Encrypt",
                &with_context(RequestContext::new(), context),
            )?;
            Ok((key.metadata.arn.clone(), key.seal(plaintext, context)?))
        })
    }

    /// `Decrypt`. `key_id`, when given, must be the ciphertext's key.
    pub fn decrypt(
        &self,
        blob: &[u8],
        context: &EncryptionContext,
        key_id: Option<&str>,
        recipient: Option<&Recipient>,
    ) -> Result<(String, Secret), KmsError> {
        let (blob_key_id, nonce, sealed) = split_blob(blob)?;
        if let Some(named) = key_id {
            let named = self
                .resolve_key_id(named)
                .map_err(|_| KmsError::IncorrectKey)?;
            if named != blob_key_id {
                return Err(KmsError::IncorrectKey);
            }
        }
        let (conditions, recipient_key) = self.request_context(recipient)?;
        self.with_key(blob_key_id, |key| {
            key.authorize(
                &self.caller,
                "kms:Decrypt",
                &with_context(conditions, context),
            )?;
            let mut buf = Zeroizing::new(sealed.to_vec());
            let plaintext = key
                .cipher
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad(&key.metadata.key_id, context)),
                    &mut buf,
                )
                .map_err(|_| KmsError::InvalidCiphertext)?;
            let plaintext = Zeroizing::new(plaintext.to_vec());
            Ok((
                key.metadata.arn.clone(),
                Self::deliver(plaintext, recipient_key.as_deref())?,
            ))
        })
    }

    /// `GenerateDataKey`: `number_of_bytes` random bytes (1 to 1024), encrypted under the key.
    pub fn generate_data_key(
        &self,
        key_id: &str,
        number_of_bytes: usize,
        context: &EncryptionContext,
        recipient: Option<&Recipient>,
    ) -> Result<DataKey, KmsError> {
        if !(1..=1024).contains(&number_of_bytes) {
            return Err(KmsError::Validation(
                "NumberOfBytes must be 1 to 1024".into(),
            ));
        }
        let (conditions, recipient_key) = self.request_context(recipient)?;
        self.with_key(key_id, |key| {
            key.authorize(
                &self.caller,
                "kms:GenerateDataKey",
                &with_context(conditions, context),
            )?;
            let mut plaintext = Zeroizing::new(vec![0u8; number_of_bytes]);
            rand::fill(&mut plaintext).map_err(internal)?;
            let ciphertext_blob = key.seal(&plaintext, context)?;
            Ok(DataKey {
                key_arn: key.metadata.arn.clone(),
                ciphertext_blob,
                secret: Self::deliver(plaintext, recipient_key.as_deref())?,
            })
        })
    }

    /// `GenerateRandom`: 1 to 1024 random bytes.
    pub fn generate_random(
        &self,
        number_of_bytes: usize,
        recipient: Option<&Recipient>,
    ) -> Result<Secret, KmsError> {
        if !(1..=1024).contains(&number_of_bytes) {
            return Err(KmsError::Validation(
                "NumberOfBytes must be 1 to 1024".into(),
            ));
        }
        // GenerateRandom has no key and so no key policy; a recipient is still verified.
        let (_, recipient_key) = self.request_context(recipient)?;
        let mut random = Zeroizing::new(vec![0u8; number_of_bytes]);
        rand::fill(&mut random).map_err(internal)?;
        Self::deliver(random, recipient_key.as_deref())
    }
}

/// `conditions` plus the request's encryption context, for the policy's
/// `kms:EncryptionContext:<key>` and `kms:EncryptionContextKeys` conditions.
fn with_context(mut conditions: RequestContext, context: &EncryptionContext) -> RequestContext {
    conditions.extend(
        context
            .iter()
            .map(|(key, value)| (ConditionKey::EncryptionContext(key.clone()), value.clone())),
    );
    conditions
}
