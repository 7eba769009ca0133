//! Flow signing end to end on the real `nitro-signer dev` stack: for both curves and both hashes,
//! the enclave's message for every fcl-js encoding vector (payload for the proposer, envelope for
//! the payer) is byte for byte the one FCL computes, and every signature and account key is
//! checked by code this project did not write: Python `cryptography` (P-256 and secp256k1, over
//! the message with the account key's hash), `rlp` (account keys), and libsecp256k1 (secp256k1,
//! over the hash). An imported P-256 key signs as its own public key, and only on P-256; roles
//! the signer does not hold are refused.
#![cfg(test)]

use base64::Engine as _;
use nitro_signer_client::{
    HttpClient, HttpError, ReceiptVerifier,
    api::{FlowPublicKeyRequest, KeyBlob, SignFlowTransactionRequest},
};
use nitro_signer_common::{
    UserId,
    attestation::{Expectations, RootOfTrust},
    key_blob::Curve,
};
use nitro_signer_enclave::nsm::SimulatorConfig;
use nitro_signer_flow::HashAlgorithm;
use nitro_signer_tests::{dev_stack::DevStack, libsecp, process::import_seed, python};
use serde_json::{Value, json, value::RawValue};

const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer");
const VERIFY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/python/flow_verify.py"
);
const RECEIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/receipts.py");
const VECTORS: &str = include_str!("../../flow/tests/vectors/fcl-js-encode.json");

const COMBINATIONS: [(Curve, HashAlgorithm); 4] = [
    (Curve::P256, HashAlgorithm::Sha3_256),
    (Curve::P256, HashAlgorithm::Sha2_256),
    (Curve::Secp256k1, HashAlgorithm::Sha3_256),
    (Curve::Secp256k1, HashAlgorithm::Sha2_256),
];

fn raw(value: Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text.trim_start_matches("0x")).unwrap()
}

struct Signing<'a> {
    client: &'a HttpClient,
    key_blob: KeyBlob,
    user_id: Option<UserId>,
}

impl Signing<'_> {
    async fn public_key(&self, curve: Curve, hash: HashAlgorithm) -> (Vec<u8>, Vec<u8>) {
        let answer = self
            .client
            .flow_public_key(&FlowPublicKeyRequest {
                key_blob: self.key_blob.clone(),
                user_id: self.user_id.clone(),
                curve,
                hash,
            })
            .await
            .unwrap();
        (answer.public_key, answer.account_key)
    }

    async fn sign(
        &self,
        curve: Curve,
        hash: HashAlgorithm,
        role: &str,
        signer: Value,
        transaction: &Value,
    ) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>), HttpError> {
        let answer = self
            .client
            .sign_flow_transaction(&SignFlowTransactionRequest {
                key_blob: self.key_blob.clone(),
                user_id: self.user_id.clone(),
                curve: raw(serde_json::to_value(curve).unwrap()),
                hash: raw(serde_json::to_value(hash).unwrap()),
                role: raw(json!(role)),
                signer: raw(signer),
                transaction: raw(transaction.clone()),
                approvals: Vec::new(),
            })
            .await?;
        Ok((answer.signature, answer.hash.to_vec(), answer.message))
    }
}

fn hash_name(hash: HashAlgorithm) -> &'static str {
    match hash {
        HashAlgorithm::Sha2_256 => "sha2-256",
        HashAlgorithm::Sha3_256 => "sha3-256",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn flow_transactions_signed_in_the_enclave_verify_independently() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.txt");
    let stack = DevStack::start(BIN, &dir.path().join("data"), &log);
    let client = HttpClient::new(stack.url.clone()).unwrap();
    let seed = Signing {
        client: &client,
        key_blob: client.generate_key(None).await.unwrap().key_blob,
        user_id: Some(UserId::new("alice").unwrap()),
    };
    let cases: Value = serde_json::from_str(VECTORS).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    let mut checks = Vec::new();
    let mut secp256k1 = 0;
    let (mut payloads, mut envelopes) = (0, 0);
    for (curve, hash) in COMBINATIONS {
        let (public_key, account_key) = seed.public_key(curve, hash).await;
        let xy: [u8; 64] = public_key.clone().try_into().unwrap();
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let tx = &case["transaction"];
            let mut signed = Vec::new();
            if let Some(expected) = case["payload"].as_str() {
                let mut unsigned = tx.clone();
                unsigned
                    .as_object_mut()
                    .unwrap()
                    .remove("payloadSignatures");
                let proposer = json!({"address": tx["proposalKey"]["address"],
                    "keyIndex": tx["proposalKey"]["keyIndex"]});
                let answer = seed
                    .sign(curve, hash, "proposer", proposer, &unsigned)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(hex::encode(&answer.2), expected, "{name}: payload message");
                signed.push(answer);
                payloads += 1;
            }
            if let Some(expected) = case["envelope"].as_str() {
                let payer = json!({"address": tx["payer"], "keyIndex": 0});
                let answer = seed
                    .sign(curve, hash, "payer", payer, tx)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(hex::encode(&answer.2), expected, "{name}: envelope message");
                signed.push(answer);
                envelopes += 1;
            }
            for (signature, digest, message) in signed {
                if curve == Curve::Secp256k1 {
                    let digest: [u8; 32] = digest.try_into().unwrap();
                    let rs: [u8; 64] = signature.clone().try_into().unwrap();
                    assert!(libsecp::verify(&xy, &digest, &rs), "{name}: libsecp256k1");
                    secp256k1 += 1;
                }
                checks.push(json!({"curve": curve.as_str(), "hash": hash_name(hash),
                    "publicKey": hex::encode(&public_key), "message": hex::encode(&message),
                    "signature": hex::encode(&signature)}));
            }
        }
        checks.push(json!({"curve": curve.as_str(), "hash": hash_name(hash),
            "publicKey": hex::encode(&public_key),
            "accountKey": hex::encode(&account_key),
            "message": checks.last().unwrap()["message"],
            "signature": checks.last().unwrap()["signature"]}));
    }
    let count = |field: &str| cases.iter().filter(|case| case[field].is_string()).count();
    assert_eq!(
        (payloads, envelopes),
        (4 * count("payload"), 4 * count("envelope"))
    );
    assert!(
        payloads >= 4 * 8 && envelopes >= 4 * 12,
        "{payloads} {envelopes}"
    );
    let verified = python::run(
        &[VERIFY],
        serde_json::to_string(&checks).unwrap().as_bytes(),
    );
    let verified: Value = serde_json::from_slice(&verified).unwrap();
    assert_eq!(verified["verified"], checks.len(), "{verified}");
    assert_eq!(verified["accountKeys"], 4, "{verified}");
    assert!(secp256k1 > 0);

    // The user's keys on the two curves, and two users' keys, differ.
    let (p256_alice, _) = seed.public_key(Curve::P256, HashAlgorithm::Sha3_256).await;
    let (k1_alice, _) = seed
        .public_key(Curve::Secp256k1, HashAlgorithm::Sha3_256)
        .await;
    let bob = Signing {
        user_id: Some(UserId::new("bob").unwrap()),
        key_blob: seed.key_blob.clone(),
        client: &client,
    };
    let (p256_bob, _) = bob.public_key(Curve::P256, HashAlgorithm::Sha3_256).await;
    assert_ne!(p256_alice, k1_alice);
    assert_ne!(p256_alice, p256_bob);

    // An imported P-256 key (the private key of the first P-256 derivation vector) signs as its
    // own public key, on P-256 only, with no user id.
    let imported_secret = unhex("6f25290023fc3e3d197e16bd20d6b0bb327c995fcaa3f3564e1bc18263eda065");
    let data_dir = dir.path().join("data");
    let (blob, _) = import_seed(
        BIN,
        &[
            "--dev",
            "--kind",
            "p256-private-key",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &[],
        &imported_secret,
    );
    let imported = Signing {
        client: &client,
        key_blob: serde_json::from_value(json!(blob)).unwrap(),
        user_id: None,
    };
    let (public_key, _) = imported
        .public_key(Curve::P256, HashAlgorithm::Sha2_256)
        .await;
    // docs/key-derivation.md: the public key of that private key, by Python `cryptography`.
    assert_eq!(
        hex::encode(&public_key),
        "85cac42373c7a8c50ab67fe328cf1dc0b3a6f8b4167101e9c15485f5ad86f71e\
         c00bf654aa2a30fe213cca6aeecb8f4c07a223543e4ce7feefae466cbda8f0ab"
    );
    let case = &cases[0];
    let payer = json!({"address": case["transaction"]["payer"], "keyIndex": 0});
    let (signature, _, message) = imported
        .sign(
            Curve::P256,
            HashAlgorithm::Sha2_256,
            "payer",
            payer.clone(),
            &case["transaction"],
        )
        .await
        .unwrap();
    let check = json!([{"curve": "p256", "hash": "sha2-256", "publicKey": hex::encode(&public_key),
        "message": hex::encode(&message), "signature": hex::encode(&signature)}]);
    python::run(&[VERIFY], check.to_string().as_bytes());

    // With a receipt verifier (the simulator's root, its PCR0–2 pinned), every Flow answer must
    // carry a receipt of the attested enclave that fits it: the public key (and the account
    // key encoding it) and the signature over the hash of the answered message.
    let root = {
        use sha2::Digest as _;
        let der = std::fs::read(data_dir.join("nsm").join("nsm-root-cert.der")).unwrap();
        <[u8; 32]>::from(sha2::Sha256::digest(&der))
    };
    let verifier = ReceiptVerifier::new(
        RootOfTrust::dangerous_simulated(root),
        Expectations {
            pcrs: SimulatorConfig::default_pcrs()
                .into_iter()
                .filter(|(index, _)| *index < 3)
                .collect(),
            ..Default::default()
        },
    )
    .unwrap();
    let checked_client = HttpClient::new(stack.url.clone())
        .unwrap()
        .with_receipt_verifier(std::sync::Arc::new(verifier));
    let checked = Signing {
        client: &checked_client,
        key_blob: seed.key_blob.clone(),
        user_id: seed.user_id.clone(),
    };
    for (curve, hash) in COMBINATIONS {
        let (public_key, _) = checked.public_key(curve, hash).await;
        let payer = json!({"address": case["transaction"]["payer"], "keyIndex": 0});
        let (signature, _, message) = checked
            .sign(curve, hash, "payer", payer, &case["transaction"])
            .await
            .unwrap();
        let check = json!([{"curve": curve.as_str(), "hash": hash_name(hash),
            "publicKey": hex::encode(&public_key), "message": hex::encode(&message),
            "signature": hex::encode(&signature)}]);
        python::run(&[VERIFY], check.to_string().as_bytes());
    }

    // The independent receipt verifier (`tests/python/receipts.py`, Python `cryptography` and
    // `cbor2`, from docs/receipts.md) reads the Flow receipts too: a public key's and a
    // signature's, under an attestation document for a fresh nonce. The fingerprint is computed
    // here from the documented definition (SHA-256 of signAlgo ‖ x ‖ y, its last 20 bytes).
    let public_answer = client
        .flow_public_key(&FlowPublicKeyRequest {
            key_blob: seed.key_blob.clone(),
            user_id: seed.user_id.clone(),
            curve: Curve::P256,
            hash: HashAlgorithm::Sha3_256,
        })
        .await
        .unwrap();
    let payer = json!({"address": case["transaction"]["payer"], "keyIndex": 0});
    let sign_answer = client
        .sign_flow_transaction(&SignFlowTransactionRequest {
            key_blob: seed.key_blob.clone(),
            user_id: seed.user_id.clone(),
            curve: raw(json!("p256")),
            hash: raw(json!("sha3-256")),
            role: raw(json!("payer")),
            signer: raw(payer.clone()),
            transaction: raw(case["transaction"].clone()),
            approvals: Vec::new(),
        })
        .await
        .unwrap();
    let nonce = [0x5a; 32];
    let document = client.attestation(&nonce).await.unwrap().document;
    let input = json!({
        "document": base64::engine::general_purpose::STANDARD.encode(&document),
        "nonce": hex::encode(nonce),
        "rootSha256": hex::encode(root),
        "pcrs": SimulatorConfig::default_pcrs()
            .into_iter()
            .filter(|(index, _)| *index < 3)
            .map(|(index, value)| (index.to_string(), json!(hex::encode(value))))
            .collect::<serde_json::Map<_, _>>(),
        "receipts": [public_answer.receipt, sign_answer.receipt],
    });
    let verified: Value = serde_json::from_slice(&python::run(
        &[RECEIPTS, "verify"],
        input.to_string().as_bytes(),
    ))
    .unwrap();
    let statements = verified["statements"].as_array().unwrap();
    let fingerprint = {
        use sha2::Digest as _;
        let mut input = vec![2u8];
        input.extend_from_slice(&public_answer.public_key);
        format!("0x{}", hex::encode(&sha2::Sha256::digest(&input)[12..]))
    };
    assert_eq!(statements[0]["operation"], "flow_public_key", "{verified}");
    assert_eq!(statements[0]["address"], fingerprint.as_str(), "{verified}");
    assert_eq!(statements[1]["operation"], "sign_flow", "{verified}");
    assert_eq!(statements[1]["address"], fingerprint.as_str(), "{verified}");
    let item = &statements[1]["items"][0];
    assert_eq!(item["hash"], format!("0x{}", hex::encode(sign_answer.hash)));
    assert_eq!(
        item["signature"],
        format!("0x{}00", hex::encode(&sign_answer.signature))
    );

    // Refusals, before any key is used: another curve than the imported key's, a user id for
    // it, a role the signer does not hold, an unknown field.
    let refused = |result: Result<_, HttpError>| match result {
        Err(HttpError::Api { status, error }) => {
            (status, error.code.as_str().to_owned(), error.message)
        }
        other => panic!("not refused: {other:?}"),
    };
    let (status, code, message) = refused(
        imported
            .sign(
                Curve::Secp256k1,
                HashAlgorithm::Sha2_256,
                "payer",
                payer.clone(),
                &case["transaction"],
            )
            .await,
    );
    assert_eq!(
        (status, code.as_str()),
        (400, "invalid_request"),
        "{message}"
    );
    assert!(message.contains("curve"), "{message}");
    // A P-256 key on an Ethereum endpoint.
    let (status, code, message) = refused(
        client
            .address(&nitro_signer_client::api::AddressRequest {
                key_blob: imported.key_blob.clone(),
                user_id: None,
            })
            .await
            .map(|_| (Vec::new(), Vec::new(), Vec::new())),
    );
    assert_eq!(
        (status, code.as_str()),
        (400, "invalid_request"),
        "{message}"
    );
    assert!(message.contains("curve"), "{message}");
    let stranger = json!({"address": "0x00000000000000ff", "keyIndex": 0});
    for role in ["payer", "authorizer", "proposer"] {
        let (status, _, message) = refused(
            seed.sign(
                Curve::P256,
                HashAlgorithm::Sha3_256,
                role,
                stranger.clone(),
                &case["transaction"],
            )
            .await,
        );
        assert_eq!(status, 400, "{role}: {message}");
        assert!(message.contains(role), "{role}: {message}");
    }
    let mut extra = case["transaction"].clone();
    extra["memo"] = json!("x");
    let (status, _, message) = refused(
        seed.sign(Curve::P256, HashAlgorithm::Sha3_256, "payer", payer, &extra)
            .await,
    );
    assert_eq!(status, 400);
    assert!(message.contains("memo"), "{message}");
    // Every Flow receipt went to the audit log, which checks out (signatures, sequence, boots).
    stack.stop();
    let audit = std::process::Command::new(BIN)
        .args(["audit", "check", "--json", "--dev", "--data-dir"])
        .arg(&data_dir)
        .arg(data_dir.join("audit.jsonl"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(
        report.contains("sign_flow") || report.contains("\"receipts\""),
        "{report}"
    );
}
