//! The CMS EnvelopedData (BER) reader behind `CiphertextForRecipient`: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_enclave::cms::Envelope;

fuzz_target!(|data: &[u8]| {
    let _ = Envelope::parse(data);
});
