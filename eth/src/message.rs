//! EIP-191 version 0x45 ("personal_sign") messages.

use alloy_primitives::{B256, Bytes, eip191_hash_message};
use serde::Deserialize;

use crate::{PayloadError, hex, json::from_json_slice};

/// A message to sign with `personal_sign` semantics: the signed hash is
/// `keccak256("\x19Ethereum Signed Message:\n" ‖ len ‖ message)`.
///
/// In JSON it is either a hex string of the message bytes (`"0x48656c6c6f"`) or an object
/// `{"utf8": "Hello"}` for text. A bare string that is not hex is refused rather than guessed at:
/// "0x1234" could be text or bytes, and the two sign different hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonalMessage {
    /// Arbitrary bytes.
    Bytes(Bytes),
    /// Text, signed as its UTF-8 bytes.
    Utf8(String),
}

impl<'de> Deserialize<'de> for PersonalMessage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Text {
            utf8: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Hex(hex::Hex<Bytes>),
            Text(Text),
        }
        match Shape::deserialize(d) {
            Ok(Shape::Hex(hex::Hex(bytes))) => Ok(Self::Bytes(bytes)),
            Ok(Shape::Text(Text { utf8 })) => Ok(Self::Utf8(utf8)),
            Err(_) => Err(serde::de::Error::custom(
                "expected 0x-prefixed hex bytes or {\"utf8\": \"text\"}",
            )),
        }
    }
}

impl PersonalMessage {
    /// Parses the JSON form.
    pub fn from_json(json: &[u8]) -> Result<Self, PayloadError> {
        from_json_slice(json)
    }

    /// The message bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Bytes(b) => b,
            Self::Utf8(s) => s.as_bytes(),
        }
    }

    /// The EIP-191 hash to sign.
    pub fn signing_hash(&self) -> B256 {
        eip191_hash_message(self.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_shapes() {
        let hex = PersonalMessage::from_json(br#""0x48656c6c6f""#).unwrap();
        let text = PersonalMessage::from_json(br#"{"utf8":"Hello"}"#).unwrap();
        assert_eq!(hex.signing_hash(), text.signing_hash());
        assert_eq!(text.as_bytes(), b"Hello");
    }

    #[test]
    fn refuses_ambiguous_or_malformed() {
        for bad in [
            r#""Hello""#,
            r#"{"utf8":"a","x":1}"#,
            "42",
            r#""0x123""#,
            // A second prefix: const_hex alone would read this as the byte 0x35.
            r#""0x0x35""#,
        ] {
            assert!(PersonalMessage::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn hash_matches_published_vector() {
        // ethers.js `hashMessage("Hello World")`.
        let m = PersonalMessage::Utf8("Hello World".into());
        assert_eq!(
            m.signing_hash().to_string(),
            "0xa1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2"
        );
    }
}
