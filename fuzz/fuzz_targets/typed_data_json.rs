//! EIP-712 documents from arbitrary bytes: validation and hashing never panic and stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_eth::TypedData;

fuzz_target!(|data: &[u8]| {
    if let Ok(typed) = TypedData::from_json(data) {
        let _ = typed.signing_hash();
    }
});
