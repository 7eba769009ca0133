//! The audit log end to end: the real `nitro-signer dev` stack writes it while keys are created,
//! addresses derived and transactions signed concurrently, across an enclave restart and with
//! a receipt the proxy never saw; `nitro-signer audit check` passes on it, and finds a removed
//! line, a reordered line and forged receipts in altered copies.
#![cfg(test)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    str::FromStr,
    time::{Duration, Instant},
};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use nitro_signer_client::{EnclaveClient, EnclaveConfig};
use nitro_signer_common::{UserId, protocol::KeyRef, transport::Address};
use nitro_signer_tests::{dev_stack::DevStack, process::signal};
use serde_bytes::ByteBuf;
use serde_json::{Value, json};

/// The `nitro-signer` binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer");

const TO: &str = "0x3535353535353535353535353535353535353535";

fn transaction(nonce: u64) -> Value {
    json!({"type": "0x2", "chainId": "0x1", "nonce": format!("{nonce:#x}"),
           "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x1", "gas": "0x5208",
           "to": TO, "value": "0x1"})
}

/// POSTs `body`; the answer after checking that it is a success (every success has a receipt).
async fn ok(http: &reqwest::Client, url: &str, path: &str, body: &Value) -> Value {
    let (status, answer) = nitro_signer_tests::answers::post(http, url, path, body).await;
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    assert!(
        answer.to_string().contains("\"receipt\""),
        "{path}: {answer}"
    );
    answer
}

/// Keys, addresses, single and batch signatures and messages, all at once: the number of
/// receipts the answers carried, and a key blob.
async fn concurrent_work(url: &str) -> (u64, String) {
    let http = reqwest::Client::new();
    let policy = json!({"version": 1, "rules": [{"effect": "allow", "when": {}}]});
    let mut keys = tokio::task::JoinSet::new();
    for n in 0..3 {
        let (http, url, policy) = (http.clone(), url.to_owned(), policy.clone());
        keys.spawn(async move {
            let body = json!({"label": format!("tenant-{n}"), "policy": policy});
            let key = ok(&http, &url, "/v1/keys", &body).await;
            key["keyBlob"].as_str().unwrap().to_owned()
        });
    }
    let blobs: Vec<String> = keys.join_all().await;
    let mut work = tokio::task::JoinSet::new();
    for (k, blob) in blobs.iter().enumerate() {
        for user in 0..6u64 {
            let (http, url, blob) = (http.clone(), url.to_owned(), blob.clone());
            work.spawn(async move {
                let user_id = format!("user-{k}-{user}");
                let key = json!({"keyBlob": blob, "userId": user_id});
                let with = |field: &str, value: Value| {
                    let mut body = key.clone();
                    body[field] = value;
                    body
                };
                ok(&http, &url, "/v1/address", &key).await;
                let single = with("transaction", transaction(user));
                ok(&http, &url, "/v1/sign/transaction", &single).await;
                let batch = with(
                    "transactions",
                    json!([transaction(10), transaction(11), transaction(12)]),
                );
                ok(&http, &url, "/v1/sign/transactions", &batch).await;
                let message = with("message", json!({"utf8": format!("hello {user}")}));
                ok(&http, &url, "/v1/sign/message", &message).await;
                4u64
            });
        }
    }
    let receipts = blobs.len() as u64 + work.join_all().await.iter().sum::<u64>();
    (receipts, blobs[0].clone())
}

/// PCR0, PCR1 and PCR2 of the dev stack's enclave, as `attest --verify --dev` shows them.
fn pcrs(url: &str, data_dir: &Path) -> Vec<String> {
    let output = Command::new(BIN)
        .args(["attest", "--verify", "--dev", "--url", url, "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let attested: Value = serde_json::from_slice(&output.stdout).unwrap();
    (0..3)
        .map(|i| attested["pcrs"][i.to_string()].as_str().unwrap().to_owned())
        .collect()
}

/// What `audit check --json` says about `files`, and whether it passed (exit status 0).
struct Checked {
    passed: bool,
    report: Value,
}

impl Checked {
    fn kinds(&self) -> Vec<(String, u64)> {
        self.report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["kind"].as_str().unwrap().to_owned(),
                    f["line"].as_u64().unwrap(),
                )
            })
            .collect()
    }
}

fn check(data_dir: &Path, pcrs: &[String], extra: &[&str], files: &[&Path]) -> Checked {
    let output = Command::new(BIN)
        .args(["audit", "check", "--json", "--dev", "--data-dir"])
        .arg(data_dir)
        .args(["--pcr0", &pcrs[0], "--pcr1", &pcrs[1], "--pcr2", &pcrs[2]])
        .args(extra)
        .args(files)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no JSON report: {output:?}"));
    let passed = output.status.success();
    assert_eq!(passed, output.status.code() == Some(0));
    assert_eq!(report["passed"], passed, "{report}");
    Checked { passed, report }
}

/// Writes `lines` to `dir/name`.
fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

/// Waits for the proxy to answer again after an enclave restart: how many receipts that made.
async fn wait_for_the_new_enclave(url: &str, blob: &str) -> u64 {
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let body = json!({"keyBlob": blob, "userId": "poll"});
        let (status, _) = nitro_signer_tests::answers::post(&http, url, "/v1/address", &body).await;
        if status == 200 {
            return 1;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no new enclave");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_covers_every_receipt_and_the_checker_finds_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let stack = DevStack::start(BIN, &data_dir, &dir.path().join("stack.log"));
    let url = stack.url.clone();
    let pcrs = pcrs(&url, &data_dir);

    // Boot 1, then the enclave is killed and `dev` restarts it: boot 2.
    let (mut receipts, blob) = concurrent_work(&url).await;
    signal("KILL", stack.enclave_pid);
    stack
        .enclave_pids
        .recv_timeout(Duration::from_secs(60))
        .expect("dev restarted the enclave");
    receipts += wait_for_the_new_enclave(&url, &blob).await;
    let (more, _) = concurrent_work(&url).await;
    receipts += more;

    // Another program on the parent asks the enclave directly: the proxy never sees that
    // receipt, and says so with a gap line once the next one has waited 2 s for it.
    let socket = format!("unix://{}", data_dir.join("enclave.sock").display());
    let direct = EnclaveClient::new(EnclaveConfig::new(Address::from_str(&socket).unwrap()));
    assert!(direct.wait_until_live(Duration::from_secs(10)).await);
    let key_blob = base64::engine::general_purpose::STANDARD
        .decode(&blob)
        .unwrap();
    let key = KeyRef {
        key_blob: ByteBuf::from(key_blob),
        user_id: Some(UserId::new("direct").unwrap()),
    };
    direct.address_of(key).await.unwrap();
    receipts += wait_for_the_new_enclave(&url, &blob).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.stop();

    let log = data_dir.join("audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let of_type = |t: &str| lines.iter().filter(|l| parse(l)["type"] == t).count();
    assert_eq!(of_type("receipt") as u64, receipts);
    assert_eq!(of_type("boot"), 2);
    assert_eq!(of_type("gap"), 1);

    // The log as written: two attested boots, every receipt verified; the one gap is the
    // proxy's own declaration, which fails the check unless allowed.
    let checked = check(&data_dir, &pcrs, &[], &[&log]);
    assert!(!checked.passed);
    let gap_line = lines
        .iter()
        .position(|l| parse(l)["type"] == "gap")
        .unwrap() as u64
        + 1;
    assert_eq!(checked.kinds(), [("declared_gap".to_owned(), gap_line)]);
    let checked = check(&data_dir, &pcrs, &["--allow-declared-gaps"], &[&log]);
    assert!(checked.passed, "{}", checked.report);
    let boots = checked.report["boots"].as_array().unwrap();
    assert_eq!(boots.len(), 2);
    let verified: u64 = boots.iter().map(|b| b["receipts"].as_u64().unwrap()).sum();
    assert_eq!(verified, receipts);
    for boot in boots {
        assert_eq!(boot["verified"], true);
        assert_eq!(boot["simulated"], true);
        assert_eq!(boot["firstSequence"], 1);
        assert_eq!(boot["pcrs"][0], format!("0x{}", pcrs[0]));
    }
    assert_eq!(boots[1]["missingDeclared"], 1);

    // Tampered copies, checked with the declared gap allowed so that only tampering shows.
    let allow = ["--allow-declared-gaps"];
    let receipt_lines: Vec<usize> = (0..lines.len())
        .filter(|i| parse(&lines[*i])["type"] == "receipt")
        .collect();
    // Two receipts of boot 1 in the middle of its run.
    let (a, b) = (receipt_lines[5], receipt_lines[6]);
    assert_eq!(b, a + 1);

    let mut removed = lines.clone();
    removed.remove(a);
    let checked = check(
        &data_dir,
        &pcrs,
        &allow,
        &[&write(dir.path(), "removed", &removed)],
    );
    assert!(!checked.passed);
    assert_eq!(
        checked.kinds(),
        [
            ("undeclared_gap".to_owned(), a as u64 + 1),
            ("declared_gap".to_owned(), gap_line - 1)
        ]
    );

    let mut swapped = lines.clone();
    swapped.swap(a, b);
    let checked = check(
        &data_dir,
        &pcrs,
        &allow,
        &[&write(dir.path(), "swapped", &swapped)],
    );
    assert!(!checked.passed);
    assert_eq!(
        checked.kinds(),
        [
            ("reordered".to_owned(), b as u64 + 1),
            ("declared_gap".to_owned(), gap_line)
        ]
    );

    // One byte of a statement changed (in the blob hash, which the summary does not show).
    let statement = parse(&lines[a])["statement"].as_str().unwrap().to_owned();
    let mut bytes = hex::decode(&statement[2..]).unwrap();
    bytes[23 + 1 + 32 + 8 + 8 + 32 + 5] ^= 1;
    let mut altered = lines.clone();
    altered[a] = lines[a].replace(&statement, &format!("0x{}", hex::encode(&bytes)));
    let checked = check(
        &data_dir,
        &pcrs,
        &allow,
        &[&write(dir.path(), "altered", &altered)],
    );
    assert!(!checked.passed);
    assert_eq!(
        checked.kinds()[0],
        ("bad_signature".to_owned(), a as u64 + 1)
    );

    // The signature replaced by another Ed25519 key's over the same statement.
    let forger = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    assert_ne!(
        forger.public_key().as_ref(),
        &hex::decode(&parse(&lines[a])["receiptKey"].as_str().unwrap()[2..]).unwrap()[..]
    );
    let signature = parse(&lines[a])["signature"].as_str().unwrap().to_owned();
    let forged_signature = format!(
        "0x{}",
        hex::encode(forger.sign(&hex::decode(&statement[2..]).unwrap()))
    );
    let mut forged = lines.clone();
    forged[a] = lines[a].replace(&signature, &forged_signature);
    let checked = check(
        &data_dir,
        &pcrs,
        &allow,
        &[&write(dir.path(), "forged", &forged)],
    );
    assert!(!checked.passed);
    assert_eq!(
        checked.kinds()[0],
        ("bad_signature".to_owned(), a as u64 + 1)
    );

    // A summary that says something else than its genuine statement.
    let user = parse(&lines[a])["userId"].as_str().unwrap().to_owned();
    let mut misleading = lines.clone();
    misleading[a] = lines[a].replace(&format!("\"userId\":\"{user}\""), "\"userId\":\"mallory\"");
    let checked = check(
        &data_dir,
        &pcrs,
        &allow,
        &[&write(dir.path(), "summary", &misleading)],
    );
    assert_eq!(
        checked.kinds()[0],
        ("summary_mismatch".to_owned(), a as u64 + 1)
    );

    // Split in two files, checked in order: the same as one; in the wrong order: not.
    let (first, second) = lines.split_at(a);
    let first = write(dir.path(), "audit.jsonl.20250101T000000Z", first);
    let second = write(dir.path(), "audit.jsonl.20250101T000001Z", second);
    assert!(check(&data_dir, &pcrs, &allow, &[&first, &second]).passed);
    assert!(!check(&data_dir, &pcrs, &allow, &[&second, &first]).passed);

    // Other PCRs: no boot verifies, no receipt is trusted.
    let mut other = pcrs.clone();
    other[2] = "00".repeat(48);
    let checked = check(&data_dir, &other, &allow, &[&log]);
    assert!(!checked.passed);
    let kinds = checked.kinds();
    assert_eq!(kinds[0].0, "bad_attestation");
    assert!(kinds.iter().any(|(kind, _)| kind == "unknown_boot"));
}

#[test]
fn audit_check_refuses_to_run_without_pcr0_pcr1_and_pcr2() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    std::fs::write(&log, "").unwrap();
    let pcr = "11".repeat(48);
    let output = Command::new(BIN)
        .args(["audit", "check", "--pcr0", &pcr, "--pcr1", &pcr])
        .arg(&log)
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--pcr2 is required"));
    let zero = "00".repeat(48);
    let output = Command::new(BIN)
        .args([
            "audit", "check", "--pcr0", &zero, "--pcr1", &zero, "--pcr2", &zero,
        ])
        .arg(&log)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("debug-mode"));
}
