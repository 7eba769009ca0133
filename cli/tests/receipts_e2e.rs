//! Provenance end to end on the real `nitro-signer dev` stack: every key, address and signature
//! comes with a receipt that an implementation this project did not write
//! (`tests/python/receipts.py`: `cryptography` and `cbor2`, from `docs/receipts.md`) verifies
//! through the enclave's attestation document, and that no single-byte change survives; and a
//! forged `POST /v1/keys` answer (a blob made outside the enclave, as a compromised parent would
//! hand out) is refused by the Rust client and by `keys create --verify`.
#![cfg(test)]

use std::{
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use base64::Engine as _;
use nitro_signer_client::{
    HttpClient, HttpError, ReceiptVerifier, VerifyError,
    api::{
        AddressRequest, KeyBlob, Message, SignMessageRequest, SignTransactionRequest,
        SignTransactionsRequest, SignTypedDataRequest,
    },
};
use nitro_signer_common::{
    UserId,
    attestation::{Expectations, RootOfTrust},
    receipt::{self, Operation, Receipt, ReceiptError},
};
use nitro_signer_enclave::nsm::SimulatorConfig;
use nitro_signer_tests::dev_stack::DevStack;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/receipts.py");

fn root_sha256(data_dir: &Path) -> [u8; 32] {
    let der = std::fs::read(data_dir.join("nsm").join("nsm-root-cert.der")).unwrap();
    Sha256::digest(&der).into()
}

fn simulated_pcrs() -> std::collections::BTreeMap<u8, [u8; 48]> {
    SimulatorConfig::default_pcrs()
        .into_iter()
        .filter(|(index, _)| *index < 3)
        .collect()
}

fn verifier(data_dir: &Path) -> ReceiptVerifier {
    ReceiptVerifier::new(
        RootOfTrust::dangerous_simulated(root_sha256(data_dir)),
        Expectations {
            pcrs: simulated_pcrs(),
            ..Default::default()
        },
    )
    .unwrap()
}

fn tx(nonce: u64) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&json!({
        "chainId": "0x1", "nonce": format!("{nonce:#x}"), "gas": "0x5208",
        "maxFeePerGas": "0x2", "maxPriorityFeePerGas": "0x1",
        "to": "0x3535353535353535353535353535353535353535", "value": "0x1"
    }))
    .unwrap()
}

fn api_receipt(receipt: &nitro_signer_client::api::Receipt) -> Value {
    json!({
        "statement": format!("0x{}", hex::encode(&receipt.statement)),
        "signature": format!("0x{}", hex::encode(&receipt.signature)),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_prove_what_the_enclave_did() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let stack = DevStack::start(BIN, &data_dir, &dir.path().join("stack.log"));
    let trust = Arc::new(verifier(&data_dir));
    let client = HttpClient::new(stack.url.clone())
        .unwrap()
        .with_receipt_verifier(Arc::clone(&trust));
    let alice = UserId::new("alice").unwrap();

    // Every answer below is checked against its receipt by the client itself.
    let key = client.generate_key(Some("t".into())).await.unwrap();
    let blob = key.key_blob.clone();
    let address = client
        .address(&AddressRequest {
            key_blob: blob.clone(),
            user_id: Some(alice.clone()),
        })
        .await
        .unwrap();
    let signed = client
        .sign_transaction(&SignTransactionRequest {
            key_blob: blob.clone(),
            user_id: Some(alice.clone()),
            transaction: tx(0),
            approvals: Vec::new(),
        })
        .await
        .unwrap();
    let bad = serde_json::value::to_raw_value(&json!({"chainId": "0x1"})).unwrap();
    let batch = client
        .sign_transactions(&SignTransactionsRequest {
            key_blob: blob.clone(),
            user_id: Some(alice.clone()),
            transactions: vec![tx(1), bad, tx(2)],
            approvals: Vec::new(),
        })
        .await
        .unwrap();
    let message = client
        .sign_message(&SignMessageRequest {
            key_blob: blob.clone(),
            user_id: Some(alice.clone()),
            message: Message::Utf8("hello".into()),
            approvals: Vec::new(),
        })
        .await
        .unwrap();
    let typed = client
        .sign_typed_data(&SignTypedDataRequest {
            key_blob: blob.clone(),
            user_id: Some(alice.clone()),
            typed_data: serde_json::value::to_raw_value(&json!({
                "types": {"EIP712Domain": [{"name": "name", "type": "string"}],
                          "Mail": [{"name": "contents", "type": "string"}]},
                "primaryType": "Mail", "domain": {"name": "Ether Mail"},
                "message": {"contents": "Hello"}
            }))
            .unwrap(),
            approvals: Vec::new(),
        })
        .await
        .unwrap();
    let boots = trust.boots();
    assert_eq!(boots.len(), 1, "one boot, attested once");
    assert!(boots[0].simulated);

    // The receipts, in the order they were made: one sequence, without gaps.
    let receipts = [
        key.receipt.as_ref(),
        address.receipt.as_ref(),
        signed.receipt.as_ref(),
        batch.receipt.as_ref(),
        message.receipt.as_ref(),
        typed.receipt.as_ref(),
    ]
    .map(|receipt| receipt.expect("every answer carries a receipt"));
    let statements: Vec<_> = receipts
        .iter()
        .map(|receipt| {
            nitro_signer_client::receipts::from_api(receipt)
                .unwrap()
                .statement_unverified()
                .unwrap()
        })
        .collect();
    let sequences: Vec<u64> = statements.iter().map(|s| s.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5, 6]);
    assert_eq!(statements[3].operation, Operation::SignBatch);
    assert_eq!(
        statements[3]
            .items
            .iter()
            .map(|item| item.index)
            .collect::<Vec<_>>(),
        [0, 2],
        "the batch receipt lists the two transactions signed, not the refused one"
    );
    assert!(statements.iter().all(|s| s.key_id == key.key_id.0));

    // Python, from the documented layout: the attestation document (fresh nonce) and every
    // receipt verify, and decode to what the Rust decoder read.
    let nonce = receipt::random_nonce().unwrap();
    let document = client.attestation(&nonce).await.unwrap().document;
    let input = json!({
        "document": base64::engine::general_purpose::STANDARD.encode(&document),
        "nonce": hex::encode(nonce),
        "rootSha256": hex::encode(root_sha256(&data_dir)),
        "pcrs": simulated_pcrs().iter().map(|(i, v)| (i.to_string(), json!(hex::encode(v)))).collect::<serde_json::Map<_, _>>(),
        "receipts": receipts.iter().map(|r| api_receipt(r)).collect::<Vec<_>>(),
    });
    let verified: Value = serde_json::from_slice(&nitro_signer_tests::python::run(
        &[SCRIPT, "verify"],
        input.to_string().as_bytes(),
    ))
    .unwrap();
    let python_statements = verified["statements"].as_array().unwrap();
    for (python, rust) in python_statements.iter().zip(&statements) {
        assert_eq!(python["operation"], rust.operation.as_str());
        assert_eq!(python["sequence"], rust.sequence);
        assert_eq!(python["keyId"], format!("0x{}", hex::encode(rust.key_id)));
        assert_eq!(
            python["blobHash"],
            format!("0x{}", hex::encode(rust.blob_hash))
        );
        assert_eq!(
            python["items"].as_array().unwrap().len(),
            rust.items.len(),
            "{python}"
        );
    }
    assert_eq!(
        python_statements[0]["blobHash"],
        format!("0x{}", hex::encode(Sha256::digest(blob.as_bytes()))),
        "the key receipt names the blob answered"
    );
    assert_eq!(
        python_statements[2]["items"][0]["hash"],
        format!("0x{}", hex::encode(signed.signing_hash)),
    );

    // Any single-byte change to the document, a statement or a signature is refused, by Python
    // and by the Rust verifier.
    let mutations: Value = serde_json::from_slice(&nitro_signer_tests::python::run(
        &[SCRIPT, "mutations"],
        input.to_string().as_bytes(),
    ))
    .unwrap();
    assert_eq!(mutations["tried"], mutations["refused"], "{mutations}");
    assert!(mutations["tried"].as_u64().unwrap() > document.len() as u64);
    for receipt in &receipts {
        let genuine = nitro_signer_client::receipts::from_api(receipt).unwrap();
        trust.verify(&genuine).unwrap();
        for i in 0..genuine.statement.len() {
            let mut changed = genuine.clone();
            changed.statement[i] ^= 1;
            assert!(trust.verify(&changed).is_err(), "statement byte {i}");
        }
        for i in 0..64 {
            let mut changed = genuine.clone();
            changed.signature[i] ^= 1;
            assert!(trust.verify(&changed).is_err(), "signature byte {i}");
        }
    }
    for i in 0..document.len() {
        let mut changed = document.clone();
        changed[i] ^= 1;
        assert!(
            verifier(&data_dir)
                .trust(&changed, &nonce, SystemTime::now())
                .is_err(),
            "document byte {i}"
        );
    }
    // The genuine document under the wrong nonce, or with PCR2 pinned to another image.
    assert!(
        verifier(&data_dir)
            .trust(&document, &[0; 32], SystemTime::now())
            .is_err()
    );
    let mut pcrs = simulated_pcrs();
    pcrs.insert(2, [0x42; 48]);
    let other_image = ReceiptVerifier::new(
        RootOfTrust::dangerous_simulated(root_sha256(&data_dir)),
        Expectations {
            pcrs,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        other_image
            .trust(&document, &nonce, SystemTime::now())
            .is_err()
    );

    // The command line verifies a whole answer, and refuses one whose answer was changed.
    let answer_file = dir.path().join("signed.json");
    std::fs::write(&answer_file, serde_json::to_vec(&signed).unwrap()).unwrap();
    let verify = |file: &Path, extra: &[&str]| {
        Command::new(BIN)
            .args([
                "verify",
                "receipt",
                "--dev",
                "--url",
                &stack.url,
                "--data-dir",
            ])
            .arg(&data_dir)
            .args(extra)
            .arg(file)
            .output()
            .unwrap()
    };
    let blob_arg = blob.to_base64();
    let output = verify(
        &answer_file,
        &["--key-blob", &blob_arg, "--user-id", "alice"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["statement"]["operation"], "sign_transaction");
    assert_eq!(
        printed["checked"],
        json!({"answer": true, "operation": false, "keyBlob": true, "userId": true})
    );
    let output = verify(&answer_file, &["--operation", "sign_message"]);
    assert!(
        !output.status.success(),
        "another operation must be refused"
    );
    let output = verify(&answer_file, &["--user-id", "bob"]);
    assert!(!output.status.success(), "another user id must be refused");
    let mut tampered = serde_json::to_value(&signed).unwrap();
    tampered["signingHash"] = json!(format!("0x{}", "11".repeat(32)));
    std::fs::write(&answer_file, tampered.to_string()).unwrap();
    let output = verify(&answer_file, &[]);
    assert!(!output.status.success(), "a changed answer must be refused");

    forged_keys_are_refused(&stack, &data_dir, &key).await;
    stack.stop();
}

/// A compromised parent answers `POST /v1/keys` itself with a blob it made (here: a known seed
/// imported client-side under the stack's KMS key, which the enclave would use), forwarding
/// everything else, including attestation, to the real proxy.
async fn forged_keys_are_refused(
    stack: &DevStack,
    data_dir: &Path,
    genuine: &nitro_signer_client::api::KeyResponse,
) {
    let (imported, _) = nitro_signer_tests::process::import_seed(
        BIN,
        &[
            "--dev",
            "--kind",
            "seed",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[],
        &[0x5e; 32],
    );
    let forged_blob: KeyBlob = serde_json::from_value(Value::String(imported)).unwrap();
    // The attacker's own receipt key, over a statement naming the forged blob.
    let attacker = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    let mut statement = genuine
        .receipt
        .as_ref()
        .map(|r| {
            Receipt::statement_unverified(&nitro_signer_client::receipts::from_api(r).unwrap())
        })
        .unwrap()
        .unwrap();
    use aws_lc_rs::signature::KeyPair as _;
    statement.receipt_key = attacker.public_key().as_ref().try_into().unwrap();
    statement.blob_hash = receipt::blob_hash(forged_blob.as_bytes());
    let forged_statement = statement.encode();
    let forged_signature = attacker.sign(&forged_statement);
    let forged_receipt = json!({
        "statement": format!("0x{}", hex::encode(&forged_statement)),
        "signature": format!("0x{}", hex::encode(forged_signature.as_ref())),
    });
    let base = |receipt: Option<Value>| {
        let mut answer = json!({
            "keyBlob": forged_blob.to_base64(),
            "keyId": format!("0x{}", hex::encode(genuine.key_id)),
        });
        if let Some(receipt) = receipt {
            answer["receipt"] = receipt;
        }
        answer
    };
    let genuine_receipt = genuine
        .receipt
        .as_ref()
        .map(api_receipt)
        .expect("a receipt");
    let cases = [
        (Some(base(None)), "no receipt"),
        (
            Some(base(Some(genuine_receipt))),
            "another key's genuine receipt",
        ),
        (
            Some(base(Some(forged_receipt))),
            "a receipt by the attacker's key",
        ),
        (
            Some(serde_json::to_value(genuine).unwrap()),
            "an earlier genuine answer, replayed",
        ),
        (None, "a genuine answer to a request the parent rewrote"),
    ];
    for (answer, what) in cases {
        let fake = FakeProxy::start(stack.url.clone(), answer.clone()).await;
        let client = HttpClient::new(fake.url.clone())
            .unwrap()
            .with_receipt_verifier(Arc::new(verifier(data_dir)));
        let error = client.generate_key(None).await.unwrap_err();
        let HttpError::Receipt(error) = error else {
            panic!("{what}: {error}");
        };
        match what {
            "no receipt" => assert_eq!(error, VerifyError::Missing),
            "a receipt by the attacker's key" => {
                assert_eq!(error, VerifyError::Receipt(ReceiptError::UnknownKey));
            }
            _ => assert!(matches!(error, VerifyError::Mismatch(_)), "{what}: {error}"),
        }
        // Without verification the forgery goes through: what the receipts are for.
        let unchecked = HttpClient::new(fake.url.clone()).unwrap();
        assert!(unchecked.generate_key(None).await.is_ok(), "{what}");

        let output = Command::new(BIN)
            .args([
                "keys",
                "create",
                "--verify",
                "--dev",
                "--url",
                &fake.url,
                "--data-dir",
            ])
            .arg(data_dir)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{what}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("receipt refused"), "{what}: {stderr}");
        assert!(output.stdout.is_empty(), "{what}: nothing printed");
    }
}

/// An HTTP/1.1 server answering `POST /v1/keys` with a fixed body (or, without one, passing it
/// on with the label replaced by the parent's) and passing everything else to the real proxy:
/// the parent a back end must not trust.
struct FakeProxy {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProxy {
    async fn start(real: String, keys_answer: Option<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let keys_answer = Arc::new(Mutex::new(keys_answer.map(|answer| answer.to_string())));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let real = real.clone();
                let keys_answer = Arc::clone(&keys_answer);
                tokio::spawn(async move {
                    let Some((path, body)) = read_request(&mut stream).await else {
                        return;
                    };
                    let fixed = keys_answer.lock().unwrap().clone();
                    let (status, answer) = if let (true, Some(fixed)) = (path == "/v1/keys", fixed)
                    {
                        (201, fixed)
                    } else {
                        let body = if path == "/v1/keys" {
                            let mut request: Value = serde_json::from_slice(&body).unwrap();
                            request["label"] = json!("parent");
                            request.to_string().into_bytes()
                        } else {
                            body
                        };
                        let response = reqwest::Client::new()
                            .post(format!("{real}{path}"))
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        (response.status().as_u16(), response.text().await.unwrap())
                    };
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        answer.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        Self { url, task }
    }
}

/// The path and body of one request.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_string();
        let path = head.split_whitespace().nth(1)?.to_owned();
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buffer.len() < end + 4 + length {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        return Some((path, buffer[end + 4..end + 4 + length].to_vec()));
    }
}

/// The attack of issue 13, end to end: the parent encrypts a seed it knows under a KMS key of its
/// own (another account: a second KMS emulator) with the right encryption context. The enclave
/// refuses the blob before any KMS call, because the key is not one it was built to use.
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_under_the_parents_own_kms_key_is_refused() {
    const ACCESS_KEY_ID: &str = "AKIAPARENTOWNED00001";
    const SECRET: &str = "parent-owned-secret-of-the-attacker";
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let stack = DevStack::start(BIN, &data_dir, &dir.path().join("stack.log"));

    let args: Vec<std::ffi::OsString> = vec![
        "kms-emulator".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--account-id".into(),
        "444455556666".into(),
        "--data-dir".into(),
        dir.path().join("parent-kms").into(),
        "--dangerous-attestation-root-sha256".into(),
        hex::encode(root_sha256(&data_dir)).into(),
    ];
    let parents_kms = nitro_signer_tests::process::Component::start(
        BIN,
        "kms-emulator",
        &args,
        &[
            ("NITRO_SIGNER_KMS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("NITRO_SIGNER_KMS_SECRET_ACCESS_KEY", SECRET),
        ],
        &dir.path().join("parent-kms.log"),
    )
    .await;
    let kms =
        nitro_signer_tests::kms::client("us-east-1", &parents_kms.address, ACCESS_KEY_ID, SECRET);
    let arn = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    assert!(arn.contains(":444455556666:"), "{arn}");
    let (blob, _) = nitro_signer_tests::process::import_seed(
        BIN,
        &[
            "--kind",
            "seed",
            "--kms-key-id",
            &arn,
            "--kms-endpoint",
            &parents_kms.address,
            "--kms-region",
            "us-east-1",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
        &[0x5e; 32],
    );

    let http = reqwest::Client::new();
    let kms_calls = |ready: &Value| ready["kmsCalls"].as_u64().unwrap();
    let before: Value = http
        .get(format!("{}/readyz", stack.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, body) in [
        ("/v1/address", json!({"keyBlob": blob, "userId": "alice"})),
        (
            "/v1/sign/message",
            json!({"keyBlob": blob, "userId": "alice", "message": {"utf8": "hi"}}),
        ),
    ] {
        let (status, answer) =
            nitro_signer_tests::answers::post(&http, &stack.url, path, &body).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_key_blob", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not one this enclave was built to use"),
            "{answer}"
        );
    }
    let after: Value = http
        .get(format!("{}/readyz", stack.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        kms_calls(&after),
        kms_calls(&before),
        "refused before any KMS call"
    );
    drop(parents_kms);
    stack.stop();
}
