#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`envelope`]: `CiphertextForRecipient` as KMS encodes it.
//! - [`policy`]: key policies and their attestation conditions.
//! - [`service`]: the KMS operations and the key store.
//! - [`sigv4`]: verification of the callers' AWS SigV4 signatures.
//! - [`server`]: the KMS JSON protocol over HTTP.

pub mod envelope;
pub mod policy;
pub mod server;
pub mod service;
pub mod sigv4;
