//! The real `nitro-signer-kms-emulator` binary: its readiness line, the real `aws-sdk-kms`
//! client against it, persistence across a restart, and refusing to start without credentials.
#![cfg(test)]

use std::{
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_sdk_kms::{Client, primitives::Blob};
use nitro_signer_tests::{
    kms,
    process::{read_listening_line, signal},
};
use tokio::{
    io::{AsyncReadExt, BufReader},
    process::{Child, ChildStdout, Command},
};

const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer-kms-emulator");
const ACCESS_KEY: &str = "AKIABINARYTEST000000";
const SECRET_KEY: &str = "binary-test-secret-key-000000000000000000";
const STARTUP: Duration = Duration::from_secs(60);

/// The binary with a clean environment: nothing from the caller's `NITRO_SIGNER_*` leaks in.
fn command(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("RUST_LOG", "info")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

struct Emulator {
    child: Child,
    url: String,
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<String>>,
}

impl Emulator {
    async fn start(dir: &Path) -> Self {
        let mut child = command(dir)
            .env("NITRO_SIGNER_KMS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("NITRO_SIGNER_KMS_SECRET_ACCESS_KEY", SECRET_KEY)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let log = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        // The readiness contract: exactly `listening on http://IP:PORT`, the bound port.
        let url = read_listening_line(&mut stdout, "emulator", STARTUP).await;
        let address: std::net::SocketAddr = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("not an http URL: {url:?}"))
            .parse()
            .unwrap();
        assert_eq!(address.ip().to_string(), "127.0.0.1");
        assert_ne!(address.port(), 0);
        Self {
            child,
            url,
            stdout,
            stderr,
        }
    }

    fn client(&self) -> Client {
        kms::client("us-east-1", &self.url, ACCESS_KEY, SECRET_KEY)
    }

    /// Stops it with SIGTERM; returns its standard error. Checks that it exited cleanly and
    /// printed nothing more on standard output.
    async fn stop(mut self) -> String {
        signal("TERM", self.child.id().unwrap());
        let status = tokio::time::timeout(STARTUP, self.child.wait())
            .await
            .expect("the emulator did not stop on SIGTERM")
            .unwrap();
        assert!(status.success(), "{status:?}");
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "", "standard output holds only the readiness line");
        // Let the stderr reader reach the end of the pipe.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.stderr.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn the_binary_serves_the_sdk_and_keeps_keys_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("kms");

    let first = Emulator::start(&data_dir).await;
    let kms = first.client();
    let key = kms
        .create_key()
        .description("binary test")
        .send()
        .await
        .unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let encrypted = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"survives a restart".as_slice()))
        .encryption_context("test", "binary")
        .send()
        .await
        .unwrap();
    let ciphertext = encrypted.ciphertext_blob().unwrap().clone();
    let decrypted = kms
        .decrypt()
        .ciphertext_blob(ciphertext.clone())
        .encryption_context("test", "binary")
        .send()
        .await
        .unwrap();
    assert_eq!(
        decrypted.plaintext().unwrap().as_ref(),
        b"survives a restart"
    );
    let logs = first.stop().await;
    assert!(logs.contains("KMS emulator listening"), "{logs}");
    assert!(logs.contains("Encrypt"), "{logs}");
    assert!(logs.contains("KMS emulator stopped"), "{logs}");
    assert!(!logs.contains(SECRET_KEY), "{logs}");

    // Same data directory, another process and port: the earlier ciphertext still decrypts.
    let second = Emulator::start(&data_dir).await;
    let kms = second.client();
    let decrypted = kms
        .decrypt()
        .ciphertext_blob(ciphertext)
        .encryption_context("test", "binary")
        .send()
        .await
        .unwrap();
    assert_eq!(
        decrypted.plaintext().unwrap().as_ref(),
        b"survives a restart"
    );
    assert_eq!(decrypted.key_id(), key.key_metadata().unwrap().arn());
    second.stop().await;
}

#[tokio::test]
async fn the_binary_refuses_to_start_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::time::timeout(
        STARTUP,
        command(dir.path())
            .env("NITRO_SIGNER_KMS_ACCESS_KEY_ID", ACCESS_KEY)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no readiness line");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("NITRO_SIGNER_KMS_SECRET_ACCESS_KEY is not set"),
        "{stderr}"
    );

    // Without an access key id either.
    let output = tokio::time::timeout(
        STARTUP,
        command(dir.path())
            .env("NITRO_SIGNER_KMS_SECRET_ACCESS_KEY", SECRET_KEY)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--access-key-id"), "{stderr}");
    assert!(!stderr.contains(SECRET_KEY), "{stderr}");
}

#[tokio::test]
async fn the_secret_is_never_taken_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .args([
            "--access-key-id",
            ACCESS_KEY,
            "--secret-access-key",
            SECRET_KEY,
        ])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn help_explains_every_option() {
    let output = Command::new(BIN).arg("--help").output().await.unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--listen",
        "--data-dir",
        "--region",
        "--account-id",
        "--access-key-id",
        "--dangerous-attestation-root-sha256",
        "--max-connections",
        "--header-read-timeout-ms",
        "--request-timeout-ms",
        "NITRO_SIGNER_KMS_ACCESS_KEY_ID",
        "NITRO_SIGNER_KMS_SECRET_ACCESS_KEY",
        "NITRO_SIGNER_KMS_SESSION_TOKEN",
        "listening on http://IP:PORT",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[tokio::test]
async fn a_bad_attestation_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path())
        .env("NITRO_SIGNER_KMS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("NITRO_SIGNER_KMS_SECRET_ACCESS_KEY", SECRET_KEY)
        .args(["--dangerous-attestation-root-sha256", "abcd"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("64 hexadecimal digits"), "{stderr}");
}
