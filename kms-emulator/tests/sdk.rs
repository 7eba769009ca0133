//! The real `aws-sdk-kms` client against the emulator over HTTP: SigV4 accepted from the right
//! credentials and refused from others, the Recipient flow, and KMS error types.
#![cfg(test)]

use std::sync::Arc;

use aws_sdk_kms::{
    Client,
    error::ProvideErrorMetadata,
    primitives::Blob,
    types::{DataKeySpec, KeyEncryptionMechanism, RecipientInfo},
};
use nitro_signer_common::attestation::RootOfTrust;
use nitro_signer_enclave::{
    nsm::{AttestationRequest, Nsm, SimulatedNsm, SimulatorConfig},
    recipient::RecipientKey,
};
use nitro_signer_kms_emulator::{
    server::{self, ServerLimits},
    service::{Kms, KmsConfig},
    sigv4::Credentials,
};
use nitro_signer_tests::kms;
use zeroize::Zeroizing;

const ACCESS_KEY: &str = "AKIAEMULATOR00000000";
const SECRET_KEY: &str = "emulator-secret-key-0000000000000000000";

struct Running {
    _dir: tempfile::TempDir,
    url: String,
    nsm: SimulatedNsm,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Running {
    start_with(KmsConfig::default()).await
}

async fn start_with(config: KmsConfig) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let nsm = SimulatedNsm::open(SimulatorConfig::new(dir.path().join("nsm"))).unwrap();
    let kms = Kms::open_with(
        dir.path().join("kms"),
        RootOfTrust::dangerous_simulated(nsm.root_fingerprint()),
        config,
    )
    .unwrap();
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
        Arc::new(kms),
        credentials,
        ServerLimits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        _dir: dir,
        url,
        nsm,
        _stop: stop,
    }
}

fn client(url: &str, secret: &str) -> Client {
    client_in("us-east-1", url, secret)
}

fn client_in(region: &'static str, url: &str, secret: &str) -> Client {
    kms::client(region, url, ACCESS_KEY, secret)
}

#[tokio::test]
async fn the_sdk_runs_the_recipient_flow() {
    let running = start().await;
    let kms = client(&running.url, SECRET_KEY);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
          {{"Effect":"Allow","Principal":{{"AWS":"*"}},"Action":["kms:Create*","kms:Describe*","kms:Put*","kms:Encrypt"],"Resource":"*"}},
          {{"Effect":"Allow","Principal":{{"AWS":"*"}},"Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*",
            "Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:ImageSha384":"{}"}}}}}}]}}"#,
        hex::encode(running.nsm.pcr(0).unwrap())
    );
    let key = kms
        .create_key()
        .description("tenant")
        .policy(policy)
        .send()
        .await
        .unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let described = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        described.key_metadata().unwrap().description(),
        Some("tenant")
    );

    let recipient_key = RecipientKey::generate().unwrap();
    let recipient = || {
        let document = running
            .nsm
            .attest(AttestationRequest {
                public_key: Some(recipient_key.spki_der()),
                ..Default::default()
            })
            .unwrap();
        RecipientInfo::builder()
            .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
            .attestation_document(Blob::new(document))
            .build()
    };
    let generated = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("nitro-signer:kind", "seed")
        .recipient(recipient())
        .send()
        .await
        .unwrap();
    assert!(
        generated.plaintext().is_none(),
        "no plaintext with a recipient"
    );
    let seed = recipient_key
        .open(generated.ciphertext_for_recipient().unwrap().as_ref())
        .unwrap();
    assert_eq!(seed.len(), 32);

    let decrypted = kms
        .decrypt()
        .ciphertext_blob(generated.ciphertext_blob().unwrap().clone())
        .encryption_context("nitro-signer:kind", "seed")
        .recipient(recipient())
        .send()
        .await
        .unwrap();
    assert!(decrypted.plaintext().is_none());
    let again = recipient_key
        .open(decrypted.ciphertext_for_recipient().unwrap().as_ref())
        .unwrap();
    assert_eq!(again, seed);

    // KMS error types reach the SDK as such.
    let denied = kms
        .decrypt()
        .ciphertext_blob(generated.ciphertext_blob().unwrap().clone())
        .encryption_context("nitro-signer:kind", "seed")
        .send()
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Some("AccessDeniedException"), "{denied:?}");
    let wrong_context = kms
        .decrypt()
        .ciphertext_blob(generated.ciphertext_blob().unwrap().clone())
        .encryption_context("nitro-signer:kind", "private-key")
        .recipient(recipient())
        .send()
        .await
        .unwrap_err();
    assert_eq!(wrong_context.code(), Some("InvalidCiphertextException"));
    let missing = kms
        .describe_key()
        .key_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("NotFoundException"));
}

#[tokio::test]
async fn requests_signed_with_other_credentials_are_refused() {
    let running = start().await;
    let wrong = client(&running.url, "not-the-secret");
    let err = wrong.list_keys().send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"), "{err:?}");
    let right = client(&running.url, SECRET_KEY);
    assert!(right.list_keys().send().await.unwrap().keys().is_empty());
}

#[tokio::test]
async fn the_configured_region_is_in_arns_and_signatures() {
    let running = start_with(KmsConfig {
        region: "eu-central-1".into(),
        account_id: "123456789012".into(),
        principal: None,
    })
    .await;
    let kms = client_in("eu-central-1", &running.url, SECRET_KEY);
    let key = kms.create_key().send().await.unwrap();
    let metadata = key.key_metadata().unwrap();
    assert_eq!(
        metadata.arn(),
        Some(
            format!(
                "arn:aws:kms:eu-central-1:123456789012:key/{}",
                metadata.key_id()
            )
            .as_str()
        )
    );
    assert_eq!(metadata.aws_account_id(), Some("123456789012"));

    // Requests signed for another region are refused, as KMS refuses them.
    let elsewhere = client_in("us-east-1", &running.url, SECRET_KEY);
    let err = elsewhere.list_keys().send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"), "{err:?}");
}
