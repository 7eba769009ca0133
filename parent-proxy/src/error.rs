//! The HTTP error answers: every failure becomes `{"error": {"code", "message"}}` with a status
//! (and, for 401, a `WWW-Authenticate: Bearer` header).
//!
//! Messages name what went wrong and which field, never a secret, a key blob or an internal
//! detail; details of enclave connection failures go to the log instead.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use nitro_signer_api::{ApiError, ErrorCode, ErrorResponse};
use nitro_signer_client::ClientError;
use nitro_signer_common::protocol;
use tracing::{debug, warn};

/// The error code of a failed request, put in the response's extensions for the request log.
#[derive(Debug, Clone)]
pub(crate) struct LoggedCode(pub(crate) ErrorCode);

/// How long a request spent waiting for the enclave, for the stage metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EnclaveTime(pub(crate) Duration);

/// A failed request.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) enclave_time: Option<Duration>,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            enclave_time: None,
        }
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    /// No API key, or not a valid one; the answer carries `WWW-Authenticate: Bearer`.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// The caller's API key may not do this.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub(crate) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such endpoint; see the API documentation for the routes",
        )
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "this endpoint does not accept this method",
        )
    }

    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the request body exceeds the {limit}-byte limit"),
        )
    }

    pub(crate) fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            "the proxy is at its concurrency limit; retry shortly",
        )
    }

    pub(crate) fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            "the request was not completed in time",
        )
    }

    /// The answer for an enclave call that failed after `enclave_time`.
    pub(crate) fn from_client(error: ClientError, enclave_time: Duration) -> Self {
        let mut failure = match error {
            ClientError::Enclave(body) => {
                Self::new(enclave_status(body.code), body.code.into(), body.message)
            }
            ClientError::Unavailable(reason) => {
                // Logged at debug: while the enclave is down every request says the same.
                debug!(%reason, "enclave unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::EnclaveUnavailable,
                    "the enclave is not reachable; retry shortly",
                )
            }
            ClientError::Timeout(after) => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                ErrorCode::EnclaveTimeout,
                format!("the enclave did not answer within {} ms", after.as_millis()),
            ),
            ClientError::TooLarge { max, .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("the request exceeds the enclave's {max}-byte message limit"),
            ),
            other => {
                warn!(error = %other, "unexpected answer from the enclave");
                Self::protocol("the enclave's answer could not be understood")
            }
        };
        failure.enclave_time = Some(enclave_time);
        failure
    }

    /// The enclave answered something that does not fit the request.
    pub(crate) fn protocol(message: &str) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::EnclaveProtocolError,
            message,
        )
    }
}

/// The HTTP status of an enclave error code.
pub(crate) fn enclave_status(code: protocol::ErrorCode) -> StatusCode {
    use protocol::ErrorCode;
    match code {
        ErrorCode::InvalidRequest | ErrorCode::InvalidKeyBlob => StatusCode::BAD_REQUEST,
        ErrorCode::PolicyRefused
        | ErrorCode::PolicyDenied
        | ErrorCode::ApprovalsRequired
        | ErrorCode::KmsAccessDenied => StatusCode::FORBIDDEN,
        ErrorCode::KmsUnavailable | ErrorCode::UnsupportedProtocol => StatusCode::BAD_GATEWAY,
        ErrorCode::NoCredentials | ErrorCode::Busy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ApiError::new(self.code.clone(), self.message),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §11.6.1: a 401 names the scheme it wants (RFC 6750's Bearer).
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"nitro-signer\""),
            );
        }
        response.extensions_mut().insert(LoggedCode(self.code));
        if let Some(time) = self.enclave_time {
            response.extensions_mut().insert(EnclaveTime(time));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enclave_codes_map_to_statuses() {
        use protocol::ErrorCode;
        for (code, status) in [
            (ErrorCode::InvalidRequest, 400),
            (ErrorCode::InvalidKeyBlob, 400),
            (ErrorCode::PolicyRefused, 403),
            (ErrorCode::PolicyDenied, 403),
            (ErrorCode::ApprovalsRequired, 403),
            (ErrorCode::KmsAccessDenied, 403),
            (ErrorCode::KmsUnavailable, 502),
            (ErrorCode::NoCredentials, 503),
            (ErrorCode::Busy, 503),
            (ErrorCode::UnsupportedProtocol, 502),
            (ErrorCode::Internal, 500),
        ] {
            assert_eq!(enclave_status(code).as_u16(), status, "{code:?}");
        }
    }
}
