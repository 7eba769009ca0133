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
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
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
use tracing::warn;
use zeroize::Zeroizing;

use crate::{
    keys::{KeyMaterial, MasterSeed, PrivateKey},
    nsm::{AttestationRequest, Nsm},
    recipient::RecipientKey,
};

/// Why a KMS operation failed.
///
/// Every message is a fixed sentence (bounded; at most a sanitized KMS error code and a duration
/// are filled in) that says what happened and what to check. None repeats text from KMS's
/// answer: KMS's messages name the instance role, the account and key ARNs, which the HTTP
/// caller has no need to see. The full SDK error, KMS's message included, is logged in the
/// enclave at `warn` level when the call fails (SDK errors carry no key material and no
/// credentials: see `classify` in this module's source for why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KmsError {
    /// No AWS credentials, or only expired ones.
    #[error("no valid AWS credentials; the parent proxy sends them when it connects")]
    NoCredentials,
    /// KMS refused access to the key for this operation: the key policy (its attestation
    /// conditions) or the instance role's permissions.
    #[error(
        "KMS denied {0}: check the key policy's attestation conditions (the PCRs of this enclave \
         image) and the instance role's permissions on the key"
    )]
    AccessDenied(Operation),
    /// KMS refused the key blob's ciphertext.
    #[error("{0}")]
    InvalidCiphertext(CiphertextRefusal),
    /// KMS could not be reached.
    #[error("{0}")]
    Unreachable(Unreachable),
    /// KMS did not answer in time, retries included; the time waited.
    #[error(
        "KMS did not answer within {:.1} s: check the vsock-proxy on the parent (the KMS emulator \
         in simulated mode) and KMS's health in the region",
        .0.as_secs_f64()
    )]
    TimedOut(Duration),
    /// KMS throttled the request: the account's request quota in the region is used up.
    #[error("KMS throttled the request ({0}); retry later")]
    Throttled(ServiceCode),
    /// KMS refused the AWS credentials the parent forwarded (unknown, expired, or a signature
    /// that does not verify, which a wrong clock also causes).
    #[error(
        "KMS rejected the AWS credentials ({0}): check the instance role's credentials that the \
         parent proxy forwards, and the enclave's clock"
    )]
    CredentialsRejected(ServiceCode),
    /// The KMS key cannot be used: missing, disabled, pending deletion, or of the wrong kind.
    #[error(
        "the KMS key cannot be used ({0}): check that it exists in this region, is enabled, and is \
         a symmetric encryption key"
    )]
    KeyUnusable(ServiceCode),
    /// KMS failed on its side.
    #[error("KMS failed ({0}); retry later")]
    ServiceFailure(ServiceCode),
    /// KMS refused the request for another reason.
    #[error("KMS refused the request ({0}); the enclave's log has KMS's explanation")]
    Refused(ServiceCode),
    /// KMS answered something the enclave cannot use.
    #[error("KMS's answer is unusable: {0}")]
    BadResponse(&'static str),
    /// The NSM could not produce the attestation document KMS needs.
    #[error(
        "the enclave could not attest itself to KMS: the NSM failed (details in the enclave's log)"
    )]
    Attestation,
    /// The enclave could not build or send its request (a bug or a misconfiguration).
    #[error("the enclave could not send its request to KMS (details in the enclave's log)")]
    RequestFailed,
    /// Too many KMS calls are in flight in this enclave; retry later.
    #[error("too many KMS calls in flight; retry later")]
    Busy,
    /// The parent sent unusable credentials.
    #[error("credentials: {0}")]
    InvalidCredentials(String),
    /// KMS answered for another key than the one asked for.
    #[error(
        "KMS answered for another key than the configured generation key: check that \
         --kms-key-id names the key by its full ARN (both are in the enclave's log)"
    )]
    WrongKey {
        /// The configured key ARN.
        configured: String,
        /// The key KMS named.
        answered: String,
    },
}

/// The KMS operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// `Decrypt`, of a key blob.
    Decrypt,
    /// `GenerateDataKey`, for a new master seed.
    GenerateDataKey,
}

impl Operation {
    /// The KMS operation's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decrypt => "Decrypt",
            Self::GenerateDataKey => "GenerateDataKey",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why KMS refused a key blob's ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CiphertextRefusal {
    /// `InvalidCiphertextException`.
    #[error(
        "KMS refused the key blob: its ciphertext was altered, or its kind, owner or policy differ \
         from those it was encrypted with"
    )]
    Invalid,
    /// `IncorrectKeyException`.
    #[error("KMS refused the key blob: it was not encrypted under the KMS key it names")]
    IncorrectKey,
    /// `InvalidKeyUsageException`.
    #[error("KMS refused the key blob: the KMS key it names is not a symmetric encryption key")]
    KeyUsage,
    /// `NotFoundException`.
    #[error(
        "KMS refused the key blob: the KMS key it names does not exist in this region (or is not \
         visible to the instance role)"
    )]
    KeyNotFound,
}

/// Why KMS could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unreachable {
    /// No connection, or it closed before the answer.
    #[error(
        "KMS is unreachable (connection failed or closed): check the vsock-proxy on the parent \
         (the KMS emulator in simulated mode)"
    )]
    Connection,
    /// The TLS handshake failed: the other end did not prove it is the KMS host.
    #[error(
        "KMS is unreachable (TLS handshake failed: the server did not prove it is KMS): check that \
         the parent's vsock-proxy forwards to the region's KMS endpoint"
    )]
    Tls,
}

/// A KMS error code (`ThrottlingException`, …), as KMS named it: at most
/// [`ServiceCode::MAX_LEN`] ASCII letters, digits, `.` and `_`; anything else reads
/// `UnknownError`. It carries no identifier: KMS's codes are a fixed vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCode(String);

impl ServiceCode {
    /// Longest code kept.
    pub const MAX_LEN: usize = 64;

    /// The code `code`, or `UnknownError` when there is none or it does not look like a code.
    pub fn new(code: Option<&str>) -> Self {
        let valid = |code: &&str| {
            !code.is_empty()
                && code.len() <= Self::MAX_LEN
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        };
        Self(code.filter(valid).unwrap_or("UnknownError").to_owned())
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServiceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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
            .key_id(blob.kms_key())
            .ciphertext_blob(Blob::new(blob.ciphertext()))
            .set_encryption_context(Some(HashMap::from_iter(blob.encryption_context())))
            .recipient(self.recipient_info()?)
            .send()
            .await
            .map_err(|error| self.classify(Operation::Decrypt, started, error))?;
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
            .map_err(|error| {
                warn!(%error, "no key blob can be made for a new key");
                KmsError::RequestFailed
            })?;
        let seed_len = i32::try_from(MasterSeed::LEN).map_err(|_| KmsError::RequestFailed)?;
        let started = Instant::now();
        let answer = self
            .client
            .generate_data_key()
            .key_id(kms_key)
            .number_of_bytes(seed_len)
            .set_encryption_context(Some(HashMap::from_iter(shell.encryption_context())))
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
        if let Some(answered) = answer.key_id()
            && answered != kms_key
        {
            warn!(
                configured = kms_key,
                answered = %printable(answered),
                "KMS answered GenerateDataKey for another key"
            );
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
        .map_err(|error| {
            warn!(%error, "KMS's CiphertextBlob does not fit a key blob");
            KmsError::BadResponse("its CiphertextBlob does not fit a key blob")
        })?;
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
    }
}

/// The [`KmsError`] for a failed SDK call, which took `elapsed`; logs the SDK's own account of
/// it at `warn`.
///
/// What gets logged cannot hold secrets. The SDK builds its errors from: KMS's error answer
/// (`__type` and `message`: identifiers such as role and key ARNs, never key material, since
/// with `Recipient` KMS returns no plaintext at all); connector errors (hyper, rustls, socket
/// errors: addresses and reasons); timeouts (durations); and request-building errors (the
/// credentials provider's "not loaded" message, SigV4's "invalid header value", whose `Display`
/// and `Debug` leave the value out). Credentials never appear: the SDK's `Credentials` prints
/// its secret as `** redacted **` and the session token not at all, and no error holds the
/// signed request. Only the `Display` chain and KMS's code and message are logged, not the
/// `Debug` form (which would add the raw HTTP answer); KMS's message is cut to printable
/// characters and a bounded length, since in simulated mode it comes over plain HTTP.
fn classify<E, R>(operation: Operation, elapsed: Duration, error: &SdkError<E, R>) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let classified = match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code();
            classify_code(operation, code)
        }
        SdkError::TimeoutError(_) => KmsError::TimedOut(elapsed),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => KmsError::TimedOut(elapsed),
        SdkError::DispatchFailure(failure) if failure.is_user() => KmsError::RequestFailed,
        SdkError::DispatchFailure(_) if is_tls_failure(error) => {
            KmsError::Unreachable(Unreachable::Tls)
        }
        SdkError::DispatchFailure(_) => KmsError::Unreachable(Unreachable::Connection),
        SdkError::ResponseError(_) => {
            KmsError::BadResponse("it was cut off or is not a KMS answer; retry later")
        }
        _ => KmsError::RequestFailed,
    };
    // A service error's chain only repeats KMS's code and message.
    let chain = match error {
        SdkError::ServiceError(_) => String::new(),
        _ => ErrorChain(error).to_string(),
    };
    warn!(
        operation = operation.as_str(),
        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        code = error.code().map(printable).unwrap_or_default(),
        message = error.message().map(printable).unwrap_or_default(),
        error = %chain,
        reported = %classified,
        "KMS call failed"
    );
    classified
}

/// The error for a KMS error answer with `code`.
fn classify_code(operation: Operation, code: Option<&str>) -> KmsError {
    let service_code = || ServiceCode::new(code);
    let refused = |refusal| match operation {
        Operation::Decrypt => KmsError::InvalidCiphertext(refusal),
        // No blob in a generation request: the configured key is the problem.
        Operation::GenerateDataKey => KmsError::KeyUnusable(service_code()),
    };
    match code.unwrap_or_default() {
        "AccessDeniedException" => KmsError::AccessDenied(operation),
        "InvalidCiphertextException" => refused(CiphertextRefusal::Invalid),
        "IncorrectKeyException" => refused(CiphertextRefusal::IncorrectKey),
        "InvalidKeyUsageException" => refused(CiphertextRefusal::KeyUsage),
        "NotFoundException" => refused(CiphertextRefusal::KeyNotFound),
        "DisabledException" | "KMSInvalidStateException" => KmsError::KeyUnusable(service_code()),
        // The parent's credentials are wrong: a server-side problem, not the caller's.
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "SignatureDoesNotMatch"
        | "RequestExpired" => KmsError::CredentialsRejected(service_code()),
        "ThrottlingException"
        | "Throttling"
        | "ThrottledException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "LimitExceededException" => KmsError::Throttled(service_code()),
        "KMSInternalException"
        | "DependencyTimeoutException"
        | "KeyUnavailableException"
        | "InternalFailure"
        | "InternalError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException" => KmsError::ServiceFailure(service_code()),
        _ => KmsError::Refused(service_code()),
    }
}

/// Whether a dispatch failure is a failed TLS handshake: rustls's errors reach the connector as
/// an I/O error of kind `InvalidData` (tokio-rustls's), possibly wrapped in another I/O error
/// (hyper-rustls's); the socket errors of a lost connection have other kinds. An `io::Error`'s
/// `source()` skips its payload, so the walk visits payloads itself.
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    // Bounded, in case a chain ever loops.
    for _ in 0..32 {
        let Some(error) = next else {
            return false;
        };
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) if io.kind() == std::io::ErrorKind::InvalidData => return true,
            Some(io) => io
                .get_ref()
                .map(|payload| payload as &(dyn std::error::Error + 'static))
                .or_else(|| error.source()),
            None => error.source(),
        };
    }
    false
}

/// An error and its sources, as `a: b: c`, by `Display` only.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(source) = next {
            write!(f, ": {source}")?;
            next = source.source();
        }
        Ok(())
    }
}

/// `text` for a log line: control characters replaced, at most 512 characters.
fn printable(text: &str) -> String {
    const MAX: usize = 512;
    text.chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
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

    const ROLE_ARN: &str = "arn:aws:sts::111122223333:assumed-role/signer-role/i-0123456789abcdef0";
    const KEY_ARN: &str =
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn service_error(code: &str) -> SdkError<aws_sdk_kms::operation::decrypt::DecryptError, ()> {
        let message = format!(
            "User: {ROLE_ARN} is not authorized to perform: kms:Decrypt on resource: {KEY_ARN} \
             because no resource-based policy allows the kms:Decrypt action"
        );
        SdkError::service_error(
            aws_sdk_kms::operation::decrypt::DecryptError::generic(
                aws_sdk_kms::error::ErrorMetadata::builder()
                    .code(code)
                    .message(message)
                    .build(),
            ),
            (),
        )
    }

    /// The message a caller sees: a bounded sentence, without anything KMS said.
    fn caller_sees(error: &KmsError) -> String {
        let text = error.to_string();
        for leak in [
            "111122223333",
            "arn:",
            "signer-role",
            "1234abcd",
            "not authorized",
        ] {
            assert!(!text.contains(leak), "{leak:?} reaches the caller: {text}");
        }
        assert!(text.len() < 300, "{text}");
        assert!(!text.contains('{') && !text.contains("Failure"), "{text}");
        text
    }

    #[test]
    fn kms_error_answers_become_plain_sentences_without_kms_identifiers() {
        let second = Duration::from_secs(1);
        let classify = |operation, code| classify(operation, second, &service_error(code));

        let denied = classify(Operation::Decrypt, "AccessDeniedException");
        assert_eq!(denied, KmsError::AccessDenied(Operation::Decrypt));
        assert!(caller_sees(&denied).contains("check the key policy's attestation conditions"));
        assert!(
            caller_sees(&classify(
                Operation::GenerateDataKey,
                "AccessDeniedException"
            ))
            .starts_with("KMS denied GenerateDataKey")
        );

        for (code, refusal) in [
            ("InvalidCiphertextException", CiphertextRefusal::Invalid),
            ("IncorrectKeyException", CiphertextRefusal::IncorrectKey),
            ("InvalidKeyUsageException", CiphertextRefusal::KeyUsage),
            ("NotFoundException", CiphertextRefusal::KeyNotFound),
        ] {
            let error = classify(Operation::Decrypt, code);
            assert_eq!(error, KmsError::InvalidCiphertext(refusal));
            assert!(caller_sees(&error).starts_with("KMS refused the key blob"));
            // Generation sends no blob: the configured key is what is wrong.
            let error = classify(Operation::GenerateDataKey, code);
            assert!(matches!(error, KmsError::KeyUnusable(_)), "{error:?}");
            assert!(caller_sees(&error).contains(code));
        }

        let throttled = classify(Operation::Decrypt, "ThrottlingException");
        assert!(matches!(throttled, KmsError::Throttled(_)), "{throttled:?}");
        assert_eq!(
            caller_sees(&throttled),
            "KMS throttled the request (ThrottlingException); retry later"
        );
        for code in ["UnrecognizedClientException", "ExpiredTokenException"] {
            let error = classify(Operation::Decrypt, code);
            assert!(
                matches!(error, KmsError::CredentialsRejected(_)),
                "{error:?}"
            );
            assert!(caller_sees(&error).contains("credentials"));
        }
        for code in ["DisabledException", "KMSInvalidStateException"] {
            let error = classify(Operation::Decrypt, code);
            assert!(matches!(error, KmsError::KeyUnusable(_)), "{error:?}");
        }
        let failed = classify(Operation::Decrypt, "KMSInternalException");
        assert_eq!(
            caller_sees(&failed),
            "KMS failed (KMSInternalException); retry later"
        );
        let other = classify(Operation::Decrypt, "ValidationException");
        assert!(matches!(other, KmsError::Refused(_)), "{other:?}");
        caller_sees(&other);
        // A code is repeated only when it looks like one.
        for hostile in [
            "Bad Code\nforged log line",
            "arn:aws:iam::111122223333:root",
        ] {
            let error = classify(Operation::Decrypt, hostile);
            assert_eq!(
                caller_sees(&error),
                "KMS refused the request (UnknownError); the enclave's log has KMS's explanation"
            );
        }
        assert_eq!(
            ServiceCode::new(Some(&"A".repeat(65))).as_str(),
            "UnknownError"
        );
        assert_eq!(ServiceCode::new(None).as_str(), "UnknownError");
    }

    #[test]
    fn transport_failures_say_what_to_check_not_how_the_sdk_failed() {
        type Error = SdkError<aws_sdk_kms::operation::decrypt::DecryptError, ()>;
        let io = |kind, text: &str| {
            Error::dispatch_failure(aws_sdk_kms::error::ConnectorError::io(Box::new(
                std::io::Error::new(kind, text.to_owned()),
            )))
        };
        let took = Duration::from_millis(8_012);

        let refused = classify(
            Operation::Decrypt,
            took,
            &io(std::io::ErrorKind::ConnectionRefused, "connection refused"),
        );
        assert_eq!(refused, KmsError::Unreachable(Unreachable::Connection));
        let text = caller_sees(&refused);
        assert!(text.starts_with("KMS is unreachable"), "{text}");
        assert!(
            text.contains("check the vsock-proxy on the parent"),
            "{text}"
        );

        let tls = classify(
            Operation::Decrypt,
            took,
            &io(
                std::io::ErrorKind::InvalidData,
                "invalid peer certificate: UnknownIssuer",
            ),
        );
        assert_eq!(tls, KmsError::Unreachable(Unreachable::Tls));
        assert!(caller_sees(&tls).contains("TLS"));
        // As hyper-rustls hands it over: the TLS error inside another I/O error.
        let wrapped = Error::dispatch_failure(aws_sdk_kms::error::ConnectorError::other(
            Box::new(std::io::Error::other(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "invalid peer certificate: NotValidForName",
            ))),
            None,
        ));
        assert_eq!(
            classify(Operation::Decrypt, took, &wrapped),
            KmsError::Unreachable(Unreachable::Tls)
        );

        let timed_out = classify(Operation::Decrypt, took, &Error::timeout_error("too slow"));
        assert_eq!(timed_out, KmsError::TimedOut(took));
        assert!(caller_sees(&timed_out).starts_with("KMS did not answer within 8.0 s"));
        let connect_timeout = Error::dispatch_failure(aws_sdk_kms::error::ConnectorError::timeout(
            "connect timed out".into(),
        ));
        assert_eq!(
            classify(Operation::Decrypt, took, &connect_timeout),
            KmsError::TimedOut(took)
        );

        let cut_off = Error::response_error("incomplete body", ());
        assert!(caller_sees(&classify(Operation::Decrypt, took, &cut_off)).contains("cut off"));
        let unbuilt = Error::construction_failure("credentials not loaded");
        assert_eq!(
            classify(Operation::Decrypt, took, &unbuilt),
            KmsError::RequestFailed
        );
    }

    #[test]
    fn every_message_is_a_bounded_sentence() {
        let code = || ServiceCode::new(Some(&"X".repeat(ServiceCode::MAX_LEN)));
        for error in [
            KmsError::NoCredentials,
            KmsError::AccessDenied(Operation::GenerateDataKey),
            KmsError::InvalidCiphertext(CiphertextRefusal::KeyNotFound),
            KmsError::Unreachable(Unreachable::Tls),
            KmsError::TimedOut(Duration::from_secs(3600)),
            KmsError::Throttled(code()),
            KmsError::CredentialsRejected(code()),
            KmsError::KeyUnusable(code()),
            KmsError::ServiceFailure(code()),
            KmsError::Refused(code()),
            KmsError::BadResponse("it has no CiphertextBlob"),
            KmsError::Attestation,
            KmsError::RequestFailed,
            KmsError::Busy,
            KmsError::WrongKey {
                configured: KEY_ARN.into(),
                answered: KEY_ARN.replace("1234abcd", "evil"),
            },
        ] {
            caller_sees(&error);
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
