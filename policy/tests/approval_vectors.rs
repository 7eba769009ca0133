//! The approval statement and signatures against an implementation this crate did not write:
//! `approval_vectors.py` (hashlib, struct and Python `cryptography`), run here, and the vectors
//! it generated once, committed as `vectors/approvals.json` and quoted in `docs/policy.md`.
//!
//! Python 3 is required; the pinned `cryptography` is installed in the tests' own environment
//! (`nitro_signer_tests::python`). A missing oracle fails the tests, it never skips them.
#![cfg(test)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use alloy_primitives::hex;
use nitro_signer_policy::approval::{
    Approval, ApprovalError, ApproverKey, ApproverSecret, Statement, batch_subject, policy_subject,
    statement_digest, valid_approvers,
};
use serde_json::{Value, json};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/approval_vectors.py");
const COMMITTED: &str = include_str!("vectors/approvals.json");

/// Runs `approval_vectors.py` with `args` in the tests' Python (`nitro_signer_tests::python`,
/// with the pinned `cryptography`).
fn python(args: &[&str], stdin: Option<&str>) -> String {
    let mut all = vec![SCRIPT];
    all.extend_from_slice(args);
    String::from_utf8(nitro_signer_tests::python::run(
        &all,
        stdin.unwrap_or_default().as_bytes(),
    ))
    .unwrap()
}

fn script_vectors() -> Value {
    serde_json::from_str(&python(&[], None)).unwrap()
}

fn committed_vectors() -> Value {
    serde_json::from_str(COMMITTED).unwrap()
}

/// The vectors without the randomized P-256 signatures.
fn deterministic(mut v: Value) -> Value {
    for case in v["cases"].as_array_mut().unwrap() {
        case.as_object_mut()
            .unwrap()
            .retain(|k, _| !k.starts_with("p256Signature"));
    }
    v
}

fn bytes(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    hex::decode(s.strip_prefix("0x").unwrap()).unwrap()
}

fn b32(v: &Value) -> [u8; 32] {
    bytes(v).try_into().unwrap()
}

fn approver<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap()
}

/// Everything the vectors state, checked against this crate.
fn check(v: &Value) {
    let ed = approver(v, "ops-1");
    let p = approver(v, "ops-2");
    let ed_secret = ApproverSecret::from_file_json(&ed["keyFile"].to_string()).unwrap();
    let p_secret = ApproverSecret::from_file_json(&p["keyFile"].to_string()).unwrap();
    let ed_key = ApproverKey::ed25519(&bytes(&ed["publicKey"])).unwrap();
    let p_key = ApproverKey::p256(&bytes(&p["publicKey"])).unwrap();
    let p_key_compressed = ApproverKey::p256(&bytes(&p["publicKeyCompressed"])).unwrap();
    assert_eq!(ed_secret.public_key(), ed_key);
    assert_eq!(p_secret.public_key(), p_key);
    // The Ed25519 key file holds the seed: PKCS#8 v1 ends with it.
    assert!(bytes(&ed["keyFile"]["privateKey"]).ends_with(&bytes(&ed["seed"])));

    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 5, "the vectors lost cases");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let key_id = b32(&case["keyId"]);
        let user_id = case["userId"].as_str();
        let subject = b32(&case["subject"]);
        let expires_at = case["expiresAt"].as_u64().unwrap();
        if let Some(items) = case.get("batchItems") {
            let items: Vec<[u8; 32]> = items.as_array().unwrap().iter().map(b32).collect();
            assert_eq!(batch_subject(&items), subject, "{name}");
        }
        if let Some(policy) = case.get("canonicalPolicy") {
            let policy = policy.as_str().unwrap().as_bytes();
            assert_eq!(policy_subject(policy), subject, "{name}");
        }
        let digest = statement_digest(&key_id, user_id, &subject, expires_at);
        assert_eq!(digest, b32(&case["digest"]), "{name}: digest");

        // Ed25519 is deterministic: Rust's signature is Python's, byte for byte.
        let ed_sig = bytes(&case["ed25519Signature"]);
        assert_eq!(ed_secret.sign(&digest).unwrap(), ed_sig, "{name}");
        assert!(ed_key.verify(&digest, &ed_sig), "{name}");
        // P-256 is randomized: Python's signatures verify, low-s and high-s alike; DER does not.
        for field in ["p256Signature", "p256SignatureLowS", "p256SignatureHighS"] {
            let sig = bytes(&case[field]);
            assert!(p_key.verify(&digest, &sig), "{name}: {field}");
            assert!(p_key_compressed.verify(&digest, &sig), "{name}: {field}");
        }
        assert!(!p_key.verify(&digest, &bytes(&case["p256SignatureDer"])));
        assert!(!ed_key.verify(&[0; 32], &ed_sig));

        // Through valid_approvers, an hour before expiry.
        let approvers = BTreeMap::from([
            ("ops-1".to_string(), ed_key.clone()),
            ("ops-2".to_string(), p_key_compressed.clone()),
        ]);
        let approvals = [
            Approval {
                approver: "ops-1".into(),
                expires_at,
                signature: ed_sig,
            },
            Approval {
                approver: "ops-2".into(),
                expires_at,
                signature: bytes(&case["p256SignatureHighS"]),
            },
        ];
        let statement = Statement {
            key_id: &key_id,
            user_id,
            subject: &subject,
            now: expires_at - 3600,
        };
        let valid = valid_approvers(&approvers, &approvals, &statement);
        assert_eq!(valid.into_iter().collect::<Vec<_>>(), ["ops-1", "ops-2"]);
        let expired = Statement {
            now: expires_at,
            ..statement
        };
        assert!(valid_approvers(&approvers, &approvals, &expired).is_empty());
    }

    for y in v["ed25519SmallOrderY"].as_array().unwrap() {
        for sign in [0, 0x80] {
            let mut key = b32(y);
            key[31] |= sign;
            assert_eq!(
                ApproverKey::ed25519(&key),
                Err(ApprovalError::Ed25519SmallOrder),
                "{y}"
            );
        }
    }
}

#[test]
fn the_script_still_produces_the_committed_vectors() {
    assert_eq!(
        deterministic(script_vectors()),
        deterministic(committed_vectors()),
        "approval_vectors.py and vectors/approvals.json disagree"
    );
}

#[test]
fn the_committed_vectors_hold() {
    check(&committed_vectors());
}

#[test]
fn fresh_vectors_from_python_hold() {
    // New P-256 signatures on every run.
    check(&script_vectors());
}

#[test]
fn python_verifies_rust_signatures() {
    let v = committed_vectors();
    let mut items = Vec::new();
    for name in ["ops-1", "ops-2"] {
        let a = approver(&v, name);
        let secret = ApproverSecret::from_file_json(&a["keyFile"].to_string()).unwrap();
        for case in v["cases"].as_array().unwrap() {
            let digest = b32(&case["digest"]);
            let approval = secret
                .approve(
                    name,
                    &b32(&case["keyId"]),
                    case["userId"].as_str(),
                    &b32(&case["subject"]),
                    case["expiresAt"].as_u64().unwrap(),
                )
                .unwrap();
            items.push(json!({
                "type": a["type"],
                "publicKey": a["publicKey"],
                "digest": format!("0x{}", hex::encode(digest)),
                "signature": format!("0x{}", hex::encode(&approval.signature)),
            }));
        }
    }
    assert_eq!(
        python(&["verify"], Some(&Value::from(items).to_string())).trim(),
        "ok"
    );
    // And a signature Python must refuse, so that "ok" means something.
    let bad = json!([{
        "type": "ed25519",
        "publicKey": approver(&v, "ops-1")["publicKey"],
        "digest": format!("0x{}", "00".repeat(32)),
        "signature": v["cases"][0]["ed25519Signature"],
    }]);
    let out = Command::new(nitro_signer_tests::python::interpreter())
        .args([SCRIPT, "verify"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(bad.to_string().as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn the_documented_example_is_the_committed_vector() {
    // docs/policy.md quotes the first case; keep it in step with the vectors.
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/policy.md"))
            .unwrap();
    let v = committed_vectors();
    let case = &v["cases"][0];
    for field in ["keyId", "subject", "digest", "ed25519Signature"] {
        let value = case[field].as_str().unwrap();
        assert!(doc.contains(value), "docs/policy.md lacks {field} {value}");
    }
    for field in ["publicKey", "seed"] {
        let value = approver(&v, "ops-1")[field].as_str().unwrap();
        assert!(doc.contains(value), "docs/policy.md lacks {field} {value}");
    }
}

#[test]
fn the_documented_python_snippet_makes_the_documented_signature() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/policy.md"))
            .unwrap();
    let snippet = doc
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/policy.md has a python block");
    let v = committed_vectors();
    let case = &v["cases"][0];
    let harness = format!(
        r#"
from cryptography.hazmat.primitives.asymmetric import ed25519
key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex("{seed}"))
key_id = bytes.fromhex("{key_id}")
subject = bytes.fromhex("{subject}")
expires_at = {expires_at}
{snippet}
import json
print(json.dumps(approval))
"#,
        seed = &approver(&v, "ops-1")["seed"].as_str().unwrap()[2..],
        key_id = &case["keyId"].as_str().unwrap()[2..],
        subject = &case["subject"].as_str().unwrap()[2..],
        expires_at = case["expiresAt"],
    );
    let out = nitro_signer_tests::python::run(&["-c", &harness], b"");
    let approval: Approval = serde_json::from_slice(&out).unwrap();
    assert_eq!(approval.approver, "ops-1");
    assert_eq!(approval.signature, bytes(&case["ed25519Signature"]));
    assert_eq!(case["userId"], "alice");
}
