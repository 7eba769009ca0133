//! `CiphertextForRecipient`: a plaintext encrypted to the recipient key of an attestation
//! document, as a CMS `EnvelopedData` in BER with indefinite lengths, like KMS's:
//! EnvelopedData version 2, one KeyTransRecipientInfo version 2 naming the recipient by
//! subjectKeyIdentifier = SHA-256 of its SPKI DER, RSAES-OAEP with SHA-256 and MGF1-SHA-256 and
//! an empty label, AES-256-CBC with a random 16-byte IV and PKCS#7 padding, and the encrypted
//! content as a constructed `[0]` of OCTET STRING chunks.

use aws_lc_rs::{
    cipher::{AES_256, EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey},
    digest::{SHA256, digest},
    iv::FixedLength,
    rand,
    rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey},
};
use zeroize::Zeroizing;

/// Why an envelope could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The recipient key is not an RSA SubjectPublicKeyInfo, or is too small for OAEP-SHA256.
    #[error("recipient public key is not a usable RSA key")]
    BadRecipientKey,
    /// Randomness or encryption failed.
    #[error("encryption failed")]
    Crypto,
}

/// Encrypts `plaintext` to the RSA key whose SubjectPublicKeyInfo DER is `recipient_spki`.
pub fn seal(recipient_spki: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let public = PublicEncryptingKey::from_der(recipient_spki)
        .map_err(|_| EnvelopeError::BadRecipientKey)?;
    let public =
        OaepPublicEncryptingKey::new(public).map_err(|_| EnvelopeError::BadRecipientKey)?;

    let mut content_key = Zeroizing::new([0u8; 32]);
    rand::fill(content_key.as_mut_slice()).map_err(|_| EnvelopeError::Crypto)?;
    let mut iv = [0u8; 16];
    rand::fill(&mut iv).map_err(|_| EnvelopeError::Crypto)?;

    let mut encrypted_key = vec![0u8; public.ciphertext_size()];
    let encrypted_key = public
        .encrypt(
            &OAEP_SHA256_MGF1SHA256,
            content_key.as_slice(),
            &mut encrypted_key,
            None,
        )
        .map_err(|_| EnvelopeError::BadRecipientKey)?
        .to_vec();

    let cipher = UnboundCipherKey::new(&AES_256, content_key.as_slice())
        .and_then(PaddedBlockEncryptingKey::cbc_pkcs7)
        .map_err(|_| EnvelopeError::Crypto)?;
    let mut content = plaintext.to_vec();
    cipher
        .less_safe_encrypt(
            &mut content,
            EncryptionContext::Iv128(FixedLength::from(iv)),
        )
        .map_err(|_| EnvelopeError::Crypto)?;

    let subject_key_id = digest(&SHA256, recipient_spki);
    Ok(encode(
        subject_key_id.as_ref(),
        &encrypted_key,
        &iv,
        &content,
    ))
}

/// DER tags and object identifiers used below.
mod der {
    pub(super) const INTEGER: u8 = 0x02;
    pub(super) const OCTET_STRING: u8 = 0x04;
    pub(super) const OID: u8 = 0x06;
    pub(super) const SEQUENCE: u8 = 0x30;
    pub(super) const SET: u8 = 0x31;
    pub(super) const ENVELOPED_DATA: &[u8] =
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
    pub(super) const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
    pub(super) const RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
    pub(super) const MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
    pub(super) const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    pub(super) const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
}

/// A definite-length element.
fn definite(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// A constructed element with an indefinite length, closed by end-of-contents.
fn indefinite(tag: u8, children: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![tag, 0x80];
    for child in children {
        out.extend_from_slice(child);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

fn sha256_algorithm() -> Vec<u8> {
    definite(der::SEQUENCE, &definite(der::OID, der::SHA256))
}

/// Size of the OCTET STRING chunks of the encrypted content.
const CHUNK: usize = 1024;

fn encode(subject_key_id: &[u8], encrypted_key: &[u8], iv: &[u8; 16], content: &[u8]) -> Vec<u8> {
    let oaep_params = definite(
        der::SEQUENCE,
        &[
            definite(0xa0, &sha256_algorithm()),
            definite(
                0xa1,
                &definite(
                    der::SEQUENCE,
                    &[definite(der::OID, der::MGF1), sha256_algorithm()].concat(),
                ),
            ),
        ]
        .concat(),
    );
    let recipient = indefinite(
        der::SEQUENCE,
        &[
            definite(der::INTEGER, &[2]),
            definite(0x80, subject_key_id),
            definite(
                der::SEQUENCE,
                &[definite(der::OID, der::RSAES_OAEP), oaep_params].concat(),
            ),
            definite(der::OCTET_STRING, encrypted_key),
        ],
    );
    let chunks: Vec<Vec<u8>> = content
        .chunks(CHUNK)
        .map(|chunk| definite(der::OCTET_STRING, chunk))
        .collect();
    let encrypted_content_info = indefinite(
        der::SEQUENCE,
        &[
            definite(der::OID, der::DATA),
            definite(
                der::SEQUENCE,
                &[
                    definite(der::OID, der::AES256_CBC),
                    definite(der::OCTET_STRING, iv),
                ]
                .concat(),
            ),
            indefinite(0xa0, &chunks),
        ],
    );
    let enveloped_data = indefinite(
        der::SEQUENCE,
        &[
            definite(der::INTEGER, &[2]),
            indefinite(der::SET, &[recipient]),
            encrypted_content_info,
        ],
    );
    indefinite(
        der::SEQUENCE,
        &[
            definite(der::OID, der::ENVELOPED_DATA),
            indefinite(0xa0, &[enveloped_data]),
        ],
    )
}
