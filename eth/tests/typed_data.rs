//! EIP-712 typed data against MetaMask eth-sig-util v4 (an implementation independent of
//! alloy), and the refusals that keep the two from disagreeing or the enclave from stalling.
#![cfg(test)]

use std::time::{Duration, Instant};

use nitro_signer_eth::{PayloadError, TypedData};
use serde_json::{Value, json};

const VECTORS: &str = include_str!("fixtures/eth_sig_util_v4.json");

#[test]
fn hashes_match_eth_sig_util_v4() {
    let vectors: serde_json::Map<String, Value> = serde_json::from_str(VECTORS).unwrap();
    assert!(vectors.len() >= 2);
    for (name, vector) in vectors {
        let typed = TypedData::from_value(vector["doc"].clone()).unwrap();
        assert_eq!(
            typed.signing_hash().unwrap().to_string(),
            vector["hash"].as_str().unwrap(),
            "{name}"
        );
        // This crate hashes structs itself (each type hash once); alloy agrees.
        assert_eq!(
            typed.signing_hash().unwrap(),
            typed.as_alloy().eip712_signing_hash().unwrap(),
            "{name}"
        );
    }
}

fn one(ty: &str, value: Value) -> Value {
    json!({
        "types": {"EIP712Domain": [{"name": "name", "type": "string"}], "T": [{"name": "x", "type": ty}]},
        "primaryType": "T", "domain": {"name": "n"}, "message": {"x": value}
    })
}

fn refused(doc: Value) -> String {
    match TypedData::from_value(doc) {
        Err(PayloadError::TypedData(message)) => message,
        other => panic!("accepted or wrong error: {other:?}"),
    }
}

#[test]
fn leaf_values_have_one_reading() {
    for (ty, value) in [
        ("bool", json!("false")),
        ("bool", json!(0)),
        ("bytes", json!("abcd")),
        ("bytes", json!("0Xabcd")),
        ("bytes", json!("0xabc")),
        ("bytes4", json!("0x0102")),
        ("address", json!("cd2a3d9f938e13cd947ec05abc7fe734df8dd826")),
        (
            "address",
            json!("0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD827"),
        ),
        ("uint256", json!("1_000")),
        ("uint256", json!("0b11")),
        ("uint256", json!("0o7")),
        ("uint256", json!("0XFF")),
        ("uint256", json!("-0x1")),
        ("uint256", json!("+5")),
        ("uint256", json!(9_007_199_254_740_993u64)),
        ("uint256", json!(1.5)),
        ("uint8", json!(256)),
        ("uint256", json!("-1")),
        ("int8", json!(128)),
        ("int8", json!(-129)),
        ("string", json!(5)),
        ("function", json!("0x00")),
        ("uint7", json!(1)),
        ("bytes33", json!("0x00")),
    ] {
        refused(one(ty, value));
    }
    // A second 0x prefix, which const_hex alone would strip: refused by this crate's checks
    // (naming the value), not left to alloy's parser.
    for (ty, value) in [
        ("bytes", json!("0x0x35")),
        ("bytes1", json!("0x0x35")),
        ("bytes32", json!(format!("0x0x{}", "35".repeat(31)))),
        ("address", json!(format!("0x0x{}", "35".repeat(19)))),
        ("uint256", json!("0x0x1")),
        ("int256", json!("0x0x1")),
    ] {
        let message = refused(one(ty, value));
        assert!(message.starts_with("message.x: "), "{ty}: {message}");
    }
    for (ty, value) in [
        ("int8", json!(-128)),
        ("int8", json!("127")),
        ("uint256", json!("0xff")),
        ("uint256", json!(9_007_199_254_740_991u64)),
        (
            "address",
            json!("0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"),
        ),
        ("bytes", json!("0x")),
    ] {
        TypedData::from_value(one(ty, value.clone()))
            .unwrap_or_else(|e| panic!("{ty} {value}: {e}"));
    }
}

#[test]
fn documents_whose_meaning_is_ambiguous_are_refused() {
    // No EIP712Domain declaration: eth-sig-util hashes an empty domain, alloy the fields.
    let mut doc = one("uint8", json!(1));
    doc["types"].as_object_mut().unwrap().remove("EIP712Domain");
    assert!(refused(doc).contains("EIP712Domain"));
    // A null domain value.
    let mut doc = one("uint8", json!(1));
    doc["domain"]["name"] = Value::Null;
    refused(doc);
    // A domain-only signature with a message that would not be signed.
    let mut doc = one("uint8", json!(1));
    doc["primaryType"] = json!("EIP712Domain");
    assert!(refused(doc).contains("must be {}"));
    // A message member missing, and a type name that is not an identifier.
    let mut doc = one("uint8", json!(1));
    doc["message"] = json!({});
    assert!(refused(doc).contains("required by type T"));
    let doc = json!({
        "types": {"EIP712Domain": [], "T$": [{"name": "x", "type": "uint8"}]},
        "primaryType": "T$", "domain": {}, "message": {"x": 1}
    });
    refused(doc);
}

#[test]
fn a_second_hex_prefix_is_refused_in_the_domain() {
    let doc = |contract: &str, salt: &str| {
        json!({
            "types": {
                "EIP712Domain": [
                    {"name": "verifyingContract", "type": "address"},
                    {"name": "salt", "type": "bytes32"}
                ],
                "T": [{"name": "x", "type": "uint8"}]
            },
            "primaryType": "T",
            "domain": {"verifyingContract": contract, "salt": salt},
            "message": {"x": 1}
        })
    };
    let contract = format!("0x{}", "35".repeat(20));
    let salt = format!("0x{}", "35".repeat(32));
    TypedData::from_value(doc(&contract, &salt)).unwrap();
    let message = refused(doc(&contract.replacen("0x35", "0x0x", 1), &salt));
    assert!(
        message.starts_with("domain.verifyingContract: invalid hex digit"),
        "{message}"
    );
    let message = refused(doc(&contract, &salt.replacen("0x35", "0x0x", 1)));
    assert!(
        message.starts_with("domain.salt: invalid hex digit"),
        "{message}"
    );
}

#[test]
fn missing_parts_are_named() {
    for part in ["message", "primaryType", "types", "domain"] {
        let mut doc = one("uint8", json!(1));
        doc.as_object_mut().unwrap().remove(part);
        assert_eq!(refused(doc), format!("{part}: required"));
    }
}

/// Runs `f` on a thread with a 2 MiB stack (a tokio worker's) and a time limit, so that a stack
/// overflow or an exponential blow-up fails the test instead of hanging it.
fn bounded(f: impl FnOnce() + Send + 'static) {
    let start = Instant::now();
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn hostile_type_graphs_are_refused_quickly() {
    // A chain of 3,000 struct types.
    bounded(|| {
        let mut types = serde_json::Map::new();
        types.insert("EIP712Domain".into(), json!([]));
        for i in 0..3000 {
            types.insert(
                format!("T{i}"),
                json!([{"name": "x", "type": format!("T{}", i + 1)}]),
            );
        }
        types.insert("T3000".into(), json!([{"name": "x", "type": "uint8"}]));
        let doc = json!({"types": types, "primaryType": "T0", "domain": {}, "message": {}});
        assert!(TypedData::from_value(doc).is_err());
    });
    // 100,000 array dimensions.
    bounded(|| {
        let ty = format!("uint256{}", "[]".repeat(100_000));
        assert!(TypedData::from_value(one(&ty, json!([]))).is_err());
    });
    // Each of 14 types refers to the next twice: 2^14 nodes when expanded, within the depth limit.
    bounded(|| {
        let mut types = serde_json::Map::new();
        types.insert("EIP712Domain".into(), json!([]));
        for i in 0..14 {
            let next = format!("T{}", i + 1);
            types.insert(
                format!("T{i}"),
                json!([{"name": "a", "type": next}, {"name": "b", "type": next}]),
            );
        }
        types.insert("T14".into(), json!([{"name": "x", "type": "uint8"}]));
        let doc = json!({"types": types, "primaryType": "T0", "domain": {}, "message": {}});
        let message = refused(doc);
        assert!(message.contains("expands to more than"), "{message}");
    });
    // A type that contains itself.
    let doc = json!({
        "types": {"EIP712Domain": [], "Node": [{"name": "children", "type": "Node[]"}]},
        "primaryType": "Node", "domain": {}, "message": {"children": []}
    });
    assert!(refused(doc).contains("refers to itself"));
}
