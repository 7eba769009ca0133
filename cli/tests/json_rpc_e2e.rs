//! The JSON-RPC endpoint on a real chain: Hardhat's node (the EDR EVM, Prague) as the upstream
//! of the real `nitro-signer dev` stack (with API keys, as production runs), and everything sent
//! through the signer's URL. Each transaction type is accepted and executed by the node (legacy
//! with EIP-155, EIP-2930, EIP-1559, a contract deployment and a call to it, an EIP-7702
//! delegation with an authorization the signer made under a policy that allows it), 50
//! concurrent `eth_sendTransaction` calls from one account get consecutive nonces and add up,
//! and ethers v6, viem and web3.py, unmodified, use the signer as their RPC URL. Errors: unknown
//! account, bad parameters, a policy refusal, approvals required (and given in the header, made
//! by Python `cryptography` over the hash eth-account computes), no API key.
#![cfg(test)]

use std::process::Command;

use nitro_signer_tests::{
    dev_stack::DevStack,
    hardhat::{self, Hardhat},
    node, python,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer");
const APPROVALS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/approvals.py");
const WEB3_CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/python/web3_client.py"
);

/// A contract whose runtime stores its 32-byte calldata in slot 0 when called with data, and
/// returns slot 0 when called without: `CALLDATASIZE ISZERO PUSH1 0x0c JUMPI PUSH1 0
/// CALLDATALOAD PUSH1 0 SSTORE STOP JUMPDEST PUSH1 0 SLOAD PUSH1 0 MSTORE PUSH1 0x20 PUSH1 0
/// RETURN`.
const RUNTIME: &str = "3615600c57600035600055005b60005460005260206000f3";
/// Init code: copy the 24-byte runtime (after these 12 bytes) to memory and return it.
const INIT: &str = "6018600c60003960186000f3";

/// The RFC 8032 test 1 public key: a valid Ed25519 key nobody here signs with.
const UNUSED_APPROVER: &str = "0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

/// The signer's URL and API key, and the node.
struct Chain {
    url: String,
    key: String,
    node: Hardhat,
    data_dir: std::path::PathBuf,
}

impl Chain {
    /// Calls the signer; the whole answer.
    fn call(&self, method: &str, params: Value) -> Value {
        hardhat::call(&self.url, Some(&self.key), method, params)
    }

    /// Calls the signer; its result, or a panic with the error.
    fn ok(&self, method: &str, params: Value) -> Value {
        let answer = self.call(method, params);
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Calls the signer, expecting an error: its code, message and data.
    fn err(&self, method: &str, params: Value) -> (i64, String, Value) {
        let answer = self.call(method, params);
        let error = &answer["error"];
        assert!(error.is_object(), "{method} did not fail: {answer}");
        (
            error["code"].as_i64().unwrap(),
            error["message"].as_str().unwrap().to_owned(),
            error["data"].clone(),
        )
    }

    /// Sends through the signer and waits for the node's receipt, which must say success.
    fn send(&self, tx: Value) -> (Value, Value) {
        let hash = self.ok("eth_sendTransaction", json!([tx]));
        let receipt = self.node.receipt(hash.as_str().unwrap());
        assert_eq!(receipt["status"], "0x1", "{tx}: {receipt}");
        let mined = self.node.rpc("eth_getTransactionByHash", json!([hash]));
        (receipt, mined)
    }

    /// Runs the `nitro-signer` CLI against the stack; its standard output.
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write as _;
        let mut child = Command::new(BIN)
            .args(args)
            .env("NITRO_SIGNER_URL", &self.url)
            .env("NITRO_SIGNER_API_KEY", &self.key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or_default().as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "nitro-signer {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// A new key (with `policy`, if given): its blob and key id.
    fn key(&self, policy: Option<&Value>) -> (String, String) {
        let mut args = vec!["keys", "create"];
        let path = self.data_dir.join("policy.json");
        if let Some(policy) = policy {
            std::fs::write(&path, policy.to_string()).unwrap();
            args.extend(["--policy", path.to_str().unwrap()]);
        }
        let key: Value = serde_json::from_str(&self.cli(&args, None)).unwrap();
        (
            key["keyBlob"].as_str().unwrap().to_owned(),
            key["keyId"].as_str().unwrap().to_owned(),
        )
    }

    /// `nitro-signer accounts add`: the account's address.
    fn account(&self, blob: &str, user: &str) -> String {
        let dir = self.data_dir.join("accounts");
        let out = self.cli(
            &[
                "accounts",
                "add",
                "--key-blob",
                blob,
                "--user-id",
                user,
                "--label",
                user,
                "--dir",
                dir.to_str().unwrap(),
            ],
            None,
        );
        let address = out
            .lines()
            .find_map(|line| line.strip_prefix("address "))
            .unwrap()
            .to_owned();
        assert!(out.contains(&format!("served {address}")), "{out}");
        address
    }

    fn balance(&self, address: &str) -> u128 {
        quantity(&self.ok("eth_getBalance", json!([address, "latest"])))
    }
}

fn quantity(value: &Value) -> u128 {
    u128::from_str_radix(value.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

fn word(n: u8) -> String {
    format!("0x{:064x}", n)
}

#[test]
fn a_drop_in_signer_on_a_real_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.txt");
    let node = Hardhat::start(&log);
    let data_dir = dir.path().join("data");
    let stack = DevStack::start_with(
        BIN,
        &data_dir,
        &log,
        &["--auth", "--upstream", &node.url, "--no-audit-log"],
    );
    let chain = Chain {
        url: stack.url.clone(),
        key: stack.api_key.clone().unwrap(),
        node,
        data_dir: data_dir.clone(),
    };
    // Without the API key, nothing.
    let answer = hardhat::call(&chain.url, None, "eth_accounts", json!([]));
    assert_eq!(answer["error"]["code"], "unauthorized", "{answer}");

    let (blob, _) = chain.key(None);
    let alice = chain.account(&blob, "alice");
    assert_eq!(chain.ok("eth_accounts", json!([])), json!([alice]));
    assert_eq!(chain.ok("eth_chainId", json!([])), "0x7a69");
    chain.node.fund(&alice, 100_000_000_000_000_000_000);
    let recipient = "0x3535353535353535353535353535353535353535";

    // Legacy with EIP-155: v = 2 × chain id + 35 or 36.
    let gas_price = chain.ok("eth_gasPrice", json!([]));
    let (_, mined) = chain.send(json!({"from": alice, "to": recipient, "value": "0x3e8",
        "gasPrice": gas_price}));
    assert_eq!(mined["type"], "0x0");
    assert!(
        [2 * 31337 + 35, 2 * 31337 + 36].contains(&quantity(&mined["v"])),
        "{mined}"
    );
    // EIP-2930.
    let (_, mined) = chain.send(json!({"from": alice, "to": recipient, "value": "0x3e8",
        "gasPrice": gas_price, "accessList": [{"address": recipient, "storageKeys": [word(1)]}]}));
    assert_eq!(mined["type"], "0x1");
    assert_eq!(mined["accessList"][0]["storageKeys"][0], word(1));
    // EIP-1559, everything filled in by the signer.
    let (_, mined) = chain.send(json!({"from": alice, "to": recipient, "value": "0x3e8"}));
    assert_eq!(mined["type"], "0x2");
    // A contract deployment (no `to`, as geth takes it) and a call to it.
    let (receipt, _) = chain.send(json!({"from": alice, "data": format!("0x{INIT}{RUNTIME}")}));
    let contract = receipt["contractAddress"].as_str().unwrap().to_owned();
    assert_eq!(
        chain.ok("eth_getCode", json!([contract, "latest"])),
        format!("0x{RUNTIME}")
    );
    chain.send(json!({"from": alice, "to": contract, "input": word(42)}));
    assert_eq!(
        chain.ok("eth_call", json!([{"to": contract}, "latest"])),
        word(42)
    );
    // eth_signTransaction's raw transaction is what the node takes.
    let nonce = chain.ok("eth_getTransactionCount", json!([alice, "pending"]));
    let raw = chain.ok(
        "eth_signTransaction",
        json!([{"from": alice, "to": recipient, "value": "0x1", "gas": "0x5208",
            "maxFeePerGas": "0x12a05f200", "maxPriorityFeePerGas": "0x3b9aca00", "nonce": nonce}]),
    );
    let hash = chain.ok("eth_sendRawTransaction", json!([raw]));
    assert_eq!(chain.node.receipt(hash.as_str().unwrap())["status"], "0x1");

    // EIP-7702: a key whose policy allows delegating to the contract (and nothing else on
    // another chain), its own authorization, sent by itself (authorization nonce = tx nonce + 1).
    let policy = json!({"version": 1, "rules": [
        {"effect": "allow", "when": {"chainIds": ["0x7a69"]}},
        {"effect": "allow", "when": {"kinds": ["authorization", "transaction"],
            "chainIds": ["0x7a69"], "delegates": [contract]}},
    ]});
    let (delegating_blob, _) = chain.key(Some(&policy));
    let bob = chain.account(&delegating_blob, "bob");
    chain.node.fund(&bob, 1_000_000_000_000_000_000);
    let authorization: Value = serde_json::from_str(&chain.cli(
        &[
            "sign",
            "authorization",
            "--key-blob",
            &delegating_blob,
            "--user-id",
            "bob",
        ],
        Some(&json!({"chainId": "0x7a69", "address": contract, "nonce": "0x1"}).to_string()),
    ))
    .unwrap();
    let entry = json!({"chainId": authorization["chainId"], "address": authorization["address"],
        "nonce": authorization["nonce"], "yParity": authorization["yParity"],
        "r": authorization["r"], "s": authorization["s"]});
    let (_, mined) = chain.send(json!({"from": bob, "to": bob, "input": word(7),
        "authorizationList": [entry]}));
    assert_eq!(mined["type"], "0x4");
    assert_eq!(
        chain.ok("eth_getCode", json!([bob, "latest"])),
        format!(
            "0xef0100{}",
            contract.trim_start_matches("0x").to_lowercase()
        )
    );
    assert_eq!(
        chain.ok("eth_call", json!([{"to": bob}, "latest"])),
        word(7)
    );
    // Alice's key has no policy: it may not delegate.
    let (code, message, data) = chain.err(
        "eth_sendTransaction",
        json!([{"from": alice, "to": alice, "authorizationList": [entry]}]),
    );
    assert_eq!(code, -32000, "{message}");
    assert!(
        data["code"].as_str().unwrap().starts_with("policy_"),
        "{data}"
    );
    // Bob's policy allows chain 31337 only.
    let (code, message, data) = chain.err(
        "eth_signTransaction",
        json!([{"from": bob, "to": recipient, "gas": "0x5208", "gasPrice": "0x1",
            "nonce": "0x0", "chainId": "0x1"}]),
    );
    assert_eq!(
        (code, &data["code"]),
        (-32000, &json!("policy_denied")),
        "{message}"
    );

    // 50 at once from one account: consecutive nonces, all executed, balances add up.
    let before = (chain.balance(&alice), chain.balance(recipient));
    let first = quantity(&chain.ok("eth_getTransactionCount", json!([alice, "pending"])));
    let hashes: Vec<String> = std::thread::scope(|scope| {
        let calls: Vec<_> = (1..=50u64)
            .map(|i| {
                let chain = &chain;
                let alice = &alice;
                scope.spawn(move || {
                    let tx = json!({"from": alice, "to": recipient, "value": format!("{i:#x}")});
                    chain
                        .ok("eth_sendTransaction", json!([tx]))
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
            })
            .collect();
        calls.into_iter().map(|call| call.join().unwrap()).collect()
    });
    let mut nonces = Vec::new();
    let mut fees = 0u128;
    for hash in &hashes {
        let receipt = chain.node.receipt(hash);
        assert_eq!(receipt["status"], "0x1", "{receipt}");
        fees += quantity(&receipt["gasUsed"]) * quantity(&receipt["effectiveGasPrice"]);
        let mined = chain.node.rpc("eth_getTransactionByHash", json!([hash]));
        nonces.push(quantity(&mined["nonce"]));
    }
    nonces.sort_unstable();
    assert_eq!(nonces, (first..first + 50).collect::<Vec<u128>>());
    let sent: u128 = (1..=50).sum();
    assert_eq!(chain.balance(recipient), before.1 + sent);
    assert_eq!(chain.balance(&alice), before.0 - sent - fees);

    // Real clients, unmodified, with the signer as their only RPC URL. One key signs the same
    // typed data and message the same way (RFC 6979) whichever client asks.
    let mut signatures = Vec::new();
    for script in ["ethers_client.mjs", "viem_client.mjs"] {
        let out = node::run_script(&node::source(script), &[&chain.url, &alice, &chain.key]);
        let results: Value = serde_json::from_slice(&out).unwrap();
        let hash = results["transaction"]["hash"].as_str().unwrap();
        assert_eq!(chain.node.receipt(hash)["status"], "0x1", "{script}");
        signatures.push((
            results["typedDataSignature"].clone(),
            results["messageSignature"].clone(),
        ));
    }
    let out = python::run(&[WEB3_CLIENT, &chain.url, &alice, &chain.key], b"");
    let results: Value = serde_json::from_slice(&out).unwrap();
    assert!(
        results["signTransaction"]
            .as_str()
            .unwrap()
            .starts_with("0x02"),
        "{results}"
    );
    signatures.push((
        results["typedDataSignature"].clone(),
        results["messageSignature"].clone(),
    ));
    assert!(
        signatures.iter().all(|s| *s == signatures[0]),
        "{signatures:?}"
    );

    // Errors.
    let stranger = "0x0000000000000000000000000000000000000bad";
    let (code, message, _) = chain.err(
        "eth_sendTransaction",
        json!([{"from": stranger, "to": recipient}]),
    );
    assert_eq!(code, -32000);
    assert!(message.contains("unknown account"), "{message}");
    let (code, message, _) = chain.err(
        "eth_signTransaction",
        json!([{"from": alice, "to": recipient, "gas": 21000, "gasPrice": "0x1",
            "nonce": "0x0", "chainId": "0x7a69"}]),
    );
    assert_eq!(code, -32602, "{message}");
    assert!(message.contains("gas"), "{message}");

    approvals(&chain);
    drop(stack);
}

/// A key that needs one approval: refused without it, signed with it in the header.
fn approvals(chain: &Chain) {
    let keys: Value = serde_json::from_slice(&python::run(&[APPROVALS, "keys"], b"")).unwrap();
    let policy = json!({"version": 1,
        "approvers": {"ops": {"type": "ed25519", "publicKey": keys["ed25519"]},
            "other": {"type": "ed25519", "publicKey": UNUSED_APPROVER}},
        "rules": [{"effect": "allow", "when": {}, "approvals": {"threshold": 1, "from": ["ops", "other"]}}]});
    let (blob, key_id) = chain.key(Some(&policy));
    let carol = chain.account(&blob, "carol");
    let tx = json!({"from": carol, "to": "0x3535353535353535353535353535353535353535",
        "value": "0x1", "gas": "0x5208", "maxFeePerGas": "0x12a05f200",
        "maxPriorityFeePerGas": "0x3b9aca00", "nonce": "0x0", "chainId": "0x7a69"});
    let (code, message, data) = chain.err("eth_signTransaction", json!([tx]));
    assert_eq!(
        (code, &data["code"]),
        (-32000, &json!("approvals_required")),
        "{message}"
    );
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let request = json!({"keyId": key_id, "userId": "carol", "expiresAt": soon,
        "signers": ["ed25519"], "names": {"ed25519": "ops"}, "transaction": tx});
    let approvals = python::run(&[APPROVALS, "approve"], request.to_string().as_bytes());
    let approvals = String::from_utf8(approvals).unwrap();
    let (status, answer) = post_with_header(
        &chain.url,
        &chain.key,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "eth_signTransaction", "params": [tx]}),
        approvals.trim(),
    );
    assert_eq!(status, 200);
    let raw = answer["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    chain.node.fund(&carol, 1_000_000_000_000_000_000);
    let hash = chain.ok("eth_sendRawTransaction", json!([raw]));
    assert_eq!(chain.node.receipt(hash.as_str().unwrap())["status"], "0x1");
}

/// POSTs a JSON-RPC body with the approvals header.
fn post_with_header(url: &str, key: &str, body: &Value, approvals: &str) -> (u16, Value) {
    use std::io::{Read as _, Write as _};
    let authority = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {key}\r\nX-Nitro-Signer-Approvals: {approvals}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // One chunk is enough for these answers.
        body.split_once("\r\n")
            .unwrap()
            .1
            .rsplit_once("\r\n0")
            .unwrap()
            .0
            .to_owned()
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap())
}
