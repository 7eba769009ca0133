//! Published vectors from the Ethereum ecosystem's own test suites, reproduced by the enclave's
//! request layer. Each vector names its source. (The EIP-155 and EIP-712 examples from the EIPs
//! themselves are in `signing.rs`.)
#![cfg(test)]

use alloy_primitives::{B256, U256, hex};
use nitro_signer_enclave::{
    KeyMaterial, Payload, PrivateKey, Signed, SignedOutput, SigningPolicy, UserSigner,
};
use nitro_signer_eth::{AuthorizationRequest, PersonalMessage, TransactionRequest};
use nitro_signer_tests::libsecp;

/// Anvil/Hardhat account 0 (`accounts[0]` in viem and ox).
const ANVIL_0: [u8; 32] = hex!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");

fn signer(key: [u8; 32]) -> UserSigner {
    let material = KeyMaterial::Imported(PrivateKey::from_bytes(&key).unwrap());
    UserSigner::for_user(&material, None).unwrap()
}

fn sign(key: [u8; 32], payload: Payload) -> Signed {
    let signed = signer(key)
        .sign(payload, &SigningPolicy::default())
        .unwrap();
    assert_eq!(
        libsecp::recover(&signed.signing_hash, &signed.signature),
        signed.from
    );
    signed
}

fn sign_tx(key: [u8; 32], json: &str) -> (Signed, String) {
    let request = TransactionRequest::from_json(json.as_bytes()).unwrap();
    let signed = sign(key, Payload::Transaction(request));
    let SignedOutput::Transaction { raw, .. } = &signed.output else {
        panic!()
    };
    let raw = format!("0x{}", hex::encode(raw));
    (signed, raw)
}

fn dec(s: &str) -> U256 {
    U256::from_str_radix(s, 10).unwrap()
}

#[test]
fn eip2930_eth_account_access_list_tx() {
    // ethereum/eth-account tests/core/test_accounts.py, test_eth_account_sign_transaction,
    // case `access_list_tx`.
    let (signed, raw) = sign_tx(
        hex!("fad9c8855b740a0b7ed4c221dbad0f33a83a49cad6b3fe8d5817ac83d38b6a19"),
        r#"{"type":"0x1","chainId":"0x76c","nonce":"0x22","gasPrice":"0x3b9aca00","gas":"0x186a0",
            "to":"0x09616C3d61b3331fc4109a9E41a8BDB7d9776609","value":"0x5af3107a4000",
            "data":"0x616263646566","accessList":[{"address":"0x0000000000000000000000000000000000000001",
            "storageKeys":["0x0100000000000000000000000000000000000000000000000000000000000000"]}]}"#,
    );
    assert_eq!(
        raw,
        "0x01f8ad82076c22843b9aca00830186a09409616c3d61b3331fc4109a9e41a8bdb7d9776609865af3107a40\
         0086616263646566f838f7940000000000000000000000000000000000000001e1a00100000000000000000000\
         00000000000000000000000000000000000000000001a08289e85fa00f8f7f78a53cf147a87b2a7f0d27e64d75\
         71f9d06a802e365c3430a017dc77eae36c88937db4a5179f57edc6119701652f3f1c6f194d1210d638a061"
    );
    let SignedOutput::Transaction { tx_hash, .. } = signed.output else {
        panic!()
    };
    assert_eq!(
        tx_hash,
        B256::from(hex!(
            "2a791d5483705e444fa6d493e6f504836cf54ca78335c60dc81bcf320e95e49c"
        ))
    );
    assert!(signed.signature.y_parity);
    assert_eq!(
        signed.signature.r,
        dec("59044332146903025833144089863119240337233261477961028574753111682592582415408")
    );
    assert_eq!(
        signed.signature.s,
        dec("10792729512059697976635619515571917958852106732672247829612911298843986403425")
    );
}

#[test]
fn eip1559_viem_signed() {
    // wevm/viem src/utils/transaction/serializeTransaction.test.ts, eip1559 > signed
    // (viem encodes the unset gas as 0).
    let (signed, raw) = sign_tx(
        ANVIL_0,
        r#"{"type":"0x2","chainId":"0x1","nonce":"0x311","maxPriorityFeePerGas":"0x77359400",
            "maxFeePerGas":"0x77359400","gas":"0x0","to":"0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
            "value":"0xde0b6b3a7640000","accessList":[]}"#,
    );
    assert_eq!(
        raw,
        "0x02f8720182031184773594008477359400809470997970c51812dc3a010c7d01b50e0d17dc79c8880de0b6\
         b3a764000080c001a0ce18214ff9d06ecaacb61811f9d6dc2be922e8cebddeaf6df0b30d5c498f6d33a05f04\
         87c6dbbf2139f7c705d8054dbb16ecac8ae6256ce2c4c6f2e7ef35b3a496"
    );
    assert!(signed.signature.y_parity);
}

#[test]
fn eip1559_eth_account() {
    // ethereum/eth-account tests/core/test_accounts.py, ETH_TEST_TRANSACTIONS.
    let (_, raw) = sign_tx(
        hex!("70af7ec25374c2b06cbfffeaf9817a3d1bc61854abbf39e9e00de734b0c0c8c4"),
        r#"{"type":"0x2","chainId":"0x539","nonce":"0x2","maxFeePerGas":"0x77359400",
            "maxPriorityFeePerGas":"0x77359400","gas":"0x186a0",
            "to":"0x96216849c49358B10257cb55b28eA603c874b05E","value":"0x5af3107a4000",
            "data":"0x5544"}"#,
    );
    assert_eq!(
        raw,
        "0x02f8758205390284773594008477359400830186a09496216849c49358b10257cb55b28ea603c874b05e86\
         5af3107a4000825544c001a008badd022b23e5bb51a13a18c99185dbd24aac054f876a3cf89a61672e998b89\
         a01d14fb34a688d516f6444fdb6ceca7778be786cc70d3fa29714b6f232f09a83a"
    );
}

#[test]
fn eip4844_ox_hashes() {
    // wevm/ox src/core/_test/TransactionEnvelopeEip4844.test.ts, from > default (unset fee
    // fields are encoded as 0). ox publishes the signing hash and the signed transaction's hash.
    let (signed, _) = sign_tx(
        ANVIL_0,
        r#"{"type":"0x3","chainId":"0x1","nonce":"0x299","gas":"0x5208","maxFeePerGas":"0x306dc4200",
            "maxPriorityFeePerGas":"0x0","maxFeePerBlobGas":"0x0",
            "to":"0x70997970c51812dc3a010c7d01b50e0d17dc79c8","value":"0xde0b6b3a7640000",
            "blobVersionedHashes":["0x01febabecafebabecafebabecafebabecafebabecafebabecafebabecafebabe"]}"#,
    );
    assert_eq!(
        signed.signing_hash,
        B256::from(hex!(
            "d5c811a922a14455151761e77bcc84bf590bb8dbf2d9a79d4c890f561a6dcd39"
        ))
    );
    let SignedOutput::Transaction { tx_hash, .. } = signed.output else {
        panic!()
    };
    assert_eq!(
        tx_hash,
        B256::from(hex!(
            "fae853c3fefc9481eb674943ddb34dca24c2959f26d2ce6917d45c8faad684a8"
        ))
    );
}

#[test]
fn eip7702_ox_with_authorizations_signed_here() {
    // wevm/ox src/core/_test/TransactionEnvelopeEip7702.test.ts, serialize > options: signature.
    // accounts[0] signs both authorizations and the transaction; the authorizations are signed
    // by the enclave too and must match the ones inside the published encoding.
    let contract = "0xfba3912ca04dd458c843e2ee08967fc04f3579c2";
    let mut list = Vec::new();
    for (chain, nonce) in [("0x1", "0x311"), ("0xa", "0x312")] {
        let json = format!(r#"{{"chainId":"{chain}","address":"{contract}","nonce":"{nonce}"}}"#);
        let request = AuthorizationRequest::from_json(json.as_bytes()).unwrap();
        let signed = sign(ANVIL_0, Payload::Authorization(request));
        let s = signed.signature;
        list.push(format!(
            r#"{{"chainId":"{chain}","address":"{contract}","nonce":"{nonce}","yParity":"{:#x}","r":"{:#x}","s":"{:#x}"}}"#,
            u8::from(s.y_parity),
            s.r,
            s.s
        ));
    }
    let (_, raw) = sign_tx(
        ANVIL_0,
        &format!(
            r#"{{"type":"0x4","chainId":"0x1","nonce":"0x311","maxPriorityFeePerGas":"0x77359400",
            "maxFeePerGas":"0x77359400","gas":"0x0","to":"0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
            "value":"0xde0b6b3a7640000","accessList":[],"authorizationList":[{}]}}"#,
            list.join(",")
        ),
    );
    assert_eq!(
        raw,
        "0x04f901300182031184773594008477359400809470997970c51812dc3a010c7d01b50e0d17dc79c8880de0\
         b6b3a764000080c0f8bcf85c0194fba3912ca04dd458c843e2ee08967fc04f3579c282031101a05f9eab9d5d\
         717098430d03780924a379e350e5cdd38fb7ffe707393d587e4e35a07e28e4c4eadc81dafea5d73c8e532703\
         4306d4ad2dc4dbd94ef829bec57f04dbf85c0a94fba3912ca04dd458c843e2ee08967fc04f3579c282031280\
         a0f4181dd27f6b801404cd3bc24207aa1b07b1ff8991ea847b0af1a6c3e4ba9e99a00fda7db5a05f0c529833\
         9ffa7ec9be2d2a483f5c0af7fe267237b01290bc958280a0c6e17df66749225c040251e51ab7c732b7c92d78\
         44ed731c80ee5ff3b15baf42a03b4fb995198301b08f630d1aecfa4a567a722e184eda6e3789481091a0cd1dd5"
    );
}

#[test]
fn eip7702_authorization_eth_account_and_ox() {
    // ethereum/eth-account eth_account/account.py, `sign_authorization` docstring.
    let request = AuthorizationRequest::from_json(
        br#"{"chainId":"0x539","address":"0x5ce9454909639d2d17a3f753ce7d93fa0b9ab12e","nonce":"0x1"}"#,
    )
    .unwrap();
    let signed = sign([0xaa; 32], Payload::Authorization(request));
    assert_eq!(
        signed.signing_hash,
        B256::from(hex!(
            "9026f77ed6740d6d08f0cdc0591a86b2232700020a816718fbf760785e9ca2f2"
        ))
    );
    assert!(!signed.signature.y_parity);
    assert_eq!(
        signed.signature.r,
        dec("52163433520757118830640642673035732532535423029712132518776649895118143897479")
    );
    assert_eq!(
        signed.signature.s,
        dec("57576671166887700066365341925867052133948674355067837907255957076179513983345")
    );

    // wevm/ox src/core/_test/Authorization.test.ts, from > options: signature.
    let request = AuthorizationRequest::from_json(
        br#"{"chainId":"0x1","address":"0xbe95c3f554e9fc85ec51be69a3d807a0d55bcf2c","nonce":"0x28"}"#,
    )
    .unwrap();
    let signed = sign(ANVIL_0, Payload::Authorization(request));
    assert_eq!(
        signed.signing_hash,
        B256::from(hex!(
            "5919da563810a99caf657d42bd10905adbd28b3b89b8a4577efa471e5e4b3914"
        ))
    );
    assert!(signed.signature.y_parity);
    assert_eq!(
        signed.signature.r,
        dec("74666311849961653398815470296948700361392062371901161364182304079113687952627")
    );
    assert_eq!(
        signed.signature.s,
        dec("24912990662134805731506157958890440652926649106845286943280690489391727501383")
    );
}

#[test]
fn personal_sign_eth_account() {
    // ethereum/eth-account eth_account/account.py, `sign_message` docstring ("I♥SF").
    let signed = sign(
        hex!("b25c7db31feed9122727bf0939dc769a96564b2de4c4726d035b36ecf1e5b364"),
        Payload::Message(PersonalMessage::Utf8("I♥SF".into())),
    );
    assert_eq!(
        signed.signing_hash,
        B256::from(hex!(
            "1476abb745d423bf09273f1afd887d951181d25adc66c4834a70491911b7f750"
        ))
    );
    assert_eq!(
        hex::encode(signed.signature.to_rsv_bytes()),
        "e6ca9bba58c88611fad66a6ce8f996908195593807c4b38bd528d2cff09d4eb33e5bfbbf4d3e39b1a2fd816a\
         7680c19ebebaf3a141b239934ad43cb33fcec8ce1c"
    );

    // tests/core/test_accounts.py, test_eth_account_sign, case `web3js_hex_str_example`.
    let signed = sign(
        hex!("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"),
        Payload::Message(PersonalMessage::Utf8("Some data".into())),
    );
    assert_eq!(
        signed.signing_hash,
        B256::from(hex!(
            "1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655"
        ))
    );
    assert_eq!(
        hex::encode(signed.signature.to_rsv_bytes()),
        "b91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd6007e74cd82e037b800186\
         422fc2da167c747ef045e5d18a5f5d4300f8e1a0291c"
    );
}
