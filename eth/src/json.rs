//! The one entry point from JSON bytes to a payload type, and the rules every payload's JSON
//! follows whatever its shape:
//!
//! - one document, nothing after it but whitespace;
//! - no object gives a key twice. serde_json keeps the last of two equal keys, other parsers the
//!   first or both: a parent that sends `{"to": A, "to": B}` could have a checker in front of
//!   the enclave approve A while the enclave signs B. Refused at any depth, naming the key's
//!   path (`accessList[0].address`);
//! - no key starts with `$serde_json::private::`. serde_json gives such keys a meaning of its
//!   own when its `raw_value` or `arbitrary_precision` feature is on (an object
//!   `{"$serde_json::private::RawValue": "<json>"}` parses as the JSON in the string), and cargo
//!   turns features on for the whole build: the workspace build has `raw_value`, the enclave
//!   built on its own does not. Refusing the keys keeps parsing the same in both builds; no
//!   payload has a use for them.
//!
//! The checks are a first pass over the bytes; the payload type is then parsed from them.

use std::{collections::BTreeSet, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::PayloadError;

/// Prefix of the map keys serde_json reserves for its `raw_value` and `arbitrary_precision`
/// features.
const SERDE_JSON_PRIVATE: &str = "$serde_json::private::";

/// Parses `json` into `T` after [`check`], reporting the path of the first problem.
pub(crate) fn from_json_slice<'a, T: serde::Deserialize<'a>>(
    json: &'a [u8],
) -> Result<T, PayloadError> {
    check(json)?;
    let mut de = serde_json::Deserializer::from_slice(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(PayloadError::json)?;
    de.end().map_err(trailing)?;
    Ok(value)
}

/// Checks that `json` is one JSON document whose objects repeat no key and use no key reserved
/// by serde_json (see the module docs).
pub fn check(json: &[u8]) -> Result<(), PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    serde_path_to_error::deserialize::<_, Checked>(&mut de).map_err(PayloadError::json)?;
    de.end().map_err(trailing)
}

/// Bytes after the document are an error, not something to ignore.
fn trailing(e: serde_json::Error) -> PayloadError {
    PayloadError::Json {
        path: ".".into(),
        message: e.to_string(),
    }
}

/// Any JSON value that passed the checks; nothing is kept.
struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        let mut seen = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            // The error is raised as the key's value, so that the path names the key.
            if key.starts_with(SERDE_JSON_PRIVATE) {
                return map.next_value_seed(Refuse(
                    "reserved key: serde_json gives keys starting with `$serde_json::private::` \
                     a meaning of its own",
                ));
            }
            if !seen.insert(key) {
                return map.next_value_seed(Refuse(
                    "repeated key: an object must not give a key twice, since JSON parsers \
                     disagree on which one counts",
                ));
            }
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

/// Fails with its message where a value would be read.
struct Refuse(&'static str);

impl<'de> DeserializeSeed<'de> for Refuse {
    type Value = Checked;

    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<Checked, D::Error> {
        Err(de::Error::custom(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(json: &str) -> (String, String) {
        match check(json.as_bytes()) {
            Err(PayloadError::Json { path, message }) => (path, message),
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth_naming_the_key() {
        let (path, message) = refused(r#"{"to":"a","to":"b"}"#);
        assert_eq!(path, "to");
        assert!(message.starts_with("repeated key"), "{message}");
        let (path, _) =
            refused(r#"{"accessList":[{"address":"a","storageKeys":[],"address":"b"}]}"#);
        assert_eq!(path, "accessList[0].address");
        let (path, _) = refused(r#"[[{"a":{"b":1,"c":{"d":1,"d":1}}}]]"#);
        assert_eq!(path, "[0][0].a.c.d");
        // Escapes are decoded before comparing: "\u0074o" is "to".
        let (path, _) = refused(r#"{"to":1,"\u0074o":2}"#);
        assert_eq!(path, "to");
    }

    #[test]
    fn serde_json_private_keys_are_refused() {
        for key in [
            "$serde_json::private::RawValue",
            "$serde_json::private::Number",
            "$serde_json::private::anything",
        ] {
            let (path, message) = refused(&format!(r#"{{"a":{{"{key}":"1"}}}}"#));
            assert_eq!(path, format!("a.{key}"));
            assert!(message.starts_with("reserved key"), "{message}");
        }
    }

    #[test]
    fn accepts_what_has_no_repeated_key() {
        for ok in [
            "null",
            "1.5",
            r#""x""#,
            r#"[{"a":1},{"a":1}]"#,
            r#"{"a":{"a":{"a":1}},"b":[1,{"a":2}]}"#,
            r#"{"$serde_json":1,"serde_json::private::RawValue":2}"#,
            " {} \n",
        ] {
            check(ok.as_bytes()).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn malformed_json_and_trailing_bytes_are_refused() {
        for bad in ["", "{", r#"{"a":1,}"#, "{} {}", "[1] x", r#"{"a":1}}"#] {
            assert!(
                matches!(check(bad.as_bytes()), Err(PayloadError::Json { .. })),
                "{bad}"
            );
        }
    }
}
