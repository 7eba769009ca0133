#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`envelope`]: `CiphertextForRecipient` as KMS encodes it.
//! - [`policy`]: key policies and their attestation conditions.

pub mod envelope;
pub mod policy;
