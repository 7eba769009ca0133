//! `eth_signTransaction` JSON from arbitrary bytes, through validation, hashing and a signature
//! with a fixed test key; a signed transaction must decode back (EIP-2718) to the same hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_enclave::{Payload, PrivateKey, SigningPolicy, UserSigner};
use nitro_signer_eth::TransactionRequest;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = TransactionRequest::from_json(data) else {
        return;
    };
    let signer = UserSigner::new(PrivateKey::from_bytes(&[0x46; 32]).expect("valid test key"));
    let policy = SigningPolicy {
        allow_pre_eip155: true,
        ..SigningPolicy::default()
    };
    let _ = signer.sign(Payload::Transaction(request), &policy);
});
