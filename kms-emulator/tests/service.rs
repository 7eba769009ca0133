//! The emulated KMS with the enclave's real recipient key and the simulated NSM: the Recipient
//! flow end to end in process, and the refusals KMS would give.
#![cfg(test)]

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    time::{Duration, SystemTime},
};

use nitro_signer_common::attestation::RootOfTrust;
use nitro_signer_enclave::{
    nsm::{AttestationRequest, Nsm, SimulatedNsm, SimulatorConfig},
    recipient::RecipientKey,
};
use nitro_signer_kms_emulator::service::{
    EncryptionContext, Kms, KmsConfig, KmsError, Recipient, Secret,
};

/// A policy in the shape of a real enclave key policy: administration and Encrypt for the
/// account, Decrypt and GenerateDataKey only for an enclave with these measurements.
fn enclave_policy(pcr0: &[u8], pcr8: &[u8]) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Sid":"Admin","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},
          "Action":["kms:Create*","kms:Describe*","kms:Put*","kms:Encrypt"],"Resource":"*"}},
        {{"Sid":"Enclave","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:role/parent"}},
          "Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*",
          "Condition":{{"StringEqualsIgnoreCase":{{
            "kms:RecipientAttestation:ImageSha384":"{}",
            "kms:RecipientAttestation:PCR8":"{}"}}}}}}]}}"#,
        hex::encode(pcr0).to_uppercase(),
        hex::encode(pcr8)
    )
}

struct World {
    _dir: tempfile::TempDir,
    nsm: SimulatedNsm,
    kms: Kms,
    recipient_key: RecipientKey,
    key_id: String,
}

/// The parent instances' role, which the key policy lets decrypt in the enclave.
const PARENT: &str = "arn:aws:iam::111122223333:role/parent";

/// The emulator's configuration with callers acting as `principal`.
fn as_principal(principal: &str) -> KmsConfig {
    KmsConfig {
        principal: Some(principal.to_owned()),
        ..KmsConfig::default()
    }
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let nsm = SimulatedNsm::open(SimulatorConfig::new(dir.path().join("nsm"))).unwrap();
    // The parent's role is also an identity of the account, which the `Admin` statement names.
    let kms = Kms::open_with(
        dir.path().join("kms"),
        RootOfTrust::dangerous_simulated(nsm.root_fingerprint()),
        as_principal(PARENT),
    )
    .unwrap();
    let policy = enclave_policy(&nsm.pcr(0).unwrap(), &nsm.pcr(8).unwrap());
    let key_id = kms
        .create_key("tenant seeds", Some(&policy), false)
        .unwrap()
        .key_id;
    World {
        _dir: dir,
        nsm,
        kms,
        recipient_key: RecipientKey::generate().unwrap(),
        key_id,
    }
}

impl World {
    fn recipient(&self) -> Recipient {
        let document = self
            .nsm
            .attest(AttestationRequest {
                public_key: Some(self.recipient_key.spki_der()),
                ..AttestationRequest::default()
            })
            .unwrap();
        Recipient {
            attestation_document: document,
        }
    }

    fn open(&self, secret: Secret) -> Vec<u8> {
        match secret {
            Secret::ForRecipient(envelope) => self.recipient_key.open(&envelope).unwrap().to_vec(),
            Secret::Plaintext(_) => panic!("plaintext returned to a recipient"),
        }
    }
}

fn context(kind: &str) -> EncryptionContext {
    BTreeMap::from([("nitro-signer:kind".to_owned(), kind.to_owned())])
}

#[test]
fn generate_then_decrypt_through_the_recipient_flow() {
    let w = world();
    let data_key = w
        .kms
        .generate_data_key(&w.key_id, 32, &context("seed"), Some(&w.recipient()))
        .unwrap();
    let seed = w.open(data_key.secret);
    assert_eq!(seed.len(), 32);
    let (arn, secret) = w
        .kms
        .decrypt(
            &data_key.ciphertext_blob,
            &context("seed"),
            None,
            Some(&w.recipient()),
        )
        .unwrap();
    assert!(arn.ends_with(&w.key_id));
    assert_eq!(w.open(secret), seed);
}

#[test]
fn keys_and_ciphertexts_survive_a_restart() {
    let w = world();
    let (_, blob) = w
        .kms
        .encrypt(&w.key_id, b"imported private key", &context("private-key"))
        .unwrap();
    let kms_dir = w._dir.path().join("kms");
    let restarted = Kms::open_with(
        &kms_dir,
        RootOfTrust::dangerous_simulated(w.nsm.root_fingerprint()),
        as_principal(PARENT),
    )
    .unwrap();
    let (_, secret) = restarted
        .decrypt(
            &blob,
            &context("private-key"),
            Some(&w.key_id),
            Some(&w.recipient()),
        )
        .unwrap();
    assert_eq!(w.open(secret), b"imported private key");
    let key_file = kms_dir.join("keys").join(format!("{}.json", w.key_id));
    assert_eq!(
        std::fs::metadata(key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(restarted.list_keys().unwrap().len(), 1);
}

#[test]
fn ciphertexts_are_bound_to_key_context_and_bytes() {
    let w = world();
    let data_key = w
        .kms
        .generate_data_key(&w.key_id, 32, &context("seed"), Some(&w.recipient()))
        .unwrap();
    let blob = &data_key.ciphertext_blob;
    let r = Some(w.recipient());
    // Presented as the other kind of secret, or with no context at all.
    for ctx in [context("private-key"), EncryptionContext::new()] {
        assert_eq!(
            w.kms.decrypt(blob, &ctx, None, r.as_ref()).unwrap_err(),
            KmsError::InvalidCiphertext
        );
    }
    // Any flipped byte.
    for at in [0, 5, 40, blob.len() / 2, blob.len() - 1] {
        let mut tampered = blob.clone();
        tampered[at] ^= 0x01;
        let err = w
            .kms
            .decrypt(&tampered, &context("seed"), None, r.as_ref())
            .unwrap_err();
        assert!(
            matches!(err, KmsError::InvalidCiphertext | KmsError::NotFound(_)),
            "byte {at}: {err:?}"
        );
    }
    // Named under another key.
    let other = w.kms.create_key("other", None, false).unwrap().key_id;
    assert_eq!(
        w.kms
            .decrypt(blob, &context("seed"), Some(&other), r.as_ref())
            .unwrap_err(),
        KmsError::IncorrectKey
    );
}

#[test]
fn the_key_policy_decides_who_gets_plaintext() {
    let w = world();
    let (_, blob) = w.kms.encrypt(&w.key_id, b"seed", &context("seed")).unwrap();
    // Without a recipient the attestation conditions cannot hold.
    let err = w
        .kms
        .decrypt(&blob, &context("seed"), None, None)
        .unwrap_err();
    assert!(matches!(err, KmsError::AccessDenied(_)), "{err:?}");
    let err = w
        .kms
        .generate_data_key(&w.key_id, 32, &context("seed"), None)
        .unwrap_err();
    assert!(matches!(err, KmsError::AccessDenied(_)), "{err:?}");

    // An enclave with another image (PCR0) and a debug-mode enclave (all-zero PCRs), both
    // chaining to the trusted simulator root.
    for pcrs in [
        {
            let mut pcrs = SimulatorConfig::default_pcrs();
            pcrs.get_mut(&0).unwrap()[0] ^= 1;
            pcrs
        },
        BTreeMap::new(),
    ] {
        let config = SimulatorConfig {
            pcrs,
            ..SimulatorConfig::new(w._dir.path().join("nsm"))
        };
        let impostor = SimulatedNsm::open(config).unwrap();
        assert_eq!(impostor.root_fingerprint(), w.nsm.root_fingerprint());
        let document = impostor
            .attest(AttestationRequest {
                public_key: Some(w.recipient_key.spki_der()),
                ..Default::default()
            })
            .unwrap();
        let r = Recipient {
            attestation_document: document,
        };
        let err = w
            .kms
            .decrypt(&blob, &context("seed"), None, Some(&r))
            .unwrap_err();
        assert!(matches!(err, KmsError::AccessDenied(_)), "{err:?}");
    }
}

#[test]
fn bad_attestation_documents_are_refused() {
    let w = world();
    let (_, blob) = w.kms.encrypt(&w.key_id, b"seed", &context("seed")).unwrap();
    let request = AttestationRequest {
        public_key: Some(w.recipient_key.spki_der()),
        ..Default::default()
    };

    // Signed by another root.
    let elsewhere = tempfile::tempdir().unwrap();
    let foreign = SimulatedNsm::open(SimulatorConfig::new(elsewhere.path())).unwrap();
    let foreign_doc = Recipient {
        attestation_document: foreign.attest(request).unwrap(),
    };
    // Stale: made ten minutes ago.
    let stale = Recipient {
        attestation_document: w
            .nsm
            .attest_at(request, SystemTime::now() - Duration::from_secs(600))
            .unwrap(),
    };
    // A broken signature.
    let mut broken = w.recipient();
    *broken.attestation_document.last_mut().unwrap() ^= 1;
    // No public key to encrypt to.
    let keyless = Recipient {
        attestation_document: w.nsm.attest(AttestationRequest::default()).unwrap(),
    };

    for (what, r) in [
        ("foreign", foreign_doc),
        ("stale", stale),
        ("broken", broken),
        ("keyless", keyless),
    ] {
        let err = w
            .kms
            .decrypt(&blob, &context("seed"), None, Some(&r))
            .unwrap_err();
        assert!(matches!(err, KmsError::Validation(_)), "{what}: {err:?}");
    }
}

#[test]
fn generate_random_seals_to_the_recipient() {
    let w = world();
    let random = w.open(w.kms.generate_random(48, Some(&w.recipient())).unwrap());
    assert_eq!(random.len(), 48);
    assert!(matches!(
        w.kms.generate_random(0, None).unwrap_err(),
        KmsError::Validation(_)
    ));
}

#[test]
fn key_blob_metadata_is_bound_by_the_encryption_context() {
    use nitro_signer_common::key_blob::{KeyKind, KeyMetadata, PolicyFlag};
    let w = world();
    let r = Some(w.recipient());
    let metadata = |kind, owner: &str, policy| {
        KeyMetadata::new(kind, w.key_id.clone(), Some(owner.into()), policy).unwrap()
    };
    let original = metadata(KeyKind::Seed, "tenant-a", vec![]);
    let data_key = w
        .kms
        .generate_data_key(&w.key_id, 32, &original.encryption_context(), r.as_ref())
        .unwrap();
    let seed = w.open(data_key.secret);
    let (_, secret) = w
        .kms
        .decrypt(
            &data_key.ciphertext_blob,
            &original.encryption_context(),
            None,
            r.as_ref(),
        )
        .unwrap();
    assert_eq!(w.open(secret), seed);
    // The same ciphertext presented as another kind, another owner, or with an opt-in added.
    for altered in [
        metadata(KeyKind::PrivateKey, "tenant-a", vec![]),
        metadata(KeyKind::Seed, "tenant-b", vec![]),
        metadata(KeyKind::Seed, "tenant-a", vec![PolicyFlag::RawDigest]),
    ] {
        let err = w
            .kms
            .decrypt(
                &data_key.ciphertext_blob,
                &altered.encryption_context(),
                None,
                r.as_ref(),
            )
            .unwrap_err();
        assert_eq!(err, KmsError::InvalidCiphertext, "{altered:?}");
    }
}

#[test]
fn keys_are_named_by_id_or_exact_arn_only() {
    let w = world();
    let arn = w.kms.describe_key(&w.key_id).unwrap().arn;
    assert_eq!(w.kms.describe_key(&arn).unwrap().key_id, w.key_id);
    for wrong in [
        arn.replace("us-east-1", "eu-west-1"),
        arn.replace("111122223333", "444455556666"),
        format!("nonsense key/{}", w.key_id),
        format!("alias/key/{}", w.key_id),
        "alias/tenant".to_owned(),
        w.key_id.replace('-', "_"),
    ] {
        assert!(
            matches!(w.kms.describe_key(&wrong), Err(KmsError::NotFound(_))),
            "{wrong}"
        );
    }
}

#[test]
fn policies_that_lock_out_their_creator_are_refused_unless_bypassed() {
    let w = world();
    let lockout = r#"{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}]}"#;
    let err = w
        .kms
        .create_key("locked", Some(lockout), false)
        .unwrap_err();
    assert_eq!(err.error_type(), "MalformedPolicyDocumentException");
    w.kms.create_key("locked", Some(lockout), true).unwrap();
    let err = w.kms.create_key("bad", Some("{"), true).unwrap_err();
    assert_eq!(err.error_type(), "MalformedPolicyDocumentException");
}

#[test]
fn a_data_dir_keeps_its_region_and_account() {
    let dir = tempfile::tempdir().unwrap();
    let frankfurt = KmsConfig {
        region: "eu-central-1".into(),
        account_id: "123456789012".into(),
        principal: None,
    };
    let kms = Kms::open_with(dir.path(), RootOfTrust::aws_nitro(), frankfurt.clone()).unwrap();
    assert_eq!(kms.config(), &frankfurt);
    let key = kms.create_key("regional", None, false).unwrap();
    assert_eq!(
        key.arn,
        format!("arn:aws:kms:eu-central-1:123456789012:key/{}", key.key_id)
    );
    // Named by this region's ARN, not another's.
    assert!(kms.describe_key(&key.arn).is_ok());
    let elsewhere = key.arn.replace("eu-central-1", "us-east-1");
    assert!(matches!(
        kms.describe_key(&elsewhere),
        Err(KmsError::NotFound(_))
    ));
    drop(kms);

    // Reopened as another region or account, the keys would not match their ARNs: refused.
    for other in [
        KmsConfig::default(),
        KmsConfig {
            account_id: "210987654321".into(),
            ..frankfurt.clone()
        },
    ] {
        let err = Kms::open_with(dir.path(), RootOfTrust::aws_nitro(), other).unwrap_err();
        assert!(err.to_string().contains("not a key of region"), "{err}");
    }
    let reopened = Kms::open_with(dir.path(), RootOfTrust::aws_nitro(), frankfurt).unwrap();
    assert_eq!(reopened.describe_key(&key.key_id).unwrap(), key);
}

#[test]
fn malformed_regions_and_accounts_are_refused() {
    assert!(KmsConfig::default().validate().is_ok());
    for (region, account_id) in [
        ("", "111122223333"),
        ("US-EAST-1", "111122223333"),
        ("us-east-1:x", "111122223333"),
        ("-us-east-1", "111122223333"),
        ("us-east-1", "11112222333"),
        ("us-east-1", "11112222333a"),
        ("us-east-1", "1111222233334"),
    ] {
        let config = KmsConfig {
            region: region.into(),
            account_id: account_id.into(),
            principal: None,
        };
        assert!(
            matches!(config.validate(), Err(KmsError::Validation(_))),
            "{config:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        assert!(Kms::open_with(dir.path(), RootOfTrust::aws_nitro(), config).is_err());
    }
}
