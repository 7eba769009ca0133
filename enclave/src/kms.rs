//! The enclave's KMS client: `Decrypt` and `GenerateDataKey` with `Recipient`, through the real
//! `aws-sdk-kms`.
//!
//! Every call carries a fresh attestation document whose `public_key` is the enclave's RSA
//! recipient key, so KMS checks the key policy's attestation conditions and answers with
//! `CiphertextForRecipient`, which only this enclave can open. The plaintext never crosses the
//! parent instance. Which KMS endpoint the client reaches is configuration: AWS KMS in
//! production, the emulator in simulated mode; the code path is the same.
//!
//! AWS credentials come from the parent ([`CredentialStore::set`]); they are the instance role's,
//! not enclave secrets, but they are still zeroized and never logged.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_credential_types::provider::{
    ProvideCredentials, error::CredentialsError, future::ProvideCredentials as CredentialsFuture,
};
use aws_sdk_kms::{
    Client,
    config::{BehaviorVersion, IdentityCache, Region, SharedHttpClient, timeout::TimeoutConfig},
    error::{ProvideErrorMetadata, SdkError},
    primitives::Blob,
    types::{KeyEncryptionMechanism, RecipientInfo},
};
use nitro_signer_common::{
    key_blob::{KeyBlob, KeyKind},
    protocol::AwsCredentials,
};
use zeroize::Zeroizing;

use crate::{
    keys::{KeyMaterial, MasterSeed, PrivateKey},
    nsm::{AttestationRequest, Nsm},
    recipient::RecipientKey,
};

/// Why a KMS operation failed. Messages come from KMS or describe the failure; they never contain
/// plaintexts or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// No AWS credentials, or only expired ones.
    #[error("no valid AWS credentials; the parent proxy sends them when it connects")]
    NoCredentials,
    /// KMS refused access: key policy, attestation conditions, or credentials.
    #[error("KMS denied access: {0}")]
    AccessDenied(String),
    /// KMS refused the ciphertext: altered, from another key, or another encryption context.
    #[error("KMS refused the ciphertext: {0}")]
    InvalidCiphertext(String),
    /// KMS could not be reached, timed out, or failed.
    #[error("KMS unavailable: {0}")]
    Unavailable(String),
    /// KMS answered something the enclave cannot use.
    #[error("unusable KMS answer: {0}")]
    BadResponse(String),
    /// The NSM could not attest.
    #[error("attestation failed: {0}")]
    Attestation(String),
    /// Too many KMS calls are in flight in this enclave; retry later.
    #[error("too many KMS calls in flight; retry later")]
    Busy,
    /// The parent sent unusable credentials.
    #[error("credentials: {0}")]
    InvalidCredentials(String),
    /// KMS answered for another key than the one asked for.
    #[error("KMS answered for key {answered}, not the configured {configured}")]
    WrongKey {
        /// The configured key ARN.
        configured: String,
        /// The key KMS named.
        answered: String,
    },
}

/// The AWS credentials the parent sent, for the SDK.
#[derive(Debug, Default)]
pub struct CredentialStore(RwLock<Option<aws_credential_types::Credentials>>);

impl CredentialStore {
    /// Stores `credentials`, unless they expire before the ones already stored, which are still
    /// valid (an older refresh arriving late must not replace a newer one). Refuses an expiry
    /// that is not a representable time.
    pub fn set(&self, credentials: &AwsCredentials) -> Result<(), KmsError> {
        let expiry = match credentials.expires_at {
            None => None,
            Some(secs) => Some(
                UNIX_EPOCH
                    .checked_add(Duration::from_secs(secs))
                    .filter(|_| i64::try_from(secs).is_ok())
                    .ok_or_else(|| {
                        KmsError::InvalidCredentials(format!("expiry {secs} is out of range"))
                    })?,
            ),
        };
        let sdk = aws_credential_types::Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.as_str(),
            credentials.session_token.as_ref().map(|t| t.to_string()),
            expiry,
            "nitro-signer-parent",
        );
        let mut slot = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = SystemTime::now();
        let keep_current = match (slot.as_ref().and_then(|c| c.expiry()), expiry) {
            (Some(current), Some(new)) => new < current && current > now,
            _ => false,
        };
        if !keep_current {
            *slot = Some(sdk);
        }
        Ok(())
    }

    /// Whether unexpired credentials are stored.
    pub fn is_valid(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> Option<aws_credential_types::Credentials> {
        let slot = self.0.read().ok()?;
        let credentials = slot.as_ref()?;
        match credentials.expiry() {
            Some(expiry) if expiry <= SystemTime::now() => None,
            _ => Some(credentials.clone()),
        }
    }
}

#[derive(Debug)]
struct SharedStore(Arc<CredentialStore>);

impl ProvideCredentials for SharedStore {
    fn provide_credentials<'a>(&'a self) -> CredentialsFuture<'a>
    where
        Self: 'a,
    {
        CredentialsFuture::ready(
            self.0.current().ok_or_else(|| {
                CredentialsError::not_loaded("no valid credentials from the parent")
            }),
        )
    }
}

/// Where and how to reach KMS.
#[derive(Debug, Clone)]
pub struct KmsSettings {
    /// The AWS region, e.g. `us-east-1`.
    pub region: String,
    /// The endpoint URL: the KMS emulator in simulated mode. `None` means the region's AWS
    /// endpoint.
    pub endpoint: Option<String>,
    /// Time limit of one attempt; the SDK retries failed attempts with backoff.
    pub attempt_timeout: Duration,
    /// Time limit of a whole operation, retries included.
    pub operation_timeout: Duration,
    /// The HTTP client to reach KMS with. `None` means the SDK's default client (system DNS and
    /// system CA roots): fine for the emulator in simulated mode. Inside a Nitro Enclave, use
    /// [`crate::kms_transport::KmsTransport::http_client`], which reaches AWS KMS through the
    /// parent's vsock-proxy with TLS ending in the enclave.
    pub http_client: Option<SharedHttpClient>,
}

/// A new key, encrypted by KMS.
#[derive(Debug)]
pub struct GeneratedKey {
    /// The blob to hand back.
    pub blob: KeyBlob,
    /// The decrypted seed, to cache.
    pub material: KeyMaterial,
}

/// The enclave's KMS client.
#[derive(Debug)]
pub struct Kms {
    client: Client,
    credentials: Arc<CredentialStore>,
    recipient: RecipientKey,
    nsm: Arc<dyn Nsm>,
}

impl Kms {
    /// A client for `settings`, attesting with `nsm` and opening answers with `recipient`.
    pub fn new(settings: &KmsSettings, nsm: Arc<dyn Nsm>, recipient: RecipientKey) -> Self {
        let credentials = Arc::new(CredentialStore::default());
        let mut config = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(SharedStore(Arc::clone(&credentials)))
            // Credentials change when the parent sends new ones; always ask the store.
            .identity_cache(IdentityCache::no_cache())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(settings.attempt_timeout)
                    .operation_timeout(settings.operation_timeout)
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        if let Some(http_client) = &settings.http_client {
            config = config.http_client(http_client.clone());
        }
        Self {
            client: Client::from_conf(config.build()),
            credentials,
            recipient,
            nsm,
        }
    }

    /// The credentials the SDK uses.
    pub fn credentials(&self) -> &CredentialStore {
        &self.credentials
    }

    fn recipient_info(&self) -> Result<RecipientInfo, KmsError> {
        let document = self
            .nsm
            .attest(AttestationRequest {
                public_key: Some(self.recipient.spki_der()),
                ..Default::default()
            })
            .map_err(|error| KmsError::Attestation(error.to_string()))?;
        Ok(RecipientInfo::builder()
            .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
            .attestation_document(Blob::new(document))
            .build())
    }

    fn check_credentials(&self) -> Result<(), KmsError> {
        if self.credentials.is_valid() {
            Ok(())
        } else {
            Err(KmsError::NoCredentials)
        }
    }

    fn open(&self, envelope: Option<&Blob>) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let envelope = envelope.ok_or_else(|| {
            KmsError::BadResponse("no CiphertextForRecipient in the answer".into())
        })?;
        self.recipient
            .open(envelope.as_ref())
            .map_err(|error| KmsError::BadResponse(error.to_string()))
    }

    /// Decrypts `blob` through KMS and returns its secret.
    pub async fn decrypt(&self, blob: &KeyBlob) -> Result<KeyMaterial, KmsError> {
        self.check_credentials()?;
        let answer = self
            .client
            .decrypt()
            .key_id(blob.kms_key())
            .ciphertext_blob(Blob::new(blob.ciphertext()))
            .set_encryption_context(Some(HashMap::from_iter(blob.encryption_context())))
            .recipient(self.recipient_info()?)
            .send()
            .await
            .map_err(classify)?;
        let plaintext = self.open(answer.ciphertext_for_recipient())?;
        material(blob.kind(), &plaintext)
    }

    /// Generates a new master seed under `kms_key`: KMS `GenerateDataKey` with `Recipient`, so
    /// the seed exists in plaintext only inside this enclave.
    pub async fn generate_seed(
        &self,
        kms_key: &str,
        owner: Option<String>,
    ) -> Result<GeneratedKey, KmsError> {
        self.check_credentials()?;
        // The encryption context depends only on the metadata; build it from a blob shell.
        let shell = KeyBlob::new(KeyKind::Seed, kms_key, owner.clone(), Vec::new(), vec![0])
            .map_err(|error| KmsError::BadResponse(error.to_string()))?;
        let answer = self
            .client
            .generate_data_key()
            .key_id(kms_key)
            .number_of_bytes(
                i32::try_from(MasterSeed::LEN).map_err(|_| KmsError::BadResponse("size".into()))?,
            )
            .set_encryption_context(Some(HashMap::from_iter(shell.encryption_context())))
            .recipient(self.recipient_info()?)
            .send()
            .await
            .map_err(classify)?;
        let plaintext = self.open(answer.ciphertext_for_recipient())?;
        let ciphertext = answer
            .ciphertext_blob()
            .ok_or_else(|| KmsError::BadResponse("no CiphertextBlob in the answer".into()))?;
        // The key is configured as a full ARN (see `is_key_arn`); an answer for any other key
        // means the request did not reach the key the enclave trusts.
        if let Some(answered) = answer.key_id()
            && answered != kms_key
        {
            return Err(KmsError::WrongKey {
                configured: kms_key.to_owned(),
                answered: answered.to_owned(),
            });
        }
        let blob = KeyBlob::new(
            KeyKind::Seed,
            kms_key,
            owner,
            Vec::new(),
            ciphertext.as_ref().to_vec(),
        )
        .map_err(|error| KmsError::BadResponse(error.to_string()))?;
        Ok(GeneratedKey {
            blob,
            material: material(KeyKind::Seed, &plaintext)?,
        })
    }
}

/// Whether `key` is a full KMS key ARN (`arn:PARTITION:kms:REGION:ACCOUNT:key/ID`).
///
/// The key new seeds are generated under must be named this way: KMS resolves bare key ids and
/// aliases in the account of the credentials, which the parent chooses, so a hostile parent could
/// otherwise point generation at a key of its own that it can decrypt without attestation.
pub fn is_key_arn(key: &str) -> bool {
    let parts: Vec<&str> = key.splitn(6, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", partition, "kms", region, account, resource]
            if !partition.is_empty()
                && !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("key/").is_some_and(|id| !id.is_empty() && !id.contains('/'))
    )
}

fn material(kind: KeyKind, plaintext: &[u8]) -> Result<KeyMaterial, KmsError> {
    let bad = |error: crate::KeyError| {
        KmsError::BadResponse(format!("{} plaintext: {error}", kind.as_str()))
    };
    match kind {
        KeyKind::Seed => MasterSeed::from_slice(plaintext)
            .map(KeyMaterial::Seed)
            .map_err(bad),
        KeyKind::PrivateKey => PrivateKey::from_slice(plaintext)
            .map(KeyMaterial::Imported)
            .map_err(bad),
    }
}

fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    error: SdkError<E, R>,
) -> KmsError {
    match &error {
        SdkError::ServiceError(service) => {
            let error = service.err();
            let message = format!(
                "{}: {}",
                error.code().unwrap_or("UnknownError"),
                error.message().unwrap_or("no message")
            );
            match error.code() {
                Some("AccessDeniedException") => KmsError::AccessDenied(message),
                Some(
                    "InvalidCiphertextException"
                    | "IncorrectKeyException"
                    | "InvalidKeyUsageException"
                    | "NotFoundException",
                ) => KmsError::InvalidCiphertext(message),
                // The parent's credentials are wrong: a server-side problem, not the caller's.
                Some("UnrecognizedClientException" | "InvalidSignatureException") => {
                    KmsError::Unavailable(message)
                }
                _ => KmsError::Unavailable(message),
            }
        }
        SdkError::TimeoutError(_) => KmsError::Unavailable("timed out".into()),
        SdkError::DispatchFailure(failure) => {
            KmsError::Unavailable(format!("request not delivered: {failure:?}"))
        }
        other => KmsError::Unavailable(format!("{other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_full_key_arns_name_the_generation_key() {
        assert!(is_key_arn(
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        ));
        assert!(is_key_arn("arn:aws-cn:kms:cn-north-1:111122223333:key/k"));
        for bad in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/tenant",
            "arn:aws:kms:us-east-1:111122223333:alias/tenant",
            "arn:aws:kms:us-east-1:1111:key/k",
            "arn:aws:kms:us-east-1:111122223333:key/",
            "arn:aws:kms::111122223333:key/k",
            "arn:aws:s3:us-east-1:111122223333:key/k",
        ] {
            assert!(!is_key_arn(bad), "{bad}");
        }
    }

    #[test]
    fn credentials_from_a_late_refresh_do_not_replace_newer_ones() {
        let store = CredentialStore::default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let credentials = |id: &str, expires_at| AwsCredentials {
            access_key_id: id.into(),
            secret_access_key: Zeroizing::new("secret".into()),
            session_token: None,
            expires_at,
        };
        store.set(&credentials("newer", Some(now + 3600))).unwrap();
        store.set(&credentials("older", Some(now + 600))).unwrap();
        assert_eq!(store.current().unwrap().access_key_id(), "newer");
        store.set(&credentials("newest", Some(now + 7200))).unwrap();
        assert_eq!(store.current().unwrap().access_key_id(), "newest");
        assert!(store.set(&credentials("bad", Some(u64::MAX))).is_err());
        assert_eq!(store.current().unwrap().access_key_id(), "newest");
    }
}
