//! Envelopes made by OpenSSL (`openssl cms -encrypt`, streamed BER with indefinite lengths, the
//! shape KMS sends) open with the enclave's recipient key; damaged ones are refused without
//! panicking.
#![cfg(test)]

use std::{path::Path, process::Command};

use nitro_signer_enclave::{cms::CmsError, recipient::RecipientKey};

fn openssl(dir: &Path, args: &[&str]) -> bool {
    let output = match Command::new("openssl").current_dir(dir).args(args).output() {
        Ok(output) => output,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: openssl not runnable ({e})");
            return false;
        }
        Err(e) => panic!("openssl is required in CI: {e}"),
    };
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    true
}

struct Fixture {
    _dir: tempfile::TempDir,
    key: RecipientKey,
    envelope: Vec<u8>,
    plaintext: Vec<u8>,
}

/// An RSA key made by OpenSSL, a certificate naming it by SHA-256 of its SPKI (as KMS does),
/// and an envelope of 32 bytes of "seed" to it.
fn fixture() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    if !openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key.pem",
        ],
    ) {
        return None;
    }
    openssl(
        d,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.p8",
        ],
    );
    let key =
        RecipientKey::dangerous_from_pkcs8(&std::fs::read(d.join("key.p8")).unwrap()).unwrap();
    let ski: String = key
        .subject_key_id()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "key.pem",
            "-subj",
            "/CN=enclave",
            "-days",
            "1",
            "-addext",
            &format!("subjectKeyIdentifier={ski}"),
            "-out",
            "cert.pem",
        ],
    );
    let plaintext: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    std::fs::write(d.join("plain.bin"), &plaintext).unwrap();
    openssl(
        d,
        &[
            "cms",
            "-encrypt",
            "-binary",
            "-stream",
            "-outform",
            "DER",
            "-aes-256-cbc",
            "-in",
            "plain.bin",
            "-out",
            "envelope.ber",
            "-recip",
            "cert.pem",
            "-keyid",
            "-keyopt",
            "rsa_padding_mode:oaep",
            "-keyopt",
            "rsa_oaep_md:sha256",
            "-keyopt",
            "rsa_mgf1_md:sha256",
        ],
    );
    let envelope = std::fs::read(d.join("envelope.ber")).unwrap();
    Some(Fixture {
        _dir: dir,
        key,
        envelope,
        plaintext,
    })
}

#[test]
fn openssl_envelopes_open() {
    let Some(f) = fixture() else { return };
    // Streamed output uses indefinite lengths, as KMS's does.
    assert_eq!(&f.envelope[..2], &[0x30, 0x80]);
    assert_eq!(
        f.key.open(&f.envelope).unwrap().as_slice(),
        f.plaintext.as_slice()
    );
}

#[test]
fn envelopes_for_another_key_are_refused() {
    let Some(f) = fixture() else { return };
    let other = RecipientKey::generate().unwrap();
    assert_eq!(
        other.open(&f.envelope).unwrap_err(),
        CmsError::WrongRecipient
    );
    assert_ne!(other.spki_der(), f.key.spki_der());
}

#[test]
fn damaged_envelopes_are_refused_without_panicking() {
    let Some(f) = fixture() else { return };
    for len in 0..f.envelope.len() {
        assert!(
            f.key.open(&f.envelope[..len]).is_err(),
            "truncated to {len} bytes"
        );
    }
    let mut wrong_plaintexts = 0;
    for at in 0..f.envelope.len() {
        for xor in [0x01, 0x80, 0xff] {
            let mut damaged = f.envelope.clone();
            damaged[at] ^= xor;
            // CBC has no integrity check: a flipped ciphertext bit can still unpad; it must
            // never give back the original plaintext.
            if let Ok(plaintext) = f.key.open(&damaged) {
                assert_ne!(
                    plaintext.as_slice(),
                    f.plaintext.as_slice(),
                    "byte {at} ^ {xor:#x}"
                );
                wrong_plaintexts += 1;
            }
        }
    }
    // Only flips inside the encrypted content may decrypt at all.
    assert!(wrong_plaintexts < 3 * 48, "{wrong_plaintexts}");
}
