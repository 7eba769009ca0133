//! Strict decoding of the hex strings of Ethereum's JSON-RPC (`eth_signTransaction` and friends).
//!
//! The rules are the execution-apis specification's, as geth enforces them:
//! - a *quantity* is `0x` followed by 1 to N hex digits with no leading zero (`0x0` is zero);
//! - *data* is `0x` followed by an even number of hex digits (`0x` is empty);
//! - an *address* is 20 bytes of data; if it mixes upper and lower case, its EIP-55 checksum must
//!   be right, since a wrong checksum means a mistyped address;
//! - JSON numbers are refused: they lose precision above 2^53. (EIP-712 messages follow their
//!   own rules; see [`crate::typed_data`].)
//!
//! Both cases of hex digit are accepted; the prefix is a lower-case `0x`, exactly once: every
//! character after it must be a hex digit, so `"0x0x35"` and `"0X35"` are refused wherever hex
//! is read (transactions, authorizations, messages, addresses, EIP-712 values).

use std::{fmt, marker::PhantomData};

use alloy_primitives::{Address, B256, Bytes, U256};
use serde::de::{self, Deserializer, Visitor};

/// Why a JSON string is not the hex value it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// The string does not start with `0x`.
    #[error("expected a 0x-prefixed hex string")]
    MissingPrefix,
    /// A quantity has no digits (`0x`).
    #[error("a quantity needs at least one hex digit (zero is 0x0)")]
    EmptyQuantity,
    /// A quantity has a leading zero digit.
    #[error("a quantity must not have leading zero digits")]
    LeadingZero,
    /// A character is not a hex digit.
    #[error("invalid hex digit")]
    InvalidDigit,
    /// A quantity does not fit the field's type.
    #[error("quantity does not fit in {bits} bits")]
    Overflow {
        /// Width of the field, in bits.
        bits: u32,
    },
    /// Data has an odd number of hex digits.
    #[error("data must have an even number of hex digits")]
    OddLength,
    /// Data is not the fixed length the field needs.
    #[error("expected {expected} bytes, got {actual}")]
    WrongLength {
        /// Bytes the field needs.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A mixed-case address whose EIP-55 checksum is wrong.
    #[error("address has mixed case but its EIP-55 checksum is wrong")]
    BadChecksum,
}

/// A value written in the JSON-RPC as a hex string.
pub trait FromJsonHex: Sized {
    /// What the value is called in error messages ("a quantity", "20 bytes of data", ...).
    const EXPECTING: &'static str;

    /// Parses the whole string, `0x` prefix included.
    fn from_json_hex(s: &str) -> Result<Self, HexError>;
}

fn strip_prefix(s: &str) -> Result<&str, HexError> {
    s.strip_prefix("0x").ok_or(HexError::MissingPrefix)
}

/// The digits of a quantity, checked for the JSON-RPC rules but not yet for width.
fn quantity_digits(s: &str) -> Result<&str, HexError> {
    let digits = strip_prefix(s)?;
    if digits.is_empty() {
        return Err(HexError::EmptyQuantity);
    }
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HexError::InvalidDigit);
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(HexError::LeadingZero);
    }
    Ok(digits)
}

macro_rules! primitive_quantity {
    ($($t:ty),*) => {$(
        impl FromJsonHex for $t {
            const EXPECTING: &'static str = concat!("a 0x-prefixed hex quantity (", stringify!($t), ")");

            fn from_json_hex(s: &str) -> Result<Self, HexError> {
                let digits = quantity_digits(s)?;
                <$t>::from_str_radix(digits, 16).map_err(|_| HexError::Overflow { bits: <$t>::BITS })
            }
        }
    )*};
}
primitive_quantity!(u8, u64, u128);

impl FromJsonHex for U256 {
    const EXPECTING: &'static str = "a 0x-prefixed hex quantity (uint256)";

    fn from_json_hex(s: &str) -> Result<Self, HexError> {
        let digits = quantity_digits(s)?;
        U256::from_str_radix(digits, 16).map_err(|_| HexError::Overflow { bits: 256 })
    }
}

fn decode_data(s: &str) -> Result<Vec<u8>, HexError> {
    let digits = strip_prefix(s)?;
    // Checked here, not left to the decoder: `const_hex` strips a `0x` of its own, so it would
    // read "0x0x35" as one byte where geth refuses the string.
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HexError::InvalidDigit);
    }
    if digits.len() % 2 != 0 {
        return Err(HexError::OddLength);
    }
    alloy_primitives::hex::decode(digits).map_err(|_| HexError::InvalidDigit)
}

impl FromJsonHex for Bytes {
    const EXPECTING: &'static str = "0x-prefixed hex data";

    fn from_json_hex(s: &str) -> Result<Self, HexError> {
        decode_data(s).map(Bytes::from)
    }
}

fn fixed<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let bytes = decode_data(s)?;
    let actual = bytes.len();
    bytes.try_into().map_err(|_| HexError::WrongLength {
        expected: N,
        actual,
    })
}

impl FromJsonHex for B256 {
    const EXPECTING: &'static str = "32 bytes of 0x-prefixed hex data";

    fn from_json_hex(s: &str) -> Result<Self, HexError> {
        fixed::<32>(s).map(B256::from)
    }
}

impl FromJsonHex for Address {
    const EXPECTING: &'static str = "a 0x-prefixed 20-byte address";

    fn from_json_hex(s: &str) -> Result<Self, HexError> {
        let address = Address::from(fixed::<20>(s)?);
        let letters = || s.bytes().skip(2).filter(u8::is_ascii_alphabetic);
        let mixed_case =
            letters().any(|b| b.is_ascii_uppercase()) && letters().any(|b| b.is_ascii_lowercase());
        if mixed_case && address.to_checksum_buffer(None).as_str() != s {
            return Err(HexError::BadChecksum);
        }
        Ok(address)
    }
}

struct HexVisitor<T>(PhantomData<T>);

impl<T: FromJsonHex> Visitor<'_> for HexVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_json_hex(v).map_err(E::custom)
    }
}

/// Deserializes a hex string into `T` (for `#[serde(deserialize_with)]`).
pub fn required<'de, D: Deserializer<'de>, T: FromJsonHex>(d: D) -> Result<T, D::Error> {
    d.deserialize_str(HexVisitor(PhantomData))
}

/// Deserializes an optional hex string into `Option<T>`; JSON `null` and an absent field are
/// both `None` (use with `#[serde(default)]`).
pub fn optional<'de, D: Deserializer<'de>, T: FromJsonHex>(d: D) -> Result<Option<T>, D::Error> {
    struct OptVisitor<T>(PhantomData<T>);
    impl<'de, T: FromJsonHex> Visitor<'de> for OptVisitor<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "null or {}", T::EXPECTING)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            required(d).map(Some)
        }
    }
    d.deserialize_option(OptVisitor(PhantomData))
}

/// A hex value inside a sequence or other container, for `Vec<Hex<T>>`-shaped fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hex<T>(pub T);

impl<'de, T: FromJsonHex> serde::Deserialize<'de> for Hex<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        required(d).map(Hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    #[test]
    fn quantities_follow_json_rpc_rules() {
        assert_eq!(u64::from_json_hex("0x0"), Ok(0));
        assert_eq!(u64::from_json_hex("0x1aF"), Ok(0x1af));
        assert_eq!(u64::from_json_hex("0x"), Err(HexError::EmptyQuantity));
        assert_eq!(u64::from_json_hex("0x01"), Err(HexError::LeadingZero));
        assert_eq!(u64::from_json_hex("0x00"), Err(HexError::LeadingZero));
        assert_eq!(u64::from_json_hex("12"), Err(HexError::MissingPrefix));
        assert_eq!(u64::from_json_hex("0X12"), Err(HexError::MissingPrefix));
        assert_eq!(u64::from_json_hex("0x+1"), Err(HexError::InvalidDigit));
        assert_eq!(u64::from_json_hex("0xg"), Err(HexError::InvalidDigit));
        assert_eq!(u64::from_json_hex("0xffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(
            u64::from_json_hex("0x10000000000000000"),
            Err(HexError::Overflow { bits: 64 })
        );
        assert_eq!(
            U256::from_json_hex(&format!("0x{}", "f".repeat(64))),
            Ok(U256::MAX)
        );
        assert_eq!(
            U256::from_json_hex(&format!("0x1{}", "0".repeat(64))),
            Err(HexError::Overflow { bits: 256 })
        );
    }

    #[test]
    fn data_needs_even_digits() {
        assert_eq!(Bytes::from_json_hex("0x"), Ok(Bytes::new()));
        assert_eq!(
            Bytes::from_json_hex("0x00ff"),
            Ok(Bytes::from(vec![0, 0xff]))
        );
        assert_eq!(Bytes::from_json_hex("0x0"), Err(HexError::OddLength));
        assert_eq!(Bytes::from_json_hex("00"), Err(HexError::MissingPrefix));
        assert_eq!(Bytes::from_json_hex("0x 0"), Err(HexError::InvalidDigit));
        assert_eq!(Bytes::from_json_hex("0x0g"), Err(HexError::InvalidDigit));
        assert_eq!(
            B256::from_json_hex("0x00"),
            Err(HexError::WrongLength {
                expected: 32,
                actual: 1
            })
        );
    }

    #[test]
    fn addresses_check_mixed_case_checksums() {
        let a = address!("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
        // Checksummed, all lower and all upper case are accepted.
        assert_eq!(
            Address::from_json_hex("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
            Ok(a)
        );
        assert_eq!(
            Address::from_json_hex("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"),
            Ok(a)
        );
        assert_eq!(
            Address::from_json_hex("0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED"),
            Ok(a)
        );
        // One letter's case flipped.
        assert_eq!(
            Address::from_json_hex("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),
            Err(HexError::BadChecksum)
        );
        assert_eq!(
            Address::from_json_hex("0x5aaeb6053f3e94c9b9a09f33669435e7ef1bea"),
            Err(HexError::WrongLength {
                expected: 20,
                actual: 19
            })
        );
    }

    #[test]
    fn a_second_prefix_is_refused() {
        let b32 = format!("0x0x{}", "35".repeat(31));
        let address = format!("0x0x{}", "35".repeat(19));
        assert_eq!(Bytes::from_json_hex("0x0x35"), Err(HexError::InvalidDigit));
        assert_eq!(Bytes::from_json_hex("0x0x"), Err(HexError::InvalidDigit));
        assert_eq!(B256::from_json_hex(&b32), Err(HexError::InvalidDigit));
        assert_eq!(
            Address::from_json_hex(&address),
            Err(HexError::InvalidDigit)
        );
        assert_eq!(u64::from_json_hex("0x0x1"), Err(HexError::InvalidDigit));
        assert_eq!(U256::from_json_hex("0x0x1"), Err(HexError::InvalidDigit));
        // Without the second prefix, the same digits are fine.
        assert_eq!(
            B256::from_json_hex(&b32.replacen("0x0x", "0x35", 1)),
            Ok(B256::repeat_byte(0x35))
        );
        assert_eq!(
            Address::from_json_hex(&address.replacen("0x0x", "0x35", 1)),
            Ok(Address::repeat_byte(0x35))
        );
    }

    proptest::proptest! {
        #[test]
        fn u128_quantities_round_trip(v: u128) {
            proptest::prop_assert_eq!(u128::from_json_hex(&format!("{v:#x}")), Ok(v));
        }

        #[test]
        fn data_round_trips_and_a_second_prefix_never_parses(bytes: Vec<u8>) {
            let text = format!("0x{}", alloy_primitives::hex::encode(&bytes));
            proptest::prop_assert_eq!(Bytes::from_json_hex(&text), Ok(Bytes::from(bytes)));
            let doubled = format!("0x{text}");
            proptest::prop_assert_eq!(Bytes::from_json_hex(&doubled), Err(HexError::InvalidDigit));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = u64::from_json_hex(&s);
            let _ = U256::from_json_hex(&s);
            let _ = Bytes::from_json_hex(&s);
            let _ = Address::from_json_hex(&s);
        }
    }
}
