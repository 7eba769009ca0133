//! `nitro-signer policy`, the real binary: the KMS key policy it writes pins exactly the
//! measurements it was given (PCR0, PCR1, PCR2 and the role's PCR3 at least), names the
//! administrator it was given and no other, refuses debug-mode (all-zero) PCRs and malformed
//! input, and is enforced as intended by the KMS emulator: an enclave with those measurements
//! may decrypt, one with other measurements (or a caller without an attestation document) may
//! not, and the instance role's explicit `Deny` statements hold even against a broader `Allow`.
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
use nitro_signer_kms_emulator::{
    policy::{ConditionKey, Decision, KeyPolicy, RequestContext},
    service::{Kms, KmsConfig, KmsError, Recipient, Secret},
};
use serde_json::Value;

const ACCOUNT: &str = "123456789012";
/// The role of AWS's PCR3 example ("Where to get an enclave's measurements").
const ROLE: &str = "arn:aws:iam::123456789012:role/Webserver";
/// The key's administrator.
const ADMIN: &str = "arn:aws:iam::123456789012:role/KeyAdmin";
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
/// [`ACCOUNT`], the administrator [`ADMIN`], and `extra` options.
fn policy_for(files: &[&Path], extra: &[&str]) -> Output {
    let mut args = Vec::new();
    for file in files {
        args.extend(["--measurements", file.to_str().unwrap()]);
    }
    args.extend([
        "--role-arn",
        ROLE,
        "--account",
        ACCOUNT,
        "--admin-arn",
        ADMIN,
    ]);
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
    field(statement, "Action")
}

fn field<'a>(statement: &'a Value, name: &str) -> Vec<&'a str> {
    statement[name]
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
    assert_eq!(statements.len(), 4, "{doc:#}");

    let enclave = statement(&doc, "EnclaveImage");
    assert_eq!(enclave["Effect"], "Allow");
    assert_eq!(enclave["Principal"]["AWS"], serde_json::json!([ROLE]));
    assert_eq!(
        actions(enclave),
        ["kms:Decrypt", "kms:GenerateDataKey"],
        "{doc:#}"
    );
    // PCR3, the role's measurement (computed as AWS documents it), is pinned by default.
    assert_eq!(
        enclave["Condition"],
        serde_json::json!({"StringEqualsIgnoreCase": {
            "kms:RecipientAttestation:ImageSha384": "a".repeat(96),
            "kms:RecipientAttestation:PCR1": "b".repeat(96),
            "kms:RecipientAttestation:PCR2": "c".repeat(96),
            "kms:RecipientAttestation:PCR3": ROLE_PCR3,
        }})
    );

    // Explicit Denies for the role: every action but the enclave's two, and those two without
    // an attestation document.
    let other_actions = statement(&doc, "DenyInstanceRoleOtherActions");
    assert_eq!(other_actions["Effect"], "Deny");
    assert_eq!(other_actions["Principal"]["AWS"], serde_json::json!([ROLE]));
    assert!(other_actions.get("Action").is_none(), "{doc:#}");
    assert_eq!(
        field(other_actions, "NotAction"),
        ["kms:Decrypt", "kms:GenerateDataKey"]
    );
    assert!(other_actions.get("Condition").is_none(), "{doc:#}");
    let unattested = statement(&doc, "DenyInstanceRoleWithoutAttestation");
    assert_eq!(unattested["Effect"], "Deny");
    assert_eq!(unattested["Principal"]["AWS"], serde_json::json!([ROLE]));
    assert_eq!(actions(unattested), ["kms:Decrypt", "kms:GenerateDataKey"]);
    assert_eq!(
        unattested["Condition"],
        serde_json::json!({"Null": {"kms:RecipientAttestation:ImageSha384": "true"}})
    );

    // The role is allowed nothing outside the attestation conditions: no Encrypt (policy
    // changes seal under an attested data key), nothing else.
    assert!(!out.stdout.contains("\"kms:Encrypt\""), "{doc:#}");
    for statement in statements {
        if statement["Principal"]["AWS"] == serde_json::json!([ROLE])
            && statement["Effect"] == "Allow"
        {
            let sid = statement["Sid"].as_str().unwrap();
            assert!(sid.starts_with("EnclaveImage"), "{sid}");
        }
    }

    // The administrator is the one given, can manage the key (and so pass KMS's lockout
    // check) but not use it.
    let admin = statement(&doc, "KeyAdministration");
    assert_eq!(admin["Principal"]["AWS"], serde_json::json!([ADMIN]));
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

    // Without PCR3, when asked, with a warning.
    let out = policy_for(&[&file], &["--no-pcr3"]);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr.contains("--no-pcr3"),
        "no warning: {}",
        out.stderr
    );
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let conditions = &statement(&doc, "EnclaveImage")["Condition"]["StringEqualsIgnoreCase"];
    assert_eq!(conditions.as_object().unwrap().len(), 3, "{doc:#}");
    assert!(conditions.get("kms:RecipientAttestation:PCR3").is_none());

    // PCR8 (from the file), key import, and --output; `--pcr3`, the default now, is still
    // accepted.
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
        if !extra.contains(&"--admin-arn") {
            args.extend(["--admin-arn", ADMIN]);
        }
        policy(&args)
    };
    assert!(run(good, ROLE, ACCOUNT, &[]).ok);

    // No administrator: no silent default to the account's root.
    let out = policy(&[
        "--measurements",
        good,
        "--role-arn",
        ROLE,
        "--account",
        ACCOUNT,
    ]);
    assert!(!out.ok);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("--admin-arn"), "{}", out.stderr);
    // The account's root when named explicitly: accepted, with a warning.
    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    let out = run(good, ROLE, ACCOUNT, &["--admin-arn", &root]);
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("root"), "no warning: {}", out.stderr);

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
            &["--admin-arn", "arn:aws:iam::210987654321:role/KeyAdmin"],
            "not --account",
        ),
        (
            ROLE,
            ACCOUNT,
            &["--admin-arn", "KeyAdmin"],
            "IAM principal ARN",
        ),
        (
            ROLE,
            ACCOUNT,
            &["--pcr3", "--no-pcr3"],
            "cannot be used with",
        ),
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

/// Denied by a `Deny` statement, not merely for want of an `Allow`.
fn is_denied_explicitly<T: std::fmt::Debug>(result: Result<T, KmsError>) -> bool {
    matches!(result, Err(KmsError::AccessDenied(m)) if m.contains("explicit deny"))
}

/// The emulated KMS of [`ACCOUNT`] over `dir`, called by `principal`, trusting `nsm`'s root.
/// Each principal gets its own handle on the same keys (a handle loads them when opened).
fn kms_as(dir: &Path, nsm: &SimulatedNsm, principal: &str) -> Kms {
    Kms::open_with(
        dir,
        RootOfTrust::dangerous_simulated(nsm.root_fingerprint()),
        KmsConfig {
            account_id: ACCOUNT.into(),
            principal: Some(principal.into()),
            ..KmsConfig::default()
        },
    )
    .unwrap()
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
    // PCR3 is pinned without being asked for.
    let out = policy_for(&[&measurements], &["--pcr8"]);
    assert!(out.ok, "{}", out.stderr);

    let kms_dir = dir.path().join("kms");
    // The administrator creates the key: accepted as it is, lockout check included (no
    // bypass). The instance role could not have: the policy denies it kms:PutKeyPolicy.
    let admin = kms_as(&kms_dir, &good, ADMIN);
    let key_id = admin
        .create_key("tenant seeds", Some(&out.stdout), false)
        .unwrap()
        .key_id;
    let kms = kms_as(&kms_dir, &good, ROLE);
    assert!(matches!(
        kms.create_key("by the role", Some(&out.stdout), false),
        Err(KmsError::MalformedPolicy(_))
    ));
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
    // Without an attestation document, the role is denied explicitly; so is the administrator
    // (for want of an Allow), with one or without.
    assert!(is_denied_explicitly(kms.decrypt(
        &data_key.ciphertext_blob,
        &context,
        None,
        None
    )));
    assert!(is_denied_explicitly(
        kms.generate_data_key(&key_id, 32, &context, None)
    ));
    let good_recipient = recipient(&good, &recipient_key);
    assert!(is_denied(admin.decrypt(
        &data_key.ciphertext_blob,
        &context,
        None,
        None
    )));
    assert!(is_denied(admin.decrypt(
        &data_key.ciphertext_blob,
        &context,
        None,
        Some(&good_recipient)
    )));
    assert!(is_denied(admin.generate_data_key(
        &key_id,
        32,
        &context,
        Some(&good_recipient)
    )));
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
            is_denied_explicitly(kms.encrypt(&key_id, &[7; 32], &refused)),
            "{refused:?}"
        );
        assert!(
            is_denied(admin.encrypt(&key_id, &[7; 32], &refused)),
            "{refused:?}"
        );
    }
    // Administration works, for the administrator only.
    assert!(admin.describe_key(&key_id).is_ok());
    assert!(is_denied_explicitly(kms.describe_key(&key_id)));
}

/// The generated policy with `extra` statements appended.
fn with_statements(policy: &str, extra: Value) -> String {
    let mut doc: Value = serde_json::from_str(policy).unwrap();
    let statements = doc["Statement"].as_array_mut().unwrap();
    statements.extend(extra.as_array().unwrap().iter().cloned());
    doc.to_string()
}

/// The generated policy without the statement `sid`.
fn without_statement(policy: &str, sid: &str) -> String {
    let mut doc: Value = serde_json::from_str(policy).unwrap();
    let statements = doc["Statement"].as_array_mut().unwrap();
    let before = statements.len();
    statements.retain(|s| s["Sid"] != sid);
    assert_eq!(statements.len(), before - 1, "no statement {sid}");
    doc.to_string()
}

/// Each explicit `Deny` for the instance role holds even when another statement (a mistake made
/// later, or an IAM policy reaching the role through an account statement) allows the role
/// everything: the emulator refuses what each one denies, and still serves the attested
/// enclave. Without the `Deny`, the same broad `Allow` lets the same request through, so the
/// `Deny` is what refuses it.
#[test]
fn the_instance_role_denies_hold_against_a_broader_allow() {
    let dir = tempfile::tempdir().unwrap();
    let mut pcrs = SimulatorConfig::default_pcrs();
    pcrs.insert(3, hex::decode(ROLE_PCR3).unwrap().try_into().unwrap());
    let good = enclave(&dir.path().join("nsm"), pcrs);
    let measurements = dir.path().join("measurements.json");
    write_measurements(&measurements, &hex_pcrs(&good, &[0, 1, 2]));
    let out = policy_for(&[&measurements], &[]);
    assert!(out.ok, "{}", out.stderr);
    let mistake = serde_json::json!([{
        "Sid": "TooBroad", "Effect": "Allow", "Principal": {"AWS": ROLE},
        "Action": "kms:*", "Resource": "*"
    }]);
    let generated = with_statements(&out.stdout, mistake);
    let other_actions = without_statement(&generated, "DenyInstanceRoleOtherActions");
    let unattested = without_statement(&generated, "DenyInstanceRoleWithoutAttestation");

    let recipient_key = RecipientKey::generate().unwrap();
    let context = BTreeMap::from([("nitro-signer:kind".to_owned(), "seed".to_owned())]);
    // One key per variant of the policy, all made by the administrator.
    let kms_dir = dir.path().join("kms");
    let admin = kms_as(&kms_dir, &good, ADMIN);
    let mut keys = BTreeMap::new();
    for (name, policy) in [
        ("generated", &generated),
        ("without DenyInstanceRoleOtherActions", &other_actions),
        ("without DenyInstanceRoleWithoutAttestation", &unattested),
    ] {
        keys.insert(
            name,
            admin.create_key(name, Some(policy), false).unwrap().key_id,
        );
    }
    let kms = kms_as(&kms_dir, &good, ROLE);
    let attested = || Some(recipient(&good, &recipient_key));

    // The attested enclave is served under every variant.
    let mut blobs = BTreeMap::new();
    for (name, key_id) in &keys {
        let data_key = kms
            .generate_data_key(key_id, 32, &context, attested().as_ref())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        kms.decrypt(
            &data_key.ciphertext_blob,
            &context,
            None,
            attested().as_ref(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        blobs.insert(*name, data_key.ciphertext_blob);
    }

    // DenyInstanceRoleWithoutAttestation: no Decrypt or GenerateDataKey without a Recipient.
    let key = &keys["generated"];
    assert!(is_denied_explicitly(kms.decrypt(
        &blobs["generated"],
        &context,
        None,
        None
    )));
    assert!(is_denied_explicitly(
        kms.generate_data_key(key, 32, &context, None)
    ));
    let control = "without DenyInstanceRoleWithoutAttestation";
    assert!(
        kms.decrypt(&blobs[control], &context, None, None).is_ok(),
        "the broad Allow alone does let the role decrypt in the clear"
    );
    assert!(
        kms.generate_data_key(&keys[control], 32, &context, None)
            .is_ok()
    );

    // DenyInstanceRoleOtherActions: Encrypt, DescribeKey and PutKeyPolicy (the lockout check
    // of a CreateKey by the role), through the emulator's operations...
    assert!(is_denied_explicitly(kms.encrypt(key, &[7; 32], &context)));
    assert!(is_denied_explicitly(kms.describe_key(key)));
    assert!(matches!(
        kms.create_key("by the role", Some(&generated), false),
        Err(KmsError::MalformedPolicy(_))
    ));
    let control = "without DenyInstanceRoleOtherActions";
    assert!(kms.encrypt(&keys[control], &[7; 32], &context).is_ok());
    assert!(kms.describe_key(&keys[control]).is_ok());
    assert!(
        kms.create_key("by the role", Some(&other_actions), false)
            .is_ok()
    );
    // ...and the actions the emulator does not serve, through its policy evaluator: grants,
    // re-encryption, other data keys, deletion, and the policy itself.
    let none = RequestContext::new();
    let with_attestation: RequestContext =
        [(ConditionKey::ImageSha384, hex::encode(good.pcr(0).unwrap()))].into();
    let generated = KeyPolicy::parse(&generated).unwrap();
    let control = KeyPolicy::parse(&other_actions).unwrap();
    for action in [
        "kms:CreateGrant",
        "kms:PutKeyPolicy",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:GenerateDataKeyPair",
        "kms:ScheduleKeyDeletion",
        "kms:DisableKey",
        "kms:Encrypt",
    ] {
        for context in [&none, &with_attestation] {
            assert_eq!(
                generated.decide(ROLE, action, context),
                Decision::ExplicitDeny,
                "{action}"
            );
            assert_eq!(
                control.decide(ROLE, action, context),
                Decision::Allowed,
                "{action}"
            );
        }
        // The administrator is not concerned by the role's Denies.
        assert_ne!(
            generated.decide(ADMIN, action, &none),
            Decision::ExplicitDeny,
            "{action}"
        );
    }
}

#[test]
fn rotation_allows_the_old_and_the_new_image_and_nothing_between() {
    let dir = tempfile::tempdir().unwrap();
    let nsm_dir = dir.path().join("nsm");
    let mut old_pcrs = SimulatorConfig::default_pcrs();
    old_pcrs.insert(3, hex::decode(ROLE_PCR3).unwrap().try_into().unwrap());
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

    let kms_dir = dir.path().join("kms");
    let key_id = kms_as(&kms_dir, &old, ADMIN)
        .create_key("rotation", Some(&out.stdout), false)
        .unwrap()
        .key_id;
    let kms = kms_as(&kms_dir, &old, ROLE);
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
