//! The encoding vectors of the two reference SDKs, reproduced byte for byte: FCL's
//! (onflow/fcl-js `packages/sdk/src/encode/encode.test.ts`, `vectors/fcl-js-encode.json`) and
//! flow-go-sdk's (`transaction_test.go`, `vectors/flow-go-sdk-rlp.json`, which has arguments).
//! See each file for its source commit and the transcription notes.

#![cfg(test)]

use nitro_signer_flow::{FlowTransaction, Role, Signer, TRANSACTION_DOMAIN_TAG};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let doc: Value =
        serde_json::from_str(include_str!("vectors/fcl-js-encode.json")).expect("vector file");
    doc["cases"].as_array().expect("cases").clone()
}

#[test]
fn fcl_js_encoding_vectors() {
    let cases = cases();
    assert_eq!(cases.len(), 12);
    let (mut payloads, mut envelopes) = (0, 0);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let json = serde_json::to_vec(&case["transaction"]).unwrap();
        let tx = FlowTransaction::from_json(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(expected) = case["payload"].as_str() {
            assert_eq!(
                hex::encode(tx.payload_message()),
                expected,
                "{name}: payload"
            );
            // The proposer signs the same bytes, once the payload signatures are dropped.
            let mut unsigned = tx.clone();
            unsigned.payload_signatures = None;
            let proposer = Signer {
                address: tx.proposal_key.address,
                key_index: tx.proposal_key.key_index,
            };
            let message = unsigned
                .signing_message(Role::Proposer, &proposer)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(hex::encode(message), expected, "{name}: proposer message");
            payloads += 1;
        }
        if let Some(expected) = case["envelope"].as_str() {
            assert_eq!(
                hex::encode(tx.envelope_message().unwrap()),
                expected,
                "{name}: envelope"
            );
            let payer = Signer {
                address: tx.payer,
                key_index: 0,
            };
            let message = tx
                .signing_message(Role::Payer, &payer)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(hex::encode(message), expected, "{name}: payer message");
            envelopes += 1;
        }
    }
    assert_eq!((payloads, envelopes), (8, 12));
}

#[test]
fn vectors_survive_a_round_trip_through_our_serialization() {
    for case in cases() {
        let json = serde_json::to_vec(&case["transaction"]).unwrap();
        let tx = FlowTransaction::from_json(&json).unwrap();
        let again = FlowTransaction::from_json(&serde_json::to_vec(&tx).unwrap()).unwrap();
        assert_eq!(tx, again);
    }
}

#[test]
fn flow_go_sdk_rlp_vectors() {
    let doc: Value =
        serde_json::from_str(include_str!("vectors/flow-go-sdk-rlp.json")).expect("vector file");
    let cases = doc["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 9);
    let tag = hex::encode(TRANSACTION_DOMAIN_TAG);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let json = serde_json::to_vec(&case["transaction"]).unwrap();
        let tx = FlowTransaction::from_json(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
        let payload = format!("{tag}{}", case["payload"].as_str().unwrap());
        let envelope = format!("{tag}{}", case["envelope"].as_str().unwrap());
        assert_eq!(
            hex::encode(tx.payload_message()),
            payload,
            "{name}: payload"
        );
        let payer = Signer {
            address: tx.payer,
            key_index: 0,
        };
        let message = tx.signing_message(Role::Payer, &payer).unwrap();
        assert_eq!(hex::encode(message), envelope, "{name}: envelope");
    }
}
