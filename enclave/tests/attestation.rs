//! The simulated NSM's documents against the attestation verifier, the official NSM API crate's
//! decoder and OpenSSL's chain verification.
#![cfg(test)]

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    process::Command,
    time::{Duration, SystemTime},
};

use aws_nitro_enclaves_nsm_api::api::AttestationDoc;
use base64::Engine as _;
use nitro_signer_common::attestation::{
    AttestationDocument, AttestationError, Expectations, PCR_LEN, RootOfTrust, Verifier,
};
use nitro_signer_enclave::nsm::{AttestationRequest, Nsm, NsmError, SimulatedNsm, SimulatorConfig};
use proptest::prelude::*;
use serde_cbor::Value;

fn simulator(dir: &tempfile::TempDir) -> SimulatedNsm {
    SimulatedNsm::open(SimulatorConfig::new(dir.path())).unwrap()
}

fn verifier(nsm: &SimulatedNsm, expectations: Expectations) -> Verifier {
    Verifier::dangerous_unpinned(
        RootOfTrust::dangerous_simulated(nsm.root_fingerprint()),
        expectations,
    )
}

const REQUEST: AttestationRequest<'static> = AttestationRequest {
    public_key: Some(b"spki-der"),
    user_data: Some(b"user-data"),
    nonce: Some(b"nonce-0123456789"),
};

#[test]
fn simulated_documents_verify_with_all_expectations() {
    let dir = tempfile::tempdir().unwrap();
    let nsm = simulator(&dir);
    let document = nsm.attest(REQUEST).unwrap();
    let expectations = Expectations {
        pcrs: nsm.pcrs().clone(),
        nonce: Some(b"nonce-0123456789".to_vec()),
        public_key: Some(b"spki-der".to_vec()),
        max_age: Some(Duration::from_secs(60)),
        ..Expectations::default()
    };
    let verified = verifier(&nsm, expectations)
        .verify(&document, SystemTime::now())
        .unwrap();
    assert_eq!(verified.pcr(0), nsm.pcrs().get(&0));
    assert_eq!(
        verified.document().user_data.as_deref(),
        Some(&b"user-data"[..])
    );
    assert_eq!(verified.document().pcrs.len(), 16);
    assert!(!verified.is_debug());
    assert!(verified.is_simulated());
    assert_eq!(nsm.pcr(0).unwrap(), nsm.pcrs()[&0]);
}

#[test]
fn payload_decodes_with_the_official_nsm_api_types() {
    let dir = tempfile::tempdir().unwrap();
    let nsm = simulator(&dir);
    let document = nsm.attest(REQUEST).unwrap();
    let Value::Array(items) = serde_cbor::from_slice(&document).unwrap() else {
        panic!()
    };
    assert_eq!(items.len(), 4);
    let Value::Bytes(payload) = &items[2] else {
        panic!()
    };
    let official = AttestationDoc::from_binary(payload).unwrap();
    let ours = AttestationDocument::parse_unverified(&document).unwrap();
    assert_eq!(official.module_id, ours.module_id);
    assert_eq!(official.timestamp, ours.timestamp_ms);
    assert_eq!(official.certificate.as_ref(), ours.certificate.as_slice());
    assert_eq!(
        official.cabundle.len(),
        4,
        "root, regional, zonal, instance"
    );
    assert_eq!(official.nonce.unwrap().as_ref(), b"nonce-0123456789");
    for (index, pcr) in &official.pcrs {
        assert_eq!(pcr.len(), PCR_LEN);
        assert_eq!(&ours.pcrs[&u8::try_from(*index).unwrap()][..], pcr.as_ref());
    }
    // Protected header {1: -35}, empty unprotected header, 96-byte signature.
    assert_eq!(items[0], Value::Bytes(vec![0xa1, 0x01, 0x38, 0x22]));
    assert_eq!(items[1], Value::Map(BTreeMap::new()));
    assert!(matches!(&items[3], Value::Bytes(s) if s.len() == 96));
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

#[test]
fn openssl_verifies_the_simulated_chain() {
    let dir = tempfile::tempdir().unwrap();
    let nsm = simulator(&dir);
    let doc = AttestationDocument::parse_unverified(&nsm.attest(REQUEST).unwrap()).unwrap();
    let root = dir.path().join("root.pem");
    let untrusted = dir.path().join("intermediates.pem");
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&root, pem(&doc.cabundle[0])).unwrap();
    std::fs::write(
        &untrusted,
        doc.cabundle[1..].iter().map(|c| pem(c)).collect::<String>(),
    )
    .unwrap();
    std::fs::write(&leaf, pem(&doc.certificate)).unwrap();
    let output = match Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(&root)
        .arg("-untrusted")
        .arg(&untrusted)
        .arg(&leaf)
        .output()
    {
        Ok(output) => output,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: openssl not runnable ({e})");
            return;
        }
        Err(e) => panic!("openssl is required in CI: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(": OK"), "{stdout}");
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&leaf)
        .output();
    let text = String::from_utf8(text.unwrap().stdout).unwrap();
    assert!(
        text.contains("ecdsa-with-SHA384") && text.contains("NIST CURVE: P-384"),
        "{text}"
    );
}

#[test]
fn a_restarted_simulator_keeps_its_root_and_hides_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let first = simulator(&dir).root_fingerprint();
    let second = simulator(&dir);
    assert_eq!(first, second.root_fingerprint());
    for file in ["nsm-root-key.pem", "nsm-root-cert.der"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    // A document from the restarted simulator verifies against the first root.
    let document = second.attest(REQUEST).unwrap();
    Verifier::dangerous_unpinned(
        RootOfTrust::dangerous_simulated(first),
        Expectations::default(),
    )
    .verify(&document, SystemTime::now())
    .unwrap();
}

#[test]
fn refusals() {
    let dir = tempfile::tempdir().unwrap();
    let nsm = simulator(&dir);
    let document = nsm.attest(REQUEST).unwrap();
    let now = SystemTime::now();
    let verify = |expectations: Expectations, document: &[u8], at: SystemTime| {
        verifier(&nsm, expectations)
            .verify(document, at)
            .unwrap_err()
    };

    // Another simulator's root, and the AWS root.
    let other_dir = tempfile::tempdir().unwrap();
    let other = simulator(&other_dir);
    let err = Verifier::dangerous_unpinned(
        RootOfTrust::dangerous_simulated(other.root_fingerprint()),
        Expectations::default(),
    )
    .verify(&document, now)
    .unwrap_err();
    assert_eq!(err, AttestationError::UntrustedRoot);
    let err = Verifier::dangerous_unpinned(RootOfTrust::aws_nitro(), Expectations::default())
        .verify(&document, now)
        .unwrap_err();
    assert_eq!(err, AttestationError::UntrustedRoot);

    // Expired: the leaf lives three hours.
    let later = now + Duration::from_secs(4 * 3600);
    assert!(matches!(
        verify(Expectations::default(), &document, later),
        AttestationError::Certificate(_)
    ));
    // Too old for the caller, though the certificate is still valid.
    let fresh = Expectations {
        max_age: Some(Duration::from_secs(60)),
        ..Expectations::default()
    };
    assert_eq!(
        verify(fresh, &document, now + Duration::from_secs(600)),
        AttestationError::Timestamp
    );

    // A flipped signature bit, and a tampered payload under the original signature.
    let mut bad_signature = document.clone();
    *bad_signature.last_mut().unwrap() ^= 1;
    assert_eq!(
        verify(Expectations::default(), &bad_signature, now),
        AttestationError::BadSignature
    );
    let mut tampered = document.clone();
    let needle = b"user-data";
    let at = tampered
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    tampered[at] = b'U';
    assert_eq!(
        verify(Expectations::default(), &tampered, now),
        AttestationError::BadSignature
    );

    // Expectations that do not hold.
    let mut pcrs = nsm.pcrs().clone();
    pcrs.get_mut(&0).unwrap()[0] ^= 1;
    let wrong_pcr = Expectations {
        pcrs,
        ..Expectations::default()
    };
    assert_eq!(
        verify(wrong_pcr, &document, now),
        AttestationError::PcrMismatch { index: 0 }
    );
    let nonce = Expectations {
        nonce: Some(b"other".to_vec()),
        ..Expectations::default()
    };
    assert_eq!(
        verify(nonce, &document, now),
        AttestationError::NonceMismatch
    );
    let key = Expectations {
        public_key: Some(b"other".to_vec()),
        ..Expectations::default()
    };
    assert_eq!(
        verify(key, &document, now),
        AttestationError::PublicKeyMismatch
    );
    let no_nonce = nsm.attest(AttestationRequest::default()).unwrap();
    let nonce = Expectations {
        nonce: Some(b"nonce".to_vec()),
        ..Expectations::default()
    };
    assert_eq!(
        verify(nonce, &no_nonce, now),
        AttestationError::NonceMismatch
    );

    // Behind another CBOR tag (17, COSE_Mac0) instead of none or COSE_Sign1's 18.
    let mut other_tag = vec![0xd1];
    other_tag.extend_from_slice(&document);
    assert!(matches!(
        verify(Expectations::default(), &other_tag, now),
        AttestationError::Malformed(_)
    ));
    let mut sign1_tag = vec![0xd2];
    sign1_tag.extend_from_slice(&document);
    verifier(&nsm, Expectations::default())
        .verify(&sign1_tag, now)
        .unwrap();

    // Garbage and oversized input.
    assert!(matches!(
        verify(Expectations::default(), b"\x84garbage", now),
        AttestationError::Malformed(_)
    ));
    let huge = vec![0u8; 20_000];
    assert_eq!(
        verify(Expectations::default(), &huge, now),
        AttestationError::TooLarge { len: 20_000 }
    );
}

#[test]
fn debug_mode_documents_need_explicit_permission() {
    let dir = tempfile::tempdir().unwrap();
    let config = SimulatorConfig {
        pcrs: BTreeMap::new(),
        ..SimulatorConfig::new(dir.path())
    };
    let nsm = SimulatedNsm::open(config).unwrap();
    let document = nsm.attest(REQUEST).unwrap();
    let err = verifier(&nsm, Expectations::default()).verify(&document, SystemTime::now());
    assert_eq!(err.unwrap_err(), AttestationError::DebugEnclave);
    let allow = Expectations {
        allow_debug: true,
        ..Expectations::default()
    };
    let verified = verifier(&nsm, allow)
        .verify(&document, SystemTime::now())
        .unwrap();
    assert!(verified.is_debug());
}

#[test]
fn oversized_request_fields_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nsm = simulator(&dir);
    let big = vec![0u8; 1025];
    let err = nsm.attest(AttestationRequest {
        nonce: Some(&big),
        ..AttestationRequest::default()
    });
    assert!(matches!(
        err.unwrap_err(),
        NsmError::TooLong {
            field: "nonce",
            len: 1025,
            ..
        }
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any single-byte change to a valid document makes verification fail, and nothing panics.
    #[test]
    fn mutated_documents_never_verify(seed in any::<u64>(), xor in 1u8..=255) {
        thread_local! {
            static FIXTURE: (tempfile::TempDir, Vec<u8>, [u8; 32]) = {
                let dir = tempfile::tempdir().unwrap();
                let nsm = SimulatedNsm::open(SimulatorConfig::new(dir.path())).unwrap();
                let document = nsm.attest(REQUEST).unwrap();
                let fp = nsm.root_fingerprint();
                (dir, document, fp)
            };
        }
        FIXTURE.with(|(_, document, fingerprint)| {
            let mut mutated = document.clone();
            let at = (seed % mutated.len() as u64) as usize;
            mutated[at] ^= xor;
            let _ = AttestationDocument::parse_unverified(&mutated);
            let result = Verifier::dangerous_unpinned(RootOfTrust::dangerous_simulated(*fingerprint), Expectations::default())
                .verify(&mutated, SystemTime::now());
            prop_assert!(result.is_err(), "byte {} ^ {:#x} still verifies", at, xor);
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = AttestationDocument::parse_unverified(&bytes);
    }
}
