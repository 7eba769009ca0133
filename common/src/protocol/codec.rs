//! The one place messages are turned into bytes and back.
//!
//! The encoding is CBOR through `serde_cbor`. That crate is unmaintained upstream; every CBOR user
//! in the project (the protocol messages, key blobs, attestation documents and the NSM
//! simulator's COSE) goes through [`encode`], [`decode`] and the generic [`Value`] here, so that
//! moving to another CBOR implementation starts in this file. The golden byte tests in
//! `message.rs` and `key_blob.rs` then show whether an encoding changed; the COSE code, which
//! walks [`Value`]s, would follow the new crate's value type.

use serde::{Serialize, de::DeserializeOwned};
/// A CBOR value of any shape, for formats read generically (COSE, future-version detection).
pub use serde_cbor::Value;

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
