//! The enclave's KMS client: `Decrypt` and `GenerateDataKey` with `Recipient`, through the real
//! `aws-sdk-kms`.
//!
//! Every call carries a fresh attestation document whose `public_key` is the enclave's RSA
//! recipient key, so KMS checks the key policy's attestation conditions and answers with
//! `CiphertextForRecipient`, which only this enclave can open. The plaintext never crosses the
//! parent instance. Which KMS endpoint the client reaches is configuration: AWS KMS in
//! production, the emulator in simulated mode; the code path is the same.
//!
//! AWS credentials come from the parent ([`CredentialStore::set`]); they are the instance role's,
//! not enclave secrets, but they are still zeroized and never logged. The last credentials sent
//! win, and none is trusted past [`credentials::MAX_CREDENTIALS_LIFETIME`] from its arrival.
//!
//! # Layout
//!
//! - [`client`]: [`Kms`], the calls themselves, and the checks on KMS's answers.
//! - [`credentials`]: [`CredentialStore`], the parent's AWS credentials for the SDK.
//! - [`error`]: [`KmsError`] and the classification of SDK failures into it.
//! - [`transport`]: HTTPS to AWS KMS through the parent's vsock-proxy, TLS ending in the enclave.

pub mod client;
pub mod credentials;
pub mod error;
pub mod transport;

pub use client::{GeneratedKey, Kms, KmsSettings, is_key_arn};
pub use credentials::CredentialStore;
pub use error::{CiphertextRefusal, KmsError, Operation, ServiceCode, Unreachable};
