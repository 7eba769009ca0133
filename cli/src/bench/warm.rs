//! The warm path: the throughput and latency of signing with a key the enclave holds, next to
//! bare k256 signing on the same machine.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::bail;
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
    http::{Authority, Bodies, Connection, one, write_transaction},
    report::{cpu_per_request, print_errors, print_latency, sample, stage_sums},
    verify,
};

/// One timed request: how long it took and what came back.
struct Outcome {
    latency: Duration,
    /// The signed raw transactions and the address they must recover to, or an error.
    result: Result<Vec<Vec<u8>>, String>,
}

/// The warm path: one key, warmed up, then `--requests` requests over `--connections`
/// connections; every signature verified after the timed part.
pub(super) async fn run(
    args: &BenchArgs,
    client: &HttpClient,
    authority: &Authority,
) -> anyhow::Result<()> {
    let user = UserId::new("bench-user")?;
    let approvers = Approvers::new(args.approvals)?;
    let key = client
        .generate_key_with(&GenerateKeyRequest {
            // With an API key, the proxy defaults the label to the key's first owner.
            label: args
                .label
                .clone()
                .or_else(|| args.api_key.is_none().then(|| "bench".to_owned())),
            policy: approvers.policy()?,
            nonce: None,
        })
        .await?;
    let from = client
        .address(&AddressRequest {
            key_blob: key.key_blob.clone(),
            user_id: Some(user.clone()),
        })
        .await?
        .address;
    let approvals = approvers.approvals(&key.key_id.0, &user, args.requests, args.batch)?;
    let bodies = Bodies::new(&key.key_blob, &user, args.batch, approvals)?;
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
            Connection::new(authority)?,
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
    let mut errors = BTreeMap::<String, u64>::new();
    let mut signatures = 0u64;
    for outcome in &outcomes {
        match &outcome.result {
            Ok(raws) => signatures += verify(raws, from)?,
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
    if args.approvals > 0 {
        println!(
            "approvals           {} Ed25519 per request (made before the run)",
            args.approvals
        );
    }
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
