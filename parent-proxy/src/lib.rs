#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - `lib.rs`: [`Args`] (the command line, shared with `nitro-signer proxy`), [`Server`] and
//!   [`run`].
//! - `routes.rs`: the HTTP endpoints and the request middleware (request id, span, limits,
//!   metrics).
//! - `auth.rs`: who may call the API (per-tenant API keys, `--tenants`) and with which key
//!   blobs (their owner labels).
//! - `guard.rs`: what a web browser could send is refused (`Host`, `Origin`, `Content-Type`
//!   checks, `--allowed-hosts`, `--allowed-origins`), before authentication.
//! - `extract.rs`: strict, bounded JSON bodies whose errors name the field, checked against the
//!   caller.
//! - `error.rs`: every failure as `{"error": {"code", "message"}}` with its HTTP status.
//! - `metrics.rs`: Prometheus metrics.
//! - `credentials.rs`: AWS credentials from the standard chain, pushed to the enclave before they
//!   expire, and again at once (rate-limited) when the enclave answers `no_credentials`.
//! - `rpc/`: the Ethereum JSON-RPC endpoint (`POST /`): the accounts directory, the signing
//!   methods, `eth_sendTransaction` with an upstream node, and everything else passed to it.
//! - `audit.rs`: the audit log (`--audit-log`): every receipt, in sequence order per boot, with
//!   the boots' attestation documents, appended to a rotated JSON-lines file.
//!
//! The API's JSON types live in the `nitro-signer-api` crate (`api/`), shared with the Rust client; the
//! connection pool to the enclave is `nitro_signer_client::EnclaveClient`.

mod audit;
mod auth;
mod credentials;
mod error;
mod extract;
mod guard;
mod metrics;
mod routes;
mod rpc;

use std::{
    io::{self, Read as _, Write as _},
    net::SocketAddr,
    num::{NonZeroU64, NonZeroUsize},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use nitro_signer_client::{EnclaveClient, EnclaveConfig};
use nitro_signer_common::{
    tenants::{self, Tenants, TenantsError},
    transport::Address,
};
use nitro_signer_http_server::ServerLimits;
use tokio::{net::TcpListener, sync::Semaphore, task::JoinHandle};
use tracing::{info, warn};

/// The parent proxy's options. Every option also reads a `NITRO_SIGNER_PROXY_*` environment
/// variable.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct Args {
    /// HTTP address to listen on (HOST:PORT; port 0 picks a free port). Once bound, the proxy
    /// prints `listening on http://IP:PORT` on standard output.
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "HOST:PORT"
    )]
    pub listen: String,

    /// The enclave's address: vsock://CID:PORT in production; tcp://HOST:PORT or unix:///PATH in
    /// simulated mode.
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_ENCLAVE",
        default_value = "vsock://16:5000",
        value_name = "ADDRESS"
    )]
    pub enclave: Address,

    /// Connections kept open to the enclave; each carries many requests at once.
    #[arg(long, env = "NITRO_SIGNER_PROXY_CONNECTIONS", default_value = "4")]
    pub connections: NonZeroUsize,

    /// Longest wait for the enclave's answer to one request, in milliseconds (answered with 504
    /// enclave_timeout).
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_REQUEST_TIMEOUT_MS",
        default_value = "10000"
    )]
    pub request_timeout_ms: NonZeroU64,

    /// Largest request body, in bytes (answered with 413 payload_too_large).
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_MAX_BODY_BYTES",
        default_value = "1048576"
    )]
    pub max_body_bytes: NonZeroUsize,

    /// Most HTTP requests handled at once; more are answered at once with 503 overloaded.
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_MAX_CONCURRENCY",
        default_value = "1024"
    )]
    pub max_concurrency: NonZeroUsize,

    /// Most HTTP connections open at once; further clients wait (in the listen backlog) until
    /// one closes. Connections that have not yet sent a whole request head hold at most three
    /// quarters of them; under pressure, such a connection is closed after 1 s (slowloris; see
    /// `nitro_signer_http_server`).
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_MAX_CONNECTIONS",
        default_value = "1024"
    )]
    pub max_connections: NonZeroUsize,

    /// Longest wait for a request's headers, in milliseconds, from the start of a connection or
    /// the end of the previous answer; the connection is then closed (idle keep-alive
    /// connections too).
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_HEADER_READ_TIMEOUT_MS",
        default_value = "10000"
    )]
    pub header_read_timeout_ms: NonZeroU64,

    /// Do not read AWS credentials (environment, profile, IMDSv2) or send them to the enclave;
    /// KMS operations then fail with no_credentials unless the enclave has credentials already.
    #[arg(long, env = "NITRO_SIGNER_PROXY_NO_AWS_CREDENTIALS")]
    pub no_aws_credentials: bool,

    /// The tenants file (JSON; `nitro-signer tenants add` writes it): the SHA-256 digests of the
    /// API keys callers send as `Authorization: Bearer <key>`, and the key blob owner labels
    /// each may use. Read at start. The proxy needs this or --no-auth.
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_TENANTS",
        value_name = "FILE",
        conflicts_with = "no_auth"
    )]
    pub tenants: Option<PathBuf>,

    /// Serve the API without authentication: anyone who can reach the port can use every key
    /// blob they hold. For local development (`nitro-signer dev`) only.
    #[arg(long, env = "NITRO_SIGNER_PROXY_NO_AUTH")]
    pub no_auth: bool,
    /// Append every receipt the enclave returns, with the attestation documents of its boots,
    /// to this JSON-lines file (created with mode 0600; appended to when it exists; its
    /// directory must exist). Check it with `nitro-signer audit check`. Off when absent.
    #[arg(long, env = "NITRO_SIGNER_PROXY_AUDIT_LOG", value_name = "PATH")]
    pub audit_log: Option<PathBuf>,

    /// Size at which the audit log is rotated: renamed to PATH.YYYYMMDDTHHMMSSZ (UTC; names
    /// sort in time order) and started again. Rotated files are never deleted.
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_AUDIT_LOG_MAX_BYTES",
        default_value = "268435456",
        value_name = "BYTES"
    )]
    pub audit_log_max_bytes: NonZeroU64,

    /// Host names clients reach the proxy by (comma-separated HOST or HOST:PORT; HOST alone
    /// matches any port). IP addresses and `localhost` are always accepted; a request whose
    /// `Host` is anything else is refused with 421 host_not_allowed, so that a web page cannot
    /// reach the proxy through DNS rebinding. Set it to the names back ends use (a load
    /// balancer's DNS name, an internal name).
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "HOST[:PORT],..."
    )]
    pub allowed_hosts: Vec<String>,

    /// Web origins (comma-separated scheme://host[:port]) whose pages may call the proxy.
    /// Requests that carry any other `Origin` header are refused with 403 origin_not_allowed.
    /// None by default: back ends send no `Origin`.
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN,..."
    )]
    pub allowed_origins: Vec<String>,

    /// The Ethereum node (http://HOST:PORT/…) the JSON-RPC endpoint (`POST /`) sends
    /// `eth_sendTransaction`'s signed transactions to, fills in what callers leave out from
    /// (nonce, gas, fees, chain id), and passes every other method to. Without it, only the
    /// signing methods are answered.
    #[arg(long, env = "NITRO_SIGNER_PROXY_UPSTREAM", value_name = "URL")]
    pub upstream: Option<String>,

    /// Pass every JSON-RPC method the signer does not answer to the upstream node. By default
    /// only the standard `eth_*`, `net_*` and `web3_*` methods are: callers have no business
    /// with a node's `admin_*`, `debug_*`, `miner_*` or `txpool_*` methods.
    #[arg(long, env = "NITRO_SIGNER_PROXY_UPSTREAM_ALL_METHODS")]
    pub upstream_all_methods: bool,

    /// Longest wait for one answer of the upstream node, in milliseconds.
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_UPSTREAM_TIMEOUT_MS",
        default_value = "10000"
    )]
    pub upstream_timeout_ms: NonZeroU64,

    /// The most a transaction signed through the JSON-RPC endpoint may cost in fees, in wei
    /// (`gas` × `maxFeePerGas` or `gasPrice`), as geth's `--rpc.txfeecap`: a guard against fees
    /// a caller or the upstream node got wrong. 0: no cap. (A key's policy `feeMax` is the bound
    /// the enclave enforces.)
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_TX_FEE_CAP_WEI",
        default_value = "1000000000000000000",
        value_name = "WEI"
    )]
    pub tx_fee_cap_wei: u128,

    /// The accounts the JSON-RPC endpoint serves: a directory of `ADDRESS.json` files
    /// (`nitro-signer accounts add` writes them), read at start, on SIGHUP and on
    /// `POST /reload`. Without it, the endpoint serves no account.
    #[arg(long, env = "NITRO_SIGNER_PROXY_ACCOUNTS_DIR", value_name = "DIR")]
    pub accounts_dir: Option<PathBuf>,
}

impl Args {
    /// The defaults, with `enclave` as the enclave's address. Set `tenants` or `no_auth`
    /// before binding: the proxy refuses to start without a choice.
    pub fn new(enclave: Address) -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            enclave,
            connections: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
            request_timeout_ms: NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN),
            max_body_bytes: NonZeroUsize::new(1 << 20).unwrap_or(NonZeroUsize::MIN),
            max_concurrency: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            max_connections: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            header_read_timeout_ms: NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN),
            no_aws_credentials: false,
            tenants: None,
            no_auth: false,
            audit_log: None,
            audit_log_max_bytes: NonZeroU64::new(256 << 20).unwrap_or(NonZeroU64::MIN),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            upstream: None,
            upstream_all_methods: false,
            tx_fee_cap_wei: 1_000_000_000_000_000_000,
            upstream_timeout_ms: NonZeroU64::new(10_000).unwrap_or(NonZeroU64::MIN),
            accounts_dir: None,
        }
    }
}

/// Why the proxy could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The HTTP address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The `--listen` value.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// Neither `--tenants` nor `--no-auth`, or both.
    #[error(
        "choose how callers authenticate: --tenants FILE (per-tenant API keys, see \
         docs/deploy.md) or --no-auth (anyone who reaches the port may use any key blob; local \
         development only)"
    )]
    NoAuthChoice,
    /// The tenants file could not be read.
    #[error("cannot read the tenants file {path}: {source}")]
    TenantsRead {
        /// The `--tenants` value.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The audit log could not be opened.
    #[error("cannot open the audit log {path}: {source}")]
    AuditLog {
        /// The `--audit-log` value.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// An `--allowed-hosts` entry is not HOST or HOST:PORT.
    #[error("invalid --allowed-hosts entry {0:?}: expected HOST or HOST:PORT")]
    AllowedHosts(String),
    /// The `--upstream` URL cannot be used.
    #[error(transparent)]
    Upstream(#[from] rpc::UpstreamUrlError),
    /// The tenants file is not valid.
    #[error("{path}: {source}")]
    TenantsInvalid {
        /// The `--tenants` value.
        path: PathBuf,
        /// Why.
        source: TenantsError,
    },
}

/// Reads and checks a tenants file.
fn load_tenants(path: &Path) -> Result<Tenants, ProxyError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(tenants::MAX_FILE_LEN as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|source| ProxyError::TenantsRead {
            path: path.to_owned(),
            source,
        })?;
    Tenants::parse(&bytes).map_err(|source| ProxyError::TenantsInvalid {
        path: path.to_owned(),
        source,
    })
}

/// A bound proxy, not yet serving. [`run`] is `bind`, the readiness line, then `serve`; tests
/// and embedders can use the parts.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    client: EnclaveClient,
    args: Args,
    credentials: Option<(credentials::Refresher, Duration)>,
    auth: auth::Auth,
    guard: guard::Guard,
    audit: Option<audit::Opened>,
    upstream: Option<rpc::Upstream>,
    /// SIGHUP, listened for from the start (before the readiness line) so that a reload signal
    /// never finds the default action (exit) in place.
    hangups: Option<tokio::signal::unix::Signal>,
}

impl Server {
    /// Reads the tenants file (unless `--no-auth`), binds the HTTP listener and starts the
    /// enclave connection pool (which connects in the background). Must be called inside a
    /// Tokio runtime.
    pub async fn bind(args: Args) -> Result<Self, ProxyError> {
        let auth = match (&args.tenants, args.no_auth) {
            (Some(path), false) => auth::Auth::Tenants(load_tenants(path)?),
            (None, true) => auth::Auth::Off,
            _ => return Err(ProxyError::NoAuthChoice),
        };
        let guard = guard::Guard::new(&args.allowed_hosts, &args.allowed_origins)
            .map_err(|guard::InvalidHost(entry)| ProxyError::AllowedHosts(entry))?;
        let upstream = args
            .upstream
            .as_deref()
            .map(|url| {
                rpc::Upstream::new(url, Duration::from_millis(args.upstream_timeout_ms.get()))
            })
            .transpose()?;
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .inspect_err(|error| warn!(%error, "cannot listen for SIGHUP"))
            .ok();
        let bind_error = |source| ProxyError::Bind {
            address: args.listen.clone(),
            source,
        };
        let listener = TcpListener::bind(&args.listen).await.map_err(bind_error)?;
        let audit = match &args.audit_log {
            Some(path) => Some(
                audit::Opened::open(path, args.audit_log_max_bytes.get()).map_err(|source| {
                    ProxyError::AuditLog {
                        path: path.clone(),
                        source,
                    }
                })?,
            ),
            None => None,
        };
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let mut config = EnclaveConfig::new(args.enclave.clone());
        config.connections = args.connections.get();
        config.request_timeout = Duration::from_millis(args.request_timeout_ms.get());
        config.client_name = concat!("nitro-signer-proxy ", env!("CARGO_PKG_VERSION")).to_owned();
        let client = EnclaveClient::new(config);
        // Credentials are fetched (and sent to the enclave once it is connected) before the
        // proxy reports itself ready, so that its first requests do not fail with no_credentials.
        let credentials = if args.no_aws_credentials {
            info!("not loading AWS credentials (--no-aws-credentials)");
            None
        } else {
            let _ = client.wait_until_live(Duration::from_secs(5)).await;
            let mut refresher = credentials::Refresher::new(client.clone()).await;
            let wait = refresher.refresh_once().await;
            Some((refresher, wait))
        };
        Ok(Self {
            listener,
            local_addr,
            client,
            args,
            credentials,
            auth,
            guard,
            audit,
            upstream,
            hangups,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The enclave client the proxy uses.
    pub fn enclave_client(&self) -> &EnclaveClient {
        &self.client
    }

    /// Serves HTTP until `shutdown` completes, then finishes the requests in progress (within
    /// the request timeout and a write-stall allowance) and returns.
    ///
    /// Connections are capped at `--max-connections` and must send each request's headers
    /// within `--header-read-timeout-ms`; see `nitro_signer_http_server` for every limit.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ProxyError> {
        let Self {
            listener,
            local_addr,
            client,
            args,
            credentials,
            auth,
            guard,
            audit,
            upstream,
            hangups,
        } = self;
        let kick = credentials
            .as_ref()
            .map(|(refresher, _)| refresher.kick_handle());
        let credentials: Option<JoinHandle<()>> =
            credentials.map(|(refresher, first_wait)| tokio::spawn(refresher.run(first_wait)));
        let request_timeout = Duration::from_millis(args.request_timeout_ms.get());
        let limits = ServerLimits {
            max_connections: args.max_connections.get(),
            header_read_timeout: Duration::from_millis(args.header_read_timeout_ms.get()),
            // What `routes` enforces; here it bounds the shutdown drain.
            request_timeout: routes::request_limit(request_timeout),
            max_body_bytes: args.max_body_bytes.get(),
            ..ServerLimits::default()
        };
        let (audit, audit_task) = match audit {
            Some(opened) => {
                let (log, task) = opened.start(client.clone());
                (Some(log), Some(task))
            }
            None => (None, None),
        };
        let state = Arc::new(routes::AppState {
            audit,
            client,
            metrics: metrics::Metrics::new(),
            concurrency: Arc::new(Semaphore::new(args.max_concurrency.get())),
            max_body: args.max_body_bytes.get(),
            request_timeout,
            request_ids: routes::RequestIds::new(),
            auth,
            guard,
            credentials: kick,
            rpc: rpc::Rpc {
                accounts: rpc::Accounts::new(args.accounts_dir.clone()),
                upstream,
                nonces: rpc::Nonces::default(),
                chain_id: tokio::sync::OnceCell::new(),
                fee_cap: args.tx_fee_cap_wei,
                pass_all_methods: args.upstream_all_methods,
            },
        });
        let accounts = tokio::spawn(rpc::keep_accounts(Arc::clone(&state), hangups));
        match &state.auth {
            auth::Auth::Tenants(tenants) => info!(
                tenants = tenants.len(),
                "callers authenticate with API keys (--tenants)"
            ),
            auth::Auth::Off => warn!(
                "authentication is off (--no-auth): anyone who can reach {local_addr} can use \
                 every key blob they hold"
            ),
        }
        info!(
            listen = %local_addr,
            enclave = %args.enclave,
            connections = args.connections.get(),
            request_timeout_ms = args.request_timeout_ms.get(),
            max_body_bytes = args.max_body_bytes.get(),
            max_concurrency = args.max_concurrency.get(),
            max_connections = args.max_connections.get(),
            header_read_timeout_ms = args.header_read_timeout_ms.get(),
            audit_log = args.audit_log.as_ref().map(|p| p.display().to_string()),
            upstream = state.rpc.upstream.as_ref().map(rpc::Upstream::display),
            accounts_dir = args.accounts_dir.as_ref().map(|p| p.display().to_string()),
            "proxy serving"
        );
        nitro_signer_http_server::serve(listener, routes::router(state), limits, shutdown).await;
        if let Some(task) = credentials {
            task.abort();
        }
        accounts.abort();
        // After the last request: every receipt is queued; write what is held.
        if let Some(task) = audit_task {
            task.close().await;
        }
        info!("proxy stopped");
        Ok(())
    }
}

/// Runs the proxy until `shutdown` completes.
///
/// Readiness contract: once the HTTP listener is bound, exactly one line
/// `listening on http://IP:PORT` (the bound address) is printed on standard output and flushed.
/// Logs go to standard error.
pub async fn run(
    args: Args,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProxyError> {
    let server = Server::bind(args).await?;
    let mut stdout = io::stdout().lock();
    if let Err(error) = writeln!(stdout, "listening on http://{}", server.local_addr())
        .and_then(|()| stdout.flush())
    {
        warn!(%error, "cannot write the readiness line on standard output");
    }
    drop(stdout);
    server.serve(shutdown).await
}
