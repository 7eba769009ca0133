#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`user_id`]: the validated per-user identifier that selects a derived key.

pub mod user_id;

pub use user_id::{UserId, UserIdError};
