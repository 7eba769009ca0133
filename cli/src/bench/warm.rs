//! The warm path: the throughput and latency of signing with a key the enclave holds, next to
//! bare k256 signing on the same machine; with `--json-rpc`, through the JSON-RPC endpoint, and
//! with `--compare-json-rpc`, both APIs in alternating rounds.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy_primitives::Address;
use anyhow::{Context as _, bail};
use k256::ecdsa::SigningKey;
use nitro_signer_client::{
    HttpClient,
    api::{AddressRequest, GenerateKeyRequest},
};
use nitro_signer_common::{UserId, resources};
use nitro_signer_eth::{TxOptions, UnsignedTransaction};
use nitro_signer_policy::approval::{ApproverKind, ApproverSecret, batch_subject};
use serde_json::value::RawValue;

use super::{
    BenchArgs,
    http::{Api, Authority, Bodies, Connection, one, write_transaction},
    report::{cpu_per_request, percentile, print_errors, print_latency, sample, stage_sums},
    verify,
};

/// One timed request: how long it took and what came back.
struct Outcome {
    latency: Duration,
    /// The signed raw transactions and the address they must recover to, or an error.
    result: Result<Vec<Vec<u8>>, String>,
}

/// One timed round: its requests' outcomes, and what it cost.
struct Round {
    api: Api,
    outcomes: Vec<Outcome>,
    elapsed: Duration,
    /// `/metrics` before and after.
    before: String,
    after: String,
    /// The load generator's CPU time during the round.
    own_cpu: Option<Duration>,
}

impl Round {
    fn requests_per_sec(&self) -> f64 {
        self.outcomes.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The latencies, sorted.
    fn latencies(&self) -> Vec<Duration> {
        let mut latencies: Vec<Duration> = self.outcomes.iter().map(|o| o.latency).collect();
        latencies.sort();
        latencies
    }

    /// CPU time per request of each process, in µs.
    fn cpu(&self) -> Vec<(&'static str, Option<f64>)> {
        cpu_per_request(&self.before, &self.after, self.own_cpu, self.outcomes.len())
    }

    /// Verifies every signature (outside the timing): how many, and the errors by message.
    fn verify(&self, from: Address) -> anyhow::Result<(u64, BTreeMap<String, u64>)> {
        let mut errors = BTreeMap::<String, u64>::new();
        let mut signatures = 0u64;
        for outcome in &self.outcomes {
            match &outcome.result {
                Ok(raws) => signatures += verify(raws, from)?,
                Err(error) => *errors.entry(error.clone()).or_default() += 1,
            }
        }
        Ok((signatures, errors))
    }
}

/// The warm path: one key, warmed up, then `--requests` requests over `--connections`
/// connections (or `--compare-json-rpc`'s rounds); every signature verified after the timed
/// part.
pub(super) async fn run(
    args: &BenchArgs,
    client: &HttpClient,
    authority: &Authority,
) -> anyhow::Result<()> {
    let user = UserId::new("bench-user")?;
    let approvers = Approvers::new(args.approvals)?;
    // With an API key, the proxy defaults the label to the key's first owner.
    let label = args
        .label
        .clone()
        .or_else(|| args.api_key.is_none().then(|| "bench".to_owned()));
    let key = client
        .generate_key_with(&GenerateKeyRequest {
            label: label.clone(),
            policy: approvers.policy()?,
            nonce: None,
        })
        .await?;
    let from = if args.uses_json_rpc() {
        // The key's account, served by the JSON-RPC endpoint.
        crate::accounts::add_account(
            client,
            key.key_blob.clone(),
            Some(user.clone()),
            Some(label.unwrap_or_else(|| "bench".to_owned())),
            &args.accounts_dir,
        )
        .await
        .context("making the benchmark's key an account of the proxy (--accounts-dir)")?
    } else {
        client
            .address(&AddressRequest {
                key_blob: key.key_blob.clone(),
                user_id: Some(user.clone()),
            })
            .await?
            .address
    };
    let approvals = approvers.approvals(&key.key_id.0, &user, args.requests, args.batch)?;
    let rest = Bodies::new(&key.key_blob, &user, args.batch, approvals)?;
    let json_rpc = Bodies::json_rpc(from);
    let warm_with = if args.compare_json_rpc {
        vec![rest.clone(), json_rpc.clone()]
    } else if args.json_rpc {
        vec![json_rpc.clone()]
    } else {
        vec![rest.clone()]
    };
    let connections = warm_up(args, authority, &warm_with).await?;
    if args.compare_json_rpc {
        return compare(args, client, connections, &rest, &json_rpc, from).await;
    }
    let bodies = if args.json_rpc { json_rpc } else { rest };
    let (_, round) = timed(client, connections, &bodies, args.requests).await?;
    let endpoint = bodies.api.metrics_label(args.batch);

    // Verification, after the timed part: every transaction decodes and recovers to the key.
    let (signatures, errors) = round.verify(from)?;
    let latencies = round.latencies();
    let elapsed = round.elapsed;
    let requests_per_sec = round.requests_per_sec();
    let signatures_per_sec = signatures as f64 / elapsed.as_secs_f64();

    println!("endpoint            {}", bodies.api.describe(args.batch));
    println!("connections         {}", args.connections);
    println!("batch               {}", args.batch.max(1));
    if args.approvals > 0 {
        println!(
            "approvals           {} Ed25519 per request (made before the run)",
            args.approvals
        );
    }
    println!(
        "requests            {} in {:.2} s",
        round.outcomes.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "throughput          {requests_per_sec:.0} requests/s, {signatures_per_sec:.0} signatures/s"
    );
    print_latency(&latencies);
    println!("verified            {signatures} signatures recover to {from}");
    print_errors(&errors);
    let stages = stage_sums(&round.before, endpoint)
        .into_iter()
        .zip(stage_sums(&round.after, endpoint));
    for ((stage, sum0, count0), (_, sum1, count1)) in stages {
        let count = count1 - count0;
        if count > 0.0 {
            println!(
                "server stage        {stage}: mean {:.3} ms",
                (sum1 - sum0) / count * 1e3
            );
        }
    }
    let shown = cpu_line(&round.cpu());
    if !shown.is_empty() {
        println!("cpu per request     {shown}");
    }
    if let Some(resident) = sample(&round.after, "nitro_signer_enclave_resident_memory_bytes") {
        println!("enclave memory      {:.1} MB resident", resident / 1e6);
    }
    if args.baseline_secs > 0 {
        let baseline_secs = args.baseline_secs;
        let bare = tokio::task::spawn_blocking(move || baseline(baseline_secs)).await?;
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

/// `enclave 44.0 µs, proxy 16.0 µs, …` for the processes whose CPU time is known.
fn cpu_line(cpu: &[(&'static str, Option<f64>)]) -> String {
    cpu.iter()
        .filter_map(|(process, micros)| Some(format!("{process} {:.1} µs", (*micros)?)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Warm-up: `--warmup` requests with each of `bodies` (decrypts the key once, opens the
/// connections, and fills whatever each API caches); the open connections.
async fn warm_up(
    args: &BenchArgs,
    authority: &Authority,
    bodies: &[Bodies],
) -> anyhow::Result<Vec<Connection>> {
    let mut connections = (0..args.connections)
        .map(|_| Connection::new(authority))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for bodies in bodies {
        let warmup = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for mut connection in connections.drain(..) {
            let (bodies, warmup) = (bodies.clone(), Arc::clone(&warmup));
            let total = args.warmup;
            tasks.push(tokio::spawn(async move {
                while warmup.fetch_add(1, Ordering::Relaxed) < total {
                    let _ = one(&mut connection, &bodies, 0).await;
                }
                connection
            }));
        }
        for task in tasks {
            connections.push(task.await?);
        }
    }
    Ok(connections)
}

/// One timed round of `requests` requests over `connections`; the connections, for the next
/// round, and the round.
async fn timed(
    client: &HttpClient,
    connections: Vec<Connection>,
    bodies: &Bodies,
    requests: u64,
) -> anyhow::Result<(Vec<Connection>, Round)> {
    let before = client.metrics().await.unwrap_or_default();
    let own_cpu = resources::cpu_time();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut connection in connections {
        let (bodies, next) = (bodies.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                let sent = Instant::now();
                let result = one(&mut connection, &bodies, n).await;
                outcomes.push(Outcome {
                    latency: sent.elapsed(),
                    result,
                });
            }
            (connection, outcomes)
        }));
    }
    let mut connections = Vec::new();
    let mut outcomes = Vec::new();
    for task in tasks {
        let (connection, done) = task.await?;
        connections.push(connection);
        outcomes.extend(done);
    }
    let elapsed = started.elapsed();
    let own_cpu = resources::cpu_time()
        .zip(own_cpu)
        .map(|(after, before)| after.saturating_sub(before));
    let after = client.metrics().await.unwrap_or_default();
    Ok((
        connections,
        Round {
            api: bodies.api,
            outcomes,
            elapsed,
            before,
            after,
            own_cpu,
        },
    ))
}

/// `--compare-json-rpc`: `--rounds` rounds of each API, alternating REST, JSON-RPC, JSON-RPC,
/// REST, … over the same connections; each round's figures, then (after verifying every
/// signature) the medians and the ratio.
async fn compare(
    args: &BenchArgs,
    client: &HttpClient,
    mut connections: Vec<Connection>,
    rest: &Bodies,
    json_rpc: &Bodies,
    from: Address,
) -> anyhow::Result<()> {
    println!(
        "endpoints           {} and {}",
        Api::Rest.describe(1),
        Api::JsonRpc.describe(1)
    );
    println!("connections         {}", args.connections);
    println!(
        "rounds              {} of each, {} requests each, alternating",
        args.rounds, args.requests
    );
    let mut rounds = Vec::new();
    for i in 0..args.rounds * 2 {
        // REST, JSON-RPC, JSON-RPC, REST, REST, …: each pair in the order of the previous one
        // reversed, so that a trend in the machine's load favours neither.
        let bodies = if (i % 2 == 0) == (i / 2 % 2 == 0) {
            rest
        } else {
            json_rpc
        };
        let round;
        (connections, round) = timed(client, connections, bodies, args.requests).await?;
        let latencies = round.latencies();
        let p = |q: f64| percentile(&latencies, q).as_secs_f64() * 1e3;
        println!(
            "round {:<2} {:<9} {:>7.0} requests/s, p50 {:.2} ms, p99 {:.2} ms; cpu per request: {}",
            i + 1,
            round.api.name(),
            round.requests_per_sec(),
            p(0.50),
            p(0.99),
            cpu_line(&round.cpu())
        );
        rounds.push(round);
    }

    // Verification, after the timed part.
    let mut signatures = 0;
    let mut errors = BTreeMap::<String, u64>::new();
    for round in &rounds {
        let (verified, failed) = round.verify(from)?;
        signatures += verified;
        for (error, count) in failed {
            *errors
                .entry(format!("{}: {error}", round.api.name()))
                .or_default() += count;
        }
    }
    println!("verified            {signatures} signatures recover to {from}");
    print_errors(&errors);
    let mut medians = Vec::new();
    for api in [Api::Rest, Api::JsonRpc] {
        let of_api: Vec<&Round> = rounds.iter().filter(|r| r.api == api).collect();
        let throughput = median(of_api.iter().map(|r| r.requests_per_sec()).collect());
        let cpu: Vec<String> = ["enclave", "proxy", "load generator"]
            .into_iter()
            .filter_map(|process| {
                let values: Vec<f64> = of_api
                    .iter()
                    .filter_map(|r| {
                        r.cpu()
                            .into_iter()
                            .find(|(p, _)| *p == process)
                            .and_then(|(_, micros)| micros)
                    })
                    .collect();
                (!values.is_empty()).then(|| format!("{process} {:.1} µs", median(values)))
            })
            .collect();
        println!(
            "median {:<12} {throughput:.0} requests/s; cpu per request: {}",
            api.name(),
            cpu.join(", ")
        );
        medians.push(throughput);
    }
    if let [rest, json_rpc] = medians[..] {
        println!(
            "ratio               JSON-RPC / REST {:.1} % (medians)",
            json_rpc / rest * 100.0
        );
    }
    if !errors.is_empty() {
        bail!("{} requests failed", errors.values().sum::<u64>());
    }
    Ok(())
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let upper = values.get(n / 2).copied().unwrap_or(f64::NAN);
    if n % 2 == 1 {
        return upper;
    }
    match (n / 2).checked_sub(1).and_then(|i| values.get(i)) {
        Some(lower) => (lower + upper) / 2.0,
        None => f64::NAN,
    }
}

/// The approvers of a `--approvals` run: Ed25519 keys made for the run, a policy that needs all
/// of them for transactions, and the approvals of every request, made before the timed part.
struct Approvers {
    secrets: Vec<ApproverSecret>,
}

impl Approvers {
    fn new(count: usize) -> anyhow::Result<Self> {
        let secrets = (0..count)
            .map(|_| ApproverSecret::generate(ApproverKind::Ed25519))
            .collect::<Result<_, _>>()?;
        Ok(Self { secrets })
    }

    fn name(i: usize) -> String {
        format!("approver-{i}")
    }

    /// The key's policy: transactions with every approver's approval; `None` without approvers.
    fn policy(&self) -> anyhow::Result<Option<Box<RawValue>>> {
        if self.secrets.is_empty() {
            return Ok(None);
        }
        let approvers: serde_json::Map<String, serde_json::Value> = self
            .secrets
            .iter()
            .enumerate()
            .map(|(i, secret)| {
                let public = secret.public_key();
                let key = format!("0x{}", alloy_primitives::hex::encode(public.public_key()));
                (
                    Self::name(i),
                    serde_json::json!({"type": public.kind(), "publicKey": key}),
                )
            })
            .collect();
        let names: Vec<String> = (0..self.secrets.len()).map(Self::name).collect();
        let policy = serde_json::json!({
            "version": 1,
            "approvers": approvers,
            "rules": [{"effect": "allow", "when": {"kinds": ["transaction"]},
                       "approvals": {"threshold": names.len(), "from": names}}],
        });
        Ok(Some(RawValue::from_string(policy.to_string())?))
    }

    /// The `,"approvals":[…]` member of each of `requests` requests of `batch` transactions.
    fn approvals(
        &self,
        key_id: &[u8; 32],
        user: &UserId,
        requests: u64,
        batch: usize,
    ) -> anyhow::Result<Vec<String>> {
        if self.secrets.is_empty() {
            return Ok(Vec::new());
        }
        let batch = batch.max(1) as u64;
        let expires_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3_600;
        (0..requests)
            .map(|n| {
                let hashes = (n * batch..(n + 1) * batch)
                    .map(|nonce| {
                        let mut json = Vec::new();
                        write_transaction(&mut json, nonce);
                        Ok(UnsignedTransaction::from_json(&json, TxOptions::default())?
                            .signing_hash()
                            .0)
                    })
                    .collect::<anyhow::Result<Vec<[u8; 32]>>>()?;
                let subject = match hashes.as_slice() {
                    [one] => *one,
                    all => batch_subject(all),
                };
                let approvals = self
                    .secrets
                    .iter()
                    .enumerate()
                    .map(|(i, secret)| {
                        secret.approve(
                            &Self::name(i),
                            key_id,
                            Some(user.as_str()),
                            &subject,
                            expires_at,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(format!(
                    ",\"approvals\":{}",
                    serde_json::to_string(&approvals)?
                ))
            })
            .collect()
    }
}

/// Bare k256 signing throughput on all cores for `secs` seconds, in signatures per second.
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
