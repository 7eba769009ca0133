//! The one error type of this crate.

/// Why a payload cannot be signed. Messages name the offending field and say what is wrong with
/// it; they never echo secret material (this crate sees none) and are safe to return to callers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The JSON is malformed, has an unknown field or a field of the wrong shape.
    #[error("{path}: {message}")]
    Json {
        /// Where in the document the problem is (`accessList[0].address`), or `.` for the top.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// A field that the payload needs is absent.
    #[error("{field}: required{why}")]
    MissingField {
        /// The missing field's JSON name.
        field: &'static str,
        /// Extra explanation, starting with "; " when not empty.
        why: &'static str,
    },
    /// A field is present that the transaction type does not have.
    #[error("{field}: not allowed in a type {tx_type:#x} transaction")]
    FieldNotAllowed {
        /// The field's JSON name.
        field: &'static str,
        /// The transaction type it does not belong to.
        tx_type: u8,
    },
    /// Fields that disagree with each other.
    #[error("{field}: {message}")]
    Contradictory {
        /// The field found to disagree.
        field: &'static str,
        /// How it disagrees.
        message: &'static str,
    },
    /// A transaction type this signer does not know.
    #[error("type: unsupported transaction type {0:#x}; supported are 0x0 to 0x4")]
    UnsupportedType(u64),
    /// A legacy transaction without `chainId`, and the caller did not allow replayable signing.
    #[error(
        "chainId: required; a legacy transaction without chainId (pre-EIP-155) can be replayed \
         on every chain and is only signed when the request explicitly allows it"
    )]
    PreEip155NotAllowed,
    /// An EIP-7702 authorization for chain id 0, and the caller did not allow it.
    #[error(
        "chainId: 0 authorizes the delegation on every chain; it is only signed when the request \
         explicitly allows chain-agnostic authorizations"
    )]
    ChainAgnosticAuthorizationNotAllowed,
    /// EIP-712 typed data that cannot be hashed unambiguously.
    #[error("typedData: {0}")]
    TypedData(String),
}

impl PayloadError {
    /// Builds a [`PayloadError::Json`] from a serde error that knows its path.
    pub(crate) fn json(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // serde_json appends "at line L column C"; keep it, it helps find the spot in big bodies.
        Self::Json {
            path,
            message: inner.to_string(),
        }
    }
}
