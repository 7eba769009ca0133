#![doc = include_str!("../README.md")]
// Test code: a failed expectation is a failed test, so panicking is the right response. (The
// integration tests get the same allowance from clippy.toml; this library is not built under
// `cfg(test)`, so it states its own, once.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//!
//! # Layout
//!
//! Independent oracles:
//!
//! - [`libsecp`]: signing, verification and recovery with libsecp256k1.
//! - [`fixtures`]: payloads with published expected results.
//! - [`reference_derivation`]: the per-user key derivation written out from RFC 5869.
//! - [`answers`]: the HTTP API's answers checked with alloy and libsecp256k1.
//!
//! Harnesses:
//!
//! - [`stand_in`]: an enclave stand-in speaking the framed protocol, for the client and proxy.
//! - [`process`]: the binaries as processes (readiness line, logs, signals, `keys import`).
//! - [`dev_stack`]: `nitro-signer dev`, the whole simulated stack, as one process.
//! - [`relay`]: a fault-injecting TCP relay in front of KMS.
//! - [`kms`]: the real `aws-sdk-kms` client pointed at a test endpoint.
//! - [`metrics`]: reading the `/metrics` text.
//! - [`node`]: the pinned Node.js packages (`ethers`, `viem`, `hardhat`) installed into
//!   `target/node`, and the client scripts of `tests/node` run with them.
//! - [`hardhat`]: a Hardhat node on Prague with funded, unlocked dev accounts, as the real
//!   Ethereum node behind the JSON-RPC endpoint.
//! - [`sockets`]: raw-socket probes of how a server handles a connection (the HTTP servers'
//!   connection limits, timeouts and lingering close).

pub mod answers;
pub mod dev_stack;
pub mod hardhat;
pub mod kms;
pub mod metrics;
pub mod node;
pub mod policy_model;
pub mod process;
pub mod python;
pub mod relay;
pub mod stand_in;

pub mod libsecp {
    //! libsecp256k1 as the independent secp256k1 implementation.

    use alloy_primitives::{Address, B256, keccak256};
    use nitro_signer_eth::EthSignature;
    use secp256k1::{
        Message, PublicKey, SECP256K1, SecretKey,
        ecdsa::{RecoverableSignature, RecoveryId},
    };

    /// Half the group order: a low-s signature has `s <= N_HALF`.
    pub const N_HALF: [u8; 32] = [
        0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b,
        0x20, 0xa0,
    ];

    /// The address of a public key.
    pub fn address_of(public_key: &PublicKey) -> Address {
        let uncompressed = public_key.serialize_uncompressed();
        Address::from_word(keccak256(&uncompressed[1..]))
    }

    /// The address of a private key, computed by libsecp256k1.
    pub fn address(private_key: &[u8; 32]) -> Address {
        let secret = SecretKey::from_byte_array(*private_key).expect("valid private key");
        address_of(&PublicKey::from_secret_key_global(&secret))
    }

    /// Signs with libsecp256k1 (RFC 6979, low-s), giving `(r ‖ s, y parity)`.
    pub fn sign(private_key: &[u8; 32], hash: &B256) -> ([u8; 64], bool) {
        let secret = SecretKey::from_byte_array(*private_key).expect("valid private key");
        let sig = SECP256K1.sign_ecdsa_recoverable(Message::from_digest(hash.0), &secret);
        let (recid, compact) = sig.serialize_compact();
        (compact, i32::from(recid) == 1)
    }

    /// Whether libsecp256k1 verifies `r ‖ s` over `hash` for the public key `x ‖ y` (a
    /// high-s signature is normalized first: libsecp256k1 verifies only low-s ones).
    pub fn verify(public_key_xy: &[u8; 64], hash: &[u8; 32], rs: &[u8; 64]) -> bool {
        let mut uncompressed = [0x04; 65];
        uncompressed[1..].copy_from_slice(public_key_xy);
        let Ok(public_key) = PublicKey::from_slice(&uncompressed) else {
            return false;
        };
        let Ok(mut signature) = secp256k1::ecdsa::Signature::from_compact(rs) else {
            return false;
        };
        signature.normalize_s();
        SECP256K1
            .verify_ecdsa(Message::from_digest(*hash), &signature, &public_key)
            .is_ok()
    }

    /// `r ‖ s` of a signature, 64 bytes big-endian.
    pub fn compact(sig: &EthSignature) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&sig.r.to_be_bytes::<32>());
        out[32..].copy_from_slice(&sig.s.to_be_bytes::<32>());
        out
    }

    /// Recovers the signer's address with libsecp256k1, after checking that libsecp256k1
    /// verifies the signature against the recovered key and that `s` is low.
    pub fn recover(hash: &B256, sig: &EthSignature) -> Address {
        let compact = compact(sig);
        assert!(compact[32..] <= N_HALF[..], "s is not low: {sig:?}");
        let recid = RecoveryId::try_from(i32::from(sig.y_parity)).expect("recovery id");
        let recoverable = RecoverableSignature::from_compact(&compact, recid).expect("signature");
        let message = Message::from_digest(hash.0);
        let public_key = SECP256K1
            .recover_ecdsa(message, &recoverable)
            .expect("recoverable");
        let mut standard = recoverable.to_standard();
        // libsecp256k1 verifies only low-s signatures; normalizing must be a no-op here.
        standard.normalize_s();
        assert_eq!(
            standard.serialize_compact(),
            compact,
            "libsecp256k1 changed s"
        );
        SECP256K1
            .verify_ecdsa(message, &standard, &public_key)
            .expect("libsecp256k1 verifies");
        address_of(&public_key)
    }
}

pub mod reference_derivation {
    //! docs/key-derivation.md written out from RFC 5869 over HMAC-SHA256, independently of
    //! the enclave's use of the `hkdf` crate.

    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    const SALT: &[u8] = b"nitro-signer/secp256k1/v1";
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];

    fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The private key of `user_id` under `seed`.
    pub fn derive(seed: &[u8; 32], user_id: &str) -> [u8; 32] {
        let prk = hmac(SALT, &[seed]);
        let id = user_id.as_bytes();
        for counter in 0..=255u8 {
            let suffix: &[u8] = if counter == 0 { &[] } else { &[0x00, counter] };
            // L = 32 is one SHA-256 block: T(1) = HMAC(PRK, info ‖ 0x01).
            let okm = hmac(&prk, &[id, suffix, &[0x01]]);
            if okm != [0u8; 32] && okm < N {
                return okm;
            }
        }
        panic!("no valid scalar")
    }
}

pub mod fixtures {
    //! Payloads with published expected results, shared by the conformance and end-to-end tests.

    /// The "Mail" example of the EIP-712 specification (`Example.js`).
    pub const MAIL: &str = r#"{
  "types": {
    "EIP712Domain": [
      {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
      {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}
    ],
    "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
    "Mail": [
      {"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
      {"name": "contents", "type": "string"}
    ]
  },
  "primaryType": "Mail",
  "domain": {"name": "Ether Mail", "version": "1", "chainId": 1,
             "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
  "message": {
    "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
    "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
    "contents": "Hello, Bob!"
  }
}"#;

    /// `MAIL`'s EIP-712 signing hash, as the specification's example prints it.
    pub const MAIL_HASH: &str =
        "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2";
}

pub mod sockets {
    //! Raw-socket probes of a server's connection handling, for the tests of the HTTP servers'
    //! limits: what did the server send before it closed, and has it done anything yet.

    use std::{io, time::Duration};

    use tokio::{io::AsyncReadExt, net::TcpStream};

    /// Reads until the server closes `stream` (or resets it); returns what it sent. Panics if
    /// the server neither sends nor closes for `within`.
    pub async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(within, stream.read(&mut buf))
                .await
                .expect("the server did not close the connection")
            {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Whether the server has neither answered nor closed `stream` yet.
    pub fn still_open_and_silent(stream: &TcpStream) -> bool {
        let mut buf = [0u8; 16];
        matches!(stream.try_read(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}
