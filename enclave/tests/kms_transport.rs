//! The enclave's KMS transport end to end, without AWS: the real `aws-sdk-kms` client and the
//! enclave's `Kms` go through the loopback forwarder to a "vsock-proxy" stand-in (a `tcp://`
//! upstream) where a TLS server holding a test certificate for `kms.us-east-1.amazonaws.com`
//! fronts the KMS emulator. TLS ends in the enclave's client: a certificate from another CA or
//! for another name is refused, and the client resolves no other host.
#![cfg(test)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_sdk_kms::{
    Client,
    config::{BehaviorVersion, Region, retry::RetryConfig},
    error::SdkError,
};
use nitro_signer_common::{
    attestation::RootOfTrust,
    key_blob::{KeyBlob, KeyKind, KeyMetadata},
    protocol::AwsCredentials,
};
use nitro_signer_enclave::{
    kms::{
        Kms, KmsError, KmsSettings, Unreachable,
        transport::{KmsTransport, TransportSettings},
    },
    nsm::{Nsm, SimulatedNsm, SimulatorConfig},
    recipient::RecipientKey,
};
use nitro_signer_kms_emulator::{
    server::{self, ServerLimits},
    service::{Kms as Emulator, KmsConfig},
    sigv4::Credentials,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};
use zeroize::Zeroizing;

const HOST: &str = "kms.us-east-1.amazonaws.com";
const ACCESS_KEY: &str = "AKIAEMULATOR00000000";
const SECRET_KEY: &str = "emulator-secret-key-0000000000000000000";

/// A test certificate authority.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `host` and its PKCS#8 key.
    fn server_cert(&self, host: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![host.to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

/// What the TLS front saw.
#[derive(Default)]
struct Seen {
    /// SNI of each completed handshake.
    server_names: Vec<Option<String>>,
    /// TCP connections accepted.
    connections: usize,
    /// Handshakes that failed.
    failed_handshakes: usize,
}

/// A TLS server standing in for KMS's front end behind the parent's vsock-proxy: it terminates
/// TLS with `cert` and relays the plaintext to `backend` (the emulator's HTTP port).
async fn tls_front(
    cert: (CertificateDer<'static>, PrivateKeyDer<'static>),
    backend: SocketAddr,
) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.0], cert.1)
        .unwrap();
    // The emulator speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            record.lock().unwrap().connections += 1;
            let acceptor = acceptor.clone();
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(_) => {
                        record.lock().unwrap().failed_handshakes += 1;
                        return;
                    }
                };
                let server_name = tls.get_ref().1.server_name().map(str::to_owned);
                record.lock().unwrap().server_names.push(server_name);
                let mut plain = TcpStream::connect(backend).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (address, seen)
}

struct Emulated {
    _dir: tempfile::TempDir,
    address: SocketAddr,
    nsm: Arc<SimulatedNsm>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The KMS emulator over plain HTTP on loopback, trusting the simulated NSM's attestations.
async fn emulator() -> Emulated {
    let dir = tempfile::tempdir().unwrap();
    let nsm = SimulatedNsm::open(SimulatorConfig::new(dir.path().join("nsm"))).unwrap();
    let kms = Emulator::open_with(
        dir.path().join("kms"),
        RootOfTrust::dangerous_simulated(nsm.root_fingerprint()),
        KmsConfig::default(),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
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
    Emulated {
        _dir: dir,
        address,
        nsm: Arc::new(nsm),
        _stop: stop,
    }
}

/// Test settings: loopback port 0, upstream `front`, the embedded roots plus `extra_ca`.
fn settings(front: SocketAddr, extra_ca: Option<&TestCa>) -> TransportSettings {
    TransportSettings {
        upstream: format!("tcp://{front}").parse().unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        dangerous_extra_roots_pem: extra_ca.map(|ca| ca.pem.clone().into_bytes()),
        ..TransportSettings::for_region("us-east-1").unwrap()
    }
}

/// A bare SDK client through `transport`, to `endpoint`, without retries.
fn sdk_client(transport: &KmsTransport, endpoint: &str) -> Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .http_client(transport.http_client())
        .retry_config(RetryConfig::disabled())
        .credentials_provider(aws_credential_types::Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "test",
        ))
        .build();
    Client::from_conf(config)
}

/// The whole error chain, as text.
fn describe<E: std::fmt::Debug, R: std::fmt::Debug>(error: &SdkError<E, R>) -> String {
    assert!(
        matches!(error, SdkError::DispatchFailure(_)),
        "expected a dispatch failure: {error:?}"
    );
    format!("{error:?}")
}

#[tokio::test]
async fn the_sdk_reaches_kms_through_the_forwarder_with_tls_ending_in_the_enclave() {
    let emulated = emulator().await;
    let ca = TestCa::new("test KMS CA");
    let (front, seen) = tls_front(ca.server_cert(HOST), emulated.address).await;
    let transport = KmsTransport::start(settings(front, Some(&ca)))
        .await
        .unwrap();
    let port = transport.local_addr().port();
    assert_eq!(transport.endpoint_url(), format!("https://{HOST}:{port}"));

    // An administrator's call: a key whose policy releases data keys to the enclave's image.
    let admin = sdk_client(&transport, transport.endpoint_url());
    let pcr0: String = emulated
        .nsm
        .pcr(0)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
          {{"Effect":"Allow","Principal":{{"AWS":"*"}},"Action":["kms:Create*","kms:Describe*","kms:Put*"],"Resource":"*"}},
          {{"Effect":"Allow","Principal":{{"AWS":"*"}},"Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*",
            "Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:ImageSha384":"{pcr0}"}}}}}}]}}"#
    );
    let key = admin.create_key().policy(policy).send().await.unwrap();
    // The enclave generates under a full key ARN only.
    let key_id = key.key_metadata().unwrap().arn().unwrap().to_owned();

    // The enclave's own client: GenerateDataKey and Decrypt with Recipient, through TLS.
    let kms = enclave_kms(
        &emulated,
        &transport,
        Duration::from_secs(5),
        Duration::from_secs(10),
    );
    let generated = kms
        .generate_seed(KeyMetadata::new(KeyKind::Seed, &key_id, None, Vec::new()).unwrap())
        .await
        .unwrap();
    let decrypted = kms.decrypt(&generated.blob).await.unwrap();
    assert_eq!(
        decrypted.key_id().unwrap(),
        generated.material.key_id().unwrap()
    );

    let seen = seen.lock().unwrap();
    assert!(!seen.server_names.is_empty());
    assert!(
        seen.server_names.iter().all(|n| n.as_deref() == Some(HOST)),
        "SNI: {:?}",
        seen.server_names
    );
    assert_eq!(seen.failed_handshakes, 0);
}

/// The enclave's own KMS client going through `transport`, attesting with the emulator's NSM,
/// with the test credentials set.
fn enclave_kms(
    emulated: &Emulated,
    transport: &KmsTransport,
    attempt_timeout: Duration,
    operation_timeout: Duration,
) -> Kms {
    let nsm: Arc<dyn Nsm> = emulated.nsm.clone();
    let kms = Kms::new(
        &KmsSettings {
            region: "us-east-1".into(),
            endpoint: Some(transport.endpoint_url().to_owned()),
            attempt_timeout,
            operation_timeout,
            http_client: Some(transport.http_client()),
        },
        nsm,
        RecipientKey::generate().unwrap(),
    );
    kms.credentials()
        .set(&AwsCredentials {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: Zeroizing::new(SECRET_KEY.into()),
            session_token: None,
            expires_at: None,
        })
        .unwrap();
    kms
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_for_another_name_is_refused() {
    let emulated = emulator().await;
    let trusted = TestCa::new("trusted test CA");
    let other = TestCa::new("other test CA");

    // The right name from an untrusted CA; also refused with the embedded roots alone, which do
    // not include test CAs.
    let (front, seen) = tls_front(other.server_cert(HOST), emulated.address).await;
    for extra in [Some(&trusted), None] {
        let transport = KmsTransport::start(settings(front, extra)).await.unwrap();
        let client = sdk_client(&transport, transport.endpoint_url());
        let error = client.list_keys().send().await.unwrap_err();
        let text = describe(&error);
        assert!(text.contains("UnknownIssuer"), "{text}");
    }
    // The front notes the failed handshake after the client has given up: wait for it.
    for _ in 0..100 {
        if seen.lock().unwrap().failed_handshakes >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    {
        let seen = seen.lock().unwrap();
        assert!(seen.server_names.is_empty(), "no handshake completed");
        assert_eq!(seen.failed_handshakes, 2);
    }

    // A trusted CA, but a certificate for another host.
    let (front, seen) = tls_front(
        trusted.server_cert("kms.eu-west-1.amazonaws.com"),
        emulated.address,
    )
    .await;
    let transport = KmsTransport::start(settings(front, Some(&trusted)))
        .await
        .unwrap();
    let client = sdk_client(&transport, transport.endpoint_url());
    let error = client.list_keys().send().await.unwrap_err();
    let text = describe(&error);
    assert!(text.contains("NotValidForName"), "{text}");
    assert!(seen.lock().unwrap().server_names.is_empty());
}

#[tokio::test]
async fn the_enclave_reports_a_refused_certificate_as_a_tls_failure_not_sdk_internals() {
    let emulated = emulator().await;
    let other = TestCa::new("other test CA");
    let (front, _seen) = tls_front(other.server_cert(HOST), emulated.address).await;
    let transport = KmsTransport::start(settings(front, None)).await.unwrap();
    let kms = enclave_kms(
        &emulated,
        &transport,
        Duration::from_secs(2),
        Duration::from_secs(5),
    );
    let metadata = KeyMetadata::new(
        KeyKind::Seed,
        "arn:aws:kms:us-east-1:111122223333:key/k",
        None,
        Vec::new(),
    )
    .unwrap();
    let blob = KeyBlob::new(metadata, vec![1; 64]).unwrap();
    let error = kms.decrypt(&blob).await.unwrap_err();
    assert_eq!(error, KmsError::Unreachable(Unreachable::Tls));
    let text = error.to_string();
    assert!(
        text.starts_with("KMS is unreachable (TLS handshake failed"),
        "{text}"
    );
    assert!(
        !text.contains("UnknownIssuer") && !text.contains("Dispatch"),
        "{text}"
    );
}

#[tokio::test]
async fn the_client_resolves_no_other_host() {
    let emulated = emulator().await;
    let ca = TestCa::new("test KMS CA");
    let (front, seen) = tls_front(ca.server_cert(HOST), emulated.address).await;
    let transport = KmsTransport::start(settings(front, Some(&ca)))
        .await
        .unwrap();
    let port = transport.local_addr().port();
    for endpoint in [
        format!("https://kms.eu-west-1.amazonaws.com:{port}"),
        format!("https://sts.amazonaws.com:{port}"),
        format!("https://localhost:{port}"),
    ] {
        let client = sdk_client(&transport, &endpoint);
        let error = client.list_keys().send().await.unwrap_err();
        let text = describe(&error);
        assert!(text.contains("is not the KMS host"), "{endpoint}: {text}");
    }
    assert_eq!(
        seen.lock().unwrap().connections,
        0,
        "nothing reached the front"
    );

    // The same transport still reaches the KMS host.
    let client = sdk_client(&transport, transport.endpoint_url());
    assert!(client.list_keys().send().await.unwrap().keys().is_empty());
}

#[tokio::test]
async fn dropping_the_transport_stops_the_forwarder() {
    let emulated = emulator().await;
    let ca = TestCa::new("test KMS CA");
    let (front, _seen) = tls_front(ca.server_cert(HOST), emulated.address).await;
    let transport = KmsTransport::start(settings(front, Some(&ca)))
        .await
        .unwrap();
    let local = transport.local_addr();
    let client = sdk_client(&transport, transport.endpoint_url());
    client.list_keys().send().await.unwrap();
    drop(transport);
    // The listener is closed once the aborted task has been dropped.
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(local).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the forwarder still accepts connections");
}

/// A stand-in for the parent's vsock-proxy that echoes every byte and counts connections.
async fn echo_upstream() -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(Mutex::new(0));
    let count = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            *count.lock().unwrap() += 1;
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    (address, connections)
}

/// Sends `bytes` on `stream` and reads them back within `within`; false if they do not come.
async fn echoed(stream: &mut TcpStream, bytes: &[u8], within: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream.write_all(bytes).await.is_err() {
        return false;
    }
    let mut back = vec![0; bytes.len()];
    matches!(
        tokio::time::timeout(within, stream.read_exact(&mut back)).await,
        Ok(Ok(_)) if back == bytes
    )
}

#[tokio::test]
async fn idle_relayed_connections_are_closed_and_busy_ones_kept_within_the_connection_cap() {
    use tokio::io::AsyncReadExt;

    const IDLE: Duration = Duration::from_millis(300);
    let (upstream, upstream_connections) = echo_upstream().await;
    let transport = KmsTransport::start(TransportSettings {
        upstream: format!("tcp://{upstream}").parse().unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        max_connections: 1,
        idle_timeout: IDLE,
        ..TransportSettings::for_region("us-east-1").unwrap()
    })
    .await
    .unwrap();
    let local = transport.local_addr();

    // A connection that keeps talking outlives the idle timeout many times over.
    let mut busy = TcpStream::connect(local).await.unwrap();
    for n in 0..8u8 {
        tokio::time::sleep(IDLE / 3).await;
        assert!(
            echoed(&mut busy, &[n; 16], Duration::from_secs(1)).await,
            "round {n}"
        );
    }
    let last_traffic = std::time::Instant::now();
    // At the cap, a second connection waits: nothing of it reaches the upstream.
    let mut waiting = TcpStream::connect(local).await.unwrap();
    assert!(!echoed(&mut waiting, b"second", IDLE / 2).await);
    assert_eq!(*upstream_connections.lock().unwrap(), 1);

    // The first one goes quiet: the forwarder closes it after the idle timeout ...
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(IDLE * 4, busy.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");
    let after = last_traffic.elapsed();
    assert!(after >= IDLE && after < IDLE * 3, "closed after {after:?}");
    // ... and its slot goes to the waiting one, whose bytes were kept.
    let mut back = [0u8; 6];
    tokio::time::timeout(Duration::from_secs(2), waiting.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"second");
    assert_eq!(*upstream_connections.lock().unwrap(), 2);
}

#[tokio::test]
async fn the_sdk_reconnects_when_the_forwarder_has_closed_its_pooled_connection() {
    let emulated = emulator().await;
    let ca = TestCa::new("test KMS CA");
    let (front, seen) = tls_front(ca.server_cert(HOST), emulated.address).await;
    let idle = Duration::from_millis(300);
    let transport = KmsTransport::start(TransportSettings {
        idle_timeout: idle,
        ..settings(front, Some(&ca))
    })
    .await
    .unwrap();
    // Without retries: the pool itself must notice that the connection is gone.
    let client = sdk_client(&transport, transport.endpoint_url());
    client.list_keys().send().await.unwrap();
    client.list_keys().send().await.unwrap();
    assert_eq!(
        seen.lock().unwrap().connections,
        1,
        "the connection is pooled"
    );
    tokio::time::sleep(idle * 3).await;
    client.list_keys().send().await.unwrap();
    assert_eq!(
        seen.lock().unwrap().connections,
        2,
        "the idle connection was closed by the forwarder and replaced"
    );
}
