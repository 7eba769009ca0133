//! What receipts cost (`docs/receipts.md`), beside a bare k256 signature measured in the same run.
//!
//! `cargo bench -p nitro-signer-enclave --features simulated --bench receipts`
//!
//! - `bare_k256_sign_prehash_recoverable`: the floor of a signing request.
//! - `sign_single` / `sign_batch_50`: the enclave's side: encoding the statement of one
//!   signature (or of a batch of 50) and signing it with the boot's Ed25519 receipt key.
//! - `verify_single` / `verify_batch_50`: a back end's side with the boot's attestation already
//!   verified and cached: `ReceiptVerifier::verify` (decode, look up the boot, one Ed25519
//!   verification).
//! - `trust_boot`: verifying the boot's attestation document (COSE signature, P-384 chain, PCRs,
//!   nonce), paid once per boot.
#![allow(missing_docs, clippy::unwrap_used)]

use std::{hint::black_box, time::SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use k256::ecdsa::SigningKey;
use nitro_signer_client::ReceiptVerifier;
use nitro_signer_common::{
    UserId,
    attestation::{Expectations, RootOfTrust},
    receipt::{Operation, SignedItem, Statement},
};
use nitro_signer_enclave::{
    nsm::{SimulatedNsm, SimulatorConfig},
    receipts::ReceiptSigner,
};

fn statement(items: u16) -> Statement {
    Statement {
        operation: if items == 1 {
            Operation::SignTransaction
        } else {
            Operation::SignBatch
        },
        receipt_key: [0; 32],
        sequence: 0,
        time_ms: 0,
        key_id: [0x11; 32],
        blob_hash: [0x22; 32],
        policy_hash: Some([0x33; 32]),
        user_id: Some(UserId::new("user-000123").unwrap()),
        address: Some([0x44; 20]),
        approvals_digest: None,
        previous_blob_hash: None,
        request_nonce: None,
        items: (0..items)
            .map(|index| SignedItem {
                index,
                hash: [0x66; 32],
                signature: [1; 65],
            })
            .collect(),
    }
}

fn receipts(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let nsm = SimulatedNsm::open(SimulatorConfig::new(dir.path().join("nsm"))).unwrap();
    let signer = ReceiptSigner::generate(&nsm).unwrap();
    let nonce = [7u8; 32];
    let document = signer.attestation(&nsm, Some(&nonce)).unwrap();
    let pcrs = SimulatorConfig::default_pcrs()
        .into_iter()
        .filter(|(index, _)| *index < 3)
        .collect();
    let verifier = ReceiptVerifier::new(
        RootOfTrust::dangerous_simulated(nsm.root_fingerprint()),
        Expectations {
            pcrs,
            ..Default::default()
        },
    )
    .unwrap();
    verifier
        .trust(&document, &nonce, SystemTime::now())
        .unwrap();

    let mut group = c.benchmark_group("receipts");
    let bare = SigningKey::from_slice(&[0x46; 32]).unwrap();
    let hash = [0x5a_u8; 32];
    group.bench_function("bare_k256_sign_prehash_recoverable", |b| {
        b.iter(|| bare.sign_prehash_recoverable(black_box(&hash)).unwrap())
    });
    let single = statement(1);
    let batch = statement(50);
    group.bench_function("sign_single", |b| {
        b.iter(|| signer.sign(black_box(single.clone())))
    });
    group.bench_function("sign_batch_50", |b| {
        b.iter(|| signer.sign(black_box(batch.clone())))
    });
    let single = signer.sign(single);
    let batch = signer.sign(batch);
    group.bench_function("verify_single", |b| {
        b.iter(|| verifier.verify(black_box(&single)).unwrap())
    });
    group.bench_function("verify_batch_50", |b| {
        b.iter(|| verifier.verify(black_box(&batch)).unwrap())
    });
    group.bench_function("trust_boot", |b| {
        b.iter(|| {
            verifier
                .trust(black_box(&document), &nonce, SystemTime::now())
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, receipts);
criterion_main!(benches);
