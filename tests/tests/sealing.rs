//! The enclave's sealed key format (`enclave/src/sealing.rs`) against Python `cryptography`'s
//! AES-GCM, which builds the associated data from the documented layout itself, and against the
//! vector in `docs/policy.md`.
#![cfg(test)]

use std::collections::BTreeMap;

use nitro_signer_enclave::sealing::{open, seal};

const DOCUMENTED: &str = "3f86faeca5cc55b6bf59d13a9a2515f0e3b1f7a72d82f505484bde9611b74438167ed0a89b5b9507d4c3f40e7c1b9c57";

fn context() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("nitro-signer:blob-version".to_owned(), "1".to_owned()),
        ("nitro-signer:kind".to_owned(), "seed".to_owned()),
        ("nitro-signer:policy-sha256".to_owned(), "aa".repeat(32)),
    ])
}

#[test]
fn sealing_matches_python_cryptography_and_the_documented_vector() {
    let script = r#"
import json, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
context = json.load(sys.stdin)
aad = b"nitro-signer/sealed/v1"
for name in sorted(context):
    for part in (name, context[name]):
        aad += struct.pack(">H", len(part.encode())) + part.encode()
print(AESGCM(bytes([7] * 32)).encrypt(bytes(12), bytes([0x5e] * 32), aad).hex())
"#;
    let python = nitro_signer_tests::python::run(
        &["-c", script],
        serde_json::to_string(&context()).unwrap().as_bytes(),
    );
    let sealed = seal(&[7; 32], &context(), &[0x5e; 32]).unwrap();
    assert_eq!(
        hex::encode(&sealed),
        String::from_utf8(python).unwrap().trim()
    );
    assert_eq!(hex::encode(&sealed), DOCUMENTED);
    let docs = include_str!("../../docs/policy.md");
    assert!(
        docs.contains(DOCUMENTED),
        "docs/policy.md lacks the sealing vector"
    );
    assert_eq!(
        open(&[7; 32], &context(), &sealed).unwrap().as_slice(),
        &[0x5e; 32]
    );
}
