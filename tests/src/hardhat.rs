//! A real Ethereum node for the tests: Hardhat Network (`hardhat node`, from the packages of
//! [`crate::node`]) on the Prague hardfork, chain id 31337, with Hardhat's default dev accounts,
//! funded and unlocked, and automine, so that a sent transaction is mined at once.
//!
//! It is what nitro-signer's JSON-RPC endpoint is pointed at as its upstream node in the
//! end-to-end tests, and, since Hardhat itself serves `eth_accounts`, `eth_sendTransaction` and
//! the signing methods for its dev accounts, what the client scripts are proved against on their
//! own. Its configuration is `tests/node/hardhat.config.cjs`; nothing is compiled and nothing is
//! fetched from the internet.
//!
//! The JSON-RPC calls go over a plain HTTP/1.1 exchange on `std::net` ([`call`]): the tests
//! crate's `reqwest` is async only, and these helpers are called from synchronous test code.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{node, process::append_log};

/// The first of Hardhat's dev accounts (from the mnemonic "test test … junk"): unlocked and
/// funded with 10000 ETH by the node.
pub const DEV_ACCOUNT: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

/// The chain id the node is configured with.
pub const CHAIN_ID: u64 = 31337;

/// How long the node may take to answer its first `eth_chainId`.
const START_TIME_LIMIT: Duration = Duration::from_secs(60);

/// How long a JSON-RPC exchange may take.
const CALL_TIME_LIMIT: Duration = Duration::from_secs(30);

/// A running Hardhat node, killed (with anything it started) when dropped.
pub struct Hardhat {
    /// The node's JSON-RPC URL, `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Hardhat {
    /// Starts `hardhat node` on a free port of 127.0.0.1, its output appended to `log`, and
    /// waits (up to a minute) until it answers `eth_chainId`. Panics if it does not, or if it
    /// answers with another chain id.
    pub fn start(log: &Path) -> Self {
        let dir = node::dir();
        let config = node::place(&node::source("hardhat.config.cjs"));
        // The port is free when chosen but may be taken before the node binds it: a node that
        // exits during start-up is tried again on another port.
        for _ in 0..3 {
            let port = free_port();
            let mut command = Command::new("node");
            command
                .arg(dir.join("node_modules/hardhat/internal/cli/bootstrap.js"))
                .args([
                    "node",
                    "--hostname",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                ])
                .arg("--config")
                .arg(&config)
                .current_dir(&dir)
                // No consent prompt (it would wait on standard input), so no telemetry.
                .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
                .stdin(Stdio::null())
                .stdout(append_log(log))
                .stderr(append_log(log));
            std::os::unix::process::CommandExt::process_group(&mut command, 0);
            let child = command
                .spawn()
                .unwrap_or_else(|error| panic!("node: cannot run ({error}); is node installed?"));
            let mut hardhat = Self {
                url: format!("http://127.0.0.1:{port}"),
                child,
            };
            if hardhat.wait_until_ready(log) {
                return hardhat;
            }
        }
        panic!(
            "hardhat node exited during start-up three times; see {}",
            log.display()
        )
    }

    /// Waits until the node answers `eth_chainId`; false if it exited first.
    fn wait_until_ready(&mut self, log: &Path) -> bool {
        let deadline = Instant::now() + START_TIME_LIMIT;
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Ok(answer) = try_call(&self.url, None, "eth_chainId", json!([])) {
                let chain_id = answer["result"].as_str().unwrap_or_default();
                assert_eq!(
                    u64::from_str_radix(chain_id.trim_start_matches("0x"), 16).ok(),
                    Some(CHAIN_ID),
                    "hardhat answered eth_chainId with {answer}"
                );
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "hardhat node did not answer within {START_TIME_LIMIT:?}; see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Calls `method` with `params` on the node; its `result`. Panics if the node answers with
    /// an error.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        let answer = call(&self.url, None, method, params);
        if let Some(error) = answer.get("error") {
            panic!("hardhat {method} failed: {error}");
        }
        answer["result"].clone()
    }

    /// Waits (up to half a minute) for the receipt of transaction `hash` and returns it.
    pub fn receipt(&self, hash: &str) -> Value {
        let deadline = Instant::now() + CALL_TIME_LIMIT;
        loop {
            let receipt = self.rpc("eth_getTransactionReceipt", json!([hash]));
            if !receipt.is_null() {
                return receipt;
            }
            assert!(Instant::now() < deadline, "no receipt for {hash}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends `wei` from [`DEV_ACCOUNT`] to `address` (`eth_sendTransaction`) and waits until it
    /// is mined successfully.
    pub fn fund(&self, address: &str, wei: u128) {
        let hash = self.rpc(
            "eth_sendTransaction",
            json!([{"from": DEV_ACCOUNT, "to": address, "value": format!("{wei:#x}")}]),
        );
        let receipt = self.receipt(hash.as_str().unwrap());
        assert_eq!(
            receipt["status"], "0x1",
            "funding {address} failed: {receipt}"
        );
    }
}

impl Drop for Hardhat {
    fn drop(&mut self) {
        node::kill_group(&mut self.child);
    }
}

/// Sends the JSON-RPC request `method(params)` to `url` (`http://HOST:PORT[/PATH]`), with
/// `Authorization: Bearer KEY` when `bearer` is given, and returns the whole response object
/// (`result` or `error`). Panics if the exchange fails or the answer is not a JSON object
/// (whatever its HTTP status, which a JSON-RPC error may come with).
pub fn call(url: &str, bearer: Option<&str>, method: &str, params: Value) -> Value {
    try_call(url, bearer, method, params)
        .unwrap_or_else(|error| panic!("JSON-RPC {method} to {url}: {error}"))
}

/// [`call`], reporting a failed exchange instead of panicking.
fn try_call(url: &str, bearer: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let (status, body) = post(url, bearer, &serde_json::to_vec(&request).unwrap())?;
    let answer: Value = serde_json::from_slice(&body).map_err(|error| {
        format!(
            "HTTP {status}, not JSON ({error}): {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    if !answer.is_object() {
        return Err(format!("HTTP {status}, not a JSON-RPC response: {answer}"));
    }
    Ok(answer)
}

/// POSTs `body` as `application/json` to `url` over HTTP/1.1 with `Connection: close`; the
/// response's status and body.
fn post(url: &str, bearer: Option<&str>, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let failed = |error: std::io::Error| format!("{url}: {error}");
    let mut stream = TcpStream::connect(authority).map_err(failed)?;
    stream
        .set_read_timeout(Some(CALL_TIME_LIMIT))
        .map_err(failed)?;
    stream
        .set_write_timeout(Some(CALL_TIME_LIMIT))
        .map_err(failed)?;
    let authorization = bearer.map_or_else(String::new, |key| {
        format!("Authorization: Bearer {key}\r\n")
    });
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{authorization}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(failed)?;
    stream.write_all(body).map_err(failed)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(failed)?;
    parse_response(&response).ok_or_else(|| {
        format!(
            "malformed HTTP response: {}",
            String::from_utf8_lossy(&response)
        )
    })
}

/// The status and body of an HTTP/1.1 response read to the end of the connection (a body
/// framed by `Content-Length`, by chunks, or by the close).
fn parse_response(response: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..end]).ok()?;
    let mut body = &response[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body = body.get(..value.parse::<usize>().ok()?)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut decoded = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some((status, decoded));
        }
        decoded.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}
