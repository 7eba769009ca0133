//! The proxy's JSON-RPC input from arbitrary bytes (`POST /` bodies, the approvals header, the
//! accounts directory's files): never panic; every call of a body that parses is either a call
//! or an error answered under a valid id; an account file that parses writes back to one that
//! parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_api::{
    AccountFile,
    json_rpc::{Call, MAX_BATCH_CALLS, call_id, parse_approvals_header, parse_body},
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = parse_body(data) {
        let calls = match body {
            Value::Array(calls) => {
                assert!(!calls.is_empty() && calls.len() <= MAX_BATCH_CALLS);
                calls
            }
            single => vec![single],
        };
        for value in calls {
            let id = call_id(&value);
            match Call::parse(value) {
                Ok(call) => {
                    assert!(matches!(call.params, Value::Array(_) | Value::Object(_)));
                    assert_eq!(call.id, id);
                    for (min, max) in [(0, 0), (1, 1), (2, 3)] {
                        if let Ok(params) = call.positional(min, max) {
                            assert!((min..=max).contains(&params.len()));
                        }
                    }
                }
                Err((answer_id, error)) => {
                    assert_eq!(error.code, -32600);
                    assert!(matches!(
                        answer_id,
                        Value::Null | Value::String(_) | Value::Number(_)
                    ));
                }
            }
        }
    }
    let _ = parse_approvals_header(data);
    if let Ok(account) = AccountFile::parse(data) {
        let written = serde_json::to_vec(&account).expect("an account file serialises");
        assert_eq!(AccountFile::parse(&written).expect("a written file parses"), account);
    }
});
