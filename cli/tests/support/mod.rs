//! What the integration tests of the `nitro-signer` binary share: its path, the log file a
//! component process writes to, JSON over HTTP, `keys import` of a known seed, and the
//! independent checks of a signed answer (alloy decodes, libsecp256k1 recovers).
// Each test binary compiles this module for itself and uses only some of it.
#![allow(dead_code)]

use std::{
    fs::File,
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
};

use alloy_consensus::{TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, B256, U256, keccak256};
use nitro_signer_eth::EthSignature;
use nitro_signer_tests::libsecp;
use serde_json::Value;

/// The `nitro-signer` binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer");

/// `path` opened for appending (created if need be), for a component's stderr: a restarted
/// component adds to the log of the one before.
pub(crate) fn append_log(path: &Path) -> File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// POSTs `body` as JSON to `url` + `path` with `client`: the status and the JSON answer
/// (`Null` when the body is not JSON). Panics when no answer comes.
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = client
        .post(format!("{url}{path}"))
        .json(body)
        .send()
        .await
        .unwrap_or_else(|error| panic!("{path}: no answer ({error})"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Runs `nitro-signer keys import` with `args` and `env`, `seed` in hex on its stdin; after
/// checking it succeeded, the key blob it printed and its log (stderr).
pub(crate) fn import_seed(args: &[&str], env: &[(&str, &str)], seed: &[u8]) -> (String, String) {
    let mut child = Command::new(BIN)
        .args(["keys", "import"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(hex::encode(seed).as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    (answer["keyBlob"].as_str().unwrap().to_owned(), log)
}

/// A `0x`-prefixed 32-byte hex string.
pub(crate) fn b256(value: &Value) -> B256 {
    value.as_str().unwrap().parse().unwrap()
}

/// A `0x`-prefixed hex quantity.
pub(crate) fn quantity(value: &Value) -> U256 {
    U256::from_str_radix(value.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// A `0x`-prefixed address.
pub(crate) fn address(value: &Value) -> Address {
    value.as_str().unwrap().parse().unwrap()
}

/// The signer of `hash`, recovered by libsecp256k1 from a signature given as its `r`, `s` and
/// `yParity` fields.
pub(crate) fn recover_fields(hash: &B256, signature: &Value) -> Address {
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
pub(crate) fn check_transaction(answer: &Value, expected_from: Address) -> TxEnvelope {
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
