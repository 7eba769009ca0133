//! The real router on a real TCP port, against the enclave stand-in: each endpoint's JSON shape,
//! and the error mapping.
#![cfg(test)]

mod support;

use std::{num::NonZeroU64, num::NonZeroUsize, time::Duration};

use nitro_signer_proxy::Args;
use nitro_signer_tests::{metrics, stand_in::StandIn};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::oneshot;

struct Proxy {
    url: String,
    http: reqwest::Client,
    enclave: StandIn,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

async fn start_with(configure: impl FnOnce(&mut Args)) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let (address, enclave, stop) = support::start_proxy(&dir, configure).await;
    Proxy {
        url: format!("http://{address}"),
        http: reqwest::Client::new(),
        enclave,
        _dir: dir,
        _stop: stop,
    }
}

async fn start() -> Proxy {
    start_with(|_| {}).await
}

impl Proxy {
    async fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post(path, &body.to_string()).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }
}

/// The status of `response`, and its body as JSON (as a string when it is not JSON).
async fn status_and_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The stand-in's key blob "k" in base64.
const KEY: &str = "aw==";
/// The stand-in's address (0xabab…ab), EIP-55.
const FROM: &str = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB";

fn assert_error(response: &(StatusCode, Value), status: u16, code: &str, mentions: &[&str]) {
    assert_eq!(response.0.as_u16(), status, "{response:?}");
    let error = &response.1["error"];
    assert_eq!(error["code"], code, "{response:?}");
    let message = error["message"].as_str().unwrap();
    for mention in mentions {
        assert!(message.contains(mention), "{message:?} lacks {mention:?}");
    }
    assert_eq!(response.1.as_object().unwrap().len(), 1, "only `error`");
    assert_eq!(error.as_object().unwrap().len(), 2, "only code and message");
}

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let proxy = start().await;
    let response = proxy
        .http
        .get(format!("{}/healthz", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );

    let response = proxy
        .http
        .get(format!("{}/healthz", proxy.url))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-42");

    let ready = proxy.get("/readyz").await;
    assert_eq!(ready.0, 200);
    assert_eq!(
        ready.1,
        json!({
            "status": "ready", "server": "stand-in", "simulated": true, "hasCredentials": false,
            "cachedKeys": 1, "cacheHits": 2, "kmsCalls": 3, "kmsErrors": 4, "signatures": 5
        })
    );
}

#[tokio::test]
async fn keys_and_addresses() {
    let proxy = start().await;
    let created = proxy
        .post_json("/v1/keys", json!({"label": "tenant-7"}))
        .await;
    assert_eq!(created.0, 201);
    assert_eq!(
        created.1,
        json!({"keyBlob": "bmV3LWJsb2I=", "keyId": format!("0x{}", "1d".repeat(32))})
    );
    // No body at all: no label.
    let created = proxy.post("/v1/keys", "").await;
    assert_eq!(created.0, 201);
    assert_eq!(
        *proxy.enclave.seen.owners.lock().unwrap(),
        [Some("tenant-7".to_owned()), None]
    );

    let address = proxy
        .post_json("/v1/address", json!({"keyBlob": KEY, "userId": "alice"}))
        .await;
    assert_eq!(address.0, 200);
    assert_eq!(
        address.1,
        json!({"address": FROM, "publicKey": format!("0x04{}", "11".repeat(64))})
    );
}

/// A policy document as a caller writes it (spacing kept, to check it is forwarded as written).
const POLICY: &str = r#"{ "version" : 1, "rules": [ {"effect": "allow"} ] }"#;

#[tokio::test]
async fn key_policies_are_forwarded_as_written_and_hashed() {
    let proxy = start().await;
    let created = proxy
        .post("/v1/keys", &format!(r#"{{"label":"t","policy":{POLICY}}}"#))
        .await;
    assert_eq!(created.0, 201, "{created:?}");
    assert_eq!(
        created.1,
        json!({
            "keyBlob": "bmV3LWJsb2I=",
            "keyId": format!("0x{}", "1d".repeat(32)),
            "policyHash": format!("0x{}", "9a".repeat(32)),
        })
    );
    // No policy: no policyHash in the answer; `null` means none too.
    let plain = proxy.post_json("/v1/keys", json!({"label": "t"})).await;
    assert_eq!(plain.0, 201);
    assert!(plain.1.get("policyHash").is_none(), "{plain:?}");
    let null = proxy.post_json("/v1/keys", json!({"policy": null})).await;
    assert_eq!(null.0, 201);
    assert_eq!(
        proxy.enclave.policies(),
        [Some(POLICY.to_owned()), None, None]
    );
    assert_eq!(
        *proxy.enclave.seen.owners.lock().unwrap(),
        [Some("t".to_owned()), Some("t".to_owned()), None]
    );
}

#[tokio::test]
async fn policy_updates_are_forwarded_with_their_approvals() {
    let proxy = start().await;
    let signature = format!("0x{}", "5e".repeat(64));
    let body = format!(
        r#"{{"keyBlob":"aw==","policy":{POLICY},"approvals":[{{"approver":"admin-1","expiresAt":1767225600,"signature":"{signature}"}}]}}"#
    );
    let updated = proxy.post("/v1/keys/policy", &body).await;
    assert_eq!(
        updated,
        (
            StatusCode::OK,
            json!({
                "keyBlob": "dXBkYXRlZC1ibG9i",
                "keyId": format!("0x{}", "1d".repeat(32)),
                "policyHash": format!("0x{}", "9b".repeat(32)),
            })
        )
    );
    let updates = proxy.enclave.policy_updates();
    assert_eq!(updates.len(), 1);
    let update = &updates[0];
    assert_eq!(update.key_blob.as_slice(), b"k");
    assert_eq!(update.policy, POLICY);
    assert_eq!(update.approvals.len(), 1);
    assert_eq!(update.approvals[0].approver, "admin-1");
    assert_eq!(update.approvals[0].expires_at, 1_767_225_600);
    assert_eq!(update.approvals[0].signature.as_slice(), [0x5e; 64]);

    // Without approvals: forwarded with none, for the enclave to judge.
    let none = proxy
        .post(
            "/v1/keys/policy",
            &format!(r#"{{"keyBlob":"aw==","policy":{POLICY}}}"#),
        )
        .await;
    assert_eq!(none.0, 200);
    assert!(proxy.enclave.policy_updates()[1].approvals.is_empty());

    // The enclave's refusals.
    for code in ["approvals_required", "policy_denied", "invalid_request"] {
        let body = json!({"keyBlob": base64_of(&format!("error:{code}")), "policy": {}});
        let status = if code == "invalid_request" { 400 } else { 403 };
        assert_error(
            &proxy.post_json("/v1/keys/policy", body).await,
            status,
            code,
            &["stand-in says"],
        );
    }
    assert_error(
        &proxy
            .post_json("/v1/keys/policy", json!({"keyBlob": KEY}))
            .await,
        400,
        "invalid_request",
        &["missing field `policy`"],
    );
}

/// `n` approvals as a caller sends them.
fn approvals(n: usize) -> Value {
    (0..n)
        .map(|i| {
            json!({
                "approver": format!("ops-{i}"),
                "expiresAt": 1_767_225_600 + i,
                "signature": format!("0x{}", "a1".repeat(64)),
            })
        })
        .collect()
}

/// Each sign endpoint with a valid body for the stand-in (and `approvals` when given).
fn sign_requests(approvals: Option<&Value>) -> Vec<(&'static str, Value)> {
    let mut requests = vec![
        (
            "/v1/sign/transaction",
            json!({"keyBlob": KEY, "transaction": {"type": "0x2"}}),
        ),
        (
            "/v1/sign/transactions",
            json!({"keyBlob": KEY, "transactions": [{}, {}]}),
        ),
        (
            "/v1/sign/message",
            json!({"keyBlob": KEY, "message": "0x6869"}),
        ),
        (
            "/v1/sign/typed-data",
            json!({"keyBlob": KEY, "typedData": {"types": {}}}),
        ),
        (
            "/v1/sign/authorization",
            json!({"keyBlob": KEY, "authorization": {"chainId": "0x1"}}),
        ),
        (
            "/v1/sign/digest",
            json!({"keyBlob": KEY, "digest": format!("0x{}", "ee".repeat(32))}),
        ),
    ];
    if let Some(approvals) = approvals {
        for (_, body) in &mut requests {
            body["approvals"] = approvals.clone();
        }
    }
    requests
}

#[tokio::test]
async fn approvals_are_forwarded_on_every_sign_endpoint() {
    let proxy = start().await;
    let given = approvals(16);
    for (path, body) in sign_requests(Some(&given)) {
        let response = proxy.post_json(path, body).await;
        assert_eq!(response.0, 200, "{path}: {response:?}");
    }
    let seen = proxy.enclave.approvals();
    assert_eq!(seen.len(), 6, "one request per endpoint, the batch once");
    for approvals in &seen {
        assert_eq!(approvals.len(), 16);
        for (i, approval) in approvals.iter().enumerate() {
            assert_eq!(approval.approver, format!("ops-{i}"));
            assert_eq!(approval.expires_at, 1_767_225_600 + i as u64);
            assert_eq!(approval.signature.as_slice(), [0xa1; 64]);
        }
    }
    // None given, none sent; an empty list is the same.
    for (path, body) in sign_requests(None)
        .into_iter()
        .chain(sign_requests(Some(&json!([]))))
    {
        assert_eq!(proxy.post_json(path, body).await.0, 200, "{path}");
    }
    assert!(proxy.enclave.approvals()[6..].iter().all(Vec::is_empty));
}

#[tokio::test]
async fn malformed_approvals_are_400_with_the_field_named() {
    let proxy = start().await;
    let good = approvals(1)[0].clone();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut approval = good.clone();
        change(&mut approval);
        json!([approval])
    };
    let cases: Vec<(Value, &[&str])> = vec![
        (
            with(&|a| a["role"] = json!("admin")),
            &["`approvals[0].role`", "unknown field `role`"],
        ),
        (
            with(&|a| a["signature"] = json!("0xSECRETzz")),
            &["`approvals[0].signature`", "hex"],
        ),
        (
            with(&|a| a["signature"] = json!("a1a1")),
            &["`approvals[0].signature`", "0x"],
        ),
        (
            with(&|a| a["expiresAt"] = json!("1767225600")),
            &["`approvals[0].expiresAt`", "invalid type"],
        ),
        (
            with(&|a| a["expiresAt"] = json!(-1)),
            &["`approvals[0].expiresAt`"],
        ),
        (
            with(&|a| {
                a.as_object_mut().unwrap().remove("approver");
            }),
            &["`approvals[0]`", "missing field `approver`"],
        ),
        (approvals(17), &["`approvals`", "more than 16 approvals"]),
        (good.clone(), &["`approvals`", "invalid type"]),
    ];
    for (approvals, mentions) in &cases {
        for (path, mut body) in sign_requests(None) {
            body["approvals"] = approvals.clone();
            let response = proxy.post_json(path, body).await;
            assert_error(&response, 400, "invalid_request", mentions);
            let message = response.1["error"]["message"].as_str().unwrap();
            assert!(!message.contains("SECRET"), "{message}");
        }
        let body = json!({"keyBlob": KEY, "policy": {}, "approvals": approvals});
        let response = proxy.post_json("/v1/keys/policy", body).await;
        assert_error(&response, 400, "invalid_request", mentions);
    }
    assert!(
        proxy.enclave.approvals().is_empty(),
        "nothing reached the enclave"
    );
    assert!(proxy.enclave.policy_updates().is_empty());
}

#[tokio::test]
async fn policy_refusals_are_403_on_every_sign_endpoint() {
    let proxy = start().await;
    for code in ["policy_denied", "approvals_required"] {
        for (path, mut body) in sign_requests(Some(&approvals(1))) {
            body["keyBlob"] = json!(base64_of(&format!("error:{code}")));
            let response = proxy.post_json(path, body).await;
            assert_error(&response, 403, code, &["stand-in says"]);
        }
    }
}

#[tokio::test]
async fn transactions_are_passed_as_written_and_answered_in_rpc_form() {
    let proxy = start().await;
    let body =
        r#"{"keyBlob":"aw==","userId":"alice","transaction":{ "type":"0x2", "chainId" : "0x1" }}"#;
    let signed = proxy.post("/v1/sign/transaction", body).await;
    assert_eq!(signed.0, 200, "{signed:?}");
    assert_eq!(
        signed.1,
        json!({
            "from": FROM,
            "hash": format!("0x{}", "3c".repeat(32)),
            "signingHash": format!("0x{}", "5a".repeat(32)),
            "signature": {
                "r": format!("0x1{}", "01".repeat(31)),
                "s": "0x2",
                "yParity": "0x1"
            },
            "raw": "0x02c0"
        })
    );
    assert_eq!(
        proxy.enclave.payloads(),
        [r#"{ "type":"0x2", "chainId" : "0x1" }"#]
    );

    // Legacy: `v` too.
    let signed = proxy
        .post_json(
            "/v1/sign/transaction",
            json!({"keyBlob": KEY, "transaction": {"gasPrice": "0x1"}}),
        )
        .await;
    assert_eq!(signed.1["signature"]["v"], "0x25");
}

#[tokio::test]
async fn batches_answer_in_order_with_per_item_errors() {
    let proxy = start().await;
    let batch = proxy
        .post_json(
            "/v1/sign/transactions",
            json!({"keyBlob": KEY, "userId": "u", "transactions": [{"a": "0x1"}, {"refuse": true}, {}]}),
        )
        .await;
    assert_eq!(batch.0, 200, "{batch:?}");
    let results = batch.1["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["from"], FROM);
    assert_eq!(results[0]["raw"], "0x02c0");
    assert_eq!(
        results[1],
        json!({"error": {"code": "policy_refused", "message": "refused"}})
    );
    assert_eq!(results[2]["signature"]["yParity"], "0x1");

    let too_many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    let response = proxy
        .post_json(
            "/v1/sign/transactions",
            json!({"keyBlob": KEY, "transactions": too_many}),
        )
        .await;
    assert_error(&response, 400, "invalid_request", &["transactions", "1000"]);
    let response = proxy
        .post_json(
            "/v1/sign/transactions",
            json!({"keyBlob": KEY, "transactions": []}),
        )
        .await;
    assert_error(
        &response,
        400,
        "invalid_request",
        &["transactions", "empty"],
    );
}

#[tokio::test]
async fn messages_typed_data_digests_and_authorizations() {
    let proxy = start().await;
    let signature = format!("0x{}{:064x}1c", "01".repeat(32), 2);
    let expected = json!({
        "from": FROM,
        "hash": format!("0x{}", "5a".repeat(32)),
        "signature": signature,
    });

    let hex = proxy
        .post_json(
            "/v1/sign/message",
            json!({"keyBlob": KEY, "message": "0x6869"}),
        )
        .await;
    assert_eq!(hex, (StatusCode::OK, expected.clone()));
    let text = proxy
        .post_json(
            "/v1/sign/message",
            json!({"keyBlob": KEY, "message": {"utf8": "hi"}}),
        )
        .await;
    assert_eq!(text, (StatusCode::OK, expected.clone()));

    let typed = proxy
        .post(
            "/v1/sign/typed-data",
            r#"{"keyBlob":"aw==","typedData":{"types":{},"primaryType":"X"}}"#,
        )
        .await;
    assert_eq!(typed, (StatusCode::OK, expected.clone()));

    let digest = format!("0x{}", "ee".repeat(32));
    let signed = proxy
        .post_json("/v1/sign/digest", json!({"keyBlob": KEY, "digest": digest}))
        .await;
    assert_eq!(signed, (StatusCode::OK, expected));

    let authorization = proxy
        .post(
            "/v1/sign/authorization",
            r#"{"keyBlob":"aw==","authorization":{"chainId":"0x1","address":"0xadadadadadadadadadadadadadadadadadadadad","nonce":"0x9"}}"#,
        )
        .await;
    assert_eq!(authorization.0, 200, "{authorization:?}");
    let authorization = authorization.1;
    assert_eq!(authorization["from"], FROM);
    assert_eq!(authorization["chainId"], "0x1");
    assert_eq!(authorization["nonce"], "0x9");
    assert_eq!(authorization["yParity"], "0x1");
    assert_eq!(authorization["s"], "0x2");
    assert_eq!(
        authorization["address"].as_str().unwrap().to_lowercase(),
        format!("0x{}", "ad".repeat(20))
    );
    assert_eq!(authorization.as_object().unwrap().len(), 8);

    assert_eq!(
        proxy.enclave.payloads(),
        [
            "message:6869".to_owned(),
            "message:6869".to_owned(),
            r#"{"types":{},"primaryType":"X"}"#.to_owned(),
            format!("digest:{}", "ee".repeat(32)),
            r#"{"chainId":"0x1","address":"0xadadadadadadadadadadadadadadadadadadadad","nonce":"0x9"}"#.to_owned(),
        ]
    );
}

#[tokio::test]
async fn attestation_documents_come_back_in_base64() {
    let proxy = start().await;
    let response = proxy
        .post_json("/v1/attestation", json!({"nonce": "0x0102"}))
        .await;
    assert_eq!(response, (StatusCode::OK, json!({"document": "ZG9jOgEC"})));
}

#[tokio::test]
async fn malformed_requests_are_400_with_the_field_named() {
    let proxy = start().await;
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "/v1/sign/digest",
            r#"{"keyBlob":"aw==","digest":"0x12"}"#,
            &["`digest`", "32 bytes"],
        ),
        (
            "/v1/sign/digest",
            r#"{"keyBlob":"aw==","digest":"12zz"}"#,
            &["`digest`", "0x"],
        ),
        (
            "/v1/sign/message",
            r#"{"keyBlob":"aw==","message":"0x1"}"#,
            &["`message`", "odd"],
        ),
        (
            "/v1/address",
            r#"{"userId":"alice"}"#,
            &["missing field `keyBlob`"],
        ),
        (
            "/v1/address",
            r#"{"keyBlob":"aw==","userID":"alice"}"#,
            &["unknown field `userID`"],
        ),
        (
            "/v1/address",
            r#"{"keyBlob":"!!SECRETBLOB!!"}"#,
            &["`keyBlob`", "base64"],
        ),
        (
            "/v1/address",
            r#"{"keyBlob":12}"#,
            &["`keyBlob`", "invalid type"],
        ),
        (
            "/v1/address",
            r#"{"keyBlob":"aw==""#,
            &["invalid request body"],
        ),
        ("/v1/address", "", &["invalid request body"]),
        (
            "/v1/sign/transaction",
            r#"{"keyBlob":"aw=="}"#,
            &["missing field `transaction`"],
        ),
        (
            "/v1/attestation",
            r#"{"nonce":"0x01","extra":1}"#,
            &["unknown field `extra`"],
        ),
        ("/v1/keys", r#"{"label":7}"#, &["`label`"]),
    ];
    for (path, body, mentions) in cases {
        let response = proxy.post(path, body).await;
        assert_error(&response, 400, "invalid_request", mentions);
        let message = response.1["error"]["message"].as_str().unwrap();
        assert!(!message.contains("SECRETBLOB"), "{message}");
    }
}

#[tokio::test]
async fn limits_unknown_routes_and_methods() {
    let proxy = start_with(|args| args.max_body_bytes = NonZeroUsize::new(1024).unwrap()).await;
    let big = json!({"keyBlob": KEY, "message": format!("0x{}", "00".repeat(2000))});
    let response = proxy.post_json("/v1/sign/message", big).await;
    assert_error(&response, 413, "payload_too_large", &["1024"]);

    assert_error(&proxy.get("/v2/nothing").await, 404, "not_found", &[]);
    assert_error(&proxy.post("/nothing", "{}").await, 404, "not_found", &[]);
    assert_error(
        &proxy.get("/v1/sign/message").await,
        405,
        "method_not_allowed",
        &[],
    );
}

#[tokio::test]
async fn enclave_errors_map_to_http_statuses() {
    let proxy = start().await;
    for (code, status) in [
        ("invalid_request", 400),
        ("invalid_key_blob", 400),
        ("policy_refused", 403),
        ("policy_denied", 403),
        ("approvals_required", 403),
        ("kms_access_denied", 403),
        ("kms_unavailable", 502),
        ("no_credentials", 503),
        ("busy", 503),
        ("unsupported_protocol", 502),
        ("internal", 500),
    ] {
        let blob = base64_of(&format!("error:{code}"));
        let response = proxy
            .post_json("/v1/address", json!({"keyBlob": blob}))
            .await;
        assert_error(&response, status, code, &["stand-in says"]);
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn a_stalled_enclave_is_504_and_a_missing_one_503() {
    let mut proxy = start_with(|args| {
        args.request_timeout_ms = NonZeroU64::new(300).unwrap();
    })
    .await;
    let stall = json!({"keyBlob": base64_of("stall")});
    let started = std::time::Instant::now();
    let response = proxy.post_json("/v1/address", stall).await;
    assert_error(&response, 504, "enclave_timeout", &["300 ms"]);
    assert!(started.elapsed() < Duration::from_secs(2));

    proxy.enclave.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let response = proxy
        .post_json("/v1/address", json!({"keyBlob": KEY}))
        .await;
    assert_error(&response, 503, "enclave_unavailable", &[]);
    assert!(started.elapsed() < Duration::from_millis(200));
    let message = response.1["error"]["message"].as_str().unwrap();
    assert!(!message.contains(".sock"), "no internal detail: {message}");
    assert_error(&proxy.get("/readyz").await, 503, "enclave_unavailable", &[]);
    // Health is about the proxy alone.
    assert_eq!(proxy.get("/healthz").await.0, 200);

    proxy.enclave.restart().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(proxy.get("/readyz").await.0, 200);
}

#[tokio::test]
async fn over_the_concurrency_limit_requests_are_shed() {
    let proxy = start_with(|args| {
        args.max_concurrency = NonZeroUsize::new(1).unwrap();
        args.request_timeout_ms = NonZeroU64::new(1000).unwrap();
    })
    .await;
    let stalled = {
        let http = proxy.http.clone();
        let url = format!("{}/v1/address", proxy.url);
        tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/json")
                .body(json!({"keyBlob": base64_of("stall")}).to_string())
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = proxy
        .post_json("/v1/address", json!({"keyBlob": KEY}))
        .await;
    assert_error(&response, 503, "overloaded", &[]);
    assert_eq!(proxy.get("/healthz").await.0, 200, "health is never shed");
    assert_eq!(stalled.await.unwrap(), 504);
    assert_eq!(
        proxy
            .post_json("/v1/address", json!({"keyBlob": KEY}))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn metrics_cover_requests_stages_connections_and_the_enclave() {
    let proxy = start().await;
    proxy
        .post_json("/v1/address", json!({"keyBlob": KEY}))
        .await;
    proxy.post("/v1/address", "{").await;
    let response = proxy
        .http
        .get(format!("{}/metrics", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"nitro_signer_proxy_http_requests_total{endpoint="address",status="200"} 1"#,
        r#"nitro_signer_proxy_http_requests_total{endpoint="address",status="400"} 1"#,
        r#"nitro_signer_proxy_http_request_duration_seconds_count{endpoint="address"} 2"#,
        r#"nitro_signer_proxy_stage_duration_seconds_count{endpoint="address",stage="enclave"} 1"#,
        r#"nitro_signer_proxy_stage_duration_seconds_count{endpoint="address",stage="proxy"} 2"#,
        "nitro_signer_proxy_enclave_connections 4",
        "nitro_signer_proxy_enclave_reconnects_total 0",
        "nitro_signer_enclave_up 1",
        "nitro_signer_enclave_kms_calls_total 3",
        "nitro_signer_enclave_kms_errors_total 4",
        "nitro_signer_enclave_cache_hits_total 2",
        "nitro_signer_enclave_cached_keys 1",
        "nitro_signer_enclave_signatures_total 5",
        "nitro_signer_enclave_cpu_seconds_total 6.5",
        "nitro_signer_enclave_resident_memory_bytes 7340032",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // The proxy's own, under the usual names: present and plausible.
    assert!(metrics::sample::<f64>(&text, "process_cpu_seconds_total") >= 0.0);
    assert!(metrics::sample::<f64>(&text, "process_resident_memory_bytes") > 1e6);
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(text.matches("# EOF").count(), 1);
}
