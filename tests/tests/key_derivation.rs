//! The vectors of docs/key-derivation.md against the enclave, the reference derivation and
//! libsecp256k1.
#![cfg(test)]

use alloy_primitives::{Address, hex};
use nitro_signer_common::UserId;
use nitro_signer_common::key_blob::Curve;
use nitro_signer_enclave::{KeyMaterial, MasterSeed};
use nitro_signer_tests::{libsecp, reference_derivation};
use zeroize::Zeroizing;

const DOC: &str = include_str!("../../docs/key-derivation.md");

struct Vector {
    seed: [u8; 32],
    user_id: String,
    private_key: [u8; 32],
    address: Address,
}

/// The rows of the derivation tables in `text`, `| seed | user id | private key | … |`: the
/// seed, the user id (`"x" × N` spelled out) and the last two cells as written.
fn table(text: &str) -> Vec<([u8; 32], String, String, String)> {
    text.lines()
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
                hex::decode_to_array(cells[0]).unwrap(),
                user_id,
                cells[2].to_owned(),
                cells[3].to_owned(),
            )
        })
        .collect()
}

/// The rows of the vector table: `| seed | user id | private key | address |`.
fn vectors() -> Vec<Vector> {
    // The secp256k1 vectors come before the P-256 and key id sections, whose tables have other
    // columns.
    let derivation = DOC.split("## Flow account keys").next().unwrap();
    let rows: Vec<Vector> = table(derivation)
        .into_iter()
        .map(|(seed, user_id, private_key, address)| Vector {
            seed,
            user_id,
            private_key: hex::decode_to_array(&private_key).unwrap(),
            address: address.parse().unwrap(),
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

/// The rows of a Flow key table (`heading` its heading): user id, seed, private key and
/// public key (x ‖ y), both hex.
fn flow_vectors(heading: &str) -> Vec<(String, [u8; 32], String, String)> {
    let section = DOC
        .split(heading)
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap()
        .split("\n### ")
        .next()
        .unwrap();
    let rows: Vec<_> = table(section)
        .into_iter()
        .map(|(seed, user_id, private_key, public_key)| (user_id, seed, private_key, public_key))
        .collect();
    assert!(rows.len() >= 6, "the table under {heading} lost rows");
    rows
}

const P256: &str = "### P-256 test vectors";
const FLOW_SECP256K1: &str = "### Flow secp256k1 test vectors";

#[test]
fn enclave_flow_derivations_match_the_documented_vectors() {
    for (heading, curve) in [(P256, Curve::P256), (FLOW_SECP256K1, Curve::Secp256k1)] {
        for (user_id, seed, _, public_key) in flow_vectors(heading) {
            let material = KeyMaterial::Seed(MasterSeed::new(Zeroizing::new(seed)));
            let key = material
                .flow_key(curve, Some(&UserId::new(user_id.clone()).unwrap()))
                .unwrap();
            // The public keys were computed by Python `cryptography` from the documented
            // private keys; the enclave never shows its key bytes.
            assert_eq!(
                hex::encode(key.public_key_xy()),
                public_key,
                "{heading} {user_id:?}"
            );
        }
    }
    // And the Flow secp256k1 keys are checked against libsecp256k1 too.
    for (user_id, _, private_key, public_key) in flow_vectors(FLOW_SECP256K1) {
        let private_key: [u8; 32] = hex::decode_to_array(&private_key).unwrap();
        let secret = secp256k1::SecretKey::from_byte_array(private_key).unwrap();
        let public = secp256k1::PublicKey::from_secret_key_global(&secret).serialize_uncompressed();
        assert_eq!(hex::encode(&public[1..]), public_key, "{user_id:?}");
    }
}

#[test]
fn flow_generator_script_reproduces_the_tables() {
    // The independent generator (standard-library HKDF, `cryptography` for the public keys), in
    // the tests' Python environment.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/flow_derivation.py");
    for (heading, argument) in [(P256, "p256"), (FLOW_SECP256K1, "flow-secp256k1")] {
        let printed =
            String::from_utf8(nitro_signer_tests::python::run(&[script, argument], b"")).unwrap();
        let rows: Vec<(String, String)> = printed
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
                (cells[3].to_owned(), cells[4].to_owned())
            })
            .collect();
        let documented: Vec<(String, String)> = flow_vectors(heading)
            .into_iter()
            .map(|(_, _, private_key, public_key)| (private_key, public_key))
            .collect();
        assert_eq!(rows, documented, "{heading}");
        assert!(
            DOC.contains(printed.lines().last().unwrap()),
            "{heading}: the retry candidate line differs"
        );
    }
}
