//! End to end: the real `nitro-signer dev` stack (KMS emulator, enclave with the NSM simulator,
//! parent proxy, each its own process) over real sockets, driven through the HTTP API, with every
//! signature checked by libsecp256k1 and every transaction decoded by alloy.
#![cfg(test)]

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256, U256, eip191_hash_message};
use nitro_signer_tests::{
    answers::{address, b256, check_transaction, recover_fields, recover_rsv},
    dev_stack::DevStack,
    fixtures::{MAIL, MAIL_HASH},
    libsecp,
    process::signal,
    reference_derivation,
};
use serde_json::{Value, json};

/// The `nitro-signer` binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer");

/// Starts `nitro-signer dev` on `data_dir`, its log appended to `log`.
fn start_stack(data_dir: &Path, log: &Path) -> DevStack {
    DevStack::start(BIN, data_dir, log)
}

/// Runs `nitro-signer bench` with `args`; its report, after checking it succeeded.
fn bench(args: &[&str]) -> String {
    let output = Command::new(BIN)
        .arg("bench")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

/// POSTs `body` to `url` + `path` on a new connection: the status and the JSON answer.
async fn post(url: &str, path: &str, body: &Value) -> (u16, Value) {
    nitro_signer_tests::answers::post(&reqwest::Client::new(), url, path, body).await
}

async fn ok(url: &str, path: &str, body: &Value) -> Value {
    let (status, answer) = post(url, path, body).await;
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    answer
}

fn transactions(from: Address) -> Vec<Value> {
    let to = "0x3535353535353535353535353535353535353535";
    vec![
        json!({"type": "0x0", "chainId": "0x1", "nonce": "0x0", "gasPrice": "0x4a817c800",
               "gas": "0x5208", "to": to, "value": "0xde0b6b3a7640000", "from": from.to_string()}),
        json!({"type": "0x1", "chainId": "0x1", "nonce": "0x1", "gasPrice": "0x4a817c800",
               "gas": "0x7530", "to": to, "value": "0x1", "data": "0xabcdef",
               "accessList": [{"address": to, "storageKeys": [format!("0x{}", "00".repeat(32))]}]}),
        json!({"type": "0x2", "chainId": "0xaa36a7", "nonce": "0x2", "maxFeePerGas": "0x77359400",
               "maxPriorityFeePerGas": "0x3b9aca00", "gas": "0x5208", "to": to, "value": "0x0"}),
        json!({"type": "0x3", "chainId": "0x1", "nonce": "0x3", "maxFeePerGas": "0x77359400",
               "maxPriorityFeePerGas": "0x1", "maxFeePerBlobGas": "0x3b9aca00", "gas": "0x186a0",
               "to": to, "value": "0x0",
               "blobVersionedHashes": [format!("0x01{}", "ab".repeat(31))]}),
        json!({"type": "0x4", "chainId": "0x1", "nonce": "0x4", "maxFeePerGas": "0x77359400",
               "maxPriorityFeePerGas": "0x1", "gas": "0x186a0", "to": to, "value": "0x0",
               "authorizationList": [{"chainId": "0x1", "address": to, "nonce": "0x5",
                                      "yParity": "0x0", "r": "0x1", "s": "0x2"}]}),
    ]
}

/// A known seed, imported through `keys import --dev`, so the test can derive every key itself.
const SEED: [u8; 32] = [0x5e; 32];

/// Imports `SEED` with `keys import --dev` at the most verbose log level; returns the blob and
/// the command's log.
fn import_seed(data_dir: &Path) -> (String, String) {
    nitro_signer_tests::process::import_seed(
        BIN,
        &[
            "--dev",
            "--kind",
            "seed",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[("RUST_LOG", "trace")],
        &SEED,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dev_stack_signs_everything_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log = dir.path().join("stack.log");
    let stack = start_stack(&data_dir, &log);
    let url = stack.url.clone();

    let health = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(health.status(), 200);

    let (blob, alice) = a_generated_key_gives_each_user_an_address(&url).await;
    let first_signatures = every_transaction_type_signs(&url, &blob, alice).await;
    messages_and_typed_data_sign(&url, &blob, alice).await;
    a_batch_signs_around_its_one_bad_transaction(&url, &blob, alice).await;
    an_authorization_signs(&url, &blob, alice).await;
    the_attestation_verifies(&url, &data_dir);
    let (import_log, dave_key) =
        an_imported_seed_follows_the_reference_derivation(&url, &data_dir).await;

    // Restart everything on the same data: same blobs, same addresses, same signatures.
    stack.stop();
    let stack = start_stack(&data_dir, &log);
    the_same_blob_signs_the_same_after_a_restart(&stack.url, &blob, alice, &first_signatures).await;
    stack.stop();

    nothing_secret_is_logged(&log, &import_log, &data_dir, &dave_key);
}

/// A key generated inside the enclave, with three distinct addresses for three users: the blob
/// and the first user's (alice's) address.
async fn a_generated_key_gives_each_user_an_address(url: &str) -> (String, Address) {
    // A policy that allows everything, and EIP-7702 delegations to the one contract the
    // transactions below delegate to (`docs/policy.md`).
    let policy = json!({"version": 1, "rules": [
        {"effect": "allow", "when": {}},
        {"effect": "allow", "when": {"delegates": ["0x3535353535353535353535353535353535353535"]}}
    ]});
    let (status, key) = post(
        url,
        "/v1/keys",
        &json!({"label": "tenant-1", "policy": policy}),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    assert_eq!(key["policyHash"].as_str().unwrap().len(), 66, "{key}");
    let blob = key["keyBlob"].as_str().unwrap().to_owned();
    assert_eq!(key["keyId"].as_str().unwrap().len(), 66);

    let mut addresses = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let answer = ok(
            url,
            "/v1/address",
            &json!({"keyBlob": blob, "userId": user}),
        )
        .await;
        addresses.push(address(&answer["address"]));
    }
    addresses.dedup();
    assert_eq!(addresses.len(), 3);
    (blob, addresses[0])
}

/// Every transaction type, signed for alice and checked independently: the raw transactions.
async fn every_transaction_type_signs(url: &str, blob: &str, alice: Address) -> Vec<Value> {
    let mut signatures = Vec::new();
    for tx in transactions(alice) {
        let answer = ok(
            url,
            "/v1/sign/transaction",
            &json!({"keyBlob": blob, "userId": "alice", "transaction": tx}),
        )
        .await;
        check_transaction(&answer, alice);
        signatures.push(answer["raw"].clone());
    }
    signatures
}

/// An EIP-191 message and the EIP-712 "Mail" example: the published hash, alice's signature.
async fn messages_and_typed_data_sign(url: &str, blob: &str, alice: Address) {
    let message = ok(
        url,
        "/v1/sign/message",
        &json!({"keyBlob": blob, "userId": "alice", "message": {"utf8": "hello"}}),
    )
    .await;
    assert_eq!(b256(&message["hash"]), eip191_hash_message("hello"));
    assert_eq!(
        recover_rsv(eip191_hash_message("hello"), &message["signature"]),
        alice
    );

    let typed: Value = serde_json::from_str(MAIL).unwrap();
    let answer = ok(
        url,
        "/v1/sign/typed-data",
        &json!({"keyBlob": blob, "userId": "alice", "typedData": typed}),
    )
    .await;
    assert_eq!(b256(&answer["hash"]), MAIL_HASH.parse::<B256>().unwrap());
    assert_eq!(
        recover_rsv(MAIL_HASH.parse().unwrap(), &answer["signature"]),
        alice
    );
}

/// A batch large enough to be signed in parts on several cores, with one bad transaction in the
/// middle: that one is refused, every other one signed in order.
async fn a_batch_signs_around_its_one_bad_transaction(url: &str, blob: &str, alice: Address) {
    const BAD: usize = 21;
    let batch: Vec<Value> = (0..40)
        .map(|nonce| {
            let gas = if nonce == BAD { "0xzz" } else { "0x5208" };
            json!({"type": "0x2", "chainId": "0x1", "nonce": format!("{nonce:#x}"),
                   "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x1",
                   "gas": gas, "to": "0x3535353535353535353535353535353535353535",
                   "value": "0x0"})
        })
        .collect();
    let answer = ok(
        url,
        "/v1/sign/transactions",
        &json!({"keyBlob": blob, "userId": "alice", "transactions": batch}),
    )
    .await;
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 40);
    for (nonce, result) in results.iter().enumerate() {
        if nonce == BAD {
            assert_eq!(result["error"]["code"], "invalid_request", "{result}");
            continue;
        }
        let tx = check_transaction(result, alice);
        assert_eq!(alloy_consensus::Transaction::nonce(&tx), nonce as u64);
    }
}

/// An EIP-7702 authorization: alloy's signing hash, alice's signature.
async fn an_authorization_signs(url: &str, blob: &str, alice: Address) {
    let authorization = ok(
        url,
        "/v1/sign/authorization",
        &json!({"keyBlob": blob, "userId": "alice", "authorization": {
            "chainId": "0x1", "address": "0x3535353535353535353535353535353535353535", "nonce": "0x7"}}),
    )
    .await;
    let tuple = alloy_eips::eip7702::Authorization {
        chain_id: U256::from(1),
        address: "0x3535353535353535353535353535353535353535"
            .parse()
            .unwrap(),
        nonce: 7,
    };
    assert_eq!(b256(&authorization["hash"]), tuple.signature_hash());
    assert_eq!(
        recover_fields(&tuple.signature_hash(), &authorization),
        alice
    );
}

/// `nitro-signer attest --verify`: the document verifies against the simulator's root, with a
/// fresh nonce.
fn the_attestation_verifies(url: &str, data_dir: &Path) {
    let attested = Command::new(BIN)
        .args(["attest", "--verify", "--dev", "--url", url, "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        attested.status.success(),
        "{}",
        String::from_utf8_lossy(&attested.stderr)
    );
    let attested: Value = serde_json::from_slice(&attested.stdout).unwrap();
    assert_eq!(attested["verified"], true);
    assert_eq!(attested["simulated"], true);

    // `--dev` expects the simulator's PCR0, PCR1 and PCR2; a PCR given explicitly replaces
    // the simulator's, and a wrong one fails.
    let pcr2 = attested["pcrs"]["2"].as_str().unwrap().to_owned();
    for (pcr2, ok) in [(pcr2, true), ("ab".repeat(48), false)] {
        let out = Command::new(BIN)
            .args(["attest", "--verify", "--dev", "--url", url, "--data-dir"])
            .arg(data_dir)
            .args(["--expect-pcr", &format!("2={pcr2}")])
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            ok,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A known seed, imported client-side: every address follows from the reference derivation.
/// Returns the import's log and dave's private key, for the check of the logs.
async fn an_imported_seed_follows_the_reference_derivation(
    url: &str,
    data_dir: &Path,
) -> (String, [u8; 32]) {
    let (imported, import_log) = import_seed(data_dir);
    assert!(
        import_log.contains("TRACE"),
        "the import did not log verbosely"
    );
    let dave_key = reference_derivation::derive(&SEED, "dave");
    let answer = ok(
        url,
        "/v1/address",
        &json!({"keyBlob": imported, "userId": "dave"}),
    )
    .await;
    assert_eq!(address(&answer["address"]), libsecp::address(&dave_key));
    let imported_tx = ok(
        url,
        "/v1/sign/transaction",
        &json!({"keyBlob": imported, "userId": "dave", "transaction": transactions(libsecp::address(&dave_key))[2]}),
    )
    .await;
    check_transaction(&imported_tx, libsecp::address(&dave_key));
    (import_log, dave_key)
}

/// After a restart on the same data: the same address, and byte-identical signatures (RFC 6979).
async fn the_same_blob_signs_the_same_after_a_restart(
    url: &str,
    blob: &str,
    alice: Address,
    first_signatures: &[Value],
) {
    let answer = ok(
        url,
        "/v1/address",
        &json!({"keyBlob": blob, "userId": "alice"}),
    )
    .await;
    assert_eq!(address(&answer["address"]), alice);
    for (tx, first) in transactions(alice).into_iter().zip(first_signatures) {
        let answer = ok(
            url,
            "/v1/sign/transaction",
            &json!({"keyBlob": blob, "userId": "alice", "transaction": tx}),
        )
        .await;
        assert_eq!(
            &answer["raw"], first,
            "RFC 6979 signatures are deterministic"
        );
    }
}

/// Nothing secret in the logs (the stack's and the import's), at the most verbose level: not the
/// seed (in hex or base64), not a derived private key, not the AWS secret key.
fn nothing_secret_is_logged(log: &Path, import_log: &str, data_dir: &Path, dave_key: &[u8; 32]) {
    let logs = std::fs::read_to_string(log).unwrap() + import_log;
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "logging was not verbose"
    );
    let credentials: Value =
        serde_json::from_slice(&std::fs::read(data_dir.join("dev-credentials.json")).unwrap())
            .unwrap();
    let aws_secret = credentials["secretAccessKey"].as_str().unwrap();
    for (what, secret) in [
        ("seed", hex::encode(SEED)),
        ("dave's private key", hex::encode(dave_key)),
        ("AWS secret key", aws_secret.to_owned()),
    ] {
        assert!(
            !logs.to_lowercase().contains(&secret.to_lowercase()),
            "the logs contain the {what}"
        );
    }
    assert!(
        !logs.contains(&base64_of(&SEED)),
        "the logs contain the seed in base64"
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors_and_the_service_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let stack = start_stack(&dir.path().join("data"), &dir.path().join("stack.log"));
    let url = stack.url.clone();
    let (_, key) = post(&url, "/v1/keys", &json!({})).await;
    let blob = key["keyBlob"].as_str().unwrap().to_owned();
    let tx = transactions(Address::ZERO)[2].clone();
    let tx_without_from = {
        let mut tx = tx.clone();
        tx.as_object_mut().unwrap().remove("from");
        tx
    };

    a_malformed_body_is_invalid_request(&url).await;
    each_bad_request_says_what_is_wrong(&url, &blob, &tx_without_from).await;
    an_oversized_body_is_413_and_read_whole(&url, &blob).await;
    let (status, answer) = post(&url, "/v1/nope", &json!({})).await;
    assert_eq!(status, 404, "{answer}");

    // Still serving.
    let answer = ok(
        &url,
        "/v1/sign/transaction",
        &json!({"keyBlob": blob, "userId": "alice", "transaction": tx_without_from}),
    )
    .await;
    let from = address(&answer["from"]);
    check_transaction(&answer, from);
}

/// A body that is not JSON: `400 invalid_request`.
async fn a_malformed_body_is_invalid_request(url: &str) {
    let client = reqwest::Client::new();
    let malformed = client
        .post(format!("{url}/v1/sign/transaction"))
        .header("content-type", "application/json")
        .body("{\"keyBlob\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
}

/// Each bad request gets the right status and code, and a message that names what is wrong and
/// does not echo the key blob.
async fn each_bad_request_says_what_is_wrong(url: &str, blob: &str, tx_without_from: &Value) {
    let mut tampered =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, blob).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let tampered = base64_of(&tampered);

    for (body, status, code, mentions) in [
        (
            json!({"keyBlob": blob, "userId": "alice"}),
            400,
            "invalid_request",
            "transaction",
        ),
        (
            json!({"keyBlob": blob, "userId": "alice", "transaction": {"to": "0x12"}}),
            400,
            "invalid_request",
            "to",
        ),
        (
            json!({"keyBlob": blob, "userId": "alice", "transaction": {"chainId": "0x01"}}),
            400,
            "invalid_request",
            "chainId",
        ),
        (
            json!({"keyBlob": "not base64!", "userId": "alice", "transaction": tx_without_from}),
            400,
            "invalid_request",
            "keyBlob",
        ),
        (
            json!({"keyBlob": blob, "userId": "x".repeat(257), "transaction": tx_without_from}),
            400,
            "invalid_request",
            "user",
        ),
        (
            json!({"keyBlob": blob, "transaction": tx_without_from}),
            400,
            "invalid_request",
            "user",
        ),
        (
            json!({"keyBlob": tampered, "userId": "alice", "transaction": tx_without_from}),
            400,
            "invalid_key_blob",
            "KMS",
        ),
    ] {
        let (got, answer) = post(url, "/v1/sign/transaction", &body).await;
        assert_eq!(got, status, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(mentions),
            "{message:?} should mention {mentions}"
        );
        assert!(!message.contains(blob), "errors must not echo the key blob");
    }
}

/// A body over the proxy's limit: `413 payload_too_large`, which the client, still writing the
/// rest, reads whole.
async fn an_oversized_body_is_413_and_read_whole(url: &str, blob: &str) {
    let huge = json!({"keyBlob": blob, "userId": "alice", "transaction": {"data": format!("0x{}", "00".repeat(2 << 20))}});
    // The proxy answers 413 as soon as the body passes its limit; its lingering close lets a
    // client still writing the rest finish and read the answer.
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/sign/transaction"))
        .json(&huge)
        .send()
        .await
        .expect("the 413 is read, not a broken pipe");
    assert_eq!(response.status().as_u16(), 413);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "payload_too_large", "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn enclave_kills_under_load_give_clear_503s_and_never_a_wrong_signature() {
    let dir = tempfile::tempdir().unwrap();
    let stack = start_stack(&dir.path().join("data"), &dir.path().join("stack.log"));
    let url = stack.url.clone();
    let (_, key) = post(&url, "/v1/keys", &json!({})).await;
    let blob = key["keyBlob"].as_str().unwrap().to_owned();
    let mut users = Vec::new();
    for user in ["u0", "u1"] {
        let answer = ok(
            &url,
            "/v1/address",
            &json!({"keyBlob": blob, "userId": user}),
        )
        .await;
        users.push((user, address(&answer["address"])));
    }

    // Eight clients, each request with its own nonce and alternating users; every signed answer
    // must be for exactly that payload and user.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients = start_clients(&url, &blob, &users, &stop);
    let outages = kill_the_enclave_three_times(&stack, &url, &blob).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut statuses = Vec::new();
    for client in clients {
        statuses.extend(client.await.unwrap());
    }
    let (signed, unavailable) = signing_resumed_after_the_last_outage(&statuses);
    eprintln!(
        "{signed} signed, {unavailable} × 503 over 3 enclave kills; recovery after restart: {outages:?}"
    );
}

/// Statuses of a load client's requests, with when each was sent (since the client started).
type Statuses = Vec<(Duration, u16)>;

/// Eight clients signing until `stop`, each request with its own nonce and alternating users;
/// every signed answer must be for exactly that payload and user, every failure a clear 503.
fn start_clients(
    url: &str,
    blob: &str,
    users: &[(&'static str, Address)],
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Statuses>> {
    let mut clients = Vec::new();
    for client in 0..8u64 {
        let (url, blob, users, stop) = (
            url.to_owned(),
            blob.to_owned(),
            users.to_vec(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            let started = Instant::now();
            let mut nonce = client * 1_000_000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                nonce += 1;
                let (user, expected) = users[(nonce % 2) as usize];
                let mut tx = transactions(expected)[2].clone();
                tx["nonce"] = json!(format!("{nonce:#x}"));
                let sent = Instant::now();
                let (status, answer) = post(
                    &url,
                    "/v1/sign/transaction",
                    &json!({"keyBlob": blob, "userId": user, "transaction": tx}),
                )
                .await;
                assert!(sent.elapsed() < Duration::from_secs(11), "a request hung");
                match status {
                    200 => {
                        let signed = check_transaction(&answer, expected);
                        assert_eq!(alloy_consensus::Transaction::nonce(&signed), nonce);
                    }
                    503 => {
                        assert_eq!(answer["error"]["code"], "enclave_unavailable", "{answer}");
                        // A client backs off a little before retrying.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    other => panic!("unexpected {other}: {answer}"),
                }
                statuses.push((sent.duration_since(started), status));
            }
            statuses
        }));
    }
    clients
}

/// Kills the enclave three times, 1.5 s apart: `dev` restarts it each time, and the proxy is back
/// within a second of it. How long after each kill the proxy was back, and after the restart.
async fn kill_the_enclave_three_times(
    stack: &DevStack,
    url: &str,
    blob: &str,
) -> Vec<(Duration, Duration)> {
    let mut pid = stack.enclave_pid;
    let mut outages = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        signal("KILL", pid);
        let killed_at = Instant::now();
        let restarted = stack
            .enclave_pids
            .recv_timeout(Duration::from_secs(60))
            .expect("dev restarted the enclave");
        assert_ne!(restarted, pid);
        pid = restarted;
        // The proxy is back within a second of the enclave (its reconnect backoff tops out at 1 s).
        let back = Instant::now();
        loop {
            let (status, _) = post(
                url,
                "/v1/address",
                &json!({"keyBlob": blob, "userId": "u0"}),
            )
            .await;
            if status == 200 {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(3),
                "the proxy did not recover"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        outages.push((killed_at.elapsed(), back.elapsed()));
    }
    outages
}

/// Some requests saw an outage, and signing resumed after the last one: how many were signed and
/// how many got a 503.
fn signing_resumed_after_the_last_outage(statuses: &Statuses) -> (usize, usize) {
    let unavailable = statuses.iter().filter(|(_, s)| *s == 503).count();
    let signed = statuses.iter().filter(|(_, s)| *s == 200).count();
    assert!(unavailable > 0, "no request saw an outage");
    // Fast 503s repeat during each outage, so their count says nothing; what matters is that
    // signing resumed after the last restart.
    let last_failure = statuses
        .iter()
        .filter(|(_, s)| *s != 200)
        .map(|(at, _)| *at)
        .max();
    assert!(
        statuses
            .iter()
            .any(|(at, s)| *s == 200 && Some(*at) > last_failure),
        "signing did not resume after the last restart"
    );
    (signed, unavailable)
}

#[tokio::test(flavor = "multi_thread")]
async fn sustained_load_at_64_connections_has_no_errors_and_every_signature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let stack = start_stack(&dir.path().join("data"), &dir.path().join("stack.log"));
    // `bench` verifies every signature it gets back and fails on any error.
    let report = bench(&[
        "--url",
        &stack.url,
        "--connections",
        "64",
        "--requests",
        "3000",
        "--warmup",
        "64",
        "--baseline-secs",
        "0",
    ]);
    assert!(
        report.contains("verified            3000 signatures"),
        "{report}"
    );
    assert!(report.contains("errors              0"), "{report}");

    // The cold path: new key blobs (encrypted with the dev KMS, never seen by the enclave), 16
    // concurrent first requests for each: one KMS call per blob, every signature verified.
    let data_dir = dir.path().join("data");
    let report = bench(&[
        "--url",
        &stack.url,
        "--cold",
        "4",
        "--connections",
        "16",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]);
    assert!(
        report
            .contains("kms calls           4 for 4 new key blobs (1.00 per blob) and 64 requests"),
        "{report}"
    );
    assert!(
        report.contains("verified            64 signatures"),
        "{report}"
    );

    // The JSON-RPC endpoint: the benchmark's key made an account of the proxy (the dev stack's
    // accounts directory), `eth_signTransaction` answers verified as the REST answers are.
    let accounts_dir = data_dir.join("accounts");
    let report = bench(&[
        "--url",
        &stack.url,
        "--json-rpc",
        "--accounts-dir",
        accounts_dir.to_str().unwrap(),
        "--connections",
        "8",
        "--requests",
        "300",
        "--warmup",
        "8",
        "--baseline-secs",
        "0",
    ]);
    assert!(report.contains("JSON-RPC eth_signTransaction"), "{report}");
    assert!(
        report.contains("verified            300 signatures"),
        "{report}"
    );
    assert!(report.contains("errors              0"), "{report}");
    // Both APIs in alternating rounds of the same run.
    let report = bench(&[
        "--url",
        &stack.url,
        "--compare-json-rpc",
        "--rounds",
        "1",
        "--accounts-dir",
        accounts_dir.to_str().unwrap(),
        "--connections",
        "8",
        "--requests",
        "100",
        "--warmup",
        "8",
    ]);
    assert!(
        report.contains("verified            200 signatures"),
        "{report}"
    );
    assert!(
        report.contains("ratio               JSON-RPC / REST"),
        "{report}"
    );
}
