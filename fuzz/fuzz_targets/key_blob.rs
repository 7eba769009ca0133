//! Key blobs from arbitrary bytes: never panic; whatever decodes re-encodes to a blob that
//! decodes to the same value with the same encryption context.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_common::key_blob::KeyBlob;

fuzz_target!(|data: &[u8]| {
    if let Ok(blob) = KeyBlob::decode(data) {
        let again = KeyBlob::decode(&blob.encode()).expect("an encoded blob decodes");
        assert_eq!(again, blob);
        assert_eq!(
            again.metadata().encryption_context(),
            blob.metadata().encryption_context()
        );
    }
});
