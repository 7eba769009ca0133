//! The Nitro Security Module: attestation documents, randomness and PCRs.
//!
//! [`Nsm`] is what the enclave needs from the module. [`HardwareNsm`] talks to `/dev/nsm` in a
//! real enclave; `SimulatedNsm` issues documents in the same format, signed by a local P-384
//! certificate chain shaped like AWS's, for the simulated mode and tests. Nothing else in the
//! enclave knows which one it has. The simulator exists only with the `simulated` feature, which
//! the production image is built without.

mod hardware;
#[cfg(feature = "simulated")]
mod simulated;

pub use hardware::HardwareNsm;
use nitro_signer_common::attestation::Pcr;
#[cfg(feature = "simulated")]
pub use simulated::{SimulatedNsm, SimulatorConfig};

/// Why the NSM could not serve a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NsmError {
    /// The device could not be opened or answered with an error.
    #[error("NSM device: {0}")]
    Device(String),
    /// The simulator's state could not be read or written.
    #[error("NSM simulator storage: {0}")]
    Storage(String),
    /// A cryptographic operation failed.
    #[error("NSM cryptography: {0}")]
    Crypto(String),
    /// A request field is too long for the NSM.
    #[error("{field} is {len} bytes; the NSM accepts at most {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// What an attestation document should carry besides the PCRs.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttestationRequest<'a> {
    /// A public key (for KMS: the enclave's RSA SubjectPublicKeyInfo DER).
    pub public_key: Option<&'a [u8]>,
    /// Application data.
    pub user_data: Option<&'a [u8]>,
    /// A verifier's nonce.
    pub nonce: Option<&'a [u8]>,
}

/// Longest `public_key`, `user_data` or `nonce` the NSM accepts.
pub const MAX_ATTESTATION_FIELD: usize = 1024;

impl AttestationRequest<'_> {
    pub(crate) fn check(&self) -> Result<(), NsmError> {
        for (field, value) in [
            ("public_key", self.public_key),
            ("user_data", self.user_data),
            ("nonce", self.nonce),
        ] {
            let len = value.map_or(0, <[u8]>::len);
            if len > MAX_ATTESTATION_FIELD {
                return Err(NsmError::TooLong {
                    field,
                    len,
                    max: MAX_ATTESTATION_FIELD,
                });
            }
        }
        Ok(())
    }
}

/// The Nitro Security Module, as the enclave uses it.
pub trait Nsm: Send + Sync + std::fmt::Debug {
    /// A signed attestation document (COSE_Sign1) carrying the PCRs and `request`'s fields.
    fn attest(&self, request: AttestationRequest<'_>) -> Result<Vec<u8>, NsmError>;

    /// Fills `buf` with random bytes.
    fn fill_random(&self, buf: &mut [u8]) -> Result<(), NsmError>;

    /// The value of PCR `index`.
    fn pcr(&self, index: u8) -> Result<Pcr, NsmError>;
}
