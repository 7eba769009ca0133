//! The emulator's `CiphertextForRecipient` envelopes open in the enclave and, independently,
//! with `openssl cms -decrypt`.
#![cfg(test)]

use std::process::Command;

use nitro_signer_enclave::recipient::RecipientKey;
use nitro_signer_kms_emulator::envelope::{EnvelopeError, seal};

#[test]
fn envelopes_open_in_the_enclave() {
    let key = RecipientKey::generate().unwrap();
    for len in [0, 1, 15, 16, 32, 1023, 1024, 3000] {
        let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let envelope = seal(key.spki_der(), &plaintext).unwrap();
        assert_eq!(
            &envelope[..2],
            &[0x30, 0x80],
            "indefinite lengths, like KMS"
        );
        assert_eq!(
            key.open(&envelope).unwrap().as_slice(),
            plaintext.as_slice(),
            "{len} bytes"
        );
    }
}

#[test]
fn each_envelope_uses_fresh_keys_and_iv() {
    let key = RecipientKey::generate().unwrap();
    let a = seal(key.spki_der(), b"same plaintext").unwrap();
    let b = seal(key.spki_der(), b"same plaintext").unwrap();
    assert_ne!(a, b);
}

#[test]
fn a_bad_recipient_key_is_refused() {
    assert_eq!(
        seal(b"not a key", b"x").unwrap_err(),
        EnvelopeError::BadRecipientKey
    );
}

#[test]
fn openssl_decrypts_emulator_envelopes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| match Command::new("openssl")
        .current_dir(dir.path())
        .args(args)
        .output()
    {
        Ok(output) => {
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            Some(output.stdout)
        }
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: openssl not runnable ({e})");
            None
        }
        Err(e) => panic!("openssl is required in CI: {e}"),
    };
    if run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "key.pem",
    ])
    .is_none()
    {
        return;
    }
    run(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.p8",
    ]);
    let key =
        RecipientKey::dangerous_from_pkcs8(&std::fs::read(dir.path().join("key.p8")).unwrap())
            .unwrap();
    let plaintext: Vec<u8> = (0u8..=255).cycle().take(2500).collect();
    std::fs::write(
        dir.path().join("envelope.ber"),
        seal(key.spki_der(), &plaintext).unwrap(),
    )
    .unwrap();
    let decrypted = run(&[
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "envelope.ber",
        "-inkey",
        "key.pem",
    ])
    .unwrap();
    assert_eq!(decrypted, plaintext);
}
