#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`attestation`]: Nitro attestation documents: parsing, and verification against a pinned
//!   root, PCRs, nonce and public key.
//! - [`user_id`]: the validated per-user identifier that selects a derived key.

pub mod attestation;
pub mod user_id;

pub use user_id::{UserId, UserIdError};
