//! What the emulator logs and prints: one line per request with the operation, key and outcome,
//! and never a plaintext, a data key, an attestation document or the secret access key, in any
//! encoding. Runs the flows through the real `aws-sdk-kms` client and captures every event the
//! emulator emits, at every level.
#![cfg(test)]

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use aws_sdk_kms::{
    error::ProvideErrorMetadata,
    primitives::Blob,
    types::{DataKeySpec, KeyEncryptionMechanism, RecipientInfo},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
};
use nitro_signer_common::attestation::RootOfTrust;
use nitro_signer_enclave::{
    nsm::{AttestationRequest, Nsm, SimulatedNsm, SimulatorConfig},
    recipient::RecipientKey,
};
use nitro_signer_kms_emulator::{
    server::{self, ServerLimits},
    service::{EncryptionContext, Kms},
    sigv4::Credentials,
};
use nitro_signer_tests::kms;
use zeroize::Zeroizing;

const ACCESS_KEY: &str = "AKIAEMULATOR00000000";
const SECRET_KEY: &str = "emulator-secret-key-0123456789abcdefghij";
const PLAINTEXT: &[u8] = b"the-plaintext-that-must-never-be-logged";

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The ways `secret` could show up in text.
fn encodings(secret: &[u8]) -> Vec<String> {
    let mut out = vec![
        hex::encode(secret),
        hex::encode_upper(secret),
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        format!("{secret:?}"),
    ];
    if let Ok(text) = std::str::from_utf8(secret) {
        out.push(text.to_owned());
    }
    out
}

fn assert_absent(haystack: &str, what: &str, secret: &[u8]) {
    for needle in encodings(secret) {
        assert!(
            !haystack.contains(&needle),
            "{what} leaked as {needle:?} in:\n{haystack}"
        );
    }
}

#[tokio::test]
async fn logs_and_debug_output_never_contain_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Every level of every event from the emulator; nothing from the SDK client, which is not
    // under test here.
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "nitro_signer_kms_emulator=trace",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let nsm = SimulatedNsm::open(SimulatorConfig::new(dir.path().join("nsm"))).unwrap();
    let kms = Arc::new(
        Kms::open(
            dir.path().join("kms"),
            RootOfTrust::dangerous_simulated(nsm.root_fingerprint()),
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let credentials = Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: Zeroizing::new(SECRET_KEY.into()),
        session_token: None,
    };
    let credentials_debug = format!("{credentials:?}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(
        listener,
        Arc::clone(&kms),
        credentials,
        ServerLimits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let client = kms::client("us-east-1", &url, ACCESS_KEY, SECRET_KEY);

    // Encrypt, Decrypt, GenerateDataKey (plaintext and Recipient), and a failure.
    let key_id = client
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    let encrypted = client
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(PLAINTEXT))
        .encryption_context("purpose", "logging-test")
        .send()
        .await
        .unwrap();
    let ciphertext = encrypted.ciphertext_blob().unwrap().clone();
    let decrypted = client
        .decrypt()
        .ciphertext_blob(ciphertext.clone())
        .encryption_context("purpose", "logging-test")
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref(), PLAINTEXT);
    let wrong_context = client
        .decrypt()
        .ciphertext_blob(ciphertext.clone())
        .encryption_context("purpose", "another")
        .send()
        .await
        .unwrap_err();
    assert_eq!(wrong_context.code(), Some("InvalidCiphertextException"));
    let data_key = client
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let data_key_plaintext = data_key.plaintext().unwrap().as_ref().to_vec();
    let recipient_key = RecipientKey::generate().unwrap();
    let document = nsm
        .attest(AttestationRequest {
            public_key: Some(recipient_key.spki_der()),
            ..Default::default()
        })
        .unwrap();
    let sealed = client
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .recipient(
            RecipientInfo::builder()
                .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
                .attestation_document(Blob::new(document.clone()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let sealed_data_key = recipient_key
        .open(sealed.ciphertext_for_recipient().unwrap().as_ref())
        .unwrap();

    // The service's own Debug output, as a caller might log it.
    let context = EncryptionContext::new();
    let direct = kms.generate_data_key(&key_id, 32, &context, None).unwrap();
    let (_, direct_secret) = kms
        .decrypt(&direct.ciphertext_blob, &context, None, None)
        .unwrap();
    let debug = format!("{kms:?}\n{direct:?}\n{direct_secret:?}\n{credentials_debug}");
    let direct_plaintext = match direct.secret {
        nitro_signer_kms_emulator::service::Secret::Plaintext(p) => p.to_vec(),
        other => panic!("{other:?}"),
    };

    stop.send(()).unwrap();
    served.await.unwrap();

    let logs = captured.text();
    // The log is not empty: one line per request, with operation, key and outcome.
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains(" request ")).collect();
    assert_eq!(lines.len(), 6, "{logs}");
    for (operation, outcome) in [
        ("CreateKey", "ok"),
        ("Encrypt", "ok"),
        ("Decrypt", "ok"),
        ("Decrypt", "InvalidCiphertextException"),
        ("GenerateDataKey", "ok"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("operation=\"{operation}\""))
                    && l.contains(&format!("outcome=\"{outcome}\""))
                    && l.contains(&key_id)),
            "no {operation} {outcome} line for {key_id} in:\n{logs}"
        );
    }

    let everything = format!("{logs}\n{debug}");
    assert_absent(&everything, "the plaintext", PLAINTEXT);
    assert_absent(&everything, "the data key", &data_key_plaintext);
    assert_absent(&everything, "the sealed data key", &sealed_data_key);
    assert_absent(&everything, "a data key (Debug)", &direct_plaintext);
    assert_absent(&everything, "the secret access key", SECRET_KEY.as_bytes());
    assert_absent(&everything, "the attestation document", &document);
    assert_absent(&everything, "the ciphertext", ciphertext.as_ref());
}
