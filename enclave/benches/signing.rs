//! The cost of signing, next to a bare k256 signature measured in the same run.
//!
//! `cargo bench -p nitro-signer-enclave --bench signing`
//!
//! - `bare_k256_sign_prehash_recoverable`: k256's `SigningKey::sign_prehash_recoverable` with the
//!   signing key built beforehand: the floor.
//! - `derive_and_sign`: the hot path for a cached seed: HKDF per-user derivation, then the
//!   signing primitive. Target: at most 1.2x the floor.
//! - `sign_prehash`: the primitive alone, key already derived.
//! - `user_signer_new`: derivation plus the address (one more scalar multiplication), paid once
//!   per key and user.
//! - `eip1559_parse_validate_hash` and `eip1559_encode_signed`: transaction work around the
//!   signature, reported separately.
//! - `sign_transaction_eip1559`: a whole request through the request layer with a built signer.
//! - `policy`: what a key's policy adds to a request (`docs/policy.md`), beside the bare
//!   signature: `evaluate_*` evaluates a custodian-sized policy (5 rules, ERC-20 and typed-data
//!   conditions, two approvers) on the EIP-1559 transaction; `approval_ed25519` and
//!   `approval_p256` count one approval (the statement digest and one signature verification);
//!   `approvals_2_of_2` counts an Ed25519 and a P-256 approval.
#![allow(missing_docs, clippy::unwrap_used)]

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use k256::ecdsa::SigningKey;
use nitro_signer_common::UserId;
use nitro_signer_enclave::{KeyMaterial, MasterSeed, Payload, SigningPolicy, UserSigner};
use nitro_signer_eth::{Signature, TransactionRequest, TxOptions, UnsignedTransaction};
use zeroize::Zeroizing;

const TX: &[u8] = br#"{"type":"0x2","chainId":"0x1","nonce":"0x2a","maxFeePerGas":"0x77359400",
    "maxPriorityFeePerGas":"0x3b9aca00","gas":"0x5208",
    "to":"0x3535353535353535353535353535353535353535","value":"0xde0b6b3a7640000",
    "input":"0xa9059cbb0000000000000000000000003535353535353535353535353535353535353535000000000000000000000000000000000000000000000000000000000000000a"}"#;

fn signing(c: &mut Criterion) {
    let hash = [0x5a_u8; 32];
    let seed = MasterSeed::new(Zeroizing::new([0x11; 32]));
    let user = UserId::new("user-000123").unwrap();
    let material = KeyMaterial::Seed(MasterSeed::new(Zeroizing::new([0x11; 32])));

    let mut group = c.benchmark_group("signing");
    let bare = SigningKey::from_slice(&[0x46; 32]).unwrap();
    group.bench_function("bare_k256_sign_prehash_recoverable", |b| {
        b.iter(|| bare.sign_prehash_recoverable(black_box(&hash)).unwrap())
    });
    group.bench_function("derive_and_sign", |b| {
        b.iter(|| {
            seed.derive(black_box(&user))
                .unwrap()
                .dangerous_sign_prehash(black_box(&hash))
                .unwrap()
        })
    });
    let key = seed.derive(&user).unwrap();
    group.bench_function("sign_prehash", |b| {
        b.iter(|| key.dangerous_sign_prehash(black_box(&hash)).unwrap())
    });
    group.bench_function("user_signer_new", |b| {
        b.iter(|| UserSigner::for_user(&material, Some(black_box(&user))).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("transaction");
    group.bench_function("eip1559_parse_validate_hash", |b| {
        b.iter(|| {
            UnsignedTransaction::from_json(black_box(TX), TxOptions::default())
                .unwrap()
                .signing_hash()
        })
    });
    let unsigned = UnsignedTransaction::from_json(TX, TxOptions::default()).unwrap();
    let signature = key
        .dangerous_sign_prehash(&unsigned.signing_hash().0)
        .unwrap();
    group.bench_function("eip1559_encode_signed", |b| {
        b.iter(|| {
            black_box(unsigned.clone())
                .sign_with(|_| Ok::<Signature, ()>(signature))
                .unwrap()
        })
    });
    let signer = UserSigner::for_user(&material, Some(&user)).unwrap();
    let request = TransactionRequest::from_json(TX).unwrap();
    group.bench_function("sign_transaction_eip1559", |b| {
        b.iter(|| {
            signer
                .sign(
                    Payload::Transaction(black_box(request.clone())),
                    &SigningPolicy::default(),
                )
                .unwrap()
        })
    });
    group.finish();
}

fn policy(c: &mut Criterion) {
    use nitro_signer_policy::{
        Decision, Facts, Policy,
        approval::{ApproverKind, ApproverSecret, Statement, valid_approvers},
    };
    let hash = [0x5a_u8; 32];
    let bare = SigningKey::from_slice(&[0x46; 32]).unwrap();
    let ops = ApproverSecret::generate(ApproverKind::Ed25519).unwrap();
    let risk = ApproverSecret::generate(ApproverKind::P256).unwrap();
    let hex = |bytes: &[u8]| format!("0x{}", alloy_primitives::hex::encode(bytes));
    let document = serde_json::json!({
        "version": 1,
        "approvers": {
            "ops": {"type": "ed25519", "publicKey": hex(ops.public_key().public_key())},
            "risk": {"type": "p256", "publicKey": hex(risk.public_key().public_key())}
        },
        "rules": [
            {"effect": "deny", "when": {"kinds": ["digest"]}},
            {"effect": "deny", "when": {"typedData": {"primaryTypes": ["Permit", "PermitSingle"]}}},
            {"effect": "allow", "when": {"chainIds": ["0x1"], "valueMax": "0x0", "erc20": {
                "tokens": ["0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"],
                "transfer": {"amountMax": "0x2540be400"}}}},
            {"effect": "allow", "when": {"kinds": ["transaction"], "chainIds": ["0x1"],
                "to": ["0x3535353535353535353535353535353535353535"], "valueMax": "0xde0b6b3a7640000"},
             "approvals": {"threshold": 1, "from": ["ops", "risk"]}},
            {"effect": "allow", "when": {"kinds": ["transaction"]},
             "approvals": {"threshold": 2, "from": ["ops", "risk"]}}
        ],
        "admins": {"threshold": 2, "from": ["ops", "risk"]}
    });
    let policy = Policy::from_json(document.to_string().as_bytes()).unwrap();
    let unsigned = UnsignedTransaction::from_json(TX, TxOptions::default()).unwrap();
    let subject = unsigned.signing_hash().0;
    let key_id = [0x1d; 32];
    let now = 1_800_000_000;
    let expires_at = now + 3_600;
    let approval = |secret: &ApproverSecret, name: &str| {
        secret
            .approve(name, &key_id, Some("user-000123"), &subject, expires_at)
            .unwrap()
    };
    let one_ed25519 = [approval(&ops, "ops")];
    let one_p256 = [approval(&risk, "risk")];
    let both = [approval(&ops, "ops"), approval(&risk, "risk")];
    let statement = Statement {
        key_id: &key_id,
        user_id: Some("user-000123"),
        subject: &subject,
        now,
    };
    // Every approval counts: the benchmark measures verification, not refusal.
    assert_eq!(
        valid_approvers(policy.approvers(), &one_ed25519, &statement).len(),
        1
    );
    assert_eq!(
        valid_approvers(policy.approvers(), &one_p256, &statement).len(),
        1
    );
    assert_eq!(
        valid_approvers(policy.approvers(), &both, &statement).len(),
        2
    );

    let mut group = c.benchmark_group("policy");
    group.bench_function("bare_k256_sign_prehash_recoverable", |b| {
        b.iter(|| bare.sign_prehash_recoverable(black_box(&hash)).unwrap())
    });
    group.bench_function("evaluate_eip1559", |b| {
        b.iter(|| {
            let facts = Facts::transaction(black_box(&unsigned), Some("user-000123"));
            matches!(policy.evaluate(&facts, 1_800_000_000), Decision::Allowed(_))
        })
    });
    group.bench_function("parse_policy", |b| {
        b.iter(|| Policy::from_canonical(black_box(policy.canonical())).unwrap())
    });
    group.bench_function("approval_ed25519", |b| {
        b.iter(|| valid_approvers(policy.approvers(), black_box(&one_ed25519), &statement).len())
    });
    group.bench_function("approval_p256", |b| {
        b.iter(|| valid_approvers(policy.approvers(), black_box(&one_p256), &statement).len())
    });
    group.bench_function("approvals_2_of_2", |b| {
        b.iter(|| valid_approvers(policy.approvers(), black_box(&both), &statement).len())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(60);
    targets = signing, policy
}
criterion_main!(benches);
