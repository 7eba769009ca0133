//! The cost of checking approvals, next to a bare secp256k1 signature measured in the same run.
//!
//! `cargo bench -p nitro-signer-policy --bench approvals`
//!
//! - `bare_k256_sign_prehash_recoverable`: what the enclave pays to sign; the target is an
//!   Ed25519 approval well under it.
//! - `statement_digest`: the SHA-256 of the statement (user id "alice").
//! - `ed25519_verify`, `p256_verify_uncompressed`, `p256_verify_compressed`: one approval's
//!   signature; the compressed P-256 key is decompressed on every verification.
//! - `valid_approvers_1_ed25519`, `valid_approvers_2of2_ed25519`: the whole check of a request.
#![allow(missing_docs, clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use k256::ecdsa::SigningKey;
use nitro_signer_policy::approval::{
    ApproverKey, ApproverKind, ApproverSecret, Statement, statement_digest, valid_approvers,
};

const KEY_ID: [u8; 32] = [0x11; 32];
const SUBJECT: [u8; 32] = [0x22; 32];
const NOW: u64 = 1_767_222_000;
const EXPIRES_AT: u64 = NOW + 600;

fn compressed(key: &ApproverKey) -> ApproverKey {
    let sec1 = key.public_key();
    let mut out = vec![0x02 | (sec1[64] & 1)];
    out.extend_from_slice(&sec1[1..33]);
    ApproverKey::p256(&out).unwrap()
}

fn approvals(c: &mut Criterion) {
    let digest = statement_digest(&KEY_ID, Some("alice"), &SUBJECT, EXPIRES_AT);
    let ed = ApproverSecret::generate(ApproverKind::Ed25519).unwrap();
    let ed2 = ApproverSecret::generate(ApproverKind::Ed25519).unwrap();
    let p256 = ApproverSecret::generate(ApproverKind::P256).unwrap();
    let ed_key = ed.public_key();
    let p256_key = p256.public_key();
    let p256_compressed = compressed(&p256_key);
    let ed_sig = ed.sign(&digest).unwrap();
    let p256_sig = p256.sign(&digest).unwrap();

    let mut group = c.benchmark_group("approvals");
    let bare = SigningKey::from_slice(&[0x46; 32]).unwrap();
    group.bench_function("bare_k256_sign_prehash_recoverable", |b| {
        b.iter(|| bare.sign_prehash_recoverable(black_box(&SUBJECT)).unwrap())
    });
    group.bench_function("statement_digest", |b| {
        b.iter(|| {
            statement_digest(
                black_box(&KEY_ID),
                black_box(Some("alice")),
                black_box(&SUBJECT),
                black_box(EXPIRES_AT),
            )
        })
    });
    group.bench_function("ed25519_verify", |b| {
        b.iter(|| assert!(ed_key.verify(black_box(&digest), black_box(&ed_sig))))
    });
    group.bench_function("p256_verify_uncompressed", |b| {
        b.iter(|| assert!(p256_key.verify(black_box(&digest), black_box(&p256_sig))))
    });
    group.bench_function("p256_verify_compressed", |b| {
        b.iter(|| assert!(p256_compressed.verify(black_box(&digest), black_box(&p256_sig))))
    });

    let approvers = BTreeMap::from([
        ("ops-1".to_string(), ed_key.clone()),
        ("ops-2".to_string(), ed2.public_key()),
        ("hsm".to_string(), p256_key.clone()),
    ]);
    let statement = Statement {
        key_id: &KEY_ID,
        user_id: Some("alice"),
        subject: &SUBJECT,
        now: NOW,
    };
    let one = [ed
        .approve("ops-1", &KEY_ID, Some("alice"), &SUBJECT, EXPIRES_AT)
        .unwrap()];
    let two = [
        one[0].clone(),
        ed2.approve("ops-2", &KEY_ID, Some("alice"), &SUBJECT, EXPIRES_AT + 1)
            .unwrap(),
    ];
    group.bench_function("valid_approvers_1_ed25519", |b| {
        b.iter(|| {
            let valid = valid_approvers(&approvers, black_box(&one), black_box(&statement));
            assert_eq!(valid.len(), 1);
        })
    });
    group.bench_function("valid_approvers_2of2_ed25519", |b| {
        b.iter(|| {
            let valid = valid_approvers(&approvers, black_box(&two), black_box(&statement));
            assert_eq!(valid.len(), 2);
        })
    });
    group.finish();
}

criterion_group!(benches, approvals);
criterion_main!(benches);
