#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`enclave`]: [`EnclaveClient`], the framed protocol to the enclave over vsock (or TCP/Unix in
//!   simulated mode): a self-healing pool of multiplexed connections. The parent proxy uses it;
//!   so can any program on the parent instance.
//! - [`api`]: the serde types of the parent proxy's HTTP JSON API (the `nitro-signer-api` crate,
//!   shared with the proxy), used by [`HttpClient`].
//! - [`http`] (feature `http`, on by default): [`HttpClient`], a client of that HTTP API.
//! - [`receipts`]: [`ReceiptVerifier`], which trusts a boot's receipt key through attestation
//!   (pinned PCR0, PCR1, PCR2), and the checks of each answer against its receipt.

pub use nitro_signer_api as api;
pub mod enclave;
#[cfg(feature = "http")]
pub mod http;
pub mod receipts;

pub use enclave::{ClientError, ConnectionStats, EnclaveClient, EnclaveConfig};
#[cfg(feature = "http")]
pub use http::{HttpClient, HttpError};
pub use receipts::{ReceiptVerifier, VerifyError};
