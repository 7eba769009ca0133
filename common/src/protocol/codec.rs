//! The one place messages are turned into bytes and back.
//!
//! The encoding is CBOR through `serde_cbor`. That crate is unmaintained upstream; everything else
//! calls [`encode`] and [`decode`] only, so that moving to another CBOR implementation touches this
//! file alone (the golden byte tests in `message.rs` then show whether the encoding changed).

use serde::{Serialize, de::DeserializeOwned};

/// A message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct CodecError(String);

/// Encodes `message` as CBOR.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, CodecError> {
    serde_cbor::to_vec(message).map_err(|error| CodecError(error.to_string()))
}

/// Decodes one CBOR message that fills `bytes` exactly.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    serde_cbor::from_slice(bytes).map_err(|error| CodecError(error.to_string()))
}
