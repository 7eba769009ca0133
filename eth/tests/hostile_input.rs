//! Every parser of untrusted input returns an error, never panics, on arbitrary bytes and on
//! arbitrary JSON built from the field names the parsers know (so that the generated documents
//! get past the first checks and into the validation logic).
#![cfg(test)]

use nitro_signer_eth::{
    AuthorizationOptions, AuthorizationRequest, PersonalMessage, TransactionRequest, TxOptions,
    TypedData,
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
        let _ = typed.signing_hash();
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
