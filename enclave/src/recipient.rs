//! The enclave's KMS recipient key: an RSA-2048 key made inside the enclave, whose public half
//! goes into the attestation document so that KMS encrypts its answers to it.
//!
//! KMS checks the attestation document against the key policy, then returns the plaintext as a
//! CMS envelope ([`crate::cms`]) that only this key opens. A fresh key per enclave start bounds
//! what any one key protects. The RSA operations are aws-lc's (constant-time; the `rsa` crate has
//! an open timing advisory, RUSTSEC-2023-0071).

use std::fmt;

use aws_lc_rs::{
    cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey},
    encoding::AsDer,
    iv::FixedLength,
    rsa::{KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey},
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::cms::{CmsError, Envelope};

/// The enclave's recipient key for KMS.
pub struct RecipientKey {
    key: OaepPrivateDecryptingKey,
    spki: Vec<u8>,
    subject_key_id: [u8; 32],
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientKey")
            .field("spki_sha256", &self.subject_key_id)
            .finish()
    }
}

/// Why a recipient key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("recipient key: {0}")]
pub struct RecipientKeyError(&'static str);

impl RecipientKey {
    /// A new RSA-2048 key.
    pub fn generate() -> Result<Self, RecipientKeyError> {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048)
            .map_err(|_| RecipientKeyError("RSA key generation failed"))?;
        Self::from_key(key)
    }

    /// A key from PKCS#8 DER. For tests against other implementations (which need to know the
    /// key to encrypt to it); an enclave always generates its own.
    pub fn dangerous_from_pkcs8(pkcs8: &[u8]) -> Result<Self, RecipientKeyError> {
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map_err(|_| RecipientKeyError("not an RSA PKCS#8 private key"))?;
        Self::from_key(key)
    }

    fn from_key(key: PrivateDecryptingKey) -> Result<Self, RecipientKeyError> {
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| RecipientKeyError("cannot encode the public key"))?
            .as_ref()
            .to_vec();
        let key = OaepPrivateDecryptingKey::new(key)
            .map_err(|_| RecipientKeyError("key unusable for OAEP"))?;
        let subject_key_id = Sha256::digest(&spki).into();
        Ok(Self {
            key,
            spki,
            subject_key_id,
        })
    }

    /// The public key as SubjectPublicKeyInfo DER: the attestation document's `public_key`.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// SHA-256 of the SPKI: how KMS names this key in its envelopes.
    pub fn subject_key_id(&self) -> &[u8; 32] {
        &self.subject_key_id
    }

    /// Opens a `CiphertextForRecipient`, returning the plaintext.
    ///
    /// Only for envelopes read from the enclave's own TLS session with KMS: the envelope carries
    /// no integrity check (see [`crate::cms`]), so anything else could be forged.
    pub fn open(&self, envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, CmsError> {
        let envelope = Envelope::parse(envelope)?;
        if envelope.subject_key_id != self.subject_key_id {
            return Err(CmsError::WrongRecipient);
        }
        let mut key_buf = Zeroizing::new(vec![0u8; self.key.min_output_size()]);
        let content_key = self
            .key
            .decrypt(
                &OAEP_SHA256_MGF1SHA256,
                envelope.encrypted_key,
                &mut key_buf,
                None,
            )
            .map_err(|_| CmsError::Decrypt)?;
        if content_key.len() != 32 {
            return Err(CmsError::Decrypt);
        }
        let cipher = UnboundCipherKey::new(&AES_256, content_key)
            .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
            .map_err(|_| CmsError::Decrypt)?;
        if envelope.ciphertext.is_empty() || envelope.ciphertext.len() % 16 != 0 {
            return Err(CmsError::Decrypt);
        }
        let mut buf = Zeroizing::new(envelope.ciphertext.into_owned());
        let context = DecryptionContext::Iv128(FixedLength::from(envelope.iv));
        let plaintext = cipher
            .decrypt(&mut buf, context)
            .map_err(|_| CmsError::Decrypt)?;
        Ok(Zeroizing::new(plaintext.to_vec()))
    }
}
