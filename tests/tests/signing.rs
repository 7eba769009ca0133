//! Every payload kind, signed by the enclave's request layer, checked with libsecp256k1 and
//! against published vectors.
#![cfg(test)]

use alloy_consensus::{Transaction, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, B256, U256, hex, keccak256};
use nitro_signer_common::UserId;
use nitro_signer_enclave::{
    KeyMaterial, MasterSeed, Payload, PrivateKey, SignError, Signed, SignedOutput, SigningPolicy,
    UserSigner,
};
use nitro_signer_eth::{
    AuthorizationRequest, EthSignature, PayloadError, PersonalMessage, TransactionRequest,
    TypedData,
};
use nitro_signer_tests::{fixtures::MAIL, libsecp, reference_derivation};
use zeroize::Zeroizing;

const SEED: [u8; 32] = [0x5e; 32];

fn seed_signer(user: &str) -> UserSigner {
    let material = KeyMaterial::Seed(MasterSeed::new(Zeroizing::new(SEED)));
    UserSigner::for_user(&material, Some(&UserId::new(user).unwrap())).unwrap()
}

fn imported_signer(key: [u8; 32]) -> UserSigner {
    let material = KeyMaterial::Imported(PrivateKey::from_bytes(&key).unwrap());
    UserSigner::for_user(&material, None).unwrap()
}

fn tx(json: &str) -> Payload {
    Payload::Transaction(TransactionRequest::from_json(json.as_bytes()).unwrap())
}

/// Checks a signature with libsecp256k1: it verifies, `s` is low, it recovers to the signer,
/// and libsecp256k1 signing the same hash with the same key gives the same bytes.
fn check_with_libsecp(signed: &Signed, private_key: &[u8; 32]) {
    assert_eq!(
        libsecp::recover(&signed.signing_hash, &signed.signature),
        signed.from
    );
    assert_eq!(libsecp::address(private_key), signed.from);
    let (compact, parity) = libsecp::sign(private_key, &signed.signing_hash);
    assert_eq!(
        compact,
        libsecp::compact(&signed.signature),
        "k256 and libsecp256k1 differ"
    );
    assert_eq!(parity, signed.signature.y_parity);
}

/// Decodes the raw transaction with alloy and checks it carries what was signed.
fn check_raw(signed: &Signed) -> TxEnvelope {
    let SignedOutput::Transaction { raw, tx_hash } = &signed.output else {
        panic!("not a transaction: {signed:?}")
    };
    assert_eq!(*tx_hash, keccak256(raw));
    let envelope = TxEnvelope::decode_2718(&mut raw.as_ref()).unwrap();
    assert_eq!(*envelope.tx_hash(), *tx_hash);
    assert_eq!(envelope.signature_hash(), signed.signing_hash);
    assert_eq!(envelope.signature().r(), signed.signature.r);
    assert_eq!(envelope.signature().s(), signed.signature.s);
    let decoded = EthSignature::new(*envelope.signature(), None);
    assert_eq!(
        libsecp::recover(&envelope.signature_hash(), &decoded),
        signed.from
    );
    envelope
}

#[test]
fn eip155_example_reproduces_the_published_transaction() {
    // https://eips.ethereum.org/EIPS/eip-155, "Example".
    let signer = imported_signer([0x46; 32]);
    let signed = signer
        .sign(
            tx(r#"{"nonce":"0x9","gasPrice":"0x4a817c800","gas":"0x5208",
                "to":"0x3535353535353535353535353535353535353535",
                "value":"0xde0b6b3a7640000","input":"0x","chainId":"0x1"}"#),
            &SigningPolicy::default(),
        )
        .unwrap();
    assert_eq!(
        signed.signing_hash,
        B256::from(hex!(
            "daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53"
        ))
    );
    let SignedOutput::Transaction { raw, .. } = &signed.output else {
        panic!()
    };
    assert_eq!(
        hex::encode(raw),
        "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a7640000\
         8025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f76\
         1aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
    );
    assert_eq!(signed.signature.v, Some(37));
    check_with_libsecp(&signed, &[0x46; 32]);
    check_raw(&signed);
}

#[test]
fn legacy_v_does_not_overflow_for_the_largest_chain_id() {
    let signer = seed_signer("big-chain");
    let signed = signer
        .sign(
            tx(r#"{"nonce":"0x0","gasPrice":"0x1","gas":"0x5208","to":null,
                "chainId":"0xffffffffffffffff"}"#),
            &SigningPolicy::default(),
        )
        .unwrap();
    let v = signed.signature.v.unwrap();
    assert_eq!(
        v,
        35 + 2 * u128::from(u64::MAX) + u128::from(signed.signature.y_parity)
    );
    let envelope = check_raw(&signed);
    assert_eq!(envelope.chain_id(), Some(u64::MAX));
}

#[test]
fn pre_eip155_legacy_needs_the_policy_opt_in() {
    let signer = seed_signer("old-school");
    let json = r#"{"nonce":"0x0","gasPrice":"0x1","gas":"0x5208","to":null}"#;
    let err = signer
        .sign(tx(json), &SigningPolicy::default())
        .unwrap_err();
    assert_eq!(err, SignError::Payload(PayloadError::PreEip155NotAllowed));
    let policy = SigningPolicy {
        allow_pre_eip155: true,
        ..SigningPolicy::default()
    };
    let signed = signer.sign(tx(json), &policy).unwrap();
    assert!(signed.signature.v == Some(27) || signed.signature.v == Some(28));
    check_raw(&signed);
}

/// One transaction of every type, all signed by a derived key and checked independently.
#[test]
fn every_transaction_type_verifies_with_libsecp256k1() {
    let user = "tx-types";
    let private_key = reference_derivation::derive(&SEED, user);
    let signer = seed_signer(user);
    let from = format!("{}", signer.address());
    let cases = [
        (
            0u8,
            r#"{"type":"0x0","chainId":"0x1","nonce":"0x7","gasPrice":"0x3b9aca00","gas":"0x5208",
            "to":"0x3535353535353535353535353535353535353535","value":"0x1","input":"0x"}"#,
        ),
        (
            1,
            r#"{"type":"0x1","chainId":"0x5","nonce":"0x0","gasPrice":"0x3b9aca00","gas":"0x7530",
            "to":"0x3535353535353535353535353535353535353535","value":"0x0","data":"0xabcdef",
            "accessList":[{"address":"0x0000000000000000000000000000000000000001",
            "storageKeys":["0x0000000000000000000000000000000000000000000000000000000000000001"]}]}"#,
        ),
        (
            2,
            r#"{"type":"0x2","chainId":"0x1","nonce":"0x2a","maxFeePerGas":"0x77359400",
            "maxPriorityFeePerGas":"0x3b9aca00","gas":"0x5208",
            "to":"0x3535353535353535353535353535353535353535","value":"0xde0b6b3a7640000"}"#,
        ),
        (
            3,
            r#"{"type":"0x3","chainId":"0x1","nonce":"0x1","maxFeePerGas":"0x77359400",
            "maxPriorityFeePerGas":"0x3b9aca00","maxFeePerBlobGas":"0x1","gas":"0x5208",
            "to":"0x3535353535353535353535353535353535353535","value":"0x0","accessList":[],
            "blobVersionedHashes":["0x01a915e4d060149eb4365960e6a7a45f334393093061116b197e3240065ff2d8"]}"#,
        ),
        (
            4,
            r#"{"type":"0x4","chainId":"0x1","nonce":"0x3","maxFeePerGas":"0x77359400",
            "maxPriorityFeePerGas":"0x3b9aca00","gas":"0x186a0",
            "to":"0x3535353535353535353535353535353535353535","value":"0x0","input":"0x",
            "authorizationList":[{"chainId":"0x1","address":"0x000000000000000000000000000000000000dead",
            "nonce":"0x0","yParity":"0x1",
            "r":"0x48b55bfa915ac795c431978d8a6a992b628d557da5ff759b307d495a36649353",
            "s":"0x1fffd310ac743f371de3b9f7f9cb56c0b28ad43601b4ab949f53faa07bd2c804"}]}"#,
        ),
    ];
    for (tx_type, json) in cases {
        // The caller's `from` is checked and accepted when right.
        let json = json.replacen('{', &format!(r#"{{"from":"{from}","#), 1);
        let signed = signer.sign(tx(&json), &SigningPolicy::default()).unwrap();
        check_with_libsecp(&signed, &private_key);
        let envelope = check_raw(&signed);
        assert_eq!(envelope.tx_type() as u8, tx_type);
        assert_eq!(signed.signature.v.is_some(), tx_type == 0);
        if let TxEnvelope::Eip7702(set_code) = &envelope {
            assert_eq!(set_code.tx().authorization_list.len(), 1);
            assert_eq!(
                set_code.tx().authorization_list[0].s(),
                U256::from_be_bytes(hex!(
                    "1fffd310ac743f371de3b9f7f9cb56c0b28ad43601b4ab949f53faa07bd2c804"
                ))
            );
        }
    }
}

#[test]
fn a_wrong_from_is_refused() {
    let signer = seed_signer("alice");
    let json = r#"{"from":"0x3535353535353535353535353535353535353535","chainId":"0x1",
        "nonce":"0x0","gasPrice":"0x1","gas":"0x5208","to":null}"#;
    let err = signer
        .sign(tx(json), &SigningPolicy::default())
        .unwrap_err();
    assert!(matches!(err, SignError::FromMismatch { actual, .. } if actual == signer.address()));
}

#[test]
fn personal_messages_verify_with_libsecp256k1() {
    let signer = seed_signer("messages");
    let private_key = reference_derivation::derive(&SEED, "messages");
    for message in [
        PersonalMessage::Utf8("Hello, nitro-signer!".into()),
        PersonalMessage::Bytes(vec![0u8, 1, 2, 0xff].into()),
        PersonalMessage::Utf8(String::new()),
    ] {
        let signed = signer
            .sign(Payload::Message(message), &SigningPolicy::default())
            .unwrap();
        check_with_libsecp(&signed, &private_key);
        assert_eq!(signed.output, SignedOutput::SignatureOnly);
        let rsv = signed.signature.to_rsv_bytes();
        assert!(rsv[64] == 27 || rsv[64] == 28);
    }
}

#[test]
fn eip712_mail_example_reproduces_the_published_signature() {
    // EIP-712's Example.js signs "Mail" with the private key keccak256("cow").
    let cow = keccak256("cow").0;
    let signer = imported_signer(cow);
    assert_eq!(
        signer.address(),
        "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"
            .parse::<Address>()
            .unwrap()
    );
    let typed = TypedData::from_json(MAIL.as_bytes()).unwrap();
    let signed = signer
        .sign(Payload::TypedData(typed), &SigningPolicy::default())
        .unwrap();
    assert_eq!(
        signed.signing_hash,
        B256::from(hex!(
            "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        ))
    );
    assert_eq!(
        signed.signature.r,
        U256::from_be_bytes(hex!(
            "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"
        ))
    );
    assert_eq!(
        signed.signature.s,
        U256::from_be_bytes(hex!(
            "07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562"
        ))
    );
    assert_eq!(signed.signature.to_rsv_bytes()[64], 28);
    check_with_libsecp(&signed, &cow);
}

#[test]
fn authorizations_verify_and_chain_zero_needs_opt_in() {
    let signer = seed_signer("delegator");
    let private_key = reference_derivation::derive(&SEED, "delegator");
    let request = |chain: &str| {
        let json = format!(
            r#"{{"chainId":"{chain}","address":"0x000000000000000000000000000000000000dEaD","nonce":"0x5"}}"#
        );
        Payload::Authorization(AuthorizationRequest::from_json(json.as_bytes()).unwrap())
    };
    let signed = signer
        .sign(request("0x1"), &SigningPolicy::default())
        .unwrap();
    check_with_libsecp(&signed, &private_key);
    let SignedOutput::Authorization(auth) = &signed.output else {
        panic!()
    };
    let tuple_signature = EthSignature::new(auth.signature().unwrap(), None);
    assert_eq!(
        libsecp::recover(&auth.signature_hash(), &tuple_signature),
        signer.address()
    );
    assert_eq!(auth.nonce, 5);

    let err = signer
        .sign(request("0x0"), &SigningPolicy::default())
        .unwrap_err();
    assert_eq!(
        err,
        SignError::Payload(PayloadError::ChainAgnosticAuthorizationNotAllowed)
    );
    let policy = SigningPolicy {
        allow_any_chain_authorization: true,
        ..SigningPolicy::default()
    };
    signer.sign(request("0x0"), &policy).unwrap();
}

#[test]
fn raw_digests_are_refused_unless_the_policy_allows_them() {
    let signer = seed_signer("digest");
    let digest = B256::repeat_byte(0xab);
    let err = signer
        .sign(Payload::DangerousDigest(digest), &SigningPolicy::default())
        .unwrap_err();
    assert_eq!(err, SignError::DigestNotAllowed);
    let policy = SigningPolicy {
        allow_raw_digest: true,
        ..SigningPolicy::default()
    };
    let signed = signer
        .sign(Payload::DangerousDigest(digest), &policy)
        .unwrap();
    assert_eq!(signed.signing_hash, digest);
    check_with_libsecp(&signed, &reference_derivation::derive(&SEED, "digest"));
}
