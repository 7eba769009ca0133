//! The JSON forms of addresses, hex bytes and integers.
//!
//! - **Addresses**: `0x` and exactly 16 hex digits (8 bytes); the `0x` may be left out, as FCL's
//!   `sansPrefix` addresses do; digits in either case. Emitted as `0x` and 16 lower-case digits.
//!   The all-zero address is refused: flow-go-sdk and FCL leave an empty proposer or payer out
//!   of the signer list, which would shift every signer index, and no account has it.
//! - **Hex bytes** (`referenceBlockId`, `signature`): optional `0x`, an even number of hex
//!   digits in either case. `referenceBlockId` is exactly 32 bytes (64 digits, no shorter form:
//!   FCL left-pads a short block id with zeros, a mistyped id should not be signed).
//! - **Integers** (`gasLimit`, `keyIndex`, `sequenceNumber`): a JSON integer, or a string of
//!   decimal digits (FCL types `keyId` as `number | string`; the access API's REST form sends
//!   strings), without sign, exponent, fraction or leading zero, within the field's range
//!   (`u64`; `keyIndex` is `u32`, as in flow-go-sdk). Emitted as JSON integers.

use std::fmt;

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, Visitor},
};

/// A Flow account address: 8 bytes, big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 8]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", u64::from_be_bytes(self.0))
    }
}

impl std::str::FromStr for Address {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        if digits.len() != 16 {
            return Err("an address is 0x and exactly 16 hex digits");
        }
        let mut out = [0u8; 8];
        decode_into(digits, &mut out).ok_or("an address is 0x and exactly 16 hex digits")?;
        if out == [0u8; 8] {
            return Err("the zero address is not an account");
        }
        Ok(Self(out))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// Decodes hex digits (no prefix) into `out`, which must be exactly half as long.
fn decode_into(digits: &str, out: &mut [u8]) -> Option<()> {
    let bytes = digits.as_bytes();
    if bytes.len() != out.len().checked_mul(2)? {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *o = nibble(*hi)? << 4 | nibble(*lo)?;
    }
    Some(())
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Hex digits with an optional `0x`, decoded; `None` when not hex or of odd length.
pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let mut out = vec![0u8; digits.len() / 2];
    decode_into(digits, &mut out)?;
    Some(out)
}

/// Lower-case hex with `0x`.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for b in bytes {
        for n in [b >> 4, b & 0xf] {
            s.push(char::from(
                DIGITS.get(usize::from(n)).copied().unwrap_or(b'0'),
            ));
        }
    }
    s
}

/// `referenceBlockId`: exactly 32 bytes.
pub(crate) mod block_id {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode_hex(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let digits = s.strip_prefix("0x").unwrap_or(&s);
        let mut out = [0u8; 32];
        decode_into(digits, &mut out)
            .ok_or_else(|| de::Error::custom("a block id is exactly 64 hex digits (32 bytes)"))?;
        Ok(out)
    }
}

/// Hex bytes of any even length (the length limits are checked by the caller).
pub(crate) mod bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode_hex(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        decode_hex(&s).ok_or_else(|| {
            de::Error::custom(
                "expected hex bytes: an even number of hex digits, optionally after 0x",
            )
        })
    }
}

/// An unsigned integer as a JSON integer or a canonical decimal string.
pub(crate) mod uint {
    use super::*;

    pub(crate) fn serialize<T: Into<u64> + Copy, S: Serializer>(
        v: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64((*v).into())
    }

    pub(crate) fn deserialize<'de, T: TryFrom<u64>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        let v = d.deserialize_any(UintVisitor)?;
        T::try_from(v).map_err(|_| {
            de::Error::custom(format_args!(
                "{v} is out of range (at most {})",
                max_of::<T>()
            ))
        })
    }

    fn max_of<T: TryFrom<u64>>() -> u64 {
        if T::try_from(u64::from(u32::MAX) + 1).is_ok() {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    struct UintVisitor;

    const EXPECTED: &str =
        "an unsigned integer: a JSON integer or a string of decimal digits without leading zeros";

    impl Visitor<'_> for UintVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format_args!("{v} is negative; expected {EXPECTED}")))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            Err(E::custom(format_args!(
                "{v} is not an integer in range (fractions, exponents and values of 2^64 or more are refused); expected {EXPECTED}"
            )))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
            let canonical = !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s == "0" || !s.starts_with('0'));
            if !canonical {
                return Err(E::custom(format_args!("{s:?}: expected {EXPECTED}")));
            }
            s.parse()
                .map_err(|_| E::custom(format_args!("{s:?} is out of range (at most 2^64 - 1)")))
        }
    }
}
