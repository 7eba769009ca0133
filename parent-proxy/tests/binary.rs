//! The `nitro-signer-proxy` binary: the readiness line on standard output, logs on standard error,
//! options from the environment.
#![cfg(test)]

use std::{process::Stdio, time::Duration};

use nitro_signer_tests::{process::read_listening_line, stand_in::StandIn};
use tokio::{
    io::{AsyncReadExt, BufReader},
    process::Command,
};

#[tokio::test]
async fn prints_one_readiness_line_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = StandIn::start_unix(&dir).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nitro-signer-proxy"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("NITRO_SIGNER_PROXY_ENCLAVE", enclave.address.to_string())
        .env("NITRO_SIGNER_PROXY_NO_AWS_CREDENTIALS", "true")
        .env("NITRO_SIGNER_PROXY_NO_AUTH", "true")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let url = read_listening_line(&mut stdout, "proxy", Duration::from_secs(10)).await;
    let address: std::net::SocketAddr = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url:?}"))
        .parse()
        .unwrap();
    assert_ne!(address.port(), 0);

    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let mut ready = false;
    for _ in 0..50 {
        let response = http
            .get(format!("http://{address}/readyz"))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready);

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "", "nothing else on standard output");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    let first = stderr.lines().next().expect("logs on standard error");
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "{first}"
    );
    assert!(stderr.contains("connected to the enclave"), "{stderr}");
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nitro-signer-proxy"))
        .args(["--listen", &address.to_string(), "--no-aws-credentials"])
        .args(["--enclave", "unix:///nonexistent/enclave.sock", "--no-auth"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[tokio::test]
async fn help_documents_every_option() {
    let output = Command::new(env!("CARGO_BIN_EXE_nitro-signer-proxy"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--listen",
        "--enclave",
        "--connections",
        "--request-timeout-ms",
        "--max-body-bytes",
        "--max-concurrency",
        "--max-connections",
        "--header-read-timeout-ms",
        "--no-aws-credentials",
        "--tenants",
        "--no-auth",
        "--log-format",
        "--upstream",
        "--upstream-timeout-ms",
        "--upstream-all-methods",
        "--tx-fee-cap-wei",
        "--accounts-dir",
        "NITRO_SIGNER_PROXY_UPSTREAM",
        "NITRO_SIGNER_PROXY_ACCOUNTS_DIR",
        "NITRO_SIGNER_PROXY_LISTEN",
        "NITRO_SIGNER_PROXY_MAX_CONNECTIONS",
        "NITRO_SIGNER_PROXY_HEADER_READ_TIMEOUT_MS",
        "NITRO_SIGNER_PROXY_TENANTS",
        "NITRO_SIGNER_PROXY_NO_AUTH",
        "[default: vsock://16:5000]",
    ] {
        assert!(help.contains(option), "{option} missing from\n{help}");
    }
}

/// Runs the proxy binary with `args` (against no enclave, without credentials), checks that it
/// refused to start, and returns its standard error.
async fn refused(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_nitro-signer-proxy"))
        .args(["--listen", "127.0.0.1:0", "--no-aws-credentials"])
        .args(["--enclave", "unix:///nonexistent/enclave.sock"])
        .args(args)
        .env_remove("NITRO_SIGNER_PROXY_TENANTS")
        .env_remove("NITRO_SIGNER_PROXY_NO_AUTH")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success(), "started with {args:?}");
    assert!(output.stdout.is_empty(), "no readiness line");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn authentication_must_be_chosen() {
    let stderr = refused(&[]).await;
    assert!(
        stderr.contains("choose how callers authenticate: --tenants FILE")
            && stderr.contains("--no-auth"),
        "{stderr}"
    );

    let stderr = refused(&["--tenants", "/nonexistent/tenants.json", "--no-auth"]).await;
    assert!(stderr.contains("cannot be used with"), "{stderr}");

    let stderr = refused(&["--tenants", "/nonexistent/tenants.json"]).await;
    assert!(
        stderr.contains("cannot read the tenants file /nonexistent/tenants.json"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenants.json");
    std::fs::write(
        &path,
        r#"{"tenants": [{"name": "a", "apiKeySha256": "00", "owners": ["a"]}]}"#,
    )
    .unwrap();
    let stderr = refused(&["--tenants", path.to_str().unwrap()]).await;
    assert!(
        stderr.contains("tenants.json: tenant `a`: `apiKeySha256` must be 64 lowercase hex"),
        "{stderr}"
    );
}

/// SIGHUP makes the proxy read its accounts directory again (`docs/json-rpc.md`).
#[tokio::test]
async fn sighup_reloads_the_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = StandIn::start_unix(&dir).await;
    let accounts = dir.path().join("accounts");
    std::fs::create_dir(&accounts).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nitro-signer-proxy"))
        .args(["--listen", "127.0.0.1:0", "--accounts-dir"])
        .arg(&accounts)
        .env("NITRO_SIGNER_PROXY_ENCLAVE", enclave.address.to_string())
        .env("NITRO_SIGNER_PROXY_NO_AWS_CREDENTIALS", "true")
        .env("NITRO_SIGNER_PROXY_NO_AUTH", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let url = read_listening_line(&mut stdout, "proxy", Duration::from_secs(10)).await;
    let http = reqwest::Client::new();
    let accounts_served = || async {
        let answer: serde_json::Value = http
            .post(format!("{url}/"))
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"eth_accounts"}"#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["result"].as_array().unwrap().len()
    };
    assert_eq!(accounts_served().await, 0);
    // The stand-in gives 0xabab… for every blob ("k" in base64).
    std::fs::write(
        accounts.join("a.json"),
        r#"{"address":"0xabababababababababababababababababababab","keyBlob":"aw=="}"#,
    )
    .unwrap();
    let pid = child.id().unwrap();
    let mut served = 0;
    for _ in 0..100 {
        nitro_signer_tests::process::signal("HUP", pid);
        tokio::time::sleep(Duration::from_millis(50)).await;
        served = accounts_served().await;
        if served == 1 {
            break;
        }
    }
    assert_eq!(served, 1, "SIGHUP did not reload the accounts");
    child.start_kill().unwrap();
}
