//! The per-user identifier that selects a derived key.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Identifies one user of a tenant's master seed; it is the HKDF `info` input of the per-user key
/// derivation (see `docs/key-derivation.md`).
///
/// A user id is 1 to [`UserId::MAX_LEN`] bytes of UTF-8. It is not secret, but it does decide
/// which key signs, so it is compared byte for byte: no trimming, case folding or Unicode
/// normalisation happens anywhere.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

/// Why a string is not a valid [`UserId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserIdError {
    /// The user id is the empty string.
    #[error("user id is empty; it must be 1 to 256 bytes of UTF-8")]
    Empty,
    /// The user id is longer than [`UserId::MAX_LEN`] bytes.
    #[error("user id is {len} bytes long; at most 256 bytes of UTF-8 are allowed")]
    TooLong {
        /// Length in bytes of the rejected user id.
        len: usize,
    },
}

impl UserId {
    /// Longest accepted user id, in bytes of UTF-8.
    pub const MAX_LEN: usize = 256;

    /// Validates `id` as a user id.
    pub fn new(id: impl Into<String>) -> Result<Self, UserIdError> {
        let id = id.into();
        match id.len() {
            0 => Err(UserIdError::Empty),
            len if len > Self::MAX_LEN => Err(UserIdError::TooLong { len }),
            _ => Ok(Self(id)),
        }
    }

    /// The user id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The user id's UTF-8 bytes, exactly as used in key derivation.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl TryFrom<String> for UserId {
    type Error = UserIdError;

    fn try_from(id: String) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl TryFrom<&str> for UserId {
    type Error = UserIdError;

    fn try_from(id: &str) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        Self::new(id).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UserId").field(&self.0).finish()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_one_to_256_bytes() {
        assert!(UserId::new("a").is_ok());
        assert!(UserId::new("x".repeat(256)).is_ok());
        // 128 two-byte characters are 256 bytes.
        assert!(UserId::new("é".repeat(128)).is_ok());
    }

    #[test]
    fn rejects_empty_and_too_long() {
        assert_eq!(UserId::new(""), Err(UserIdError::Empty));
        assert_eq!(
            UserId::new("x".repeat(257)),
            Err(UserIdError::TooLong { len: 257 })
        );
        assert_eq!(
            UserId::new("é".repeat(129)),
            Err(UserIdError::TooLong { len: 258 })
        );
    }

    #[test]
    fn bytes_are_kept_exactly() {
        let id = UserId::new(" Alice ").unwrap();
        assert_eq!(id.as_bytes(), b" Alice ");
    }

    #[test]
    fn deserialization_validates() {
        let ok: UserId = serde_json::from_str("\"user-1\"").unwrap();
        assert_eq!(ok.as_str(), "user-1");
        let err = serde_json::from_str::<UserId>("\"\"").unwrap_err();
        assert!(err.to_string().contains("user id is empty"), "{err}");
    }
}
