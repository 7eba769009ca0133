//! Secrets sealed by the enclave under a KMS data key, for blobs the enclave re-encrypts (a
//! policy change).
//!
//! KMS `Encrypt` takes no attestation document, so a role allowed to call it could encrypt a
//! secret of its own choosing: a parent that can do that can plant keys it knows. The enclave
//! therefore never needs `Encrypt`. To re-encrypt a key, it asks KMS for a fresh 32-byte data
//! key with `GenerateDataKey` under the blob's encryption context, with its attestation document
//! as `Recipient` (so the plaintext data key exists only inside an attested enclave), and seals
//! the secret itself:
//!
//! ```text
//! sealed = AES-256-GCM(key = data key, nonce = 12 zero bytes, aad, plaintext = 32-byte secret)
//!          (ciphertext ‖ 16-byte tag)
//! aad    = "nitro-signer/sealed/v1" ‖ for each context entry, sorted by name:
//!          u16_be(len(name)) ‖ name ‖ u16_be(len(value)) ‖ value
//! ```
//!
//! The blob's `ciphertext` is the data key's KMS `CiphertextBlob`, bound to the same context.
//! Each data key seals exactly one secret, once, which is what makes the fixed nonce safe.
//! A vector is in `docs/policy.md` ("Changing a policy"); `tests/tests/sealing.rs` checks it
//! with Python `cryptography`.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// Domain of the associated data.
const AAD_DOMAIN: &[u8] = b"nitro-signer/sealed/v1";
/// Length of a sealed 32-byte secret: the ciphertext and the tag.
pub const SEALED_LEN: usize = 32 + 16;

/// Why a sealed secret does not open (or could not be sealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealingError {
    /// The data key is not 32 bytes.
    #[error("a data key is 32 bytes")]
    KeyLength,
    /// Not a sealed secret of this key and context (altered, or another blob's).
    #[error("the sealed secret does not open with the blob's data key and context")]
    Open,
    /// The cipher refused the key or the input.
    #[error("sealing failed")]
    Seal,
}

/// The associated data for a blob's encryption `context`.
fn aad(context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut aad = AAD_DOMAIN.to_vec();
    for (name, value) in context {
        for part in [name, value] {
            let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
            aad.extend_from_slice(&len.to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
    }
    aad
}

fn key(data_key: &[u8]) -> Result<LessSafeKey, SealingError> {
    if data_key.len() != 32 {
        return Err(SealingError::KeyLength);
    }
    UnboundKey::new(&AES_256_GCM, data_key)
        .map(LessSafeKey::new)
        .map_err(|_| SealingError::Seal)
}

/// Seals `secret` under `data_key`, a fresh data key used for nothing else.
pub fn seal(
    data_key: &[u8],
    context: &BTreeMap<String, String>,
    secret: &[u8; 32],
) -> Result<Vec<u8>, SealingError> {
    let key = key(data_key)?;
    let mut sealed = secret.to_vec();
    let result = key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0; 12]),
        Aad::from(aad(context)),
        &mut sealed,
    );
    if result.is_err() {
        zeroize::Zeroize::zeroize(&mut sealed);
        return Err(SealingError::Seal);
    }
    Ok(sealed)
}

/// Opens a sealed secret with its blob's `data_key` and encryption `context`.
pub fn open(
    data_key: &[u8],
    context: &BTreeMap<String, String>,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealingError> {
    let key = key(data_key)?;
    let mut buffer = Zeroizing::new(sealed.to_vec());
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(aad(context)),
            buffer.as_mut_slice(),
        )
        .map_err(|_| SealingError::Open)?
        .len();
    buffer.truncate(len);
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(policy: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("nitro-signer:kind".to_owned(), "seed".to_owned()),
            ("nitro-signer:policy-sha256".to_owned(), policy.to_owned()),
        ])
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_context() {
        let data_key = [7u8; 32];
        let secret = [0x5e; 32];
        let sealed = seal(&data_key, &context("aa"), &secret).unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert_eq!(
            open(&data_key, &context("aa"), &sealed).unwrap().as_slice(),
            &secret
        );
        assert_eq!(
            open(&data_key, &context("ab"), &sealed).unwrap_err(),
            SealingError::Open
        );
        assert_eq!(
            open(&[8u8; 32], &context("aa"), &sealed).unwrap_err(),
            SealingError::Open
        );
        let mut flipped = sealed.clone();
        flipped[3] ^= 1;
        assert!(open(&data_key, &context("aa"), &flipped).is_err());
        assert!(open(&data_key, &context("aa"), &sealed[..40]).is_err());
        assert_eq!(
            open(&[7u8; 31], &context("aa"), &sealed).unwrap_err(),
            SealingError::KeyLength
        );
    }

    #[test]
    fn the_associated_data_is_unambiguous() {
        // "a"="bc" and "ab"="c" concatenate alike; the lengths tell them apart.
        let one = BTreeMap::from([("a".to_owned(), "bc".to_owned())]);
        let two = BTreeMap::from([("ab".to_owned(), "c".to_owned())]);
        assert_ne!(aad(&one), aad(&two));
        assert!(aad(&one).starts_with(b"nitro-signer/sealed/v1"));
    }
}
