//! `nitro-signer policy`, the real binary: the KMS key policy it writes pins exactly the
//! measurements it was given, refuses debug-mode (all-zero) PCRs and malformed input, and is
//! enforced as intended by the KMS emulator: an enclave with those measurements may decrypt, one
//! with other measurements (or a caller without an attestation document) may not, and the role
//! may encrypt only key blobs with a policy document.
#![cfg(test)]

use std::{collections::BTreeMap, path::Path, process::Command};

use nitro_signer_common::{
    attestation::RootOfTrust,
    key_blob::{KeyKind, KeyMetadata},
};
use nitro_signer_enclave::{
    nsm::{AttestationRequest, Nsm, SimulatedNsm, SimulatorConfig},
    recipient::RecipientKey,
};
use nitro_signer_kms_emulator::service::{Kms, KmsError, Recipient, Secret};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
/// The role of AWS's PCR3 example ("Where to get an enclave's measurements").
const ROLE: &str = "arn:aws:iam::123456789012:role/Webserver";
/// Its PCR3, as AWS documents it.
const ROLE_PCR3: &str = "78fce75db17cd4e0a3fb8dad3ad128ca5e77edbb2b2c7f75329dccd99aa5f6ef\
                         4fc1f1a452e315b9e98f9e312e6921e6";

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn policy(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_nitro-signer"))
        .arg("policy")
        .args(args)
        .output()
        .expect("running nitro-signer policy");
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `nitro-signer policy` for the measurements in `files`, the parent's role [`ROLE`] in
/// [`ACCOUNT`], and `extra` options.
fn policy_for(files: &[&Path], extra: &[&str]) -> Output {
    let mut args = Vec::new();
    for file in files {
        args.extend(["--measurements", file.to_str().unwrap()]);
    }
    args.extend(["--role-arn", ROLE, "--account", ACCOUNT]);
    args.extend_from_slice(extra);
    policy(&args)
}

/// Writes `pcrs` as `nitro-cli build-enclave` prints them.
fn write_measurements(path: &Path, pcrs: &BTreeMap<u8, String>) {
    let mut inner = serde_json::Map::new();
    inner.insert("HashAlgorithm".into(), "Sha384 { ... }".into());
    for (index, hex) in pcrs {
        inner.insert(format!("PCR{index}"), hex.clone().into());
    }
    let doc = serde_json::json!({ "Measurements": inner });
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

fn pcrs_of(pairs: &[(u8, char)]) -> BTreeMap<u8, String> {
    pairs
        .iter()
        .map(|(i, c)| (*i, c.to_string().repeat(96)))
        .collect()
}

fn statement<'a>(policy: &'a Value, sid_prefix: &str) -> &'a Value {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"].as_str().unwrap().starts_with(sid_prefix))
        .unwrap_or_else(|| panic!("no statement {sid_prefix}* in {policy:#}"))
}

fn actions(statement: &Value) -> Vec<&str> {
    statement["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

#[test]
fn conditions_are_exactly_the_measurements() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nitro-signer.measurements.json");
    // nitro-cli prints lowercase; uppercase must come out lowercase all the same.
    write_measurements(&file, &pcrs_of(&[(0, 'A'), (1, 'b'), (2, 'c'), (8, 'd')]));
    let out = policy_for(&[&file], &[]);
    assert!(out.ok, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["Version"], "2012-10-17");
    let statements = doc["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{doc:#}");

    let enclave = statement(&doc, "EnclaveImage");
    assert_eq!(enclave["Effect"], "Allow");
    assert_eq!(enclave["Principal"]["AWS"], serde_json::json!([ROLE]));
    assert_eq!(
        actions(enclave),
        ["kms:Decrypt", "kms:GenerateDataKey"],
        "{doc:#}"
    );
    assert_eq!(
        enclave["Condition"],
        serde_json::json!({"StringEqualsIgnoreCase": {
            "kms:RecipientAttestation:ImageSha384": "a".repeat(96),
            "kms:RecipientAttestation:PCR1": "b".repeat(96),
            "kms:RecipientAttestation:PCR2": "c".repeat(96),
        }})
    );

    // The role has nothing outside the attestation conditions: no Encrypt (policy changes seal
    // under an attested data key), nothing else.
    assert!(!out.stdout.contains("\"kms:Encrypt\""), "{doc:#}");
    for statement in statements {
        if statement["Principal"]["AWS"] == serde_json::json!([ROLE]) {
            let sid = statement["Sid"].as_str().unwrap();
            assert!(sid.starts_with("EnclaveImage"), "{sid}");
        }
    }

    // The administrator can manage the key (and so pass KMS's lockout check) but not use it.
    let admin = statement(&doc, "KeyAdministration");
    assert_eq!(
        admin["Principal"]["AWS"],
        serde_json::json!([format!("arn:aws:iam::{ACCOUNT}:root")])
    );
    let admin_actions = actions(admin);
    assert!(admin_actions.contains(&"kms:PutKeyPolicy"));
    for action in &admin_actions {
        assert!(!action.contains('*'), "wildcard {action} in {doc:#}");
        for forbidden in [
            "Decrypt",
            "GenerateDataKey",
            "ReEncrypt",
            "Encrypt",
            "CreateGrant",
            "ScheduleKeyDeletion",
        ] {
            assert!(!action.contains(forbidden), "{action} in {doc:#}");
        }
    }
    // Nothing in the policy grants anything to the account as a whole beyond administration.
    assert!(!out.stdout.contains("kms:*"));

    // PCR3 (computed from the role, as AWS documents it), PCR8 (from the file), key import,
    // and --output.
    let written = dir.path().join("policy.json");
    let out = policy_for(
        &[&file],
        &[
            "--pcr3",
            "--pcr8",
            "--import-principal",
            "arn:aws:iam::123456789012:role/KeyImporter",
            "--output",
            written.to_str().unwrap(),
        ],
    );
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap();
    let conditions = &statement(&doc, "EnclaveImage")["Condition"]["StringEqualsIgnoreCase"];
    assert_eq!(conditions["kms:RecipientAttestation:PCR3"], ROLE_PCR3);
    assert_eq!(conditions["kms:RecipientAttestation:PCR8"], "d".repeat(96));
    assert_eq!(conditions.as_object().unwrap().len(), 5);
    let import = statement(&doc, "KeyImport");
    assert_eq!(actions(import), ["kms:Encrypt"]);
    assert_eq!(
        import["Principal"]["AWS"],
        serde_json::json!(["arn:aws:iam::123456789012:role/KeyImporter"])
    );
}

#[test]
fn debug_mode_zero_pcrs_are_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("debug.json");
    write_measurements(&file, &pcrs_of(&[(0, '0'), (1, '0'), (2, '0')]));
    let out = policy_for(&[&file], &[]);
    assert!(!out.ok);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("--allow-debug"), "{}", out.stderr);

    // One zero PCR is as bad as three.
    write_measurements(&file, &pcrs_of(&[(0, 'a'), (1, 'b'), (2, '0')]));
    assert!(!policy_for(&[&file], &[]).ok);

    let out = policy_for(&[&file], &["--allow-debug"]);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr.contains("allow-debug"),
        "no warning: {}",
        out.stderr
    );
}

#[test]
fn malformed_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    write_measurements(&good, &pcrs_of(&[(0, 'a'), (1, 'b'), (2, 'c')]));
    let good = good.to_str().unwrap();
    let run = |measurements: &str, role: &str, account: &str, extra: &[&str]| {
        let mut args = vec![
            "--measurements",
            measurements,
            "--role-arn",
            role,
            "--account",
            account,
        ];
        args.extend_from_slice(extra);
        policy(&args)
    };
    assert!(run(good, ROLE, ACCOUNT, &[]).ok);

    let cases: Vec<(String, &str)> = vec![
        // SHA-256-sized PCRs are not SHA-384 measurements.
        (
            serde_json::json!({"Measurements": {"PCR0": "a".repeat(64), "PCR1": "b".repeat(96),
                "PCR2": "c".repeat(96)}})
            .to_string(),
            "96 hex digits",
        ),
        (
            serde_json::json!({"Measurements": {"PCR0": "z".repeat(96), "PCR1": "b".repeat(96),
                "PCR2": "c".repeat(96)}})
            .to_string(),
            "96 hex digits",
        ),
        (
            serde_json::json!({"Measurements": {"PCR0": "a".repeat(96), "PCR1": "b".repeat(96)}})
                .to_string(),
            "PCR2 is missing",
        ),
        ("not json".to_owned(), "not JSON"),
    ];
    for (i, (text, message)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.json"));
        std::fs::write(&path, text).unwrap();
        let out = run(path.to_str().unwrap(), ROLE, ACCOUNT, &[]);
        assert!(!out.ok, "{text}");
        assert!(out.stderr.contains(message), "{text}: {}", out.stderr);
    }

    for (role, account, extra, message) in [
        (
            "arn:aws:iam::123456789012:instance-profile/Webserver",
            ACCOUNT,
            &[][..],
            "instance profile",
        ),
        (ROLE, "210987654321", &[], "not --account"),
        (ROLE, "1234", &[], "12-digit"),
        (
            "arn:aws:iam::123456789012:root",
            ACCOUNT,
            &[],
            "must name a role",
        ),
        // No PCR8 in an unsigned image's measurements.
        (ROLE, ACCOUNT, &["--pcr8"], "PCR8"),
        // The parent's role must not administer the key nor import into it.
        (ROLE, ACCOUNT, &["--admin-arn", ROLE], "compromised parent"),
        (
            ROLE,
            ACCOUNT,
            &["--import-principal", ROLE],
            "another principal",
        ),
    ] {
        let out = run(good, role, account, extra);
        assert!(!out.ok, "{role} {account} {extra:?}");
        assert!(out.stderr.contains(message), "{message}: {}", out.stderr);
    }
}

/// A simulated enclave with `pcrs`, sharing the test root in `dir`.
fn enclave(dir: &Path, pcrs: BTreeMap<u8, [u8; 48]>) -> SimulatedNsm {
    SimulatedNsm::open(SimulatorConfig {
        pcrs,
        ..SimulatorConfig::new(dir)
    })
    .unwrap()
}

fn recipient(nsm: &SimulatedNsm, key: &RecipientKey) -> Recipient {
    Recipient {
        attestation_document: nsm
            .attest(AttestationRequest {
                public_key: Some(key.spki_der()),
                ..AttestationRequest::default()
            })
            .unwrap(),
    }
}

fn hex_pcrs(nsm: &SimulatedNsm, indices: &[u8]) -> BTreeMap<u8, String> {
    indices
        .iter()
        .map(|&i| (i, hex::encode(nsm.pcr(i).unwrap())))
        .collect()
}

fn is_denied<T: std::fmt::Debug>(result: Result<T, KmsError>) -> bool {
    matches!(result, Err(KmsError::AccessDenied(_)))
}

#[test]
fn the_kms_emulator_enforces_the_generated_policy() {
    let dir = tempfile::tempdir().unwrap();
    let nsm_dir = dir.path().join("nsm");
    // The production image: the simulator's default PCRs, plus PCR3 for the parent's role.
    let mut pcrs = SimulatorConfig::default_pcrs();
    pcrs.insert(3, hex::decode(ROLE_PCR3).unwrap().try_into().unwrap());
    let good = enclave(&nsm_dir, pcrs.clone());
    // The same image on an instance with another role.
    let mut other_role = pcrs.clone();
    other_role.insert(3, [0x33; 48]);
    let other_role = enclave(&nsm_dir, other_role);
    // Another application (PCR2), everything else equal.
    let mut other_app = pcrs.clone();
    other_app.insert(2, [0x22; 48]);
    let other_app = enclave(&nsm_dir, other_app);
    // A debug-mode enclave: every PCR zero.
    let debug = enclave(&nsm_dir, BTreeMap::new());

    let measurements = dir.path().join("nitro-signer.measurements.json");
    write_measurements(&measurements, &hex_pcrs(&good, &[0, 1, 2, 8]));
    let out = policy_for(&[&measurements], &["--pcr3", "--pcr8"]);
    assert!(out.ok, "{}", out.stderr);

    let kms = Kms::open(
        dir.path().join("kms"),
        RootOfTrust::dangerous_simulated(good.root_fingerprint()),
    )
    .unwrap();
    // Accepted as it is, lockout check included (no bypass).
    let key_id = kms
        .create_key("tenant seeds", Some(&out.stdout), false)
        .unwrap()
        .key_id;
    let context = BTreeMap::from([("nitro-signer:kind".to_owned(), "seed".to_owned())]);
    let recipient_key = RecipientKey::generate().unwrap();
    let open = |secret: Secret| match secret {
        Secret::ForRecipient(envelope) => recipient_key.open(&envelope).unwrap().to_vec(),
        Secret::Plaintext(_) => panic!("plaintext returned to a recipient"),
    };

    // The measured enclave generates and decrypts.
    let data_key = kms
        .generate_data_key(
            &key_id,
            32,
            &context,
            Some(&recipient(&good, &recipient_key)),
        )
        .unwrap();
    let seed = open(data_key.secret);
    let (_, secret) = kms
        .decrypt(
            &data_key.ciphertext_blob,
            &context,
            None,
            Some(&recipient(&good, &recipient_key)),
        )
        .unwrap();
    assert_eq!(open(secret), seed);

    // Everyone else is refused: other measurements, debug mode, no attestation at all (the
    // administrator, or the parent's role outside an enclave), and Encrypt for anyone.
    for (name, nsm) in [
        ("other role", &other_role),
        ("other application", &other_app),
        ("debug mode", &debug),
    ] {
        let recipient = recipient(nsm, &recipient_key);
        assert!(
            is_denied(kms.decrypt(&data_key.ciphertext_blob, &context, None, Some(&recipient))),
            "{name}"
        );
        assert!(
            is_denied(kms.generate_data_key(&key_id, 32, &context, Some(&recipient))),
            "{name}"
        );
    }
    assert!(is_denied(kms.decrypt(
        &data_key.ciphertext_blob,
        &context,
        None,
        None
    )));
    assert!(is_denied(
        kms.generate_data_key(&key_id, 32, &context, None)
    ));
    // Encrypt for nobody, whatever the context: not for a key blob's with a policy document
    // either (a policy change seals under a data key from an attested GenerateDataKey).
    let blob = |document: Option<&[u8]>| {
        let metadata = KeyMetadata::new(KeyKind::Seed, key_id.clone(), None, Vec::new()).unwrap();
        match document {
            Some(document) => metadata.with_policy_document(document.to_vec()).unwrap(),
            None => metadata,
        }
        .encryption_context()
    };
    let updated = blob(Some(br#"{"rules":[],"version":1}"#));
    for refused in [context.clone(), BTreeMap::new(), blob(None), updated] {
        assert!(
            is_denied(kms.encrypt(&key_id, &[7; 32], &refused)),
            "{refused:?}"
        );
    }
    // Administration works.
    assert!(kms.describe_key(&key_id).is_ok());
}

#[test]
fn rotation_allows_the_old_and_the_new_image_and_nothing_between() {
    let dir = tempfile::tempdir().unwrap();
    let nsm_dir = dir.path().join("nsm");
    let old_pcrs = SimulatorConfig::default_pcrs();
    let mut new_pcrs = old_pcrs.clone();
    new_pcrs.insert(0, [0x10; 48]);
    new_pcrs.insert(2, [0x12; 48]);
    // PCR0 of the new image with PCR2 of the old one: matches no single statement.
    let mut mixed = old_pcrs.clone();
    mixed.insert(0, [0x10; 48]);
    let old = enclave(&nsm_dir, old_pcrs);
    let new = enclave(&nsm_dir, new_pcrs);
    let mixed = enclave(&nsm_dir, mixed);

    let old_file = dir.path().join("old.json");
    let new_file = dir.path().join("new.json");
    write_measurements(&old_file, &hex_pcrs(&old, &[0, 1, 2]));
    write_measurements(&new_file, &hex_pcrs(&new, &[0, 1, 2]));
    let out = policy_for(&[&old_file, &new_file], &[]);
    assert!(out.ok, "{}", out.stderr);
    // The same image twice is a mistake, not a rotation.
    let twice = policy_for(&[&old_file, &old_file], &[]);
    assert!(!twice.ok);

    let kms = Kms::open(
        dir.path().join("kms"),
        RootOfTrust::dangerous_simulated(old.root_fingerprint()),
    )
    .unwrap();
    let key_id = kms
        .create_key("rotation", Some(&out.stdout), false)
        .unwrap()
        .key_id;
    let context = BTreeMap::new();
    let key = RecipientKey::generate().unwrap();
    assert!(
        kms.generate_data_key(&key_id, 32, &context, Some(&recipient(&old, &key)))
            .is_ok()
    );
    assert!(
        kms.generate_data_key(&key_id, 32, &context, Some(&recipient(&new, &key)))
            .is_ok()
    );
    assert!(is_denied(kms.generate_data_key(
        &key_id,
        32,
        &context,
        Some(&recipient(&mixed, &key))
    )));
}
