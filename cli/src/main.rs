//! The nitro-signer command line (work in progress: issue 4).

fn main() {}
