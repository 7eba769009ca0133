//! The emulator's command line: what `nitro-signer-kms-emulator` (and `nitro-signer
//! kms-emulator`) run.
//!
//! Once listening, [`run`] prints exactly one line on standard output, `listening on
//! http://IP:PORT` with the bound address (so `--listen 127.0.0.1:0` works), for a supervisor to
//! wait for. Logs go to standard error.

use std::{future::Future, io::Write, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use nitro_signer_common::attestation::RootOfTrust;
use tokio::net::TcpListener;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::{
    server::{self, ServerLimits},
    service::{Kms, KmsConfig, KmsError},
    sigv4::Credentials,
};

/// Environment variable holding the secret access key callers sign with. Never a flag: the
/// command line of a process is visible to every user of the machine.
pub const SECRET_ACCESS_KEY_ENV: &str = "NITRO_SIGNER_KMS_SECRET_ACCESS_KEY";

/// Environment variable holding the session token callers must send, if any.
pub const SESSION_TOKEN_ENV: &str = "NITRO_SIGNER_KMS_SESSION_TOKEN";

const ENVIRONMENT_HELP: &str = "\
Credentials:
  The emulator serves only requests signed (AWS SigV4) with the credentials it is started with.
  The access key id comes from --access-key-id; the secret never comes from the command line:
    NITRO_SIGNER_KMS_SECRET_ACCESS_KEY  secret access key (required)
    NITRO_SIGNER_KMS_SESSION_TOKEN      session token that requests must carry (optional)

Readiness:
  Once listening, prints one line on standard output: `listening on http://IP:PORT`.
  Logs go to standard error; RUST_LOG sets their level (default: info).";

/// Options of the KMS emulator. Each can also be set through the environment variable shown by
/// `--help`; the secret access key can only be set through the environment.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = ENVIRONMENT_HELP)]
pub struct Args {
    /// Address to listen on. Port 0 picks a free port; the address actually bound is printed as
    /// `listening on http://IP:PORT` on standard output.
    #[arg(
        long,
        env = "NITRO_SIGNER_KMS_EMULATOR_LISTEN",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:4000"
    )]
    pub listen: String,

    /// Directory holding the emulator's keys, created owner-only if missing and reused on the
    /// next start (ciphertexts stay decryptable). The keys in it are the emulator's stand-in for
    /// an HSM: whoever reads it can decrypt everything encrypted under them.
    #[arg(
        long,
        env = "NITRO_SIGNER_KMS_EMULATOR_DATA_DIR",
        value_name = "PATH",
        default_value = ".nitro-signer/kms"
    )]
    pub data_dir: PathBuf,

    /// AWS region the emulator serves: it appears in key ARNs, and callers must sign their
    /// requests (SigV4) for it. A data directory keeps the region its keys were created in.
    #[arg(long, env = "NITRO_SIGNER_KMS_REGION", value_name = "REGION", default_value_t = KmsConfig::default().region)]
    pub region: String,

    /// AWS account id (12 digits) in key ARNs. A data directory keeps the account its keys
    /// were created in.
    #[arg(
        long,
        env = "NITRO_SIGNER_KMS_EMULATOR_ACCOUNT_ID",
        value_name = "ID",
        default_value_t = KmsConfig::default().account_id
    )]
    pub account_id: String,

    /// Access key id that callers must sign their requests with. The matching secret access
    /// key is read only from the environment variable NITRO_SIGNER_KMS_SECRET_ACCESS_KEY, and
    /// an optional session token from NITRO_SIGNER_KMS_SESSION_TOKEN.
    #[arg(long, env = "NITRO_SIGNER_KMS_ACCESS_KEY_ID", value_name = "ID")]
    pub access_key_id: String,

    /// DANGEROUS, development and tests only: trust attestation documents (in `Recipient`
    /// parameters) whose chain ends in the root certificate with this SHA-256 (64 hex digits),
    /// the NSM simulator's, instead of the AWS Nitro Enclaves root. Such documents come from no
    /// hardware at all.
    #[arg(
        long,
        env = "NITRO_SIGNER_KMS_EMULATOR_DANGEROUS_ATTESTATION_ROOT_SHA256",
        value_name = "HEX",
        value_parser = parse_sha256
    )]
    pub dangerous_attestation_root_sha256: Option<[u8; 32]>,

    /// Connections served at once; further clients wait until one closes.
    #[arg(
        long,
        env = "NITRO_SIGNER_KMS_EMULATOR_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = ServerLimits::default().max_connections,
        value_parser = clap::value_parser!(usize)
    )]
    pub max_connections: usize,

    /// Milliseconds for a request's headers to arrive; idle keep-alive connections are closed
    /// after it too.
    #[arg(
        long,
        env = "NITRO_SIGNER_KMS_EMULATOR_HEADER_READ_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = millis(ServerLimits::default().header_read_timeout),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub header_read_timeout_ms: u64,

    /// Milliseconds from a request's headers to its answer, body included.
    #[arg(
        long,
        env = "NITRO_SIGNER_KMS_EMULATOR_REQUEST_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = millis(ServerLimits::default().request_timeout),
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub request_timeout_ms: u64,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn parse_sha256(text: &str) -> Result<[u8; 32], String> {
    let mut fingerprint = [0u8; 32];
    hex::decode_to_slice(text, &mut fingerprint)
        .map_err(|_| "expected a SHA-256 as 64 hexadecimal digits".to_owned())?;
    Ok(fingerprint)
}

/// Why the emulator did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The credentials callers sign with are missing or unusable.
    #[error("{0}")]
    Credentials(String),
    /// The region or account id is malformed.
    #[error("invalid configuration: {0}")]
    Config(KmsError),
    /// The data directory could not be opened or holds unusable keys.
    #[error("cannot open the emulator's data directory {}: {source}", dir.display())]
    Open {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        source: KmsError,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address asked for.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The credentials from `--access-key-id` and the environment.
fn credentials(access_key_id: &str) -> Result<Credentials, RunError> {
    if access_key_id.is_empty() || !access_key_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RunError::Credentials(
            "--access-key-id (or NITRO_SIGNER_KMS_ACCESS_KEY_ID) must be a non-empty access key \
             id of printable ASCII"
                .into(),
        ));
    }
    let secret = match std::env::var(SECRET_ACCESS_KEY_ENV) {
        Ok(secret) if !secret.is_empty() => Zeroizing::new(secret),
        Ok(_) | Err(std::env::VarError::NotPresent) => {
            return Err(RunError::Credentials(format!(
                "{SECRET_ACCESS_KEY_ENV} is not set: the emulator needs the secret access key \
                 that callers sign their requests with, and reads it only from this environment \
                 variable (never from the command line)"
            )));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(RunError::Credentials(format!(
                "{SECRET_ACCESS_KEY_ENV} is not valid UTF-8"
            )));
        }
    };
    let session_token = match std::env::var(SESSION_TOKEN_ENV) {
        Ok(token) if !token.is_empty() => Some(token),
        Ok(_) | Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(RunError::Credentials(format!(
                "{SESSION_TOKEN_ENV} is not valid UTF-8"
            )));
        }
    };
    Ok(Credentials {
        access_key_id: access_key_id.to_owned(),
        secret_access_key: secret,
        session_token,
    })
}

/// Runs the emulator until `shutdown` completes, then lets requests in flight finish.
///
/// Once listening, prints `listening on http://IP:PORT` (the bound address) on standard output
/// and flushes it, so that a supervisor knows it is ready; logs go to standard error through
/// `tracing`.
pub async fn run(
    args: Args,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let credentials = credentials(&args.access_key_id)?;
    let config = KmsConfig {
        region: args.region.clone(),
        account_id: args.account_id.clone(),
        principal: None,
    };
    config.validate().map_err(RunError::Config)?;
    let root = match args.dangerous_attestation_root_sha256 {
        Some(fingerprint) => {
            warn!(
                root_sha256 = %hex::encode(fingerprint),
                "DANGEROUS: trusting a simulated attestation root instead of AWS Nitro's; \
                 Recipient attestation documents from no hardware at all are accepted. \
                 Development and tests only"
            );
            RootOfTrust::dangerous_simulated(fingerprint)
        }
        None => RootOfTrust::aws_nitro(),
    };
    let kms = Kms::open_with(&args.data_dir, root, config).map_err(|source| RunError::Open {
        dir: args.data_dir.clone(),
        source,
    })?;
    let listen_error = |source| RunError::Listen {
        address: args.listen.clone(),
        source,
    };
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    info!(
        address = %bound,
        data_dir = %args.data_dir.display(),
        region = %args.region,
        account_id = %args.account_id,
        access_key_id = %args.access_key_id,
        session_token = credentials.session_token.is_some(),
        simulated_attestation_root = root.is_simulated(),
        "KMS emulator listening"
    );
    announce(bound);
    let limits = ServerLimits {
        max_connections: args.max_connections,
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        ..ServerLimits::default()
    };
    server::serve(listener, Arc::new(kms), credentials, limits, shutdown).await;
    info!("KMS emulator stopped");
    Ok(())
}

/// Prints the readiness line on standard output.
fn announce(address: SocketAddr) {
    let mut stdout = std::io::stdout().lock();
    // Nothing to do if nobody reads it: the supervisor, if any, will notice on its own.
    let _ = writeln!(stdout, "listening on http://{address}");
    let _ = stdout.flush();
}
