//! [`HttpClient`]: the parent proxy's HTTP API, one method per endpoint.
//!
//! Payloads the enclave parses (transactions, typed data, authorizations, policy documents) are
//! [`RawValue`](serde_json::value::RawValue)s: build them with
//! `serde_json::value::to_raw_value(&value)` or `RawValue::from_string(text)`; their text reaches
//! the enclave unchanged.
//!
//! Approvals for a key's policy go in the `approvals` field of each sign request (an empty list
//! is not sent).
//!
//! With a [`ReceiptVerifier`] ([`HttpClient::with_receipt_verifier`]), every answer that creates a
//! key, derives an address, signs or changes a policy must carry the enclave's receipt, signed by
//! a receipt key whose attestation verified (fetched through `POST /v1/attestation` with a fresh
//! nonce the first time a boot's key is seen), and saying exactly what the answer says;
//! otherwise the call fails with [`HttpError::Receipt`].

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;

use crate::api::{
    AddressRequest, AddressResponse, ApiError, AttestationRequest, AttestationResponse,
    AuthorizationResponse, ErrorResponse, FlowPublicKeyRequest, FlowPublicKeyResponse,
    FlowSignatureResponse, GenerateKeyRequest, HealthResponse, KeyResponse, ReadyResponse,
    ReloadResponse, SignAuthorizationRequest, SignDigestRequest, SignFlowTransactionRequest,
    SignMessageRequest, SignTransactionRequest, SignTransactionsRequest, SignTransactionsResponse,
    SignTypedDataRequest, SignatureResponse, SignedTransaction, UpdatePolicyRequest,
};
use crate::receipts::{self, Asked, ReceiptVerifier, VerifyError};
use nitro_signer_common::{
    key_blob::Curve,
    receipt::{Operation, ReceiptError, Statement},
};

/// Why an HTTP call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The proxy answered with an API error.
    #[error("HTTP {status}: {error}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error's code and message.
        error: ApiError,
    },
    /// The request could not be sent or the answer not read (connection refused, timeout…).
    #[error("HTTP request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The answer is not what the API defines (a proxy in between, a version mismatch).
    #[error("unexpected HTTP {status} answer: {message}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// What did not fit.
        message: String,
    },
    /// Receipt verification is on and the answer's receipt is missing, not from an attested
    /// enclave, or says something else than the answer: do not use the answer.
    #[error("receipt refused: {0}")]
    Receipt(#[from] VerifyError),
}

impl HttpError {
    /// The HTTP status, when an answer came.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Unexpected { status, .. } => Some(*status),
            Self::Transport(error) => error.status().map(|status| status.as_u16()),
            Self::Receipt(_) => None,
        }
    }

    /// The API error, when the proxy answered with one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::Api { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A client of the parent proxy's HTTP API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    base: String,
    http: reqwest::Client,
    receipts: Option<Arc<ReceiptVerifier>>,
    /// `Bearer <API key>`, marked sensitive (its `Debug` does not show it).
    authorization: Option<reqwest::header::HeaderValue>,
}

/// An API key that cannot be sent in an HTTP header (a control or non-ASCII character).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the API key is not valid in an HTTP header")]
#[non_exhaustive]
pub struct InvalidApiKey;

impl HttpClient {
    /// A client of the proxy at `base_url` (e.g. `http://127.0.0.1:8080`), with a 30 s timeout
    /// per request.
    pub fn new(base_url: impl Into<String>) -> Result<Self, HttpError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self::with_client(base_url, http))
    }

    /// A client of the proxy at `base_url` using a configured `reqwest` client.
    pub fn with_client(base_url: impl Into<String>, http: reqwest::Client) -> Self {
        let mut base = base_url.into();
        while base.ends_with('/') {
            base.pop();
        }
        Self {
            base,
            http,
            receipts: None,
            authorization: None,
        }
    }

    /// The same client, sending `api_key` as `Authorization: Bearer <api_key>` on every request
    /// (a proxy started with `--tenants` requires it on `/v1/`).
    pub fn with_api_key(mut self, api_key: &str) -> Result<Self, InvalidApiKey> {
        let mut value = reqwest::header::HeaderValue::try_from(format!("Bearer {api_key}"))
            .map_err(|_| InvalidApiKey)?;
        value.set_sensitive(true);
        self.authorization = Some(value);
        Ok(self)
    }

    /// This client, checking every receipt with `verifier` (see the module docs).
    pub fn with_receipt_verifier(mut self, verifier: Arc<ReceiptVerifier>) -> Self {
        self.receipts = Some(verifier);
        self
    }

    /// The receipt's statement, verified, when receipt verification is on. The first receipt of
    /// a boot costs an attestation round trip.
    async fn verified(
        &self,
        receipt: Option<&crate::api::Receipt>,
    ) -> Result<Option<Statement>, HttpError> {
        let Some(verifier) = &self.receipts else {
            return Ok(None);
        };
        let receipt = receipts::from_api(receipt.ok_or(VerifyError::Missing)?)?;
        match verifier.verify(&receipt) {
            // A boot not seen yet (the enclave restarted, or this is the first receipt): attest
            // it, then verify once more. Receipts of known boots are decoded and checked once.
            Err(VerifyError::Receipt(ReceiptError::UnknownKey)) => {
                let nonce = fresh_nonce()?;
                let document = self.attestation(&nonce).await?.document;
                verifier.trust(&document, &nonce, SystemTime::now())?;
                Ok(Some(verifier.verify(&receipt)?))
            }
            verified => Ok(Some(verified?)),
        }
    }

    /// The proxy's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /healthz`: the proxy is up.
    pub async fn health(&self) -> Result<HealthResponse, HttpError> {
        self.get("/healthz").await
    }

    /// `GET /readyz`: the enclave answers, with its status and counters.
    pub async fn ready(&self) -> Result<ReadyResponse, HttpError> {
        self.get("/readyz").await
    }

    /// `POST /reload`: the proxy reads its accounts directory again (the JSON-RPC endpoint's
    /// accounts) and says which accounts it serves and which files it refused.
    pub async fn reload(&self) -> Result<ReloadResponse, HttpError> {
        let response = self
            .authorized(self.http.post(self.url("/reload")))
            .send()
            .await?;
        decode(response).await
    }

    /// `GET /metrics`: the Prometheus (OpenMetrics) text.
    pub async fn metrics(&self) -> Result<String, HttpError> {
        let response = self.http.get(self.url("/metrics")).send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        if (200..300).contains(&status) {
            return String::from_utf8(bytes.to_vec()).map_err(|_| HttpError::Unexpected {
                status,
                message: "the metrics are not UTF-8".to_owned(),
            });
        }
        Err(error_from(status, &bytes))
    }

    /// `POST /v1/keys`: a new key, generated inside the enclave, without a policy document.
    pub async fn generate_key(&self, label: Option<String>) -> Result<KeyResponse, HttpError> {
        self.generate_key_with(&GenerateKeyRequest {
            label,
            policy: None,
            nonce: None,
        })
        .await
    }

    /// `POST /v1/keys` with every option: a label and a policy document. The answer's
    /// `policy_hash` is the policy's SHA-256 (canonical form) when one was given.
    pub async fn generate_key_with(
        &self,
        request: &GenerateKeyRequest,
    ) -> Result<KeyResponse, HttpError> {
        let mut request = request.clone();
        if self.receipts.is_some() && request.nonce.is_none() {
            request.nonce = Some(fresh_nonce()?.into());
        }
        let answer: KeyResponse = self.post("/v1/keys", &request).await?;
        if let Some(statement) = self.verified(answer.receipt.as_ref()).await? {
            let asked = Asked {
                key_blob: None,
                user_id: Some(None),
                nonce: request.nonce.map(|nonce| nonce.0),
            };
            receipts::check_key(&statement, Operation::GenerateKey, asked, &answer)?;
            receipts::check_key_contents(
                &statement,
                &answer,
                request.label.as_deref(),
                request.policy.as_deref().map(RawValue::get),
            )?;
        }
        Ok(answer)
    }

    /// `POST /v1/keys/policy`: the key re-encrypted under a new policy document, with the
    /// current policy's admins' approvals. Store the answer's blob in place of the old one.
    pub async fn update_policy(
        &self,
        request: &UpdatePolicyRequest,
    ) -> Result<KeyResponse, HttpError> {
        let mut request = request.clone();
        if self.receipts.is_some() && request.nonce.is_none() {
            request.nonce = Some(fresh_nonce()?.into());
        }
        let answer: KeyResponse = self.post("/v1/keys/policy", &request).await?;
        if let Some(statement) = self.verified(answer.receipt.as_ref()).await? {
            let asked = Asked {
                key_blob: Some(request.key_blob.as_bytes()),
                user_id: Some(None),
                nonce: request.nonce.map(|nonce| nonce.0),
            };
            receipts::check_key(&statement, Operation::UpdatePolicy, asked, &answer)?;
            // The new blob keeps the old one's owner.
            let owner = nitro_signer_common::key_blob::KeyBlob::decode(request.key_blob.as_bytes())
                .ok()
                .and_then(|blob| blob.metadata().owner().map(str::to_owned));
            receipts::check_key_contents(
                &statement,
                &answer,
                owner.as_deref(),
                Some(request.policy.get()),
            )?;
        }
        Ok(answer)
    }

    /// `POST /v1/address`: the address and public key of a key (and user).
    pub async fn address(&self, request: &AddressRequest) -> Result<AddressResponse, HttpError> {
        let answer: AddressResponse = self.post("/v1/address", request).await?;
        if let Some(statement) = self.verified(answer.receipt.as_ref()).await? {
            let asked = Asked {
                key_blob: Some(request.key_blob.as_bytes()),
                user_id: Some(request.user_id.as_ref()),
                nonce: None,
            };
            receipts::check_address(&statement, asked, &answer)?;
        }
        Ok(answer)
    }

    /// `POST /v1/flow/public-key`: a key's public key on a curve and its Flow account-key
    /// encoding. With a receipt verifier, the receipt must say the enclave derived this key,
    /// on this curve, for this blob and user, and the account key must encode it.
    pub async fn flow_public_key(
        &self,
        request: &FlowPublicKeyRequest,
    ) -> Result<FlowPublicKeyResponse, HttpError> {
        let answer: FlowPublicKeyResponse = self.post("/v1/flow/public-key", request).await?;
        if let Some(statement) = self.verified(answer.receipt.as_ref()).await? {
            let asked = Asked {
                key_blob: Some(request.key_blob.as_bytes()),
                user_id: Some(request.user_id.as_ref()),
                nonce: None,
            };
            receipts::check_flow_public_key(
                &statement,
                asked,
                request.curve,
                Some(request.hash),
                &answer,
            )?;
        }
        Ok(answer)
    }

    /// `POST /v1/sign/flow-transaction`: a Flow transaction signature, the hash signed, the
    /// message hashed and the signing key. With a receipt verifier, the receipt must say the
    /// enclave made this signature over this hash, with this key on the request's curve, for
    /// this blob and user; the message must be the one the request's transaction, role and
    /// signer give (rebuilt here), and the hash its hash under the request's algorithm.
    pub async fn sign_flow_transaction(
        &self,
        request: &SignFlowTransactionRequest,
    ) -> Result<FlowSignatureResponse, HttpError> {
        let answer: FlowSignatureResponse = self.post("/v1/sign/flow-transaction", request).await?;
        if let Some(statement) = self.verified(answer.receipt.as_ref()).await? {
            let asked = Asked {
                key_blob: Some(request.key_blob.as_bytes()),
                user_id: Some(request.user_id.as_ref()),
                nonce: None,
            };
            let mismatch = |what| HttpError::Receipt(VerifyError::Mismatch(what));
            let curve: Curve = serde_json::from_str(request.curve.get())
                .map_err(|_| mismatch("the request's curve is not known"))?;
            receipts::check_flow_signature(&statement, asked, Some(curve), &answer)?;
            // The message must be the one the request's transaction, role and signer give:
            // rebuilt here from the request, so that no other transaction's answer passes.
            let algorithm: nitro_signer_flow::HashAlgorithm =
                serde_json::from_str(request.hash.get())
                    .map_err(|_| mismatch("the request's hash is not known"))?;
            let role: nitro_signer_flow::Role = serde_json::from_str(request.role.get())
                .map_err(|_| mismatch("the request's role is not known"))?;
            let signer: nitro_signer_flow::Signer = serde_json::from_str(request.signer.get())
                .map_err(|_| mismatch("the request's signer does not parse"))?;
            let message =
                nitro_signer_flow::FlowTransaction::from_json(request.transaction.get().as_bytes())
                    .and_then(|transaction| transaction.signing_message(role, &signer))
                    .map_err(|_| mismatch("the request's transaction does not encode"))?;
            if answer.message != message {
                return Err(mismatch("another message than the request's"));
            }
            if nitro_signer_flow::hash(algorithm, &answer.message) != answer.hash.0 {
                return Err(mismatch("the hash signed is not the message's"));
            }
        }
        Ok(answer)
    }

    /// `POST /v1/sign/transaction`: one signed transaction.
    pub async fn sign_transaction(
        &self,
        request: &SignTransactionRequest,
    ) -> Result<SignedTransaction, HttpError> {
        let answer: SignedTransaction = self.post("/v1/sign/transaction", request).await?;
        if let Some(statement) = self.verified(answer.receipt.as_ref()).await? {
            let asked = Asked {
                key_blob: Some(request.key_blob.as_bytes()),
                user_id: Some(request.user_id.as_ref()),
                nonce: None,
            };
            receipts::check_transaction(&statement, asked, &answer)?;
        }
        Ok(answer)
    }

    /// `POST /v1/sign/transactions`: a batch; one result (signed or error) per transaction.
    pub async fn sign_transactions(
        &self,
        request: &SignTransactionsRequest,
    ) -> Result<SignTransactionsResponse, HttpError> {
        let answer: SignTransactionsResponse = self.post("/v1/sign/transactions", request).await?;
        if self.receipts.is_some() && answer.results.len() != request.transactions.len() {
            return Err(
                VerifyError::Mismatch("another number of results than transactions").into(),
            );
        }
        let signed_any = answer
            .results
            .iter()
            .any(|result| matches!(result, crate::api::BatchResult::Signed(_)));
        // A batch of which nothing was signed has no receipt.
        if signed_any && let Some(statement) = self.verified(answer.receipt.as_ref()).await? {
            let asked = Asked {
                key_blob: Some(request.key_blob.as_bytes()),
                user_id: Some(request.user_id.as_ref()),
                nonce: None,
            };
            receipts::check_batch(&statement, asked, &answer)?;
        }
        Ok(answer)
    }

    /// `POST /v1/sign/message`: an EIP-191 signature.
    pub async fn sign_message(
        &self,
        request: &SignMessageRequest,
    ) -> Result<SignatureResponse, HttpError> {
        let answer: SignatureResponse = self.post("/v1/sign/message", request).await?;
        if let Some(statement) = self.verified(answer.receipt.as_ref()).await? {
            let asked = Asked {
                key_blob: Some(request.key_blob.as_bytes()),
                user_id: Some(request.user_id.as_ref()),
                nonce: None,
            };
            receipts::check_signature(&statement, asked, Operation::SignMessage, &answer)?;
        }
        Ok(answer)
    }

    /// `POST /v1/sign/typed-data`: an EIP-712 signature.
    pub async fn sign_typed_data(
        &self,
        request: &SignTypedDataRequest,
    ) -> Result<SignatureResponse, HttpError> {
        let answer: SignatureResponse = self.post("/v1/sign/typed-data", request).await?;
        if let Some(statement) = self.verified(answer.receipt.as_ref()).await? {
            let asked = Asked {
                key_blob: Some(request.key_blob.as_bytes()),
                user_id: Some(request.user_id.as_ref()),
                nonce: None,
            };
            receipts::check_signature(&statement, asked, Operation::SignTypedData, &answer)?;
        }
        Ok(answer)
    }

    /// `POST /v1/sign/authorization`: a signed EIP-7702 authorization.
    pub async fn sign_authorization(
        &self,
        request: &SignAuthorizationRequest,
    ) -> Result<AuthorizationResponse, HttpError> {
        let answer: AuthorizationResponse = self.post("/v1/sign/authorization", request).await?;
        if let Some(statement) = self.verified(answer.receipt.as_ref()).await? {
            let asked = Asked {
                key_blob: Some(request.key_blob.as_bytes()),
                user_id: Some(request.user_id.as_ref()),
                nonce: None,
            };
            receipts::check_authorization(&statement, asked, &answer)?;
        }
        Ok(answer)
    }

    /// `POST /v1/sign/digest`: a raw digest signature (keys that opt in only).
    pub async fn sign_digest(
        &self,
        request: &SignDigestRequest,
    ) -> Result<SignatureResponse, HttpError> {
        let answer: SignatureResponse = self.post("/v1/sign/digest", request).await?;
        if let Some(statement) = self.verified(answer.receipt.as_ref()).await? {
            let asked = Asked {
                key_blob: Some(request.key_blob.as_bytes()),
                user_id: Some(request.user_id.as_ref()),
                nonce: None,
            };
            receipts::check_signature(&statement, asked, Operation::SignDigest, &answer)?;
        }
        Ok(answer)
    }

    /// `POST /v1/attestation`: the enclave's attestation document over `nonce`.
    pub async fn attestation(&self, nonce: &[u8]) -> Result<AttestationResponse, HttpError> {
        let request = AttestationRequest {
            nonce: nonce.to_vec(),
        };
        self.post("/v1/attestation", &request).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, HttpError> {
        let response = self
            .authorized(self.http.get(self.url(path)))
            .send()
            .await?;
        decode(response).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, HttpError> {
        let response = self
            .authorized(self.http.post(self.url(path)))
            .json(body)
            .send()
            .await?;
        decode(response).await
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.authorization {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value.clone()),
            None => request,
        }
    }
}

fn fresh_nonce() -> Result<[u8; 32], HttpError> {
    nitro_signer_common::receipt::random_nonce()
        .map_err(|error| HttpError::Receipt(VerifyError::Receipt(error)))
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, HttpError> {
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    decode_answer(status, &bytes)
}

/// An answer of the proxy, `status` and body, as the endpoint's type `T` or the API error. For
/// callers with their own HTTP client (`nitro-signer bench` uses bare HTTP/1.1 connections).
pub fn decode_answer<T: DeserializeOwned>(status: u16, bytes: &[u8]) -> Result<T, HttpError> {
    if (200..300).contains(&status) {
        serde_json::from_slice(bytes).map_err(|error| HttpError::Unexpected {
            status,
            message: format!("the answer does not fit the API: {error}"),
        })
    } else {
        Err(error_from(status, bytes))
    }
}

fn error_from(status: u16, bytes: &[u8]) -> HttpError {
    match serde_json::from_slice::<ErrorResponse>(bytes) {
        Ok(answer) => HttpError::Api {
            status,
            error: answer.error,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            HttpError::Unexpected {
                status,
                message: text.chars().take(200).collect(),
            }
        }
    }
}
