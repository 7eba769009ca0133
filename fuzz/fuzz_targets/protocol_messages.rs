//! Every message of the enclave protocol, decoded from arbitrary bytes; whatever decodes must
//! encode and decode back to the same message, and must have been in the protocol's one form (no
//! array at the top, no tag anywhere; `codec::decode` refuses both).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_common::protocol::{
    Hello, HelloReply, Request, Response,
    codec::{decode, encode},
};

fn round_trip<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(message) = decode::<T>(data) {
        assert!(
            !matches!(data.first().map(|initial| initial >> 5), Some(4 | 6)),
            "{message:?}"
        );
        let bytes = encode(&message).expect("a decoded message encodes");
        let again: T = decode(&bytes).expect("an encoded message decodes");
        assert_eq!(again, message);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Hello>(data);
    round_trip::<HelloReply>(data);
    round_trip::<Request>(data);
    round_trip::<Response>(data);
});
