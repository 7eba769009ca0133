#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`cache`]: decrypted key material, bounded in entries and age, zeroized on eviction; its LRU
//!   bookkeeping in `cache/lru.rs`.
//! - [`cli`]: the enclave process's options and entry point.
//! - [`cms`]: the CMS envelope of KMS's `CiphertextForRecipient`, read from untrusted BER.
//! - [`keys`]: [`MasterSeed`], [`PrivateKey`], [`KeyMaterial`] and the per-user derivation.
//! - [`kms`]: `Decrypt`/`GenerateDataKey` with `Recipient` through `aws-sdk-kms`: the client, its
//!   errors, the parent's credentials, and [`kms::transport`], HTTPS to AWS KMS through the
//!   parent's vsock-proxy with TLS ending in the enclave.
//! - [`limits`]: every default (limits, timeouts, cache sizes) and the memory budget the server's
//!   limits come from.
//! - [`loopback`]: brings up `lo` in production (an enclave boots with it down).
//! - [`nsm`]: the Nitro Security Module behind a trait: [`nsm::HardwareNsm`] over `/dev/nsm`,
//!   and, with the `simulated` feature, `nsm::SimulatedNsm` for the simulated mode.
//! - [`receipts`]: the boot's Ed25519 receipt key, its attestation and the receipt sequence.
//! - [`recipient`]: the enclave's RSA-2048 KMS recipient key, which opens `CiphertextForRecipient`.
//! - [`server`]: connections from the parent over vsock (or TCP/Unix in simulated mode).
//! - [`service`]: the request handler behind the server.
//! - `simulated` (with the `simulated` feature only): simulated mode's options, which swap the
//!   NSM and the KMS endpoint and nothing else.
//! - [`signing`]: the signing primitive ([`PrivateKey::dangerous_sign_prehash`]) and the request layer
//!   ([`UserSigner::sign`], [`Payload`], [`SigningPolicy`]).

pub mod cache;
pub mod cli;
pub mod cms;
pub mod keys;
pub mod kms;
pub mod limits;
pub mod loopback;
pub mod nsm;
pub mod receipts;
pub mod recipient;
pub mod sealing;
pub mod server;
pub mod service;
pub mod signing;
#[cfg(feature = "simulated")]
pub mod simulated;

pub use keys::{CurveKey, KeyError, KeyMaterial, MasterSeed, P256PrivateKey, PrivateKey};
pub use signing::{Payload, Prepared, SignError, Signed, SignedOutput, SigningPolicy, UserSigner};
