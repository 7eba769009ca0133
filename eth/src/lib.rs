#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`json`]: the rules every payload's JSON follows (one document, no repeated keys), and the
//!   one function that parses payloads from bytes.
//! - [`hex`]: the JSON-RPC hex rules for quantities, data and addresses.
//! - [`transaction`]: `eth_signTransaction` JSON → validated transaction → signing hash → raw
//!   signed transaction.
//! - [`message`]: EIP-191 personal messages.
//! - [`typed_data`]: EIP-712 typed data.
//! - [`authorization`]: EIP-7702 authorization tuples.
//! - [`signature`]: the signature in the forms callers receive.
//! - [`error`]: [`PayloadError`], the one error type.

pub mod authorization;
pub mod error;
pub mod hex;
pub mod json;
pub mod message;
pub mod signature;
pub mod transaction;
pub mod typed_data;

pub use alloy_eips::eip7702::SignedAuthorization;
pub use alloy_primitives::{Address, B256, Bytes, Signature, U256};
pub use authorization::{AuthorizationOptions, AuthorizationRequest, UnsignedAuthorization};
pub use error::PayloadError;
pub use message::PersonalMessage;
pub use signature::EthSignature;
pub use transaction::{SignedTransaction, TransactionRequest, TxOptions, UnsignedTransaction};
pub use typed_data::TypedData;
