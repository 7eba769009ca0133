//! Receipt statements from arbitrary bytes, as back ends and the audit-log checker read them:
//! decoding never panics, a statement that decodes re-encodes to exactly its bytes (one
//! statement, one encoding), and no arbitrary receipt verifies under a key whose private half
//! the fuzzer does not have.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_common::receipt::{Receipt, Statement};
use serde_bytes::{ByteArray, ByteBuf};

fuzz_target!(|data: &[u8]| {
    if let Ok(statement) = Statement::decode(data) {
        assert_eq!(statement.encode(), data);
        assert!(statement.check().is_ok());
    }
    // The last 64 bytes as a signature over the rest.
    if data.len() >= 64 {
        let (statement, signature) = data.split_at(data.len() - 64);
        let mut bytes = [0u8; 64];
        bytes.copy_from_slice(signature);
        let receipt = Receipt {
            statement: ByteBuf::from(statement.to_vec()),
            signature: ByteArray::new(bytes),
        };
        // RFC 8032's first test public key.
        let key = [
            0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64,
            0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
            0xf7, 0x07, 0x51, 0x1a,
        ];
        assert!(receipt.verify(&key).is_err());
    }
});
