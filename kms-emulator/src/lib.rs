#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`envelope`]: `CiphertextForRecipient` as KMS encodes it.
//! - [`policy`]: key policies and their attestation conditions.
//! - [`service`]: the KMS operations and the key store.

pub mod envelope;
pub mod policy;
pub mod service;
