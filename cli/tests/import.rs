//! `nitro-signer keys import`, the real binary, against the KMS emulator over HTTP: a policy
//! document given with `--policy` is checked, kept in canonical form in the blob, and bound by its
//! hash through the encryption context, so that KMS decrypts the blob only with that hash; policy
//! mistakes are refused before any KMS call.
#![cfg(test)]

use std::{
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
};

use base64::Engine as _;
use nitro_signer_common::{attestation::RootOfTrust, key_blob};
use nitro_signer_kms_emulator::{
    server::{self, ServerLimits},
    service::{Kms, KmsError, Secret},
    sigv4::Credentials,
};
use nitro_signer_policy::Policy;
use serde_json::Value;
use zeroize::Zeroizing;

const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer");
const ACCESS_KEY: &str = "AKIAEMULATOR00000000";
const SECRET_KEY: &str = "emulator-secret-key-0000000000000000000";
const REGION: &str = "us-east-1";
const SEED: [u8; 32] = [0x42; 32];
/// A policy as a person writes it: not in canonical form (spacing, key order).
const POLICY: &str = r#"{
  "rules": [ { "when": { "kinds": ["transaction"], "chainIds": ["0x1"] }, "effect": "allow" } ],
  "version": 1
}"#;

/// The emulator on a free port, with one key whose policy allows everything.
struct Emulator {
    _dir: tempfile::TempDir,
    url: String,
    kms: Arc<Kms>,
    key_arn: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Emulator {
    let dir = tempfile::tempdir().unwrap();
    let kms = Arc::new(
        Kms::open(
            dir.path().join("kms"),
            RootOfTrust::dangerous_simulated([0; 32]),
        )
        .unwrap(),
    );
    let key_arn = kms.create_key("imports", None, false).unwrap().arn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let credentials = Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: Zeroizing::new(SECRET_KEY.into()),
        session_token: None,
    };
    tokio::spawn(server::serve(
        listener,
        Arc::clone(&kms),
        credentials,
        ServerLimits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    Emulator {
        _dir: dir,
        url,
        kms,
        key_arn,
        _stop: stop,
    }
}

struct Output {
    ok: bool,
    stdout: Value,
    stderr: String,
}

/// Runs `keys import --kind seed` with `args` against `endpoint`, [`SEED`] on standard input.
async fn import(endpoint: &str, key_arn: &str, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(["keys", "import", "--kind", "seed"])
        .args(["--kms-key-id", key_arn, "--kms-endpoint", endpoint])
        .args(["--kms-region", REGION])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The binary talks to the emulator running on this runtime: wait for it elsewhere.
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = command.spawn().unwrap();
        // The binary may exit (refusing its options) before reading the secret.
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(hex::encode(SEED).as_bytes());
        child.wait_with_output().unwrap()
    })
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

fn decode(answer: &Value) -> key_blob::KeyBlob {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(answer["keyBlob"].as_str().unwrap())
        .unwrap();
    key_blob::KeyBlob::decode(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_document_is_bound_by_its_hash() {
    let emulator = start().await;
    let files = tempfile::tempdir().unwrap();
    let policy_file = write(files.path(), "policy.json", POLICY);
    let out = import(
        &emulator.url,
        &emulator.key_arn,
        &["--owner", "tenant-1", "--policy", &policy_file],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);

    let policy = Policy::from_json(POLICY.as_bytes()).unwrap();
    assert_ne!(
        policy.canonical(),
        POLICY.as_bytes(),
        "the test needs a non-canonical input"
    );
    let blob = decode(&out.stdout);
    let metadata = blob.metadata();
    assert_eq!(metadata.policy_document(), Some(policy.canonical()));
    assert!(metadata.policy().is_empty(), "no opt-ins beside a policy");
    let context = metadata.encryption_context();
    assert_eq!(
        context.get(key_blob::context::POLICY_SHA256),
        Some(&policy.hash_hex())
    );
    assert_eq!(context[key_blob::context::KIND], "seed");
    assert_eq!(context[key_blob::context::OWNER], "tenant-1");
    assert!(!context.contains_key(key_blob::context::POLICY));
    assert_eq!(out.stdout["policyHash"], format!("0x{}", policy.hash_hex()));

    // KMS bound the hash to the ciphertext: the blob's own context decrypts it...
    let (_, secret) = emulator
        .kms
        .decrypt(blob.ciphertext(), &context, None, None)
        .unwrap();
    let Secret::Plaintext(plaintext) = secret else {
        panic!("no recipient was given")
    };
    assert_eq!(plaintext.as_slice(), SEED);
    // ...and nothing else does: another policy's hash, or none.
    let mut other = context.clone();
    other.insert(key_blob::context::POLICY_SHA256.to_owned(), "00".repeat(32));
    let mut without = context.clone();
    without.remove(key_blob::context::POLICY_SHA256);
    for context in [other, without] {
        assert!(matches!(
            emulator
                .kms
                .decrypt(blob.ciphertext(), &context, None, None),
            Err(KmsError::InvalidCiphertext)
        ));
    }

    // Without --policy: no document, no hash, no `policyHash`.
    let plain = import(&emulator.url, &emulator.key_arn, &[]).await;
    assert!(plain.ok, "{}", plain.stderr);
    let context = decode(&plain.stdout).metadata().encryption_context();
    assert!(!context.contains_key(key_blob::context::POLICY_SHA256));
    assert!(plain.stdout.get("policyHash").is_none());
}

#[tokio::test]
async fn policy_mistakes_are_refused_before_any_kms_call() {
    let files = tempfile::tempdir().unwrap();
    let good = write(files.path(), "good.json", POLICY);
    let bad = write(
        files.path(),
        "bad.json",
        r#"{"version": 1, "rules": [{"effect": "allow", "when": {"kind": ["transaction"]}}]}"#,
    );
    let not_json = write(files.path(), "not.json", "version: 1");
    // Nothing listens there: a KMS call would fail with another message.
    let nowhere = "http://127.0.0.1:1";
    let arn = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000";
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["--policy", &good, "--allow", "raw-digest"],
            &["--policy and --allow cannot be combined"],
        ),
        (&["--policy", &bad], &["bad.json", "rules[0].when", "kind"]),
        (&["--policy", &not_json], &["not.json"]),
        (
            &["--policy", "/nonexistent/policy.json"],
            &["/nonexistent/policy.json"],
        ),
    ];
    for (args, mentions) in cases {
        let out = import(nowhere, arn, args).await;
        assert!(!out.ok, "{args:?}");
        for mention in mentions {
            assert!(
                out.stderr.contains(mention),
                "{args:?}: {} lacks {mention:?}",
                out.stderr
            );
        }
        assert!(!out.stderr.contains("KMS"), "{args:?}: {}", out.stderr);
    }
}
