//! Signing authority end to end: keys with policies on the real `nitro-signer dev` stack, over
//! HTTP, with approvals made the way a back end would, by code this project did not write
//! (`tests/python/approvals.py`: eth-account computes the hash approved, `cryptography` signs the
//! statement of `docs/policy.md`). Every signature is checked with libsecp256k1 and alloy.
#![cfg(test)]

use std::{
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use alloy_primitives::Address;
use base64::Engine as _;
use nitro_signer_client::ReceiptVerifier;
use nitro_signer_common::{
    attestation::{Expectations, RootOfTrust},
    key_blob::{KeyBlob, KeyMetadata},
    receipt::{self, CountedApproval, Operation, Statement},
};
use nitro_signer_tests::{
    answers::{address, check_transaction},
    dev_stack::DevStack,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The `nitro-signer` binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/approvals.py");
const TREASURY: &str = "0x3535353535353535353535353535353535353535";
const OTHER: &str = "0x3636363636363636363636363636363636363636";

async fn post(url: &str, path: &str, body: &Value) -> (u16, Value) {
    nitro_signer_tests::answers::post(&reqwest::Client::new(), url, path, body).await
}

/// Runs the Python approver with `args` and `input` (in the tests' Python, with the pinned
/// packages: `nitro_signer_tests::python`); its JSON output.
fn python(args: &[&str], input: &Value) -> Value {
    let mut all = vec![SCRIPT];
    all.extend_from_slice(args);
    serde_json::from_slice(&nitro_signer_tests::python::run(
        &all,
        input.to_string().as_bytes(),
    ))
    .unwrap()
}

/// The statement of `answer`'s receipt, verified through a fresh attestation document of the
/// dev stack (whose state is in `data_dir`).
async fn receipt_statement(url: &str, data_dir: &std::path::Path, answer: &Value) -> Statement {
    let root = std::fs::read(data_dir.join("nsm").join("nsm-root-cert.der")).unwrap();
    let pcrs = nitro_signer_enclave::nsm::SimulatorConfig::default_pcrs()
        .into_iter()
        .filter(|(index, _)| *index < 3)
        .collect();
    let verifier = ReceiptVerifier::new(
        RootOfTrust::dangerous_simulated(Sha256::digest(&root).into()),
        Expectations {
            pcrs,
            ..Default::default()
        },
    )
    .unwrap();
    let nonce = receipt::random_nonce().unwrap();
    let (status, attestation) = post(
        url,
        "/v1/attestation",
        &json!({"nonce": format!("0x{}", hex::encode(nonce))}),
    )
    .await;
    assert_eq!(status, 200, "{attestation}");
    let document = base64::engine::general_purpose::STANDARD
        .decode(attestation["document"].as_str().unwrap())
        .unwrap();
    verifier
        .trust(&document, &nonce, SystemTime::now())
        .unwrap();
    let receipt: nitro_signer_client::api::Receipt =
        serde_json::from_value(answer["receipt"].clone()).unwrap();
    verifier
        .verify(&nitro_signer_client::receipts::from_api(&receipt).unwrap())
        .unwrap()
}

/// The approvals digest of `docs/receipts.md` over `approvals` (JSON, as sent), all counted.
fn approvals_digest(approvals: &Value) -> [u8; 32] {
    let signatures: Vec<Vec<u8>> = approvals
        .as_array()
        .unwrap()
        .iter()
        .map(|a| hex::decode(a["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap())
        .collect();
    let counted: Vec<CountedApproval<'_>> = approvals
        .as_array()
        .unwrap()
        .iter()
        .zip(&signatures)
        .map(|(a, signature)| CountedApproval {
            approver: a["approver"].as_str().unwrap(),
            expires_at: a["expiresAt"].as_u64().unwrap(),
            signature,
        })
        .collect();
    receipt::approvals_digest(&counted)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The approvals of `signers` (`"ed25519"`, `"p256"`) for `what` (`{"transaction": …}`,
/// `{"message": …}`, `{"batch": […]}` or `{"policy": …}`).
fn approve(
    key_id: &str,
    user: Option<&str>,
    expires_at: u64,
    signers: &[&str],
    what: Value,
) -> Value {
    let mut request = json!({
        "keyId": key_id, "userId": user, "expiresAt": expires_at, "signers": signers,
        "names": {"ed25519": "ops-1", "p256": "risk"},
    });
    for (k, v) in what.as_object().unwrap() {
        request[k] = v.clone();
    }
    python(&["approve"], &request)
}

fn tx(nonce: u64, to: &str, value: &str) -> Value {
    json!({"type": "0x2", "chainId": "0x1", "nonce": format!("0x{nonce:x}"), "gas": "0x5208",
           "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x1", "to": to, "value": value})
}

/// One ether and up to 1 ETH to the treasury with one approval; anything else on chain 1 with
/// two; digests never; messages without approval.
fn the_policy(keys: &Value) -> Value {
    json!({
        "version": 1,
        "approvers": {
            "ops-1": {"type": "ed25519", "publicKey": keys["ed25519"]},
            "risk": {"type": "p256", "publicKey": keys["p256"]}
        },
        "rules": [
            {"effect": "deny", "when": {"kinds": ["digest"]}},
            {"effect": "allow", "when": {"kinds": ["message"]}},
            {"effect": "allow", "when": {"kinds": ["transaction"], "chainIds": ["0x1"],
                                         "to": [TREASURY], "valueMax": "0xde0b6b3a7640000"},
             "approvals": {"threshold": 1, "from": ["ops-1", "risk"]}},
            {"effect": "allow", "when": {"kinds": ["transaction"], "chainIds": ["0x1"]},
             "approvals": {"threshold": 2, "from": ["ops-1", "risk"]}}
        ],
        "admins": {"threshold": 2, "from": ["ops-1", "risk"]}
    })
}

struct Key {
    blob: String,
    id: String,
    alice: Address,
}

async fn create_key(url: &str, policy: &Value) -> Key {
    let (status, key) = post(url, "/v1/keys", &json!({"policy": policy})).await;
    assert_eq!(status, 201, "{key}");
    let blob = key["keyBlob"].as_str().unwrap().to_owned();
    let (status, answer) = post(
        url,
        "/v1/address",
        &json!({"keyBlob": blob, "userId": "alice"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    Key {
        blob,
        id: key["keyId"].as_str().unwrap().to_owned(),
        alice: address(&answer["address"]),
    }
}

async fn sign_tx(url: &str, key: &Key, tx: &Value, approvals: &Value) -> (u16, Value) {
    post(
        url,
        "/v1/sign/transaction",
        &json!({"keyBlob": key.blob, "userId": "alice", "transaction": tx, "approvals": approvals}),
    )
    .await
}

fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or_default()
}

/// The blob with its policy document replaced by `document` (bytes as given), re-encoded: what a
/// parent that edits policies would send.
fn with_policy_document(blob: &str, document: &[u8]) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let decoded = KeyBlob::decode(&engine.decode(blob).unwrap()).unwrap();
    let old = decoded.metadata();
    let metadata = KeyMetadata::new(old.kind(), old.kms_key(), None, Vec::new())
        .unwrap()
        .with_policy_document(document.to_vec())
        .unwrap();
    engine.encode(
        KeyBlob::new(metadata, decoded.ciphertext().to_vec())
            .unwrap()
            .encode(),
    )
}

fn policy_document(blob: &str) -> Vec<u8> {
    let engine = base64::engine::general_purpose::STANDARD;
    KeyBlob::decode(&engine.decode(blob).unwrap())
        .unwrap()
        .metadata()
        .policy_document()
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_and_approvals_decide_what_the_enclave_signs() {
    let dir = tempfile::tempdir().unwrap();
    let stack = DevStack::start(BIN, &dir.path().join("data"), &dir.path().join("stack.log"));
    let url = stack.url.clone();
    let keys = python(&["keys"], &json!({}));
    let policy = the_policy(&keys);
    let key = create_key(&url, &policy).await;
    let soon = now() + 600;

    // Messages need no approval; digests are denied by rule 0.
    let (status, answer) = post(
        &url,
        "/v1/sign/message",
        &json!({"keyBlob": key.blob, "userId": "alice", "message": {"utf8": "hello"}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = post(
        &url,
        "/v1/sign/digest",
        &json!({"keyBlob": key.blob, "userId": "alice", "digest": format!("0x{}", "11".repeat(32))}),
    )
    .await;
    assert_eq!((status, code(&answer)), (403, "policy_denied"), "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rules[0]")
    );

    // 1 ETH to the treasury: rule 2, one of two approvers.
    let small = tx(0, TREASURY, "0xde0b6b3a7640000");
    let (status, answer) = sign_tx(&url, &key, &small, &json!([])).await;
    assert_eq!(
        (status, code(&answer)),
        (403, "approvals_required"),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 more"),
        "{answer}"
    );
    for signer in ["ed25519", "p256"] {
        let approvals = approve(
            &key.id,
            Some("alice"),
            soon,
            &[signer],
            json!({"transaction": small}),
        );
        let (status, answer) = sign_tx(&url, &key, &small, &approvals).await;
        assert_eq!(status, 200, "{signer}: {answer}");
        check_transaction(&answer, key.alice);
    }

    // One wei over the cap, or to another address: rule 3, both approvers.
    for large in [tx(1, TREASURY, "0xde0b6b3a7640001"), tx(1, OTHER, "0x1")] {
        let what = json!({"transaction": large});
        let one = approve(&key.id, Some("alice"), soon, &["ed25519"], what.clone());
        let (status, answer) = sign_tx(&url, &key, &large, &one).await;
        assert_eq!(
            (status, code(&answer)),
            (403, "approvals_required"),
            "{answer}"
        );
        // The same approver twice counts once.
        let twice = json!([one[0], one[0]]);
        let (status, answer) = sign_tx(&url, &key, &large, &twice).await;
        assert_eq!(
            (status, code(&answer)),
            (403, "approvals_required"),
            "{answer}"
        );
        let both = approve(&key.id, Some("alice"), soon, &["ed25519", "p256"], what);
        let (status, answer) = sign_tx(&url, &key, &large, &both).await;
        assert_eq!(status, 200, "{answer}");
        check_transaction(&answer, key.alice);
        // The receipt records the approvals that counted, and the policy the key carries.
        let statement = receipt_statement(&url, &dir.path().join("data"), &answer).await;
        assert_eq!(statement.approvals_digest, Some(approvals_digest(&both)));
        assert!(statement.policy_hash.is_some());
    }

    // Approvals that do not count: expired, valid for more than 24 hours, over another
    // transaction, for another user, for another key.
    let what = json!({"transaction": small});
    let not_counted = [
        approve(
            &key.id,
            Some("alice"),
            now() - 1,
            &["ed25519"],
            what.clone(),
        ),
        approve(
            &key.id,
            Some("alice"),
            now() + 90_000,
            &["ed25519"],
            what.clone(),
        ),
        approve(
            &key.id,
            Some("alice"),
            soon,
            &["ed25519"],
            json!({"transaction": tx(9, TREASURY, "0x1")}),
        ),
        approve(&key.id, Some("bob"), soon, &["ed25519"], what.clone()),
        approve(
            &format!("0x{}", "ab".repeat(32)),
            Some("alice"),
            soon,
            &["ed25519"],
            what.clone(),
        ),
    ];
    for approvals in not_counted {
        let (status, answer) = sign_tx(&url, &key, &small, &approvals).await;
        assert_eq!(
            (status, code(&answer)),
            (403, "approvals_required"),
            "{approvals}: {answer}"
        );
    }

    // Another key whose policy names an "ops-1" with another public key: the first key's
    // approver does not count there.
    let mut other_policy = policy.clone();
    other_policy["approvers"]["ops-1"]["publicKey"] =
        json!("0x3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
    let other = create_key(&url, &other_policy).await;
    let approvals = approve(&other.id, Some("alice"), soon, &["ed25519"], what.clone());
    let (status, answer) = sign_tx(&url, &other, &small, &approvals).await;
    assert_eq!(
        (status, code(&answer)),
        (403, "approvals_required"),
        "{answer}"
    );

    // A batch: one approval covers every transaction, over the batch subject.
    let batch = vec![tx(2, TREASURY, "0x1"), tx(3, TREASURY, "0x2")];
    let approvals = approve(
        &key.id,
        Some("alice"),
        soon,
        &["p256"],
        json!({"batch": batch}),
    );
    let (status, answer) = post(
        &url,
        "/v1/sign/transactions",
        &json!({"keyBlob": key.blob, "userId": "alice", "transactions": batch, "approvals": approvals}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    for item in answer["results"].as_array().unwrap() {
        check_transaction(item, key.alice);
    }

    // A parent that edits the policy in the blob, or swaps in another blob's policy, gets
    // nothing: KMS refuses the blob (the policy's hash is in the encryption context).
    let document = policy_document(&key.blob);
    let edited = String::from_utf8(document.clone())
        .unwrap()
        .replace("\"threshold\":2", "\"threshold\":1");
    assert_ne!(edited.as_bytes(), document);
    let swapped = policy_document(&other.blob);
    for blob in [
        with_policy_document(&key.blob, edited.as_bytes()),
        with_policy_document(&key.blob, &swapped),
    ] {
        let tampered = Key {
            blob,
            id: key.id.clone(),
            alice: key.alice,
        };
        let large = tx(4, OTHER, "0x1");
        let one = approve(
            &key.id,
            Some("alice"),
            soon,
            &["ed25519"],
            json!({"transaction": large}),
        );
        let (status, answer) = sign_tx(&url, &tampered, &large, &one).await;
        assert_eq!(
            (status, code(&answer)),
            (400, "invalid_key_blob"),
            "{answer}"
        );
    }

    // A policy change: refused without the admins' quorum; with it, the new blob signs under the
    // new rules (transactions to the treasury without approval) and the old blob keeps the old.
    let mut relaxed = policy.clone();
    relaxed["rules"][2] = json!({"effect": "allow",
        "when": {"kinds": ["transaction"], "chainIds": ["0x1"], "to": [TREASURY]}});
    let what = json!({"policy": relaxed});
    let one = approve(&key.id, None, soon, &["ed25519"], what.clone());
    let (status, answer) = post(
        &url,
        "/v1/keys/policy",
        &json!({"keyBlob": key.blob, "policy": relaxed, "approvals": one}),
    )
    .await;
    assert_eq!(
        (status, code(&answer)),
        (403, "approvals_required"),
        "{answer}"
    );
    let both = approve(&key.id, None, soon, &["ed25519", "p256"], what);
    let (status, answer) = post(
        &url,
        "/v1/keys/policy",
        &json!({"keyBlob": key.blob, "policy": relaxed, "approvals": both}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["keyId"], json!(key.id));
    // The change's receipt: this key, the blob replaced, the new blob and policy, the admins.
    let statement = receipt_statement(&url, &dir.path().join("data"), &answer).await;
    let engine = base64::engine::general_purpose::STANDARD;
    let changed: nitro_signer_client::api::KeyResponse =
        serde_json::from_value(answer.clone()).unwrap();
    let asked = nitro_signer_client::receipts::Asked {
        key_blob: Some(&engine.decode(&key.blob).unwrap()),
        user_id: Some(None),
        nonce: None,
    };
    nitro_signer_client::receipts::check_key(&statement, Operation::UpdatePolicy, asked, &changed)
        .unwrap();
    assert_eq!(statement.approvals_digest, Some(approvals_digest(&both)));
    // Sealed inside the enclave under a data key from an attested GenerateDataKey: no Encrypt.
    let decoded = engine.decode(answer["keyBlob"].as_str().unwrap()).unwrap();
    assert!(KeyBlob::decode(&decoded).unwrap().sealed().is_some());
    let moved = Key {
        blob: answer["keyBlob"].as_str().unwrap().to_owned(),
        id: key.id.clone(),
        alice: key.alice,
    };
    let to_treasury = tx(5, TREASURY, "0x5");
    let (status, answer) = sign_tx(&url, &moved, &to_treasury, &json!([])).await;
    assert_eq!(status, 200, "{answer}");
    check_transaction(&answer, key.alice);
    let (status, answer) = sign_tx(&url, &key, &to_treasury, &json!([])).await;
    assert_eq!(
        (status, code(&answer)),
        (403, "approvals_required"),
        "{answer}"
    );

    the_approver_tools_make_approvals_the_enclave_counts(&url, dir.path()).await;
    stack.stop();
}

/// `nitro-signer approvers keygen` and `nitro-signer approve`: a P-256 and an Ed25519 approver,
/// a key whose policy needs both, an approval of each for a transaction.
async fn the_approver_tools_make_approvals_the_enclave_counts(url: &str, dir: &std::path::Path) {
    let cli = |args: &[&str]| -> Value {
        let output = Command::new(BIN).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let mut approvers = serde_json::Map::new();
    for (name, scheme) in [("alice-ops", "ed25519"), ("bob-risk", "p256")] {
        let file = dir.join(format!("{name}.key"));
        let entry = cli(&[
            "approvers",
            "keygen",
            "--type",
            scheme,
            "--out",
            file.to_str().unwrap(),
        ]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        approvers.insert(name.into(), entry);
    }
    let policy = json!({"version": 1, "approvers": approvers, "rules": [
        {"effect": "allow", "when": {"kinds": ["transaction"]},
         "approvals": {"threshold": 2, "from": ["alice-ops", "bob-risk"]}}
    ]});
    let key = create_key(url, &policy).await;
    let transaction = tx(0, OTHER, "0x1");
    let tx_file = dir.join("tx.json");
    std::fs::write(&tx_file, transaction.to_string()).unwrap();
    let approvals: Vec<Value> = ["alice-ops", "bob-risk"]
        .iter()
        .map(|name| {
            let file = dir.join(format!("{name}.key"));
            // alice-ops names herself; bob-risk's name comes from his key file's.
            let named = ["--approver", name];
            let named: &[&str] = if *name == "alice-ops" { &named } else { &[] };
            let mut args = vec!["approve", "--key", file.to_str().unwrap()];
            args.extend_from_slice(named);
            args.extend([
                "--key-id",
                &key.id,
                "--user-id",
                "alice",
                "transaction",
                tx_file.to_str().unwrap(),
            ]);
            cli(&args)
        })
        .collect();
    let (status, answer) = sign_tx(url, &key, &transaction, &json!([approvals[0]])).await;
    assert_eq!(
        (status, code(&answer)),
        (403, "approvals_required"),
        "{answer}"
    );
    let (status, answer) = sign_tx(url, &key, &transaction, &json!(approvals)).await;
    assert_eq!(status, 200, "{answer}");
    check_transaction(&answer, key.alice);
}

/// For random policies, requests and sets of approvers, the real stack signs exactly when the
/// reference model of `docs/policy.md` (`nitro_signer_tests::policy_model`) says it should:
/// policies made by the test, approvals by Ed25519 keys the test holds, every request over HTTP.
#[tokio::test(flavor = "multi_thread")]
async fn the_stack_signs_exactly_what_the_reference_model_allows() {
    use nitro_signer_eth::{
        AuthorizationOptions, AuthorizationRequest, PersonalMessage, TxOptions, UnsignedTransaction,
    };
    use nitro_signer_policy::approval::{ApproverKind, ApproverSecret};
    use nitro_signer_tests::policy_model::{
        APPROVERS, ModelRequest, USERS, authorization_json, model_allows, policy_json, request,
        rule, transaction_json,
    };
    use proptest::{
        prelude::*,
        sample::subsequence,
        strategy::ValueTree,
        test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
    };

    let dir = tempfile::tempdir().unwrap();
    let stack = DevStack::start(BIN, &dir.path().join("data"), &dir.path().join("stack.log"));
    let url = stack.url.clone();
    let secrets: Vec<ApproverSecret> = APPROVERS
        .iter()
        .map(|_| ApproverSecret::generate(ApproverKind::Ed25519).unwrap())
        .collect();
    let approvers: serde_json::Map<String, Value> = APPROVERS
        .iter()
        .zip(&secrets)
        .map(|(name, secret)| {
            let public = secret.public_key();
            let key = format!("0x{}", alloy_primitives::hex::encode(public.public_key()));
            (
                (*name).to_owned(),
                json!({"type": "ed25519", "publicKey": key}),
            )
        })
        .collect();
    let digest = [0x42u8; 32];
    let strategy = (
        prop::collection::vec(rule(), 1..5),
        prop::option::weighted(0.15, Just(())),
        request(),
        prop::sample::select(&USERS[..]),
        subsequence(&APPROVERS[..], 0..=3),
    );
    // A fixed seed, so that the run is the same every time (the evaluator's own property test,
    // `policy/tests/reference_model.rs`, draws 2,000 new cases per run).
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[0x5e; 32]),
    );
    let (mut signed, mut refused) = (0, 0);
    for case in 0..96 {
        let (rules, expired, request, user, approved) =
            strategy.new_tree(&mut runner).unwrap().current();
        if !rules.iter().any(|rule| !rule.deny) {
            continue;
        }
        let now = now();
        // An expired policy: notAfter an hour ago.
        let not_after = expired.map(|()| now - 3_600);
        let policy = policy_json(&rules, approvers.clone(), not_after);
        let key = create_key(&url, &policy).await;
        let key_id: [u8; 32] = alloy_primitives::hex::decode_to_array(&key.id).unwrap();
        let (path, mut body, subject) = if let Some(tx) = transaction_json(&request) {
            let hash = UnsignedTransaction::from_json(
                tx.to_string().as_bytes(),
                TxOptions {
                    allow_pre_eip155: true,
                },
            )
            .unwrap()
            .signing_hash();
            ("/v1/sign/transaction", json!({"transaction": tx}), hash.0)
        } else if let Some(auth) = authorization_json(&request) {
            let hash = AuthorizationRequest::from_json(auth.to_string().as_bytes())
                .unwrap()
                .into_unsigned(AuthorizationOptions {
                    allow_any_chain: true,
                })
                .unwrap()
                .signing_hash();
            (
                "/v1/sign/authorization",
                json!({"authorization": auth}),
                hash.0,
            )
        } else if matches!(request, ModelRequest::Message) {
            let hash = PersonalMessage::Bytes(b"hello".to_vec().into()).signing_hash();
            (
                "/v1/sign/message",
                json!({"message": {"utf8": "hello"}}),
                hash.0,
            )
        } else {
            (
                "/v1/sign/digest",
                json!({"digest": format!("0x{}", alloy_primitives::hex::encode(digest))}),
                digest,
            )
        };
        let approvals: Vec<_> = APPROVERS
            .iter()
            .zip(&secrets)
            .filter(|(name, _)| approved.contains(name))
            .map(|(name, secret)| {
                secret
                    .approve(name, &key_id, Some(user), &subject, now + 600)
                    .unwrap()
            })
            .collect();
        body["keyBlob"] = json!(key.blob);
        body["userId"] = json!(user);
        body["approvals"] = serde_json::to_value(&approvals).unwrap();
        let (status, answer) = post(&url, path, &body).await;
        let approved_names = approved.iter().copied().collect();
        let expected = model_allows(
            &rules,
            not_after,
            now,
            &request,
            Some(user),
            &approved_names,
        );
        assert_eq!(
            status == 200,
            expected,
            "case {case}: policy {policy} request {body} answered {status} {answer}"
        );
        if expected {
            signed += 1;
        } else {
            assert!(
                matches!(code(&answer), "policy_denied" | "approvals_required"),
                "case {case}: {answer}"
            );
            refused += 1;
        }
    }
    // Both outcomes were exercised.
    assert!(
        signed > 5 && refused > 5,
        "signed {signed}, refused {refused}"
    );
    stack.stop();
}
