//! The one error type of this crate.

use nitro_signer_eth::PayloadError;

/// Why a Flow transaction cannot be signed. Messages name the offending field and say what is
/// wrong with it; this crate sees no secrets, so they are safe to return to callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The JSON is malformed, has an unknown or repeated field, or a field of the wrong shape.
    #[error("{path}: {message}")]
    Json {
        /// Where in the document the problem is (`proposalKey.keyIndex`), or `.` for the top.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// A field is well formed but breaks a rule of the transaction (a limit, a repeated
    /// authorizer, a payload signature by an account that is not a signer).
    #[error("{path}: {message}")]
    Invalid {
        /// The field's path (`authorizers[2]`).
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// The signer the caller names cannot sign the transaction in the role it asks for.
    #[error("role {role}: {message}")]
    Role {
        /// The role asked for (`proposer`, `authorizer`, `payer`).
        role: &'static str,
        /// Why the signer does not hold that role in this transaction.
        message: String,
    },
}

impl FlowError {
    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Builds a [`FlowError::Json`] from a serde error that knows its path.
    pub(crate) fn json(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        Self::Json {
            path,
            message: err.into_inner().to_string(),
        }
    }
}

impl From<PayloadError> for FlowError {
    fn from(e: PayloadError) -> Self {
        match e {
            PayloadError::Json { path, message } => Self::Json { path, message },
            other => Self::Json {
                path: ".".into(),
                message: other.to_string(),
            },
        }
    }
}
