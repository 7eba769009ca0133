#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`envelope`]: `CiphertextForRecipient` as KMS encodes it.

pub mod envelope;
