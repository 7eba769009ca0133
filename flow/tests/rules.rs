//! The parsing rules, the limits, the role checks and the account key encoding.

#![cfg(test)]

use nitro_signer_flow::{
    Address, FULL_WEIGHT, FlowError, FlowTransaction, HashAlgorithm, Role, SIGN_ALGO_ECDSA_P256,
    Signer, account_key_rlp, hash, transaction,
};
use serde_json::{Value, json};

const PROPOSER: &str = "0x0000000000000001";
const PAYER: &str = "0x0000000000000002";
const AUTH_A: &str = "0x0000000000000003";
const AUTH_B: &str = "0x0000000000000004";
const OTHER: &str = "0x00000000000000ff";

fn base() -> Value {
    json!({
        "script": "transaction(a: UFix64) { prepare(acct: &Account) {} }",
        "arguments": [r#"{"type":"UFix64","value":"10.0"}"#],
        "referenceBlockId": "0xf0e4c2f76c58916ec258f246851bea091d14d4247a2fc3e18694461b1816e13b",
        "gasLimit": 9999,
        "proposalKey": {"address": PROPOSER, "keyIndex": 3, "sequenceNumber": 42},
        "payer": PAYER,
        "authorizers": [AUTH_A, AUTH_B],
    })
}

fn parse(v: &Value) -> Result<FlowTransaction, FlowError> {
    FlowTransaction::from_json(&serde_json::to_vec(v).unwrap())
}

fn parse_str(s: &str) -> Result<FlowTransaction, FlowError> {
    FlowTransaction::from_json(s.as_bytes())
}

fn path_of(r: Result<FlowTransaction, FlowError>) -> String {
    match r {
        Err(FlowError::Json { path, .. } | FlowError::Invalid { path, .. }) => path,
        other => panic!("expected a field error, got {other:?}"),
    }
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    *v.pointer_mut(pointer).unwrap() = value;
    v
}

fn signer(address: &str, key_index: u32) -> Signer {
    Signer {
        address: address.parse().unwrap(),
        key_index,
    }
}

#[test]
fn numbers_are_integers_or_canonical_decimal_strings() {
    for ok in [
        json!(0),
        json!(9999),
        json!("9999"),
        json!("0"),
        json!(u64::MAX),
    ] {
        parse(&with(base(), "/gasLimit", ok.clone())).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let tx = parse(&with(base(), "/gasLimit", json!("18446744073709551615"))).unwrap();
    assert_eq!(tx.gas_limit, u64::MAX);
    for bad in [
        json!(-1),
        json!(1.5),
        json!(1.0),
        json!("01"),
        json!("+1"),
        json!("0x10"),
        json!(""),
        json!(" 1"),
        json!("18446744073709551616"),
        json!(null),
        json!(true),
    ] {
        assert_eq!(
            path_of(parse(&with(base(), "/gasLimit", bad.clone()))),
            "gasLimit",
            "{bad}"
        );
    }
    // Raw JSON forms serde_json would otherwise read as floats.
    for raw in ["1e3", "18446744073709551616", "1.0"] {
        let doc = serde_json::to_string(&base()).unwrap().replace("9999", raw);
        assert_eq!(path_of(parse_str(&doc)), "gasLimit", "{raw}");
    }
    // keyIndex is a u32, as in flow-go-sdk.
    let big = with(
        base(),
        "/proposalKey/keyIndex",
        json!(u64::from(u32::MAX) + 1),
    );
    assert_eq!(path_of(parse(&big)), "proposalKey.keyIndex");
    parse(&with(base(), "/proposalKey/keyIndex", json!(u32::MAX))).unwrap();
    let seq = with(base(), "/proposalKey/sequenceNumber", json!("x"));
    assert_eq!(path_of(parse(&seq)), "proposalKey.sequenceNumber");
}

#[test]
fn addresses_take_an_optional_0x_and_exactly_16_digits() {
    let tx = parse(&with(base(), "/payer", json!("0000000000000002"))).unwrap();
    assert_eq!(tx.payer, PAYER.parse::<Address>().unwrap());
    let tx = parse(&with(base(), "/payer", json!("0x00000000000000AB"))).unwrap();
    assert_eq!(tx.payer.to_string(), "0x00000000000000ab");
    for bad in [
        "0x02",
        "02",
        "0x000000000000000002",
        "0X0000000000000002",
        "0x000000000000000g",
        "0x0000000000000000",
        "",
    ] {
        assert_eq!(
            path_of(parse(&with(base(), "/payer", json!(bad)))),
            "payer",
            "{bad}"
        );
    }
    let auth = with(base(), "/authorizers/1", json!("0x1"));
    assert_eq!(path_of(parse(&auth)), "authorizers[1]");
}

#[test]
fn block_id_is_exactly_32_bytes_and_signatures_are_even_hex() {
    let id = "f0e4c2f76c58916ec258f246851bea091d14d4247a2fc3e18694461b1816e13b";
    parse(&with(base(), "/referenceBlockId", json!(id))).unwrap();
    for bad in [&id[2..], "0x01", "", &format!("{id}00")] {
        let v = with(base(), "/referenceBlockId", json!(bad));
        assert_eq!(path_of(parse(&v)), "referenceBlockId", "{bad}");
    }
    let sig = |s: &str| {
        let mut v = base();
        v["payloadSignatures"] = json!([{"address": AUTH_A, "keyIndex": 0, "signature": s}]);
        parse(&v)
    };
    assert_eq!(
        sig("0xabcd").unwrap().payload_signatures.unwrap()[0].signature,
        [0xab, 0xcd]
    );
    sig("").unwrap();
    sig(&"ab".repeat(transaction::MAX_SIGNATURE_BYTES)).unwrap();
    assert_eq!(path_of(sig("abc")), "payloadSignatures[0].signature");
    assert_eq!(path_of(sig("zz")), "payloadSignatures[0].signature");
    assert_eq!(
        path_of(sig(&"ab".repeat(transaction::MAX_SIGNATURE_BYTES + 1))),
        "payloadSignatures[0].signature"
    );
}

#[test]
fn json_rules_apply_and_errors_name_the_path() {
    let doc = serde_json::to_string(&base()).unwrap();
    // Repeated key, at any depth.
    let repeated = doc.replacen(r#""keyIndex":3"#, r#""keyIndex":3,"keyIndex":4"#, 1);
    assert_eq!(path_of(parse_str(&repeated)), "proposalKey.keyIndex");
    // Unknown field.
    let mut v = base();
    v["proposalKey"]["weight"] = json!(1);
    assert_eq!(path_of(parse(&v)), "proposalKey.weight");
    let mut v = base();
    v["payloadSignatures"] =
        json!([{"address": AUTH_A, "keyIndex": 0, "signature": "", "extensionData": "ab"}]);
    assert_eq!(path_of(parse(&v)), "payloadSignatures[0].extensionData");
    // Missing fields: nothing has a default but payloadSignatures.
    for field in [
        "script",
        "arguments",
        "referenceBlockId",
        "gasLimit",
        "proposalKey",
        "payer",
        "authorizers",
    ] {
        let mut v = base();
        v.as_object_mut().unwrap().remove(field);
        assert!(parse(&v).is_err(), "{field}");
    }
    // Trailing bytes.
    assert!(parse_str(&format!("{doc} {{}}")).is_err());
    assert!(parse_str("").is_err());
}

#[test]
fn arguments_are_json_documents_without_a_trailing_line_feed() {
    let arg = |a: &str| parse(&with(base(), "/arguments/0", json!(a)));
    arg(r#"{"type":"String","value":"a\nb"}"#).unwrap();
    assert_eq!(
        path_of(arg("{\"type\":\"Bool\",\"value\":true}\n")),
        "arguments[0]"
    );
    assert_eq!(
        path_of(arg(r#"{"type":"Bool","type":"Int","value":"1"}"#)),
        "arguments[0]"
    );
    assert_eq!(path_of(arg("not json")), "arguments[0]");
    assert_eq!(path_of(arg("")), "arguments[0]");
}

#[test]
fn limits_and_duplicates_are_refused() {
    let script = "a".repeat(transaction::MAX_SCRIPT_BYTES + 1);
    assert_eq!(
        path_of(parse(&with(base(), "/script", json!(script)))),
        "script"
    );
    let args = vec![json!("1"); transaction::MAX_ARGUMENTS + 1];
    assert_eq!(
        path_of(parse(&with(base(), "/arguments", json!(args)))),
        "arguments"
    );
    let args = vec![json!("1"); transaction::MAX_ARGUMENTS];
    parse(&with(base(), "/arguments", json!(args))).unwrap();
    let big = format!("\"{}\"", "a".repeat(transaction::MAX_ARGUMENT_BYTES));
    assert_eq!(
        path_of(parse(&with(base(), "/arguments", json!([big])))),
        "arguments"
    );
    let auths: Vec<String> = (1..=transaction::MAX_AUTHORIZERS as u64 + 1)
        .map(|i| format!("0x{i:016x}"))
        .collect();
    assert_eq!(
        path_of(parse(&with(base(), "/authorizers", json!(auths)))),
        "authorizers"
    );
    let dup = with(base(), "/authorizers", json!([AUTH_A, AUTH_B, AUTH_A]));
    assert_eq!(path_of(parse(&dup)), "authorizers[2]");
    // The proposer or payer may also authorize: only repeats within authorizers are refused.
    parse(&with(base(), "/authorizers", json!([PAYER, PROPOSER]))).unwrap();

    let mut v = base();
    v["payloadSignatures"] = json!([
        {"address": AUTH_A, "keyIndex": 0, "signature": "01"},
        {"address": AUTH_A, "keyIndex": 0, "signature": "02"},
    ]);
    assert_eq!(path_of(parse(&v)), "payloadSignatures[1]");
    v["payloadSignatures"] = json!([{"address": OTHER, "keyIndex": 0, "signature": "01"}]);
    assert_eq!(path_of(parse(&v)), "payloadSignatures[0].address");
}

#[test]
fn each_role_is_accepted_and_refused_as_specified() {
    let tx = parse(&base()).unwrap();
    let payload = tx.payload_message();
    let envelope = tx.envelope_message().unwrap();

    // Proposer: exactly the proposal key.
    assert_eq!(
        tx.signing_message(Role::Proposer, &signer(PROPOSER, 3))
            .unwrap(),
        payload
    );
    for wrong in [signer(PROPOSER, 2), signer(PAYER, 3), signer(AUTH_A, 3)] {
        assert!(matches!(
            tx.signing_message(Role::Proposer, &wrong),
            Err(FlowError::Role {
                role: "proposer",
                ..
            })
        ));
    }
    // Authorizer: any key of an authorizer.
    for ok in [signer(AUTH_A, 0), signer(AUTH_B, 7)] {
        assert_eq!(tx.signing_message(Role::Authorizer, &ok).unwrap(), payload);
    }
    for wrong in [signer(PROPOSER, 3), signer(PAYER, 0), signer(OTHER, 0)] {
        assert!(matches!(
            tx.signing_message(Role::Authorizer, &wrong),
            Err(FlowError::Role {
                role: "authorizer",
                ..
            })
        ));
    }
    // Payer: any key of the payer, over the envelope.
    assert_eq!(
        tx.signing_message(Role::Payer, &signer(PAYER, 5)).unwrap(),
        envelope
    );
    for wrong in [signer(PROPOSER, 3), signer(AUTH_A, 0), signer(OTHER, 0)] {
        assert!(matches!(
            tx.signing_message(Role::Payer, &wrong),
            Err(FlowError::Role { role: "payer", .. })
        ));
    }
    assert_ne!(payload, envelope);

    // With payload signatures: the payer signs over them, the payload roles refuse.
    let mut v = base();
    v["payloadSignatures"] = json!([
        {"address": AUTH_B, "keyIndex": 1, "signature": "bb"},
        {"address": PROPOSER, "keyIndex": 3, "signature": "aa"},
    ]);
    let signed = parse(&v).unwrap();
    let env = signed
        .signing_message(Role::Payer, &signer(PAYER, 0))
        .unwrap();
    assert_ne!(env, envelope);
    assert!(env.starts_with(&nitro_signer_flow::TRANSACTION_DOMAIN_TAG));
    for (role, s) in [
        (Role::Proposer, signer(PROPOSER, 3)),
        (Role::Authorizer, signer(AUTH_A, 0)),
    ] {
        assert!(matches!(
            signed.signing_message(role, &s),
            Err(FlowError::Role { .. })
        ));
    }
    // An empty list is no signature at all.
    let empty = parse(&with(base(), "/authorizers", json!([AUTH_A, AUTH_B]))).unwrap();
    let mut empty_sigs = empty.clone();
    empty_sigs.payload_signatures = Some(vec![]);
    assert_eq!(
        empty_sigs
            .signing_message(Role::Proposer, &signer(PROPOSER, 3))
            .unwrap(),
        payload
    );
    assert_eq!(
        empty_sigs
            .signing_message(Role::Payer, &signer(PAYER, 0))
            .unwrap(),
        envelope
    );

    // A transaction built in code is checked again.
    let mut zero = parse(&base()).unwrap();
    zero.payer = Address([0; 8]);
    assert!(matches!(
        zero.signing_message(Role::Proposer, &signer(PROPOSER, 3)),
        Err(FlowError::Invalid { path, .. }) if path == "payer"
    ));
    let mut bad = empty;
    bad.authorizers.push(bad.authorizers[0]);
    assert!(matches!(
        bad.signing_message(Role::Proposer, &signer(PROPOSER, 3)),
        Err(FlowError::Invalid { .. })
    ));
}

#[test]
fn one_account_in_every_role() {
    let mut v = base();
    v["payer"] = json!(PROPOSER);
    v["authorizers"] = json!([PROPOSER]);
    let tx = parse(&v).unwrap();
    assert_eq!(tx.signers(), vec![PROPOSER.parse::<Address>().unwrap()]);
    let payload = tx.payload_message();
    assert_eq!(
        tx.signing_message(Role::Proposer, &signer(PROPOSER, 3))
            .unwrap(),
        payload
    );
    assert_eq!(
        tx.signing_message(Role::Authorizer, &signer(PROPOSER, 0))
            .unwrap(),
        payload
    );
    let envelope = tx
        .signing_message(Role::Payer, &signer(PROPOSER, 0))
        .unwrap();
    assert_eq!(envelope, tx.envelope_message().unwrap());
}

#[test]
fn roles_and_signers_in_json() {
    let s: Signer = serde_json::from_value(json!({"address": PAYER, "keyIndex": "2"})).unwrap();
    assert_eq!(s, signer(PAYER, 2));
    let r: Role = serde_json::from_value(json!("authorizer")).unwrap();
    assert_eq!(r, Role::Authorizer);
    assert!(serde_json::from_value::<Role>(json!("Payer")).is_err());
    let h: HashAlgorithm = serde_json::from_value(json!("sha2-256")).unwrap();
    assert_eq!(h, HashAlgorithm::Sha2_256);
}

#[test]
fn hash_is_over_the_whole_message() {
    let tx = parse(&base()).unwrap();
    let m = tx.payload_message();
    assert_ne!(
        hash(HashAlgorithm::Sha2_256, &m),
        hash(HashAlgorithm::Sha3_256, &m)
    );
}

/// Account keys as flow-go encodes them: keys added to the mainnet and testnet core contract
/// accounts by flow-go's `AddMissingKeysMigration` (decoded there with
/// `flow.DecodeRuntimeAccountPublicKey`).
#[test]
fn account_key_encoding_matches_flow_go() {
    for (xy, hash_algo, encoded) in [
        (
            "3588eb28b60e28d24c1e8b03f9a00f73ebd3f6707ee813e27d58ecb6439b8dde1413d7a74a7cc7e8939cbef2e0aa6acc51d5c7010afdb4c6dba55d4cc2ca8bed",
            HashAlgorithm::Sha2_256,
            "f847b8403588eb28b60e28d24c1e8b03f9a00f73ebd3f6707ee813e27d58ecb6439b8dde1413d7a74a7cc7e8939cbef2e0aa6acc51d5c7010afdb4c6dba55d4cc2ca8bed02018203e8",
        ),
        (
            "2b0bf247520770a4bad19e07f6d6b1e8f0542da564154087e2681b175b4432ec2c7b09a52d34dabe0a887ea0f96b067e52c6a0792dcff730fe78a6c5fbbf0a9c",
            HashAlgorithm::Sha3_256,
            "f847b8402b0bf247520770a4bad19e07f6d6b1e8f0542da564154087e2681b175b4432ec2c7b09a52d34dabe0a887ea0f96b067e52c6a0792dcff730fe78a6c5fbbf0a9c02038203e8",
        ),
    ] {
        let xy: [u8; 64] = hex::decode(xy).unwrap().try_into().unwrap();
        let rlp = account_key_rlp(&xy, SIGN_ALGO_ECDSA_P256, hash_algo, FULL_WEIGHT);
        assert_eq!(hex::encode(rlp), encoded);
    }
    // Weight 0 and small weights are RLP integers too.
    let rlp = account_key_rlp(&[0; 64], 3, HashAlgorithm::Sha3_256, 0);
    assert_eq!(hex::encode(&rlp[rlp.len() - 3..]), "030380");
}
