//! The KMS JSON protocol over HTTP (`POST /`, `X-Amz-Target: TrentService.<Operation>`,
//! `application/x-amz-json-1.1`, blobs in base64), so the real `aws-sdk-kms` client reaches the
//! emulator unchanged through an endpoint URL. Every request must carry a valid SigV4 signature
//! made with the emulator's credentials.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime},
};

use axum::{
    Router,
    body::Bytes,
    extract::{
        DefaultBodyLimit, FromRequest, Request, State,
        rejection::{BytesRejection, FailedToBufferBody},
    },
    http::{HeaderValue, StatusCode, header::CONTENT_TYPE, request::Parts},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
    time::Sleep,
};
use tracing::{debug, info, warn};

use crate::{
    service::{EncryptionContext, KeyMetadata, Kms, KmsError, Recipient, Secret},
    sigv4::{self, Credentials, SignedRequest},
};

/// Limits that keep many, slow or stalled clients from exhausting the emulator. Every way a
/// client can hold a connection is bounded: waiting for a request's headers (including idle
/// keep-alive), sending its body, and not reading its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once. Further clients wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Time for a request's headers to arrive, from the start of the connection or the end of
    /// the previous response; an idle keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
    /// Time from the end of the headers to the answer, body included: a client that does not
    /// send the body it announced gets `408 RequestTimeoutException`.
    pub request_timeout: Duration,
    /// Time a response write may make no progress (a client that does not read) before the
    /// connection is closed.
    pub write_timeout: Duration,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for ServerLimits {
    /// 256 connections, 10 s for headers, 30 s per request, 10 s write stall, 1 MiB bodies.
    ///
    /// KMS's largest inputs (an attestation document of up to 256 KiB, sent in base64; a 32 KiB
    /// key policy) fit in 1 MiB; nitro-signer's requests are a few KiB.
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// Largest request head (request line and headers) buffered: SigV4-signed KMS requests carry a
/// few hundred bytes of headers.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Pause after a failed `accept` (e.g. out of file descriptors) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

struct AppState {
    kms: Arc<Kms>,
    credentials: Credentials,
    limits: ServerLimits,
}

/// Serves the KMS protocol on `listener` until `shutdown` completes, then stops accepting,
/// lets requests in flight finish (each is bounded by `limits`) and returns.
///
/// Requests must be signed for `kms`'s region ([`Kms::config`]) with `credentials`.
pub async fn serve(
    listener: TcpListener,
    kms: Arc<Kms>,
    credentials: Credentials,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    // Within what the semaphore and its drain (`acquire_many` takes a u32) can count.
    let most = Semaphore::MAX_PERMITS.min(usize::try_from(u32::MAX).unwrap_or(usize::MAX));
    let max_connections = limits.max_connections.clamp(1, most);
    let state = Arc::new(AppState {
        kms,
        credentials,
        limits,
    });
    let app = Router::new()
        .route("/", post(handle))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(state);
    let connections = Arc::new(Semaphore::new(max_connections));
    let (stop, stopping) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        // A permit before `accept`: beyond the limit, clients wait in the kernel's backlog
        // instead of costing a task and buffers here.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, app, limits, stopping).await;
            drop(permit);
        });
    }
    // Idle connections close at once; busy ones after their answer, which the limits bound.
    drop(stop);
    let drain = limits.request_timeout + limits.write_timeout;
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, connections.acquire_many(all))
        .await
        .is_err()
    {
        warn!("connections still open after the shutdown drain; abandoning them");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ServerLimits,
    mut stopping: watch::Receiver<()>,
) {
    // Answers are small and written at once; do not hold them back.
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(WriteTimeout::new(stream, limits.write_timeout));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let connection = builder.serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stopping.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        // Timeouts, resets and malformed requests: the client's problem, not the emulator's.
        debug!(%peer, error = %e, "connection closed");
    }
}

/// A stream whose writes fail once they have made no progress for a while, so that a client
/// that stops reading its responses cannot pin a connection (hyper has no write timeout).
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled_since: None,
        }
    }

    /// Passes a write's progress through; a write that stays pending past the timeout fails.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled_since = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let stall = self
                    .stalled_since
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, poll)
    }
}

/// An error answer in the KMS JSON protocol. Its type is also kept for the request log.
fn error(status: StatusCode, error_type: &'static str, message: &str) -> Response {
    let mut response = json_response(status, &json!({"__type": error_type, "message": message}));
    response.extensions_mut().insert(ErrorType(error_type));
    response
}

/// The `__type` of an error answer, for the request log.
#[derive(Clone, Copy)]
struct ErrorType(&'static str);

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    response
}

impl IntoResponse for KmsError {
    fn into_response(self) -> Response {
        let status = match self {
            KmsError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        error(status, self.error_type(), &self.to_string())
    }
}

/// What the request log says about a request. Never the body: it holds plaintexts, data keys,
/// ciphertexts and attestation documents.
#[derive(Default)]
struct LogFields {
    /// The `TrentService` operation.
    operation: Option<String>,
    /// The key the request named or the answer was under.
    key_id: Option<String>,
}

/// A key id from a request, fit for the log: KMS key ids and ARNs are short printable ASCII;
/// anything else is the caller's garbage and is not copied into the log.
fn loggable(key_id: &str) -> String {
    if key_id.len() <= 256 && key_id.bytes().all(|b| b.is_ascii_graphic()) {
        key_id.to_owned()
    } else {
        "<invalid>".to_owned()
    }
}

async fn handle(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let mut log = LogFields::default();
    let answered = tokio::time::timeout(
        state.limits.request_timeout,
        answer(&state, request, &mut log),
    )
    .await;
    let response = answered.unwrap_or_else(|_| {
        error(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeoutException",
            "The request was not received and answered in time.",
        )
    });
    let outcome = response
        .extensions()
        .get::<ErrorType>()
        .map_or("ok", |t| t.0);
    info!(
        operation = log.operation.as_deref().unwrap_or("-"),
        key_id = log.key_id.as_deref().unwrap_or("-"),
        outcome,
        status = response.status().as_u16(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

async fn answer(state: &AppState, request: Request, log: &mut LogFields) -> Response {
    let (parts, body) = request.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("TrentService."))
        .map(str::to_owned);
    log.operation = target.as_deref().map(loggable);
    // The body limit travels in the request's extensions (`DefaultBodyLimit`).
    let body = match Bytes::from_request(Request::from_parts(parts.clone(), body), &()).await {
        Ok(body) => body,
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ValidationException",
                &format!(
                    "The request body is larger than {} bytes.",
                    state.limits.max_body_bytes
                ),
            );
        }
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                "The request body could not be read.",
            );
        }
    };
    if let Err(e) = verify_signature(state, &parts, &body) {
        let status = match e {
            sigv4::SigV4Error::Missing(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        return error(status, e.error_type(), &e.to_string());
    }
    let Some(operation) = target else {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "missing X-Amz-Target",
        );
    };
    // The operations are synchronous (disk writes, attestation checks): keep them off the
    // threads that serve the sockets.
    let kms = Arc::clone(&state.kms);
    let (key_id, result) = tokio::task::spawn_blocking(move || dispatch(&kms, &operation, &body))
        .await
        .unwrap_or_else(|e| (None, Err(KmsError::Internal(e.to_string()))));
    log.key_id = key_id;
    result.map_or_else(
        |e| {
            if let KmsError::Internal(message) = &e {
                warn!(error = %message, "internal error");
            }
            e.into_response()
        },
        |value| json_response(StatusCode::OK, &value),
    )
}

fn verify_signature(state: &AppState, parts: &Parts, body: &[u8]) -> Result<(), sigv4::SigV4Error> {
    let pairs: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect();
    let request = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &pairs,
        body,
    };
    sigv4::verify(
        &request,
        &state.credentials,
        &state.kms.config().region,
        "kms",
        SystemTime::now(),
    )
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, KmsError> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| KmsError::Serialization(e.to_string()))
}

fn decode(field: &str, b64: &str) -> Result<Vec<u8>, KmsError> {
    B64.decode(b64)
        .map_err(|_| KmsError::Validation(format!("{field} is not valid base64")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecipientJson {
    key_encryption_algorithm: Option<String>,
    attestation_document: Option<String>,
}

impl RecipientJson {
    fn into_recipient(self) -> Result<Recipient, KmsError> {
        match self.key_encryption_algorithm.as_deref() {
            None | Some("RSAES_OAEP_SHA_256") => {}
            Some(other) => {
                return Err(KmsError::Validation(format!(
                    "Unsupported KeyEncryptionAlgorithm {other}"
                )));
            }
        }
        let document = self.attestation_document.ok_or_else(|| {
            KmsError::Validation("Recipient.AttestationDocument is required".into())
        })?;
        Ok(Recipient {
            attestation_document: decode("AttestationDocument", &document)?,
        })
    }
}

fn recipient(json: Option<RecipientJson>) -> Result<Option<Recipient>, KmsError> {
    json.map(RecipientJson::into_recipient).transpose()
}

fn metadata(m: &KeyMetadata) -> Value {
    json!({
        "AWSAccountId": m.arn.split(':').nth(4).unwrap_or_default(),
        "KeyId": m.key_id,
        "Arn": m.arn,
        "CreationDate": m.creation_date,
        "Enabled": true,
        "Description": m.description,
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": "Enabled",
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "MultiRegion": false,
    })
}

/// Puts the plaintext or the recipient envelope under the right name.
fn secret_fields(out: &mut Value, secret: Secret) {
    match secret {
        Secret::Plaintext(p) => out["Plaintext"] = json!(B64.encode(p.as_slice())),
        Secret::ForRecipient(e) => out["CiphertextForRecipient"] = json!(B64.encode(e)),
    }
}

/// Runs `operation`; also returns the key it concerned, for the request log.
fn dispatch(kms: &Kms, operation: &str, body: &[u8]) -> (Option<String>, Result<Value, KmsError>) {
    let mut key_id = None;
    let result = run_operation(kms, operation, body, &mut key_id);
    (key_id, result)
}

fn run_operation(
    kms: &Kms,
    operation: &str,
    body: &[u8],
    key_id: &mut Option<String>,
) -> Result<Value, KmsError> {
    match operation {
        "CreateKey" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Req {
                description: Option<String>,
                policy: Option<String>,
                #[serde(default)]
                bypass_policy_lockout_safety_check: bool,
                key_spec: Option<String>,
                key_usage: Option<String>,
            }
            let req: Req = parse(body)?;
            if req
                .key_spec
                .as_deref()
                .is_some_and(|s| s != "SYMMETRIC_DEFAULT")
                || req
                    .key_usage
                    .as_deref()
                    .is_some_and(|u| u != "ENCRYPT_DECRYPT")
            {
                return Err(KmsError::Validation(
                    "the emulator supports SYMMETRIC_DEFAULT ENCRYPT_DECRYPT keys only".into(),
                ));
            }
            let m = kms.create_key(
                req.description.as_deref().unwrap_or_default(),
                req.policy.as_deref(),
                req.bypass_policy_lockout_safety_check,
            )?;
            *key_id = Some(m.arn.clone());
            Ok(json!({"KeyMetadata": metadata(&m)}))
        }
        "DescribeKey" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Req {
                key_id: String,
            }
            let req: Req = parse(body)?;
            *key_id = Some(loggable(&req.key_id));
            let m = kms.describe_key(&req.key_id)?;
            *key_id = Some(m.arn.clone());
            Ok(json!({"KeyMetadata": metadata(&m)}))
        }
        "ListKeys" => {
            let keys: Vec<Value> = kms
                .list_keys()?
                .iter()
                .map(|m| json!({"KeyId": m.key_id, "KeyArn": m.arn}))
                .collect();
            Ok(json!({"Keys": keys, "Truncated": false}))
        }
        "Encrypt" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Req {
                key_id: String,
                plaintext: String,
                #[serde(default)]
                encryption_context: EncryptionContext,
            }
            let req: Req = parse(body)?;
            *key_id = Some(loggable(&req.key_id));
            let plaintext = zeroize::Zeroizing::new(decode("Plaintext", &req.plaintext)?);
            let (arn, blob) = kms.encrypt(&req.key_id, &plaintext, &req.encryption_context)?;
            *key_id = Some(arn.clone());
            Ok(
                json!({"CiphertextBlob": B64.encode(blob), "KeyId": arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
            )
        }
        "Decrypt" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Req {
                ciphertext_blob: String,
                #[serde(default)]
                encryption_context: EncryptionContext,
                key_id: Option<String>,
                recipient: Option<RecipientJson>,
            }
            let req: Req = parse(body)?;
            *key_id = req.key_id.as_deref().map(loggable);
            let blob = decode("CiphertextBlob", &req.ciphertext_blob)?;
            if key_id.is_none() {
                // The key a ciphertext names in its clear header, like CloudTrail records.
                *key_id = crate::service::ciphertext_key_id(&blob).map(str::to_owned);
            }
            let (arn, secret) = kms.decrypt(
                &blob,
                &req.encryption_context,
                req.key_id.as_deref(),
                recipient(req.recipient)?.as_ref(),
            )?;
            *key_id = Some(arn.clone());
            let mut out = json!({"KeyId": arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"});
            secret_fields(&mut out, secret);
            Ok(out)
        }
        "GenerateDataKey" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Req {
                key_id: String,
                key_spec: Option<String>,
                number_of_bytes: Option<usize>,
                #[serde(default)]
                encryption_context: EncryptionContext,
                recipient: Option<RecipientJson>,
            }
            let req: Req = parse(body)?;
            *key_id = Some(loggable(&req.key_id));
            let bytes = match (req.key_spec.as_deref(), req.number_of_bytes) {
                (Some("AES_256"), None) => 32,
                (Some("AES_128"), None) => 16,
                (None, Some(n)) => n,
                _ => {
                    return Err(KmsError::Validation(
                        "Specify exactly one of KeySpec (AES_256 or AES_128) and NumberOfBytes"
                            .into(),
                    ));
                }
            };
            let data_key = kms.generate_data_key(
                &req.key_id,
                bytes,
                &req.encryption_context,
                recipient(req.recipient)?.as_ref(),
            )?;
            *key_id = Some(data_key.key_arn.clone());
            let mut out = json!({
                "KeyId": data_key.key_arn,
                "CiphertextBlob": B64.encode(&data_key.ciphertext_blob),
            });
            secret_fields(&mut out, data_key.secret);
            Ok(out)
        }
        "GenerateRandom" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Req {
                number_of_bytes: Option<usize>,
                recipient: Option<RecipientJson>,
            }
            let req: Req = parse(body)?;
            let n = req
                .number_of_bytes
                .ok_or_else(|| KmsError::Validation("NumberOfBytes is required".into()))?;
            let mut out = json!({});
            secret_fields(
                &mut out,
                kms.generate_random(n, recipient(req.recipient)?.as_ref())?,
            );
            Ok(out)
        }
        other => Err(KmsError::UnknownOperation(format!(
            "The emulator does not support {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::WriteTimeout;

    #[tokio::test]
    async fn a_write_that_makes_no_progress_fails_after_the_timeout() {
        let (near, mut far) = tokio::io::duplex(64);
        let timeout = Duration::from_millis(200);
        let mut stream = WriteTimeout::new(near, timeout);
        // Progress resets the clock: writes interleaved with reads keep going past it.
        for _ in 0..4 {
            stream.write_all(&[7u8; 64]).await.unwrap();
            tokio::time::sleep(timeout / 2).await;
            let mut buf = [0u8; 64];
            far.read_exact(&mut buf).await.unwrap();
        }
        // A peer that stops reading: the write fails instead of waiting forever.
        let started = Instant::now();
        let error = stream.write_all(&[7u8; 1024]).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= timeout);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
