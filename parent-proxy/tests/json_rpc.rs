//! The JSON-RPC endpoint (`POST /`) on the real router, against the enclave stand-in and a fake
//! upstream node: the envelope (batches, notifications, error codes), the accounts directory
//! (checked with the enclave at load), approvals in a header, what `eth_sendTransaction` fills
//! in and the nonces it assigns under concurrency, and an upstream node that is down, slow or
//! refusing. The real chain and real clients are in `cli/tests/json_rpc_e2e.rs`.
#![cfg(test)]

mod support;

use std::{
    net::SocketAddr,
    num::NonZeroU64,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, routing::post};
use nitro_signer_proxy::Args;
use nitro_signer_tests::stand_in::StandIn;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The stand-in's address for every key blob.
const STAND_IN: &str = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB";
/// The stand-in's hash of every signed transaction.
const TX_HASH: &str = "0x3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c";

/// How the fake upstream node behaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    /// Answers nothing for this long.
    Slow(Duration),
    /// Refuses every transaction.
    Refuse,
    /// Answers everything but `eth_sendRawTransaction`, which it never answers.
    LoseSends,
}

/// A fake Ethereum node: answers what `eth_sendTransaction` asks, records every call.
#[derive(Clone)]
struct Node {
    calls: Arc<Mutex<Vec<Value>>>,
    mode: Mode,
}

async fn node_answer(State(node): State<Node>, Json(request): Json<Value>) -> Json<Value> {
    node.calls.lock().unwrap().push(request.clone());
    if let Mode::Slow(delay) = node.mode {
        tokio::time::sleep(delay).await;
    }
    let id = request["id"].clone();
    let result = match request["method"].as_str().unwrap() {
        "eth_chainId" => json!("0x7a69"),
        "eth_getTransactionCount" => json!("0x5"),
        "eth_gasPrice" => json!("0x3b9aca00"),
        "eth_estimateGas" => json!("0x5208"),
        "eth_blockNumber" => json!("0x10"),
        "eth_feeHistory" => json!({
            "oldestBlock": "0x1",
            "baseFeePerGas": ["0x64", "0x64", "0xc8"],
            "reward": [["0x0"], ["0x2"], ["0x4"]],
            "gasUsedRatio": [0.5, 0.5],
        }),
        "eth_sendRawTransaction" if node.mode == Mode::LoseSends => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        "eth_sendRawTransaction" if node.mode == Mode::Refuse => {
            return Json(json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32003, "message": "insufficient funds for gas * price + value"}}));
        }
        "eth_sendRawTransaction" => json!(TX_HASH),
        other => {
            return Json(json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": format!("method {other} not found")}}));
        }
    };
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

impl Node {
    async fn start(mode: Mode) -> (Self, SocketAddr) {
        let node = Node {
            calls: Arc::default(),
            mode,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/", post(node_answer))
            .with_state(node.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (node, address)
    }

    fn methods(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|call| call["method"].as_str().unwrap().to_owned())
            .collect()
    }
}

struct Proxy {
    url: String,
    http: reqwest::Client,
    enclave: StandIn,
    dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

/// Writes an account file; `blob` is the stand-in's key blob text.
fn write_account(dir: &Path, file: &str, address: &str, blob: &[u8]) {
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD.encode(blob);
    std::fs::write(
        dir.join(file),
        json!({"address": address, "keyBlob": blob, "userId": "alice"}).to_string(),
    )
    .unwrap();
}

/// The proxy with an accounts directory holding the stand-in's account (and whatever `files`
/// adds), and `upstream` as its node.
async fn start(upstream: Option<String>, files: impl FnOnce(&Path)) -> Proxy {
    start_with(upstream, files, |_| {}).await
}

/// [`start`] with more settings.
async fn start_with(
    upstream: Option<String>,
    files: impl FnOnce(&Path),
    configure: impl FnOnce(&mut Args),
) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("accounts");
    std::fs::create_dir(&accounts).unwrap();
    write_account(&accounts, "a.json", STAND_IN, b"k");
    files(&accounts);
    let (address, enclave, stop) = support::start_proxy(&dir, |args: &mut Args| {
        args.accounts_dir = Some(accounts.clone());
        args.upstream = upstream;
        args.upstream_timeout_ms = NonZeroU64::new(500).unwrap();
        configure(args);
    })
    .await;
    let proxy = Proxy {
        url: format!("http://{address}"),
        http: reqwest::Client::new(),
        enclave,
        dir,
        _stop: stop,
    };
    // The first load runs in the background: wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.call("eth_accounts", json!([])).await["result"] == json!([]) {
        assert!(Instant::now() < deadline, "the accounts were not loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy
}

impl Proxy {
    async fn post(&self, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
        let (status, answer) = self.post(&body.to_string(), &[]).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["jsonrpc"], "2.0");
        assert_eq!(answer["id"], 7);
        answer
    }

    async fn error(&self, method: &str, params: Value) -> (i64, String) {
        let answer = self.call(method, params).await;
        let error = &answer["error"];
        assert!(answer.get("result").is_none(), "{answer}");
        (
            error["code"].as_i64().unwrap(),
            error["message"].as_str().unwrap().to_owned(),
        )
    }
}

fn transfer() -> Value {
    json!({"from": STAND_IN, "to": "0x3535353535353535353535353535353535353535", "value": "0x1"})
}

#[tokio::test]
async fn the_envelope_follows_json_rpc_2() {
    let proxy = start(None, |_| {}).await;
    assert_eq!(
        proxy.call("eth_accounts", json!([])).await["result"],
        json!([STAND_IN])
    );
    assert_eq!(
        proxy.call("eth_requestAccounts", json!([])).await["result"],
        json!([STAND_IN])
    );
    // A batch answers in order; a notification (no id) gets no answer.
    let body = json!([
        {"jsonrpc": "2.0", "id": "a", "method": "eth_accounts"},
        {"jsonrpc": "2.0", "method": "eth_accounts"},
        {"jsonrpc": "2.0", "id": 2, "method": "eth_nope"},
        {"jsonrpc": "1.0", "id": 3, "method": "eth_accounts"},
        5,
    ]);
    let (status, answer) = proxy.post(&body.to_string(), &[]).await;
    assert_eq!(status, 200);
    let answers = answer.as_array().unwrap();
    assert_eq!(answers.len(), 4, "{answer}");
    assert_eq!(answers[0]["id"], "a");
    assert_eq!(answers[0]["result"], json!([STAND_IN]));
    assert_eq!(answers[1]["error"]["code"], -32601, "no upstream: {answer}");
    assert_eq!(answers[2]["id"], 3);
    assert_eq!(answers[2]["error"]["code"], -32600);
    assert_eq!(answers[3]["id"], Value::Null);
    assert_eq!(answers[3]["error"]["code"], -32600);
    // Only notifications: nothing to answer.
    let (status, _) = proxy
        .post(r#"{"jsonrpc":"2.0","method":"eth_accounts"}"#, &[])
        .await;
    assert_eq!(status, 204);

    for (body, code, says) in [
        ("{", -32700, "not JSON"),
        ("[]", -32600, "empty"),
        ("7", -32600, "request object"),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_accounts","id":2}"#,
            -32600,
            "repeated key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_accounts","x":1}"#,
            -32600,
            "unknown member",
        ),
        (
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"eth_accounts"}"#,
            -32600,
            "`id`",
        ),
        (r#"{"jsonrpc":"2.0","id":1,"method":7}"#, -32600, "`method`"),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_accounts","params":"x"}"#,
            -32600,
            "`params`",
        ),
    ] {
        let (status, answer) = proxy.post(body, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
        // An id that is not one is not repeated.
        assert!(
            answer["id"].is_null() || answer["id"] == 1,
            "{body}: {answer}"
        );
    }
    let calls: Vec<Value> = (0..101)
        .map(|id| json!({"jsonrpc": "2.0", "id": id, "method": "eth_accounts"}))
        .collect();
    let (_, answer) = proxy.post(&Value::Array(calls).to_string(), &[]).await;
    assert_eq!(answer["error"]["code"], -32600, "{answer}");

    // Parameters.
    for (method, params, says) in [
        ("eth_accounts", json!([1]), "takes 0 parameters"),
        ("eth_sign", json!([STAND_IN]), "takes 2 parameters"),
        ("eth_sign", json!(["0x12", "0x00"]), "address"),
        ("eth_sign", json!([STAND_IN, "hello"]), "0x hex"),
        ("personal_sign", json!(["0xzz", STAND_IN]), "0x hex"),
        ("eth_signTypedData_v4", json!([STAND_IN, 5]), "typed data"),
        ("eth_signTransaction", json!([{"to": null}]), "`from`"),
        (
            "eth_signTransaction",
            json!([{"from": STAND_IN, "value": "0x1"}]),
            "contract creation without any data",
        ),
        (
            "eth_signTransaction",
            json!([{"from": STAND_IN, "input": "0x"}]),
            "contract creation without any data",
        ),
        ("eth_signTransaction", json!(["0x00"]), "JSON object"),
        ("eth_signTransaction", json!({"tx": {}}), "array"),
    ] {
        let (code, message) = proxy.error(method, params.clone()).await;
        assert_eq!(code, -32602, "{method} {params}: {message}");
        assert!(message.contains(says), "{method} {params}: {message}");
    }
    // Unknown accounts, and methods that would sign with a node's own keys.
    let (code, message) = proxy
        .error(
            "eth_sign",
            json!(["0x0000000000000000000000000000000000000001", "0x00"]),
        )
        .await;
    assert_eq!(code, -32000);
    assert!(message.contains("unknown account"), "{message}");
    for method in [
        "eth_signTypedData_v3",
        "personal_unlockAccount",
        "wallet_sendCalls",
    ] {
        assert_eq!(proxy.error(method, json!([])).await.0, -32601, "{method}");
    }
}

#[tokio::test]
async fn signing_methods_reach_the_enclave_in_its_shape() {
    let proxy = start(None, |_| {}).await;
    // personal_sign's parameters are the other way round from eth_sign's.
    let first = proxy
        .call("personal_sign", json!(["0x68656c6c6f", STAND_IN]))
        .await;
    let second = proxy
        .call("eth_sign", json!([STAND_IN.to_lowercase(), "0x68656c6c6f"]))
        .await;
    let signature = format!("0x{}{:064x}1c", "01".repeat(32), 2);
    assert_eq!(first["result"], signature.as_str());
    assert_eq!(second["result"], signature.as_str());
    // Typed data as an object, and as its JSON text.
    let typed = json!({"types": {"EIP712Domain": []}, "primaryType": "EIP712Domain", "domain": {}, "message": {}});
    for method in ["eth_signTypedData_v4", "eth_signTypedData"] {
        for form in [typed.clone(), Value::String(typed.to_string())] {
            let answer = proxy.call(method, json!([STAND_IN, form])).await;
            assert_eq!(answer["result"], signature.as_str(), "{answer}");
        }
    }
    // geth's transaction object: a missing `to` is a contract creation, said explicitly.
    let answer = proxy
        .call(
            "eth_signTransaction",
            json!([{"from": STAND_IN, "input": "0x6000", "gas": "0x5208", "nonce": "0x0",
            "chainId": "0x1", "maxFeePerGas": "0x2", "maxPriorityFeePerGas": "0x1"}]),
        )
        .await;
    assert_eq!(answer["result"], "0x02c0");
    let payloads = proxy.enclave.payloads();
    assert_eq!(payloads[0], "message:68656c6c6f");
    assert_eq!(payloads[1], "message:68656c6c6f");
    let tx: Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
    assert_eq!(tx["to"], Value::Null);
    assert_eq!(tx["from"], STAND_IN);
    assert_eq!(tx["input"], "0x6000");
    // Without an upstream node nothing else is filled in: the enclave says what is missing.
    proxy.call("eth_signTransaction", json!([transfer()])).await;
    let tx: Value = serde_json::from_str(proxy.enclave.payloads().last().unwrap()).unwrap();
    assert!(tx.get("chainId").is_none(), "{tx}");
    assert!(tx.get("nonce").is_none(), "{tx}");
}

#[tokio::test]
async fn approvals_come_in_a_header() {
    let proxy = start(None, |_| {}).await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "personal_sign",
        "params": ["0x00", STAND_IN]})
    .to_string();
    let approvals = json!([{"approver": "ops", "expiresAt": 1_900_000_000u64,
        "signature": format!("0x{}", "11".repeat(64))}])
    .to_string();
    let (_, answer) = proxy
        .post(&body, &[("x-nitro-signer-approvals", &approvals)])
        .await;
    assert!(answer.get("result").is_some(), "{answer}");
    let seen = proxy.enclave.approvals();
    let last = seen.last().unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].approver, "ops");
    assert_eq!(last[0].expires_at, 1_900_000_000);
    for bad in [
        "not json",
        r#"[{"approver":"a","expiresAt":1,"signature":"0x11","extra":1}]"#,
        r#"[{"approver":"a","approver":"b","expiresAt":1,"signature":"0x11"}]"#,
    ] {
        let (_, answer) = proxy
            .post(&body, &[("x-nitro-signer-approvals", bad)])
            .await;
        assert_eq!(answer["error"]["code"], -32600, "{bad}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("X-Nitro-Signer-Approvals"), "{message}");
    }
}

#[tokio::test]
async fn accounts_are_checked_with_the_enclave_when_loaded() {
    let other = "0x3535353535353535353535353535353535353535";
    let proxy = start(None, |dir| {
        // The stand-in gives 0xabab… for every blob: this file's address is not its.
        write_account(dir, "b.json", other, b"k");
        std::fs::write(dir.join("c.json"), r#"{"address":"0x12"}"#).unwrap();
        // The enclave cannot say yet.
        write_account(dir, "d.json", STAND_IN, b"error:kms_unavailable");
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        std::fs::write(dir.join(".e.json"), "ignored").unwrap();
    })
    .await;
    assert_eq!(
        proxy.call("eth_accounts", json!([])).await["result"],
        json!([STAND_IN])
    );
    let (code, message) = proxy.error("eth_sign", json!([other, "0x00"])).await;
    assert_eq!(code, -32000);
    assert!(message.contains("unknown account"), "{message}");

    let reload = |proxy: &Proxy| {
        let request = proxy.http.post(format!("{}/reload", proxy.url)).send();
        async move { request.await.unwrap().json::<Value>().await.unwrap() }
    };
    let report = reload(&proxy).await;
    assert_eq!(report["accounts"], json!([STAND_IN]), "{report}");
    let refused = report["refused"].as_array().unwrap();
    let files: Vec<&str> = refused
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["b.json", "c.json"], "{report}");
    let reason = refused[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(STAND_IN) && reason.contains("not the file's"),
        "{reason}"
    );
    assert_eq!(report["pending"][0]["file"], "d.json", "{report}");

    // A new file is served after a reload; a removed one is no longer.
    let accounts = proxy.dir.path().join("accounts");
    std::fs::remove_file(accounts.join("a.json")).unwrap();
    std::fs::remove_file(accounts.join("d.json")).unwrap();
    write_account(&accounts, "z.json", STAND_IN, b"k2");
    let report = reload(&proxy).await;
    assert_eq!(report["accounts"], json!([STAND_IN]), "{report}");
    assert_eq!(report["pending"], json!([]));
    // Two files for one address: the first (by name) is served.
    write_account(&accounts, "y.json", STAND_IN, b"k3");
    let report = reload(&proxy).await;
    let refused = report["refused"].as_array().unwrap();
    assert!(
        refused
            .iter()
            .any(|r| r["file"] == "z.json" && r["reason"].as_str().unwrap().contains("y.json")),
        "{report}"
    );
    // GET /upcheck, web3signer's liveness check.
    let response = reqwest::get(format!("{}/upcheck", proxy.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "OK");
}

#[tokio::test]
async fn send_transaction_fills_in_what_geth_does_and_never_reuses_a_nonce() {
    let (node, address) = Node::start(Mode::Normal).await;
    let proxy = start(Some(format!("http://{address}")), |_| {}).await;
    let answer = proxy.call("eth_sendTransaction", json!([transfer()])).await;
    assert_eq!(answer["result"], TX_HASH, "{answer}");
    let tx: Value = serde_json::from_str(proxy.enclave.payloads().last().unwrap()).unwrap();
    // Chain id from eth_chainId; nonce from the pending count; gas from eth_estimateGas; fees
    // from the fee history: tip the median non-zero reward (0x2, 0x4 → 0x4), fee cap twice the
    // next base fee (0xc8) plus the tip.
    assert_eq!(
        tx,
        json!({"from": STAND_IN, "to": "0x3535353535353535353535353535353535353535",
            "value": "0x1", "chainId": "0x7a69", "nonce": "0x5", "gas": "0x5208",
            "maxPriorityFeePerGas": "0x4", "maxFeePerGas": "0x194"})
    );
    // What the caller gave is kept; type 0x0 without a price gets eth_gasPrice.
    proxy
        .call(
            "eth_sendTransaction",
            json!([{"from": STAND_IN, "to": null, "type": "0x0", "gas": "0x1", "nonce": "0x9",
            "chainId": "0x5"}]),
        )
        .await;
    let tx: Value = serde_json::from_str(proxy.enclave.payloads().last().unwrap()).unwrap();
    assert_eq!(tx["gasPrice"], "0x3b9aca00");
    assert_eq!(
        (&tx["gas"], &tx["nonce"], &tx["chainId"]),
        (&json!("0x1"), &json!("0x9"), &json!("0x5"))
    );
    assert!(tx.get("maxFeePerGas").is_none());

    // 50 at once from one account: the node's pending count stays 5 (it is a fake), so the
    // nonces must come from the proxy's own count, each used once, with no gap.
    let before = proxy.enclave.payloads().len();
    let proxy = Arc::new(proxy);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let proxy = Arc::clone(&proxy);
        tasks.spawn(async move { proxy.call("eth_sendTransaction", json!([transfer()])).await });
    }
    while let Some(answer) = tasks.join_next().await {
        assert_eq!(answer.unwrap()["result"], TX_HASH);
    }
    let mut nonces: Vec<u64> = proxy.enclave.payloads()[before..]
        .iter()
        .map(|text| {
            let tx: Value = serde_json::from_str(text).unwrap();
            u64::from_str_radix(tx["nonce"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
        })
        .collect();
    nonces.sort_unstable();
    assert_eq!(nonces, (6..56).collect::<Vec<u64>>());
    // eth_chainId is asked once; everything else goes to the node.
    assert_eq!(
        node.methods()
            .iter()
            .filter(|m| *m == "eth_chainId")
            .count(),
        1
    );
    let answer = proxy.call("eth_blockNumber", json!([])).await;
    assert_eq!(answer["result"], "0x10");
    // Only the standard methods are passed on by default.
    let (code, message) = proxy
        .error("debug_traceTransaction", json!([TX_HASH]))
        .await;
    assert_eq!(code, -32601);
    assert!(message.contains("--upstream-all-methods"), "{message}");
    // The node's own errors are passed on as they came.
    let (code, message) = proxy.error("eth_getBalance", json!([STAND_IN])).await;
    assert_eq!(
        (code, message.as_str()),
        (-32601, "method eth_getBalance not found")
    );
    // Blob transactions need their blobs.
    let (code, message) = proxy
        .error(
            "eth_sendTransaction",
            json!([{"from": STAND_IN, "to": STAND_IN, "blobVersionedHashes": []}]),
        )
        .await;
    assert_eq!(code, -32602);
    assert!(message.contains("blob"), "{message}");
}

#[tokio::test]
async fn a_refused_transaction_does_not_use_up_its_nonce() {
    let (_node, address) = Node::start(Mode::Refuse).await;
    let proxy = start(Some(format!("http://{address}")), |_| {}).await;
    for _ in 0..2 {
        let (code, message) = proxy
            .error("eth_sendTransaction", json!([transfer()]))
            .await;
        assert_eq!(
            (code, message.as_str()),
            (-32003, "insufficient funds for gas * price + value")
        );
    }
    let nonces: Vec<Value> = proxy
        .enclave
        .payloads()
        .iter()
        .map(|text| serde_json::from_str::<Value>(text).unwrap()["nonce"].clone())
        .collect();
    assert_eq!(nonces, [json!("0x5"), json!("0x5")]);
}

#[tokio::test]
async fn a_send_without_an_answer_counts_its_nonce_and_names_its_hash() {
    let (_node, address) = Node::start(Mode::LoseSends).await;
    let proxy = start(Some(format!("http://{address}")), |_| {}).await;
    for expected in ["0x5", "0x6"] {
        let answer = proxy.call("eth_sendTransaction", json!([transfer()])).await;
        let error = &answer["error"];
        assert_eq!(error["code"], -32000, "{answer}");
        assert_eq!(error["data"]["hash"], TX_HASH, "{answer}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("may have been sent") && message.contains("500 ms"),
            "{message}"
        );
        let tx: Value = serde_json::from_str(proxy.enclave.payloads().last().unwrap()).unwrap();
        assert_eq!(tx["nonce"], expected, "the unknown send used up its nonce");
    }
}

#[tokio::test]
async fn passing_every_method_is_a_choice() {
    let (node, address) = Node::start(Mode::Normal).await;
    let proxy = start_with(
        Some(format!("http://{address}")),
        |_| {},
        |args| {
            args.upstream_all_methods = true;
        },
    )
    .await;
    let (code, _) = proxy
        .error("debug_traceTransaction", json!([TX_HASH]))
        .await;
    assert_eq!(code, -32601, "the fake node's own answer");
    assert!(
        node.methods()
            .contains(&"debug_traceTransaction".to_owned())
    );
}

#[tokio::test]
async fn an_upstream_node_down_or_slow_is_a_clear_error_in_bounded_time() {
    // Nothing listens on the port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let proxy = start(Some(format!("http://127.0.0.1:{port}")), |_| {}).await;
    for method in ["eth_sendTransaction", "eth_blockNumber"] {
        let params = if method == "eth_blockNumber" {
            json!([])
        } else {
            json!([transfer()])
        };
        let (code, message) = proxy.error(method, params).await;
        assert_eq!(code, -32000, "{method}");
        assert_eq!(message, "upstream node is not reachable", "{method}");
    }
    // Signing needs no node (the chain id is given).
    let mut tx = transfer();
    tx["chainId"] = json!("0x1");
    assert!(
        proxy
            .call("eth_signTransaction", json!([tx]))
            .await
            .get("result")
            .is_some()
    );

    let (_node, address) = Node::start(Mode::Slow(Duration::from_secs(30))).await;
    let proxy = start(Some(format!("http://{address}")), |_| {}).await;
    let start = Instant::now();
    let (code, message) = proxy.error("eth_chainId", json!([])).await;
    let took = start.elapsed();
    assert_eq!(code, -32000);
    assert_eq!(message, "upstream node did not answer within 500 ms");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // A whole request has the proxy's request time limit, answered as a JSON-RPC error.
    let proxy = start_with(
        Some(format!("http://{address}")),
        |_| {},
        |args| {
            args.request_timeout_ms = NonZeroU64::new(300).unwrap();
            args.upstream_timeout_ms = NonZeroU64::new(5_000).unwrap();
        },
    )
    .await;
    let (code, message) = proxy.error("eth_chainId", json!([])).await;
    assert_eq!(code, -32000);
    assert!(
        message.contains("did not complete within 300 ms"),
        "{message}"
    );
}
