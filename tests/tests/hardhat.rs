//! The real-client harness proved on its own: a Hardhat node on Prague, and the ethers, viem and
//! web3.py client scripts run against it with Hardhat's own unlocked dev account. The
//! end-to-end tests of the JSON-RPC endpoint run the same scripts against nitro-signer, with
//! this node as its upstream; a failure here is the harness's, not nitro-signer's.
#![cfg(test)]

use nitro_signer_tests::{
    hardhat::{self, CHAIN_ID, DEV_ACCOUNT, Hardhat},
    node, python,
};
use serde_json::{Value, json};

/// Parses the one JSON object a client script prints, checking it ran on the test chain.
fn results(script: &str, stdout: &[u8]) -> Value {
    let results: Value = serde_json::from_slice(stdout).unwrap_or_else(|error| {
        panic!(
            "{script} printed no JSON object ({error}): {}",
            String::from_utf8_lossy(stdout)
        )
    });
    assert_eq!(results["chainId"], CHAIN_ID, "{script}: {results}");
    results
}

#[test]
fn hardhat_runs_prague_and_the_client_scripts_work_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = Hardhat::start(&dir.path().join("hardhat.log"));
    assert_eq!(node.rpc("eth_chainId", json!([])), format!("{CHAIN_ID:#x}"));
    assert!(
        node.rpc("eth_accounts", json!([]))
            .as_array()
            .unwrap()
            .iter()
            .any(|account| account.as_str().unwrap().eq_ignore_ascii_case(DEV_ACCOUNT)),
        "the dev account is not unlocked"
    );

    // Prague: an EIP-7702 (type 0x4) transaction is accepted and mined, and blocks carry the
    // EIP-7685 requests hash. The authorization's signature is invalid, which EIP-7702 skips
    // without failing the transaction.
    let hash = node.rpc(
        "eth_sendTransaction",
        json!([{
            "from": DEV_ACCOUNT,
            "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "authorizationList": [{
                "chainId": format!("{CHAIN_ID:#x}"),
                "address": "0x0000000000000000000000000000000000000001",
                "nonce": "0x0",
                "yParity": "0x0",
                "r": "0x1",
                "s": "0x1",
            }],
        }]),
    );
    let receipt = node.receipt(hash.as_str().unwrap());
    assert_eq!(receipt["type"], "0x4", "{receipt}");
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let block = node.rpc("eth_getBlockByNumber", json!(["latest", false]));
    assert!(
        block["requestsHash"].is_string(),
        "not a Prague block: {block}"
    );

    // The funding helper, and the generic call with a bearer key (which Hardhat ignores).
    let recipient = "0x000000000000000000000000000000000000bEEF";
    node.fund(recipient, 12_345);
    let answer = hardhat::call(
        &node.url,
        Some("unused-key"),
        "eth_getBalance",
        json!([recipient, "latest"]),
    );
    assert_eq!(answer["result"], "0x3039", "{answer}");

    let ethers = node::run_script(
        &node::source("ethers_client.mjs"),
        &[&node.url, DEV_ACCOUNT],
    );
    let ethers = results("ethers_client.mjs", &ethers);
    assert_eq!(ethers["transaction"]["type"], 2, "{ethers}");

    let viem = node::run_script(&node::source("viem_client.mjs"), &[&node.url, DEV_ACCOUNT]);
    let viem = results("viem_client.mjs", &viem);
    assert_eq!(viem["transaction"]["type"], "eip1559", "{viem}");

    // Hardhat has no eth_signTransaction: that check waits for nitro-signer.
    let web3_script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/web3_client.py");
    let web3 = python::run(&[web3_script, &node.url, DEV_ACCOUNT, "--hardhat"], b"");
    let web3 = results("web3_client.py", &web3);
    assert_eq!(web3["signTransaction"], "skipped", "{web3}");

    // One key, one deterministic (RFC 6979) signature, whichever client asked for it.
    for field in ["typedDataSignature", "messageSignature"] {
        assert_eq!(ethers[field], viem[field], "{field}");
        assert_eq!(ethers[field], web3[field], "{field}");
    }
}
