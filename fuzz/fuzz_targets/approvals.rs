//! Approvals from arbitrary bytes, as the HTTP API reads them (a JSON list, at most 16, each
//! `{"approver", "expiresAt", "signature"}`) and as the enclave counts them: never panic, and no
//! approval of arbitrary bytes counts for a key it was not made for.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use nitro_signer_policy::{
    Approval, ApproverKey,
    approval::{Statement, deserialize_approvals, valid_approvers},
};

#[derive(serde::Deserialize)]
struct Request {
    #[serde(deserialize_with = "deserialize_approvals")]
    approvals: Vec<Approval>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<Request>(data) else {
        return;
    };
    // RFC 8032's first test key and the P-256 generator: real keys, whose private halves the
    // fuzzer does not have.
    let ed = ApproverKey::ed25519(&[
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07,
        0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07,
        0x51, 0x1a,
    ])
    .expect("a valid key");
    let mut p256 = vec![0x03];
    p256.extend_from_slice(&[
        0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40,
        0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98,
        0xc2, 0x96,
    ]);
    let approvers = BTreeMap::from([
        ("ops".to_owned(), ed),
        ("risk".to_owned(), ApproverKey::p256(&p256).expect("a valid key")),
    ]);
    let statement = Statement {
        key_id: &[0x1d; 32],
        user_id: Some("alice"),
        subject: &[0x5a; 32],
        now: 1_800_000_000,
    };
    assert!(request.approvals.len() <= 16);
    assert!(valid_approvers(&approvers, &request.approvals, &statement).is_empty());
});
