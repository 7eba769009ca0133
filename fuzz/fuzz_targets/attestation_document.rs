//! The attestation document parser (COSE_Sign1 + CBOR payload) on arbitrary bytes: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_common::attestation::AttestationDocument;

fuzz_target!(|data: &[u8]| {
    let _ = AttestationDocument::parse_unverified(data);
});
