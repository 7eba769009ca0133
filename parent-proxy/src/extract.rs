//! Request bodies: bounded, then parsed strictly into the API types, with errors that name the
//! field and say why (never repeating the value), then checked against the caller's tenant.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use crate::{
    auth::{Caller, Scoped},
    error::Failure,
};

/// A JSON body of type `T`, checked against the caller (see `auth.rs`): a body that uses a key
/// blob or names a new key's label is refused unless the caller's tenant may use it. The body
/// size is bounded by the router's `DefaultBodyLimit`.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

/// Whether an empty body stands for `{}` (for `POST /v1/keys`, whose fields are all optional).
pub(crate) trait EmptyBody: Sized {
    /// The value of an empty body, if one is allowed.
    fn empty() -> Option<Self> {
        None
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + EmptyBody + Scoped,
{
    type Rejection = Failure;

    async fn from_request(mut request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let caller = take_caller(&mut request)?;
        let bytes = read_body(request, state).await?;
        let mut value = if bytes.iter().all(u8::is_ascii_whitespace)
            && let Some(empty) = T::empty()
        {
            empty
        } else {
            parse(&bytes)?
        };
        if let Caller::Tenant(tenant) = caller {
            value.scope(&tenant)?;
        }
        Ok(Self(value))
    }
}

/// The caller `auth::authenticate` put in the request's extensions; without one, nothing is
/// allowed.
pub(crate) fn take_caller(request: &mut Request) -> Result<Caller, Failure> {
    request
        .extensions_mut()
        .remove::<Caller>()
        .ok_or_else(|| Failure::unauthorized("this endpoint needs an API key"))
}

/// The whole body, within the router's `DefaultBodyLimit` (413 `payload_too_large` beyond it).
pub(crate) async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, Failure> {
    let limit = request
        .extensions()
        .get::<BodyLimit>()
        .map_or(0, |limit| limit.0);
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Failure::too_large(limit)
            } else {
                Failure::invalid_request(format!(
                    "the request body could not be read: {}",
                    rejection.body_text()
                ))
            }
        })
}

/// The body limit in force, for the 413 message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

/// Parses a whole JSON document; errors name the path of the offending field.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    // serde would also accept a struct written as an array of its fields: refuse that here.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Failure::invalid_request(
            "invalid request body: expected a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Failure::invalid_request(format!("invalid request body: malformed JSON: {inner}"))
        } else if matches!(path.as_str(), "." | "?" | "") {
            Failure::invalid_request(format!("invalid request body: {inner}"))
        } else {
            Failure::invalid_request(format!("invalid field `{path}`: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|error| Failure::invalid_request(format!("invalid request body: {error}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use nitro_signer_api::{AddressRequest, SignMessageRequest, SignTransactionRequest};

    use super::*;

    fn message<T: DeserializeOwned + std::fmt::Debug>(body: &str) -> String {
        parse::<T>(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn errors_name_the_field_and_do_not_echo_values() {
        let error = message::<AddressRequest>(r#"{"keyBlob":"not base64!!secret"}"#);
        assert!(error.contains("`keyBlob`"), "{error}");
        assert!(error.contains("base64"), "{error}");
        assert!(!error.contains("secret"), "{error}");

        let error = message::<AddressRequest>(r#"{"userId":"u"}"#);
        assert!(error.contains("missing field `keyBlob`"), "{error}");

        let error = message::<AddressRequest>(r#"{"keyBlob":"AA==","extra":1}"#);
        assert!(error.contains("unknown field `extra`"), "{error}");

        let error = message::<AddressRequest>(r#"{"keyBlob":"AA==","userId":""}"#);
        assert!(
            error.contains("`userId`") && error.contains("empty"),
            "{error}"
        );

        let error = message::<SignMessageRequest>(r#"{"keyBlob":"AA==","message":"0xzz"}"#);
        assert!(
            error.contains("`message`") && error.contains("hex"),
            "{error}"
        );

        let error = message::<SignTransactionRequest>(r#"{"keyBlob":"AA==","transaction":{}} x"#);
        assert!(error.contains("trailing"), "{error}");

        let error = message::<AddressRequest>("[1,2]");
        assert!(error.starts_with("invalid request body"), "{error}");
    }

    #[test]
    fn raw_payloads_survive_path_tracking() {
        let request: SignTransactionRequest =
            parse(br#"{"keyBlob":"AA==","transaction":{"a": "0x1" ,"b":[1.0]}}"#).unwrap();
        assert_eq!(request.transaction.get(), r#"{"a": "0x1" ,"b":[1.0]}"#);
    }
}
