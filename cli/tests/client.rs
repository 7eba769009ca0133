//! The client commands, the real binary, against the real proxy and the enclave stand-in: policy
//! documents and approvals read from files reach the enclave as written.
#![cfg(test)]

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use nitro_signer_proxy::{Args, Server};
use nitro_signer_tests::stand_in::StandIn;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer");
/// A policy document as written (its spacing must reach the enclave unchanged).
const POLICY: &str = r#"{ "version": 1, "rules": [] }"#;

struct Proxy {
    url: String,
    enclave: StandIn,
    _stop: oneshot::Sender<()>,
}

async fn start(dir: &tempfile::TempDir) -> Proxy {
    let enclave = StandIn::start_unix(dir).await;
    let mut args = Args::new(enclave.address.clone());
    args.listen = "127.0.0.1:0".into();
    args.no_aws_credentials = true;
    args.no_auth = true;
    let server = Server::bind(args).await.unwrap();
    assert!(
        server
            .enclave_client()
            .wait_until_live(Duration::from_secs(2))
            .await
    );
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Proxy {
        url,
        enclave,
        _stop: stop,
    }
}

struct Output {
    ok: bool,
    stdout: Value,
    stderr: String,
}

/// Runs the binary with `args` and `--url`, off the runtime that serves the proxy.
async fn run(proxy: &Proxy, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .args(["--url", &proxy.url])
        .stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    Output {
        ok: output.status.success(),
        stdout: serde_json::from_slice(&output.stdout).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn approval(name: &str) -> Value {
    json!({"approver": name, "expiresAt": 1_767_225_600, "signature": format!("0x{}", "ab".repeat(64))})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_approvals_reach_the_enclave() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = start(&dir).await;
    let policy = write(dir.path(), "policy.json", POLICY);
    let one = write(dir.path(), "one.json", &approval("ops-1").to_string());
    let two = write(
        dir.path(),
        "two.json",
        &json!([approval("ops-2"), approval("ops-3")]).to_string(),
    );
    let message = write(dir.path(), "message.json", r#""0x6869""#);

    let created = run(
        &proxy,
        &["keys", "create", "--label", "t", "--policy", &policy],
    )
    .await;
    assert!(created.ok, "{}", created.stderr);
    assert_eq!(
        created.stdout["policyHash"],
        format!("0x{}", "9a".repeat(32))
    );
    assert_eq!(proxy.enclave.policies(), [Some(POLICY.to_owned())]);

    let updated = run(
        &proxy,
        &[
            "keys",
            "policy",
            "--key-blob",
            "aw==",
            "--policy",
            &policy,
            "--approval",
            &one,
            "--approval",
            &two,
        ],
    )
    .await;
    assert!(updated.ok, "{}", updated.stderr);
    assert_eq!(updated.stdout["keyBlob"], "dXBkYXRlZC1ibG9i");
    assert_eq!(
        updated.stdout["policyHash"],
        format!("0x{}", "9b".repeat(32))
    );
    let update = proxy.enclave.policy_updates().pop().unwrap();
    assert_eq!(update.policy, POLICY);
    let names: Vec<&str> = update
        .approvals
        .iter()
        .map(|a| a.approver.as_str())
        .collect();
    assert_eq!(names, ["ops-1", "ops-2", "ops-3"]);

    let signed = run(
        &proxy,
        &[
            "sign",
            "message",
            "--key-blob",
            "aw==",
            "--approval",
            &two,
            &message,
        ],
    )
    .await;
    assert!(signed.ok, "{}", signed.stderr);
    let seen = proxy.enclave.approvals();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0][1].approver, "ops-3");
    assert_eq!(seen[0][1].expires_at, 1_767_225_600);
    assert_eq!(seen[0][1].signature.as_slice(), [0xab; 64]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_approval_files_are_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = start(&dir).await;
    let message = write(dir.path(), "message.json", r#""0x6869""#);
    let seventeen: Vec<Value> = (0..17).map(|i| approval(&format!("ops-{i}"))).collect();
    let many = write(dir.path(), "many.json", &json!(seventeen).to_string());
    let mut unknown = approval("ops-1");
    unknown["role"] = json!("admin");
    let unknown = write(dir.path(), "unknown.json", &unknown.to_string());
    let mut text_time = approval("ops-1");
    text_time["expiresAt"] = json!("1767225600");
    let text_time = write(dir.path(), "text-time.json", &text_time.to_string());
    for (file, mention) in [
        (&many, "at most 16"),
        (&unknown, "unknown.json"),
        (&text_time, "text-time.json"),
    ] {
        let out = run(
            &proxy,
            &[
                "sign",
                "message",
                "--key-blob",
                "aw==",
                "--approval",
                file,
                &message,
            ],
        )
        .await;
        assert!(!out.ok, "{file}");
        assert!(out.stderr.contains(mention), "{mention}: {}", out.stderr);
    }
    assert!(proxy.enclave.approvals().is_empty());
}

/// `attest --verify` refuses, before any network call, to verify with fewer than PCR0, PCR1 and
/// PCR2 pinned, and names the flags missing.
#[test]
fn attest_verify_refuses_fewer_than_three_pcrs() {
    let pcr1 = format!("1={}", "ab".repeat(48));
    let out = Command::new(BIN)
        // Nothing listens there: the refusal must come first.
        .args([
            "attest",
            "--verify",
            "--url",
            "http://127.0.0.1:9",
            "--expect-pcr",
        ])
        .arg(&pcr1)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PCR0, PCR1 and PCR2")
            && stderr.contains("--expect-pcr 0=HEX --expect-pcr 2=HEX"),
        "{stderr}"
    );
}
