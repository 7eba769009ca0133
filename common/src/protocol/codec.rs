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
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not CBOR of the expected shape: truncated, trailing bytes, a wrong type, an
    /// unknown field or variant (on the types that refuse them), a struct sent as an array or
    /// with integer keys, an enum in the legacy array form.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The bytes carry a CBOR tag (major type 6, e.g. the self-describe tag 55799). Tags are not
    /// part of the protocol, and the decoder would otherwise drop them silently.
    #[error("malformed message: CBOR tag {tag} at byte {offset}; the protocol has no tags")]
    Tagged {
        /// The tag number.
        tag: u64,
        /// Where its head starts.
        offset: usize,
    },
    /// A value could not be encoded.
    #[error("message could not be encoded: {0}")]
    Encode(String),
}

/// Encodes `message` as CBOR.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, CodecError> {
    serde_cbor::to_vec(message).map_err(|error| CodecError::Encode(error.to_string()))
}

/// Decodes one CBOR message that fills `bytes` exactly, in the protocol's one form: a message is
/// never an array at its top, structs are maps with text keys (not arrays, not the "packed"
/// integer keys), enums are a variant name or a one-entry map (not the legacy array form), and
/// there are no tags anywhere. Unknown fields are refused by the types that say so
/// (`deny_unknown_fields`: every request-side type).
///
/// Formats outside the protocol that use integer keys and tags (COSE) go through
/// [`decode_cose`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    refuse_tags(bytes)?;
    // No message is an array at its top (they are structs, or enums as a name or a one-entry
    // map), and nested structs are refused as arrays by `map_only`.
    if bytes.first().is_some_and(|initial| initial >> 5 == 4) {
        return Err(CodecError::Malformed(
            "a message is a map, not an array".into(),
        ));
    }
    let mut deserializer = serde_cbor::Deserializer::from_slice(bytes)
        .disable_packed_format()
        .disable_legacy_enums();
    T::deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|error| CodecError::Malformed(bounded(error.to_string())))
}

/// Decodes CBOR that may use integer map keys and tags (COSE structures: attestation documents);
/// tags are dropped unless `T` is [`Value`].
pub fn decode_cose<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    serde_cbor::from_slice(bytes).map_err(|error| CodecError::Malformed(bounded(error.to_string())))
}

/// Deserializes a struct only from a CBOR map: serde's derived struct visitors also take a
/// sequence (the array form), which the protocol refuses. Used with `deserialize_with` on every
/// struct-typed field, variant and list element of the request-side messages.
pub(crate) fn map_only<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct MapOnly<T>(std::marker::PhantomData<T>);

    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for MapOnly<T> {
        type Value = T;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_map(MapOnly(std::marker::PhantomData))
}

/// Walks the data item heads of `bytes` in order and refuses the first tag. Malformed or
/// truncated input is left to the decoder, which reports it.
fn refuse_tags(bytes: &[u8]) -> Result<(), CodecError> {
    let mut at = 0;
    while let Some(&initial) = bytes.get(at) {
        let (major, info) = (initial >> 5, initial & 0x1f);
        let width = match info {
            0..=23 | 31 => 0,
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return Ok(()),
        };
        let Some(argument) = bytes.get(at + 1..at + 1 + width) else {
            return Ok(());
        };
        let argument = if width == 0 {
            u64::from(info)
        } else {
            argument
                .iter()
                .fold(0, |value, &byte| value << 8 | u64::from(byte))
        };
        if major == 6 {
            return Err(CodecError::Tagged {
                tag: argument,
                offset: at,
            });
        }
        at += 1 + width;
        // Definite-length byte and text strings: skip the content. Everything else (integers,
        // simple values, floats, the heads of arrays, maps and indefinite strings, breaks) is
        // followed directly by the next head.
        if matches!(major, 2 | 3) && info != 31 {
            match usize::try_from(argument)
                .ok()
                .and_then(|len| at.checked_add(len))
            {
                Some(end) if end <= bytes.len() => at = end,
                _ => return Ok(()),
            }
        }
    }
    Ok(())
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
