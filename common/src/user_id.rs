//! The per-user identifier that selects a derived key.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Identifies one user of a tenant's master seed; it is the HKDF `info` input of the per-user key
/// derivation (see `docs/key-derivation.md`).
///
/// A user id is 1 to [`UserId::MAX_LEN`] bytes of UTF-8 without any [forbidden
/// character](UserId::is_forbidden). It is not secret, but it does decide which key signs, so it
/// is compared byte for byte: no trimming, case folding or Unicode normalisation happens
/// anywhere.
///
/// The forbidden characters are the ones that make an id display as something it is not (`evil`,
/// U+202E, `ecila` shows as `evilalice`): an approver shown an id must be looking at the id whose
/// key signs. The rule only refuses ids; it never changes the bytes, so
/// every id it accepts derives exactly the key it derived before.
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
    /// The user id holds a control or invisible formatting character (see
    /// [`UserId::is_forbidden`]). The message names it as `U+XXXX`, never as itself.
    #[error(
        "user id has U+{:04X} at byte {index}; control characters and invisible or \
         bidirectional formatting characters are not allowed",
        u32::from(*character)
    )]
    ForbiddenCharacter {
        /// The first forbidden character.
        character: char,
        /// Its byte offset in the user id.
        index: usize,
    },
}

impl UserId {
    /// Longest accepted user id, in bytes of UTF-8.
    pub const MAX_LEN: usize = 256;

    /// Validates `id` as a user id.
    pub fn new(id: impl Into<String>) -> Result<Self, UserIdError> {
        let id = id.into();
        match id.len() {
            0 => return Err(UserIdError::Empty),
            len if len > Self::MAX_LEN => return Err(UserIdError::TooLong { len }),
            _ => {}
        }
        match id.char_indices().find(|&(_, c)| Self::is_forbidden(c)) {
            Some((index, character)) => Err(UserIdError::ForbiddenCharacter { character, index }),
            None => Ok(Self(id)),
        }
    }

    /// Whether `c` may not appear in a user id (the rule in `docs/key-derivation.md`, "Inputs"):
    /// - control characters, Unicode category Cc: U+0000–U+001F, U+007F–U+009F (NUL, newline,
    ///   DEL, the C1 controls), and the line and paragraph separators U+2028 and U+2029, which
    ///   break lines as a newline does;
    /// - bidirectional formatting characters: U+061C (Arabic letter mark), U+200E and U+200F
    ///   (left-to-right and right-to-left marks), U+202A–U+202E (embeddings and overrides),
    ///   U+2066–U+2069 (isolates);
    /// - zero-width characters: U+200B (space), U+200C and U+200D (non-joiner and joiner),
    ///   U+2060 (word joiner), U+FEFF (byte order mark): invisible, so `alice` and `al`,
    ///   U+200D, `ice` would look the same and be different users.
    ///
    /// Everything else is allowed, including other format characters (soft hyphen, emoji tag
    /// characters), spaces, and every script.
    pub const fn is_forbidden(c: char) -> bool {
        matches!(
            c,
            '\u{0}'..='\u{1f}'
                | '\u{7f}'..='\u{9f}'
                | '\u{61c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
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

    /// Every forbidden character, one by one.
    const FORBIDDEN: &[char] = &[
        '\u{0}', '\n', '\r', '\t', '\u{1b}', '\u{1f}', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}',
        '\u{61c}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{202a}',
        '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2060}', '\u{2066}', '\u{2067}',
        '\u{2068}', '\u{2069}', '\u{feff}', '\u{2028}', '\u{2029}',
    ];

    #[test]
    fn control_and_invisible_formatting_characters_are_refused() {
        for &c in FORBIDDEN {
            let id = format!("ali{c}ce");
            assert_eq!(
                UserId::new(id.as_str()),
                Err(UserIdError::ForbiddenCharacter {
                    character: c,
                    index: 3
                }),
                "{:04x}",
                u32::from(c)
            );
        }
        // The classic: `evil` + RLO + `ecila` displays as `evilalice`.
        let error = UserId::new("evil\u{202e}ecila").unwrap_err().to_string();
        assert!(error.contains("U+202E at byte 4"), "{error}");
        assert!(!error.contains('\u{202e}'));
        // The neighbours stay allowed: space, the characters around the ranges, soft hyphen,
        // no-break space, other scripts and emoji.
        for id in [
            "a b",
            " ",
            "~",
            "\u{a0}",
            "\u{ad}",
            "\u{2010}",
            "\u{2027}",
            "\u{2070}",
            "مرحبا",
            "é漢字🔑",
        ] {
            assert!(UserId::new(id).is_ok(), "{id:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn strings_with_a_forbidden_character_are_refused(
            before in "\\PC{0,20}",
            pick in 0..FORBIDDEN.len(),
            after in "\\PC{0,20}",
        ) {
            let id = format!("{before}{}{after}", FORBIDDEN[pick]);
            let refused = matches!(
                UserId::new(id),
                Err(UserIdError::ForbiddenCharacter { .. })
            );
            proptest::prop_assert!(refused);
        }

        #[test]
        fn strings_without_one_are_accepted_unchanged(id in "\\PC{1,60}") {
            // `\PC` is any character outside category C; remove the Cf ones the rule refuses.
            let id: String = id.chars().filter(|&c| !UserId::is_forbidden(c)).collect();
            proptest::prop_assume!(!id.is_empty() && id.len() <= UserId::MAX_LEN);
            let user = UserId::new(id.as_str()).unwrap();
            proptest::prop_assert_eq!(user.as_bytes(), id.as_bytes());
        }

        #[test]
        fn the_rule_is_exactly_the_documented_set(c in proptest::char::any()) {
            let listed = c.is_control()
                || matches!(
                    u32::from(c),
                    0x61c | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060 | 0x2066..=0x2069 | 0xfeff
                );
            proptest::prop_assert_eq!(UserId::is_forbidden(c), listed);
        }
    }

    #[test]
    fn deserialization_validates() {
        let ok: UserId = serde_json::from_str("\"user-1\"").unwrap();
        assert_eq!(ok.as_str(), "user-1");
        let err = serde_json::from_str::<UserId>("\"\"").unwrap_err();
        assert!(err.to_string().contains("user id is empty"), "{err}");
        let err = serde_json::from_str::<UserId>("\"a\\u0000\"").unwrap_err();
        assert!(err.to_string().contains("U+0000"), "{err}");
    }
}
