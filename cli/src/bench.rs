//! `nitro-signer bench`: a load generator for the HTTP API.
//!
//! It drives `POST /v1/sign/transaction` (or the batch endpoint) with N concurrent connections
//! for a fixed number of requests, then verifies every signature it got back (after the timed
//! part, so that verification does not compete with the server for the CPU), and prints
//! throughput, latency percentiles, errors, the server's per-stage latency (from `/metrics`), and
//! bare k256 signing throughput measured on the same machine in the same run, with the ratio.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use alloy_consensus::{TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::eip2718::Decodable2718;
use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, client::conn::http1::SendRequest, header};
use hyper_util::rt::TokioIo;
use k256::ecdsa::SigningKey;
use nitro_signer_client::{
    HttpClient,
    api::{
        AddressRequest, BatchResult, KeyBlob, SignTransactionRequest, SignTransactionsRequest,
        SignTransactionsResponse, SignedTransaction,
    },
    http::decode_answer,
};
use nitro_signer_common::{UserId, key_blob::KeyKind, resources};
use nitro_signer_enclave::{KeyMaterial, MasterSeed};
use zeroize::Zeroizing;

use crate::import;
use serde_json::value::RawValue;

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

    /// Concurrent connections (one request in flight on each).
    #[arg(long, default_value_t = 32)]
    connections: usize,

    /// Requests to send in the timed run.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,

    /// Transactions per request: 1 uses `/v1/sign/transaction`, more use the batch endpoint.
    #[arg(long, default_value_t = 1)]
    batch: usize,

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
}

struct Outcome {
    latency: Duration,
    /// The signed raw transactions and the address they must recover to, or an error.
    result: Result<Vec<Vec<u8>>, String>,
}

/// Appends the JSON of the benchmark's EIP-1559 transaction with nonce `nonce` to `out`.
fn write_transaction(out: &mut Vec<u8>, nonce: u64) {
    use std::io::Write as _;
    // Writing to a vector cannot fail.
    let _ = write!(
        out,
        r#"{{"type":"0x2","chainId":"0x1","nonce":"{nonce:#x}","maxFeePerGas":"0x77359400","maxPriorityFeePerGas":"0x3b9aca00","gas":"0x5208","to":"0x3535353535353535353535353535353535353535","value":"0x1"}}"#
    );
}

/// One keep-alive HTTP/1.1 connection of the load generator: hyper's client connection with none
/// of a pooled client's bookkeeping, so that the load generator takes as little as it can of the
/// machine it measures. Reopened after a failure.
struct Connection {
    authority: String,
    /// `authority` as the `Host` header.
    host: header::HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    fn new(authority: &str) -> anyhow::Result<Self> {
        Ok(Self {
            authority: authority.to_owned(),
            host: header::HeaderValue::from_str(authority)
                .context("the URL's host is not a header value")?,
            sender: None,
        })
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// POSTs `body` (JSON) to `path`; the answer's status and body.
    async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<(u16, Bytes), String> {
        let sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.open().await?,
        };
        let mut sender = sender;
        sender.ready().await.map_err(|e| e.to_string())?;
        let mut request = hyper::Request::post(path)
            .header(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        request
            .headers_mut()
            .insert(header::HOST, self.host.clone());
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP request failed: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("HTTP answer not read: {e}"))?
            .to_bytes();
        self.sender = Some(sender);
        Ok((status, bytes))
    }
}

/// The body of every request of a run, serialized once up to its transactions; each request
/// only formats its own transactions (the load generator should take as little as it can of
/// the machine it measures).
#[derive(Clone)]
struct Bodies {
    /// The body up to the first transaction.
    head: Arc<[u8]>,
    /// Transactions per request: 1 is `/v1/sign/transaction`, more the batch endpoint.
    batch: usize,
}

impl Bodies {
    fn new(blob: &KeyBlob, user: &UserId, batch: usize) -> anyhow::Result<Self> {
        let (json, end) = if batch <= 1 {
            let request = SignTransactionRequest {
                key_blob: blob.clone(),
                user_id: Some(user.clone()),
                transaction: RawValue::from_string("null".to_owned())?,
            };
            (serde_json::to_vec(&request)?, &b"null}"[..])
        } else {
            let request = SignTransactionsRequest {
                key_blob: blob.clone(),
                user_id: Some(user.clone()),
                transactions: Vec::new(),
            };
            (serde_json::to_vec(&request)?, &b"]}"[..])
        };
        let head = json
            .strip_suffix(end)
            .context("a request body does not end with its transactions")?;
        Ok(Self {
            head: head.into(),
            batch: batch.max(1),
        })
    }

    fn path(&self) -> &'static str {
        if self.batch == 1 {
            "/v1/sign/transaction"
        } else {
            "/v1/sign/transactions"
        }
    }

    /// The body of request number `n`: its transactions have nonces from `n * batch` on.
    fn body(&self, n: u64) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.head.len() + self.batch * 256);
        body.extend_from_slice(&self.head);
        for i in 0..self.batch as u64 {
            if i > 0 {
                body.push(b',');
            }
            write_transaction(&mut body, n * self.batch as u64 + i);
        }
        body.extend_from_slice(if self.batch == 1 { b"}" } else { b"]}" });
        body
    }
}

/// Sends request number `n` (a transaction, or a batch); the signed raw transactions.
async fn one(connection: &mut Connection, bodies: &Bodies, n: u64) -> Result<Vec<Vec<u8>>, String> {
    let (status, answer) = connection.post(bodies.path(), bodies.body(n)).await?;
    if bodies.batch == 1 {
        let signed: SignedTransaction =
            decode_answer(status, &answer).map_err(|e| e.to_string())?;
        return Ok(vec![signed.raw]);
    }
    let answer: SignTransactionsResponse =
        decode_answer(status, &answer).map_err(|e| e.to_string())?;
    answer
        .results
        .into_iter()
        .map(|item| match item {
            BatchResult::Signed(signed) => Ok(signed.raw),
            BatchResult::Error(error) => Err(error.error.message),
        })
        .collect()
}

/// `host:port` of an `http://` URL (the load generator speaks plain HTTP/1.1, as the proxy does).
fn plain_http_authority(url: &str) -> anyhow::Result<String> {
    let uri: hyper::Uri = url.parse().context("--url is not a URL")?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must be an http:// URL (the proxy speaks plain HTTP)");
    }
    let host = uri.host().context("--url has no host")?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80)))
}

fn baseline(secs: u64) -> f64 {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let total = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let total = Arc::clone(&total);
            std::thread::spawn(move || {
                let key = SigningKey::from_slice(&[0x46 + t as u8; 32]).ok();
                let mut count = 0u64;
                let mut digest = [0u8; 32];
                while Instant::now() < deadline {
                    for _ in 0..100 {
                        digest[..8].copy_from_slice(&count.to_le_bytes());
                        if let Some(key) = &key {
                            let _ = key.sign_prehash_recoverable(&digest);
                        }
                        count += 1;
                    }
                }
                total.fetch_add(count, Ordering::Relaxed);
            })
        })
        .collect();
    for handle in handles {
        let _ = handle.join();
    }
    total.load(Ordering::Relaxed) as f64 / secs as f64
}

/// The cold path: the first signatures with key blobs the enclave has never decrypted.
async fn cold(
    args: &BenchArgs,
    keys: u64,
    client: &HttpClient,
    authority: &str,
) -> anyhow::Result<()> {
    if keys == 0 {
        bail!("--cold must be positive");
    }
    let (kms, kms_key) = import::dev_kms(&args.data_dir)?;
    let user = UserId::new("bench-user")?;
    // New seeds, encrypted client-side as `keys import` does: blobs no enclave has seen.
    let mut blobs = Vec::new();
    for _ in 0..keys {
        let mut seed = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(seed.as_mut_slice()).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let blob = import::encrypt(&kms, &kms_key, KeyKind::Seed, None, Vec::new(), &seed).await?;
        let address = KeyMaterial::Seed(MasterSeed::new(seed))
            .user_key(Some(&user))?
            .address();
        blobs.push((KeyBlob::new(blob.encode()), address));
    }
    let mut connections = (0..args.connections)
        .map(|_| Connection::new(authority))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let before = client.metrics().await.unwrap_or_default();
    let mut latencies = Vec::new();
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    let mut signatures = 0u64;
    for (index, (blob, address)) in blobs.iter().enumerate() {
        let bodies = Bodies::new(blob, &user, 1)?;
        let tasks: Vec<_> = connections
            .drain(..)
            .enumerate()
            .map(|(n, mut connection)| {
                let bodies = bodies.clone();
                let n = (index * args.connections + n) as u64;
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let result = one(&mut connection, &bodies, n).await;
                    (connection, sent.elapsed(), result)
                })
            })
            .collect();
        for task in tasks {
            let (connection, latency, result) = task.await?;
            connections.push(connection);
            latencies.push(latency);
            match result {
                Ok(raws) => {
                    for raw in raws {
                        let tx = TxEnvelope::decode_2718(&mut raw.as_slice())
                            .context("a returned transaction does not decode")?;
                        if tx.recover_signer().ok() != Some(*address) {
                            bail!("a returned signature does not recover to {address}");
                        }
                        signatures += 1;
                    }
                }
                Err(error) => *errors.entry(error).or_default() += 1,
            }
        }
    }
    let after = client.metrics().await.unwrap_or_default();
    latencies.sort();
    let delta = |name: &str| Some(sample(&after, name)? - sample(&before, name)?);

    println!("endpoint            POST /v1/sign/transaction, cold");
    println!(
        "new key blobs       {keys}, each with {} concurrent first requests",
        args.connections
    );
    print_latency(&latencies);
    if let Some(calls) = delta("nitro_signer_enclave_kms_calls_total") {
        println!(
            "kms calls           {calls:.0} for {keys} new key blobs ({:.2} per blob) and {} requests",
            calls / keys as f64,
            latencies.len()
        );
    }
    println!("verified            {signatures} signatures recover to their key's address");
    if let Some(cached) = sample(&after, "nitro_signer_enclave_cached_keys") {
        println!("cached keys         {cached:.0} in the enclave");
    }
    if let Some(resident) = sample(&after, "nitro_signer_enclave_resident_memory_bytes") {
        println!("enclave memory      {:.1} MB resident", resident / 1e6);
    }
    print_errors(&errors);
    if !errors.is_empty() {
        bail!("{} requests failed", errors.values().sum::<u64>());
    }
    Ok(())
}

/// The latency line of a report, from latencies sorted ascending.
fn print_latency(sorted: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "latency             p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(sorted, 0.50)),
        ms(percentile(sorted, 0.90)),
        ms(percentile(sorted, 0.99)),
        ms(sorted.last().copied().unwrap_or_default()),
    );
}

/// The error count of a report and each distinct error.
fn print_errors(errors: &std::collections::BTreeMap<String, u64>) {
    println!("errors              {}", errors.values().sum::<u64>());
    for (error, count) in errors {
        println!("  {count} × {error}");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Sums of `nitro_signer_proxy_stage_duration_seconds` by stage for one endpoint.
fn stage_sums(metrics: &str, endpoint: &str) -> Vec<(String, f64, f64)> {
    let mut stages = Vec::new();
    for stage in ["proxy", "enclave"] {
        let find = |suffix: &str| {
            metrics
                .lines()
                .find(|line| {
                    line.starts_with(&format!(
                        "nitro_signer_proxy_stage_duration_seconds_{suffix}{{"
                    )) && line.contains(&format!("endpoint=\"{endpoint}\""))
                        && line.contains(&format!("stage=\"{stage}\""))
                })
                .and_then(|line| line.rsplit(' ').next())
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        stages.push((stage.to_owned(), find("sum"), find("count")));
    }
    stages
}

/// The value of an unlabelled sample `name` in a `/metrics` text.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// CPU time per request of each process, in µs, from the counters before and after the run.
fn cpu_per_request(
    before: &str,
    after: &str,
    own: Option<Duration>,
    requests: usize,
) -> Vec<(&'static str, Option<f64>)> {
    let per_request = |seconds: f64| seconds * 1e6 / requests.max(1) as f64;
    let delta = |name: &str| Some(sample(after, name)? - sample(before, name)?);
    vec![
        (
            "enclave",
            delta("nitro_signer_enclave_cpu_seconds_total").map(per_request),
        ),
        ("proxy", delta("process_cpu_seconds_total").map(per_request)),
        (
            "load generator",
            own.map(|own| per_request(own.as_secs_f64())),
        ),
    ]
}

/// Runs the benchmark and prints its report.
pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.requests == 0 {
        bail!("--connections and --requests must be positive");
    }
    let client = HttpClient::new(args.url.clone())?;
    let authority = plain_http_authority(&args.url)?;
    if let Some(keys) = args.cold {
        return cold(&args, keys, &client, &authority).await;
    }
    let key = client.generate_key(Some("bench".into())).await?;
    let user = UserId::new("bench-user")?;
    let from = client
        .address(&AddressRequest {
            key_blob: key.key_blob.clone(),
            user_id: Some(user.clone()),
        })
        .await?
        .address;
    let bodies = Bodies::new(&key.key_blob, &user, args.batch)?;
    let endpoint = if args.batch <= 1 {
        "sign_transaction"
    } else {
        "sign_transactions"
    };

    // Warm-up: decrypts the key once, opens the connections.
    let warmup = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (mut connection, bodies, warmup) = (
            Connection::new(&authority)?,
            bodies.clone(),
            Arc::clone(&warmup),
        );
        let total = args.warmup;
        tasks.push(tokio::spawn(async move {
            while warmup.fetch_add(1, Ordering::Relaxed) < total {
                let _ = one(&mut connection, &bodies, 0).await;
            }
            connection
        }));
    }
    let mut connections = Vec::new();
    for task in tasks {
        connections.push(task.await?);
    }

    let before = client.metrics().await.unwrap_or_default();
    let own_cpu = resources::cpu_time();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut connection in connections {
        let (bodies, next) = (bodies.clone(), Arc::clone(&next));
        let total = args.requests;
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let sent = Instant::now();
                let result = one(&mut connection, &bodies, n).await;
                outcomes.push(Outcome {
                    latency: sent.elapsed(),
                    result,
                });
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await?);
    }
    let elapsed = started.elapsed();
    let own_cpu = resources::cpu_time()
        .zip(own_cpu)
        .map(|(after, before)| after.saturating_sub(before));
    let after = client.metrics().await.unwrap_or_default();

    // Verification, after the timed part: every transaction decodes and recovers to the key.
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    let mut signatures = 0u64;
    for outcome in &outcomes {
        match &outcome.result {
            Ok(raws) => {
                for raw in raws {
                    let tx = TxEnvelope::decode_2718(&mut raw.as_slice())
                        .context("a returned transaction does not decode")?;
                    if tx.recover_signer().ok() != Some(from) {
                        bail!("a returned signature does not recover to {from}");
                    }
                    signatures += 1;
                }
            }
            Err(error) => *errors.entry(error.clone()).or_default() += 1,
        }
    }
    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    latencies.sort();
    let requests_per_sec = outcomes.len() as f64 / elapsed.as_secs_f64();
    let signatures_per_sec = signatures as f64 / elapsed.as_secs_f64();

    println!(
        "endpoint            POST /v1/{}",
        endpoint.replace('_', "/")
    );
    println!("connections         {}", args.connections);
    println!("batch               {}", args.batch.max(1));
    println!(
        "requests            {} in {:.2} s",
        outcomes.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "throughput          {requests_per_sec:.0} requests/s, {signatures_per_sec:.0} signatures/s"
    );
    print_latency(&latencies);
    println!("verified            {signatures} signatures recover to {from}");
    print_errors(&errors);
    let stages = stage_sums(&before, endpoint)
        .into_iter()
        .zip(stage_sums(&after, endpoint));
    for ((stage, sum0, count0), (_, sum1, count1)) in stages {
        let count = count1 - count0;
        if count > 0.0 {
            println!(
                "server stage        {stage}: mean {:.3} ms",
                (sum1 - sum0) / count * 1e3
            );
        }
    }
    let cpu = cpu_per_request(&before, &after, own_cpu, outcomes.len());
    let shown: Vec<String> = cpu
        .iter()
        .filter_map(|(process, micros)| Some(format!("{process} {:.1} µs", (*micros)?)))
        .collect();
    if !shown.is_empty() {
        println!("cpu per request     {}", shown.join(", "));
    }
    if let Some(resident) = sample(&after, "nitro_signer_enclave_resident_memory_bytes") {
        println!("enclave memory      {:.1} MB resident", resident / 1e6);
    }
    if args.baseline_secs > 0 {
        let bare = tokio::task::spawn_blocking(move || baseline(args.baseline_secs)).await?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "bare k256           {bare:.0} signatures/s on all cores ({:.1} µs of CPU per signature)",
            cores as f64 * 1e6 / bare
        );
        println!(
            "ratio               {:.1}% of bare k256 signing throughput",
            signatures_per_sec / bare * 100.0
        );
    }
    if !errors.is_empty() {
        bail!("{} requests failed", errors.values().sum::<u64>());
    }
    Ok(())
}
