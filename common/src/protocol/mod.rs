//! The framed protocol between the parent proxy (or any client on the parent instance) and the
//! enclave.
//!
//! A connection carries frames (see [`frame`]): a 4-byte big-endian length, then that many bytes of
//! CBOR (see [`codec`]). The client's first frame is a [`Hello`] naming the protocol versions it
//! speaks; the enclave answers with a [`HelloReply`] and then serves [`Request`]s, each answered by
//! a [`Response`] with the same `id`. Many requests may be in flight on one connection, and answers
//! come back in the order they finish, not the order they were sent.
//!
//! Nothing in this module trusts its peer: lengths are checked before anything is allocated, and
//! every message is decoded into closed types whose fields are validated by their own types
//! ([`UserId`](crate::UserId), fixed-size byte arrays).

pub mod codec;
pub mod frame;
mod message;

pub use message::*;

/// The protocol version this build speaks. Version 2: [`Signed`] is an enum of outputs.
pub const PROTOCOL_VERSION: u32 = 2;

/// Most transactions in one [`SignBatchRequest`] (and in the HTTP API's batch endpoint).
pub const MAX_BATCH: usize = 1_000;
