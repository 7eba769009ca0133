#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`envelope`]: `CiphertextForRecipient` as KMS encodes it.
//! - [`policy`]: key policies and their attestation conditions.
//! - [`service`]: the KMS operations, the key store and the region and account they belong to.
//! - [`sigv4`]: verification of the callers' AWS SigV4 signatures.
//! - [`server`]: the KMS JSON protocol over HTTP, with connection and time limits.
//! - [`cli`]: the command line of the `nitro-signer-kms-emulator` binary (and of
//!   `nitro-signer kms-emulator`).

pub mod cli;
pub mod envelope;
pub mod policy;
pub mod server;
pub mod service;
pub mod sigv4;
