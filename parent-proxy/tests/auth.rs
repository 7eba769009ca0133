//! Callers' authentication (`--tenants`) on the real router, against the enclave stand-in: API
//! keys on every `/v1/` route, the open health and metrics routes, and each key blob's owner
//! label checked against the caller's tenant before anything reaches the enclave.
#![cfg(test)]

mod support;

use std::path::PathBuf;

use base64::Engine as _;
use nitro_signer_common::{
    key_blob::{KeyBlob, KeyKind, KeyMetadata},
    tenants::{ApiKey, Tenant, Tenants},
};
use nitro_signer_tests::stand_in::StandIn;
use serde_json::{Value, json};
use tokio::sync::oneshot;

struct Proxy {
    url: String,
    http: reqwest::Client,
    enclave: StandIn,
    /// Tenant `a` (owners `a`, `shared`).
    key_a: ApiKey,
    /// Tenant `b` (owner `b`).
    key_b: ApiKey,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

/// The proxy with a tenants file of two tenants.
async fn start() -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let (key_a, key_b) = (ApiKey::generate().unwrap(), ApiKey::generate().unwrap());
    let tenants = Tenants::new(vec![
        Tenant::new("a", key_a.sha256(), vec!["a".into(), "shared".into()]).unwrap(),
        Tenant::new("b", key_b.sha256(), vec!["b".into()]).unwrap(),
    ])
    .unwrap();
    let path: PathBuf = dir.path().join("tenants.json");
    std::fs::write(&path, tenants.to_json()).unwrap();
    let (address, enclave, stop) = support::start_proxy(&dir, |args| {
        args.no_auth = false;
        args.tenants = Some(path);
    })
    .await;
    Proxy {
        url: format!("http://{address}"),
        http: reqwest::Client::new(),
        enclave,
        key_a,
        key_b,
        _dir: dir,
        _stop: stop,
    }
}

/// The answer's status, `WWW-Authenticate` header and JSON body.
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    body: Value,
}

impl Proxy {
    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .map(|value| value.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        Answer {
            status,
            www_authenticate,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    async fn post(&self, path: &str, authorization: Option<&str>, body: &Value) -> Answer {
        let mut request = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        self.send(request).await
    }
}

fn bearer(key: &ApiKey) -> String {
    format!("Bearer {}", key.as_str())
}

/// A key blob (base64) with `owner`: the stand-in does not decrypt it, the proxy decodes it.
fn blob(owner: Option<&str>) -> String {
    let metadata = KeyMetadata::new(
        KeyKind::Seed,
        "arn:aws:kms:us-east-1:111122223333:key/k",
        owner.map(str::to_owned),
        Vec::new(),
    )
    .unwrap();
    let blob = KeyBlob::new(metadata, vec![7; 40]).unwrap();
    base64::engine::general_purpose::STANDARD.encode(blob.encode())
}

/// Every endpoint that takes a key blob, with a body the stand-in answers.
fn blob_requests(key_blob: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "/v1/address",
            json!({"keyBlob": key_blob, "userId": "alice"}),
        ),
        (
            "/v1/keys/policy",
            json!({"keyBlob": key_blob, "policy": {"version": 1}}),
        ),
        (
            "/v1/sign/transaction",
            json!({"keyBlob": key_blob, "transaction": {"type": "0x2"}}),
        ),
        (
            "/v1/sign/transactions",
            json!({"keyBlob": key_blob, "transactions": [{}, {}]}),
        ),
        (
            "/v1/sign/message",
            json!({"keyBlob": key_blob, "message": "0x6869"}),
        ),
        (
            "/v1/sign/typed-data",
            json!({"keyBlob": key_blob, "typedData": {"types": {}}}),
        ),
        (
            "/v1/sign/authorization",
            json!({"keyBlob": key_blob, "authorization": {"chainId": "0x1"}}),
        ),
        (
            "/v1/sign/digest",
            json!({"keyBlob": key_blob, "digest": format!("0x{}", "ee".repeat(32))}),
        ),
    ]
}

/// Every `/v1/` request: the blob endpoints, key creation and attestation.
fn all_requests(key_blob: &str) -> Vec<(&'static str, Value)> {
    let mut requests = blob_requests(key_blob);
    requests.push(("/v1/keys", json!({})));
    requests.push(("/v1/attestation", json!({"nonce": "0x01"})));
    requests
}

fn assert_error(answer: &Answer, status: u16, code: &str, says: &str) {
    assert_eq!(answer.status, status, "{:?}", answer.body);
    assert_eq!(answer.body["error"]["code"], code, "{:?}", answer.body);
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "{message:?} lacks {says:?}");
    assert_eq!(answer.body.as_object().unwrap().len(), 1, "only `error`");
}

#[tokio::test]
async fn every_v1_route_needs_a_valid_api_key() {
    let proxy = start().await;
    let own = blob(Some("a"));
    let wrong_keys = [
        None,
        Some("Bearer nsk_0000000000000000000000000000000000000000000000000000000000000000"),
        Some("Bearer "),
        Some("Basic YTpi"),
    ];
    for (path, body) in all_requests(&own) {
        for authorization in wrong_keys {
            let answer = proxy.post(path, authorization, &body).await;
            assert_error(&answer, 401, "unauthorized", "");
            assert!(
                answer
                    .www_authenticate
                    .as_deref()
                    .is_some_and(|value| value.starts_with("Bearer")),
                "{path}: {:?}",
                answer.www_authenticate
            );
        }
        // The right key gets through.
        let answer = proxy.post(path, Some(&bearer(&proxy.key_a)), &body).await;
        assert!(
            (200..300).contains(&answer.status),
            "{path}: {}",
            answer.body
        );
    }
    let missing = proxy.post("/v1/address", None, &json!({})).await;
    assert_error(&missing, 401, "unauthorized", "Authorization: Bearer");
    let wrong = proxy
        .post("/v1/address", Some("Bearer nsk_wrong"), &json!({}))
        .await;
    assert_error(&wrong, 401, "unauthorized", "not valid");
    assert!(!wrong.body.to_string().contains("nsk_wrong"), "not echoed");
    // Unknown routes are not told apart from known ones without a key.
    let unknown = proxy.post("/v1/nothing", None, &json!({})).await;
    assert_error(&unknown, 401, "unauthorized", "");
    let unknown = proxy
        .post("/v1/nothing", Some(&bearer(&proxy.key_a)), &json!({}))
        .await;
    assert_error(&unknown, 404, "not_found", "");
}

#[tokio::test]
async fn health_readiness_and_metrics_stay_open() {
    let proxy = start().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let answer = proxy
            .send(proxy.http.get(format!("{}{path}", proxy.url)))
            .await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    }
    // Refused requests are counted like any other.
    proxy.post("/v1/address", None, &json!({})).await;
    let metrics = proxy
        .send(proxy.http.get(format!("{}/metrics", proxy.url)))
        .await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(
            r#"nitro_signer_proxy_http_requests_total{endpoint="address",status="401"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn blobs_of_other_owners_are_refused_before_the_enclave() {
    let proxy = start().await;
    let (a, b) = (bearer(&proxy.key_a), bearer(&proxy.key_b));
    for (owner, allowed, refused) in [
        (Some("a"), &a, &b),
        (Some("shared"), &a, &b),
        (Some("b"), &b, &a),
    ] {
        for (path, body) in blob_requests(&blob(owner)) {
            let answer = proxy.post(path, Some(refused), &body).await;
            assert_error(
                &answer,
                403,
                "forbidden",
                "not one of this API key's owners",
            );
            let answer = proxy.post(path, Some(allowed), &body).await;
            assert_eq!(answer.status, 200, "{path} {owner:?}: {}", answer.body);
        }
    }
    let payloads = proxy.enclave.payloads().len();
    // A blob without an owner label is nobody's.
    for (path, body) in blob_requests(&blob(None)) {
        for key in [&a, &b] {
            let answer = proxy.post(path, Some(key), &body).await;
            assert_error(&answer, 403, "forbidden", "no owner label");
        }
    }
    // Not a key blob at all.
    for (path, body) in blob_requests("aw==") {
        let answer = proxy.post(path, Some(&a), &body).await;
        assert_error(&answer, 400, "invalid_key_blob", "keyBlob");
    }
    assert_eq!(
        proxy.enclave.payloads().len(),
        payloads,
        "nothing reached it"
    );
}

#[tokio::test]
async fn new_keys_take_the_tenants_labels() {
    let proxy = start().await;
    let a = bearer(&proxy.key_a);
    for body in [json!({}), json!({"label": "shared"}), json!({"owner": "a"})] {
        let answer = proxy.post("/v1/keys", Some(&a), &body).await;
        assert_eq!(answer.status, 201, "{body}: {}", answer.body);
    }
    // No body at all: the tenant's first owner too.
    let answer = proxy
        .send(
            proxy
                .http
                .post(format!("{}/v1/keys", proxy.url))
                .header("authorization", &a),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    for body in [json!({"label": "b"}), json!({"label": "A"})] {
        let answer = proxy.post("/v1/keys", Some(&a), &body).await;
        assert_error(&answer, 403, "forbidden", "`label`");
    }
    let answer = proxy
        .post("/v1/keys", Some(&bearer(&proxy.key_b)), &json!({}))
        .await;
    assert_eq!(answer.status, 201);
    assert_eq!(
        *proxy.enclave.seen.owners.lock().unwrap(),
        ["a", "shared", "a", "a", "b"].map(|owner| Some(owner.to_owned()))
    );
}
