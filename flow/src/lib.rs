#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`transaction`]: the transaction JSON, parsed strictly ([`FlowTransaction::from_json`])
//!   and checked against the limits ([`FlowTransaction::validate`]).
//! - [`format`](mod@format): the JSON forms of addresses, hex bytes and integers.
//! - [`encode`]: the RLP payload and envelope messages with the domain tag.
//! - [`sign`]: roles and their checks ([`FlowTransaction::signing_message`]), [`hash`], and
//!   [`account_key_rlp`].
//! - [`error`]: [`FlowError`], the one error type.

pub mod encode;
pub mod error;
pub mod format;
pub mod sign;
pub mod transaction;

pub use encode::TRANSACTION_DOMAIN_TAG;
pub use error::FlowError;
pub use format::Address;
pub use sign::{
    FULL_WEIGHT, HashAlgorithm, Role, SIGN_ALGO_ECDSA_P256, SIGN_ALGO_ECDSA_SECP256K1, Signer,
    account_key_rlp, hash,
};
pub use transaction::{FlowTransaction, PayloadSignature, ProposalKey};
