//! The audit log's lines: parsing and encoding, strict both ways.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use serde_bytes::{ByteArray, ByteBuf};

use crate::receipt::{Operation, Receipt, ReceiptError, Statement};

/// Longest line accepted, in bytes (newline excluded). A receipt line of a full batch
/// (1,000 items) is about 200 KB of hex; a boot line at most about 22 KB.
pub const MAX_LINE_LEN: usize = 1 << 20;

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Line {
    /// An attestation document binding a boot's receipt key, fetched by the proxy for `nonce`.
    Boot(BootLine),
    /// A receipt, with a summary of its statement for people.
    Receipt(ReceiptLine),
    /// The proxy declares that it does not have the receipts `from..=to` of a boot.
    Gap(GapLine),
}

/// `{"type":"boot","receiptKey","nonce","attestation"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootLine {
    /// The boot's receipt key (Ed25519 public key).
    pub receipt_key: [u8; 32],
    /// The nonce the proxy sent with its attestation request.
    pub nonce: Vec<u8>,
    /// The attestation document, as the enclave answered it.
    pub attestation: Vec<u8>,
}

/// `{"type":"gap","receiptKey","from","to"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapLine {
    /// The boot's receipt key.
    pub receipt_key: [u8; 32],
    /// First missing sequence number.
    pub from: u64,
    /// Last missing sequence number (inclusive).
    pub to: u64,
}

/// What a receipt line says about its statement, for people reading the log. A checker trusts
/// only the statement and its signature, and reports a summary that disagrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The receipt key that signs the statement.
    pub receipt_key: [u8; 32],
    /// The statement's sequence number.
    pub sequence: u64,
    /// What was done.
    pub operation: Operation,
    /// The enclave's time, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The key's id.
    pub key_id: [u8; 32],
    /// The user, when the statement names one.
    pub user_id: Option<String>,
    /// The address, when the statement names one.
    pub address: Option<[u8; 20]>,
    /// How many signatures the statement lists.
    pub items: u64,
}

impl Summary {
    /// The summary of `statement`.
    pub fn of(statement: &Statement) -> Self {
        Self {
            receipt_key: statement.receipt_key,
            sequence: statement.sequence,
            operation: statement.operation,
            time_ms: statement.time_ms,
            key_id: statement.key_id,
            user_id: statement.user_id.as_ref().map(|u| u.as_str().to_owned()),
            address: statement.address,
            items: statement.items.len() as u64,
        }
    }

    /// The first field in which this summary disagrees with `statement`, if any.
    pub fn disagreement(&self, statement: &Statement) -> Option<&'static str> {
        let actual = Self::of(statement);
        [
            (self.receipt_key == actual.receipt_key, "receiptKey"),
            (self.sequence == actual.sequence, "sequence"),
            (self.operation == actual.operation, "operation"),
            (self.time_ms == actual.time_ms, "time"),
            (self.key_id == actual.key_id, "keyId"),
            (self.user_id == actual.user_id, "userId"),
            (self.address == actual.address, "address"),
            (self.items == actual.items, "items"),
        ]
        .into_iter()
        .find_map(|(same, field)| (!same).then_some(field))
    }
}

/// `{"type":"receipt", summary fields…, "statement", "signature"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptLine {
    /// The summary, as the line says it.
    pub summary: Summary,
    /// The receipt: statement bytes and signature.
    pub receipt: Receipt,
}

impl ReceiptLine {
    /// The line for `receipt`, summarizing its statement (decoded, not verified).
    pub fn new(receipt: Receipt) -> Result<Self, ReceiptError> {
        let statement = receipt.statement_unverified()?;
        Ok(Self {
            summary: Summary::of(&statement),
            receipt,
        })
    }
}

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// Longer than [`MAX_LINE_LEN`].
    #[error("the line is longer than {MAX_LINE_LEN} bytes")]
    TooLong,
    /// Not a JSON object of one of the line types, with exactly its fields.
    #[error("{0}")]
    Json(String),
}

impl Line {
    /// Parses one line (without its newline). Unknown types, unknown or duplicate fields,
    /// upper-case or odd-length hex and trailing bytes are refused, so that a line has one
    /// encoding.
    pub fn parse(bytes: &[u8]) -> Result<Self, LineError> {
        if bytes.len() > MAX_LINE_LEN {
            return Err(LineError::TooLong);
        }
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| LineError::Json(e.to_string()))?;
        Ok(wire.into())
    }

    /// The line's JSON text, without a newline.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        // JSON text is UTF-8.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the line's JSON text, without a newline, to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Serializing into a vector cannot fail: every key is a string and every value a
        // string, a number, or null.
        let _ = serde_json::to_writer(out, &WireOut::from(self));
    }

    /// The receipt key the line is about (a receipt line's is the summary's).
    pub fn receipt_key(&self) -> &[u8; 32] {
        match self {
            Self::Boot(boot) => &boot.receipt_key,
            Self::Receipt(receipt) => &receipt.summary.receipt_key,
            Self::Gap(gap) => &gap.receipt_key,
        }
    }
}

/// The JSON shape, as read.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Wire {
    #[serde(rename_all = "camelCase")]
    Boot {
        receipt_key: Hex<32>,
        nonce: HexVec,
        attestation: Base64,
    },
    #[serde(rename_all = "camelCase")]
    Receipt {
        receipt_key: Hex<32>,
        sequence: u64,
        operation: OperationName,
        time: u64,
        key_id: Hex<32>,
        user_id: Option<String>,
        address: Option<Hex<20>>,
        items: u64,
        statement: HexVec,
        signature: Hex<64>,
    },
    #[serde(rename_all = "camelCase")]
    Gap {
        receipt_key: Hex<32>,
        from: u64,
        to: u64,
    },
}

/// The JSON shape, as written (borrowing the line). Field order is the order written.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum WireOut<'a> {
    #[serde(rename_all = "camelCase")]
    Boot {
        receipt_key: HexOut<'a>,
        nonce: HexOut<'a>,
        attestation: Base64Out<'a>,
    },
    #[serde(rename_all = "camelCase")]
    Receipt {
        receipt_key: HexOut<'a>,
        sequence: u64,
        operation: &'static str,
        time: u64,
        key_id: HexOut<'a>,
        user_id: Option<&'a str>,
        address: Option<HexOut<'a>>,
        items: u64,
        statement: HexOut<'a>,
        signature: HexOut<'a>,
    },
    #[serde(rename_all = "camelCase")]
    Gap {
        receipt_key: HexOut<'a>,
        from: u64,
        to: u64,
    },
}

impl From<Wire> for Line {
    fn from(wire: Wire) -> Self {
        match wire {
            Wire::Boot {
                receipt_key,
                nonce,
                attestation,
            } => Self::Boot(BootLine {
                receipt_key: receipt_key.0,
                nonce: nonce.0,
                attestation: attestation.0,
            }),
            Wire::Receipt {
                receipt_key,
                sequence,
                operation,
                time,
                key_id,
                user_id,
                address,
                items,
                statement,
                signature,
            } => Self::Receipt(ReceiptLine {
                summary: Summary {
                    receipt_key: receipt_key.0,
                    sequence,
                    operation: operation.0,
                    time_ms: time,
                    key_id: key_id.0,
                    user_id,
                    address: address.map(|a| a.0),
                    items,
                },
                receipt: Receipt {
                    statement: ByteBuf::from(statement.0),
                    signature: ByteArray::new(signature.0),
                },
            }),
            Wire::Gap {
                receipt_key,
                from,
                to,
            } => Self::Gap(GapLine {
                receipt_key: receipt_key.0,
                from,
                to,
            }),
        }
    }
}

impl<'a> From<&'a Line> for WireOut<'a> {
    fn from(line: &'a Line) -> Self {
        match line {
            Line::Boot(boot) => Self::Boot {
                receipt_key: HexOut(&boot.receipt_key),
                nonce: HexOut(&boot.nonce),
                attestation: Base64Out(&boot.attestation),
            },
            Line::Receipt(ReceiptLine { summary, receipt }) => Self::Receipt {
                receipt_key: HexOut(&summary.receipt_key),
                sequence: summary.sequence,
                operation: summary.operation.as_str(),
                time: summary.time_ms,
                key_id: HexOut(&summary.key_id),
                user_id: summary.user_id.as_deref(),
                address: summary.address.as_ref().map(|a| HexOut(a)),
                items: summary.items,
                statement: HexOut(&receipt.statement),
                signature: HexOut(receipt.signature.as_slice()),
            },
            Line::Gap(gap) => Self::Gap {
                receipt_key: HexOut(&gap.receipt_key),
                from: gap.from,
                to: gap.to,
            },
        }
    }
}

/// `0x` and lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    HexOut(bytes).to_string()
}

/// Bytes displayed as `0x` and lower-case hex, written straight into the output.
struct HexOut<'a>(&'a [u8]);

impl fmt::Display for HexOut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digit = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
        f.write_str("0x")?;
        let mut buffer = [0u8; 128];
        for chunk in self.0.chunks(64) {
            for (byte, pair) in chunk.iter().zip(buffer.chunks_exact_mut(2)) {
                if let [high, low] = pair {
                    *high = digit(byte >> 4);
                    *low = digit(byte & 0x0f);
                }
            }
            let text = buffer.get(..2 * chunk.len()).unwrap_or_default();
            f.write_str(std::str::from_utf8(text).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl Serialize for HexOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Bytes written as standard, padded base64.
struct Base64Out<'a>(&'a [u8]);

impl Serialize for Base64Out<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(self.0))
    }
}

/// The bytes of `0x`-prefixed, lower-case, even-length hex.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.strip_prefix("0x")?.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let value = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    digits
        .chunks_exact(2)
        .map(|pair| match pair {
            [high, low] => Some(value(*high)? << 4 | value(*low)?),
            _ => None,
        })
        .collect()
}

struct Hex<const N: usize>([u8; N]);
struct HexVec(Vec<u8>);
struct Base64(Vec<u8>);
struct OperationName(Operation);

/// Deserializes a string through `convert`, naming `expected` when it fails.
fn from_text<'de, D, T>(
    deserializer: D,
    expected: &'static str,
    convert: impl FnOnce(&str) -> Option<T>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct Text<'a>(&'a str);
    impl de::Expected for Text<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
    convert(&text)
        .ok_or_else(|| de::Error::invalid_value(de::Unexpected::Str(&text), &Text(expected)))
}

impl<'de, const N: usize> Deserialize<'de> for Hex<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            "0x and lower-case hex of the right length",
            |text| parse_hex(text)?.try_into().ok().map(Self),
        )
    }
}

impl<'de> Deserialize<'de> for HexVec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(deserializer, "0x and lower-case hex", |text| {
            parse_hex(text).map(Self)
        })
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The standard engine refuses non-canonical trailing bits, so one text per document.
        from_text(deserializer, "standard, padded base64", |text| {
            BASE64.decode(text).ok().map(Self)
        })
    }
}

impl<'de> Deserialize<'de> for OperationName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(deserializer, "an operation name", |text| {
            Operation::from_name(text).map(Self)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt_line() -> Line {
        Line::Receipt(ReceiptLine {
            summary: Summary {
                receipt_key: [0x11; 32],
                sequence: 7,
                operation: Operation::SignTransaction,
                time_ms: 1_764_770_000_123,
                key_id: [0x22; 32],
                user_id: Some("alice \"quoted\"".to_owned()),
                address: Some([0xab; 20]),
                items: 1,
            },
            receipt: Receipt {
                statement: ByteBuf::from(vec![1, 2, 3]),
                signature: ByteArray::new([9; 64]),
            },
        })
    }

    #[test]
    fn every_line_type_round_trips_in_the_documented_shape() {
        let line = receipt_line();
        let text = line.encode();
        let expected = format!(
            concat!(
                r#"{{"type":"receipt","receiptKey":"0x{k}","sequence":7,"#,
                r#""operation":"sign_transaction","time":1764770000123,"keyId":"0x{id}","#,
                r#""userId":"alice \"quoted\"","address":"0x{a}","items":1,"#,
                r#""statement":"0x010203","signature":"0x{s}"}}"#
            ),
            k = "11".repeat(32),
            id = "22".repeat(32),
            a = "ab".repeat(20),
            s = "09".repeat(64),
        );
        assert_eq!(text, expected);
        assert_eq!(Line::parse(text.as_bytes()).unwrap(), line);

        let boot = Line::Boot(BootLine {
            receipt_key: [1; 32],
            nonce: vec![0xfe; 32],
            attestation: vec![0x84, 0x40, 0xa0],
        });
        let text = boot.encode();
        assert!(
            text.starts_with(r#"{"type":"boot","receiptKey":"0x0101"#),
            "{text}"
        );
        assert!(text.ends_with(r#""attestation":"hECg"}"#), "{text}");
        assert_eq!(Line::parse(text.as_bytes()).unwrap(), boot);

        let gap = Line::Gap(GapLine {
            receipt_key: [2; 32],
            from: 3,
            to: 9,
        });
        let text = gap.encode();
        assert_eq!(
            text,
            format!(
                r#"{{"type":"gap","receiptKey":"0x{}","from":3,"to":9}}"#,
                "02".repeat(32)
            )
        );
        assert_eq!(Line::parse(text.as_bytes()).unwrap(), gap);
    }

    #[test]
    fn anything_but_the_one_encoding_is_refused() {
        let text = receipt_line().encode();
        let refused = [
            text.replace("0x0102", "0X0102"),
            text.replace("0x010203", "0x01020"),
            text.replace("0xabab", "0xABab"),
            text.replace("sign_transaction", "sign_everything"),
            text.replace(r#""items":1"#, r#""items":1,"extra":0"#),
            text.replace(r#""items":1"#, r#""items":1,"items":1"#),
            text.replace(r#""type":"receipt""#, r#""type":"note""#),
            text.replace(r#""sequence":7"#, r#""sequence":-7"#),
            format!("{text} x"),
            String::new(),
            "[]".to_owned(),
        ];
        for text in refused {
            assert!(Line::parse(text.as_bytes()).is_err(), "{text}");
        }
        assert_eq!(
            Line::parse(&vec![b' '; MAX_LINE_LEN + 1]),
            Err(LineError::TooLong)
        );
    }

    #[test]
    fn hex_is_lower_case_with_a_prefix() {
        assert_eq!(hex(&[0x00, 0xff, 0x1a]), "0x00ff1a");
        assert_eq!(parse_hex("0x00ff1a"), Some(vec![0x00, 0xff, 0x1a]));
        assert_eq!(parse_hex("0x"), Some(vec![]));
        for bad in ["00ff", "0x0", "0xFF", "0xgg", "0x 0"] {
            assert_eq!(parse_hex(bad), None, "{bad}");
        }
    }
}
