//! Frame decoding: arbitrary bytes read as a stream of length-prefixed frames through the same
//! buffered reader the enclave and the proxy use. Every frame read must be exactly what the input
//! holds at that point (its re-encoding reproduces the bytes consumed), a length over the limit
//! must be refused before anything is allocated for it, and the stream must end with a clean
//! close, a refused length, or a truncated frame — never a panic or a hang.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use nitro_signer_common::protocol::frame::{FrameError, append_frame, buffered, read_frame};

/// Small enough that fuzzed lengths cross it often.
const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        let mut reader = buffered(data);
        let mut consumed = Vec::new();
        loop {
            match read_frame(&mut reader, MAX, Duration::from_secs(1)).await {
                Ok(frame) => {
                    assert!(frame.len() <= MAX);
                    append_frame(&mut consumed, &frame, MAX).expect("a frame read re-encodes");
                    assert_eq!(data.get(..consumed.len()), Some(consumed.as_slice()));
                }
                Err(FrameError::Closed) => {
                    assert_eq!(consumed.len(), data.len(), "closed between frames");
                    break;
                }
                Err(FrameError::TooLarge { len, max }) => {
                    assert!(len > max);
                    let header = data.get(consumed.len()..consumed.len() + 4).expect("a header");
                    assert_eq!(u32::from_be_bytes(header.try_into().unwrap()) as usize, len);
                    break;
                }
                // The input ended inside a frame.
                Err(FrameError::Io(error)) => {
                    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
                    assert!(data.len() > consumed.len());
                    break;
                }
                Err(error) => panic!("unexpected error from an in-memory stream: {error}"),
            }
        }
    });
});
