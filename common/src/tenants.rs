//! The parent proxy's tenants file: who may call its HTTP API, and which key blobs each caller
//! may use.
//!
//! A key blob is a bearer credential: whoever can send it to the proxy can sign with it. With a
//! tenants file, the proxy serves `/v1/` only to callers that send one of the file's API keys
//! (`Authorization: Bearer <key>`), and only with key blobs whose `owner` label is one of that
//! tenant's owners (the label is bound to the blob at KMS, so the parent cannot change it).
//!
//! ```json
//! {"tenants": [{"name": "payments", "apiKeySha256": "<64 lowercase hex digits>", "owners": ["payments"]}]}
//! ```
//!
//! | field | value |
//! |---|---|
//! | `name` | 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `.`, `_` or `-`; unique in the file |
//! | `apiKeySha256` | SHA-256 of the API key's text (`printf %s "$KEY" \| sha256sum`), 64 lowercase hex digits; unique in the file |
//! | `owners` | 1 to [`MAX_OWNERS`] distinct owner labels (the syntax of a key blob's `owner`, [`is_owner_label`]); the first is the default label of keys the tenant creates |
//!
//! Parsing is strict: unknown or repeated fields, trailing bytes, an empty list, and more than
//! [`MAX_TENANTS`] tenants are refused. The file holds only digests of the keys; an
//! [`ApiKey`] (`nsk_` and 64 hex digits, 32 random bytes) is shown once, when it is made.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::key_blob::is_owner_label;

/// What every API key starts with, so that one found in a file or a log is recognizable.
pub const API_KEY_PREFIX: &str = "nsk_";
/// Largest tenants file read.
pub const MAX_FILE_LEN: usize = 1 << 20;
/// Most tenants in one file: each request is checked against every digest.
pub const MAX_TENANTS: usize = 1000;
/// Most owner labels of one tenant.
pub const MAX_OWNERS: usize = 256;
/// Longest tenant name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest API key [`Tenants::authenticate`] hashes; longer ones match no tenant.
pub const MAX_API_KEY_LEN: usize = 256;

/// The tenants of a proxy: at least one, names and digests unique. Tenants are shared
/// ([`Arc`]) so that a server can keep the caller's for the length of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenants {
    tenants: Vec<Arc<Tenant>>,
}

/// One caller of the API: its API key's digest and the owner labels whose blobs it may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    name: String,
    api_key_sha256: [u8; 32],
    owners: Vec<String>,
}

/// Why a tenants file, or a tenant, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TenantsError {
    /// Longer than [`MAX_FILE_LEN`].
    #[error("the tenants file is longer than {MAX_FILE_LEN} bytes")]
    TooLong,
    /// Not JSON of the file's shape (the message says where).
    #[error("the tenants file is not valid: {0}")]
    Malformed(String),
    /// `tenants` is empty (or would become empty).
    #[error("the tenants file must list at least one tenant")]
    Empty,
    /// More than [`MAX_TENANTS`] tenants.
    #[error("the tenants file lists more than {MAX_TENANTS} tenants")]
    TooMany,
    /// A name outside the allowed syntax (shown escaped and shortened).
    #[error(
        "tenant name {0:?}: must be 1 to {MAX_NAME_LEN} ASCII letters, digits, `.`, `_` or `-`"
    )]
    InvalidName(String),
    /// Two tenants share a name.
    #[error("tenant `{0}`: another tenant has the same name")]
    DuplicateName(String),
    /// `apiKeySha256` is not 64 lowercase hex digits.
    #[error("tenant `{0}`: `apiKeySha256` must be 64 lowercase hex digits")]
    InvalidDigest(String),
    /// Two tenants share an API key.
    #[error("tenant `{0}`: another tenant has the same `apiKeySha256`")]
    DuplicateDigest(String),
    /// No owner label, or more than [`MAX_OWNERS`].
    #[error("tenant `{0}`: `owners` must list 1 to {MAX_OWNERS} owner labels")]
    OwnerCount(String),
    /// An owner label outside the key blob's syntax.
    #[error("tenant `{tenant}`: owner {index} must be 1 to 128 printable ASCII characters")]
    InvalidOwner {
        /// The tenant's name.
        tenant: String,
        /// Its position in `owners`, from 0.
        index: usize,
    },
    /// An owner label listed twice for one tenant.
    #[error("tenant `{tenant}`: owner `{owner}` is listed twice")]
    DuplicateOwner {
        /// The tenant's name.
        tenant: String,
        /// The label.
        owner: String,
    },
    /// No tenant has this name.
    #[error("no tenant is named `{0}`")]
    NoSuchTenant(String),
    /// The system's random number generator failed.
    #[error("no randomness available for a new API key")]
    NoRandomness,
}

/// The file's JSON shape.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFile {
    tenants: Vec<WireTenant>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WireTenant {
    name: String,
    api_key_sha256: String,
    owners: Vec<String>,
}

/// Whether `name` is a valid tenant name.
pub fn is_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Tenant {
    /// A checked tenant: a valid name, 1 to [`MAX_OWNERS`] distinct valid owner labels.
    pub fn new(
        name: impl Into<String>,
        api_key_sha256: [u8; 32],
        owners: Vec<String>,
    ) -> Result<Self, TenantsError> {
        let name = name.into();
        if !is_tenant_name(&name) {
            return Err(TenantsError::InvalidName(
                name.chars().take(MAX_NAME_LEN + 1).collect(),
            ));
        }
        if owners.is_empty() || owners.len() > MAX_OWNERS {
            return Err(TenantsError::OwnerCount(name));
        }
        for (index, owner) in owners.iter().enumerate() {
            if !is_owner_label(owner) {
                return Err(TenantsError::InvalidOwner {
                    tenant: name,
                    index,
                });
            }
            if owners.iter().take(index).any(|earlier| earlier == owner) {
                return Err(TenantsError::DuplicateOwner {
                    tenant: name,
                    owner: owner.clone(),
                });
            }
        }
        Ok(Self {
            name,
            api_key_sha256,
            owners,
        })
    }

    /// The tenant's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the tenant's API key.
    pub fn api_key_sha256(&self) -> &[u8; 32] {
        &self.api_key_sha256
    }

    /// The owner labels whose blobs the tenant may use, in the file's order.
    pub fn owners(&self) -> &[String] {
        &self.owners
    }

    /// The label of keys the tenant creates without naming one: its first owner.
    pub fn default_owner(&self) -> &str {
        self.owners.first().map_or("", String::as_str)
    }

    /// Whether the tenant may use blobs (or create keys) with owner label `owner`.
    pub fn may_use(&self, owner: &str) -> bool {
        self.owners.iter().any(|own| own == owner)
    }
}

impl Tenants {
    /// Checked tenants: at least one, at most [`MAX_TENANTS`], names and digests unique.
    pub fn new(tenants: Vec<Tenant>) -> Result<Self, TenantsError> {
        if tenants.is_empty() {
            return Err(TenantsError::Empty);
        }
        if tenants.len() > MAX_TENANTS {
            return Err(TenantsError::TooMany);
        }
        for (index, tenant) in tenants.iter().enumerate() {
            let earlier = tenants.iter().take(index);
            for other in earlier {
                if other.name == tenant.name {
                    return Err(TenantsError::DuplicateName(tenant.name.clone()));
                }
                if other.api_key_sha256 == tenant.api_key_sha256 {
                    return Err(TenantsError::DuplicateDigest(tenant.name.clone()));
                }
            }
        }
        Ok(Self {
            tenants: tenants.into_iter().map(Arc::new).collect(),
        })
    }

    /// Parses and checks a tenants file.
    pub fn parse(bytes: &[u8]) -> Result<Self, TenantsError> {
        if bytes.len() > MAX_FILE_LEN {
            return Err(TenantsError::TooLong);
        }
        // serde would also take a struct written as an array of its fields: refuse that.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(TenantsError::Malformed("expected a JSON object".to_owned()));
        }
        let file: WireFile = serde_json::from_slice(bytes)
            .map_err(|error| TenantsError::Malformed(error.to_string()))?;
        if file.tenants.len() > MAX_TENANTS {
            return Err(TenantsError::TooMany);
        }
        let mut tenants = Vec::with_capacity(file.tenants.len());
        for wire in file.tenants {
            // The name is checked first: the other errors name the tenant.
            if !is_tenant_name(&wire.name) {
                return Err(TenantsError::InvalidName(
                    wire.name.chars().take(MAX_NAME_LEN + 1).collect(),
                ));
            }
            let digest = parse_digest(&wire.api_key_sha256)
                .ok_or_else(|| TenantsError::InvalidDigest(wire.name.clone()))?;
            tenants.push(Tenant::new(wire.name, digest, wire.owners)?);
        }
        Self::new(tenants)
    }

    /// The file's JSON text (pretty-printed, ending in a newline), which [`Tenants::parse`]
    /// reads back to the same tenants.
    pub fn to_json(&self) -> String {
        let file = WireFile {
            tenants: self
                .tenants
                .iter()
                .map(|tenant| WireTenant {
                    name: tenant.name.clone(),
                    api_key_sha256: hex(&tenant.api_key_sha256),
                    owners: tenant.owners.clone(),
                })
                .collect(),
        };
        // Strings and lists of strings always serialize.
        let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The tenant whose API key is `api_key`, if any.
    ///
    /// The key is hashed and compared with every tenant's digest in constant time, whichever
    /// matches (if one does), so the time taken says nothing about how close a guess came.
    pub fn authenticate(&self, api_key: &[u8]) -> Option<&Arc<Tenant>> {
        if api_key.is_empty() || api_key.len() > MAX_API_KEY_LEN {
            return None;
        }
        let digest: [u8; 32] = sha2::Sha256::digest(api_key).into();
        let mut found = None;
        for tenant in &self.tenants {
            let equal =
                aws_lc_rs::constant_time::verify_slices_are_equal(&tenant.api_key_sha256, &digest);
            if equal.is_ok() {
                found = Some(tenant);
            }
        }
        found
    }

    /// The tenants, in the file's order.
    pub fn iter(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.iter().map(Arc::as_ref)
    }

    /// The tenant named `name`.
    pub fn get(&self, name: &str) -> Option<&Tenant> {
        self.iter().find(|tenant| tenant.name == name)
    }

    /// How many tenants there are (at least one).
    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    /// Always false: there is at least one tenant.
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// These tenants and `tenant` after them, checked.
    pub fn with(&self, tenant: Tenant) -> Result<Self, TenantsError> {
        let mut tenants: Vec<Tenant> = self.iter().cloned().collect();
        tenants.push(tenant);
        Self::new(tenants)
    }

    /// These tenants without the one named `name`; refused if it is the last one.
    pub fn without(&self, name: &str) -> Result<Self, TenantsError> {
        if self.get(name).is_none() {
            return Err(TenantsError::NoSuchTenant(name.to_owned()));
        }
        Self::new(
            self.iter()
                .filter(|tenant| tenant.name != name)
                .cloned()
                .collect(),
        )
    }
}

/// A new API key: shown once to whoever will use it; only its digest is stored. Its `Debug`
/// does not show it.
pub struct ApiKey(Zeroizing<String>);

impl ApiKey {
    /// A fresh key: [`API_KEY_PREFIX`] and 32 random bytes in lowercase hex.
    pub fn generate() -> Result<Self, TenantsError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(bytes.as_mut_slice()).map_err(|_| TenantsError::NoRandomness)?;
        // Allocated once at its final size, so no copy of the key is left behind in memory.
        let mut text = Zeroizing::new(String::with_capacity(API_KEY_PREFIX.len() + 64));
        text.push_str(API_KEY_PREFIX);
        for byte in bytes.iter() {
            text.push(hex_digit(byte >> 4));
            text.push(hex_digit(byte & 0x0f));
        }
        Ok(Self(text))
    }

    /// The key's text, for the `Authorization: Bearer` header.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the key's text: what the tenants file stores.
    pub fn sha256(&self) -> [u8; 32] {
        sha2::Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| [hex_digit(b >> 4), hex_digit(b & 0x0f)])
        .collect()
}

/// 64 lowercase hex digits as 32 bytes.
fn parse_digest(text: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if text.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let (high, low) = (pair.first().copied()?, pair.get(1).copied()?);
        *byte = (nibble(high)? << 4) | nibble(low)?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const DIGEST_A: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const DIGEST_B: &str = "486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7";

    fn file(tenants: &str) -> String {
        format!(r#"{{"tenants": [{tenants}]}}"#)
    }

    fn tenant(name: &str, digest: &str, owners: &str) -> String {
        format!(r#"{{"name": "{name}", "apiKeySha256": "{digest}", "owners": {owners}}}"#)
    }

    fn error(text: &str) -> TenantsError {
        Tenants::parse(text.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_valid_file_parses_and_writes_back() {
        let text = file(&format!(
            "{}, {}",
            tenant("payments", DIGEST_A, r#"["payments", "refunds"]"#),
            tenant("nft-2.0_x", DIGEST_B, r#"["tenant 7"]"#)
        ));
        let tenants = Tenants::parse(text.as_bytes()).unwrap();
        assert_eq!(tenants.len(), 2);
        let payments = tenants.get("payments").unwrap();
        assert_eq!(payments.owners(), ["payments", "refunds"]);
        assert_eq!(payments.default_owner(), "payments");
        assert!(payments.may_use("refunds"));
        assert!(!payments.may_use("tenant 7"));
        assert!(!payments.may_use("Payments"));
        assert_eq!(hex(payments.api_key_sha256()), DIGEST_A);
        let again = Tenants::parse(tenants.to_json().as_bytes()).unwrap();
        assert_eq!(again, tenants);
        assert!(tenants.to_json().contains(r#""apiKeySha256": ""#));
    }

    #[test]
    fn keys_authenticate_by_their_sha256() {
        // Digests from coreutils: `printf %s hello | sha256sum`, `printf %s 'hello!' | sha256sum`…
        let text = file(&format!(
            "{}, {}",
            tenant("a", DIGEST_A, r#"["a"]"#),
            tenant(
                "b",
                "ce06092fb948d9ffac7d1a376e404b26b7575bcc11ee05a4615fef4fec3a308b",
                r#"["b"]"#
            )
        ));
        let tenants = Tenants::parse(text.as_bytes()).unwrap();
        assert_eq!(tenants.authenticate(b"hello").unwrap().name(), "a");
        assert_eq!(tenants.authenticate(b"hello!").unwrap().name(), "b");
        assert!(tenants.authenticate(b"hello ").is_none());
        assert!(tenants.authenticate(b"").is_none());
        assert!(tenants.authenticate(&[b'x'; MAX_API_KEY_LEN + 1]).is_none());
    }

    #[test]
    fn strictness() {
        let one = |t: &str| file(t);
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "expected a JSON object"),
            ("[]".into(), "expected a JSON object"),
            (r#"{"tenants": []}"#.into(), "at least one tenant"),
            (r#"{}"#.into(), "missing field `tenants`"),
            (
                r#"{"tenants": [], "extra": 1}"#.into(),
                "unknown field `extra`",
            ),
            (
                one(&tenant("a", DIGEST_A, r#"["a"]"#)) + " x",
                "trailing characters",
            ),
            (
                one(&format!(
                    r#"{{"name": "a", "name": "b", "apiKeySha256": "{DIGEST_A}", "owners": ["a"]}}"#
                )),
                "duplicate field `name`",
            ),
            (
                one(&format!(
                    r#"{{"name": "a", "apiKeySha256": "{DIGEST_A}", "owners": ["a"], "owner": "a"}}"#
                )),
                "unknown field `owner`",
            ),
            (one(&tenant("", DIGEST_A, r#"["a"]"#)), "tenant name \"\""),
            (
                one(&tenant("a b", DIGEST_A, r#"["a"]"#)),
                "tenant name \"a b\"",
            ),
            (
                one(&tenant(&"n".repeat(65), DIGEST_A, r#"["a"]"#)),
                "must be 1 to 64",
            ),
            (
                one(&tenant("a", &DIGEST_A.to_uppercase(), r#"["a"]"#)),
                "tenant `a`: `apiKeySha256` must be 64 lowercase hex",
            ),
            (
                one(&tenant("a", &DIGEST_A[..62], r#"["a"]"#)),
                "`apiKeySha256` must be",
            ),
            (
                one(&tenant("a", &format!("{DIGEST_A}00"), r#"["a"]"#)),
                "`apiKeySha256` must be",
            ),
            (
                one(&tenant("a", DIGEST_A, "[]")),
                "tenant `a`: `owners` must list 1",
            ),
            (
                one(&tenant("a", DIGEST_A, r#"["a", "bad\nlabel"]"#)),
                "tenant `a`: owner 1 must be",
            ),
            (
                one(&tenant(
                    "a",
                    DIGEST_A,
                    &format!(r#"["{}"]"#, "o".repeat(129)),
                )),
                "owner 0 must be",
            ),
            (
                one(&tenant("a", DIGEST_A, r#"["x", "y", "x"]"#)),
                "owner `x` is listed twice",
            ),
            (
                one(&format!(
                    "{}, {}",
                    tenant("a", DIGEST_A, r#"["a"]"#),
                    tenant("a", DIGEST_B, r#"["a"]"#)
                )),
                "tenant `a`: another tenant has the same name",
            ),
            (
                one(&format!(
                    "{}, {}",
                    tenant("a", DIGEST_A, r#"["a"]"#),
                    tenant("b", DIGEST_A, r#"["a"]"#)
                )),
                "tenant `b`: another tenant has the same `apiKeySha256`",
            ),
        ];
        for (text, expected) in cases {
            let message = error(&text).to_string();
            assert!(message.contains(expected), "{text}: {message}");
        }
        let owners: Vec<String> = (0..=MAX_OWNERS).map(|n| format!("\"o{n}\"")).collect();
        assert_eq!(
            error(&file(&tenant(
                "a",
                DIGEST_A,
                &format!("[{}]", owners.join(","))
            ))),
            TenantsError::OwnerCount("a".into())
        );
        assert_eq!(error(&" ".repeat(MAX_FILE_LEN + 1)), TenantsError::TooLong);
    }

    #[test]
    fn limits_on_tenants() {
        let tenants: Vec<Tenant> = (0..=MAX_TENANTS)
            .map(|n| {
                let mut digest = [0u8; 32];
                digest[..8].copy_from_slice(&(n as u64).to_be_bytes());
                Tenant::new(format!("t{n}"), digest, vec!["o".into()]).unwrap()
            })
            .collect();
        assert_eq!(Tenants::new(tenants).unwrap_err(), TenantsError::TooMany);
        let entries: Vec<String> = (0..=MAX_TENANTS)
            .map(|n| tenant(&format!("t{n}"), &format!("{n:064x}"), r#"["o"]"#))
            .collect();
        assert_eq!(error(&file(&entries.join(","))), TenantsError::TooMany);
        let most = Tenants::parse(file(&entries[..MAX_TENANTS].join(",")).as_bytes()).unwrap();
        assert_eq!(most.len(), MAX_TENANTS);
    }

    #[test]
    fn adding_and_removing() {
        let first = Tenant::new("a", [1; 32], vec!["a".into()]).unwrap();
        let tenants = Tenants::new(vec![first]).unwrap();
        let two = tenants
            .with(Tenant::new("b", [2; 32], vec!["b".into(), "a".into()]).unwrap())
            .unwrap();
        assert_eq!(two.iter().map(Tenant::name).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            two.with(Tenant::new("b", [3; 32], vec!["b".into()]).unwrap())
                .unwrap_err(),
            TenantsError::DuplicateName("b".into())
        );
        assert_eq!(
            two.with(Tenant::new("c", [2; 32], vec!["c".into()]).unwrap())
                .unwrap_err(),
            TenantsError::DuplicateDigest("c".into())
        );
        assert_eq!(two.without("a").unwrap().len(), 1);
        assert_eq!(
            two.without("z").unwrap_err(),
            TenantsError::NoSuchTenant("z".into())
        );
        assert_eq!(tenants.without("a").unwrap_err(), TenantsError::Empty);
    }

    #[test]
    fn api_keys_are_random_prefixed_and_hidden() {
        let key = ApiKey::generate().unwrap();
        let other = ApiKey::generate().unwrap();
        assert_ne!(key.as_str(), other.as_str());
        let hex_part = key.as_str().strip_prefix(API_KEY_PREFIX).unwrap();
        assert_eq!(hex_part.len(), 64);
        assert!(parse_digest(hex_part).is_some(), "lowercase hex");
        assert!(!format!("{key:?}").contains(hex_part));
        let tenants = Tenants::new(vec![
            Tenant::new("t", key.sha256(), vec!["o".into()]).unwrap(),
        ])
        .unwrap();
        assert_eq!(
            tenants
                .authenticate(key.as_str().as_bytes())
                .unwrap()
                .name(),
            "t"
        );
        assert!(tenants.authenticate(other.as_str().as_bytes()).is_none());
    }

    fn arb_tenants() -> impl Strategy<Value = Tenants> {
        let tenant = (
            "[A-Za-z0-9._-]{1,64}",
            any::<[u8; 32]>(),
            proptest::collection::btree_set("[ -~]{1,128}", 1..6),
        );
        proptest::collection::vec(tenant, 1..6).prop_filter_map("unique", |list| {
            let tenants = list
                .into_iter()
                .map(|(name, digest, owners)| {
                    Tenant::new(name, digest, owners.into_iter().collect()).ok()
                })
                .collect::<Option<Vec<_>>>()?;
            Tenants::new(tenants).ok()
        })
    }

    proptest! {
        #[test]
        fn files_round_trip(tenants in arb_tenants()) {
            let text = tenants.to_json();
            prop_assert_eq!(Tenants::parse(text.as_bytes()).unwrap(), tenants);
        }

        #[test]
        fn each_key_finds_its_own_tenant(keys in proptest::collection::btree_set("[ -~]{1,80}", 1..8)) {
            let keys: Vec<String> = keys.into_iter().collect();
            let tenants = Tenants::new(
                keys.iter()
                    .enumerate()
                    .map(|(n, key)| {
                        Tenant::new(format!("t{n}"), sha2::Sha256::digest(key).into(), vec!["o".into()])
                            .unwrap()
                    })
                    .collect(),
            )
            .unwrap();
            for (n, key) in keys.iter().enumerate() {
                let expected = format!("t{n}");
                prop_assert_eq!(
                    tenants.authenticate(key.as_bytes()).map(|t| t.name()),
                    Some(expected.as_str())
                );
                let mut other = key.clone().into_bytes();
                other.push(b'!');
                if !keys.iter().any(|k| k.as_bytes() == other.as_slice()) {
                    prop_assert!(tenants.authenticate(&other).is_none());
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(tenants) = Tenants::parse(&bytes) {
                prop_assert_eq!(Tenants::parse(tenants.to_json().as_bytes()).unwrap(), tenants);
            }
        }

        #[test]
        fn changed_files_stay_valid_or_are_refused(tenants in arb_tenants(), at in any::<usize>(), byte in any::<u8>()) {
            let mut text = tenants.to_json().into_bytes();
            let at = at % text.len();
            text[at] = byte;
            if let Ok(parsed) = Tenants::parse(&text) {
                prop_assert_eq!(Tenants::parse(parsed.to_json().as_bytes()).unwrap(), parsed);
            }
        }
    }
}
