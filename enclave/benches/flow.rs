//! The cost of Flow signing (`docs/flow.md`), beside the secp256k1 figures in the same run.
//!
//! `cargo bench -p nitro-signer-enclave --bench flow`
//!
//! - `curves/secp256k1_derive_and_sign` and `curves/p256_derive_and_sign`: a cached seed's hot
//!   path on each curve, the HKDF derivation then the signature (`r ‖ s`).
//! - `curves/secp256k1_sign_prehash` and `curves/p256_sign_prehash`: the signature alone.
//! - `curves/*_sign_prehash_with_public_key`: what a Flow signature request costs the enclave
//!   after the derivation (the answer carries the public key, the receipt its fingerprint).
//! - `curves/p256_public_key`: the public key (`POST /v1/flow/public-key`).
//! - `flow/envelope_parse_encode_sha3` and `flow/envelope_parse_encode_sha2`: a transaction's
//!   JSON parsed and checked, the envelope RLP with the domain tag, and its hash, for a token
//!   transfer as FCL sends it (a script of about 1 KB, two arguments, one payload signature).
#![allow(missing_docs, clippy::unwrap_used)]

use std::{hint::black_box, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use nitro_signer_common::{UserId, key_blob::Curve};
use nitro_signer_enclave::{KeyMaterial, MasterSeed};
use nitro_signer_flow::{FlowTransaction, HashAlgorithm, Role, Signer, hash};
use zeroize::Zeroizing;

/// A FungibleToken transfer as FCL builds it (script shortened to the usual size).
fn transfer() -> Vec<u8> {
    let script = format!(
        "import FungibleToken from 0xf233dcee88fe0abe\nimport FlowToken from 0x1654653399040a61\n\
         transaction(amount: UFix64, to: Address) {{\n{}\n}}",
        "  // prepare and execute the withdrawal and the deposit\n".repeat(16)
    );
    serde_json::to_vec(&serde_json::json!({
        "script": script,
        "arguments": [
            r#"{"type":"UFix64","value":"10.00000000"}"#,
            r#"{"type":"Address","value":"0xf8d6e0586b0a20c7"}"#
        ],
        "referenceBlockId": "0xf0e4c2f76c58916ec258f246851bea091d14d4247a2fc3e18694461b1816e13b",
        "gasLimit": 9999,
        "proposalKey": {"address": "0x01cf0e2f2f715450", "keyIndex": 0, "sequenceNumber": 42},
        "payer": "0xf8d6e0586b0a20c7",
        "authorizers": ["0x01cf0e2f2f715450"],
        "payloadSignatures": [{"address": "0x01cf0e2f2f715450", "keyIndex": 0,
            "signature": format!("0x{}", "5a".repeat(64))}]
    }))
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let digest = [0x5a_u8; 32];
    let seed = MasterSeed::new(Zeroizing::new([0x11; 32]));
    let material = KeyMaterial::Seed(MasterSeed::new(Zeroizing::new([0x11; 32])));
    let user = UserId::new("user-000123").unwrap();

    let mut group = c.benchmark_group("curves");
    group.bench_function("secp256k1_derive_and_sign", |b| {
        b.iter(|| {
            material
                .flow_key(Curve::Secp256k1, Some(black_box(&user)))
                .unwrap()
                .dangerous_sign_prehash(black_box(&digest))
                .unwrap()
        })
    });
    group.bench_function("p256_derive_and_sign", |b| {
        b.iter(|| {
            seed.derive_p256(black_box(&user))
                .unwrap()
                .dangerous_sign_prehash(black_box(&digest))
                .unwrap()
        })
    });
    let k1 = material.flow_key(Curve::Secp256k1, Some(&user)).unwrap();
    let p256 = material.flow_key(Curve::P256, Some(&user)).unwrap();
    group.bench_function("secp256k1_sign_prehash", |b| {
        b.iter(|| k1.dangerous_sign_prehash(black_box(&digest)).unwrap())
    });
    group.bench_function("p256_sign_prehash", |b| {
        b.iter(|| p256.dangerous_sign_prehash(black_box(&digest)).unwrap())
    });
    group.bench_function("p256_sign_prehash_with_public_key", |b| {
        b.iter(|| {
            p256.dangerous_sign_prehash_with_public_key(black_box(&digest))
                .unwrap()
        })
    });
    group.bench_function("secp256k1_sign_prehash_with_public_key", |b| {
        b.iter(|| {
            k1.dangerous_sign_prehash_with_public_key(black_box(&digest))
                .unwrap()
        })
    });
    group.bench_function("p256_public_key", |b| {
        b.iter(|| black_box(&p256).public_key_xy())
    });
    group.finish();

    let json = transfer();
    let payer = Signer {
        address: "0xf8d6e0586b0a20c7".parse().unwrap(),
        key_index: 0,
    };
    let mut group = c.benchmark_group("flow");
    for (name, algorithm) in [
        ("envelope_parse_encode_sha3", HashAlgorithm::Sha3_256),
        ("envelope_parse_encode_sha2", HashAlgorithm::Sha2_256),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let tx = FlowTransaction::from_json(black_box(&json)).unwrap();
                let message = tx.signing_message(Role::Payer, &payer).unwrap();
                hash(algorithm, &message)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = flow;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(flow);
