//! Signing authority for nitro-signer: what a key may sign, decided inside the enclave.
//!
//! # Layout
//!
//! - [`document`]: the policy document a key blob carries: strict parsing (unknown fields and
//!   anything ambiguous refused, errors name the path), its RFC 8785 canonical form and the
//!   SHA-256 that binds it to the blob through the KMS encryption context.
//! - [`eval`]: the rules, evaluated on what the enclave parsed itself ([`eval::Facts`]), deny by
//!   default.
//! - [`approval`]: approvals, the approvers' signatures over a fixed, domain-separated statement
//!   that names the key, the user, the exact hash to be signed and an expiry.
//!
//! The format is specified in `docs/policy.md`.

pub mod approval;
pub mod document;
pub mod eval;

pub use approval::{Approval, ApproverKey};
pub use document::{Policy, PolicyError};
pub use eval::{Decision, Facts};
