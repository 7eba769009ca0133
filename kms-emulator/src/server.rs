//! The KMS JSON protocol over HTTP (`POST /`, `X-Amz-Target: TrentService.<Operation>`,
//! `application/x-amz-json-1.1`, blobs in base64), so the real `aws-sdk-kms` client reaches the
//! emulator unchanged through an endpoint URL. Every request must carry a valid SigV4 signature
//! made with the emulator's credentials.

use std::{future::Future, sync::Arc, time::SystemTime};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    service::{EncryptionContext, KeyMetadata, Kms, KmsError, Recipient, Secret},
    sigv4::{self, Credentials, SignedRequest},
};

/// Largest request body accepted: KMS requests are small (4 KiB plaintexts, attestation
/// documents under 16 KiB).
const MAX_BODY: usize = 64 * 1024;

struct AppState {
    kms: Arc<Kms>,
    credentials: Credentials,
    region: String,
}

/// Serves the KMS protocol on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    kms: Arc<Kms>,
    credentials: Credentials,
    region: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(AppState {
        kms,
        credentials,
        region,
    });
    let app = Router::new()
        .route("/", post(handle))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response {
    json_response(status, &json!({"__type": error_type, "message": message}))
}

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

async fn handle(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect();
    let request = SignedRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers: &pairs,
        body: &body,
    };
    if let Err(e) = sigv4::verify(
        &request,
        &state.credentials,
        &state.region,
        "kms",
        SystemTime::now(),
    ) {
        let status = match e {
            sigv4::SigV4Error::Missing(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        };
        return error(status, e.error_type(), &e.to_string());
    }
    let Some(operation) = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("TrentService."))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "missing X-Amz-Target",
        );
    };
    match dispatch(&state.kms, operation, &body) {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(e) => e.into_response(),
    }
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

fn dispatch(kms: &Kms, operation: &str, body: &[u8]) -> Result<Value, KmsError> {
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
            Ok(json!({"KeyMetadata": metadata(&m)}))
        }
        "DescribeKey" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Req {
                key_id: String,
            }
            let req: Req = parse(body)?;
            Ok(json!({"KeyMetadata": metadata(&kms.describe_key(&req.key_id)?)}))
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
            let plaintext = zeroize::Zeroizing::new(decode("Plaintext", &req.plaintext)?);
            let (arn, blob) = kms.encrypt(&req.key_id, &plaintext, &req.encryption_context)?;
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
            let blob = decode("CiphertextBlob", &req.ciphertext_blob)?;
            let (arn, secret) = kms.decrypt(
                &blob,
                &req.encryption_context,
                req.key_id.as_deref(),
                recipient(req.recipient)?.as_ref(),
            )?;
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
