//! The CMS envelope KMS answers with when a request carries a `Recipient`
//! (`CiphertextForRecipient`), and a small BER reader for it.
//!
//! KMS encodes the envelope in BER with indefinite lengths, which DER-only parsers reject:
//!
//! ```text
//! ContentInfo { contentType envelopedData (1.2.840.113549.1.7.3), [0] EnvelopedData {
//!   version 2,
//!   recipientInfos SET { KeyTransRecipientInfo {
//!     version 2, rid [0] subjectKeyIdentifier = SHA-256(recipient SPKI DER),
//!     keyEncryptionAlgorithm rsaesOaep { sha256, mgf1(sha256), empty label },
//!     encryptedKey OCTET STRING } },
//!   encryptedContentInfo { data, aes256-CBC { iv: 16 bytes }, [0] encrypted content,
//!     possibly as constructed chunks } } }
//! ```
//!
//! The reader accepts exactly that shape (definite or indefinite lengths, primitive or chunked
//! octet strings) and refuses anything else with an error; it never panics and bounds nesting.
//!
//! The envelope has no integrity of its own: AES-CBC without a MAC, encrypted to a public key
//! anyone may know. Its authenticity comes from where it is read: the enclave's own TLS session
//! with KMS, which ends inside the enclave. Only envelopes read from that session may be opened;
//! one handed in by the parent could be forged, or be a bit-flipped copy used as a padding oracle.

use std::borrow::Cow;

/// Largest accepted envelope. A seed or key envelope is under 1 KiB.
pub const MAX_ENVELOPE_LEN: usize = 64 * 1024;
/// Deepest accepted nesting (the envelope itself needs 7).
const MAX_DEPTH: usize = 16;

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    /// Larger than [`MAX_ENVELOPE_LEN`].
    #[error("envelope is {len} bytes; at most {MAX_ENVELOPE_LEN} are accepted")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Not well-formed BER, or not the shape KMS produces.
    #[error("malformed CMS envelope: {0}")]
    Malformed(&'static str),
    /// Well-formed, but with an algorithm or option KMS does not use.
    #[error("unsupported CMS envelope: {0}")]
    Unsupported(&'static str),
    /// Addressed to another key.
    #[error("CMS envelope is for another recipient key")]
    WrongRecipient,
    /// The key or content did not decrypt. One error for every decryption failure (OAEP,
    /// length, padding), so that errors do not tell which step failed.
    #[error("CMS envelope did not decrypt")]
    Decrypt,
}

/// The parts of an envelope needed to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The recipient's subjectKeyIdentifier.
    pub subject_key_id: &'a [u8],
    /// The content-encryption key, RSAES-OAEP-SHA256 encrypted.
    pub encrypted_key: &'a [u8],
    /// AES-256-CBC IV.
    pub iv: [u8; 16],
    /// AES-256-CBC ciphertext with PKCS#7 padding.
    pub ciphertext: Cow<'a, [u8]>,
}

mod tag {
    pub(super) const INTEGER: u8 = 0x02;
    pub(super) const OCTET_STRING: u8 = 0x04;
    pub(super) const NULL: u8 = 0x05;
    pub(super) const OID: u8 = 0x06;
    pub(super) const SEQUENCE: u8 = 0x30;
    pub(super) const SET: u8 = 0x31;
    pub(super) const CONSTRUCTED: u8 = 0x20;
    /// `[n]` context-specific, primitive.
    pub(super) const fn context(n: u8) -> u8 {
        0x80 | n
    }
    /// `[n]` context-specific, constructed.
    pub(super) const fn context_constructed(n: u8) -> u8 {
        0xa0 | n
    }
}

mod oid {
    pub(super) const ENVELOPED_DATA: &[u8] =
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
    pub(super) const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
    pub(super) const RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
    pub(super) const MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
    pub(super) const P_SPECIFIED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09];
    pub(super) const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    pub(super) const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
}

/// One BER element: its identifier octet and its contents (for an indefinite length, the
/// children without the end-of-contents marker).
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    depth: usize,
}

fn malformed(what: &'static str) -> CmsError {
    CmsError::Malformed(what)
}

/// Reads one element from the front of `input`, returning it and what follows.
fn read_tlv(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), CmsError> {
    if depth > MAX_DEPTH {
        return Err(malformed("nested too deeply"));
    }
    let (&tag, rest) = input.split_first().ok_or(malformed("truncated element"))?;
    if tag & 0x1f == 0x1f {
        return Err(CmsError::Unsupported("high tag numbers"));
    }
    let (&first, rest) = rest.split_first().ok_or(malformed("truncated length"))?;
    match first {
        0x80 => {
            if tag & tag::CONSTRUCTED == 0 {
                return Err(malformed("indefinite length on a primitive element"));
            }
            // Walk the children to find the end-of-contents octets.
            let mut cursor = rest;
            loop {
                if let Some(after) = cursor.strip_prefix(&[0u8, 0u8][..]) {
                    let used = rest.len() - cursor.len();
                    let content = rest.get(..used).ok_or(malformed("length"))?;
                    return Ok((
                        Tlv {
                            tag,
                            content,
                            depth,
                        },
                        after,
                    ));
                }
                let (_, next) = read_tlv(cursor, depth + 1)?;
                cursor = next;
            }
        }
        0x00..=0x7f => split(tag, usize::from(first), rest, depth),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let (bytes, rest) = rest
                .split_at_checked(n)
                .ok_or(malformed("truncated length"))?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            split(tag, len, rest, depth)
        }
        _ => Err(malformed("length too long")),
    }
}

fn split(tag: u8, len: usize, rest: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), CmsError> {
    let (content, rest) = rest
        .split_at_checked(len)
        .ok_or(malformed("truncated contents"))?;
    Ok((
        Tlv {
            tag,
            content,
            depth,
        },
        rest,
    ))
}

/// The children of a constructed element, in order.
struct Children<'a> {
    rest: &'a [u8],
    depth: usize,
}

impl<'a> Tlv<'a> {
    fn children(&self, expected_tag: u8, what: &'static str) -> Result<Children<'a>, CmsError> {
        if self.tag != expected_tag {
            return Err(malformed(what));
        }
        Ok(Children {
            rest: self.content,
            depth: self.depth + 1,
        })
    }

    /// The bytes of an octet string with tag `primitive_tag` (or its constructed form, whose
    /// chunks are concatenated).
    fn octets(&self, primitive_tag: u8, what: &'static str) -> Result<Cow<'a, [u8]>, CmsError> {
        if self.tag == primitive_tag {
            return Ok(Cow::Borrowed(self.content));
        }
        if self.tag != primitive_tag | tag::CONSTRUCTED {
            return Err(malformed(what));
        }
        let mut out = Vec::new();
        let mut chunks = Children {
            rest: self.content,
            depth: self.depth + 1,
        };
        while let Some(chunk) = chunks.next()? {
            out.extend_from_slice(&chunk.octets(tag::OCTET_STRING, what)?);
        }
        Ok(Cow::Owned(out))
    }

    fn oid(&self, expected: &[u8], what: &'static str) -> Result<(), CmsError> {
        if self.tag != tag::OID {
            return Err(malformed(what));
        }
        if self.content != expected {
            return Err(CmsError::Unsupported(what));
        }
        Ok(())
    }

    fn small_integer(&self, what: &'static str) -> Result<u8, CmsError> {
        match (self.tag, self.content) {
            (tag::INTEGER, [v]) if *v < 0x80 => Ok(*v),
            _ => Err(malformed(what)),
        }
    }
}

impl<'a> Children<'a> {
    fn next(&mut self) -> Result<Option<Tlv<'a>>, CmsError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (tlv, rest) = read_tlv(self.rest, self.depth)?;
        self.rest = rest;
        Ok(Some(tlv))
    }

    fn expect(&mut self, what: &'static str) -> Result<Tlv<'a>, CmsError> {
        self.next()?.ok_or(malformed(what))
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn finish(&self, what: &'static str) -> Result<(), CmsError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed(what))
        }
    }
}

/// `AlgorithmIdentifier { sha256, NULL? }`.
fn sha256_algorithm(tlv: Tlv<'_>) -> Result<(), CmsError> {
    let mut alg = tlv.children(tag::SEQUENCE, "digest algorithm")?;
    alg.expect("digest algorithm")?
        .oid(oid::SHA256, "OAEP digest is not SHA-256")?;
    if let Some(params) = alg.next()?
        && (params.tag != tag::NULL || !params.content.is_empty())
    {
        return Err(malformed("digest algorithm parameters"));
    }
    alg.finish("digest algorithm")
}

/// RSAES-OAEP parameters: SHA-256, MGF1 with SHA-256, and no label.
fn oaep_parameters(tlv: Tlv<'_>) -> Result<(), CmsError> {
    let mut params = tlv.children(tag::SEQUENCE, "OAEP parameters")?;
    // Every field has a SHA-1 default; absent hash or MGF would mean SHA-1, which KMS never uses.
    let hash = params.expect("OAEP hash")?;
    let mut hash = hash.children(tag::context_constructed(0), "OAEP hash")?;
    sha256_algorithm(hash.expect("OAEP hash")?)?;
    hash.finish("OAEP hash")?;

    let mgf = params.expect("OAEP mask generation")?;
    let mut mgf = mgf.children(tag::context_constructed(1), "OAEP mask generation")?;
    let mut mgf_alg = mgf.expect("MGF")?.children(tag::SEQUENCE, "MGF")?;
    mgf_alg
        .expect("MGF")?
        .oid(oid::MGF1, "mask generation is not MGF1")?;
    sha256_algorithm(mgf_alg.expect("MGF1 digest")?)?;
    mgf_alg.finish("MGF")?;
    mgf.finish("OAEP mask generation")?;

    if let Some(source) = params.next()? {
        let mut source = source.children(tag::context_constructed(2), "OAEP label")?;
        let mut alg = source
            .expect("OAEP label")?
            .children(tag::SEQUENCE, "OAEP label")?;
        alg.expect("OAEP label")?
            .oid(oid::P_SPECIFIED, "OAEP label source")?;
        let label = alg
            .expect("OAEP label")?
            .octets(tag::OCTET_STRING, "OAEP label")?;
        if !label.is_empty() {
            return Err(CmsError::Unsupported("non-empty OAEP label"));
        }
        alg.finish("OAEP label")?;
        source.finish("OAEP label")?;
    }
    params.finish("OAEP parameters")
}

impl<'a> Envelope<'a> {
    /// Parses a `CiphertextForRecipient`.
    pub fn parse(ber: &'a [u8]) -> Result<Self, CmsError> {
        if ber.len() > MAX_ENVELOPE_LEN {
            return Err(CmsError::TooLarge { len: ber.len() });
        }
        let (content_info, trailing) = read_tlv(ber, 0)?;
        if !trailing.is_empty() {
            return Err(malformed("trailing bytes after the envelope"));
        }
        let mut content_info = content_info.children(tag::SEQUENCE, "ContentInfo")?;
        content_info
            .expect("content type")?
            .oid(oid::ENVELOPED_DATA, "not EnvelopedData")?;
        let explicit = content_info.expect("content")?;
        content_info.finish("ContentInfo")?;
        let mut explicit = explicit.children(tag::context_constructed(0), "content")?;
        let enveloped = explicit.expect("EnvelopedData")?;
        explicit.finish("content")?;

        let mut enveloped = enveloped.children(tag::SEQUENCE, "EnvelopedData")?;
        if enveloped
            .expect("version")?
            .small_integer("EnvelopedData version")?
            != 2
        {
            return Err(CmsError::Unsupported("EnvelopedData version other than 2"));
        }
        if enveloped.peek_tag() == Some(tag::context_constructed(0)) {
            return Err(CmsError::Unsupported("originatorInfo"));
        }
        let recipients = enveloped.expect("recipientInfos")?;
        let mut recipients = recipients.children(tag::SET, "recipientInfos")?;
        let recipient = recipients.expect("recipient")?;
        if recipients.next()?.is_some() {
            return Err(CmsError::Unsupported("more than one recipient"));
        }

        let mut ktri = recipient.children(tag::SEQUENCE, "KeyTransRecipientInfo")?;
        if ktri
            .expect("version")?
            .small_integer("KeyTransRecipientInfo version")?
            != 2
        {
            return Err(CmsError::Unsupported(
                "recipient not identified by subjectKeyIdentifier",
            ));
        }
        let rid = ktri.expect("recipient identifier")?;
        if rid.tag != tag::context(0) {
            return Err(CmsError::Unsupported(
                "recipient not identified by subjectKeyIdentifier",
            ));
        }
        let mut key_alg = ktri
            .expect("key encryption algorithm")?
            .children(tag::SEQUENCE, "key encryption algorithm")?;
        key_alg
            .expect("key encryption algorithm")?
            .oid(oid::RSAES_OAEP, "key encryption is not RSAES-OAEP")?;
        oaep_parameters(key_alg.expect("OAEP parameters")?)?;
        key_alg.finish("key encryption algorithm")?;
        let encrypted_key = ktri.expect("encrypted key")?;
        if encrypted_key.tag != tag::OCTET_STRING {
            return Err(malformed("encrypted key"));
        }
        ktri.finish("KeyTransRecipientInfo")?;

        let mut eci = enveloped
            .expect("encryptedContentInfo")?
            .children(tag::SEQUENCE, "encryptedContentInfo")?;
        eci.expect("content type")?
            .oid(oid::DATA, "encrypted content is not data")?;
        let mut content_alg = eci
            .expect("content encryption algorithm")?
            .children(tag::SEQUENCE, "content encryption algorithm")?;
        content_alg
            .expect("content encryption algorithm")?
            .oid(oid::AES256_CBC, "content encryption is not AES-256-CBC")?;
        let iv = content_alg.expect("IV")?.octets(tag::OCTET_STRING, "IV")?;
        let iv: [u8; 16] = iv
            .as_ref()
            .try_into()
            .map_err(|_| malformed("IV is not 16 bytes"))?;
        content_alg.finish("content encryption algorithm")?;
        let ciphertext = eci
            .expect("encrypted content")?
            .octets(tag::context(0), "encrypted content")?;
        eci.finish("encryptedContentInfo")?;
        // Unprotected attributes ([1]) carry nothing we use; anything else is refused.
        if let Some(extra) = enveloped.next()?
            && extra.tag != tag::context_constructed(1)
        {
            return Err(malformed("unexpected element in EnvelopedData"));
        }
        enveloped.finish("EnvelopedData")?;

        Ok(Self {
            subject_key_id: rid.content,
            encrypted_key: encrypted_key.content,
            iv,
            ciphertext,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_definite_and_indefinite_lengths() {
        // SEQUENCE (indefinite) { OCTET STRING "ab" } and the same with a definite length.
        let indefinite = [0x30, 0x80, 0x04, 0x02, b'a', b'b', 0x00, 0x00];
        let definite = [0x30, 0x04, 0x04, 0x02, b'a', b'b'];
        for input in [&indefinite[..], &definite[..]] {
            let (tlv, rest) = read_tlv(input, 0).unwrap();
            assert!(rest.is_empty());
            let mut children = tlv.children(tag::SEQUENCE, "seq").unwrap();
            let octets = children
                .next()
                .unwrap()
                .unwrap()
                .octets(tag::OCTET_STRING, "o")
                .unwrap();
            assert_eq!(&*octets, b"ab");
            assert!(children.next().unwrap().is_none());
        }
    }

    #[test]
    fn concatenates_chunked_octet_strings() {
        // [0] constructed, indefinite { OCTET STRING "ab", OCTET STRING "c" }
        let input = [
            0xa0, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0x00, 0x00,
        ];
        let (tlv, _) = read_tlv(&input, 0).unwrap();
        assert_eq!(&*tlv.octets(tag::context(0), "x").unwrap(), b"abc");
    }

    #[test]
    fn refuses_malformed_ber() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x04],
            &[0x04, 0x80, 0x00, 0x00],       // indefinite primitive
            &[0x30, 0x80, 0x04, 0x01, 0x00], // no end-of-contents
            &[0x1f, 0x01, 0x00],             // high tag number
            &[0x30, 0x85, 0, 0, 0, 0, 1],    // five length bytes
        ] {
            assert!(read_tlv(input, 0).is_err(), "{input:02x?}");
        }
        let deep: Vec<u8> = std::iter::repeat_n([0x30, 0x80], 100).flatten().collect();
        assert_eq!(
            read_tlv(&deep, 0).unwrap_err(),
            malformed("nested too deeply")
        );
    }
}
