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
    serde_cbor::from_slice(bytes).map_err(|error| CodecError(bounded(error.to_string())))
}

/// Longest error message kept, in bytes. A decoding error can quote the input (serde shows an
/// unexpected string in full, escaped), and the peer that sent it gets the message back and the
/// log gets it too: neither may grow with the input.
pub const MAX_ERROR_LEN: usize = 256;

fn bounded(mut message: String) -> String {
    if message.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_errors_do_not_grow_with_the_input() {
        // A 1 MiB string of control characters where a number is expected: serde quotes it,
        // escaped, in its error.
        let text = "\u{7f}".repeat(1 << 20);
        let error = decode::<u64>(&encode(&text).unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.len() <= MAX_ERROR_LEN + 64, "{} bytes", error.len());
        assert!(error.contains("invalid type"), "{error}");
        assert_eq!(bounded("é".repeat(200)).chars().last(), Some('…'));
    }
}
