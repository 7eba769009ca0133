//! The enclave's command line: what `nitro-signer-enclave` (and `nitro-signer enclave`) run.

use std::{future::Future, io::Write, path::PathBuf, sync::Arc, time::Duration};

use nitro_signer_common::transport::{Address, Listener};
use tracing::{info, warn};

use crate::{
    cache::CacheLimits,
    kms::{
        Kms, KmsSettings, is_key_arn,
        transport::{KmsTransport, TransportError, TransportSettings},
    },
    nsm::{HardwareNsm, Nsm, NsmError, SimulatedNsm, SimulatorConfig},
    recipient::{RecipientKey, RecipientKeyError},
    server::{self, ServerLimits},
    service::{Enclave, Settings},
};

/// Options of the enclave process. Each can also be set through the environment variable shown
/// by `--help`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Where to listen for the parent instance: `vsock://CID:PORT` inside a Nitro Enclave (CID
    /// 4294967295 means any), `tcp://HOST:PORT` or `unix:///PATH` in simulated mode.
    #[arg(
        long,
        env = "NITRO_SIGNER_ENCLAVE_LISTEN",
        default_value = "vsock://4294967295:5000"
    )]
    pub listen: Address,

    /// AWS region of the KMS keys.
    #[arg(long, env = "NITRO_SIGNER_KMS_REGION", default_value = "us-east-1")]
    pub kms_region: String,

    /// KMS endpoint URL, e.g. the KMS emulator's `http://127.0.0.1:4000` in simulated mode.
    /// Without it, the enclave reaches `kms.REGION.amazonaws.com` over TLS that ends inside the
    /// enclave (embedded Amazon roots), through the parent's vsock-proxy at `vsock://3:8000`,
    /// relayed by a forwarder on `127.0.0.1:443` (production mode brings the loopback interface up).
    #[arg(long, env = "NITRO_SIGNER_KMS_ENDPOINT")]
    pub kms_endpoint: Option<String>,

    /// KMS key ARN that new keys are generated under (a full ARN: bare ids and aliases are
    /// refused). Without it, key generation is refused; signing with existing blobs works either
    /// way.
    #[arg(long, env = "NITRO_SIGNER_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,

    /// Use the NSM simulator with its state (test root of trust, PCRs) in DIR instead of
    /// `/dev/nsm`. Development and tests only: attestation documents are then signed by a local
    /// test root that production verifiers and KMS key policies do not trust.
    #[arg(long, env = "NITRO_SIGNER_DANGEROUS_SIMULATED_NSM", value_name = "DIR")]
    pub dangerous_simulated_nsm: Option<PathBuf>,

    /// Most decrypted keys cached in enclave memory; 0 turns the cache off (every request then
    /// calls KMS).
    #[arg(
        long,
        env = "NITRO_SIGNER_CACHE_MAX_ENTRIES",
        default_value_t = 100_000
    )]
    pub cache_max_entries: usize,

    /// Seconds a decrypted key stays cached after KMS returned it; 0 turns the cache off.
    #[arg(long, env = "NITRO_SIGNER_CACHE_TTL_SECS", default_value_t = 3600)]
    pub cache_ttl_secs: u64,

    /// Concurrent connections from the parent; more are closed on accept.
    #[arg(long, env = "NITRO_SIGNER_MAX_CONNECTIONS", default_value_t = 256)]
    pub max_connections: usize,

    /// Requests in flight per connection.
    #[arg(long, env = "NITRO_SIGNER_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// Requests in flight across all connections; past it, requests are answered `busy` at once.
    #[arg(long, env = "NITRO_SIGNER_MAX_IN_FLIGHT_TOTAL", default_value_t = 4096)]
    pub max_in_flight_total: usize,

    /// Milliseconds for a started frame to arrive, an answer to be written, or a hello to come.
    #[arg(long, env = "NITRO_SIGNER_IO_TIMEOUT_MS", default_value_t = 10_000)]
    pub io_timeout_ms: u64,

    /// On shutdown (SIGTERM), milliseconds the requests in flight get to finish and have their
    /// answers written before the remaining connections are closed.
    #[arg(long, env = "NITRO_SIGNER_DRAIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub drain_timeout_ms: u64,

    /// Milliseconds one KMS attempt may take before the SDK abandons it and retries with
    /// backoff (default 3000). Tests only: accepted only with --dangerous-simulated-nsm, so that
    /// fault tests can make a slow KMS fail fast; production always uses the default.
    #[arg(
        long,
        env = "NITRO_SIGNER_KMS_ATTEMPT_TIMEOUT_MS",
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub kms_attempt_timeout_ms: Option<u64>,

    /// Milliseconds a whole KMS operation, retries and backoff included, may take (default
    /// 8000). Tests only: accepted only with --dangerous-simulated-nsm, like
    /// --kms-attempt-timeout-ms.
    #[arg(
        long,
        env = "NITRO_SIGNER_KMS_OPERATION_TIMEOUT_MS",
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub kms_operation_timeout_ms: Option<u64>,
}

/// Time limit of one KMS attempt (the SDK retries failed attempts with backoff, three attempts
/// in all).
pub const KMS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Time limit of a whole KMS operation, retries and backoff included. Shorter than the parent
/// proxy's default request timeout (10 s), so that a slow KMS is reported as `kms_unavailable`
/// by the enclave rather than as the proxy's `enclave_timeout`, which would blame the enclave.
pub const KMS_OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

/// Why the enclave did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The NSM (or its simulator) is unusable.
    #[error(transparent)]
    Nsm(#[from] NsmError),
    /// The KMS recipient key could not be made.
    #[error(transparent)]
    Recipient(#[from] RecipientKeyError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: Address,
        /// Why.
        source: std::io::Error,
    },
    /// A configuration the enclave refuses to run with.
    #[error("{0}")]
    Config(&'static str),
    /// The KMS transport could not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The loopback interface (which the KMS transport listens on) could not be brought up.
    #[error(transparent)]
    Loopback(#[from] crate::loopback::LoopbackError),
}

/// Runs the enclave until `shutdown` completes.
///
/// Once listening, prints `listening on <address>` on standard output (logs go to standard
/// error), so that a supervisor knows it is ready.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let (nsm, simulated): (Arc<dyn Nsm>, bool) = match &args.dangerous_simulated_nsm {
        Some(dir) => {
            warn!(
                dir = %dir.display(),
                "SIMULATED NSM: attestation documents are signed by a local test root; not for production"
            );
            (
                Arc::new(SimulatedNsm::open(SimulatorConfig::new(dir))?),
                true,
            )
        }
        None => {
            // The KMS transport listens on 127.0.0.1; an enclave boots with `lo` down.
            let loopback = crate::loopback::ensure_up()?;
            info!(?loopback, "loopback interface up");
            (Arc::new(HardwareNsm::open()?), false)
        }
    };
    if args.kms_endpoint.is_some() && !simulated {
        // Without the pinned TLS of the vsock-proxy transport, the parent could answer for KMS
        // and choose the seeds this enclave uses.
        return Err(StartError::Config(
            "--kms-endpoint is for simulated mode only (with --dangerous-simulated-nsm)",
        ));
    }
    if (args.kms_attempt_timeout_ms.is_some() || args.kms_operation_timeout_ms.is_some())
        && !simulated
    {
        // Tests shorten them to exercise a slow KMS quickly; production keeps the defaults.
        return Err(StartError::Config(
            "--kms-attempt-timeout-ms and --kms-operation-timeout-ms are for tests in simulated \
             mode only (with --dangerous-simulated-nsm)",
        ));
    }
    // An empty value (e.g. an unset build argument in the image) means no generation key.
    let generation_key = args.kms_key_id.clone().filter(|key| !key.is_empty());
    if let Some(key) = &generation_key
        && !is_key_arn(key)
    {
        return Err(StartError::Config(
            "--kms-key-id must be a full key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID): a bare id or \
             alias would be resolved in whatever account the parent's credentials belong to",
        ));
    }
    // A fresh recipient key per start: KMS answers are readable only by this process.
    let recipient = RecipientKey::generate()?;
    // Simulated mode names the emulator's URL; production reaches the region's AWS endpoint over
    // TLS that ends here, through the parent's vsock-proxy. The transport lives as long as the
    // server.
    let (endpoint, http_client, _transport) = match args.kms_endpoint.clone() {
        Some(endpoint) => (endpoint, None, None),
        None => {
            let transport =
                KmsTransport::start(TransportSettings::for_region(&args.kms_region)?).await?;
            info!(
                endpoint = transport.endpoint_url(),
                "KMS through the parent's vsock-proxy"
            );
            (
                transport.endpoint_url().to_owned(),
                Some(transport.http_client()),
                Some(transport),
            )
        }
    };
    let kms = Kms::new(
        &KmsSettings {
            region: args.kms_region.clone(),
            endpoint: Some(endpoint),
            http_client,
            attempt_timeout: args
                .kms_attempt_timeout_ms
                .map_or(KMS_ATTEMPT_TIMEOUT, Duration::from_millis),
            operation_timeout: args
                .kms_operation_timeout_ms
                .map_or(KMS_OPERATION_TIMEOUT, Duration::from_millis),
        },
        Arc::clone(&nsm),
        recipient,
    );
    let enclave = Arc::new(Enclave::new(
        Settings {
            generation_key,
            simulated,
            cache: CacheLimits {
                max_entries: args.cache_max_entries,
                ttl: Duration::from_secs(args.cache_ttl_secs),
            },
        },
        nsm,
        kms,
    ));
    let listener = Listener::bind(&args.listen)
        .await
        .map_err(|source| StartError::Listen {
            address: args.listen.clone(),
            source,
        })?;
    let bound = listener
        .local_address()
        .map_err(|source| StartError::Listen {
            address: args.listen.clone(),
            source,
        })?;
    info!(address = %bound, simulated, "enclave listening");
    announce(&bound.to_string());
    let limits = ServerLimits {
        max_connections: args.max_connections,
        max_in_flight: args.max_in_flight.max(1),
        max_in_flight_total: args.max_in_flight_total.max(1),
        io_timeout: Duration::from_millis(args.io_timeout_ms),
        drain_timeout: Duration::from_millis(args.drain_timeout_ms),
        ..ServerLimits::default()
    };
    server::serve(listener, enclave, limits, shutdown).await;
    Ok(())
}

/// Prints the readiness line `listening on <address>` on standard output.
fn announce(address: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {address}");
    let _ = stdout.flush();
}
