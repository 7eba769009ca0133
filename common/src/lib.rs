#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - `audit` (feature `audit`): the audit log's JSON lines and the checker of a log.
//! - [`attestation`]: Nitro attestation documents: parsing, and verification against a pinned
//!   root, PCRs, nonce and public key.
//! - [`key_blob`]: the versioned key blob format and its KMS encryption-context binding.
//! - [`protocol`]: the framed CBOR protocol between the parent and the enclave.
//! - [`receipt`]: the enclave's signed receipts and their statement layout.
//! - [`transport`]: `vsock://`, `tcp://` and `unix://` addresses and their sockets.
//! - [`logging`]: the log levels every binary enforces on its dependencies.
//! - `process` (feature `binary`): stop signals for the binaries.
//! - [`private_file`]: owner-only files and directories for local state.
//! - [`resources`]: this process's CPU time and resident memory.
//! - [`tenants`]: the parent proxy's tenants file: API keys' digests and the owner labels each
//!   caller may use.
//! - [`user_id`]: the validated per-user identifier that selects a derived key.

pub mod attestation;
#[cfg(feature = "audit")]
pub mod audit;
pub mod key_blob;
pub mod logging;
pub mod private_file;
#[cfg(feature = "binary")]
pub mod process;
pub mod protocol;
pub mod receipt;
pub mod resources;
pub mod tenants;
pub mod transport;
pub mod user_id;

pub use user_id::{UserId, UserIdError};
