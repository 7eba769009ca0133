//! The vectors of docs/key-derivation.md against the enclave, the reference derivation and
//! libsecp256k1.
#![cfg(test)]

use alloy_primitives::{Address, hex};
use nitro_signer_common::UserId;
use nitro_signer_enclave::MasterSeed;
use nitro_signer_tests::{libsecp, reference_derivation};
use zeroize::Zeroizing;

const DOC: &str = include_str!("../../docs/key-derivation.md");

struct Vector {
    seed: [u8; 32],
    user_id: String,
    private_key: [u8; 32],
    address: Address,
}

/// The rows of the vector table: `| seed | user id | private key | address |`.
fn vectors() -> Vec<Vector> {
    // The secp256k1 vectors come before the P-256 and key id sections, whose tables have other
    // columns.
    let derivation = DOC.split("## P-256").next().unwrap();
    let rows: Vec<Vector> = derivation
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line
                .split('|')
                .map(|c| c.trim().trim_matches('`'))
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(cells.len(), 4, "{line}");
            let user_id = match cells[1].strip_prefix("\"x\" × ") {
                Some(n) => "x".repeat(n.parse().unwrap()),
                None => cells[1].to_string(),
            };
            Vector {
                seed: hex::decode_to_array(cells[0]).unwrap(),
                user_id,
                private_key: hex::decode_to_array(cells[2]).unwrap(),
                address: cells[3].parse().unwrap(),
            }
        })
        .collect();
    assert!(rows.len() >= 7, "the vector table lost rows");
    rows
}

#[test]
fn enclave_derivation_matches_the_documented_vectors() {
    for v in vectors() {
        let seed = MasterSeed::new(Zeroizing::new(v.seed));
        let derived = seed
            .derive(&UserId::new(v.user_id.clone()).unwrap())
            .unwrap();
        // The enclave never exposes key bytes; its address must be the documented key's.
        assert_eq!(derived.address(), v.address, "user {:?}", v.user_id);
    }
}

#[test]
fn documented_vectors_are_consistent_with_independent_code() {
    for v in vectors() {
        assert_eq!(
            reference_derivation::derive(&v.seed, &v.user_id),
            v.private_key,
            "{:?}",
            v.user_id
        );
        assert_eq!(
            libsecp::address(&v.private_key),
            v.address,
            "{:?}",
            v.user_id
        );
    }
}

#[test]
fn generator_script_reproduces_the_table() {
    // The Python generator is the independent implementation the table came from; run it when
    // Python is there (CI installs it) and compare its key column with the document.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/key_derivation.py");
    let output = match std::process::Command::new("python3").arg(script).output() {
        Ok(output) => output,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipping: python3 not runnable ({e})");
            return;
        }
        Err(e) => panic!("python3 is required in CI: {e}"),
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    let keys: Vec<String> = printed
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            l.split('|')
                .nth(3)
                .unwrap()
                .trim()
                .trim_matches('`')
                .to_string()
        })
        .collect();
    let documented: Vec<String> = vectors()
        .iter()
        .map(|v| hex::encode(v.private_key))
        .collect();
    assert_eq!(keys, documented);
}

/// The rows of the P-256 table: `| seed | user id | private key | public key (x ‖ y) |`.
fn p256_vectors() -> Vec<(String, [u8; 32], String, String)> {
    let section = DOC
        .split("### P-256 test vectors")
        .nth(1)
        .unwrap()
        .split("## Key id")
        .next()
        .unwrap();
    let rows: Vec<_> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line
                .split('|')
                .map(|c| c.trim().trim_matches('`'))
                .filter(|c| !c.is_empty())
                .collect();
            assert_eq!(cells.len(), 4, "{line}");
            let user_id = match cells[1].strip_prefix("\"x\" × ") {
                Some(n) => "x".repeat(n.parse().unwrap()),
                None => cells[1].to_string(),
            };
            (
                cells[0].to_owned(),
                hex::decode_to_array(cells[0]).unwrap(),
                user_id,
                format!("{}|{}", cells[2], cells[3]),
            )
        })
        .map(|(_, seed, user, keys)| (user, seed, keys.clone(), keys))
        .collect();
    assert!(rows.len() >= 6, "the P-256 vector table lost rows");
    rows
}

#[test]
fn enclave_p256_derivation_matches_the_documented_vectors() {
    for (user_id, seed, keys, _) in p256_vectors() {
        let (_, public_key) = keys.split_once('|').unwrap();
        let derived = MasterSeed::new(Zeroizing::new(seed))
            .derive_p256(&UserId::new(user_id.clone()).unwrap())
            .unwrap();
        // The public keys were computed by Python `cryptography` from the documented private
        // keys; the enclave never shows its key bytes.
        assert_eq!(
            hex::encode(derived.public_key_xy()),
            public_key,
            "{user_id:?}"
        );
    }
}

#[test]
fn p256_generator_script_reproduces_the_table() {
    // The independent generator (standard-library HKDF, `cryptography` for the public keys), in
    // the tests' Python environment.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/p256_derivation.py");
    let printed = String::from_utf8(nitro_signer_tests::python::run(&[script], b"")).unwrap();
    let rows: Vec<String> = printed
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            format!("{}|{}", cells[3], cells[4])
        })
        .collect();
    let documented: Vec<String> = p256_vectors()
        .into_iter()
        .map(|(_, _, keys, _)| keys)
        .collect();
    assert_eq!(rows, documented);
    assert!(
        DOC.contains(printed.lines().last().unwrap()),
        "the retry candidate line differs"
    );
}
