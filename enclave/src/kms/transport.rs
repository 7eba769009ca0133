//! HTTPS to AWS KMS from inside a Nitro Enclave, through the parent's `vsock-proxy`, with TLS
//! ending inside the enclave.
//!
//! An enclave has no network interface. The parent instance runs AWS's `vsock-proxy`, which
//! relays raw bytes between vsock port 8000 of the parent (CID 3) and
//! `kms.<region>.amazonaws.com:443`. This module puts two pieces in front of it:
//!
//! 1. A loopback forwarder: a TCP listener inside the enclave (`127.0.0.1:443` in production)
//!    that relays each connection, byte for byte, to the upstream [`Address`]
//!    (`vsock://3:8000` in production). It never looks at what it relays. It relays at most
//!    [`TransportSettings::max_connections`] connections at once and closes one that carries no
//!    byte either way for [`TransportSettings::idle_timeout`] (longer than the time the SDK's
//!    client keeps an idle connection in its pool).
//! 2. An HTTPS client for `aws-sdk-kms` (the SDK's own hyper + rustls client, aws-lc crypto)
//!    whose DNS resolver answers the KMS host name, and nothing else, with the forwarder's
//!    loopback address, and whose trust store holds CA roots compiled into the binary (the
//!    image is `FROM scratch`: no system store) instead of the platform's.
//!
//! The SDK keeps using the real endpoint URL, `https://kms.<region>.amazonaws.com`, so SNI,
//! certificate name checks and SigV4's `host` are those of the real KMS host; only the TCP
//! connection is redirected.
//!
//! # Why the parent cannot read or forge KMS answers
//!
//! The TLS session runs between rustls in the enclave and KMS; the parent only carries its
//! ciphertext. It cannot read requests (credentials, key ids, attestation documents, ciphertexts)
//! or answers, and it cannot forge or alter an answer: that would need a certificate for the KMS
//! host name chaining to one of the embedded roots, and the enclave's trust store is fixed at
//! build time, measured into PCR0, out of the parent's reach.
//!
//! That matters beyond confidentiality. The plaintext in `CiphertextForRecipient` is encrypted
//! to the enclave's recipient key, but that envelope has no integrity of its own (RSA-OAEP key
//! transport and AES-CBC, no signature or MAC; see [`crate::recipient`]): anyone who knows the
//! public recipient key (it is in the attestation document) can make one. Without TLS to KMS, a
//! hostile parent could answer `Decrypt` or `GenerateDataKey` itself with a seed of its choosing
//! and so know the keys the enclave derives from it. TLS authentication of KMS is what makes a
//! `CiphertextForRecipient` trustworthy.
//!
//! # Requirements inside the enclave
//!
//! The loopback interface must be up: a Nitro Enclave boots with `lo` down, and the enclave's
//! production mode brings it up before starting the transport (see [`crate::loopback`]).
//! Binding port 443 needs root or `CAP_NET_BIND_SERVICE`, as enclave applications usually have. The parent's `vsock-proxy` must allow the region's KMS host in its allowlist.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use aws_sdk_kms::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use nitro_signer_common::transport::{self, Address};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    task::{JoinHandle, JoinSet},
};
use tracing::{debug, warn};

/// Where the parent's `vsock-proxy` listens for KMS traffic: vsock port 8000 of the parent
/// (CID 3), the port AWS's examples and allowlist use.
pub const PARENT_VSOCK_PROXY: Address = Address::Vsock { cid: 3, port: 8000 };

/// Where the forwarder listens inside the enclave in production: loopback port 443, so that the
/// SDK's endpoint URL is exactly `https://kms.<region>.amazonaws.com`.
pub const LOOPBACK_HTTPS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 443);

/// How long the SDK's HTTPS client keeps an idle connection in its pool before closing it.
/// hyper's default is 90 s; it is set explicitly so that a change of default cannot make it
/// outlive [`RELAY_IDLE_TIMEOUT`].
pub const SDK_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the forwarder keeps a relayed connection that carries no byte either way: five
/// times [`SDK_POOL_IDLE_TIMEOUT`]. Should it still cut a pooled connection as a request starts
/// on it, the request fails as a closed connection, which the SDK retries on a new one (hyper
/// itself resends a request that was not written yet).
pub const RELAY_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Most connections the forwarder relays at once in production: more than the SDK's client
/// opens for [`crate::limits::MAX_KMS_IN_FLIGHT`] calls.
pub const MAX_RELAYED_CONNECTIONS: usize = 64;

/// Time limit for the forwarder to connect to the parent's vsock-proxy in production.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The CA roots that AWS KMS endpoints chain to, by SHA-256 fingerprint of the certificate:
/// Amazon Trust Services' four roots and the Starfield root that cross-signs them. They are
/// taken from `webpki-root-certs` (Mozilla's root program) by fingerprint, so a crate update can
/// drop one but never swap one; a unit test checks that all are there. The fingerprints are those
/// Amazon Trust Services publishes.
const KMS_ROOTS: [(&str, &str); 5] = [
    (
        "Amazon Root CA 1",
        "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
    ),
    (
        "Amazon Root CA 2",
        "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
    ),
    (
        "Amazon Root CA 3",
        "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
    ),
    (
        "Amazon Root CA 4",
        "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
    ),
    (
        "Starfield Services Root Certificate Authority - G2",
        "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
    ),
];

/// How to reach KMS.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// The KMS host name: the only name the resolver answers, the TLS server name (SNI) and the
    /// name the certificate must carry. `kms.<region>.amazonaws.com` in production.
    pub host: String,
    /// Where the forwarder sends the bytes: [`PARENT_VSOCK_PROXY`] in production, a `tcp://`
    /// address in tests.
    pub upstream: Address,
    /// The loopback address the forwarder listens on: [`LOOPBACK_HTTPS`] in production, port 0
    /// (any free port) in tests. Other than loopback addresses are refused.
    pub listen: SocketAddr,
    /// Most connections relayed at once; further ones wait in the listen backlog until one
    /// ends (the SDK's attempt timeout bounds the wait of its request).
    pub max_connections: usize,
    /// Time limit for connecting to the upstream.
    pub connect_timeout: Duration,
    /// A relayed connection that carries no byte either way for this long is closed, so that
    /// connections whose ends went quiet (or stalled) do not hold a slot for ever. Keep it
    /// longer than [`SDK_POOL_IDLE_TIMEOUT`]: the SDK's client then drops an idle connection
    /// from its pool before the forwarder closes it under a request.
    pub idle_timeout: Duration,
    /// Trust the embedded roots of AWS KMS endpoints. Always `true` in production.
    pub embedded_roots: bool,
    /// More trusted roots, PEM. Tests only: a root here can vouch for any KMS answer.
    pub dangerous_extra_roots_pem: Option<Vec<u8>>,
}

impl TransportSettings {
    /// The production settings for AWS KMS in `region`: host `kms.<region>.amazonaws.com`,
    /// upstream [`PARENT_VSOCK_PROXY`], listening on [`LOOPBACK_HTTPS`], embedded roots only.
    pub fn for_region(region: &str) -> Result<Self, TransportError> {
        let valid = !region.is_empty()
            && region.len() <= 32
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(TransportError::Settings(format!(
                "{region:?} is not an AWS region name"
            )));
        }
        Ok(Self {
            host: format!("kms.{region}.amazonaws.com"),
            upstream: PARENT_VSOCK_PROXY,
            listen: LOOPBACK_HTTPS,
            max_connections: MAX_RELAYED_CONNECTIONS,
            connect_timeout: UPSTREAM_CONNECT_TIMEOUT,
            idle_timeout: RELAY_IDLE_TIMEOUT,
            embedded_roots: true,
            dangerous_extra_roots_pem: None,
        })
    }
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The settings are unusable.
    #[error("KMS transport settings: {0}")]
    Settings(String),
    /// A trusted root is unusable, or none is configured.
    #[error("KMS transport trust roots: {0}")]
    Roots(String),
    /// The forwarder's loopback address could not be bound (is `lo` up? may the process bind
    /// this port?).
    #[error("cannot listen on {address} for KMS traffic: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running KMS transport: the loopback forwarder and the HTTPS client that goes through it.
///
/// Keep it alive as long as any SDK client uses [`Self::http_client`]: dropping it stops the
/// forwarder and the connections it relays.
#[derive(Debug)]
pub struct KmsTransport {
    endpoint_url: String,
    http_client: SharedHttpClient,
    local_addr: SocketAddr,
    forwarder: JoinHandle<()>,
}

impl KmsTransport {
    /// Binds the forwarder, starts it on the current Tokio runtime and builds the HTTPS client.
    pub async fn start(settings: TransportSettings) -> Result<Self, TransportError> {
        let TransportSettings {
            host,
            upstream,
            listen,
            max_connections,
            connect_timeout,
            idle_timeout,
            embedded_roots,
            dangerous_extra_roots_pem,
        } = settings;
        let host = host.to_ascii_lowercase();
        match ServerName::try_from(host.as_str()) {
            Ok(ServerName::DnsName(_)) => {}
            _ => {
                return Err(TransportError::Settings(format!(
                    "{host:?} is not a DNS host name"
                )));
            }
        }
        if !listen.ip().is_loopback() {
            return Err(TransportError::Settings(format!(
                "the forwarder must listen on a loopback address, not {listen}"
            )));
        }
        if max_connections == 0 {
            return Err(TransportError::Settings(
                "max_connections must be at least 1".into(),
            ));
        }
        if idle_timeout.is_zero() {
            return Err(TransportError::Settings(
                "idle_timeout must not be zero".into(),
            ));
        }
        let trust_store = trust_store(embedded_roots, dangerous_extra_roots_pem.as_deref())?;
        let tls_context = TlsContext::builder()
            .with_trust_store(trust_store)
            .build()
            .map_err(|error| TransportError::Roots(error.to_string()))?;

        let listener =
            TcpListener::bind(listen)
                .await
                .map_err(|source| TransportError::Listen {
                    address: listen,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TransportError::Listen {
                address: listen,
                source,
            })?;
        let http_client = aws_smithy_http_client::Builder::new()
            .pool_idle_timeout(SDK_POOL_IDLE_TIMEOUT)
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(tls_context)
            .build_with_resolver(PinnedResolver {
                host: Arc::from(host.as_str()),
                address: local_addr.ip(),
            });
        // The URL names the real host; the port is there only when it is not HTTPS's (tests).
        let endpoint_url = match local_addr.port() {
            443 => format!("https://{host}"),
            port => format!("https://{host}:{port}"),
        };
        debug!(%local_addr, %upstream, %host, "KMS transport started");
        let forwarder = tokio::spawn(forward(
            listener,
            upstream,
            Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            Timeouts {
                connect: connect_timeout,
                idle: idle_timeout,
            },
        ));
        Ok(Self {
            endpoint_url,
            http_client,
            local_addr,
            forwarder,
        })
    }

    /// The endpoint URL to give the SDK (`KmsSettings::endpoint`):
    /// `https://kms.<region>.amazonaws.com`, with the forwarder's port when it is not 443.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint_url
    }

    /// The HTTPS client to give the SDK (`KmsSettings::http_client`). It reaches the KMS host
    /// only, through the forwarder, and trusts only the configured roots.
    pub fn http_client(&self) -> SharedHttpClient {
        self.http_client.clone()
    }

    /// The loopback address the forwarder is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for KmsTransport {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every relayed connection.
        self.forwarder.abort();
    }
}

/// Resolves the KMS host name, and only it, to the forwarder's loopback address. Any other name
/// is an error, so the client cannot be pointed elsewhere by a misconfigured endpoint.
#[derive(Debug, Clone)]
struct PinnedResolver {
    host: Arc<str>,
    address: IpAddr,
}

impl ResolveDns for PinnedResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        let name = name.strip_suffix('.').unwrap_or(name);
        DnsFuture::ready(if name.eq_ignore_ascii_case(&self.host) {
            Ok(vec![self.address])
        } else {
            Err(ResolveDnsError::new(format!(
                "{name:?} is not the KMS host {:?}; the enclave reaches no other host",
                self.host
            )))
        })
    }
}

/// The forwarder's time limits.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    connect: Duration,
    idle: Duration,
}

/// Accepts loopback connections and relays each to `upstream`, at most as many at once as
/// `limit` has permits.
async fn forward(
    listener: TcpListener,
    upstream: Address,
    limit: Arc<Semaphore>,
    timeouts: Timeouts,
) {
    let upstream = Arc::new(upstream);
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        // Wait for a free slot before accepting: excess connections queue in the backlog.
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                warn!(%error, "KMS forwarder: accept failed");
                // Out of file descriptors and the like: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let upstream = Arc::clone(&upstream);
        connections.spawn(async move {
            relay(stream, &upstream, timeouts).await;
            drop(permit);
        });
    }
}

/// Relays one connection until either side closes it or it carries no byte for the idle
/// timeout. Logs byte counts and errors, never content (it is TLS anyway).
async fn relay(local: TcpStream, upstream: &Address, timeouts: Timeouts) {
    let _ = local.set_nodelay(true);
    let mut remote = match tokio::time::timeout(timeouts.connect, transport::connect(upstream))
        .await
    {
        Ok(Ok(remote)) => remote,
        Ok(Err(error)) => {
            warn!(%upstream, %error, "KMS forwarder: cannot connect to the upstream");
            return;
        }
        Err(_) => {
            warn!(%upstream, connect_timeout = ?timeouts.connect, "KMS forwarder: timed out connecting to the upstream");
            return;
        }
    };
    // Every byte either way passes through the local socket (read towards the upstream, written
    // from it), so watching it alone sees all traffic.
    let started = Instant::now();
    let last_activity = AtomicU64::new(0);
    let mut local = Watched {
        inner: local,
        started,
        last_activity: &last_activity,
    };
    let idle = async {
        loop {
            let last = started + Duration::from_millis(last_activity.load(Ordering::Relaxed));
            let quiet_until = last + timeouts.idle;
            if Instant::now() >= quiet_until {
                return;
            }
            tokio::time::sleep_until(quiet_until.into()).await;
        }
    };
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut local, &mut remote) => match copied {
            Ok((sent, received)) => debug!(sent, received, "KMS forwarder: connection closed"),
            Err(error) => debug!(%error, "KMS forwarder: connection ended with an error"),
        },
        () = idle => debug!(idle = ?timeouts.idle, "KMS forwarder: idle connection closed"),
    }
}

/// A stream that notes when bytes last went through it, in milliseconds since `started`.
struct Watched<'a, S> {
    inner: S,
    started: Instant,
    last_activity: &'a AtomicU64,
}

impl<S> Watched<'_, S> {
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity.store(now, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The trust store: the embedded KMS roots and/or the extra ones, never the platform's.
///
/// Every certificate is checked here as a trust anchor and handed over as PEM we encoded
/// ourselves: the SDK's client only parses the store when it first builds a connector, and
/// panics on a bad certificate then.
fn trust_store(embedded: bool, extra_pem: Option<&[u8]>) -> Result<TrustStore, TransportError> {
    let mut roots: Vec<CertificateDer<'static>> = Vec::new();
    if embedded {
        let kms_roots = embedded_kms_roots();
        if kms_roots.is_empty() {
            return Err(TransportError::Roots(
                "none of the AWS KMS roots is in webpki-root-certs".into(),
            ));
        }
        roots.extend(kms_roots.into_iter().map(|(_, der)| der.clone()));
    }
    if let Some(pem) = extra_pem {
        let extra = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TransportError::Roots(format!("extra roots: {error}")))?;
        if extra.is_empty() {
            return Err(TransportError::Roots(
                "extra roots: no PEM certificate".into(),
            ));
        }
        roots.extend(extra);
    }
    if roots.is_empty() {
        return Err(TransportError::Roots(
            "no trusted root: every KMS answer would be refused".into(),
        ));
    }
    let mut store = TrustStore::empty().with_native_roots(false);
    for root in &roots {
        webpki::anchor_from_trusted_cert(root)
            .map_err(|error| TransportError::Roots(format!("unusable root: {error}")))?;
        store = store.with_pem_certificate(pem_certificate(root));
    }
    Ok(store)
}

/// The embedded roots of AWS KMS endpoints that `webpki-root-certs` has, with their names.
fn embedded_kms_roots() -> Vec<(&'static str, &'static CertificateDer<'static>)> {
    KMS_ROOTS
        .iter()
        .filter_map(|(name, fingerprint)| {
            webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .find(|der| sha256_hex(der) == *fingerprint)
                .map(|der| (*name, der))
        })
        .collect()
}

/// The SHA-256 fingerprint of `der`, lowercase hex.
fn sha256_hex(der: &CertificateDer<'_>) -> String {
    Sha256::digest(der.as_ref())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `der` as a PEM `CERTIFICATE` block.
fn pem_certificate(der: &CertificateDer<'_>) -> Vec<u8> {
    use base64::Engine as _;

    let encoded = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::with_capacity(encoded.len() + encoded.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for (i, c) in encoded.chars().enumerate() {
        if i > 0 && i % 64 == 0 {
            pem.push('\n');
        }
        pem.push(c);
    }
    pem.push_str("\n-----END CERTIFICATE-----\n");
    pem.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kms_root_is_embedded_under_its_name() {
        let found = embedded_kms_roots();
        assert_eq!(found.len(), KMS_ROOTS.len(), "missing roots");
        for (name, der) in found {
            let anchor = webpki::anchor_from_trusted_cert(der).unwrap();
            let subject: &[u8] = anchor.subject.as_ref();
            assert!(
                subject.windows(name.len()).any(|w| w == name.as_bytes()),
                "{name} is not the subject's common name"
            );
        }
    }

    #[test]
    fn pem_round_trips_to_the_same_der() {
        for (_, der) in embedded_kms_roots() {
            let pem = pem_certificate(der);
            let back: Vec<_> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(back, vec![der.clone()]);
            assert!(
                pem.split(|&b| b == b'\n').all(|line| line.len() <= 64),
                "PEM lines are at most 64 characters"
            );
        }
    }

    #[test]
    fn the_trust_store_needs_a_usable_root() {
        assert!(trust_store(true, None).is_ok());
        assert!(matches!(
            trust_store(false, None),
            Err(TransportError::Roots(_))
        ));
        assert!(matches!(
            trust_store(false, Some(b"not a certificate")),
            Err(TransportError::Roots(_))
        ));
        let junk = pem_certificate(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]));
        assert!(matches!(
            trust_store(true, Some(&junk)),
            Err(TransportError::Roots(_))
        ));
    }

    #[tokio::test]
    async fn the_resolver_answers_the_kms_host_only() {
        let resolver = PinnedResolver {
            host: Arc::from("kms.us-east-1.amazonaws.com"),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        for name in [
            "kms.us-east-1.amazonaws.com",
            "KMS.us-east-1.amazonaws.com",
            "kms.us-east-1.amazonaws.com.",
        ] {
            assert_eq!(
                resolver.resolve_dns(name).await.unwrap(),
                vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
            );
        }
        for name in [
            "kms.eu-west-1.amazonaws.com",
            "sts.amazonaws.com",
            "evil.kms.us-east-1.amazonaws.com",
            "",
        ] {
            assert!(resolver.resolve_dns(name).await.is_err(), "{name}");
        }
    }

    #[test]
    fn production_settings_name_the_regional_host() {
        let settings = TransportSettings::for_region("eu-central-1").unwrap();
        assert_eq!(settings.host, "kms.eu-central-1.amazonaws.com");
        assert_eq!(settings.upstream.to_string(), "vsock://3:8000");
        assert_eq!(settings.listen.to_string(), "127.0.0.1:443");
        assert!(settings.embedded_roots);
        assert!(settings.dangerous_extra_roots_pem.is_none());
        for bad in ["", "US-EAST-1", "us-east-1.evil.com", "us east", "a/b"] {
            assert!(TransportSettings::for_region(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn start_refuses_non_loopback_and_ip_hosts() {
        let base = TransportSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..TransportSettings::for_region("us-east-1").unwrap()
        };
        let outside = TransportSettings {
            listen: "0.0.0.0:0".parse().unwrap(),
            ..base.clone()
        };
        assert!(matches!(
            KmsTransport::start(outside).await,
            Err(TransportError::Settings(_))
        ));
        let ip_host = TransportSettings {
            host: "10.0.0.1".into(),
            ..base.clone()
        };
        assert!(matches!(
            KmsTransport::start(ip_host).await,
            Err(TransportError::Settings(_))
        ));
        let never_idle = TransportSettings {
            idle_timeout: Duration::ZERO,
            ..base.clone()
        };
        assert!(matches!(
            KmsTransport::start(never_idle).await,
            Err(TransportError::Settings(_))
        ));
        let transport = KmsTransport::start(base).await.unwrap();
        assert!(
            transport
                .endpoint_url()
                .starts_with("https://kms.us-east-1.amazonaws.com:")
        );
        assert!(transport.local_addr().ip().is_loopback());
    }
}
