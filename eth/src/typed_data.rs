//! EIP-712 typed data, as the JSON of `eth_signTypedData_v4`.
//!
//! alloy computes the hash. In front of it, this module accepts only documents that every
//! mainstream implementation (alloy, MetaMask's eth-sig-util v4, ethers) hashes the same way, and
//! that are small enough to hash in bounded time and stack:
//! - the document has exactly `types`, `primaryType`, `domain` and `message`;
//! - type and member names are identifiers; member types are the EIP-712 atomic types
//!   (`bool`, `address`, `string`, `bytes`, `bytes1`–`bytes32`, `uint8`–`uint256`,
//!   `int8`–`int256`), declared struct types, or arrays of those (`T[]`, `T[n]`);
//! - struct types do not refer to themselves, directly or not, and the type graph is bounded
//!   (at most 64 types of 64 members, 4 array dimensions, 16 levels, 1,024 struct nodes when
//!   expanded), so hostile documents cannot exhaust stack or time;
//! - `types.EIP712Domain` declares exactly the domain's fields, in EIP-712 order (`name`,
//!   `version`, `chainId`, `verifyingContract`, `salt`) with their EIP-712 types;
//! - every struct value has exactly its declared members: nothing extra that a reader would
//!   think is signed, nothing missing;
//! - every leaf value has one unambiguous reading: booleans are JSON booleans; addresses are
//!   0x-hex with a valid EIP-55 checksum if mixed-case; `bytes` and `bytesN` are 0x-hex of the
//!   right length; integers are JSON integers up to 2^53 or strings of decimal digits (with an
//!   optional `-`) or `0x` hex, within the type's range;
//! - a document whose primary type is `EIP712Domain` must have an empty message.
//!
//! The hash is EIP-712's, as alloy computes it, except that this module hashes the structs
//! itself so as to compute each struct type's `typeHash` once per document; alloy computes it,
//! from the type's whole `encodeType` string, again for every struct value, which lets a
//! 64 KiB document cost hundreds of milliseconds. The work is then linear in the document, and
//! all keccak-256 input is counted: a document needing more than [`MAX_HASHED_BYTES`] is refused
//! (none of at most [`MAX_TYPED_DATA_LEN`] bytes does). The tests check the hashes against
//! alloy's and eth-sig-util's.

use std::collections::BTreeMap;

use alloy_dyn_abi::{DynSolValue, Resolver, TypedData as AlloyTypedData};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use serde_json::{Map, Value};

use crate::{PayloadError, hex::FromJsonHex, json::from_json_slice};

/// Largest accepted typed-data document.
pub const MAX_TYPED_DATA_LEN: usize = 64 * 1024;
const MAX_TYPES: usize = 64;
const MAX_MEMBERS: usize = 64;
const MAX_ARRAY_DIMENSIONS: usize = 4;
const MAX_ARRAY_LEN: usize = 1024;
const MAX_TYPE_DEPTH: usize = 16;
const MAX_EXPANDED_STRUCTS: usize = 1024;
/// Most bytes hashed with keccak-256 while hashing one document; a document that would need
/// more is refused. Each struct type's `typeHash` is computed once per document, so a document
/// of at most [`MAX_TYPED_DATA_LEN`] bytes stays under it: at most 65 `encodeType` strings, each
/// shorter than the document (4.3 MB), plus at most 64 bytes for every 3 bytes of message (an
/// empty struct `{},` in an array: its `typeHash`, and its hash in the array's encoding; 1.4 MB),
/// plus the strings and bytes themselves.
pub const MAX_HASHED_BYTES: usize = 8 << 20;

/// The domain fields EIP-712 defines, in its order, with their types.
const DOMAIN_FIELDS: [(&str, &str); 5] = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
];

/// Validated typed data and its signing hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedData {
    document: AlloyTypedData,
    hash: B256,
}

fn err(message: impl Into<String>) -> PayloadError {
    PayloadError::TypedData(message.into())
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An EIP-712 atomic type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atomic {
    Bool,
    Address,
    String,
    Bytes,
    FixedBytes(usize),
    Uint(usize),
    Int(usize),
}

impl Atomic {
    fn parse(name: &str) -> Option<Self> {
        let sized = |rest: &str, valid: &dyn Fn(usize) -> bool| {
            rest.parse::<usize>()
                .ok()
                .filter(|n| valid(*n) && !rest.starts_with('0'))
        };
        Some(match name {
            "bool" => Self::Bool,
            "address" => Self::Address,
            "string" => Self::String,
            "bytes" => Self::Bytes,
            _ => {
                if let Some(rest) = name.strip_prefix("bytes") {
                    Self::FixedBytes(sized(rest, &|n| (1..=32).contains(&n))?)
                } else if let Some(rest) = name.strip_prefix("uint") {
                    Self::Uint(sized(rest, &|n| n % 8 == 0 && (8..=256).contains(&n))?)
                } else if let Some(rest) = name.strip_prefix("int") {
                    Self::Int(sized(rest, &|n| n % 8 == 0 && (8..=256).contains(&n))?)
                } else {
                    return None;
                }
            }
        })
    }
}

/// A member type: a base and array dimensions, innermost first (`T[2][]` is `[Some(2), None]`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberType<'a> {
    base: Base<'a>,
    dimensions: Vec<Option<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base<'a> {
    Atomic(Atomic),
    Struct(&'a str),
}

impl<'a> MemberType<'a> {
    fn parse(ty: &'a str, declared: &Map<String, Value>) -> Result<Self, PayloadError> {
        let (base, mut rest) = ty.split_at(ty.find('[').unwrap_or(ty.len()));
        let base = match Atomic::parse(base) {
            Some(atomic) => Base::Atomic(atomic),
            None if is_identifier(base) && declared.contains_key(base) => Base::Struct(base),
            None => return Err(err(format!("types: unknown type `{ty}`"))),
        };
        let mut dimensions = Vec::new();
        while let Some(inner) = rest.strip_prefix('[') {
            let (size, after) = inner
                .split_once(']')
                .ok_or_else(|| err(format!("types: malformed array type `{ty}`")))?;
            dimensions.push(match size {
                "" => None,
                n => Some(
                    n.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_ARRAY_LEN).contains(n) && !size.starts_with('0'))
                        .ok_or_else(|| err(format!("types: bad array size in `{ty}`")))?,
                ),
            });
            rest = after;
        }
        if !rest.is_empty() || dimensions.len() > MAX_ARRAY_DIMENSIONS {
            return Err(err(format!(
                "types: malformed or too deeply nested array type `{ty}`"
            )));
        }
        Ok(Self { base, dimensions })
    }
}

/// The checked `types` section: each struct's members, in order.
struct Types<'a> {
    structs: BTreeMap<&'a str, Vec<(&'a str, MemberType<'a>)>>,
}

impl<'a> Types<'a> {
    fn parse(types: &'a Map<String, Value>) -> Result<Self, PayloadError> {
        if types.len() > MAX_TYPES + 1 {
            return Err(err(format!("types: more than {MAX_TYPES} types")));
        }
        let mut structs = BTreeMap::new();
        for (name, decl) in types {
            if !is_identifier(name) || Atomic::parse(name).is_some() {
                return Err(err(format!(
                    "types: `{name}` is not a valid struct type name"
                )));
            }
            let bad = || {
                err(format!(
                    "types.{name}: expected a list of {{\"name\", \"type\"}}"
                ))
            };
            let members = decl.as_array().ok_or_else(bad)?;
            if members.len() > MAX_MEMBERS {
                return Err(err(format!(
                    "types.{name}: more than {MAX_MEMBERS} members"
                )));
            }
            let mut parsed: Vec<(&str, MemberType<'_>)> = Vec::with_capacity(members.len());
            for member in members {
                let member = member
                    .as_object()
                    .filter(|m| m.len() == 2)
                    .ok_or_else(bad)?;
                let member_name = member.get("name").and_then(Value::as_str).ok_or_else(bad)?;
                let member_type = member.get("type").and_then(Value::as_str).ok_or_else(bad)?;
                if !is_identifier(member_name) || parsed.iter().any(|(n, _)| *n == member_name) {
                    return Err(err(format!(
                        "types.{name}: bad or repeated member `{member_name}`"
                    )));
                }
                parsed.push((member_name, MemberType::parse(member_type, types)?));
            }
            structs.insert(name.as_str(), parsed);
        }
        let types = Self { structs };
        let mut memo = BTreeMap::new();
        for name in types.structs.keys() {
            types.expanded_size(name, &mut Vec::new(), &mut memo)?;
        }
        Ok(types)
    }

    /// Struct nodes in `name`'s expanded type tree, refusing cycles and deep or huge graphs.
    fn expanded_size(
        &self,
        name: &'a str,
        path: &mut Vec<&'a str>,
        memo: &mut BTreeMap<&'a str, usize>,
    ) -> Result<usize, PayloadError> {
        if let Some(size) = memo.get(name) {
            return Ok(*size);
        }
        if path.contains(&name) {
            return Err(err(format!("types: `{name}` refers to itself")));
        }
        if path.len() >= MAX_TYPE_DEPTH {
            return Err(err(format!(
                "types: nested deeper than {MAX_TYPE_DEPTH} levels"
            )));
        }
        path.push(name);
        let mut size = 1usize;
        for (_, member) in self
            .structs
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Base::Struct(inner) = member.base {
                size = size.saturating_add(self.expanded_size(inner, path, memo)?);
            }
        }
        path.pop();
        if size > MAX_EXPANDED_STRUCTS {
            return Err(err(format!(
                "types: `{name}` expands to more than {MAX_EXPANDED_STRUCTS} structs"
            )));
        }
        memo.insert(name, size);
        Ok(size)
    }

    /// Checks that `value` is a canonical value of `ty`.
    fn check(&self, ty: &MemberType<'a>, value: &Value, path: &str) -> Result<(), PayloadError> {
        if let Some((outer, inner)) = ty.dimensions.split_last() {
            let items = value
                .as_array()
                .ok_or_else(|| err(format!("{path}: expected an array")))?;
            if outer.is_some_and(|n| n != items.len()) || items.len() > MAX_ARRAY_LEN {
                return Err(err(format!("{path}: wrong array length")));
            }
            let element = MemberType {
                base: ty.base,
                dimensions: inner.to_vec(),
            };
            for (i, item) in items.iter().enumerate() {
                self.check(&element, item, &format!("{path}[{i}]"))?;
            }
            return Ok(());
        }
        match ty.base {
            Base::Struct(name) => self.check_struct(name, value, path),
            Base::Atomic(atomic) => check_atomic(atomic, value, path),
        }
    }

    fn check_struct(&self, name: &str, value: &Value, path: &str) -> Result<(), PayloadError> {
        let object = value
            .as_object()
            .ok_or_else(|| err(format!("{path}: expected an object")))?;
        let members = self
            .structs
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for key in object.keys() {
            if !members.iter().any(|(n, _)| n == key) {
                return Err(err(format!(
                    "{path}.{key}: not declared in type {name}, so it would not be signed"
                )));
            }
        }
        for (member, ty) in members {
            let value = object
                .get(*member)
                .ok_or_else(|| err(format!("{path}.{member}: required by type {name}")))?;
            self.check(ty, value, &format!("{path}.{member}"))?;
        }
        Ok(())
    }
}

/// Largest integer a JSON number may carry without losing precision in JavaScript.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

fn check_atomic(atomic: Atomic, value: &Value, path: &str) -> Result<(), PayloadError> {
    let text = || {
        value
            .as_str()
            .ok_or_else(|| err(format!("{path}: expected a string")))
    };
    let hex = |e: crate::hex::HexError| err(format!("{path}: {e}"));
    match atomic {
        Atomic::Bool => {
            value
                .as_bool()
                .ok_or_else(|| err(format!("{path}: expected true or false")))?;
        }
        Atomic::String => {
            text()?;
        }
        Atomic::Address => {
            Address::from_json_hex(text()?).map_err(hex)?;
        }
        Atomic::Bytes => {
            Bytes::from_json_hex(text()?).map_err(hex)?;
        }
        Atomic::FixedBytes(n) => {
            let bytes = Bytes::from_json_hex(text()?).map_err(hex)?;
            if bytes.len() != n {
                return Err(err(format!("{path}: expected exactly {n} bytes")));
            }
        }
        Atomic::Uint(bits) | Atomic::Int(bits) => {
            let (negative, magnitude) = integer(value)
                .ok_or_else(|| err(format!("{path}: expected an integer (JSON number up to 2^53, decimal string or 0x-hex string)")))?;
            let signed = matches!(atomic, Atomic::Int(_));
            let fits = match (signed, negative) {
                (false, true) => magnitude.is_zero(),
                (false, false) => magnitude.bit_len() <= bits,
                (true, false) => magnitude.bit_len() < bits,
                // -2^(bits-1) is the smallest value.
                (true, true) => magnitude <= U256::from(1u8) << (bits - 1),
            };
            if !fits {
                return Err(err(format!("{path}: out of range for its type")));
            }
        }
    }
    Ok(())
}

/// Sign and magnitude of a canonical integer value.
fn integer(value: &Value) -> Option<(bool, U256)> {
    match value {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return (u <= MAX_SAFE_INTEGER).then(|| (false, U256::from(u)));
            }
            let i = n.as_i64()?;
            (i.unsigned_abs() <= MAX_SAFE_INTEGER).then(|| (true, U256::from(i.unsigned_abs())))
        }
        Value::String(s) => {
            if let Some(digits) = s.strip_prefix("0x") {
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                return U256::from_str_radix(digits, 16).ok().map(|m| (false, m));
            }
            let (negative, digits) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s.as_str()),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            U256::from_str_radix(digits, 10).ok().map(|m| (negative, m))
        }
        _ => None,
    }
}

impl TypedData {
    /// Parses and checks the JSON object of `eth_signTypedData_v4` (a JSON string holding that
    /// object is accepted too, as wallets send it that way).
    pub fn from_json(json: &[u8]) -> Result<Self, PayloadError> {
        if json.len() > MAX_TYPED_DATA_LEN {
            return Err(err(format!("larger than {MAX_TYPED_DATA_LEN} bytes")));
        }
        let value: Value = from_json_slice(json)?;
        Self::from_value(value)
    }

    /// Checks an already parsed document.
    ///
    /// A [`Value`] no longer shows whether its source repeated a key (serde_json kept the last
    /// one), so untrusted bytes go through [`TypedData::from_json`], which refuses them.
    pub fn from_value(value: Value) -> Result<Self, PayloadError> {
        let value = match value {
            Value::String(s) if s.len() <= MAX_TYPED_DATA_LEN => from_json_slice(s.as_bytes())
                .map_err(|e| err(format!("the string is not a typed-data document: {e}")))?,
            Value::String(_) => return Err(err(format!("larger than {MAX_TYPED_DATA_LEN} bytes"))),
            other => other,
        };
        check_document(&value)?;
        let document: AlloyTypedData =
            serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
        // Resolve and encode once, here: an unhashable document fails at parse time, and
        // signing reuses the hash.
        let hash = signing_hash(&document, MAX_HASHED_BYTES)?;
        Ok(Self { document, hash })
    }

    /// `keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(message))`, computed when the
    /// document was parsed.
    pub fn signing_hash(&self) -> Result<B256, PayloadError> {
        Ok(self.hash)
    }

    /// The parsed document.
    pub fn as_alloy(&self) -> &AlloyTypedData {
        &self.document
    }
}

/// `keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(message))`, or without the last part
/// when the primary type is `EIP712Domain` (as eth-sig-util and alloy do); the same value as
/// alloy's [`AlloyTypedData::eip712_signing_hash`], with the struct hashing of [`Hasher`].
fn signing_hash(document: &AlloyTypedData, budget: usize) -> Result<B256, PayloadError> {
    let mut buf = Vec::with_capacity(66);
    buf.extend_from_slice(&[0x19, 0x01]);
    buf.extend_from_slice(document.domain.separator().as_slice());
    if document.primary_type != "EIP712Domain" {
        let message = document.coerce().map_err(|e| err(e.to_string()))?;
        let mut hasher = Hasher::new(&document.resolver, budget);
        buf.extend_from_slice(hasher.hash_struct(&message)?.as_slice());
    }
    Ok(keccak256(&buf))
}

/// EIP-712 `hashStruct`, computed as alloy's `Resolver::eip712_data_word` does, except that each
/// struct type's `typeHash` is computed once per document. alloy computes it again for every
/// struct value, and each time builds the type's whole `encodeType` string (the type and every
/// type it refers to) and hashes it: a 64 KiB document with a wide type and thousands of small
/// values of a type that refers to it took about 0.3 s of CPU that way; once per type, the work is
/// linear in the document. All keccak-256 input is counted against a budget
/// ([`MAX_HASHED_BYTES`]), so that the work is bounded whatever the document.
struct Hasher<'a> {
    resolver: &'a Resolver,
    type_hashes: BTreeMap<&'a str, B256>,
    /// Bytes hashed so far.
    hashed: usize,
    budget: usize,
}

impl<'a> Hasher<'a> {
    fn new(resolver: &'a Resolver, budget: usize) -> Self {
        Self {
            resolver,
            type_hashes: BTreeMap::new(),
            hashed: 0,
            budget,
        }
    }

    fn keccak(&mut self, bytes: &[u8]) -> Result<B256, PayloadError> {
        self.hashed = self.hashed.saturating_add(bytes.len());
        if self.hashed > self.budget {
            return Err(err(format!(
                "hashing needs more than {} bytes of keccak-256 input",
                self.budget
            )));
        }
        Ok(keccak256(bytes))
    }

    /// `keccak256(encodeType(name))`, computed once per type.
    fn type_hash(&mut self, name: &'a str) -> Result<B256, PayloadError> {
        if let Some(hash) = self.type_hashes.get(name) {
            return Ok(*hash);
        }
        let encoded = self
            .resolver
            .encode_type(name)
            .map_err(|e| err(e.to_string()))?;
        let hash = self.keccak(encoded.as_bytes())?;
        self.type_hashes.insert(name, hash);
        Ok(hash)
    }

    /// `hashStruct(value)` of the primary type's value.
    fn hash_struct(&mut self, value: &'a DynSolValue) -> Result<B256, PayloadError> {
        match value {
            DynSolValue::CustomStruct { .. } => self.data_word(value),
            _ => Err(err("primaryType: must be a struct type")),
        }
    }

    /// The 32 bytes a value contributes to its parent's `encodeData`: atomic values as they
    /// are, the others hashed.
    fn data_word(&mut self, value: &'a DynSolValue) -> Result<B256, PayloadError> {
        if let Some(word) = value.as_word() {
            return Ok(word);
        }
        match value {
            DynSolValue::CustomStruct { name, tuple, .. } => {
                let mut bytes = Vec::with_capacity(32 * (tuple.len() + 1));
                bytes.extend_from_slice(self.type_hash(name)?.as_slice());
                for member in tuple {
                    bytes.extend_from_slice(self.data_word(member)?.as_slice());
                }
                self.keccak(&bytes)
            }
            DynSolValue::Array(items) | DynSolValue::FixedArray(items) => {
                let mut bytes = Vec::with_capacity(32 * items.len());
                for item in items {
                    bytes.extend_from_slice(self.data_word(item)?.as_slice());
                }
                self.keccak(&bytes)
            }
            DynSolValue::Bytes(bytes) => self.keccak(bytes),
            DynSolValue::String(text) => self.keccak(text.as_bytes()),
            // Tuples and functions are not EIP-712 types; the checks refuse them before here.
            _ => Err(err("a value of a type EIP-712 cannot encode")),
        }
    }
}

/// The checks of the module docs, on the whole document.
fn check_document(value: &Value) -> Result<(), PayloadError> {
    let doc = value
        .as_object()
        .ok_or_else(|| err("expected a JSON object"))?;
    for key in doc.keys() {
        if !["types", "primaryType", "domain", "message"].contains(&key.as_str()) {
            return Err(err(format!("unknown field `{key}`")));
        }
    }
    let raw_types = field(doc, "types")?
        .as_object()
        .ok_or_else(|| err("types: expected an object"))?;
    let domain = field(doc, "domain")?;
    let domain_fields = domain
        .as_object()
        .ok_or_else(|| err("domain: expected an object"))?;
    let primary = field(doc, "primaryType")?
        .as_str()
        .ok_or_else(|| err("primaryType: expected a string"))?;
    let message = field(doc, "message")?;

    let types = Types::parse(raw_types)?;
    check_domain(domain_fields, raw_types)?;
    types.check_struct("EIP712Domain", domain, "domain")?;
    if primary == "EIP712Domain" {
        if message.as_object().is_none_or(|m| !m.is_empty()) {
            return Err(err(
                "message: must be {} when primaryType is EIP712Domain; it would not be signed",
            ));
        }
        return Ok(());
    }
    if !types.structs.contains_key(primary) {
        return Err(err(format!(
            "primaryType: `{primary}` is not declared in types"
        )));
    }
    types.check_struct(primary, message, "message")
}

fn field<'a>(doc: &'a Map<String, Value>, name: &str) -> Result<&'a Value, PayloadError> {
    doc.get(name)
        .ok_or_else(|| err(format!("{name}: required")))
}

/// The domain has only EIP-712 fields, and `types.EIP712Domain` declares exactly those.
fn check_domain(
    domain: &Map<String, Value>,
    types: &Map<String, Value>,
) -> Result<(), PayloadError> {
    for key in domain.keys() {
        if !DOMAIN_FIELDS.iter().any(|(name, _)| name == key) {
            return Err(err(format!("domain: unknown field `{key}`")));
        }
    }
    let declared = types
        .get("EIP712Domain")
        .ok_or_else(|| err("types.EIP712Domain: required, declaring the domain's fields"))?;
    let expected: Vec<(&str, &str)> = DOMAIN_FIELDS
        .into_iter()
        .filter(|(name, _)| domain.contains_key(*name))
        .collect();
    let declared: Option<Vec<(&str, &str)>> = declared.as_array().map(|members| {
        members
            .iter()
            .filter_map(|m| Some((m.get("name")?.as_str()?, m.get("type")?.as_str()?)))
            .collect()
    });
    if declared.as_deref() != Some(expected.as_slice()) {
        return Err(err(
            "types.EIP712Domain must declare exactly the fields present in domain, in EIP-712 \
             order (name, version, chainId, verifyingContract, salt) and with their EIP-712 types",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "Mail" example of EIP-712 itself.
    pub(crate) const MAIL: &str = r#"{
      "types": {
        "EIP712Domain": [
          {"name": "name", "type": "string"},
          {"name": "version", "type": "string"},
          {"name": "chainId", "type": "uint256"},
          {"name": "verifyingContract", "type": "address"}
        ],
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
          {"name": "from", "type": "Person"},
          {"name": "to", "type": "Person"},
          {"name": "contents", "type": "string"}
        ]
      },
      "primaryType": "Mail",
      "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 1,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
      },
      "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!"
      }
    }"#;

    #[test]
    fn mail_hash_matches_eip712() {
        let typed = TypedData::from_json(MAIL.as_bytes()).unwrap();
        // From the EIP's reference implementation (Example.js).
        assert_eq!(
            typed.signing_hash().unwrap().to_string(),
            "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        );
    }

    #[test]
    fn refuses_undeclared_message_fields() {
        let doc = MAIL.replace(
            r#""contents": "Hello, Bob!""#,
            r#""contents": "Hi", "amount": "1""#,
        );
        let e = TypedData::from_json(doc.as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .contains("message.amount: not declared in type Mail"),
            "{e}"
        );
        let doc = MAIL.replace(r#""name": "Bob","#, r#""name": "Bob", "x": 1,"#);
        let e = TypedData::from_json(doc.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("message.to.x"), "{e}");
    }

    #[test]
    fn refuses_domain_mismatches() {
        // chainId present in the domain but not declared.
        let doc = MAIL.replace(r#"{"name": "chainId", "type": "uint256"},"#, "");
        assert!(TypedData::from_json(doc.as_bytes()).is_err());
        // Declared out of EIP-712 order.
        let doc = MAIL.replace(
            r#"{"name": "name", "type": "string"},
          {"name": "version", "type": "string"},"#,
            r#"{"name": "version", "type": "string"},
          {"name": "name", "type": "string"},"#,
        );
        assert!(TypedData::from_json(doc.as_bytes()).is_err());
        // An unknown domain field.
        let doc = MAIL.replace(r#""version": "1","#, r#""version": "1", "extra": "x","#);
        assert!(TypedData::from_json(doc.as_bytes()).is_err());
    }

    #[test]
    fn hashes_each_type_once_within_the_budget() {
        let typed = TypedData::from_json(MAIL.as_bytes()).unwrap();
        let document = typed.as_alloy();
        let message = document.coerce().unwrap();
        let mut hasher = Hasher::new(&document.resolver, MAX_HASHED_BYTES);
        let hash = hasher.hash_struct(&message).unwrap();
        assert_eq!(hash, document.hash_struct().unwrap());
        // Mail and Person, though there are two Person values.
        assert_eq!(
            hasher.type_hashes.keys().copied().collect::<Vec<_>>(),
            ["Mail", "Person"]
        );
        // encodeType of Mail and of Person; Mail's encoding (4 words), each Person's (3 words);
        // the two names and "Hello, Bob!".
        let hashed = "Mail(Person from,Person to,string contents)Person(string name,address wallet)"
            .len()
            + "Person(string name,address wallet)".len()
            + 4 * 32
            + 2 * 3 * 32
            + "Cow".len()
            + "Bob".len() + "Hello, Bob!".len();
        assert_eq!(hasher.hashed, hashed);
        // One byte less and the document is refused.
        let mut hasher = Hasher::new(&document.resolver, hashed - 1);
        let e = hasher.hash_struct(&message).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
        assert_eq!(
            signing_hash(document, hashed),
            Ok(typed.signing_hash().unwrap())
        );
        assert!(signing_hash(document, hashed - 1).is_err());
    }

    #[test]
    fn a_domain_only_document_hashes_as_alloy_does() {
        let doc = MAIL.replace(
            r#""primaryType": "Mail""#,
            r#""primaryType": "EIP712Domain""#,
        );
        let doc = doc.replace(
            &doc[doc.find(r#""message""#).unwrap()..doc.rfind('}').unwrap()],
            r#""message": {}"#,
        );
        let typed = TypedData::from_json(doc.as_bytes()).unwrap();
        assert_eq!(
            typed.signing_hash().unwrap(),
            typed.as_alloy().eip712_signing_hash().unwrap()
        );
    }

    #[test]
    fn accepts_a_stringified_document() {
        let quoted = serde_json::to_vec(&Value::String(MAIL.into())).unwrap();
        let a = TypedData::from_json(&quoted).unwrap();
        let b = TypedData::from_json(MAIL.as_bytes()).unwrap();
        assert_eq!(a.signing_hash().unwrap(), b.signing_hash().unwrap());
    }
}
