//! `nitro-signer bench`: a load generator for the HTTP API.
//!
//! It drives `POST /v1/sign/transaction` (or the batch endpoint) with N concurrent connections
//! for a fixed number of requests, then verifies every signature it got back (after the timed
//! part, so that verification does not compete with the server for the CPU), and prints
//! throughput, latency percentiles, errors, the server's per-stage latency (from `/metrics`), and
//! bare k256 signing throughput measured on the same machine in the same run, with the ratio.
//!
//! `--json-rpc` times the JSON-RPC endpoint instead: `eth_signTransaction` calls to `POST /`
//! with the same transaction and `from` the key's address. The key is first made an account of
//! the proxy (its file written to `--accounts-dir`, then `POST /reload`, as `accounts add`
//! does). `--compare-json-rpc` alternates timed rounds of both APIs over the same warm
//! connections (REST, JSON-RPC, JSON-RPC, REST, … so that a trend in the machine's load
//! favours neither) and prints each round, the medians and the ratio JSON-RPC / REST. The
//! JSON-RPC answers' raw transactions are verified as the REST answers' are; a JSON-RPC `error`
//! is an error of the report.
//!
//! # Layout
//!
//! - [`http`]: the load generator's HTTP client (bare HTTP/1.1 connections, request bodies).
//! - [`warm`]: the warm run, with the bare k256 baseline, and the JSON-RPC comparison.
//! - [`cold`]: the cold run (`--cold`): first requests for new key blobs.
//! - [`report`]: the report's latency, error, stage and CPU lines.

mod cold;
mod http;
mod report;
mod warm;

use std::path::PathBuf;

use alloy_consensus::{TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::Address;
use anyhow::{Context, bail};
use nitro_signer_client::HttpClient;

use self::http::{Authority, plain_http_authority};

/// Options of `bench`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BenchArgs {
    /// The parent proxy's URL.
    #[arg(
        long,
        env = "NITRO_SIGNER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,

    /// API key, for a proxy that requires one (--tenants); sent on every request.
    #[arg(long, env = "NITRO_SIGNER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// Owner label of the benchmark's key blobs. Default: `bench` for the warm run's key, or with
    /// --api-key the API key's first owner; none for --cold's blobs (with --api-key, give one of
    /// its owners).
    #[arg(long)]
    label: Option<String>,

    /// Concurrent connections (one request in flight on each).
    #[arg(long, default_value_t = 32)]
    connections: usize,

    /// Requests to send in the timed run.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,

    /// Transactions per request: 1 uses `/v1/sign/transaction`, more use the batch endpoint.
    #[arg(long, default_value_t = 1)]
    batch: usize,

    /// Ed25519 approvals attached to each request (a batch carries one set for all its
    /// transactions): the key gets a policy that needs this many approvers, and the approvals are
    /// made before the timed part. 0: a key without a policy.
    #[arg(long, default_value_t = 0, value_name = "N")]
    approvals: usize,

    /// Requests sent before timing starts (fills the key cache and the connection pools).
    #[arg(long, default_value_t = 500)]
    warmup: u64,

    /// Seconds of bare k256 signing on all cores, for the baseline (0 skips it).
    #[arg(long, default_value_t = 3)]
    baseline_secs: u64,

    /// Measure the cold path instead: encrypt this many new seeds with the dev stack's KMS (see
    /// `--data-dir`), then send `--connections` concurrent first requests for each new key blob
    /// at once, one key after the other, and report their latency and the KMS calls they cost
    /// (one per key: concurrent first requests share it).
    #[arg(long, value_name = "KEYS")]
    cold: Option<u64>,

    /// The running dev stack's state directory, for `--cold`.
    #[arg(long, env = "NITRO_SIGNER_DATA_DIR", default_value = ".nitro-signer")]
    data_dir: PathBuf,

    /// Time `eth_signTransaction` calls to the JSON-RPC endpoint (`POST /`) instead of
    /// `POST /v1/sign/transaction`: the same transaction, from the benchmark key's account,
    /// which is first added to the proxy's accounts (see --accounts-dir).
    #[arg(long, conflicts_with_all = ["compare_json_rpc", "cold"])]
    json_rpc: bool,

    /// Alternate timed rounds of REST and JSON-RPC requests in the same run (REST, JSON-RPC,
    /// JSON-RPC, REST, …; --rounds of each, --requests per round) and print each round's
    /// throughput, the medians and the ratio JSON-RPC / REST.
    #[arg(long, conflicts_with = "cold")]
    compare_json_rpc: bool,

    /// Rounds of each API for --compare-json-rpc.
    #[arg(long, default_value_t = 3, value_name = "N")]
    rounds: usize,

    /// The proxy's accounts directory (its --accounts-dir; `nitro-signer dev` uses
    /// DATA_DIR/accounts), where --json-rpc and --compare-json-rpc write the benchmark's
    /// account.
    #[arg(
        long,
        env = "NITRO_SIGNER_ACCOUNTS_DIR",
        default_value = ".nitro-signer/accounts",
        value_name = "DIR"
    )]
    accounts_dir: PathBuf,
}

impl BenchArgs {
    /// Whether the run uses the JSON-RPC endpoint.
    fn uses_json_rpc(&self) -> bool {
        self.json_rpc || self.compare_json_rpc
    }
}

/// Runs the benchmark and prints its report.
pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.approvals > nitro_signer_policy::approval::MAX_APPROVALS {
        bail!(
            "--approvals: at most {} (what one request may carry)",
            nitro_signer_policy::approval::MAX_APPROVALS
        );
    }
    if args.connections == 0 || args.requests == 0 {
        bail!("--connections and --requests must be positive");
    }
    if args.uses_json_rpc() && (args.batch > 1 || args.approvals > 0) {
        bail!("--json-rpc and --compare-json-rpc time single transactions without approvals");
    }
    if args.compare_json_rpc && args.rounds == 0 {
        bail!("--rounds must be positive");
    }
    let mut client = HttpClient::new(args.url.clone())?;
    if let Some(key) = &args.api_key {
        client = client.with_api_key(key)?;
    }
    let authority = Authority::new(&plain_http_authority(&args.url)?, args.api_key.as_deref())?;
    if let Some(keys) = args.cold {
        return cold::run(&args, keys, &client, &authority).await;
    }
    warm::run(&args, &client, &authority).await
}

/// Checks that each signed raw transaction decodes and recovers to `signer`; how many there were.
fn verify(raws: &[Vec<u8>], signer: Address) -> anyhow::Result<u64> {
    for raw in raws {
        let tx = TxEnvelope::decode_2718(&mut raw.as_slice())
            .context("a returned transaction does not decode")?;
        if tx.recover_signer().ok() != Some(signer) {
            bail!("a returned signature does not recover to {signer}");
        }
    }
    Ok(raws.len() as u64)
}
