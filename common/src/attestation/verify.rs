//! Verification of attestation documents against a pinned root and the caller's expectations.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use webpki::{EndEntityCert, KeyPurposeIdIter, aws_lc_rs::ECDSA_P384_SHA384};

use super::{AttestationDocument, AttestationError, Pcr};

/// SHA-256 fingerprint of the DER of the AWS Nitro Enclaves root certificate
/// (`AWS_NitroEnclaves_Root-G1`, `CN=aws.nitro-enclaves`), as AWS publishes it.
pub const AWS_NITRO_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31,
    0x7e, 0xd7, 0xcd, 0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// How far a document's timestamp may be ahead of the verifier's clock.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The root a document's chain must end in, pinned by the SHA-256 of its DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootOfTrust {
    fingerprint: [u8; 32],
    simulated: bool,
}

impl RootOfTrust {
    /// The AWS Nitro Enclaves root: what production trusts.
    pub const fn aws_nitro() -> Self {
        Self {
            fingerprint: AWS_NITRO_ROOT_G1_SHA256,
            simulated: false,
        }
    }

    /// A simulator's root, by fingerprint. Documents it signs come from no hardware at all:
    /// configure this only for the simulated mode and tests.
    pub const fn dangerous_simulated(fingerprint: [u8; 32]) -> Self {
        Self {
            fingerprint,
            simulated: true,
        }
    }

    /// The pinned fingerprint.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// Whether this is a simulator's root rather than AWS's.
    pub fn is_simulated(&self) -> bool {
        self.simulated
    }
}

/// What a verified document must also say. Empty expectations check only the signature, the
/// chain and that the enclave is not in debug mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    /// PCRs that must have exactly these values.
    pub pcrs: BTreeMap<u8, Pcr>,
    /// The nonce the verifier sent, which the document must carry.
    pub nonce: Option<Vec<u8>>,
    /// The public key the document must carry.
    pub public_key: Option<Vec<u8>>,
    /// Accept documents from debug-mode enclaves (PCR0, PCR1 and PCR2 all zero). Never in
    /// production: a debug enclave's memory is readable from the parent.
    pub allow_debug: bool,
    /// Refuse documents older than this.
    pub max_age: Option<Duration>,
}

/// Verifies documents against a root of trust and [`Expectations`].
#[derive(Debug, Clone)]
pub struct Verifier {
    root: RootOfTrust,
    expectations: Expectations,
}

/// A document whose signature, chain and expectations were verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAttestation {
    document: AttestationDocument,
    simulated: bool,
}

impl VerifiedAttestation {
    /// The verified document.
    pub fn document(&self) -> &AttestationDocument {
        &self.document
    }

    /// A PCR value.
    pub fn pcr(&self, index: u8) -> Option<&Pcr> {
        self.document.pcrs.get(&index)
    }

    /// Whether the document chains to a simulator's root rather than AWS's: it then proves
    /// nothing about hardware.
    pub fn is_simulated(&self) -> bool {
        self.simulated
    }

    /// Whether PCR0, PCR1 and PCR2 are all zero (only possible with
    /// [`Expectations::allow_debug`]).
    pub fn is_debug(&self) -> bool {
        is_debug(&self.document)
    }
}

fn is_debug(document: &AttestationDocument) -> bool {
    (0..3).all(|i| {
        document
            .pcrs
            .get(&i)
            .is_some_and(|p| p.iter().all(|b| *b == 0))
    })
}

/// Nitro certificates carry no extended key usage; the chain is pinned to its root instead.
struct AnyExtendedKeyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyExtendedKeyUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        // Only a malformed extension is an error.
        for purpose in iter {
            purpose?;
        }
        Ok(())
    }
}

impl Verifier {
    /// A verifier for documents chaining to `root`, checking only what `expectations` say, which
    /// may pin fewer than PCR0, PCR1 and PCR2 or allow debug enclaves. To trust an enclave image,
    /// use [`Self::pinned`]; this one serves checks that compare PCRs elsewhere (KMS key-policy
    /// conditions in the emulator), debug-enclave inspection and tests.
    pub fn dangerous_unpinned(root: RootOfTrust, expectations: Expectations) -> Self {
        Self { root, expectations }
    }

    /// A verifier that trusts an enclave image: `expectations` must pin PCR0 (the image), PCR1
    /// (kernel and boot ramdisk, the same for every image built with one nitro-cli) and PCR2
    /// (the application), and must not allow debug enclaves. Anything less is refused here,
    /// before any document is looked at.
    pub fn pinned(root: RootOfTrust, expectations: Expectations) -> Result<Self, AttestationError> {
        for index in 0..3 {
            if !expectations.pcrs.contains_key(&index) {
                return Err(AttestationError::NotPinned { index });
            }
        }
        if expectations.allow_debug {
            return Err(AttestationError::DebugEnclave);
        }
        Ok(Self::dangerous_unpinned(root, expectations))
    }

    /// This verifier, also requiring `nonce` in the document.
    pub fn expecting_nonce(&self, nonce: &[u8]) -> Self {
        let mut verifier = self.clone();
        verifier.expectations.nonce = Some(nonce.to_vec());
        verifier
    }

    /// The root documents must chain to.
    pub fn root(&self) -> &RootOfTrust {
        &self.root
    }

    /// Verifies `document` at time `now`.
    pub fn verify(
        &self,
        document: &[u8],
        now: SystemTime,
    ) -> Result<VerifiedAttestation, AttestationError> {
        let document = AttestationDocument::parse_unverified(document)?;
        self.verify_chain_and_signature(&document, now)?;
        self.check_expectations(&document, now)?;
        Ok(VerifiedAttestation {
            document,
            simulated: self.root.is_simulated(),
        })
    }

    fn verify_chain_and_signature(
        &self,
        document: &AttestationDocument,
        now: SystemTime,
    ) -> Result<(), AttestationError> {
        let (root, intermediates) = document
            .cabundle
            .split_first()
            .ok_or(AttestationError::UntrustedRoot)?;
        let fingerprint: [u8; 32] = Sha256::digest(root).into();
        if fingerprint != self.root.fingerprint {
            return Err(AttestationError::UntrustedRoot);
        }
        let cert_err = |e: webpki::Error| AttestationError::Certificate(e.to_string());
        let root = CertificateDer::from(root.as_slice());
        let anchor = webpki::anchor_from_trusted_cert(&root).map_err(cert_err)?;
        let intermediates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let leaf = CertificateDer::from(document.certificate.as_slice());
        let leaf = EndEntityCert::try_from(&leaf).map_err(cert_err)?;
        let since_epoch = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        leaf.verify_for_usage(
            &[ECDSA_P384_SHA384],
            &[anchor],
            &intermediates,
            UnixTime::since_unix_epoch(since_epoch),
            AnyExtendedKeyUsage,
            None,
            None,
        )
        .map_err(cert_err)?;
        let signature = raw_to_der(document.signature()).ok_or(AttestationError::BadSignature)?;
        leaf.verify_signature(ECDSA_P384_SHA384, &document.signed_bytes(), &signature)
            .map_err(|_| AttestationError::BadSignature)
    }

    fn check_expectations(
        &self,
        document: &AttestationDocument,
        now: SystemTime,
    ) -> Result<(), AttestationError> {
        let made = SystemTime::UNIX_EPOCH + Duration::from_millis(document.timestamp_ms);
        if made > now + CLOCK_SKEW {
            return Err(AttestationError::Timestamp);
        }
        if let Some(max_age) = self.expectations.max_age
            && now.duration_since(made).unwrap_or_default() > max_age
        {
            return Err(AttestationError::Timestamp);
        }
        if is_debug(document) && !self.expectations.allow_debug {
            return Err(AttestationError::DebugEnclave);
        }
        for (index, expected) in &self.expectations.pcrs {
            let actual = document
                .pcrs
                .get(index)
                .ok_or(AttestationError::PcrMissing { index: *index })?;
            if actual != expected {
                return Err(AttestationError::PcrMismatch { index: *index });
            }
        }
        if let Some(nonce) = &self.expectations.nonce
            && document.nonce.as_ref() != Some(nonce)
        {
            return Err(AttestationError::NonceMismatch);
        }
        if let Some(key) = &self.expectations.public_key
            && document.public_key.as_ref() != Some(key)
        {
            return Err(AttestationError::PublicKeyMismatch);
        }
        Ok(())
    }
}

/// COSE's raw `r ‖ s` signature as the DER `SEQUENCE { INTEGER r, INTEGER s }` X.509 uses.
fn raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 96 {
        return None;
    }
    let (r, s) = raw.split_at(48);
    let integer = |v: &[u8]| {
        // Minimal encoding: no leading zero bytes (but keep one byte for zero), and a 0x00 pad
        // when the high bit is set so the integer stays positive.
        let start = v
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(v.len().saturating_sub(1));
        let v = v.get(start..).unwrap_or_default();
        let pad = v.first().is_some_and(|b| b & 0x80 != 0);
        let mut out = vec![0x02, (v.len() + usize::from(pad)) as u8];
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let (r, s) = (integer(r), integer(s));
    // At most 2 × (2 + 49) = 102 bytes: always a short-form length.
    let mut der = vec![0x30, (r.len() + s.len()) as u8];
    der.extend(r);
    der.extend(s);
    Some(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_signatures_become_der_integers() {
        let mut raw = [0u8; 96];
        raw[47] = 1; // r = 1
        raw[48] = 0x80; // s has its high bit set: needs a 0x00 pad
        let der = raw_to_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 54, 0x02, 1, 1]);
        assert_eq!(&der[5..8], &[0x02, 49, 0x00]);
        assert_eq!(der.len(), 2 + 3 + 2 + 49);
        assert!(raw_to_der(&raw[..95]).is_none());
    }
}
