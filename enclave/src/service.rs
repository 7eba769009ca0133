//! The enclave's request handler: one [`RequestBody`] in, one [`ResponseBody`] out.
//!
//! Everything a request carries is untrusted: the key blob is decoded and checked, payloads are
//! parsed and hashed here, and KMS decides whether the blob may be decrypted. A request is taken
//! as far as it can go without the key first (blob decoded, user id checked against the blob's
//! kind, payload parsed, validated against the blob's opt-ins and hashed, the blob's policy
//! evaluated on it), so a malformed or refused request never costs a KMS call. Approvals name the
//! key id, which only the secret gives: they are counted once the key is loaded, before it signs.
//!
//! A blob's policy is trusted only because KMS binds its hash: a blob whose policy was altered
//! does not decrypt, and the cache is keyed by the hash of the whole blob, so an altered blob
//! never finds the original's key there.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use alloy_primitives::{Address, B256, Bytes};
use k256::elliptic_curve::sec1::ToEncodedPoint;
use nitro_signer_common::{
    UserId,
    key_blob::{Curve, KeyBlob, KeyBlobError, KeyKind, KeyMetadata, PolicyFlag},
    protocol::{
        self, AddressInfo, AttestationDocument, BatchItem, ErrorBody, ErrorCode, GenerateKey,
        KeyRef, MAX_BATCH, NewKey, RequestBody, ResponseBody, SignPayload, Status, Welcome,
    },
    receipt::{self, CountedApproval, Operation, Receipt, SignedItem, Statement},
    resources,
};
use nitro_signer_eth::{
    AuthorizationRequest, PayloadError, PersonalMessage, TransactionRequest, TypedData,
};
use nitro_signer_policy::{
    Approval, Decision, Facts, Policy, PolicyError,
    approval::{self, batch_subject, policy_subject, valid_approvers},
    document::Quorum,
    eval::{ApprovalsRequired, Candidates},
};
use serde_bytes::{ByteArray, ByteBuf};
use tracing::warn;

use crate::{
    cache::{BlobHash, CacheLimits, LruMap, SecretCache, Source, blob_hash},
    keys::{KeyError, KeyMaterial, address_of, check_curve, check_user},
    kms::{Kms, KmsError},
    limits::{KMS_QUEUE_WAIT, MAX_KMS_IN_FLIGHT},
    nsm::{AttestationRequest, Nsm, NsmError},
    receipts::ReceiptSigner,
    signing::{Payload, Prepared, SignError, Signed, SignedOutput, SigningPolicy, UserSigner},
};

/// Longest nonce for an attestation request.
pub const MAX_NONCE_LEN: usize = 512;

/// How the enclave is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The KMS key new seeds are generated under; `None` disables key generation.
    pub generation_key: Option<String>,
    /// The KMS keys (full ARNs) whose blobs this enclave uses, the generation key included.
    /// A blob under any other key is refused before any KMS call.
    pub allowed_kms_keys: BTreeSet<String>,
    /// Whether the NSM is the simulator (reported to clients).
    pub simulated: bool,
    /// Refuse key blobs without a policy document (and the creation of such keys).
    pub require_policy: bool,
    /// The decrypted-key cache.
    pub cache: CacheLimits,
}

#[derive(Debug, Default)]
struct Counters {
    cache_hits: AtomicU64,
    kms_calls: AtomicU64,
    kms_errors: AtomicU64,
    signatures: AtomicU64,
}

/// Why a request failed. Converted into an [`ErrorBody`] for the caller.
#[derive(Debug, thiserror::Error)]
enum ServiceError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    KeyBlob(#[from] KeyBlobError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error("attestation: {0}")]
    Nsm(#[from] NsmError),
    #[error(
        "keyBlob: its KMS key is not one this enclave was built to use; blobs must come from \
         this enclave's keys (--kms-key-id, --allowed-kms-keys)"
    )]
    KmsKeyNotAllowed,
    #[error("{0}")]
    PolicyDenied(String),
    #[error("approvals: {0}")]
    ApprovalsRequired(String),
    #[error("policy.{0}")]
    InvalidPolicy(PolicyError),
    #[error("keyBlob: its policy document is invalid: {0}")]
    InvalidBlobPolicy(PolicyError),
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl From<PayloadError> for ServiceError {
    fn from(error: PayloadError) -> Self {
        Self::Sign(SignError::Payload(error))
    }
}

impl ServiceError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::KeyBlob(_) | Self::KmsKeyNotAllowed | Self::InvalidBlobPolicy(_) => {
                ErrorCode::InvalidKeyBlob
            }
            Self::PolicyDenied(_) => ErrorCode::PolicyDenied,
            Self::ApprovalsRequired(_) => ErrorCode::ApprovalsRequired,
            Self::InvalidPolicy(_) => ErrorCode::InvalidRequest,
            Self::Key(
                KeyError::UserIdRequired | KeyError::UserIdNotAllowed | KeyError::WrongCurve { .. },
            ) => ErrorCode::InvalidRequest,
            Self::Key(_) => ErrorCode::Internal,
            Self::Sign(
                SignError::DigestNotAllowed
                | SignError::Payload(
                    PayloadError::PreEip155NotAllowed
                    | PayloadError::ChainAgnosticAuthorizationNotAllowed,
                ),
            ) => ErrorCode::PolicyRefused,
            Self::Sign(SignError::Unrepresentable) => ErrorCode::Internal,
            Self::Sign(_) => ErrorCode::InvalidRequest,
            // None yet, or KMS rejected the ones the parent forwarded (unknown, expired, or a
            // signature off because of the clock): either way the fix is the credentials.
            Self::Kms(KmsError::NoCredentials | KmsError::CredentialsRejected(_)) => {
                ErrorCode::NoCredentials
            }
            Self::Kms(KmsError::AccessDenied(_)) => ErrorCode::KmsAccessDenied,
            Self::Kms(KmsError::InvalidCiphertext(_)) => ErrorCode::InvalidKeyBlob,
            // Both mean "retry later": this enclave's KMS slots are full, or KMS throttles.
            Self::Kms(KmsError::Busy | KmsError::Throttled(_)) => ErrorCode::Busy,
            // A KMS answer for another key than the blob's is a misconfiguration or an attack,
            // never something a retry fixes: the details are in the enclave's log.
            Self::Kms(
                KmsError::Attestation | KmsError::RequestFailed | KmsError::WrongKey { .. },
            ) => ErrorCode::Internal,
            Self::Kms(KmsError::InvalidCredentials(_)) => ErrorCode::InvalidRequest,
            Self::Kms(_) => ErrorCode::KmsUnavailable,
            Self::Nsm(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }

    fn into_body(self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string())
    }
}

/// The enclave service.
#[derive(Debug)]
pub struct Enclave {
    settings: Settings,
    nsm: Arc<dyn Nsm>,
    kms: Kms,
    kms_permits: tokio::sync::Semaphore,
    cache: SecretCache<KmsError>,
    /// Addresses of (blob, user) pairs already derived: computing one costs a scalar
    /// multiplication, as much as the signature itself. Public values; as many entries as the
    /// cache, least recently used dropped first.
    addresses: std::sync::Mutex<LruMap<(BlobHash, Option<UserId>), Address>>,
    /// Parsed policies by blob: parsing one costs more than evaluating it. As many entries as
    /// the cache.
    policies: std::sync::Mutex<LruMap<BlobHash, Arc<Policy>>>,
    /// CPUs a batch is signed on, read once (the standard library reads the cgroup quota files
    /// each time it is asked).
    cpus: usize,
    counters: Counters,
    /// The boot's receipt key; `None` only when a benchmark turned receipts off.
    receipts: Option<ReceiptSigner>,
}

/// A successful request's answer, and the statement its receipt will sign (none for answers
/// that do nothing worth a receipt: status, attestation, credentials).
type Done = (ResponseBody, Option<Statement>);

impl Enclave {
    /// A service with `settings`, attesting with `nsm`, decrypting through `kms` and signing
    /// receipts with `receipts` (`None` only to measure what receipts cost).
    pub fn new(
        settings: Settings,
        nsm: Arc<dyn Nsm>,
        kms: Kms,
        receipts: Option<ReceiptSigner>,
    ) -> Self {
        let addresses = settings.cache.max_entries;
        Self {
            cache: SecretCache::new(settings.cache),
            settings,
            nsm,
            kms,
            kms_permits: tokio::sync::Semaphore::new(MAX_KMS_IN_FLIGHT),
            addresses: std::sync::Mutex::new(LruMap::new(addresses)),
            policies: std::sync::Mutex::new(LruMap::new(addresses)),
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            counters: Counters::default(),
            receipts,
        }
    }

    /// The answer to a client's hello.
    pub fn welcome(&self, version: u32) -> Welcome {
        Welcome {
            version,
            server: server_name(),
            simulated: self.settings.simulated,
        }
    }

    /// Drops expired cache entries; see [`SecretCache::evict_expired`].
    pub fn evict_expired(&self) {
        self.cache.evict_expired();
    }

    /// Answers one request, with the receipt for what it did. Never panics on any input;
    /// failures become [`ResponseBody::Error`] (and get no receipt).
    pub async fn answer(&self, body: RequestBody) -> (ResponseBody, Option<Receipt>) {
        let result = match body {
            RequestBody::GenerateKey(request) => self.generate_key(request).await,
            RequestBody::Address(key) => self.address(key).await,
            RequestBody::Sign(request) => self.sign(request).await,
            RequestBody::SignBatch(request) => self.sign_batch(request).await,
            RequestBody::Attest(request) => self.attest(&request.nonce).map(|body| (body, None)),
            RequestBody::Status => Ok((ResponseBody::Status(self.status()), None)),
            RequestBody::SetCredentials(credentials) => self
                .kms
                .credentials()
                .set(&credentials)
                .map(|()| (ResponseBody::CredentialsSet, None))
                .map_err(ServiceError::from),
            RequestBody::UpdatePolicy(request) => self.update_policy(request).await,
            RequestBody::PublicKey(request) => self.public_key(request).await,
            RequestBody::SignFlow(request) => self.sign_flow(request).await,
        };
        match result {
            Ok((body, statement)) => {
                let receipt = statement
                    .zip(self.receipts.as_ref())
                    .map(|(statement, signer)| signer.sign(statement));
                (body, receipt)
            }
            Err(error) => (ResponseBody::Error(error.into_body()), None),
        }
    }

    /// [`Self::answer`] without the receipt.
    pub async fn handle(&self, body: RequestBody) -> ResponseBody {
        self.answer(body).await.0
    }

    /// Counters and state.
    pub fn status(&self) -> Status {
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Status {
            server: server_name(),
            simulated: self.settings.simulated,
            has_credentials: self.kms.credentials().is_valid(),
            cached_keys: u64::try_from(self.cache.len()).unwrap_or(u64::MAX),
            cache_hits: count(&self.counters.cache_hits),
            kms_calls: count(&self.counters.kms_calls),
            kms_errors: count(&self.counters.kms_errors),
            signatures: count(&self.counters.signatures),
            cpu_micros: resources::cpu_time()
                .map_or(0, |t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX)),
            resident_bytes: resources::resident_bytes().unwrap_or(0),
        }
    }

    async fn generate_key(&self, request: GenerateKey) -> Result<Done, ServiceError> {
        let kms_key = self.settings.generation_key.as_deref().ok_or_else(|| {
            ServiceError::InvalidRequest(
                "key generation is not configured in this enclave (no KMS key id)".into(),
            )
        })?;
        let policy = request
            .policy
            .map(|json| Policy::from_json(json.as_bytes()))
            .transpose()
            .map_err(ServiceError::InvalidPolicy)?;
        if policy.is_none() && self.settings.require_policy {
            return Err(ServiceError::InvalidRequest(
                "policy: required; this enclave uses only keys that carry a policy".into(),
            ));
        }
        let mut metadata = KeyMetadata::new(KeyKind::Seed, kms_key, request.owner, Vec::new())
            .map_err(|_| {
                ServiceError::InvalidRequest(
                    "label: must be 1 to 128 printable ASCII characters".into(),
                )
            })?;
        if let Some(policy) = &policy {
            metadata = metadata
                .with_policy_document(policy.canonical().to_vec())
                .map_err(|error| ServiceError::InvalidRequest(format!("policy: {error}")))?;
        }
        let _permit = self.kms_permit().await?;
        self.counters.kms_calls.fetch_add(1, Ordering::Relaxed);
        // Boxed, like every KMS call: the SDK's futures are large, and every request's task would
        // otherwise carry (and move) their state, cache hits included.
        let generated = Box::pin(self.kms.generate_seed(metadata))
            .await
            .inspect_err(|_| {
                self.counters.kms_errors.fetch_add(1, Ordering::Relaxed);
            })?;
        let key_id = generated.material.key_id()?;
        let encoded = generated.blob.encode();
        let hash = blob_hash(&encoded);
        // The first signature with the new key needs no KMS call.
        self.cache.insert(hash, generated.material);
        let policy_hash = policy.map(|policy| policy.hash());
        let statement = Statement {
            policy_hash,
            request_nonce: request.nonce.map(ByteArray::into_array),
            ..statement(Operation::GenerateKey, key_id, hash)
        };
        let body = ResponseBody::Key(NewKey {
            policy_hash: policy_hash.map(ByteArray::new),
            key_blob: ByteBuf::from(encoded),
            key_id: ByteArray::new(key_id),
        });
        Ok((body, Some(statement)))
    }

    /// The key material of `key`: from the cache, or decrypted through KMS.
    async fn material(&self, key: &RequestKey) -> Result<Arc<KeyMaterial>, ServiceError> {
        let (material, source) = self
            .cache
            .get_or_load(key.hash, || async {
                let _permit = self.kms_permit().await?;
                self.counters.kms_calls.fetch_add(1, Ordering::Relaxed);
                Box::pin(self.kms.decrypt(&key.blob))
                    .await
                    .inspect_err(|_| {
                        self.counters.kms_errors.fetch_add(1, Ordering::Relaxed);
                    })
            })
            .await?;
        if source == Source::Cache {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(material)
    }

    async fn kms_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, KmsError> {
        tokio::time::timeout(KMS_QUEUE_WAIT, self.kms_permits.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(KmsError::Busy)
    }

    /// The signer of `key`, the approvers whose approvals over `subject` verified, and the key
    /// id.
    async fn signer<'k>(
        &self,
        key: &'k RequestKey,
        approvals: Option<(&[Approval], B256)>,
    ) -> Result<(UserSigner, BTreeSet<&'k str>, [u8; 32]), ServiceError> {
        let material = self.material(key).await?;
        let key_id = material.key_id()?;
        let approved = match approvals {
            Some((approvals, subject)) => key.approved(key_id, approvals, subject),
            None => BTreeSet::new(),
        };
        let user_key = material.user_key(key.user_id.as_ref())?;
        let cache_key = (key.hash, key.user_id.clone());
        let known = self
            .addresses
            .lock()
            .ok()
            .and_then(|mut addresses| addresses.get(&cache_key).copied());
        let signer = match known {
            Some(address) => UserSigner::with_known_address(user_key, address),
            None => {
                let signer = UserSigner::new(user_key);
                if let Ok(mut addresses) = self.addresses.lock() {
                    addresses.insert(cache_key, signer.address());
                }
                signer
            }
        };
        Ok((signer, approved, key_id))
    }

    /// Decodes a request's key ([`Self::blob_key`]) and checks its user id against the blob's
    /// kind.
    fn request_key(&self, key: KeyRef) -> Result<RequestKey, ServiceError> {
        let key = self.blob_key(key)?;
        check_user(key.blob.metadata().kind(), key.user_id.as_ref())?;
        Ok(key)
    }

    /// Decodes a request's key ([`RequestKey::decode`]) with its policy, parsed once per blob.
    fn blob_key(&self, key: KeyRef) -> Result<RequestKey, ServiceError> {
        let mut key = RequestKey::decode(key, &self.settings.allowed_kms_keys)?;
        match key.blob.metadata().policy_document() {
            None if self.settings.require_policy => {
                return Err(ServiceError::PolicyDenied(
                    "keyBlob: this enclave uses only keys that carry a policy, and this one has \
                     none"
                        .into(),
                ));
            }
            None => {}
            Some(document) => {
                let cached = self
                    .policies
                    .lock()
                    .ok()
                    .and_then(|mut policies| policies.get(&key.hash).cloned());
                let policy = match cached {
                    Some(policy) => policy,
                    None => {
                        let policy = Arc::new(
                            Policy::from_canonical(document)
                                .map_err(ServiceError::InvalidBlobPolicy)?,
                        );
                        if let Ok(mut policies) = self.policies.lock() {
                            policies.insert(key.hash, Arc::clone(&policy));
                        }
                        policy
                    }
                };
                key.policy = Some(policy);
            }
        }
        Ok(key)
    }

    async fn address(&self, key: KeyRef) -> Result<Done, ServiceError> {
        let key = self.request_key(key)?;
        // Ethereum signs on secp256k1: a P-256 blob is refused before any KMS call.
        check_curve(key.blob.metadata().kind(), Curve::Secp256k1)?;
        let material = self.material(&key).await?;
        let public_key = material.user_key(key.user_id.as_ref())?.public_key();
        let address = address_of(&public_key);
        let statement = key.statement(Operation::Address, material.key_id()?, address);
        let body = ResponseBody::Address(AddressInfo {
            address: ByteArray::new(address.into_array()),
            public_key: ByteBuf::from(public_key.to_encoded_point(false).as_bytes().to_vec()),
        });
        Ok((body, Some(statement)))
    }

    async fn sign(&self, request: protocol::SignRequest) -> Result<Done, ServiceError> {
        let key = self.request_key(request.key)?;
        // Ethereum signs on secp256k1: a P-256 blob is refused before any KMS call.
        check_curve(key.blob.metadata().kind(), Curve::Secp256k1)?;
        let prepared = prepare(request.payload, key.options()).await?;
        let candidates = key.authorize(&prepared, unix_now())?;
        // Approvals are verified only when a matching rule needs them, and only those of the
        // approvers such a rule names.
        let approvals = candidates
            .as_ref()
            .map(|candidates| relevant_approvals(request.approvals, &candidates.approvers()))
            .unwrap_or_default();
        if let Some(candidates) = &candidates
            && approvals.is_empty()
        {
            // Refused before the key is loaded when approvals are needed and none that could
            // count came.
            candidates
                .check(&BTreeSet::new())
                .map_err(approvals_required)?;
        }
        let (signer, approved, key_id) = self
            .signer(&key, Some((&approvals, prepared.signing_hash())))
            .await?;
        if let Some(candidates) = &candidates {
            candidates.check(&approved).map_err(approvals_required)?;
        }
        let operation = match &prepared {
            Prepared::Transaction(_) => Operation::SignTransaction,
            Prepared::Authorization(_) => Operation::SignAuthorization,
            Prepared::TypedData(_) => Operation::SignTypedData,
            Prepared::Message(_) => Operation::SignMessage,
            Prepared::Digest(_) => Operation::SignDigest,
        };
        let signed = to_wire(signer.sign_prepared(prepared)?);
        self.counters.signatures.fetch_add(1, Ordering::Relaxed);
        let statement = Statement {
            approvals_digest: counted_digest(&approvals, &approved),
            items: vec![signed_item(0, signed.signature())],
            ..key.statement(operation, key_id, signer.address())
        };
        Ok((ResponseBody::Signed(Box::new(signed)), Some(statement)))
    }

    /// The public key of a key and user on a curve (`x ‖ y`).
    async fn public_key(&self, request: protocol::PublicKeyRequest) -> Result<Done, ServiceError> {
        let key = self.request_key(request.key)?;
        // An imported key's curve is in its blob: refused before any KMS call.
        check_curve(key.blob.metadata().kind(), request.curve)?;
        let material = self.material(&key).await?;
        let public_key = material
            .flow_key(request.curve, key.user_id.as_ref())?
            .public_key_xy();
        let statement = Statement {
            address: Some(receipt::flow_key_fingerprint(request.curve, &public_key)),
            ..key.statement(Operation::FlowPublicKey, material.key_id()?, Address::ZERO)
        };
        let body = ResponseBody::PublicKey(protocol::PublicKeyInfo {
            curve: request.curve,
            public_key: ByteArray::new(public_key),
        });
        Ok((body, Some(statement)))
    }

    /// Signs a Flow transaction (`nitro_signer_flow`): parsed, role-checked, encoded, hashed and
    /// evaluated against the key's policy here before any key is loaded, then signed on the
    /// request's curve.
    ///
    /// A key's policy decides as for any request ([`RequestKey::authorize_facts`], on
    /// [`Facts::flow_transaction`]): only allow rules whose `kinds` name `flowTransaction` allow
    /// it, and approvals are over the 32-byte hash signed. A blob without a policy signs Flow
    /// transactions as it signs anything else.
    async fn sign_flow(&self, request: protocol::SignFlowRequest) -> Result<Done, ServiceError> {
        let key = self.request_key(request.key)?;
        let flow = FlowRequest::from_json(&request.request)?;
        check_curve(key.blob.metadata().kind(), flow.curve)?;
        let message = flow
            .transaction
            .signing_message(flow.role, &flow.signer)
            .map_err(flow_error)?;
        let hash = nitro_signer_flow::hash(flow.hash, &message);
        let facts = Facts::flow_transaction(
            &flow.transaction,
            flow.role,
            &flow.signer,
            key.user_id.as_ref().map(UserId::as_str),
        );
        let candidates = key.authorize_facts(&facts, unix_now())?;
        // As for `sign`: only the approvals of approvers a matching rule names are verified, and
        // without any that could count the request is refused before the key is loaded.
        let approvals = candidates
            .as_ref()
            .map(|candidates| relevant_approvals(request.approvals, &candidates.approvers()))
            .unwrap_or_default();
        if let Some(candidates) = &candidates
            && approvals.is_empty()
        {
            candidates
                .check(&BTreeSet::new())
                .map_err(approvals_required)?;
        }
        let material = self.material(&key).await?;
        let key_id = material.key_id()?;
        let approved = match &candidates {
            Some(candidates) => {
                let approved = key.approved(key_id, &approvals, B256::from(hash));
                candidates.check(&approved).map_err(approvals_required)?;
                approved
            }
            None => BTreeSet::new(),
        };
        let curve_key = material.flow_key(flow.curve, key.user_id.as_ref())?;
        let (signature, public_key) = curve_key.dangerous_sign_prehash_with_public_key(&hash)?;
        self.counters.signatures.fetch_add(1, Ordering::Relaxed);
        let mut item = [0u8; receipt::ITEM_SIGNATURE_LEN];
        item[..64].copy_from_slice(&signature);
        let statement = Statement {
            approvals_digest: counted_digest(&approvals, &approved),
            items: vec![SignedItem {
                index: 0,
                hash,
                signature: item,
            }],
            address: Some(receipt::flow_key_fingerprint(flow.curve, &public_key)),
            ..key.statement(Operation::SignFlow, key_id, Address::ZERO)
        };
        let body = ResponseBody::FlowSigned(protocol::FlowSigned {
            signature: ByteArray::new(signature),
            hash: ByteArray::new(hash),
            message: ByteBuf::from(message),
            public_key: ByteArray::new(public_key),
        });
        Ok((body, Some(statement)))
    }

    async fn sign_batch(&self, request: protocol::SignBatchRequest) -> Result<Done, ServiceError> {
        let protocol::SignBatchRequest {
            key,
            transactions,
            approvals,
        } = request;
        if transactions.is_empty() || transactions.len() > MAX_BATCH {
            return Err(ServiceError::InvalidRequest(format!(
                "transactions: {} given; a batch holds 1 to {MAX_BATCH}",
                transactions.len()
            )));
        }
        let key = self.request_key(key)?;
        // Ethereum signs on secp256k1: a P-256 blob is refused before any KMS call.
        check_curve(key.blob.metadata().kind(), Curve::Secp256k1)?;
        let options = key.options();
        let now = unix_now();
        // Everything is parsed, checked and evaluated first: a batch of refused transactions
        // costs no KMS call.
        let prepared: Vec<Result<Prepared, ServiceError>> = transactions
            .iter()
            .map(|json| {
                TransactionRequest::from_json(json.as_bytes())
                    .map_err(SignError::from)
                    .and_then(|request| Payload::Transaction(request).prepare(&options))
                    .map_err(ServiceError::from)
            })
            .collect();
        // One approval covers the whole batch: its subject is over every item's signing hash, so
        // it exists only if every item parsed.
        let subject = if approvals.is_empty() {
            None
        } else {
            prepared
                .iter()
                .map(|item| item.as_ref().ok().map(|p| p.signing_hash().0))
                .collect::<Option<Vec<[u8; 32]>>>()
                .map(|hashes| B256::from(batch_subject(&hashes)))
        };
        let mut evaluated: Vec<Result<(Prepared, Option<Candidates<'_>>), ServiceError>> = prepared
            .into_iter()
            .map(|item| {
                let prepared = item?;
                let candidates = key.authorize(&prepared, now)?;
                Ok((prepared, candidates))
            })
            .collect();
        if approvals.is_empty() {
            for item in &mut evaluated {
                if let Ok((_, Some(candidates))) = item
                    && let Err(missing) = candidates.check(&BTreeSet::new())
                {
                    *item = Err(approvals_required(missing));
                }
            }
        }
        if evaluated.iter().all(Result::is_err) {
            let items = evaluated
                .into_iter()
                .filter_map(Result::err)
                .map(|error| BatchItem::Error(error.into_body()))
                .collect();
            return Ok((ResponseBody::SignedBatch(items), None));
        }
        let names: BTreeSet<&str> = evaluated
            .iter()
            .filter_map(|item| item.as_ref().ok()?.1.as_ref())
            .flat_map(Candidates::approvers)
            .collect();
        let approvals = relevant_approvals(approvals, &names);
        let (signer, approved, key_id) = self
            .signer(&key, subject.map(|subject| (approvals.as_slice(), subject)))
            .await?;
        let prepared = evaluated
            .into_iter()
            .map(|item| {
                let (prepared, candidates) = item?;
                if let Some(candidates) = candidates {
                    candidates.check(&approved).map_err(approvals_required)?;
                }
                Ok(prepared)
            })
            .collect();
        let address = signer.address();
        let items = sign_in_parallel(Arc::new(signer), prepared, self.cpus).await?;
        let signed: Vec<SignedItem> = items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| match item {
                BatchItem::Signed(signed) => {
                    Some(signed_item(u16::try_from(index).ok()?, &signed.signature))
                }
                BatchItem::Error(_) => None,
            })
            .collect();
        self.counters.signatures.fetch_add(
            u64::try_from(signed.len()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        // Nothing signed, nothing to receipt.
        let statement = (!signed.is_empty()).then(|| Statement {
            approvals_digest: counted_digest(&approvals, &approved),
            items: signed,
            ..key.statement(Operation::SignBatch, key_id, address)
        });
        Ok((ResponseBody::SignedBatch(items), statement))
    }

    /// Moves a key to a new policy: the current policy's admins approve (over the new policy's
    /// subject), the key is decrypted through KMS (so the current blob is genuine) and its secret
    /// sealed under a new data key bound to the new encryption context ([`Kms::seal`]).
    async fn update_policy(&self, request: protocol::UpdatePolicy) -> Result<Done, ServiceError> {
        // A policy change is about the key, not one user: no user id.
        let key = self.blob_key(KeyRef {
            key_blob: request.key_blob,
            user_id: None,
        })?;
        let Some(current) = key.policy.clone() else {
            return Err(ServiceError::PolicyDenied(
                "keyBlob: the key has no policy, so no admins who could give it one".into(),
            ));
        };
        let Some(admins) = current.admins() else {
            return Err(ServiceError::PolicyDenied(
                "the key's policy names no admins: it cannot be changed".into(),
            ));
        };
        // An expired policy is retired: its admins cannot bring the key back under a new one.
        if let Some(not_after) = current.not_after()
            && unix_now() > not_after
        {
            return Err(ServiceError::PolicyDenied(format!(
                "the key's policy expired (notAfter {not_after}): it can no longer be changed"
            )));
        }
        let new =
            Policy::from_json(request.policy.as_bytes()).map_err(ServiceError::InvalidPolicy)?;
        if request.approvals.is_empty() {
            return Err(approvals_required(admins_short(admins, &BTreeSet::new())));
        }
        let material = self.material(&key).await?;
        let key_id = material.key_id()?;
        let subject = policy_subject(new.canonical());
        let approved_over = approval::Statement {
            key_id: &key_id,
            user_id: None,
            subject: &subject,
            now: unix_now(),
        };
        let names = admins.from.iter().map(String::as_str).collect();
        let approvals = relevant_approvals(request.approvals, &names);
        let approved = valid_approvers(current.approvers(), &approvals, &approved_over);
        if admins.missing(&approved) > 0 {
            return Err(approvals_required(admins_short(admins, &approved)));
        }
        let old = key.blob.metadata();
        let metadata = KeyMetadata::new(
            old.kind(),
            old.kms_key(),
            old.owner().map(str::to_owned),
            Vec::new(),
        )
        .and_then(|metadata| metadata.with_policy_document(new.canonical().to_vec()))
        .map_err(|error| ServiceError::InvalidRequest(format!("policy: {error}")))?;
        let _permit = self.kms_permit().await?;
        self.counters.kms_calls.fetch_add(1, Ordering::Relaxed);
        let blob = Box::pin(self.kms.seal(metadata, &material))
            .await
            .inspect_err(|_| {
                self.counters.kms_errors.fetch_add(1, Ordering::Relaxed);
            })?;
        let encoded = blob.encode();
        let statement = Statement {
            policy_hash: Some(new.hash()),
            approvals_digest: counted_digest(&approvals, &approved),
            previous_blob_hash: Some(key.hash),
            request_nonce: request.nonce.map(ByteArray::into_array),
            ..statement(Operation::UpdatePolicy, key_id, blob_hash(&encoded))
        };
        let body = ResponseBody::Key(NewKey {
            key_blob: ByteBuf::from(encoded),
            key_id: ByteArray::new(key_id),
            policy_hash: Some(ByteArray::new(new.hash())),
        });
        Ok((body, Some(statement)))
    }

    fn attest(&self, nonce: &[u8]) -> Result<ResponseBody, ServiceError> {
        if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
            return Err(ServiceError::InvalidRequest(format!(
                "nonce: {} bytes given; 1 to {MAX_NONCE_LEN} allowed",
                nonce.len()
            )));
        }
        // The document binds the receipt key, so that the caller can trust this boot's receipts.
        let document = match &self.receipts {
            Some(receipts) => receipts.attestation(self.nsm.as_ref(), Some(nonce))?,
            None => self.nsm.attest(AttestationRequest {
                nonce: Some(nonce),
                ..Default::default()
            })?,
        };
        Ok(ResponseBody::Attestation(AttestationDocument {
            document: ByteBuf::from(document),
        }))
    }
}

/// Fewest signatures a batch is split into parts of: a part costs a thread hand-off, about a
/// hundredth of 8 signatures.
const MIN_BATCH_PART: usize = 8;

/// Signs a batch's transactions off the async workers, split into up to one part per CPU (of
/// `cpus`) so that a large batch takes a fraction of its single-core time. Results come back in
/// request order.
async fn sign_in_parallel(
    signer: Arc<UserSigner>,
    prepared: Vec<Result<Prepared, ServiceError>>,
    cpus: usize,
) -> Result<Vec<BatchItem>, ServiceError> {
    let parts = cpus.min(prepared.len().div_ceil(MIN_BATCH_PART)).max(1);
    let part_len = prepared.len().div_ceil(parts);
    let total = prepared.len();
    let mut prepared = prepared.into_iter();
    let mut tasks = Vec::with_capacity(parts);
    loop {
        let part: Vec<_> = prepared.by_ref().take(part_len).collect();
        if part.is_empty() {
            break;
        }
        let signer = Arc::clone(&signer);
        tasks.push(tokio::task::spawn_blocking(move || {
            part.into_iter()
                .map(|item| {
                    match item
                        .and_then(|prepared| {
                            signer.sign_prepared(prepared).map_err(ServiceError::from)
                        })
                        .map(to_wire)
                    {
                        Ok(protocol::Signed::Transaction(signed)) => {
                            BatchItem::Signed(Box::new(signed))
                        }
                        // A batch holds transactions only (parsed above as such).
                        Ok(_) => BatchItem::Error(
                            ServiceError::Internal("a batch item signed as a non-transaction")
                                .into_body(),
                        ),
                        Err(error) => BatchItem::Error(error.into_body()),
                    }
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut items = Vec::with_capacity(total);
    for task in tasks {
        items.extend(
            task.await
                .map_err(|_| ServiceError::Internal("batch signing was interrupted"))?,
        );
    }
    Ok(items)
}

fn server_name() -> String {
    format!("nitro-signer-enclave {}", env!("CARGO_PKG_VERSION"))
}

/// A request's key as far as it is known without KMS: the decoded blob, its hash (the cache
/// key), the user and the blob's policy.
struct RequestKey {
    blob: KeyBlob,
    hash: BlobHash,
    user_id: Option<UserId>,
    /// The blob's policy document, parsed; `None` for a blob of opt-ins.
    policy: Option<Arc<Policy>>,
}

impl RequestKey {
    /// Decodes `key`'s blob, refusing it unless its KMS key is in `allowed_kms_keys`.
    fn decode(key: KeyRef, allowed_kms_keys: &BTreeSet<String>) -> Result<Self, ServiceError> {
        let blob = KeyBlob::decode(&key.key_blob)?;
        let kms_key = blob.metadata().kms_key();
        if !allowed_kms_keys.contains(kms_key) {
            // Either a misconfigured back end or a parent presenting a blob it made itself.
            warn!(
                kms_key = %kms_key.escape_debug(),
                "refused a key blob under a KMS key outside the allowlist"
            );
            return Err(ServiceError::KmsKeyNotAllowed);
        }
        Ok(Self {
            hash: blob_hash(&key.key_blob),
            blob,
            user_id: key.user_id,
            policy: None,
        })
    }

    /// A statement of `operation` by this key and user, whose address is `address`.
    fn statement(&self, operation: Operation, key_id: [u8; 32], address: Address) -> Statement {
        Statement {
            policy_hash: self.policy.as_ref().map(|policy| policy.hash()),
            user_id: self.user_id.clone(),
            address: Some(address.into_array()),
            ..statement(operation, key_id, self.hash)
        }
    }

    /// The parsing options: from the policy's settings (its rules decide about digests), or from
    /// the opt-ins of a blob without a policy. Both are bound to the blob at KMS.
    fn options(&self) -> SigningPolicy {
        if let Some(policy) = &self.policy {
            let settings = policy.settings();
            return SigningPolicy {
                allow_raw_digest: true,
                allow_pre_eip155: settings.pre_eip155,
                allow_any_chain_authorization: settings.any_chain_authorization,
            };
        }
        let has = |flag| self.blob.metadata().policy().contains(&flag);
        SigningPolicy {
            allow_raw_digest: has(PolicyFlag::RawDigest),
            allow_pre_eip155: has(PolicyFlag::PreEip155),
            allow_any_chain_authorization: has(PolicyFlag::AnyChainAuthorization),
        }
    }

    /// What the blob's policy says about `prepared` at `now`: refused, allowed outright
    /// (`None`), or allowed with approvals (the matching rules). A blob without a policy allows
    /// what its opt-ins allow, except EIP-7702 delegations, which only a policy can allow.
    fn authorize(
        &self,
        prepared: &Prepared,
        now: u64,
    ) -> Result<Option<Candidates<'_>>, ServiceError> {
        let user = self.user_id.as_ref().map(UserId::as_str);
        let facts = match prepared {
            Prepared::Transaction(tx) => Facts::transaction(tx, user),
            Prepared::Authorization(auth) => Facts::authorization(auth, user),
            Prepared::TypedData(typed) => Facts::typed_data(typed, user),
            Prepared::Message(_) => Facts::message(user),
            Prepared::Digest(_) => Facts::digest(user),
        };
        self.authorize_facts(&facts, now)
    }

    /// [`Self::authorize`] on facts already drawn from a parsed payload (a Flow transaction's,
    /// say).
    fn authorize_facts(
        &self,
        facts: &Facts<'_>,
        now: u64,
    ) -> Result<Option<Candidates<'_>>, ServiceError> {
        let Some(policy) = &self.policy else {
            if !facts.delegates().is_empty() {
                return Err(ServiceError::PolicyDenied(
                    "EIP-7702 delegations are signed only with keys whose policy allows them \
                     (a rule with `delegates`)"
                        .into(),
                ));
            }
            return Ok(None);
        };
        match policy.evaluate(facts, now) {
            Decision::Denied(denial) => Err(ServiceError::PolicyDenied(denial.to_string())),
            Decision::Allowed(candidates) if candidates.needs_no_approval() => Ok(None),
            Decision::Allowed(candidates) => Ok(Some(candidates)),
        }
    }
}

impl RequestKey {
    /// The approvers among `approvals` whose approval of `subject` by this key (`key_id`) and
    /// user verifies now; none for a blob without a policy.
    fn approved(&self, key_id: [u8; 32], approvals: &[Approval], subject: B256) -> BTreeSet<&str> {
        match &self.policy {
            Some(policy) if !approvals.is_empty() => {
                let statement = approval::Statement {
                    key_id: &key_id,
                    user_id: self.user_id.as_ref().map(UserId::as_str),
                    subject: &subject.0,
                    now: unix_now(),
                };
                valid_approvers(policy.approvers(), approvals, &statement)
            }
            _ => BTreeSet::new(),
        }
    }
}

/// What the admins' quorum still needs, as the rules' shortfalls are reported.
fn admins_short(admins: &Quorum, approved: &BTreeSet<&str>) -> ApprovalsRequired {
    ApprovalsRequired {
        rule: None,
        missing: admins.missing(approved),
        from: admins
            .from
            .iter()
            .filter(|name| !approved.contains(name.as_str()))
            .cloned()
            .collect(),
    }
}

fn approvals_required(missing: ApprovalsRequired) -> ServiceError {
    ServiceError::ApprovalsRequired(missing.to_string())
}

/// A statement of `operation` on the key `key_id` whose blob hashes to `blob_hash`, with
/// nothing else said yet. The receipt key, sequence and time are the signer's to fill.
fn statement(operation: Operation, key_id: [u8; 32], blob_hash: [u8; 32]) -> Statement {
    Statement {
        operation,
        receipt_key: [0; 32],
        sequence: 0,
        time_ms: 0,
        key_id,
        blob_hash,
        policy_hash: None,
        user_id: None,
        address: None,
        approvals_digest: None,
        previous_blob_hash: None,
        request_nonce: None,
        items: Vec::new(),
    }
}

/// The receipt's record of one signature.
fn signed_item(index: u16, signature: &protocol::Signature) -> SignedItem {
    let mut bytes = [0u8; receipt::ITEM_SIGNATURE_LEN];
    bytes[..32].copy_from_slice(signature.r.as_slice());
    bytes[32..64].copy_from_slice(signature.s.as_slice());
    bytes[64] = u8::from(signature.y_parity);
    SignedItem {
        index,
        hash: signature.signing_hash.into_array(),
        signature: bytes,
    }
}

/// The digest of the approvals that counted (`approvals` were filtered to the first of each
/// relevant approver; `approved` are those whose signature verified), or `None` if none did.
fn counted_digest(approvals: &[Approval], approved: &BTreeSet<&str>) -> Option<[u8; 32]> {
    let counted: Vec<CountedApproval<'_>> = approvals
        .iter()
        .filter(|approval| approved.contains(approval.approver.as_str()))
        .map(|approval| CountedApproval {
            approver: &approval.approver,
            expires_at: approval.expires_at,
            signature: &approval.signature,
        })
        .collect();
    (!counted.is_empty()).then(|| receipt::approvals_digest(&counted))
}

/// The approvals worth verifying, as the policy crate counts them: those of the approvers in
/// `names` (the ones a matching rule, or the admins, name), the first of each approver only. So a
/// request costs at most one signature verification per approver that could count.
fn relevant_approvals(approvals: Vec<protocol::Approval>, names: &BTreeSet<&str>) -> Vec<Approval> {
    let mut seen = BTreeSet::new();
    approvals
        .into_iter()
        .filter(|approval| {
            names.contains(approval.approver.as_str()) && seen.insert(approval.approver.clone())
        })
        .map(|approval| Approval {
            approver: approval.approver,
            expires_at: approval.expires_at,
            signature: approval.signature.into_vec(),
        })
        .collect()
}

/// The enclave's own clock, in unix seconds: never set from the parent.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// A Flow signing request: `{"curve", "hash", "role", "signer", "transaction"}`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FlowRequest {
    curve: Curve,
    hash: nitro_signer_flow::HashAlgorithm,
    role: nitro_signer_flow::Role,
    signer: nitro_signer_flow::Signer,
    transaction: nitro_signer_flow::FlowTransaction,
}

impl FlowRequest {
    /// Parses the request with the payload rules (no repeated keys…), naming the field of an
    /// error.
    fn from_json(json: &str) -> Result<Self, ServiceError> {
        nitro_signer_eth::json::check(json.as_bytes())?;
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let request = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            ServiceError::InvalidRequest(format!("{}: {}", error.path(), error.inner()))
        })?;
        deserializer
            .end()
            .map_err(|error| ServiceError::InvalidRequest(error.to_string()))?;
        Ok(request)
    }
}

fn flow_error(error: nitro_signer_flow::FlowError) -> ServiceError {
    ServiceError::InvalidRequest(error.to_string())
}

/// Parses, checks and hashes a payload ([`Payload::prepare`]) before any key is loaded.
async fn prepare(payload: SignPayload, policy: SigningPolicy) -> Result<Prepared, ServiceError> {
    let payload = match payload {
        SignPayload::Transaction(json) => {
            Payload::Transaction(TransactionRequest::from_json(json.as_bytes())?)
        }
        SignPayload::Message(bytes) => {
            Payload::Message(PersonalMessage::Bytes(Bytes::from(bytes.into_vec())))
        }
        SignPayload::TypedData(json) => {
            // EIP-712 parsing and hashing is bounded (see `nitro_signer_eth::typed_data`) but
            // can still take milliseconds for a large document: it runs off the async workers.
            return tokio::task::spawn_blocking(move || {
                Payload::TypedData(TypedData::from_json(json.as_bytes())?).prepare(&policy)
            })
            .await
            .map_err(|_| ServiceError::Internal("typed-data hashing was interrupted"))?
            .map_err(ServiceError::from);
        }
        SignPayload::Authorization(json) => {
            Payload::Authorization(AuthorizationRequest::from_json(json.as_bytes())?)
        }
        SignPayload::Digest(digest) => Payload::DangerousDigest(B256::from(digest.into_array())),
    };
    Ok(payload.prepare(&policy)?)
}

fn to_wire(signed: Signed) -> protocol::Signed {
    let signature = protocol::Signature {
        from: ByteArray::new(signed.from.into_array()),
        signing_hash: ByteArray::new(signed.signing_hash.0),
        r: ByteArray::new(signed.signature.r.to_be_bytes()),
        s: ByteArray::new(signed.signature.s.to_be_bytes()),
        y_parity: signed.signature.y_parity,
    };
    match signed.output {
        SignedOutput::Transaction { raw, tx_hash } => {
            protocol::Signed::Transaction(protocol::SignedTransaction {
                signature,
                v: signed.signature.v.map(|v| ByteArray::new(v.to_be_bytes())),
                raw: ByteBuf::from(raw.to_vec()),
                hash: ByteArray::new(tx_hash.0),
            })
        }
        SignedOutput::Authorization(auth) => {
            protocol::Signed::Authorization(protocol::SignedAuthorization {
                signature,
                chain_id: ByteArray::new(auth.chain_id.to_be_bytes()),
                address: ByteArray::new(auth.address.into_array()),
                nonce: auth.nonce,
            })
        }
        SignedOutput::SignatureOnly => protocol::Signed::Signature(signature),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nitro_signer_common::{attestation::Pcr, protocol::AwsCredentials};
    use zeroize::Zeroizing;

    use super::*;
    use crate::{
        kms::{CiphertextRefusal, KmsSettings, Operation, ServiceCode, Unreachable},
        recipient::RecipientKey,
    };

    /// An NSM that cannot attest: a KMS call then fails before it leaves the enclave, after the
    /// service has counted it.
    #[derive(Debug)]
    struct NoNsm;

    impl Nsm for NoNsm {
        fn attest(&self, _: AttestationRequest<'_>) -> Result<Vec<u8>, NsmError> {
            Err(NsmError::Device("no NSM in this test".into()))
        }
        fn fill_random(&self, _: &mut [u8]) -> Result<(), NsmError> {
            Err(NsmError::Device("no NSM in this test".into()))
        }
        fn pcr(&self, _: u8) -> Result<Pcr, NsmError> {
            Err(NsmError::Device("no NSM in this test".into()))
        }
    }

    fn service() -> Enclave {
        let nsm: Arc<dyn Nsm> = Arc::new(NoNsm);
        let kms = Kms::new(
            &KmsSettings {
                region: "us-east-1".into(),
                // Nothing listens there; no test below may get that far but the control.
                endpoint: Some("http://127.0.0.1:9".into()),
                attempt_timeout: Duration::from_millis(200),
                operation_timeout: Duration::from_millis(400),
                http_client: None,
            },
            Arc::clone(&nsm),
            RecipientKey::generate().unwrap(),
        );
        kms.credentials()
            .set(&AwsCredentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: Zeroizing::new("secret".into()),
                session_token: None,
                expires_at: None,
            })
            .unwrap();
        let settings = Settings {
            generation_key: None,
            allowed_kms_keys: BTreeSet::from([KMS_KEY.to_owned()]),
            simulated: true,
            require_policy: false,
            cache: CacheLimits::default(),
        };
        Enclave::new(settings, nsm, kms, None)
    }

    const KMS_KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/k";

    fn key(kind: KeyKind, user: Option<&str>) -> KeyRef {
        key_under(KMS_KEY, kind, user)
    }

    fn key_under(kms_key: &str, kind: KeyKind, user: Option<&str>) -> KeyRef {
        let metadata = KeyMetadata::new(kind, kms_key, None, Vec::new()).unwrap();
        let blob = KeyBlob::new(metadata, vec![7; 64]).unwrap();
        KeyRef {
            key_blob: ByteBuf::from(blob.encode()),
            user_id: user.map(|user| UserId::new(user).unwrap()),
        }
    }

    fn sign(payload: SignPayload) -> RequestBody {
        RequestBody::Sign(protocol::SignRequest {
            approvals: Vec::new(),
            key: key(KeyKind::Seed, Some("alice")),
            payload,
        })
    }

    /// Policies in canonical form: one that denies transactions to 0x35…35 and allows only
    /// those, one that allows transactions with an approval.
    const DENY_35: &str = r#"{"rules":[{"effect":"deny","when":{"to":["0x3535353535353535353535353535353535353535"]}},{"effect":"allow","when":{"kinds":["transaction"]}}],"version":1}"#;
    const APPROVED_TX: &str = r#"{"approvers":{"ops":{"publicKey":"0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a","type":"ed25519"}},"rules":[{"approvals":{"from":["ops"],"threshold":1},"effect":"allow","when":{"kinds":["transaction"]}}],"version":1}"#;

    fn policy_key(policy: &str) -> KeyRef {
        let metadata = KeyMetadata::new(KeyKind::Seed, KMS_KEY, None, Vec::new())
            .unwrap()
            .with_policy_document(policy.as_bytes().to_vec())
            .unwrap();
        let blob = KeyBlob::new(metadata, vec![7; 64]).unwrap();
        KeyRef {
            key_blob: ByteBuf::from(blob.encode()),
            user_id: Some(UserId::new("alice").unwrap()),
        }
    }

    fn policy_sign(policy: &str, payload: SignPayload) -> RequestBody {
        RequestBody::Sign(protocol::SignRequest {
            approvals: Vec::new(),
            key: policy_key(policy),
            payload,
        })
    }

    const TX: &str = r#"{"chainId":"0x1","nonce":"0x0","gas":"0x5208","maxFeePerGas":"0x2",
        "maxPriorityFeePerGas":"0x1","to":"0x3535353535353535353535353535353535353535","value":"0x1"}"#;

    /// Requests refused for what they carry are refused before the key is loaded: a cold blob
    /// costs no KMS call, whatever the payload kind. A valid request on the same blob does call
    /// KMS, so the count is live.
    #[tokio::test]
    async fn with_require_policy_blobs_without_a_policy_are_refused() {
        let mut enclave = service();
        enclave.settings.require_policy = true;
        enclave.settings.generation_key = Some(KMS_KEY.into());
        for request in [
            sign(SignPayload::Message(ByteBuf::from(b"hi".to_vec()))),
            RequestBody::Address(key(KeyKind::Seed, Some("alice"))),
            RequestBody::GenerateKey(GenerateKey {
                owner: None,
                policy: None,
                nonce: None,
            }),
        ] {
            let ResponseBody::Error(error) = enclave.handle(request).await else {
                panic!("signed without a policy")
            };
            assert!(
                matches!(
                    error.code,
                    ErrorCode::PolicyDenied | ErrorCode::InvalidRequest
                ),
                "{error}"
            );
            assert!(error.message.contains("policy"), "{error}");
        }
        assert_eq!(enclave.status().kms_calls, 0);
        // A blob with a policy gets as far as KMS.
        let answer = enclave
            .handle(policy_sign(
                DENY_35,
                SignPayload::Transaction(TX.replace("0x35353535", "0x36363636")),
            ))
            .await;
        assert!(matches!(answer, ResponseBody::Error(_)));
        assert_eq!(enclave.status().kms_calls, 1);
    }

    #[tokio::test]
    async fn refused_requests_on_a_cold_blob_make_no_kms_call() {
        let enclave = service();
        let refused = [
            // Malformed or invalid payloads of every kind.
            sign(SignPayload::Transaction("{}".into())),
            sign(SignPayload::Transaction("not json".into())),
            sign(SignPayload::Transaction(
                TX.replace(r#""maxFeePerGas":"0x2","#, r#""maxFeePerGas":"0x2","gasPrice":"0x1","#),
            )),
            sign(SignPayload::TypedData("{}".into())),
            sign(SignPayload::Authorization(r#"{"chainId":"0x1"}"#.into())),
            // Refused by the blob's opt-ins (none): pre-EIP-155, any-chain 7702, raw digest.
            sign(SignPayload::Transaction(
                r#"{"nonce":"0x0","gas":"0x5208","gasPrice":"0x1","to":"0x3535353535353535353535353535353535353535","value":"0x1"}"#.into(),
            )),
            sign(SignPayload::Authorization(
                r#"{"chainId":"0x0","address":"0x3535353535353535353535353535353535353535","nonce":"0x0"}"#.into(),
            )),
            sign(SignPayload::Digest(ByteArray::new([0x11; 32]))),
            // The user id does not fit the blob's kind.
            RequestBody::Sign(protocol::SignRequest {
                approvals: Vec::new(),
                key: key(KeyKind::Seed, None),
                payload: SignPayload::Transaction(TX.into()),
            }),
            RequestBody::Sign(protocol::SignRequest {
                approvals: Vec::new(),
                key: key(KeyKind::PrivateKey, Some("alice")),
                payload: SignPayload::Message(ByteBuf::from(b"hi".to_vec())),
            }),
            RequestBody::Address(key(KeyKind::Seed, None)),
            // A blob under a KMS key this enclave was not built to use (the parent's own).
            RequestBody::Sign(protocol::SignRequest {
                approvals: Vec::new(),
                key: key_under(
                    "arn:aws:kms:us-east-1:444455556666:key/parent-owned",
                    KeyKind::Seed,
                    Some("alice"),
                ),
                payload: SignPayload::Transaction(TX.into()),
            }),
            RequestBody::Address(key_under(
                "arn:aws:kms:us-east-1:444455556666:key/parent-owned",
                KeyKind::Seed,
                Some("alice"),
            )),
            // A batch whose every transaction is refused.
            RequestBody::SignBatch(protocol::SignBatchRequest {
                approvals: Vec::new(),
                key: key(KeyKind::Seed, Some("alice")),
                transactions: vec!["{}".into(), "[]".into()],
            }),
            // EIP-7702 delegations with a blob without a policy.
            sign(SignPayload::Authorization(
                r#"{"chainId":"0x1","address":"0x3535353535353535353535353535353535353535","nonce":"0x0"}"#.into(),
            )),
            // Refused by the blob's policy: a deny rule, no allow rule, approvals needed but none
            // given (single and batch), an expired policy.
            policy_sign(DENY_35, SignPayload::Transaction(TX.into())),
            policy_sign(DENY_35, SignPayload::Message(ByteBuf::from(b"hi".to_vec()))),
            policy_sign(APPROVED_TX, SignPayload::Transaction(TX.into())),
            // Approvals needed, and only approvals by someone no matching rule names.
            RequestBody::Sign(protocol::SignRequest {
                approvals: vec![protocol::Approval {
                    approver: "stranger".into(),
                    expires_at: 4_000_000_000,
                    signature: ByteBuf::from(vec![0; 64]),
                }],
                key: policy_key(APPROVED_TX),
                payload: SignPayload::Transaction(TX.into()),
            }),
            RequestBody::SignBatch(protocol::SignBatchRequest {
                approvals: Vec::new(),
                key: policy_key(APPROVED_TX),
                transactions: vec![TX.into(), TX.into()],
            }),
            policy_sign(
                r#"{"notAfter":1,"rules":[{"effect":"allow","when":{}}],"version":1}"#,
                SignPayload::Message(ByteBuf::from(b"hi".to_vec())),
            ),
            // A policy change for a key whose policy expired, or that has no admins.
            RequestBody::UpdatePolicy(protocol::UpdatePolicy {
                key_blob: policy_key(
                    r#"{"admins":{"from":["ops"],"threshold":1},"approvers":{"ops":{"publicKey":"0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a","type":"ed25519"}},"notAfter":1,"rules":[{"effect":"allow","when":{}}],"version":1}"#,
                )
                .key_blob,
                policy: r#"{"version":1,"rules":[{"effect":"allow","when":{}}]}"#.into(),
                approvals: vec![protocol::Approval {
                    approver: "ops".into(),
                    expires_at: 4_000_000_000,
                    signature: ByteBuf::from(vec![0; 64]),
                }],
                nonce: None,
            }),
            RequestBody::UpdatePolicy(protocol::UpdatePolicy {
                key_blob: policy_key(DENY_35).key_blob,
                policy: r#"{"version":1,"rules":[{"effect":"allow","when":{}}]}"#.into(),
                approvals: Vec::new(),
                nonce: None,
            }),
            // A blob whose policy document is not canonical.
            policy_sign(
                r#"{"version":1,"rules":[{"effect":"allow","when":{}}]}"#,
                SignPayload::Message(ByteBuf::from(b"hi".to_vec())),
            ),
        ];
        for request in refused {
            let shown = format!("{request:?}");
            match enclave.handle(request).await {
                ResponseBody::Error(error) => assert!(
                    matches!(
                        error.code,
                        ErrorCode::InvalidRequest
                            | ErrorCode::PolicyRefused
                            | ErrorCode::PolicyDenied
                            | ErrorCode::ApprovalsRequired
                            | ErrorCode::InvalidKeyBlob
                    ),
                    "{shown}: {error}"
                ),
                ResponseBody::SignedBatch(items) => assert!(
                    items.iter().all(|item| matches!(item, BatchItem::Error(_))),
                    "{shown}"
                ),
                other => panic!("{shown}: {other:?}"),
            }
            assert_eq!(enclave.status().kms_calls, 0, "{shown}");
        }

        // The control: a valid request on the same cold blob goes to KMS (which fails here).
        let answer = enclave
            .handle(sign(SignPayload::Transaction(TX.into())))
            .await;
        assert!(matches!(answer, ResponseBody::Error(_)), "{answer:?}");
        assert_eq!(enclave.status().kms_calls, 1);
    }

    const FLOW_PAYER: &str = "0xf8d6e0586b0a20c7";
    const FLOW_SCRIPT: &str = "transaction { prepare(acct: &Account) {} }";

    /// A Flow transaction paid by `FLOW_PAYER` running `script`.
    fn flow_transaction(script: &str) -> serde_json::Value {
        serde_json::json!({
            "script": script,
            "arguments": [],
            "referenceBlockId": format!("0x{}", "ab".repeat(32)),
            "gasLimit": 9999,
            "proposalKey": {"address": FLOW_PAYER, "keyIndex": 0, "sequenceNumber": 7},
            "payer": FLOW_PAYER,
            "authorizers": [FLOW_PAYER],
        })
    }

    /// The request text of a payer signature of `script`'s transaction on secp256k1/SHA3-256.
    fn flow_request(script: &str) -> String {
        serde_json::json!({
            "curve": "secp256k1",
            "hash": "sha3-256",
            "role": "payer",
            "signer": {"address": FLOW_PAYER, "keyIndex": 0},
            "transaction": flow_transaction(script),
        })
        .to_string()
    }

    /// The hash a payer signature of `script`'s transaction signs, computed apart.
    fn flow_hash(script: &str) -> [u8; 32] {
        let tx = nitro_signer_flow::FlowTransaction::from_json(
            flow_transaction(script).to_string().as_bytes(),
        )
        .unwrap();
        nitro_signer_flow::hash(
            nitro_signer_flow::HashAlgorithm::Sha3_256,
            &tx.envelope_message().unwrap(),
        )
    }

    fn sign_flow(key: KeyRef, script: &str, approvals: Vec<protocol::Approval>) -> RequestBody {
        RequestBody::SignFlow(protocol::SignFlowRequest {
            key,
            request: flow_request(script),
            approvals,
        })
    }

    /// A policy document in canonical form, as a blob keeps it.
    fn canonical(policy: serde_json::Value) -> String {
        let policy = Policy::from_json(policy.to_string().as_bytes()).unwrap();
        String::from_utf8(policy.canonical().to_vec()).unwrap()
    }

    fn script_sha256(script: &str) -> String {
        use sha2::Digest as _;
        format!(
            "0x{}",
            alloy_primitives::hex::encode(sha2::Sha256::digest(script))
        )
    }

    /// The seed the tests below put in the cache for a blob, as if KMS had decrypted it.
    fn warm(enclave: &Enclave, key: &KeyRef) -> [u8; 32] {
        let material = || {
            crate::keys::KeyMaterial::Seed(crate::keys::MasterSeed::new(Zeroizing::new([0x42; 32])))
        };
        enclave.cache.insert(blob_hash(&key.key_blob), material());
        material().key_id().unwrap()
    }

    /// Checks a `FlowSigned` answer: the hash expected, and a secp256k1 signature of it by the
    /// public key returned.
    fn assert_flow_signed(answer: ResponseBody, script: &str) {
        use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
        let ResponseBody::FlowSigned(signed) = answer else {
            panic!("not signed: {answer:?}")
        };
        assert_eq!(signed.hash.into_array(), flow_hash(script));
        let mut sec1 = vec![4];
        sec1.extend_from_slice(signed.public_key.as_slice());
        let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let signature = k256::ecdsa::Signature::from_slice(signed.signature.as_slice()).unwrap();
        key.verify_prehash(&flow_hash(script), &signature).unwrap();
    }

    /// A key whose policy allows one Flow script signs it, and refuses every other script and
    /// every policy that does not name `flowTransaction`, before any KMS call.
    #[tokio::test]
    async fn a_flow_policy_signs_only_its_scripts() {
        let enclave = service();
        let one_script = canonical(
            serde_json::json!({"version": 1, "rules": [{"effect": "allow",
            "when": {"kinds": ["flowTransaction"], "flow": {"scripts": [script_sha256(FLOW_SCRIPT)],
                     "payers": [FLOW_PAYER]}}}]}),
        );
        let other = "transaction { prepare(acct: auth(Storage) &Account) {} }";
        let refused = [
            (one_script.clone(), other),
            // Policies without `flowTransaction` in an allow rule's kinds: no Flow at all.
            (
                r#"{"rules":[{"effect":"allow","when":{}}],"version":1}"#.to_owned(),
                FLOW_SCRIPT,
            ),
            (DENY_35.to_owned(), FLOW_SCRIPT),
            // A deny rule without kinds covers Flow.
            (
                canonical(serde_json::json!({"version": 1, "rules": [
                    {"effect": "deny", "when": {"users": ["alice"]}},
                    {"effect": "allow", "when": {"kinds": ["flowTransaction"]}}]})),
                FLOW_SCRIPT,
            ),
        ];
        for (policy, script) in &refused {
            let ResponseBody::Error(error) = enclave
                .handle(sign_flow(policy_key(policy), script, Vec::new()))
                .await
            else {
                panic!("signed {script} under {policy}")
            };
            assert_eq!(error.code, ErrorCode::PolicyDenied, "{policy}: {error}");
        }
        assert_eq!(enclave.status().kms_calls, 0);

        let scripted = policy_key(&one_script);
        warm(&enclave, &scripted);
        assert_flow_signed(
            enclave
                .handle(sign_flow(scripted.clone(), FLOW_SCRIPT, Vec::new()))
                .await,
            FLOW_SCRIPT,
        );
        let ResponseBody::Error(error) =
            enclave.handle(sign_flow(scripted, other, Vec::new())).await
        else {
            panic!("signed another script")
        };
        assert_eq!(error.code, ErrorCode::PolicyDenied, "{error}");
        assert!(error.message.contains("no rule"), "{error}");
        assert_eq!(enclave.status().kms_calls, 0);

        // A key without a policy signs Flow as before.
        let plain = key(KeyKind::Seed, Some("alice"));
        warm(&enclave, &plain);
        assert_flow_signed(
            enclave.handle(sign_flow(plain, other, Vec::new())).await,
            other,
        );
    }

    /// A Flow rule with approvals: refused before KMS without approvals, refused with an
    /// approval of another hash, signed with an approval of the hash signed.
    #[tokio::test]
    async fn flow_approvals_are_over_the_hash_signed() {
        use nitro_signer_policy::approval::{ApproverKind, ApproverSecret};
        let enclave = service();
        let ops = ApproverSecret::generate(ApproverKind::Ed25519).unwrap();
        let public_key = format!(
            "0x{}",
            alloy_primitives::hex::encode(ops.public_key().public_key())
        );
        let policy = canonical(serde_json::json!({"version": 1,
            "approvers": {"ops": {"type": "ed25519", "publicKey": public_key}},
            "rules": [{"effect": "allow", "when": {"kinds": ["flowTransaction"],
                "flow": {"scripts": [script_sha256(FLOW_SCRIPT)]}},
                "approvals": {"threshold": 1, "from": ["ops"]}}]}));
        let key = policy_key(&policy);
        let ResponseBody::Error(error) = enclave
            .handle(sign_flow(key.clone(), FLOW_SCRIPT, Vec::new()))
            .await
        else {
            panic!("signed without approvals")
        };
        assert_eq!(error.code, ErrorCode::ApprovalsRequired, "{error}");
        assert_eq!(enclave.status().kms_calls, 0);

        let key_id = warm(&enclave, &key);
        let expires_at = unix_now() + 3_600;
        let approval = |subject: &[u8; 32]| {
            let approval = ops
                .approve("ops", &key_id, Some("alice"), subject, expires_at)
                .unwrap();
            protocol::Approval {
                approver: approval.approver,
                expires_at: approval.expires_at,
                signature: ByteBuf::from(approval.signature),
            }
        };
        // An approval of another subject (the SHA2-256 hash of the same message) does not count.
        let tx = nitro_signer_flow::FlowTransaction::from_json(
            flow_transaction(FLOW_SCRIPT).to_string().as_bytes(),
        )
        .unwrap();
        let sha2 = nitro_signer_flow::hash(
            nitro_signer_flow::HashAlgorithm::Sha2_256,
            &tx.envelope_message().unwrap(),
        );
        let ResponseBody::Error(error) = enclave
            .handle(sign_flow(key.clone(), FLOW_SCRIPT, vec![approval(&sha2)]))
            .await
        else {
            panic!("signed with an approval of another hash")
        };
        assert_eq!(error.code, ErrorCode::ApprovalsRequired, "{error}");
        assert_flow_signed(
            enclave
                .handle(sign_flow(
                    key,
                    FLOW_SCRIPT,
                    vec![approval(&flow_hash(FLOW_SCRIPT))],
                ))
                .await,
            FLOW_SCRIPT,
        );
        assert_eq!(enclave.status().kms_calls, 0);
    }

    /// Every KMS failure maps to the code an operator or caller acts on.
    #[test]
    fn kms_failures_map_to_the_code_to_act_on() {
        let code = || ServiceCode::new(Some("SomeException"));
        for (error, expected) in [
            (KmsError::NoCredentials, ErrorCode::NoCredentials),
            (
                KmsError::CredentialsRejected(code()),
                ErrorCode::NoCredentials,
            ),
            (
                KmsError::AccessDenied(Operation::Decrypt),
                ErrorCode::KmsAccessDenied,
            ),
            (
                KmsError::InvalidCiphertext(CiphertextRefusal::IncorrectKey),
                ErrorCode::InvalidKeyBlob,
            ),
            (KmsError::Busy, ErrorCode::Busy),
            (KmsError::Throttled(code()), ErrorCode::Busy),
            (KmsError::Attestation, ErrorCode::Internal),
            (KmsError::RequestFailed, ErrorCode::Internal),
            (
                KmsError::WrongKey {
                    configured: "arn:aws:kms:us-east-1:111122223333:key/a".into(),
                    answered: "arn:aws:kms:us-east-1:444455556666:key/b".into(),
                },
                ErrorCode::Internal,
            ),
            (
                KmsError::InvalidCredentials("expired".into()),
                ErrorCode::InvalidRequest,
            ),
            (
                KmsError::Unreachable(Unreachable::Connection),
                ErrorCode::KmsUnavailable,
            ),
            (
                KmsError::TimedOut(Duration::from_secs(8)),
                ErrorCode::KmsUnavailable,
            ),
            (KmsError::KeyUnusable(code()), ErrorCode::KmsUnavailable),
            (KmsError::ServiceFailure(code()), ErrorCode::KmsUnavailable),
            (KmsError::Refused(code()), ErrorCode::KmsUnavailable),
            (KmsError::BadResponse("no blob"), ErrorCode::KmsUnavailable),
        ] {
            let shown = error.to_string();
            assert_eq!(ServiceError::Kms(error).code(), expected, "{shown}");
        }
    }
}
