//! Every parser of untrusted input returns an error, never panics, on arbitrary bytes and on
//! arbitrary JSON built from the field names the parsers know (so that the generated documents
//! get past the first checks and into the validation logic).
#![cfg(test)]

use alloy_primitives::keccak256;
use nitro_signer_eth::{
    AuthorizationOptions, AuthorizationRequest, B256, PayloadError, PersonalMessage,
    TransactionRequest, TxOptions, TypedData,
    typed_data::{MAX_HASHED_BYTES, MAX_TYPED_DATA_LEN},
};
use proptest::prelude::*;
use serde_json::{Map, Value};

const KEYS: &[&str] = &[
    "type",
    "chainId",
    "nonce",
    "from",
    "to",
    "value",
    "gas",
    "gasLimit",
    "gasPrice",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "maxFeePerBlobGas",
    "blobVersionedHashes",
    "accessList",
    "authorizationList",
    "input",
    "data",
    "address",
    "storageKeys",
    "yParity",
    "r",
    "s",
    "utf8",
    "types",
    "primaryType",
    "domain",
    "message",
    "name",
    "version",
    "verifyingContract",
    "salt",
    "EIP712Domain",
    "Mail",
    "Person",
    "wallet",
    "contents",
];

const STRINGS: &[&str] = &[
    "0x",
    "0x0",
    "0x1",
    "0x01",
    "0x4",
    "0x5",
    "0xffffffffffffffff",
    "0x10000000000000000",
    "0x3535353535353535353535353535353535353535",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0x01a915e4d060149eb4365960e6a7a45f334393093061116b197e3240065ff2d8",
    "uint256",
    "string",
    "address",
    "bytes32",
    "Person",
    "Person[]",
    "Mail",
    "Person[2]",
    "",
    "]",
    "[",
    "[]",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        proptest::sample::select(STRINGS).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..10).prop_map(
                |entries| {
                    Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
        ]
    })
}

fn exercise(bytes: &[u8]) {
    if let Ok(request) = TransactionRequest::from_json(bytes) {
        for allow_pre_eip155 in [false, true] {
            if let Ok(tx) = request
                .clone()
                .into_unsigned(TxOptions { allow_pre_eip155 })
            {
                let _ = tx.signing_hash();
            }
        }
    }
    if let Ok(message) = PersonalMessage::from_json(bytes) {
        let _ = message.signing_hash();
    }
    if let Ok(typed) = TypedData::from_json(bytes) {
        // This crate hashes structs itself (each type hash once); alloy must agree.
        assert_eq!(
            typed.signing_hash().ok(),
            typed.as_alloy().eip712_signing_hash().ok()
        );
    }
    if let Ok(auth) = AuthorizationRequest::from_json(bytes)
        && let Ok(auth) = auth.into_unsigned(AuthorizationOptions {
            allow_any_chain: true,
        })
    {
        let _ = auth.signing_hash();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        exercise(&serde_json::to_vec(&value).unwrap());
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    exercise(deep.as_bytes());
    let deep_typed =
        format!(r#"{{"types":{{}},"primaryType":"A","domain":{{}},"message":{deep}}}"#);
    assert!(TypedData::from_json(deep_typed.as_bytes()).is_err());
}

#[test]
fn eip712_type_hashes_are_computed_once_per_type_not_per_value() {
    // A wide type W (64 members with 400-character names: a 26 KB encodeType) that E refers to,
    // and as many small E values (`{"w":[]}`, 9 bytes) as fit in the rest of 64 KiB. Computing
    // E's type hash for every value, as alloy does, hashes encodeType(E) thousands of times
    // (about 0.3 s in a release build); this crate computes it once.
    let members: Vec<String> = (0..64)
        .map(|i| format!(r#"{{"name":"m{i}_{}","type":"uint8"}}"#, "a".repeat(400)))
        .collect();
    let head = format!(
        r#"{{"types":{{"EIP712Domain":[],"W":[{}],"E":[{{"name":"w","type":"W[]"}}],
        "P":[{{"name":"e","type":"E[][]"}}]}},"primaryType":"P","domain":{{}},"message":{{"e":["#,
        members.join(",")
    );
    // Arrays of at most 1,000 values (the limit is 1,024).
    let values = (MAX_TYPED_DATA_LEN - head.len() - 200) / 9;
    let rows: Vec<usize> = (0..values.div_ceil(1000))
        .map(|r| (values - r * 1000).min(1000))
        .collect();
    let body: Vec<String> = rows
        .iter()
        .map(|&n| format!("[{}]", vec![r#"{"w":[]}"#; n].join(",")))
        .collect();
    let doc = format!("{head}{}]}}}}", body.join(","));
    assert!(doc.len() <= MAX_TYPED_DATA_LEN);

    // The work alloy's way: encodeType(E) for each E value is well over the hashing budget.
    let w_members: Vec<String> = (0..64)
        .map(|i| format!("uint8 m{i}_{}", "a".repeat(400)))
        .collect();
    let encode_w = format!("W({})", w_members.join(","));
    let encode_e = format!("E(W[] w){encode_w}");
    assert!(values > 3000);
    assert!(values * encode_e.len() > 10 * MAX_HASHED_BYTES);

    // Accepted, hence hashed within MAX_HASHED_BYTES; the hash is EIP-712's, worked out here
    // from the definitions.
    let typed = TypedData::from_json(doc.as_bytes()).unwrap();
    let concat =
        |words: &mut dyn Iterator<Item = B256>| -> Vec<u8> { words.flat_map(|w| w.0).collect() };
    let e_hash = keccak256(concat(
        &mut [keccak256(&encode_e), keccak256([])].into_iter(),
    ));
    let rows_hash: Vec<B256> = rows
        .iter()
        .map(|&n| keccak256(concat(&mut std::iter::repeat_n(e_hash, n))))
        .collect();
    let p_hash = keccak256(concat(
        &mut [
            keccak256(format!("P(E[][] e){encode_e}")),
            keccak256(concat(&mut rows_hash.into_iter())),
        ]
        .into_iter(),
    ));
    let domain_separator = keccak256(keccak256("EIP712Domain()"));
    let mut signed = vec![0x19, 0x01];
    signed.extend_from_slice(domain_separator.as_slice());
    signed.extend_from_slice(p_hash.as_slice());
    assert_eq!(typed.signing_hash().unwrap(), keccak256(&signed));
}

const TX: &str = r#"{"type":"0x2","chainId":"0x1","nonce":"0x0","gas":"0x5208",
    "maxFeePerGas":"0x2","maxPriorityFeePerGas":"0x1",
    "to":"0x3535353535353535353535353535353535353535",
    "accessList":[{"address":"0x3535353535353535353535353535353535353535","storageKeys":[]}]}"#;
const AUTH: &str =
    r#"{"chainId":"0x1","address":"0x3535353535353535353535353535353535353535","nonce":"0x0"}"#;
const MAIL: &str = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"}],
    "Person":[{"name":"name","type":"string"}],"Mail":[{"name":"from","type":"Person"}]},
    "primaryType":"Mail","domain":{"name":"n"},"message":{"from":{"name":"Cow"}}}"#;

/// Every parser, on `json`: the path and message of its `Json` error, or `None` if it accepted.
fn json_errors(json: &str) -> [Option<(String, String)>; 4] {
    fn json_error<T>(r: Result<T, PayloadError>) -> Option<(String, String)> {
        match r {
            Ok(_) => None,
            Err(PayloadError::Json { path, message }) => Some((path, message)),
            Err(other) => Some((String::new(), other.to_string())),
        }
    }
    let bytes = json.as_bytes();
    [
        json_error(TransactionRequest::from_json(bytes)),
        json_error(AuthorizationRequest::from_json(bytes)),
        json_error(PersonalMessage::from_json(bytes)),
        json_error(TypedData::from_json(bytes)),
    ]
}

#[test]
fn repeated_keys_are_refused_by_every_parser_naming_the_key() {
    // Each document is accepted as it is, and refused with one key given twice (a hostile parent
    // hoping that a checker in front of the enclave reads the other copy). Parsers: 0
    // transaction, 1 authorization, 2 personal message, 3 typed data.
    let other = r#""0x3636363636363636363636363636363636363636","#;
    let cases = [
        (0, TX, r#""to":"#, other, "to"),
        (0, TX, r#""nonce":"#, r#""0x1","#, "nonce"),
        (0, TX, r#"{"address":"#, other, "accessList[0].address"),
        (1, AUTH, r#""address":"#, other, "address"),
        (2, r#"{"utf8":"Hello"}"#, r#""utf8":"#, r#""Bye","#, "utf8"),
        (
            3,
            MAIL,
            r#"{"name":"Cow""#,
            r#""Eve","#,
            "message.from.name",
        ),
        (3, MAIL, r#""name":"n""#, r#""m","#, "domain.name"),
        (3, MAIL, r#""Person":"#, "[],", "types.Person"),
        (
            3,
            MAIL,
            r#"{"name":"name","type":"string"}],"Mail""#,
            r#""from","#,
            "types.Person[0].name",
        ),
        (3, MAIL, r#""types":"#, "{},", "types"),
    ];
    for (parser, doc, at, first_value, path) in cases {
        assert!(
            json_errors(doc)[parser].is_none(),
            "{path}: the original is refused"
        );
        // The key is the first quoted string of `at`; a first copy goes right before it.
        let key_start = at.find('"').unwrap();
        let key_end = key_start + 1 + at[key_start + 1..].find('"').unwrap() + 2;
        let key = &at[key_start..key_end];
        let doubled = doc.replacen(
            at,
            &format!("{}{key}{first_value}{}", &at[..key_start], &at[key_start..]),
            1,
        );
        assert_ne!(doubled, doc);
        let (got_path, message) = json_errors(&doubled)[parser]
            .clone()
            .unwrap_or_else(|| panic!("{path}: accepted {doubled}"));
        assert_eq!(got_path, path, "{message}");
        assert!(message.starts_with("repeated key"), "{message}");
    }
    // A typed-data document sent as a JSON string is checked the same way.
    let doubled = MAIL.replacen(r#""name":"Cow""#, r#""name":"Eve","name":"Cow""#, 1);
    let quoted = serde_json::to_string(&doubled).unwrap();
    let err = TypedData::from_json(quoted.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.contains("message.from.name: repeated key"), "{err}");
}

#[test]
fn serde_json_private_keys_are_refused_in_every_build() {
    // With serde_json's `raw_value` feature on (the workspace build turns it on for the CLI and
    // the proxy), `{"$serde_json::private::RawValue": "1"}` would parse as the number 1 in a
    // typed-data message; without it (the enclave built alone, as in production), as an object.
    // Refused either way, so that both builds agree.
    let raw = r#"{"$serde_json::private::RawValue":""Cow""}"#;
    let doc = MAIL.replacen(r#""Cow""#, raw, 1);
    let (path, message) = json_errors(&doc)[3].clone().unwrap();
    assert_eq!(path, "message.from.name.$serde_json::private::RawValue");
    assert!(message.starts_with("reserved key"), "{message}");
    let number = r#"{"$serde_json::private::Number":"1"}"#;
    let tx = TX.replacen(r#""0x0""#, number, 1);
    let (path, message) = json_errors(&tx)[0].clone().unwrap();
    assert_eq!(path, "nonce.$serde_json::private::Number");
    assert!(message.starts_with("reserved key"), "{message}");
}
