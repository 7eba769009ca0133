//! Ethereum JSON-RPC 2.0, as the parent proxy answers it at `POST /` (`docs/json-rpc.md`):
//! the envelope (one call or a batch, strictly read), error objects, and the approvals header.
//! The methods themselves are the proxy's.

use serde_json::{Value, json};

use crate::{Approval, MAX_APPROVALS};

/// Most calls in one batch.
pub const MAX_BATCH_CALLS: usize = 100;

/// Longest error message of the node passed on, in characters; the rest is cut.
const MAX_UPSTREAM_MESSAGE: usize = 1024;

/// Largest error `data` of the node passed on, in bytes of JSON; larger is left out.
const MAX_UPSTREAM_DATA: usize = 16 * 1024;

/// The node's message, without control characters and cut at [`MAX_UPSTREAM_MESSAGE`].
fn bounded(message: &str) -> String {
    message
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_UPSTREAM_MESSAGE)
        .collect()
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The error code (-32700, -32600, -32601, -32602, -32000…).
    pub code: i64,
    /// What went wrong.
    pub message: String,
    /// More, for programs (`{"code": "policy_denied"}`, `{"hash": …}`).
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with `code` and `message`, no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// -32700: the body is not JSON.
    pub fn parse(message: impl Into<String>) -> Self {
        Self::new(-32700, message)
    }

    /// -32600: not a JSON-RPC 2.0 request.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(-32600, message)
    }

    /// -32601: no such method.
    pub fn method_not_found(message: impl Into<String>) -> Self {
        Self::new(-32601, message)
    }

    /// -32602: the parameters are wrong.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(-32602, message)
    }

    /// -32000: refused or failed (policy, enclave, upstream node), as web3signer and Clef
    /// answer.
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(-32000, message)
    }

    /// An error the upstream node answered, passed on as it came when it is a proper error
    /// object.
    pub fn from_upstream(method: &str, error: Value) -> Self {
        let code = error.get("code").and_then(Value::as_i64);
        let message = error.get("message").and_then(Value::as_str);
        match (code, message) {
            (Some(code), Some(message)) => Self {
                code,
                message: bounded(message),
                data: error
                    .get("data")
                    .filter(|data| data.to_string().len() <= MAX_UPSTREAM_DATA)
                    .cloned(),
            },
            _ => Self::server(format!(
                "upstream node answered {method} with a malformed error"
            )),
        }
    }

    /// The error object, `{"code", "message", "data"?}`.
    pub fn to_json(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some(data), Value::Object(object)) = (&self.data, &mut error) {
            object.insert("data".to_owned(), data.clone());
        }
        error
    }
}

/// One call of a request: its id (`None` for a notification, which gets no answer), method
/// and parameters.
#[derive(Debug)]
pub struct Call {
    /// The id to answer under; `None` for a notification.
    pub id: Option<Value>,
    /// The method.
    pub method: String,
    /// The parameters (`[]` when absent): an array or an object.
    pub params: Value,
}

impl Call {
    /// Reads one request object; an error comes with the id to answer it under.
    pub fn parse(value: Value) -> Result<Self, (Value, RpcError)> {
        let Value::Object(mut object) = value else {
            return Err((
                Value::Null,
                RpcError::invalid_request("a request must be a JSON object"),
            ));
        };
        let id = object.remove("id");
        if !matches!(
            id,
            None | Some(Value::Null | Value::String(_) | Value::Number(_))
        ) {
            return Err((
                Value::Null,
                RpcError::invalid_request("`id` must be a string, a number or null"),
            ));
        }
        let answer_id = id.clone().unwrap_or(Value::Null);
        let invalid = |message: &str| Err((answer_id.clone(), RpcError::invalid_request(message)));
        if object.remove("jsonrpc") != Some(Value::String("2.0".to_owned())) {
            return invalid("`jsonrpc` must be \"2.0\"");
        }
        let Some(Value::String(method)) = object.remove("method") else {
            return invalid("`method` must be a string");
        };
        let params = object.remove("params").unwrap_or(Value::Array(Vec::new()));
        if !matches!(params, Value::Array(_) | Value::Object(_)) {
            return invalid("`params` must be an array or an object");
        }
        if let Some(key) = object.keys().next() {
            return invalid(&format!(
                "unknown member `{key}`: a request has jsonrpc, id, method and params"
            ));
        }
        Ok(Self { id, method, params })
    }

    /// The positional parameters, between `min` and `max` of them.
    pub fn positional(&self, min: usize, max: usize) -> Result<&[Value], RpcError> {
        let Value::Array(params) = &self.params else {
            return Err(RpcError::invalid_params(format!(
                "{} takes its parameters as an array",
                self.method
            )));
        };
        if params.len() < min || params.len() > max {
            let count = if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            };
            return Err(RpcError::invalid_params(format!(
                "{} takes {count} parameters, got {}",
                self.method,
                params.len()
            )));
        }
        Ok(params)
    }
}

/// The answer object for `id`.
pub fn answer(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error.to_json()}),
    }
}

/// The id a call is answered under, if it has one that is valid (not a notification).
pub fn call_id(call: &Value) -> Option<Value> {
    match call.get("id")? {
        id @ (Value::Null | Value::String(_) | Value::Number(_)) => Some(id.clone()),
        _ => Some(Value::Null),
    }
}

/// The body as one JSON value, with the payload rules of the REST API (no repeated keys, none
/// of serde_json's reserved keys; `nitro_signer_eth::json`).
pub fn parse_body(body: &[u8]) -> Result<Value, RpcError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| RpcError::parse(format!("the body is not JSON: {error}")))?;
    nitro_signer_eth::json::check(body)
        .map_err(|error| RpcError::invalid_request(error.to_string()))?;
    match value {
        Value::Array(ref calls) if calls.is_empty() => {
            Err(RpcError::invalid_request("the batch is empty"))
        }
        Value::Array(ref calls) if calls.len() > MAX_BATCH_CALLS => {
            Err(RpcError::invalid_request(format!(
                "{} calls in a batch; at most {MAX_BATCH_CALLS}",
                calls.len()
            )))
        }
        Value::Array(_) | Value::Object(_) => Ok(value),
        _ => Err(RpcError::invalid_request(
            "the body must be a request object or a batch (array) of them",
        )),
    }
}

/// The approvals of the `X-Nitro-Signer-Approvals` header's value: a JSON array of
/// `{"approver", "expiresAt", "signature"}`, at most [`MAX_APPROVALS`], with the payload rules
/// (no repeated keys).
pub fn parse_approvals_header(value: &[u8]) -> Result<Vec<Approval>, RpcError> {
    let invalid = |why: String| {
        RpcError::invalid_request(format!("invalid X-Nitro-Signer-Approvals header: {why}"))
    };
    nitro_signer_eth::json::check(value).map_err(|error| invalid(error.to_string()))?;
    let approvals: Vec<Approval> =
        serde_json::from_slice(value).map_err(|error| invalid(error.to_string()))?;
    if approvals.len() > MAX_APPROVALS {
        return Err(invalid(format!(
            "{} approvals; at most {MAX_APPROVALS}",
            approvals.len()
        )));
    }
    Ok(approvals)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            any::<i64>().prop_map(|n| Some(json!(n))),
            "[a-z0-9-]{0,12}".prop_map(|s| Some(json!(s))),
        ]
    }

    fn call() -> impl Strategy<Value = (Option<Value>, String, Vec<String>)> {
        (
            id(),
            "[a-zA-Z_]{1,24}",
            proptest::collection::vec("[ -~]{0,8}", 0..4),
        )
    }

    fn object((id, method, params): &(Option<Value>, String, Vec<String>)) -> Value {
        let mut call = json!({"jsonrpc": "2.0", "method": method, "params": params});
        if let Some(id) = id {
            call["id"] = id.clone();
        }
        call
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(body) = parse_body(&bytes) {
                prop_assert!(matches!(body, Value::Array(_) | Value::Object(_)));
            }
            let _ = parse_approvals_header(&bytes);
            let _ = crate::AccountFile::parse(&bytes);
        }

        #[test]
        fn well_formed_calls_are_read_as_sent(calls in proptest::collection::vec(call(), 1..=MAX_BATCH_CALLS)) {
            let batch = Value::Array(calls.iter().map(object).collect());
            let parsed = parse_body(batch.to_string().as_bytes()).unwrap();
            let Value::Array(values) = parsed else { panic!("a batch") };
            for (value, (id, method, params)) in values.into_iter().zip(&calls) {
                let call = Call::parse(value).unwrap();
                prop_assert_eq!(&call.id, id);
                prop_assert_eq!(&call.method, method);
                prop_assert_eq!(call.params, json!(params));
            }
        }

        #[test]
        fn anything_more_is_refused_under_the_calls_id(
            call in call(),
            member in "[a-z]{1,8}",
        ) {
            prop_assume!(!["jsonrpc", "id", "method", "params"].contains(&member.as_str()));
            let mut value = object(&call);
            value[member.as_str()] = json!(1);
            let (id, error) = Call::parse(value).unwrap_err();
            prop_assert_eq!(error.code, -32600);
            prop_assert_eq!(id, call.0.unwrap_or(Value::Null));
        }
    }

    #[test]
    fn batches_are_bounded_and_not_empty() {
        let calls = |n: usize| {
            Value::Array(vec![json!({"jsonrpc": "2.0", "id": 1, "method": "m"}); n]).to_string()
        };
        assert!(parse_body(calls(MAX_BATCH_CALLS).as_bytes()).is_ok());
        assert_eq!(
            parse_body(calls(MAX_BATCH_CALLS + 1).as_bytes())
                .unwrap_err()
                .code,
            -32600
        );
        assert_eq!(parse_body(b"[]").unwrap_err().code, -32600);
        assert_eq!(parse_body(b"{").unwrap_err().code, -32700);
        assert_eq!(parse_body(br#"{"a":1,"a":2}"#).unwrap_err().code, -32600);
    }

    #[test]
    fn node_errors_are_passed_on_bounded() {
        let long = "x\u{7}".repeat(5000);
        let error = RpcError::from_upstream(
            "m",
            json!({"code": 3, "message": long,
            "data": "y".repeat(20_000)}),
        );
        assert_eq!(error.code, 3);
        assert_eq!(error.message.chars().count(), MAX_UPSTREAM_MESSAGE);
        assert!(!error.message.contains('\u{7}'));
        assert_eq!(error.data, None);
        let error = RpcError::from_upstream("m", json!({"message": "no code"}));
        assert_eq!(error.code, -32000);
    }
}
