//! A Rust client for nitro-signer (work in progress: issue 4).
