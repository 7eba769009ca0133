//! Flow transaction JSON from arbitrary bytes, through validation, the role checks, both
//! signing messages and both hashes; what parses must serialize back to a document that parses
//! to the same transaction, and every role its signer holds must get its message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nitro_signer_flow::{
    FlowTransaction, HashAlgorithm, Role, Signer, TRANSACTION_DOMAIN_TAG, hash,
};

fuzz_target!(|data: &[u8]| {
    let Ok(tx) = FlowTransaction::from_json(data) else {
        return;
    };
    let json = serde_json::to_vec(&tx).expect("serializes");
    let again = FlowTransaction::from_json(&json).expect("own output parses");
    assert_eq!(again, tx);

    let payload = tx.payload_message();
    let envelope = tx
        .envelope_message()
        .expect("validated: every signature has a signer");
    assert!(payload.starts_with(&TRANSACTION_DOMAIN_TAG));
    assert!(envelope.starts_with(&TRANSACTION_DOMAIN_TAG));
    assert!(envelope.len() > payload.len());

    let payer = Signer {
        address: tx.payer,
        key_index: 0,
    };
    assert_eq!(
        tx.signing_message(Role::Payer, &payer).as_ref(),
        Ok(&envelope)
    );
    let proposer = Signer {
        address: tx.proposal_key.address,
        key_index: tx.proposal_key.key_index,
    };
    let unsigned = tx.payload_signatures.as_ref().is_none_or(|s| s.is_empty());
    let message = tx.signing_message(Role::Proposer, &proposer);
    assert_eq!(message.is_ok(), unsigned);
    for a in &tx.authorizers {
        let s = Signer {
            address: *a,
            key_index: 1,
        };
        assert_eq!(tx.signing_message(Role::Authorizer, &s).is_ok(), unsigned);
    }
    if tx.authorizers.contains(&tx.payer) {
        return;
    }
    assert!(tx.signing_message(Role::Authorizer, &payer).is_err());
    let _ = hash(HashAlgorithm::Sha2_256, &payload);
    let _ = hash(HashAlgorithm::Sha3_256, &envelope);
});
