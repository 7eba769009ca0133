//! EIP-712 typed data, as the JSON of `eth_signTypedData_v4`.
//!
//! alloy computes the hash. Before that, this module refuses documents where alloy and the
//! caller's wallet tooling could disagree about what is being signed, because the alloy hash
//! ignores some of the document:
//! - unknown top-level fields, and domain fields other than `name`, `version`, `chainId`,
//!   `verifyingContract` and `salt` (alloy would drop them from the domain separator);
//! - a `types.EIP712Domain` that does not declare exactly the domain's fields, in the order and
//!   with the types EIP-712 gives them (alloy hashes the domain from its fields, MetaMask from the
//!   declaration);
//! - message fields that the type does not declare, at any depth (they would not be signed,
//!   but a reader of the document would think they were).

use alloy_dyn_abi::TypedData as AlloyTypedData;
use alloy_primitives::B256;
use serde_json::{Map, Value};

use crate::{PayloadError, error::from_json_slice};

/// The domain fields EIP-712 defines, in its order, with their types.
const DOMAIN_FIELDS: [(&str, &str); 5] = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
];

/// Validated typed data, ready to hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedData(AlloyTypedData);

fn err(message: impl Into<String>) -> PayloadError {
    PayloadError::TypedData(message.into())
}

impl TypedData {
    /// Parses and checks the JSON object of `eth_signTypedData_v4` (a JSON string holding that
    /// object is accepted too, as wallets send it that way).
    pub fn from_json(json: &[u8]) -> Result<Self, PayloadError> {
        let value: Value = from_json_slice(json)?;
        Self::from_value(value)
    }

    /// Checks an already parsed document.
    pub fn from_value(value: Value) -> Result<Self, PayloadError> {
        let value = match value {
            Value::String(s) => serde_json::from_str(&s)
                .map_err(|e| err(format!("the string is not a typed-data document: {e}")))?,
            other => other,
        };
        let doc = value
            .as_object()
            .ok_or_else(|| err("expected a JSON object"))?;
        for key in doc.keys() {
            if !["types", "primaryType", "domain", "message"].contains(&key.as_str()) {
                return Err(err(format!("unknown field `{key}`")));
            }
        }
        let types = field(doc, "types")?
            .as_object()
            .ok_or_else(|| err("types: expected an object"))?;
        let domain = field(doc, "domain")?
            .as_object()
            .ok_or_else(|| err("domain: expected an object"))?;
        let primary = field(doc, "primaryType")?
            .as_str()
            .ok_or_else(|| err("primaryType: expected a string"))?;
        let message = field(doc, "message")?;

        check_domain(domain, types)?;
        if primary != "EIP712Domain" {
            check_value(types, primary, message, "message", 0)?;
        }

        let typed: AlloyTypedData =
            serde_json::from_value(value.clone()).map_err(|e| err(e.to_string()))?;
        let typed = Self(typed);
        // Resolve types and coerce the message now, so an unhashable document fails at parse time.
        typed
            .0
            .eip712_signing_hash()
            .map_err(|e| err(e.to_string()))?;
        Ok(typed)
    }

    /// `keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(message))`.
    pub fn signing_hash(&self) -> Result<B256, PayloadError> {
        self.0.eip712_signing_hash().map_err(|e| err(e.to_string()))
    }

    /// The parsed document.
    pub fn as_alloy(&self) -> &AlloyTypedData {
        &self.0
    }
}

fn field<'a>(doc: &'a Map<String, Value>, name: &str) -> Result<&'a Value, PayloadError> {
    doc.get(name)
        .ok_or_else(|| err(format!("{name}: required")))
}

fn check_domain(
    domain: &Map<String, Value>,
    types: &Map<String, Value>,
) -> Result<(), PayloadError> {
    for key in domain.keys() {
        if !DOMAIN_FIELDS.iter().any(|(name, _)| name == key) {
            return Err(err(format!("domain: unknown field `{key}`")));
        }
    }
    let Some(declared) = types.get("EIP712Domain") else {
        return Ok(());
    };
    let expected: Vec<(&str, &str)> = DOMAIN_FIELDS
        .into_iter()
        .filter(|(name, _)| domain.contains_key(*name))
        .collect();
    let declared = members(declared, "EIP712Domain")?;
    if declared != expected {
        return Err(err(
            "types.EIP712Domain must declare exactly the fields present in domain, in EIP-712 \
             order (name, version, chainId, verifyingContract, salt) and with their EIP-712 types",
        ));
    }
    Ok(())
}

/// The `(name, type)` members of one struct type's declaration.
fn members<'a>(decl: &'a Value, type_name: &str) -> Result<Vec<(&'a str, &'a str)>, PayloadError> {
    let bad = || {
        err(format!(
            "types.{type_name}: expected a list of {{\"name\", \"type\"}}"
        ))
    };
    decl.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|m| {
            let m = m.as_object().ok_or_else(bad)?;
            let name = m.get("name").and_then(Value::as_str).ok_or_else(bad)?;
            let ty = m.get("type").and_then(Value::as_str).ok_or_else(bad)?;
            Ok((name, ty))
        })
        .collect()
}

/// Depth limit for nested structs and arrays, far above any real document; it bounds recursion
/// on hostile input.
const MAX_DEPTH: usize = 64;

/// Refuses fields of `value` that type `ty` does not declare, recursing into struct members.
fn check_value(
    types: &Map<String, Value>,
    ty: &str,
    value: &Value,
    path: &str,
    depth: usize,
) -> Result<(), PayloadError> {
    if depth > MAX_DEPTH {
        return Err(err(format!(
            "{path}: nested deeper than {MAX_DEPTH} levels"
        )));
    }
    // `T[]` or `T[n]`: check every element as a `T`; alloy checks the lengths.
    if let Some(inner) = ty
        .strip_suffix(']')
        .and_then(|t| t.rsplit_once('['))
        .map(|(t, _)| t)
    {
        if let Some(items) = value.as_array() {
            for (i, item) in items.iter().enumerate() {
                check_value(types, inner, item, &format!("{path}[{i}]"), depth + 1)?;
            }
        }
        return Ok(());
    }
    let Some(decl) = types.get(ty) else {
        return Ok(()); // An atomic type, or an unknown one that alloy will refuse.
    };
    let declared = members(decl, ty)?;
    let Some(object) = value.as_object() else {
        return Ok(()); // alloy refuses a non-object for a struct type.
    };
    for (key, member) in object {
        let Some((_, member_ty)) = declared.iter().find(|(name, _)| name == key) else {
            return Err(err(format!(
                "{path}.{key}: not declared in type {ty}, so it would not be signed"
            )));
        };
        check_value(
            types,
            member_ty,
            member,
            &format!("{path}.{key}"),
            depth + 1,
        )?;
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
    fn accepts_a_stringified_document() {
        let quoted = serde_json::to_vec(&Value::String(MAIL.into())).unwrap();
        let a = TypedData::from_json(&quoted).unwrap();
        let b = TypedData::from_json(MAIL.as_bytes()).unwrap();
        assert_eq!(a.signing_hash().unwrap(), b.signing_hash().unwrap());
    }

    #[test]
    fn refuses_missing_parts_and_bad_values() {
        for part in ["\"message\"", "\"primaryType\""] {
            let doc = MAIL.replace(part, "\"renamed\"");
            assert!(TypedData::from_json(doc.as_bytes()).is_err(), "{part}");
        }
        let doc = MAIL.replace("0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB", "0x12");
        assert!(TypedData::from_json(doc.as_bytes()).is_err());
    }
}
