//! The cold path: the first signatures with key blobs the enclave has never decrypted.

use std::{collections::BTreeMap, time::Instant};

use anyhow::bail;
use nitro_signer_client::{HttpClient, api::KeyBlob};
use nitro_signer_common::{
    UserId,
    key_blob::{KeyKind, KeyMetadata},
};
use nitro_signer_enclave::{KeyMaterial, MasterSeed};
use zeroize::Zeroizing;

use super::{
    BenchArgs,
    http::{Authority, Bodies, Connection, one},
    report::{print_errors, print_latency, sample},
    verify,
};
use crate::import;

/// The cold path: the first signatures with key blobs the enclave has never decrypted.
pub(super) async fn run(
    args: &BenchArgs,
    keys: u64,
    client: &HttpClient,
    authority: &Authority,
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
        let metadata = KeyMetadata::new(
            KeyKind::Seed,
            kms_key.clone(),
            args.label.clone(),
            Vec::new(),
        )?;
        let blob = import::encrypt(&kms, metadata, &seed).await?;
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
    let mut errors = BTreeMap::<String, u64>::new();
    let mut signatures = 0u64;
    for (index, (blob, address)) in blobs.iter().enumerate() {
        let bodies = Bodies::new(blob, &user, 1, Vec::new())?;
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
                Ok(raws) => signatures += verify(&raws, *address)?,
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
