#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`keys`]: [`MasterSeed`], [`PrivateKey`], [`KeyMaterial`] and the per-user derivation.
//! - [`signing`]: the signing primitive ([`PrivateKey::sign_prehash`]) and the request layer
//!   ([`UserSigner::sign`], [`Payload`], [`SigningPolicy`]).

pub mod keys;
pub mod signing;

pub use keys::{KeyError, KeyMaterial, MasterSeed, PrivateKey};
pub use signing::{Payload, SignError, Signed, SignedOutput, SigningPolicy, UserSigner};
