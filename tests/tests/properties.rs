//! Property tests: for random seeds, user ids and payloads, the enclave's signatures are low-s,
//! recover to the derived address and are byte-identical to libsecp256k1's.
#![cfg(test)]

use alloy_primitives::{Address, B256, U256};
use nitro_signer_common::UserId;
use nitro_signer_enclave::{KeyMaterial, MasterSeed, Payload, SigningPolicy, UserSigner};
use nitro_signer_eth::{AuthorizationRequest, PersonalMessage, TransactionRequest};
use nitro_signer_tests::{libsecp, reference_derivation};
use proptest::prelude::*;
use zeroize::Zeroizing;

/// User ids of 1 to 256 bytes of UTF-8, any scripts.
/// User ids the rule accepts: characters outside category C, without the other characters
/// the rule refuses (`UserId::is_forbidden`: U+2028 and U+2029 are not in category C).
fn user_id() -> impl Strategy<Value = String> {
    "\\PC{1,64}".prop_filter("an accepted user id", |s| {
        s.len() <= UserId::MAX_LEN && !s.chars().any(UserId::is_forbidden)
    })
}

fn eip1559() -> impl Strategy<Value = TransactionRequest> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u128>(),
        any::<u128>(),
        proptest::option::of(any::<[u8; 20]>()),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(
            |(chain_id, nonce, a, b, to, value, input)| TransactionRequest {
                tx_type: Some(2),
                chain_id: Some(chain_id),
                nonce: Some(nonce),
                gas: Some(21_000 + nonce % 1_000_000),
                max_fee_per_gas: Some(a.max(b)),
                max_priority_fee_per_gas: Some(a.min(b)),
                to: Some(to.map(Address::from)),
                value: Some(U256::from_be_bytes(value)),
                input: Some(input.into()),
                ..TransactionRequest::default()
            },
        )
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        eip1559().prop_map(Payload::Transaction),
        proptest::collection::vec(any::<u8>(), 0..300)
            .prop_map(|m| Payload::Message(PersonalMessage::Bytes(m.into()))),
        any::<[u8; 32]>().prop_map(|d| Payload::DangerousDigest(B256::from(d))),
        (1..=u64::MAX, any::<[u8; 20]>(), any::<u64>()).prop_map(|(chain_id, address, nonce)| {
            Payload::Authorization(AuthorizationRequest {
                chain_id: U256::from(chain_id),
                address: Address::from(address),
                nonce,
            })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signatures_match_libsecp256k1(seed: [u8; 32], user in user_id(), payload in payload()) {
        let material = KeyMaterial::Seed(MasterSeed::new(Zeroizing::new(seed)));
        let signer = UserSigner::for_user(&material, Some(&UserId::new(user.clone()).unwrap())).unwrap();
        let private_key = reference_derivation::derive(&seed, &user);
        prop_assert_eq!(signer.address(), libsecp::address(&private_key));

        let policy = SigningPolicy { allow_raw_digest: true, ..SigningPolicy::default() };
        let signed = signer.sign(payload, &policy).unwrap();
        // `recover` also asserts s <= n/2 and that libsecp256k1 verifies the signature.
        prop_assert_eq!(libsecp::recover(&signed.signing_hash, &signed.signature), signer.address());
        let (compact, parity) = libsecp::sign(&private_key, &signed.signing_hash);
        prop_assert_eq!(compact, libsecp::compact(&signed.signature));
        prop_assert_eq!(parity, signed.signature.y_parity);
    }

    #[test]
    fn imported_keys_sign_like_libsecp256k1(key: [u8; 32], digest: [u8; 32]) {
        // Most 32-byte strings are valid keys; the rest must be refused, not mangled.
        let private = nitro_signer_enclave::PrivateKey::from_bytes(&key);
        prop_assume!(private.is_ok());
        let private = private.unwrap();
        let signature = private.dangerous_sign_prehash(&digest).unwrap();
        let (compact, parity) = libsecp::sign(&key, &B256::from(digest));
        prop_assert_eq!(&compact[..32], &signature.r().to_be_bytes::<32>()[..]);
        prop_assert_eq!(&compact[32..], &signature.s().to_be_bytes::<32>()[..]);
        prop_assert_eq!(parity, signature.v());
    }
}
