//! `nitro_signer_client::HttpClient` against the real proxy and the enclave stand-in: every
//! method, typed answers and typed errors.
#![cfg(test)]

mod support;

use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use nitro_signer_client::{
    HttpClient, HttpError,
    api::{
        AddressRequest, Approval, BatchResult, ErrorCode, GenerateKeyRequest, KeyBlob, Message,
        SignAuthorizationRequest, SignDigestRequest, SignMessageRequest, SignTransactionRequest,
        SignTransactionsRequest, SignTypedDataRequest, UpdatePolicyRequest,
    },
};
use nitro_signer_common::UserId;
use serde_json::value::RawValue;

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

fn key() -> KeyBlob {
    KeyBlob::new(b"k".to_vec())
}

fn user() -> Option<UserId> {
    Some(UserId::new("alice").unwrap())
}

#[tokio::test]
async fn every_method_against_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (address, mut enclave, _stop) = support::start_proxy(&dir, |_| {}).await;
    let client = HttpClient::new(format!("http://{address}/")).unwrap();

    assert_eq!(client.health().await.unwrap().status, "ok");
    assert_eq!(client.ready().await.unwrap().kms_calls, 3);
    assert!(
        client
            .metrics()
            .await
            .unwrap()
            .contains("nitro_signer_enclave_up 1")
    );

    let created = client.generate_key(Some("t".into())).await.unwrap();
    assert_eq!(created.key_blob.as_bytes(), b"new-blob");
    assert_eq!(created.key_id, B256::repeat_byte(0x1d));
    assert_eq!(created.policy_hash, None);
    let with_policy = client
        .generate_key_with(&GenerateKeyRequest {
            label: None,
            policy: Some(raw(r#"{"version": 1}"#)),
            nonce: None,
        })
        .await
        .unwrap();
    assert_eq!(with_policy.policy_hash, Some(B256::repeat_byte(0x9a)));
    assert_eq!(enclave.policies(), [None, Some(r#"{"version": 1}"#.into())]);

    let approval = Approval {
        approver: "ops-1".into(),
        expires_at: 1_767_225_600,
        signature: vec![0xa5; 64],
    };
    let updated = client
        .update_policy(&UpdatePolicyRequest {
            key_blob: key(),
            policy: raw(r#"{"version":1}"#),
            approvals: vec![approval.clone()],
            nonce: None,
        })
        .await
        .unwrap();
    assert_eq!(updated.key_blob.as_bytes(), b"updated-blob");
    assert_eq!(updated.policy_hash, Some(B256::repeat_byte(0x9b)));
    let updates = enclave.policy_updates();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].approvals[0].signature.as_slice(), [0xa5; 64]);

    let address = client
        .address(&AddressRequest {
            key_blob: key(),
            user_id: user(),
        })
        .await
        .unwrap();
    assert_eq!(address.address, Address::repeat_byte(0xab));
    assert_eq!(address.public_key.len(), 65);

    let signed = client
        .sign_transaction(&SignTransactionRequest {
            key_blob: key(),
            user_id: user(),
            transaction: raw(r#"{"gasPrice":"0x1"}"#),
            approvals: vec![approval.clone()],
        })
        .await
        .unwrap();
    assert_eq!(signed.signature.v, Some(37));
    assert_eq!(signed.signature.s, U256::from(2));
    assert!(signed.signature.y_parity);
    assert_eq!(signed.raw, [0x02, 0xc0]);

    let batch = client
        .sign_transactions(&SignTransactionsRequest {
            key_blob: key(),
            user_id: user(),
            transactions: vec![raw("{}"), raw(r#"{"refuse":1}"#)],
            approvals: vec![approval.clone(), approval.clone()],
        })
        .await
        .unwrap();
    assert!(matches!(&batch.results[0], BatchResult::Signed(tx) if tx.signature.v.is_none()));
    assert!(
        matches!(&batch.results[1], BatchResult::Error(e) if e.error.code == ErrorCode::PolicyRefused)
    );

    let message = client
        .sign_message(&SignMessageRequest {
            key_blob: key(),
            user_id: user(),
            message: Message::Utf8("hi".into()),
            approvals: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(message.signature.len(), 65);
    assert_eq!(message.signature[64], 28);
    assert_eq!(message.hash, B256::repeat_byte(0x5a));

    let typed = client
        .sign_typed_data(&SignTypedDataRequest {
            key_blob: key(),
            user_id: None,
            typed_data: raw("{}"),
            approvals: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(typed, message);

    let digest = client
        .sign_digest(&SignDigestRequest {
            key_blob: key(),
            user_id: None,
            digest: B256::repeat_byte(7),
            approvals: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(digest, message);

    let authorization = client
        .sign_authorization(&SignAuthorizationRequest {
            key_blob: key(),
            user_id: user(),
            authorization: raw(r#"{"chainId":"0x1","address":"0x00","nonce":"0x9"}"#),
            approvals: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(authorization.chain_id, U256::from(1));
    assert_eq!(authorization.nonce, 9);
    assert_eq!(authorization.address, Address::repeat_byte(0xad));
    let counts: Vec<usize> = enclave.approvals().iter().map(Vec::len).collect();
    assert_eq!(counts, [1, 2, 0, 0, 0, 0]);
    assert_eq!(enclave.approvals()[1][1].approver, "ops-1");

    let document = client.attestation(&[1, 2]).await.unwrap();
    assert_eq!(document.document, b"doc:\x01\x02");

    let error = client
        .address(&AddressRequest {
            key_blob: KeyBlob::new(b"error:kms_access_denied".to_vec()),
            user_id: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(403));
    assert_eq!(error.api_error().unwrap().code, ErrorCode::KmsAccessDenied);

    enclave.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let error = client.ready().await.unwrap_err();
    assert!(
        matches!(&error, HttpError::Api { status: 503, error } if error.code == ErrorCode::EnclaveUnavailable),
        "{error:?}"
    );

    let nowhere = HttpClient::new("http://127.0.0.1:1").unwrap();
    assert!(matches!(
        nowhere.health().await,
        Err(HttpError::Transport(_))
    ));
}
