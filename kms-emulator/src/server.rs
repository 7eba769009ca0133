//! The KMS JSON protocol over HTTP (`POST /`, `X-Amz-Target: TrentService.<Operation>`,
//! `application/x-amz-json-1.1`, blobs in base64), so the real `aws-sdk-kms` client reaches the
//! emulator unchanged through an endpoint URL. Every request must carry a valid SigV4 signature
//! made with the emulator's credentials.

use std::{
    future::Future,
    sync::Arc,
    time::{Instant, SystemTime},
};

use axum::{
    Router,
    body::Bytes,
    extract::{
        FromRequest, Request, State,
        rejection::{BytesRejection, FailedToBufferBody},
    },
    http::{HeaderValue, StatusCode, header::CONTENT_TYPE, request::Parts},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::{
    service::{EncryptionContext, KeyMetadata, Kms, KmsError, Recipient, Secret},
    sigv4::{self, Credentials, SignedRequest},
};

/// The emulator's connection and time limits, those of nitro-signer's shared HTTP server.
///
/// Here a request not received and answered within `request_timeout` gets
/// `408 RequestTimeoutException`, and a body over `max_body_bytes` `413 ValidationException`.
/// The default 1 MiB fits KMS's largest inputs (an attestation document of up to 256 KiB, sent in
/// base64; a 32 KiB key policy); nitro-signer's requests are a few KiB.
pub use nitro_signer_http_server::ServerLimits;

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
    let state = Arc::new(AppState {
        kms,
        credentials,
        limits,
    });
    // `limits.max_body_bytes` is the body extractors' limit (set by the shared server); the
    // request timeout is applied in `handle`, so that a late answer is a KMS error that is logged.
    let app = Router::new().route("/", post(handle)).with_state(state);
    nitro_signer_http_server::serve(listener, app, limits, shutdown).await;
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
