//! The KMS client: `Decrypt` and `GenerateDataKey` with `Recipient`, each carrying a fresh
//! attestation document.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_sdk_kms::{
    Client,
    config::{BehaviorVersion, IdentityCache, Region, SharedHttpClient, timeout::TimeoutConfig},
    error::{ProvideErrorMetadata, SdkError},
    primitives::Blob,
    types::{KeyEncryptionMechanism, RecipientInfo},
};
use nitro_signer_common::key_blob::{KeyBlob, KeyKind, KeyMetadata};
use tracing::warn;
use zeroize::Zeroizing;

use super::{
    KmsError, Operation,
    credentials::{CredentialStore, SharedStore},
    error::{classify, printable},
};
use crate::{
    keys::{KeyMaterial, MasterSeed, P256PrivateKey, PrivateKey},
    nsm::{AttestationRequest, Nsm},
    recipient::RecipientKey,
    sealing,
};

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
    /// [`super::transport::KmsTransport::http_client`], which reaches AWS KMS through the
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
            .map_err(|error| {
                warn!(%error, "the NSM could not attest for a KMS call");
                KmsError::Attestation
            })?;
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

    /// [`classify`], except that a request that could not be built for want of valid
    /// credentials (they expired since [`Self::check_credentials`]) says so.
    fn classify<E, R>(
        &self,
        operation: Operation,
        started: Instant,
        error: SdkError<E, R>,
    ) -> KmsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        match classify(operation, started.elapsed(), &error) {
            KmsError::RequestFailed if !self.credentials.is_valid() => KmsError::NoCredentials,
            classified => classified,
        }
    }

    fn open(&self, envelope: Option<&Blob>) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let envelope = envelope.ok_or(KmsError::BadResponse("it has no CiphertextForRecipient"))?;
        self.recipient.open(envelope.as_ref()).map_err(|error| {
            warn!(%error, "KMS's CiphertextForRecipient does not open");
            KmsError::BadResponse("its CiphertextForRecipient does not open with the enclave's key")
        })
    }

    /// Decrypts `blob` through KMS and returns its secret.
    pub async fn decrypt(&self, blob: &KeyBlob) -> Result<KeyMaterial, KmsError> {
        self.check_credentials()?;
        let started = Instant::now();
        let answer = self
            .client
            .decrypt()
            .key_id(blob.metadata().kms_key())
            .ciphertext_blob(Blob::new(blob.ciphertext()))
            .set_encryption_context(Some(HashMap::from_iter(
                blob.metadata().encryption_context(),
            )))
            .recipient(self.recipient_info()?)
            .send()
            .await
            .map_err(|error| self.classify(Operation::Decrypt, started, error))?;
        // KMS names the key that decrypted; it must be the blob's (an allowed key, checked by
        // the service): anything else means the request did not reach the key the enclave
        // trusts, whatever the answer holds.
        check_answered_key(blob.metadata().kms_key(), answer.key_id(), "Decrypt")?;
        let plaintext = self.open(answer.ciphertext_for_recipient())?;
        match blob.sealed() {
            // The plaintext is the data key the secret is sealed under.
            Some(sealed) => {
                let context = blob.metadata().encryption_context();
                let secret = sealing::open(&plaintext, &context, sealed).map_err(|error| {
                    warn!(%error, "a sealed key blob does not open");
                    KmsError::BadResponse("the blob's sealed secret does not open")
                })?;
                material(blob.metadata().kind(), &secret)
            }
            None => material(blob.metadata().kind(), &plaintext),
        }
    }

    /// A fresh 32-byte data key under `metadata`'s KMS key and encryption context: KMS
    /// `GenerateDataKey` with `Recipient`, so its plaintext exists only inside this enclave. The
    /// plaintext and its `CiphertextBlob`.
    async fn data_key(
        &self,
        metadata: &KeyMetadata,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), KmsError> {
        self.check_credentials()?;
        let kms_key = metadata.kms_key();
        let len = i32::try_from(MasterSeed::LEN).map_err(|_| KmsError::RequestFailed)?;
        let started = Instant::now();
        let answer = self
            .client
            .generate_data_key()
            .key_id(kms_key)
            .number_of_bytes(len)
            .set_encryption_context(Some(HashMap::from_iter(metadata.encryption_context())))
            .recipient(self.recipient_info()?)
            .send()
            .await
            .map_err(|error| self.classify(Operation::GenerateDataKey, started, error))?;
        let plaintext = self.open(answer.ciphertext_for_recipient())?;
        let ciphertext = answer
            .ciphertext_blob()
            .ok_or(KmsError::BadResponse("it has no CiphertextBlob"))?;
        // The key is configured as a full ARN (see `is_key_arn`); an answer for any other key
        // means the request did not reach the key the enclave trusts.
        check_answered_key(kms_key, answer.key_id(), "GenerateDataKey")?;
        Ok((plaintext, ciphertext.as_ref().to_vec()))
    }

    /// Generates a new master seed under `metadata`'s KMS key, bound to `metadata`: KMS
    /// `GenerateDataKey` with `Recipient`, so the seed exists in plaintext only inside this
    /// enclave.
    pub async fn generate_seed(&self, metadata: KeyMetadata) -> Result<GeneratedKey, KmsError> {
        if metadata.kind() != KeyKind::Seed {
            return Err(KmsError::RequestFailed);
        }
        let (plaintext, ciphertext) = self.data_key(&metadata).await?;
        let blob = KeyBlob::new(metadata, ciphertext).map_err(|error| {
            warn!(%error, "KMS's CiphertextBlob does not fit a key blob");
            KmsError::BadResponse("its CiphertextBlob does not fit a key blob")
        })?;
        Ok(GeneratedKey {
            blob,
            material: material(KeyKind::Seed, &plaintext)?,
        })
    }

    /// `material`'s secret in a new blob under `metadata` (a key moved to a new policy): a fresh
    /// data key from KMS (`GenerateDataKey` with `Recipient`, bound to `metadata`'s encryption
    /// context), and the secret sealed under it inside the enclave (`crate::sealing`). No
    /// `kms:Encrypt`, which the parent's role would then need too.
    pub async fn seal(
        &self,
        metadata: KeyMetadata,
        material: &KeyMaterial,
    ) -> Result<KeyBlob, KmsError> {
        if metadata.kind() != material.kind() {
            return Err(KmsError::RequestFailed);
        }
        let (data_key, ciphertext) = self.data_key(&metadata).await?;
        let sealed = sealing::seal(
            &data_key,
            &metadata.encryption_context(),
            &material.secret_bytes(),
        )
        .map_err(|error| {
            warn!(%error, "sealing a key under a new data key failed");
            KmsError::RequestFailed
        })?;
        KeyBlob::new_sealed(metadata, ciphertext, sealed).map_err(|error| {
            warn!(%error, "KMS's CiphertextBlob does not fit a key blob");
            KmsError::BadResponse("its CiphertextBlob does not fit a key blob")
        })
    }
}

/// Refuses a KMS answer that names another key than `expected` (a full ARN), or none.
fn check_answered_key(
    expected: &str,
    answered: Option<&str>,
    operation: &'static str,
) -> Result<(), KmsError> {
    match answered {
        Some(answered) if answered == expected => Ok(()),
        answered => {
            warn!(
                expected,
                answered = %printable(answered.unwrap_or("<none>")),
                operation,
                "KMS answered for another key"
            );
            Err(KmsError::WrongKey {
                configured: expected.to_owned(),
                answered: answered.unwrap_or_default().to_owned(),
            })
        }
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
        // The error says what is wrong with the plaintext (its length, or not a valid scalar),
        // never what it is.
        warn!(kind = kind.as_str(), %error, "KMS's plaintext is not a key");
        KmsError::BadResponse("the decrypted secret is not a valid key of the blob's kind")
    };
    match kind {
        KeyKind::Seed => MasterSeed::from_slice(plaintext)
            .map(KeyMaterial::Seed)
            .map_err(bad),
        KeyKind::PrivateKey => PrivateKey::from_slice(plaintext)
            .map(KeyMaterial::Imported)
            .map_err(bad),
        KeyKind::P256PrivateKey => P256PrivateKey::from_slice(plaintext)
            .map(KeyMaterial::ImportedP256)
            .map_err(bad),
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
}
