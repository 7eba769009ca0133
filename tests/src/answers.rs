//! The HTTP API's answers, checked independently: its hex fields decoded, signatures recovered
//! by libsecp256k1, signed transactions decoded by alloy.

use alloy_consensus::{TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, B256, U256, keccak256};
use nitro_signer_eth::EthSignature;
use serde_json::Value;

use crate::libsecp;

/// POSTs `body` as JSON to `url` + `path` with `client`: the status and the JSON answer
/// (`Null` when the body is not JSON). Panics when no answer comes.
pub async fn post(client: &reqwest::Client, url: &str, path: &str, body: &Value) -> (u16, Value) {
    let response = client
        .post(format!("{url}{path}"))
        .json(body)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{path}: no answer ({error})"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A `0x`-prefixed 32-byte hex string.
pub fn b256(value: &Value) -> B256 {
    value.as_str().unwrap().parse().unwrap()
}

/// A `0x`-prefixed hex quantity.
pub fn quantity(value: &Value) -> U256 {
    U256::from_str_radix(value.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// A `0x`-prefixed address.
pub fn address(value: &Value) -> Address {
    value.as_str().unwrap().parse().unwrap()
}

/// The signer of `hash`, recovered by libsecp256k1 from a signature given as its `r`, `s` and
/// `yParity` fields.
pub fn recover_fields(hash: &B256, signature: &Value) -> Address {
    libsecp::recover(
        hash,
        &EthSignature {
            r: quantity(&signature["r"]),
            s: quantity(&signature["s"]),
            y_parity: quantity(&signature["yParity"]) == U256::from(1),
            v: None,
        },
    )
}

/// A signed-transaction answer: decoded by alloy, hashes checked, signer recovered by
/// libsecp256k1 and by alloy, `from` checked; the decoded transaction.
pub fn check_transaction(answer: &Value, expected_from: Address) -> TxEnvelope {
    let raw = alloy_primitives::hex::decode(answer["raw"].as_str().unwrap()).unwrap();
    let tx = TxEnvelope::decode_2718(&mut raw.as_slice()).unwrap();
    assert_eq!(*tx.tx_hash(), keccak256(&raw));
    assert_eq!(b256(&answer["hash"]), keccak256(&raw));
    let signing_hash = tx.signature_hash();
    assert_eq!(b256(&answer["signingHash"]), signing_hash);
    assert_eq!(
        recover_fields(&signing_hash, &answer["signature"]),
        expected_from
    );
    assert_eq!(tx.recover_signer().unwrap(), expected_from);
    assert_eq!(address(&answer["from"]), expected_from);
    tx
}

/// The signer of `hash`, recovered by libsecp256k1 from a 65-byte `0x<r‖s‖v>` signature (the
/// message and typed-data answers), after checking `v` is 27 or 28.
pub fn recover_rsv(hash: B256, signature: &Value) -> Address {
    let bytes = alloy_primitives::hex::decode(signature.as_str().unwrap()).unwrap();
    assert_eq!(bytes.len(), 65);
    assert!(bytes[64] == 27 || bytes[64] == 28);
    libsecp::recover(
        &hash,
        &EthSignature {
            r: U256::from_be_slice(&bytes[..32]),
            s: U256::from_be_slice(&bytes[32..64]),
            y_parity: bytes[64] == 28,
            v: None,
        },
    )
}
