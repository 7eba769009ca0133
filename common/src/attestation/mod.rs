//! Nitro Enclaves attestation documents: parsing and verification.
//!
//! A document is an untagged COSE_Sign1 (RFC 9052) signed with ES384 by a leaf certificate that
//! chains, through the intermediates of its `cabundle`, to the AWS Nitro Enclaves root. The
//! payload is a CBOR map: `module_id`, `digest` (`"SHA384"`), `timestamp` (ms since the Unix
//! epoch), `pcrs` (index → 48 bytes), `certificate`, `cabundle`, `public_key`, `user_data`,
//! `nonce`.
//!
//! - [`AttestationDocument::parse_unverified`] only decodes; nothing it returns can be trusted.
//! - [`Verifier::verify`] checks the COSE signature, the certificate chain to a pinned root,
//!   validity times, the expected PCRs, the nonce and the public key, and refuses debug-mode
//!   (all-zero PCR) documents unless explicitly allowed. Only its [`VerifiedAttestation`] is
//!   trustworthy.
//!
//! Used by the parent proxy, the CLI, the KMS emulator and back ends; the enclave produces
//! documents but does not verify its own.

mod document;
mod verify;

pub use document::{AttestationDocument, MAX_DOCUMENT_LEN, PCR_LEN, Pcr};
pub use verify::{
    AWS_NITRO_ROOT_G1_SHA256, Expectations, RootOfTrust, VerifiedAttestation, Verifier,
};

/// Why a document was refused. Messages describe the document, never secrets (a document holds
/// none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// Larger than [`MAX_DOCUMENT_LEN`].
    #[error("attestation document is {len} bytes; at most {MAX_DOCUMENT_LEN} are accepted")]
    TooLarge {
        /// Length of the rejected document.
        len: usize,
    },
    /// Not a well-formed document.
    #[error("malformed attestation document: {0}")]
    Malformed(String),
    /// The COSE signature does not verify with the leaf certificate's key.
    #[error("attestation document signature does not verify")]
    BadSignature,
    /// The root of the certificate bundle is not the pinned root.
    #[error("attestation document is not rooted in the trusted root certificate")]
    UntrustedRoot,
    /// The certificate chain does not verify (expired, wrong issuer, bad signature...).
    #[error("attestation certificate chain does not verify: {0}")]
    Certificate(String),
    /// The document's timestamp is in the future, or older than the caller's maximum age. (The
    /// chain itself is checked for validity at the verifier's current time.)
    #[error("attestation document timestamp is in the future or too old")]
    Timestamp,
    /// A PCR differs from the expected value.
    #[error("PCR{index} does not match the expected value")]
    PcrMismatch {
        /// The PCR index.
        index: u8,
    },
    /// An expected PCR is absent from the document.
    #[error("PCR{index} is missing from the document")]
    PcrMissing {
        /// The PCR index.
        index: u8,
    },
    /// PCR0, PCR1 and PCR2 are all zero: a debug-mode enclave, whose memory the parent can read.
    #[error("attestation document is from a debug-mode enclave (all-zero PCRs)")]
    DebugEnclave,
    /// The nonce differs from the expected one, or is missing.
    #[error("attestation document nonce does not match")]
    NonceMismatch,
    /// A verifier that trusts an enclave image must pin PCR0, PCR1 and PCR2.
    #[error("PCR{index} is not pinned; a verifier must pin PCR0, PCR1 and PCR2")]
    NotPinned {
        /// The first PCR index missing from the expectations.
        index: u8,
    },
    /// The public key differs from the expected one, or is missing.
    #[error("attestation document public key does not match")]
    PublicKeyMismatch,
}
