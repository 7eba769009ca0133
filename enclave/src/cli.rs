//! The enclave's command line: what `nitro-signer-enclave` (and `nitro-signer enclave`) run.

use std::{collections::BTreeSet, future::Future, io::Write, sync::Arc, time::Duration};

use aws_sdk_kms::config::SharedHttpClient;

use nitro_signer_common::transport::{Address, Listener};
use tracing::{info, warn};

use crate::{
    cache::CacheLimits,
    kms::{
        Kms, KmsSettings, is_key_arn,
        transport::{KmsTransport, TransportError, TransportSettings},
    },
    limits,
    nsm::{HardwareNsm, Nsm, NsmError},
    receipts::ReceiptSigner,
    recipient::{RecipientKey, RecipientKeyError},
    server::{self, ServerLimits},
    service::{Enclave, Settings},
};

/// Options of the enclave process. Each can also be set through the environment variable shown
/// by `--help`, which also shows the memory budget the limits' defaults come from
/// ([`crate::limits`]).
#[derive(Debug, Clone, clap::Args)]
#[command(after_long_help = limits::budget_help())]
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

    /// KMS key ARN that new keys are generated under (a full ARN: bare ids and aliases are
    /// refused). Without it, key generation is refused; signing with existing blobs works either
    /// way.
    #[arg(long, env = "NITRO_SIGNER_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,

    /// Further KMS key ARNs whose blobs this enclave uses (e.g. keys that imported secrets are
    /// encrypted under), comma-separated full ARNs. The generation key (`--kms-key-id`) is always
    /// allowed. A blob under any other key is refused before any KMS call: the parent cannot
    /// hand the enclave a blob it encrypted under a key of its own. Set it in the image
    /// (`Dockerfile.enclave`), so that it is measured.
    #[arg(
        long,
        env = "NITRO_SIGNER_ALLOWED_KMS_KEYS",
        value_delimiter = ',',
        value_name = "ARN"
    )]
    pub allowed_kms_keys: Vec<String>,

    /// Refuse key blobs that carry no policy document (and the creation of such keys): a blob
    /// of opt-ins lets whoever holds it sign anything its opt-ins allow. On by default and in
    /// the production image (`Dockerfile.enclave`, so that it is measured); `nitro-signer dev`
    /// turns it off.
    #[arg(
        long,
        env = "NITRO_SIGNER_REQUIRE_POLICY",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub require_policy: bool,

    /// Most decrypted keys cached in enclave memory; 0 turns the cache off (every request then
    /// calls KMS).
    #[arg(
        long,
        env = "NITRO_SIGNER_CACHE_MAX_ENTRIES",
        default_value_t = limits::CACHE_MAX_ENTRIES
    )]
    pub cache_max_entries: usize,

    /// Seconds a decrypted key stays cached after KMS returned it; 0 turns the cache off. Also
    /// how long a revocation at KMS (key policy, disabled key) can take to reach a cached key.
    #[arg(
        long,
        env = "NITRO_SIGNER_CACHE_TTL_SECS",
        default_value_t = limits::CACHE_TTL.as_secs()
    )]
    pub cache_ttl_secs: u64,

    /// Concurrent connections from the parent. When all are taken, a new one gets the slot of the
    /// connection idle the longest (one with a request in flight is never closed for it). Each
    /// can hold about three frames (6 MiB) at worst: see the memory budget below.
    #[arg(
        long,
        env = "NITRO_SIGNER_MAX_CONNECTIONS",
        default_value_t = limits::MAX_CONNECTIONS
    )]
    pub max_connections: usize,

    /// Requests in flight per connection (by default half the enclave-wide limit).
    #[arg(
        long,
        env = "NITRO_SIGNER_MAX_IN_FLIGHT",
        default_value_t = limits::MAX_IN_FLIGHT
    )]
    pub max_in_flight: usize,

    /// Requests in flight across all connections; past it, requests are answered `busy` at once.
    /// Each can hold about two frames (4 MiB) at worst: see the memory budget below.
    #[arg(
        long,
        env = "NITRO_SIGNER_MAX_IN_FLIGHT_TOTAL",
        default_value_t = limits::MAX_IN_FLIGHT_TOTAL
    )]
    pub max_in_flight_total: usize,

    /// Milliseconds for a started frame to arrive, an answer to be written, or a hello to come.
    #[arg(
        long,
        env = "NITRO_SIGNER_IO_TIMEOUT_MS",
        default_value_t = millis(limits::IO_TIMEOUT)
    )]
    pub io_timeout_ms: u64,

    /// Milliseconds a connection may stay idle (no request read, none in flight) before it is
    /// closed. The proxy's pool keeps its connections alive with a request every 15 s.
    #[arg(
        long,
        env = "NITRO_SIGNER_IDLE_TIMEOUT_MS",
        default_value_t = millis(limits::IDLE_TIMEOUT)
    )]
    pub idle_timeout_ms: u64,

    /// On shutdown (SIGTERM), milliseconds the requests in flight get to finish and have their
    /// answers written before the remaining connections are closed.
    #[arg(
        long,
        env = "NITRO_SIGNER_DRAIN_TIMEOUT_MS",
        default_value_t = millis(limits::DRAIN_TIMEOUT)
    )]
    pub drain_timeout_ms: u64,

    /// Answer without receipts: only to measure what receipts cost (`nitro-signer dev
    /// --bench-without-receipts`); only in builds with the `simulated` feature, never in the
    /// production image. Back ends that verify receipts refuse such answers.
    #[cfg(feature = "simulated")]
    #[arg(long, hide = true)]
    pub dangerous_without_receipts: bool,

    /// Simulated mode's options: only in builds with the `simulated` feature (`nitro-signer dev`,
    /// tests), never in the production image.
    #[cfg(feature = "simulated")]
    #[command(flatten)]
    pub simulated: crate::simulated::SimulatedArgs,
}

pub use crate::limits::{KMS_ATTEMPT_TIMEOUT, KMS_OPERATION_TIMEOUT};

/// `duration` in whole milliseconds, for the options' defaults.
const fn millis(duration: Duration) -> u64 {
    duration.as_millis() as u64
}

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
    let mut allowed_kms_keys: BTreeSet<String> = args
        .allowed_kms_keys
        .iter()
        .filter(|key| !key.is_empty())
        .cloned()
        .collect();
    if allowed_kms_keys.iter().any(|key| !is_key_arn(key)) {
        return Err(StartError::Config(
            "--allowed-kms-keys takes full key ARNs (arn:aws:kms:REGION:ACCOUNT:key/ID) only",
        ));
    }
    allowed_kms_keys.extend(generation_key.clone());
    if allowed_kms_keys.is_empty() {
        warn!(
            "no KMS key is allowed (--kms-key-id, --allowed-kms-keys): every key blob is refused"
        );
    }
    #[cfg(feature = "simulated")]
    let simulated = args.simulated.platform(&args.kms_region).await?;
    #[cfg(not(feature = "simulated"))]
    let simulated = None;
    let platform = match simulated {
        Some(platform) => platform,
        None => Platform::production(&args.kms_region).await?,
    };
    let simulated = platform.simulated;
    // A fresh recipient key per start: KMS answers are readable only by this process.
    let recipient = RecipientKey::generate()?;
    let kms = Kms::new(
        &KmsSettings {
            region: args.kms_region.clone(),
            endpoint: Some(platform.kms.endpoint.clone()),
            http_client: platform.kms.http_client.clone(),
            attempt_timeout: platform.kms_timeouts.attempt,
            operation_timeout: platform.kms_timeouts.operation,
        },
        Arc::clone(&platform.nsm),
        recipient,
    );
    #[cfg(feature = "simulated")]
    let without_receipts = args.dangerous_without_receipts;
    #[cfg(not(feature = "simulated"))]
    let without_receipts = false;
    let receipts = if without_receipts {
        warn!("receipts are off (--dangerous-without-receipts): for benchmarks only");
        None
    } else {
        Some(ReceiptSigner::generate(platform.nsm.as_ref())?)
    };
    let enclave = Arc::new(Enclave::new(
        Settings {
            generation_key,
            allowed_kms_keys,
            simulated,
            require_policy: args.require_policy,
            cache: CacheLimits {
                max_entries: args.cache_max_entries,
                ttl: Duration::from_secs(args.cache_ttl_secs),
            },
        },
        Arc::clone(&platform.nsm),
        kms,
        receipts,
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
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        drain_timeout: Duration::from_millis(args.drain_timeout_ms),
        ..ServerLimits::default()
    };
    server::serve(listener, enclave, limits, shutdown).await;
    // The KMS transport (in `platform`) lives as long as the server.
    drop(platform);
    Ok(())
}

/// What the enclave gets from where it runs: the NSM and the way to KMS. Production and
/// simulated mode differ only in this; everything [`run`] builds from it is the same code.
#[derive(Debug)]
pub(crate) struct Platform {
    /// `/dev/nsm`, or the simulator.
    pub(crate) nsm: Arc<dyn Nsm>,
    /// Where the KMS client connects.
    pub(crate) kms: KmsRoute,
    /// KMS's time limits.
    pub(crate) kms_timeouts: KmsTimeouts,
    /// Whether the NSM is the simulator (reported to clients).
    pub(crate) simulated: bool,
}

impl Platform {
    /// Production mode: the loopback interface up, `/dev/nsm`, and KMS through the parent's
    /// vsock-proxy with TLS ending here.
    async fn production(region: &str) -> Result<Self, StartError> {
        // The KMS transport listens on 127.0.0.1; an enclave boots with `lo` down.
        let loopback = crate::loopback::ensure_up()?;
        info!(?loopback, "loopback interface up");
        let nsm = Arc::new(HardwareNsm::open()?);
        Ok(Self {
            nsm,
            kms: KmsRoute::through_vsock_proxy(region).await?,
            kms_timeouts: KmsTimeouts::default(),
            simulated: false,
        })
    }
}

/// Where the KMS client connects, and through what.
#[derive(Debug)]
pub(crate) struct KmsRoute {
    /// The SDK's endpoint URL.
    pub(crate) endpoint: String,
    /// The SDK's HTTP client; `None` for its default one.
    pub(crate) http_client: Option<SharedHttpClient>,
    /// The forwarder behind `http_client`, stopped when dropped.
    pub(crate) _transport: Option<KmsTransport>,
}

impl KmsRoute {
    /// The region's AWS KMS endpoint, over TLS that ends inside the enclave, through the
    /// parent's vsock-proxy.
    pub(crate) async fn through_vsock_proxy(region: &str) -> Result<Self, StartError> {
        let transport = KmsTransport::start(TransportSettings::for_region(region)?).await?;
        info!(
            endpoint = transport.endpoint_url(),
            "KMS through the parent's vsock-proxy"
        );
        Ok(Self {
            endpoint: transport.endpoint_url().to_owned(),
            http_client: Some(transport.http_client()),
            _transport: Some(transport),
        })
    }
}

/// KMS's time limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KmsTimeouts {
    /// One attempt.
    pub(crate) attempt: Duration,
    /// A whole operation, retries and backoff included.
    pub(crate) operation: Duration,
}

impl Default for KmsTimeouts {
    fn default() -> Self {
        Self {
            attempt: KMS_ATTEMPT_TIMEOUT,
            operation: KMS_OPERATION_TIMEOUT,
        }
    }
}

/// Prints the readiness line `listening on <address>` on standard output.
fn announce(address: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {address}");
    let _ = stdout.flush();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        args: Args,
    }

    /// Simulated mode's options exist only with the `simulated` feature: the production binary
    /// refuses them as unknown.
    #[test]
    fn simulated_mode_options_exist_only_with_the_feature() {
        for option in [
            "--dangerous-simulated-nsm=/tmp/nsm",
            "--kms-endpoint=http://127.0.0.1:4000",
            "--kms-attempt-timeout-ms=100",
            "--kms-operation-timeout-ms=100",
        ] {
            let parsed = Command::try_parse_from(["enclave", option]);
            if cfg!(feature = "simulated") {
                assert!(parsed.is_ok(), "{option}: {parsed:?}");
            } else {
                let error = parsed.unwrap_err();
                assert_eq!(
                    error.kind(),
                    clap::error::ErrorKind::UnknownArgument,
                    "{option}"
                );
            }
        }
    }
}
