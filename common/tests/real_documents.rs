//! Documents made by real Nitro hardware verify against the pinned AWS root (at the time they
//! were made; their leaves lived three hours), and are refused for what is wrong with them.
#![cfg(test)]

use std::time::{Duration, SystemTime};

use base64::Engine as _;

use nitro_signer_common::attestation::{
    AWS_NITRO_ROOT_G1_SHA256, AttestationDocument, AttestationError, Expectations, PCR_LEN,
    RootOfTrust, Verifier,
};

const DOC: &[u8] = include_bytes!("fixtures/nitro_attestation.bin");
const DEBUG_DOC: &[u8] = include_bytes!("fixtures/nitro_attestation_debug.bin");
const DOC_2: &[u8] = include_bytes!("fixtures/nitro_attestation_2.bin");
const ROOT_PEM: &str = include_str!("fixtures/aws_nitro_root_g1.pem");

fn made_at(document: &[u8]) -> SystemTime {
    let parsed = AttestationDocument::parse_unverified(document).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_millis(parsed.timestamp_ms)
}

fn hex48(s: &str) -> [u8; PCR_LEN] {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

#[test]
fn pinned_fingerprint_is_the_published_root() {
    let b64: String = ROOT_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .unwrap();
    let fingerprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    assert_eq!(fingerprint.as_ref(), AWS_NITRO_ROOT_G1_SHA256);
    for document in [DOC, DEBUG_DOC, DOC_2] {
        let parsed = AttestationDocument::parse_unverified(document).unwrap();
        assert_eq!(parsed.cabundle[0], der, "cabundle[0] is the AWS root");
    }
}

#[test]
fn real_documents_verify_at_their_own_time() {
    let expectations = Expectations {
        pcrs: [(
            0,
            hex48(
                "e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a",
            ),
        )]
        .into(),
        nonce: Some(vec![1; 1024]),
        public_key: Some(vec![1; 1024]),
        ..Expectations::default()
    };
    let verified = Verifier::dangerous_unpinned(RootOfTrust::aws_nitro(), expectations)
        .verify(DOC, made_at(DOC))
        .unwrap();
    assert_eq!(
        verified.document().module_id,
        "i-0a22e5c5f24d22174-enc0191cceb4289903f"
    );
    assert_eq!(verified.document().cabundle.len(), 4);
    assert!(!verified.is_simulated());

    let verified = Verifier::dangerous_unpinned(RootOfTrust::aws_nitro(), Expectations::default())
        .verify(DOC_2, made_at(DOC_2))
        .unwrap();
    assert_eq!(verified.document().nonce.as_deref(), Some(&[][..]));
    assert_eq!(verified.document().user_data.as_deref(), Some(&[][..]));
}

#[test]
fn real_documents_are_refused_for_what_is_wrong_with_them() {
    let aws = || Verifier::dangerous_unpinned(RootOfTrust::aws_nitro(), Expectations::default());
    // Now, years later, the leaf has long expired.
    assert!(matches!(
        aws().verify(DOC, SystemTime::now()).unwrap_err(),
        AttestationError::Certificate(_)
    ));
    // A genuine debug-mode document.
    assert_eq!(
        aws().verify(DEBUG_DOC, made_at(DEBUG_DOC)).unwrap_err(),
        AttestationError::DebugEnclave
    );
    let allow_debug = Expectations {
        allow_debug: true,
        ..Expectations::default()
    };
    let verified = Verifier::dangerous_unpinned(RootOfTrust::aws_nitro(), allow_debug)
        .verify(DEBUG_DOC, made_at(DEBUG_DOC))
        .unwrap();
    assert!(verified.is_debug());
    // Another root pinned.
    assert_eq!(
        Verifier::dangerous_unpinned(
            RootOfTrust::dangerous_simulated([7; 32]),
            Expectations::default()
        )
        .verify(DOC, made_at(DOC))
        .unwrap_err(),
        AttestationError::UntrustedRoot
    );
    // A different PCR0 expected.
    let pcr = Expectations {
        pcrs: [(0, [0xab; PCR_LEN])].into(),
        ..Expectations::default()
    };
    assert_eq!(
        Verifier::dangerous_unpinned(RootOfTrust::aws_nitro(), pcr)
            .verify(DOC, made_at(DOC))
            .unwrap_err(),
        AttestationError::PcrMismatch { index: 0 }
    );
    // One flipped byte in the payload's nonce.
    let mut tampered = DOC.to_vec();
    let at = tampered.windows(16).position(|w| w == [1u8; 16]).unwrap();
    tampered[at] = 2;
    assert_eq!(
        aws().verify(&tampered, made_at(DOC)).unwrap_err(),
        AttestationError::BadSignature
    );
}
