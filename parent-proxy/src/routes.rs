//! The HTTP API: routes, handlers, and the request middleware (request id, span, concurrency
//! limit, timeout, metrics).
//!
//! Handlers turn API bodies into enclave requests and enclave answers into API bodies; the
//! enclave parses and checks every payload itself.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy_primitives::{Address, B256, U256};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use nitro_signer_api::{
    AddressRequest, AddressResponse, ApiError, Approval, AttestationRequest, AttestationResponse,
    AuthorizationResponse, BatchResult, ErrorCode, ErrorResponse, FlowPublicKeyRequest,
    FlowPublicKeyResponse, FlowSignatureResponse, GenerateKeyRequest, HealthResponse, KeyBlob,
    KeyResponse, MAX_BATCH, ReadyResponse, SignAuthorizationRequest, SignDigestRequest,
    SignFlowTransactionRequest, SignMessageRequest, SignTransactionRequest,
    SignTransactionsRequest, SignTransactionsResponse, SignTypedDataRequest, SignatureResponse,
    SignedTransaction, TransactionSignature, UpdatePolicyRequest,
};
use nitro_signer_client::{ClientError, EnclaveClient};
use nitro_signer_common::{
    UserId,
    protocol::{
        self, BatchItem, GenerateKey, KeyRef, NewKey, RequestBody, ResponseBody, SignBatchRequest,
        SignPayload, SignRequest, Signature, Signed, UpdatePolicy,
    },
    receipt::Receipt,
};
use serde::Serialize;
use serde_bytes::{ByteArray, ByteBuf};
use serde_json::value::RawValue;
use tokio::sync::Semaphore;
use tracing::{Instrument, debug, debug_span, info, warn};

use crate::{
    audit::AuditLog,
    auth::{self, Auth},
    error::{EnclaveTime, Failure, LoggedCode},
    extract::{ApiJson, BodyLimit, EmptyBody},
    guard::{self, Guard},
    metrics::Metrics,
};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest wait for the enclave's status during a metrics scrape.
const SCRAPE_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    /// Where receipts are logged (`--audit-log`), when they are.
    pub(crate) audit: Option<AuditLog>,
    pub(crate) client: EnclaveClient,
    pub(crate) metrics: Metrics,
    pub(crate) concurrency: Arc<Semaphore>,
    pub(crate) max_body: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) request_ids: RequestIds,
    /// Who may call `/v1/`, with which key blobs.
    pub(crate) auth: Auth,
    /// Which `Host` and `Origin` values are accepted.
    pub(crate) guard: Guard,
    /// Pushes AWS credentials again when an answer says the enclave's do not work; `None` with
    /// `--no-aws-credentials`.
    pub(crate) credentials: Option<crate::credentials::Kick>,
    /// The JSON-RPC endpoint's accounts, upstream node and nonce locks.
    pub(crate) rpc: crate::rpc::Rpc,
}

/// Request ids: a per-process prefix and a counter, unique enough to find a request's log lines.
#[derive(Debug)]
pub(crate) struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        Self {
            prefix: nanos ^ std::process::id().rotate_left(16),
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n:x}", self.prefix)
    }
}

/// A caller's own request id is kept when it is short and plain.
fn caller_request_id(request: &Request) -> Option<String> {
    let value = request.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let plain = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    plain.then(|| value.to_owned())
}

/// The router with every endpoint and the middleware.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", post(crate::rpc::handle))
        .route("/upcheck", get(crate::rpc::upcheck))
        .route("/reload", post(crate::rpc::reload))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/keys", post(generate_key))
        .route("/v1/keys/policy", post(update_policy))
        .route("/v1/address", post(address))
        .route("/v1/sign/transaction", post(sign_transaction))
        .route("/v1/sign/transactions", post(sign_transactions))
        .route("/v1/sign/message", post(sign_message))
        .route("/v1/sign/typed-data", post(sign_typed_data))
        .route("/v1/sign/authorization", post(sign_authorization))
        .route("/v1/sign/digest", post(sign_digest))
        .route("/v1/flow/public-key", post(flow_public_key))
        .route("/v1/sign/flow-transaction", post(sign_flow_transaction))
        .route("/v1/attestation", post(attestation))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::authenticate,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            guard::guard,
        ))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), observe))
        .with_state(state)
}

/// The metrics label of a route.
fn endpoint(path: Option<&MatchedPath>) -> &'static str {
    match path.map(MatchedPath::as_str) {
        Some("/") => "json_rpc",
        Some("/upcheck") => "upcheck",
        Some("/reload") => "reload",
        Some("/healthz") => "healthz",
        Some("/readyz") => "readyz",
        Some("/metrics") => "metrics",
        Some("/v1/keys") => "keys",
        Some("/v1/keys/policy") => "keys_policy",
        Some("/v1/address") => "address",
        Some("/v1/sign/transaction") => "sign_transaction",
        Some("/v1/sign/transactions") => "sign_transactions",
        Some("/v1/sign/message") => "sign_message",
        Some("/v1/sign/typed-data") => "sign_typed_data",
        Some("/v1/sign/authorization") => "sign_authorization",
        Some("/v1/sign/digest") => "sign_digest",
        Some("/v1/flow/public-key") => "flow_public_key",
        Some("/v1/sign/flow-transaction") => "sign_flow_transaction",
        Some("/v1/attestation") => "attestation",
        _ => "unmatched",
    }
}

/// Per request: concurrency limit, overall timeout, metrics, and a log line (`info` for a
/// failure, `debug` for a success).
///
/// The request's span, with its id, is a `debug` span: at the default `info` level it costs
/// nothing, and the failure line carries the id, method and endpoint itself. (An enabled span
/// formats its fields on every request whether or not anything is logged in it.)
async fn observe(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let endpoint = endpoint(request.extensions().get::<MatchedPath>());
    let id = caller_request_id(&request).unwrap_or_else(|| state.request_ids.next());
    let method = request.method().clone();
    let span = debug_span!("request", id = %id, %method, endpoint);
    request.extensions_mut().insert(BodyLimit(state.max_body));
    async move {
        // Health stays answerable under load: it says the process is up, nothing more.
        let permit = if matches!(endpoint, "healthz" | "upcheck") {
            Ok(None)
        } else {
            Arc::clone(&state.concurrency)
                .try_acquire_owned()
                .map(Some)
                .map_err(|_| Failure::overloaded())
        };
        let mut response = match permit {
            Err(failure) => failure.into_response(),
            Ok(_permit) => {
                match tokio::time::timeout(request_limit(state.request_timeout), next.run(request))
                    .await
                {
                    Ok(response) => response,
                    Err(_) => Failure::request_timeout().into_response(),
                }
            }
        };
        let latency = start.elapsed();
        let status = response.status().as_u16();
        let enclave = response.extensions().get::<EnclaveTime>().map(|t| t.0);
        state.metrics.observe(endpoint, status, latency, enclave);
        let latency_ms = millis(latency);
        let code = response
            .extensions()
            .get::<LoggedCode>()
            .map(|c| c.0.clone());
        let enclave_ms = enclave.map(millis);
        // Successes are counted in the metrics and logged at `debug`
        // (`RUST_LOG=nitro_signer_proxy=debug` gives a line for every request): a line per
        // request is a write to standard error per request, a tenth of the proxy's work.
        if code.is_none() && status < 400 {
            debug!(status, latency_ms, enclave_ms, "answered");
        } else {
            info!(
                id = %id,
                %method,
                endpoint,
                status,
                latency_ms,
                error = code.as_ref().map(ErrorCode::as_str),
                enclave_ms,
                "answered"
            );
        }
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        response
    }
    .instrument(span)
    .await
}

/// The bound on a whole request, body upload included (answered 408 `request_timeout`), for an
/// enclave timeout of `request_timeout`: the enclave call's own, shorter, timeout answers 504
/// first.
pub(crate) fn request_limit(request_timeout: Duration) -> Duration {
    request_timeout + Duration::from_secs(2)
}

/// Milliseconds with microsecond precision, for logs.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

async fn not_found() -> Failure {
    Failure::not_found()
}

async fn method_not_allowed() -> Failure {
    Failure::method_not_allowed()
}

/// A JSON answer, with the time spent waiting for the enclave for the stage metrics.
fn reply<T: Serialize>(status: StatusCode, body: &T, enclave: Duration) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(EnclaveTime(enclave));
    response
}

/// Runs one enclave call and measures it.
async fn timed<T>(
    call: impl Future<Output = Result<T, ClientError>>,
) -> Result<(T, Duration), Failure> {
    let start = Instant::now();
    let result = call.await;
    let took = start.elapsed();
    result
        .map(|value| (value, took))
        .map_err(|error| Failure::from_client(error, took))
}

/// Sends one request to the enclave and measures it: the answer, and the enclave's receipt for
/// what it did, which goes back to the caller as it came (and to the audit log, when there is
/// one).
pub(crate) async fn receipted(
    state: &AppState,
    body: RequestBody,
) -> Result<(ResponseBody, Option<Receipt>, Duration), Failure> {
    let call = async {
        let answer = state.client.call_receipted(body).await;
        if let (Err(ClientError::Enclave(error)), Some(kick)) = (&answer, &state.credentials)
            && error.code == protocol::ErrorCode::NoCredentials
        {
            // Another peer may have replaced the enclave's credentials (it keeps the last ones
            // sent): push ours again now rather than at the next refresh.
            kick.kick();
        }
        answer
    };
    let ((body, receipt), took) = timed(call).await?;
    if let (Some(log), Some(receipt)) = (&state.audit, &receipt) {
        log.record(receipt.clone()).await;
    }
    Ok((body, receipt, took))
}

/// The enclave answered with another kind of answer than the request calls for.
fn unexpected(expected: &'static str, got: &ResponseBody, took: Duration) -> Failure {
    let error = ClientError::UnexpectedResponse {
        expected,
        got: got.kind(),
    };
    Failure::from_client(error, took)
}

/// A receipt in API form.
fn api_receipt(receipt: Receipt) -> nitro_signer_api::Receipt {
    nitro_signer_api::Receipt {
        statement: receipt.statement.into_vec(),
        signature: receipt.signature.to_vec(),
    }
}

pub(crate) fn key_ref(key_blob: KeyBlob, user_id: Option<UserId>) -> KeyRef {
    KeyRef {
        key_blob: ByteBuf::from(key_blob.into_bytes()),
        user_id,
    }
}

fn raw_text(raw: Box<RawValue>) -> String {
    Box::<str>::from(raw).into_string()
}

/// Approvals as the enclave takes them; it checks them against the key's policy.
pub(crate) fn approvals(approvals: Vec<Approval>) -> Vec<protocol::Approval> {
    approvals
        .into_iter()
        .map(|approval| protocol::Approval {
            approver: approval.approver,
            expires_at: approval.expires_at,
            signature: ByteBuf::from(approval.signature),
        })
        .collect()
}

/// A new or re-encrypted key in API form.
fn key_response(
    (body, receipt, took): (ResponseBody, Option<Receipt>, Duration),
) -> Result<(KeyResponse, Duration), Failure> {
    let ResponseBody::Key(key) = body else {
        return Err(unexpected("key", &body, took));
    };
    let NewKey {
        key_blob,
        key_id,
        policy_hash,
    } = key;
    let key = KeyResponse {
        key_blob: KeyBlob::new(key_blob.into_vec()),
        key_id: B256::from(key_id.into_array()),
        policy_hash: policy_hash.map(|hash| B256::from(hash.into_array())),
        receipt: receipt.map(api_receipt),
    };
    Ok((key, took))
}

async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".to_owned(),
    })
}

async fn readyz(State(state): State<Arc<AppState>>) -> Result<Response, Failure> {
    match timed(state.client.status()).await {
        Ok((status, took)) => Ok(reply(
            StatusCode::OK,
            &ReadyResponse {
                status: "ready".to_owned(),
                server: status.server,
                simulated: status.simulated,
                has_credentials: status.has_credentials,
                cached_keys: status.cached_keys,
                cache_hits: status.cache_hits,
                kms_calls: status.kms_calls,
                kms_errors: status.kms_errors,
                signatures: status.signatures,
            },
            took,
        )),
        Err(mut failure) => {
            failure.status = StatusCode::SERVICE_UNAVAILABLE;
            Err(failure)
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let status = tokio::time::timeout(SCRAPE_STATUS_TIMEOUT, state.client.status())
        .await
        .ok()
        .and_then(Result::ok);
    match state.metrics.encode(state.client.stats(), status.as_ref()) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the metrics could not be encoded",
        )
        .into_response(),
    }
}

async fn generate_key(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<GenerateKeyRequest>,
) -> Result<Response, Failure> {
    let request = GenerateKey {
        owner: request.label,
        policy: request.policy.map(raw_text),
        nonce: request.nonce.map(|nonce| ByteArray::new(nonce.0)),
    };
    let (key, took) = key_response(receipted(&state, RequestBody::GenerateKey(request)).await?)?;
    Ok(reply(StatusCode::CREATED, &key, took))
}

async fn update_policy(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<UpdatePolicyRequest>,
) -> Result<Response, Failure> {
    let request = UpdatePolicy {
        key_blob: ByteBuf::from(request.key_blob.into_bytes()),
        policy: raw_text(request.policy),
        approvals: approvals(request.approvals),
        nonce: request.nonce.map(|nonce| ByteArray::new(nonce.0)),
    };
    let (key, took) = key_response(receipted(&state, RequestBody::UpdatePolicy(request)).await?)?;
    Ok(reply(StatusCode::OK, &key, took))
}

async fn address(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<AddressRequest>,
) -> Result<Response, Failure> {
    let key = key_ref(request.key_blob, request.user_id);
    let (body, receipt, took) = receipted(&state, RequestBody::Address(key)).await?;
    let ResponseBody::Address(info) = body else {
        return Err(unexpected("address", &body, took));
    };
    let body = AddressResponse {
        address: Address::from(info.address.into_array()),
        public_key: info.public_key.into_vec(),
        receipt: receipt.map(api_receipt),
    };
    Ok(reply(StatusCode::OK, &body, took))
}

fn u256(bytes: ByteArray<32>) -> U256 {
    U256::from_be_bytes(bytes.into_array())
}

fn transaction_signature(signature: &Signature, v: Option<ByteArray<16>>) -> TransactionSignature {
    TransactionSignature {
        r: u256(signature.r),
        s: u256(signature.s),
        y_parity: signature.y_parity,
        v: v.map(|v| u128::from_be_bytes(v.into_array())),
    }
}

/// A signed transaction in API form.
fn signed_transaction(signed: protocol::SignedTransaction) -> SignedTransaction {
    SignedTransaction {
        from: Address::from(signed.signature.from.into_array()),
        hash: B256::from(signed.hash.into_array()),
        signing_hash: B256::from(signed.signature.signing_hash.into_array()),
        signature: transaction_signature(&signed.signature, signed.v),
        raw: signed.raw.into_vec(),
        receipt: None,
    }
}

/// `r ‖ s ‖ v` with `v` 27 or 28, as the API and geth answer a message signature.
pub(crate) fn rsv(signature: &Signature) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(65);
    bytes.extend_from_slice(signature.r.as_slice());
    bytes.extend_from_slice(signature.s.as_slice());
    bytes.push(27 + u8::from(signature.y_parity));
    bytes
}

/// A message, typed-data or digest signature in API form.
fn signature_response(signature: &Signature, receipt: Option<Receipt>) -> SignatureResponse {
    SignatureResponse {
        from: Address::from(signature.from.into_array()),
        hash: B256::from(signature.signing_hash.into_array()),
        signature: rsv(signature),
        receipt: receipt.map(api_receipt),
    }
}

/// The enclave answered a sign request with another kind of output than the payload calls for.
fn wrong_output(expected: &str, signed: &Signed, took: Duration) -> Failure {
    warn!(
        expected,
        got = signed.kind(),
        "the enclave signed another kind of output"
    );
    let mut failure = Failure::protocol("the enclave's answer does not fit the request");
    failure.enclave_time = Some(took);
    failure
}

pub(crate) async fn sign(
    state: &AppState,
    key: KeyRef,
    payload: SignPayload,
    approvals: Vec<protocol::Approval>,
) -> Result<(Signed, Option<Receipt>, Duration), Failure> {
    let request = RequestBody::Sign(SignRequest {
        key,
        payload,
        approvals,
    });
    match receipted(state, request).await? {
        (ResponseBody::Signed(signed), receipt, took) => Ok((*signed, receipt, took)),
        (other, _, took) => Err(unexpected("signed", &other, took)),
    }
}

/// The answer to a message, typed-data or digest request: the signature alone.
fn signature_reply(
    (signed, receipt, took): (Signed, Option<Receipt>, Duration),
) -> Result<Response, Failure> {
    match signed {
        Signed::Signature(signature) => Ok(reply(
            StatusCode::OK,
            &signature_response(&signature, receipt),
            took,
        )),
        other => Err(wrong_output("signature", &other, took)),
    }
}

async fn sign_transaction(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<SignTransactionRequest>,
) -> Result<Response, Failure> {
    let key = key_ref(request.key_blob, request.user_id);
    let payload = SignPayload::Transaction(raw_text(request.transaction));
    match sign(&state, key, payload, approvals(request.approvals)).await? {
        (Signed::Transaction(signed), receipt, took) => {
            let signed = SignedTransaction {
                receipt: receipt.map(api_receipt),
                ..signed_transaction(signed)
            };
            Ok(reply(StatusCode::OK, &signed, took))
        }
        (other, _, took) => Err(wrong_output("transaction", &other, took)),
    }
}

async fn sign_transactions(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<SignTransactionsRequest>,
) -> Result<Response, Failure> {
    let count = request.transactions.len();
    if count == 0 {
        return Err(Failure::invalid_request(
            "invalid field `transactions`: the batch is empty",
        ));
    }
    if count > MAX_BATCH {
        return Err(Failure::invalid_request(format!(
            "invalid field `transactions`: {count} transactions; at most {MAX_BATCH} per batch"
        )));
    }
    let batch = SignBatchRequest {
        key: key_ref(request.key_blob, request.user_id),
        transactions: request.transactions.into_iter().map(raw_text).collect(),
        approvals: approvals(request.approvals),
    };
    let (body, receipt, took) = receipted(&state, RequestBody::SignBatch(batch)).await?;
    let ResponseBody::SignedBatch(items) = body else {
        return Err(unexpected("signed_batch", &body, took));
    };
    if items.len() != count {
        let mut failure = Failure::protocol(
            "the enclave answered a different number of results than transactions",
        );
        failure.enclave_time = Some(took);
        return Err(failure);
    }
    let results = items
        .into_iter()
        .map(|item| match item {
            BatchItem::Signed(signed) => BatchResult::Signed(Box::new(signed_transaction(*signed))),
            BatchItem::Error(error) => BatchResult::Error(ErrorResponse {
                error: ApiError::new(error.code, error.message),
            }),
        })
        .collect();
    Ok(reply(
        StatusCode::OK,
        &SignTransactionsResponse {
            results,
            receipt: receipt.map(api_receipt),
        },
        took,
    ))
}

async fn sign_message(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<SignMessageRequest>,
) -> Result<Response, Failure> {
    let key = key_ref(request.key_blob, request.user_id);
    let payload = SignPayload::Message(ByteBuf::from(request.message.into_bytes()));
    signature_reply(sign(&state, key, payload, approvals(request.approvals)).await?)
}

async fn sign_typed_data(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<SignTypedDataRequest>,
) -> Result<Response, Failure> {
    let key = key_ref(request.key_blob, request.user_id);
    let payload = SignPayload::TypedData(raw_text(request.typed_data));
    signature_reply(sign(&state, key, payload, approvals(request.approvals)).await?)
}

async fn sign_digest(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<SignDigestRequest>,
) -> Result<Response, Failure> {
    let key = key_ref(request.key_blob, request.user_id);
    let payload = SignPayload::Digest(ByteArray::new(request.digest.0));
    signature_reply(sign(&state, key, payload, approvals(request.approvals)).await?)
}

async fn sign_authorization(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<SignAuthorizationRequest>,
) -> Result<Response, Failure> {
    let key = key_ref(request.key_blob, request.user_id);
    let payload = SignPayload::Authorization(raw_text(request.authorization));
    let (signed, receipt, took) = sign(&state, key, payload, approvals(request.approvals)).await?;
    let Signed::Authorization(signed) = signed else {
        return Err(wrong_output("authorization", &signed, took));
    };
    let body = AuthorizationResponse {
        from: Address::from(signed.signature.from.into_array()),
        hash: B256::from(signed.signature.signing_hash.into_array()),
        chain_id: u256(signed.chain_id),
        address: Address::from(signed.address.into_array()),
        nonce: signed.nonce,
        y_parity: signed.signature.y_parity,
        r: u256(signed.signature.r),
        s: u256(signed.signature.s),
        receipt: receipt.map(api_receipt),
    };
    Ok(reply(StatusCode::OK, &body, took))
}

async fn flow_public_key(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<FlowPublicKeyRequest>,
) -> Result<Response, Failure> {
    let body = RequestBody::PublicKey(protocol::PublicKeyRequest {
        key: key_ref(request.key_blob, request.user_id),
        curve: request.curve,
    });
    let (body, receipt, took) = receipted(&state, body).await?;
    let ResponseBody::PublicKey(info) = body else {
        return Err(unexpected("public_key", &body, took));
    };
    if info.curve != request.curve {
        return Err(Failure::protocol("the enclave answered for another curve"));
    }
    let public_key = info.public_key.into_array();
    let body = FlowPublicKeyResponse {
        public_key: public_key.to_vec(),
        account_key: nitro_signer_flow::account_key_rlp(
            &public_key,
            info.curve.flow_sign_algo(),
            request.hash,
            nitro_signer_flow::FULL_WEIGHT,
        ),
        receipt: receipt.map(api_receipt),
    };
    Ok(reply(StatusCode::OK, &body, took))
}

async fn sign_flow_transaction(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<SignFlowTransactionRequest>,
) -> Result<Response, Failure> {
    // The enclave's request, from the caller's own text of each part.
    let text = format!(
        r#"{{"curve":{},"hash":{},"role":{},"signer":{},"transaction":{}}}"#,
        request.curve.get(),
        request.hash.get(),
        request.role.get(),
        request.signer.get(),
        request.transaction.get()
    );
    let body = RequestBody::SignFlow(protocol::SignFlowRequest {
        key: key_ref(request.key_blob, request.user_id),
        request: text,
        approvals: approvals(request.approvals),
    });
    let (body, receipt, took) = receipted(&state, body).await?;
    let ResponseBody::FlowSigned(signed) = body else {
        return Err(unexpected("flow_signed", &body, took));
    };
    let body = FlowSignatureResponse {
        signature: signed.signature.to_vec(),
        hash: B256::from(signed.hash.into_array()),
        message: signed.message.into_vec(),
        public_key: signed.public_key.to_vec(),
        receipt: receipt.map(api_receipt),
    };
    Ok(reply(StatusCode::OK, &body, took))
}

async fn attestation(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<AttestationRequest>,
) -> Result<Response, Failure> {
    let (document, took) = timed(state.client.attest(request.nonce)).await?;
    let body = AttestationResponse {
        document: document.document.into_vec(),
    };
    Ok(reply(StatusCode::OK, &body, took))
}

impl EmptyBody for GenerateKeyRequest {
    fn empty() -> Option<Self> {
        Some(Self::default())
    }
}
impl EmptyBody for UpdatePolicyRequest {}
impl EmptyBody for AddressRequest {}
impl EmptyBody for SignTransactionRequest {}
impl EmptyBody for SignTransactionsRequest {}
impl EmptyBody for SignMessageRequest {}
impl EmptyBody for SignTypedDataRequest {}
impl EmptyBody for SignDigestRequest {}
impl EmptyBody for SignAuthorizationRequest {}
impl EmptyBody for AttestationRequest {}
impl EmptyBody for FlowPublicKeyRequest {}
impl EmptyBody for SignFlowTransactionRequest {}
