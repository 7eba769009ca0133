//! Decoding of attestation documents, without any verification.

use std::collections::BTreeMap;

use crate::protocol::codec::{self, Value};

use super::AttestationError;

/// Largest accepted document. Real documents are about 4.5 KiB (four CA certificates, a leaf and
/// up to 3 KiB of `public_key`, `user_data` and `nonce`).
pub const MAX_DOCUMENT_LEN: usize = 16 * 1024;

/// Length of a SHA-384 PCR.
pub const PCR_LEN: usize = 48;

/// A PCR value.
pub type Pcr = [u8; PCR_LEN];

/// COSE algorithm identifier of ES384 (ECDSA P-384 with SHA-384).
const COSE_ES384: i128 = -35;
/// COSE header label of the algorithm.
const COSE_ALG: i128 = 1;
/// CBOR tag of COSE_Sign1, which RFC 9052 allows in front of the array.
const COSE_SIGN1_TAG: u64 = 18;

/// A decoded attestation document. Nothing in it is verified: use
/// [`Verifier::verify`](super::Verifier::verify) before trusting any field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationDocument {
    /// The NSM module that issued the document.
    pub module_id: String,
    /// Milliseconds since the Unix epoch when the document was made.
    pub timestamp_ms: u64,
    /// The PCRs, by index.
    pub pcrs: BTreeMap<u8, Pcr>,
    /// The signing (leaf) certificate, DER.
    pub certificate: Vec<u8>,
    /// The CA bundle, DER, root first.
    pub cabundle: Vec<Vec<u8>>,
    /// The public key the enclave asked to include (SubjectPublicKeyInfo DER for KMS).
    pub public_key: Option<Vec<u8>>,
    /// Application data the enclave asked to include.
    pub user_data: Option<Vec<u8>>,
    /// The nonce the enclave asked to include.
    pub nonce: Option<Vec<u8>>,
    /// The COSE protected header, as signed.
    pub(crate) protected: Vec<u8>,
    /// The payload, as signed.
    pub(crate) payload: Vec<u8>,
    /// The raw 96-byte `r ‖ s` signature.
    pub(crate) signature: Vec<u8>,
}

fn malformed(what: impl Into<String>) -> AttestationError {
    AttestationError::Malformed(what.into())
}

fn bytes(value: Value, field: &str) -> Result<Vec<u8>, AttestationError> {
    match value {
        Value::Bytes(b) => Ok(b),
        _ => Err(malformed(format!("{field} is not a byte string"))),
    }
}

fn optional_bytes(value: Option<Value>, field: &str) -> Result<Option<Vec<u8>>, AttestationError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => bytes(v, field).map(Some),
    }
}

impl AttestationDocument {
    /// Decodes a document **without verifying anything**. The result says what the document
    /// claims, not what is true; it is for display and diagnostics.
    pub fn parse_unverified(document: &[u8]) -> Result<Self, AttestationError> {
        if document.len() > MAX_DOCUMENT_LEN {
            return Err(AttestationError::TooLarge {
                len: document.len(),
            });
        }
        // serde_cbor drops tags while decoding, so check the framing on the raw bytes: an array
        // of four, optionally behind the COSE_Sign1 tag (0xd2) and nothing else.
        let untagged = match document {
            [0xd2, rest @ ..] => rest,
            other => other,
        };
        if untagged.first() != Some(&0x84) {
            return Err(malformed("not a COSE_Sign1 array"));
        }
        let value: Value =
            codec::decode_cose(document).map_err(|e| malformed(format!("CBOR: {e}")))?;
        let items = match value {
            Value::Array(items) => items,
            Value::Tag(COSE_SIGN1_TAG, inner) => match *inner {
                Value::Array(items) => items,
                _ => return Err(malformed("COSE_Sign1 tag without an array")),
            },
            _ => return Err(malformed("not a COSE_Sign1 array")),
        };
        let [protected, unprotected, payload, signature]: [Value; 4] = items
            .try_into()
            .map_err(|_| malformed("COSE_Sign1 must have 4 elements"))?;
        let protected = bytes(protected, "protected header")?;
        if !matches!(unprotected, Value::Map(_)) {
            return Err(malformed("unprotected header is not a map"));
        }
        let payload = bytes(payload, "payload")?;
        let signature = bytes(signature, "signature")?;

        let header: Value = codec::decode_cose(&protected)
            .map_err(|e| malformed(format!("protected header: {e}")))?;
        let Value::Map(header) = header else {
            return Err(malformed("protected header is not a map"));
        };
        if header.get(&Value::Integer(COSE_ALG)) != Some(&Value::Integer(COSE_ES384)) {
            return Err(malformed("algorithm is not ES384"));
        }
        if signature.len() != 2 * PCR_LEN {
            return Err(malformed("ES384 signature is not 96 bytes"));
        }

        let fields: Value =
            codec::decode_cose(&payload).map_err(|e| malformed(format!("payload: {e}")))?;
        let Value::Map(mut fields) = fields else {
            return Err(malformed("payload is not a map"));
        };
        let mut take = |name: &str| fields.remove(&Value::Text(name.to_string()));

        let module_id = match take("module_id") {
            Some(Value::Text(id)) if !id.is_empty() => id,
            _ => return Err(malformed("module_id is missing or not text")),
        };
        match take("digest") {
            Some(Value::Text(d)) if d == "SHA384" => {}
            _ => return Err(malformed("digest is not SHA384")),
        }
        let timestamp_ms = match take("timestamp") {
            Some(Value::Integer(t)) => u64::try_from(t)
                .ok()
                .filter(|t| *t > 0)
                .ok_or_else(|| malformed("timestamp"))?,
            _ => return Err(malformed("timestamp is missing or not an integer")),
        };
        let Some(Value::Map(raw_pcrs)) = take("pcrs") else {
            return Err(malformed("pcrs is missing or not a map"));
        };
        let mut pcrs = BTreeMap::new();
        for (index, value) in raw_pcrs {
            let index = match index {
                Value::Integer(i) => u8::try_from(i).ok().filter(|i| *i < 32),
                _ => None,
            }
            .ok_or_else(|| malformed("PCR index out of range"))?;
            let pcr: Pcr = bytes(value, "PCR")?
                .try_into()
                .map_err(|_| malformed(format!("PCR{index} is not 48 bytes")))?;
            pcrs.insert(index, pcr);
        }
        let certificate = bytes(take("certificate").unwrap_or(Value::Null), "certificate")?;
        let cabundle = match take("cabundle") {
            Some(Value::Array(certs)) if !certs.is_empty() => certs
                .into_iter()
                .map(|c| bytes(c, "cabundle entry"))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(malformed("cabundle is missing, empty or not an array")),
        };
        let public_key = optional_bytes(take("public_key"), "public_key")?;
        let user_data = optional_bytes(take("user_data"), "user_data")?;
        let nonce = optional_bytes(take("nonce"), "nonce")?;
        // Fields this version does not know are ignored: they are not used for any decision.

        Ok(Self {
            module_id,
            timestamp_ms,
            pcrs,
            certificate,
            cabundle,
            public_key,
            user_data,
            nonce,
            protected,
            payload,
            signature,
        })
    }

    /// The COSE `Sig_structure` that the signature covers:
    /// `["Signature1", protected, h'', payload]`.
    pub(crate) fn signed_bytes(&self) -> Vec<u8> {
        let structure = Value::Array(vec![
            Value::Text("Signature1".into()),
            Value::Bytes(self.protected.clone()),
            Value::Bytes(Vec::new()),
            Value::Bytes(self.payload.clone()),
        ]);
        // Encoding a `Value` built here cannot fail.
        codec::encode(&structure).unwrap_or_default()
    }

    /// The raw `r ‖ s` signature.
    pub(crate) fn signature(&self) -> &[u8] {
        &self.signature
    }
}
