#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`cms`]: the CMS envelope of KMS's `CiphertextForRecipient`, read from untrusted BER.
//! - [`keys`]: [`MasterSeed`], [`PrivateKey`], [`KeyMaterial`] and the per-user derivation.
//! - [`nsm`]: the Nitro Security Module behind a trait: [`nsm::HardwareNsm`] over `/dev/nsm`,
//!   [`nsm::SimulatedNsm`] for the simulated mode.
//! - [`recipient`]: the enclave's RSA-2048 KMS recipient key, which opens `CiphertextForRecipient`.
//! - [`signing`]: the signing primitive ([`PrivateKey::dangerous_sign_prehash`]) and the request layer
//!   ([`UserSigner::sign`], [`Payload`], [`SigningPolicy`]).

pub mod cms;
pub mod keys;
pub mod nsm;
pub mod recipient;
pub mod signing;

pub use keys::{KeyError, KeyMaterial, MasterSeed, PrivateKey};
pub use signing::{Payload, SignError, Signed, SignedOutput, SigningPolicy, UserSigner};
