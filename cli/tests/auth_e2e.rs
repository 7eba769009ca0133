//! End to end: callers' authentication on the real `nitro-signer dev --auth` stack (KMS emulator,
//! enclave, proxy, each its own process), with tenants written by `nitro-signer tenants add`, and
//! the CLI's and the load generator's `--api-key`.
#![cfg(test)]

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use nitro_signer_tests::{answers::address, dev_stack::DevStack, libsecp, reference_derivation};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The `nitro-signer` binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer");

/// A known seed, imported with `keys import --dev`, so the test derives its addresses itself.
const SEED: [u8; 32] = [0x3a; 32];

/// Runs `nitro-signer` with `args` and `env` (and no API key from the test's environment):
/// whether it succeeded, its standard output and standard error.
fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_remove("NITRO_SIGNER_API_KEY")
        .env_remove("NITRO_SIGNER_PROXY_TENANTS")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `tenants add` into `file`: the new API key.
fn add_tenant(file: &Path, name: &str, owners: &[&str]) -> String {
    let mut args = vec![
        "tenants",
        "add",
        "--file",
        file.to_str().unwrap(),
        "--name",
        name,
    ];
    for owner in owners {
        args.extend(["--owner", owner]);
    }
    let (ok, stdout, stderr) = run(&args, &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("shown once"), "{stderr}");
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["name"], name);
    assert_eq!(answer["owners"], json!(owners));
    answer["apiKey"].as_str().unwrap().to_owned()
}

/// `keys import --dev` of `SEED` with `owner` (none if `None`): the blob.
fn import(data_dir: &Path, owner: Option<&str>) -> String {
    let mut args = vec![
        "--dev",
        "--kind",
        "seed",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    if let Some(owner) = owner {
        args.extend(["--owner", owner]);
    }
    nitro_signer_tests::process::import_seed(BIN, &args, &[], &SEED).0
}

/// POSTs `body` to `url` + `path` with `api_key` as Bearer (none if `None`): the status and the
/// JSON answer.
async fn post(url: &str, path: &str, api_key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .json(body);
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 401 {
        assert_eq!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .split(' ')
                .next(),
            Some("Bearer")
        );
    }
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `blob` (base64) with its owner label changed to `owner`, ciphertext unchanged.
fn relabel(blob: &str, owner: &str) -> String {
    use base64::Engine as _;
    use nitro_signer_common::key_blob::{KeyBlob, KeyMetadata};
    let engine = base64::engine::general_purpose::STANDARD;
    let blob = KeyBlob::decode(&engine.decode(blob).unwrap()).unwrap();
    let old = blob.metadata();
    let mut metadata = KeyMetadata::new(
        old.kind(),
        old.kms_key(),
        Some(owner.to_owned()),
        old.policy().to_vec(),
    )
    .unwrap();
    if let Some(document) = old.policy_document() {
        metadata = metadata.with_policy_document(document.to_vec()).unwrap();
    }
    let ciphertext = blob.ciphertext().to_vec();
    let relabelled = match blob.sealed() {
        Some(sealed) => KeyBlob::new_sealed(metadata, ciphertext, sealed.to_vec()),
        None => KeyBlob::new(metadata, ciphertext),
    };
    engine.encode(relabelled.unwrap().encode())
}

fn code(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["error"]["code"].as_str().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_and_owner_labels_on_the_dev_stack() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let tenants_file = data_dir.join("tenants.json");

    // A tenant of its own, before the stack starts: `dev --auth` keeps it.
    let other_key = add_tenant(&tenants_file, "other", &["other", "shared"]);
    assert!(
        other_key.starts_with("nsk_") && other_key.len() == 68,
        "{other_key}"
    );
    let mode = std::fs::metadata(&tenants_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&tenants_file).unwrap();
    assert!(!text.contains(&other_key), "only the digest is stored");
    assert!(
        text.contains(&hex::encode(Sha256::digest(other_key.as_bytes()))),
        "{text}"
    );
    // Names are unique.
    let (ok, _, stderr) = run(
        &[
            "tenants",
            "add",
            "--file",
            tenants_file.to_str().unwrap(),
            "--name",
            "other",
            "--owner",
            "x",
        ],
        &[],
    );
    assert!(
        !ok && stderr.contains("another tenant has the same name"),
        "{stderr}"
    );

    let stack = DevStack::start_with(BIN, &data_dir, &dir.path().join("stack.log"), &["--auth"]);
    let url = stack.url.as_str();
    let dev_key = stack.api_key.clone().expect("dev --auth prints an API key");
    let text = std::fs::read_to_string(&tenants_file).unwrap();
    assert!(
        text.contains("\"dev\"") && text.contains("\"other\""),
        "{text}"
    );

    // Open: health, readiness, metrics.
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    // No key, a wrong key: 401. The right key: 201.
    assert_eq!(
        code(&post(url, "/v1/keys", None, &json!({})).await),
        (401, "unauthorized")
    );
    let wrong = format!("nsk_{}", "0".repeat(64));
    assert_eq!(
        code(&post(url, "/v1/keys", Some(&wrong), &json!({})).await),
        (401, "unauthorized")
    );
    let created = post(url, "/v1/keys", Some(&dev_key), &json!({})).await;
    assert_eq!(created.0, 201, "{}", created.1);
    let dev_blob = created.1["keyBlob"].as_str().unwrap().to_owned();
    let created = post(
        url,
        "/v1/keys",
        Some(&other_key),
        &json!({"label": "shared"}),
    )
    .await;
    assert_eq!(created.0, 201, "{}", created.1);
    let shared_blob = created.1["keyBlob"].as_str().unwrap().to_owned();
    // A label the key does not own.
    assert_eq!(
        code(&post(url, "/v1/keys", Some(&dev_key), &json!({"label": "other"})).await),
        (403, "forbidden")
    );

    // Each blob with its own tenant's key, and refused with the other's.
    let transaction = json!({"type": "0x2", "chainId": "0x1", "nonce": "0x0", "gas": "0x5208",
        "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x1",
        "to": "0x3535353535353535353535353535353535353535", "value": "0x1"});
    for (blob, owner_key, stranger_key) in [
        (&dev_blob, &dev_key, &other_key),
        (&shared_blob, &other_key, &dev_key),
    ] {
        let address_body = json!({"keyBlob": blob, "userId": "alice"});
        let sign_body = json!({"keyBlob": blob, "userId": "alice", "transaction": transaction});
        for (path, body) in [
            ("/v1/address", &address_body),
            ("/v1/sign/transaction", &sign_body),
        ] {
            let answer = post(url, path, Some(owner_key), body).await;
            assert_eq!(answer.0, 200, "{path}: {}", answer.1);
            assert_eq!(
                code(&post(url, path, Some(stranger_key), body).await),
                (403, "forbidden"),
                "{path}"
            );
        }
    }

    // A blob relabelled for another tenant passes the proxy's check (the label says `other`),
    // but the label is bound to the ciphertext at KMS: the enclave cannot use it, though it
    // holds the original in its cache.
    let relabelled = relabel(&dev_blob, "other");
    let answer = post(
        url,
        "/v1/address",
        Some(&other_key),
        &json!({"keyBlob": relabelled, "userId": "alice"}),
    )
    .await;
    assert!(
        matches!(
            code(&answer),
            (400, "invalid_key_blob") | (403, "kms_access_denied")
        ),
        "{answer:?}"
    );

    // An imported seed labelled `dev`: the address is the one derived independently.
    let imported = import(&data_dir, Some("dev"));
    let alice = reference_derivation::derive(&SEED, "alice");
    let answer = post(
        url,
        "/v1/address",
        Some(&dev_key),
        &json!({"keyBlob": imported, "userId": "alice"}),
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert_eq!(address(&answer.1["address"]), libsecp::address(&alice));
    // Without an owner label, nobody's.
    let unlabelled = import(&data_dir, None);
    for key in [&dev_key, &other_key] {
        let answer = post(
            url,
            "/v1/address",
            Some(key),
            &json!({"keyBlob": unlabelled, "userId": "alice"}),
        )
        .await;
        assert_eq!(code(&answer), (403, "forbidden"), "{}", answer.1);
    }

    // The CLI: --api-key or NITRO_SIGNER_API_KEY.
    let address_args = [
        "address",
        "--url",
        url,
        "--key-blob",
        &imported,
        "--user-id",
        "alice",
    ];
    let (ok, _, stderr) = run(&address_args, &[]);
    assert!(
        !ok && stderr.contains("401") && stderr.contains("unauthorized"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = run(&address_args, &[("NITRO_SIGNER_API_KEY", &dev_key)]);
    assert!(ok, "{stderr}");
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(address(&answer["address"]), libsecp::address(&alice));
    let (ok, stdout, stderr) = run(
        &[
            "keys",
            "create",
            "--url",
            url,
            "--api-key",
            &other_key,
            "--label",
            "shared",
        ],
        &[],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("keyBlob"), "{stdout}");
    let (ok, _, stderr) = run(
        &[
            "keys",
            "create",
            "--url",
            url,
            "--api-key",
            &other_key,
            "--label",
            "dev",
        ],
        &[],
    );
    assert!(
        !ok && stderr.contains("403") && stderr.contains("forbidden"),
        "{stderr}"
    );

    // The load generator, with the key from the environment (its key gets the default label).
    let (ok, report, stderr) = run(
        &[
            "bench",
            "--url",
            url,
            "--connections",
            "4",
            "--requests",
            "200",
            "--warmup",
            "8",
            "--baseline-secs",
            "0",
        ],
        &[("NITRO_SIGNER_API_KEY", &dev_key)],
    );
    assert!(ok, "{report}\n{stderr}");
    assert!(
        report.contains("verified            200 signatures"),
        "{report}"
    );
    assert!(report.contains("errors              0"), "{report}");

    // The keys never reach the logs.
    stack.stop();
    let log = std::fs::read_to_string(dir.path().join("stack.log")).unwrap();
    for key in [&dev_key, &other_key] {
        assert!(!log.contains(key.as_str()), "an API key is in the log");
    }

    // `tenants remove`, down to the last tenant, which stays.
    let file = tenants_file.to_str().unwrap();
    let (ok, _, stderr) = run(
        &["tenants", "remove", "--file", file, "--name", "other"],
        &[],
    );
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(
        &["tenants", "remove", "--file", file, "--name", "other"],
        &[],
    );
    assert!(
        !ok && stderr.contains("no tenant is named `other`"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(&["tenants", "remove", "--file", file, "--name", "dev"], &[]);
    assert!(!ok && stderr.contains("the only tenant"), "{stderr}");
    let text = std::fs::read_to_string(&tenants_file).unwrap();
    assert!(
        text.contains("\"dev\"") && !text.contains("\"other\""),
        "{text}"
    );
}
