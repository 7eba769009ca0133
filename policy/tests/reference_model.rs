#![cfg(test)]
//! For random policies, requests and sets of approvers, the evaluator allows exactly what a small,
//! obviously correct model of `docs/policy.md` allows (`nitro_signer_tests::policy_model`). The
//! model reads its own description of the policy and the request; the evaluator reads the
//! policy's JSON and the payload as the enclave parses it. `cli/tests/policy_e2e.rs` checks the
//! whole stack against the same model.

use std::collections::BTreeSet;

use nitro_signer_eth::{
    AuthorizationOptions, AuthorizationRequest, TxOptions, UnsignedAuthorization,
    UnsignedTransaction,
};
use nitro_signer_policy::{Decision, Facts, Policy};
use nitro_signer_tests::policy_model::{
    APPROVERS, ModelRequest, USERS, authorization_json, model_allows, policy_json, request, rule,
    transaction_json,
};
use proptest::{prelude::*, sample::subsequence};
use serde_json::json;

/// RFC 8032's test-vector public keys 1 to 3.
const APPROVER_KEYS: [&str; 3] = [
    "0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "0x3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    "0xfc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
];
const NOW: u64 = 1_000;

enum Parsed {
    Transaction(UnsignedTransaction),
    Authorization(UnsignedAuthorization),
    Message,
    Digest,
}

/// The request as JSON, parsed as the enclave parses it.
fn parse(request: &ModelRequest) -> Parsed {
    if let Some(tx) = transaction_json(request) {
        return Parsed::Transaction(
            UnsignedTransaction::from_json(
                tx.to_string().as_bytes(),
                TxOptions {
                    allow_pre_eip155: true,
                },
            )
            .unwrap(),
        );
    }
    if let Some(auth) = authorization_json(request) {
        return Parsed::Authorization(
            AuthorizationRequest::from_json(auth.to_string().as_bytes())
                .unwrap()
                .into_unsigned(AuthorizationOptions {
                    allow_any_chain: true,
                })
                .unwrap(),
        );
    }
    match request {
        ModelRequest::Message => Parsed::Message,
        _ => Parsed::Digest,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn the_evaluator_agrees_with_the_model(
        rules in prop::collection::vec(rule(), 1..6),
        not_after in prop::option::weighted(0.2, prop::sample::select(vec![NOW - 1, NOW])),
        request in request(),
        user in prop::option::weighted(0.8, prop::sample::select(&USERS[..])),
        approved in subsequence(&APPROVERS[..], 0..=3),
    ) {
        prop_assume!(rules.iter().any(|rule| !rule.deny));
        let approvers = APPROVERS
            .iter()
            .zip(APPROVER_KEYS)
            .map(|(name, key)| ((*name).to_owned(), json!({"type": "ed25519", "publicKey": key})))
            .collect();
        let document = policy_json(&rules, approvers, not_after);
        let policy = Policy::from_json(document.to_string().as_bytes()).unwrap();
        let parsed = parse(&request);
        let facts = match &parsed {
            Parsed::Transaction(tx) => Facts::transaction(tx, user),
            Parsed::Authorization(auth) => Facts::authorization(auth, user),
            Parsed::Message => Facts::message(user),
            Parsed::Digest => Facts::digest(user),
        };
        let approved: BTreeSet<&str> = approved.into_iter().collect();
        let evaluated = match policy.evaluate(&facts, NOW) {
            Decision::Denied(_) => false,
            Decision::Allowed(candidates) => candidates.check(&approved).is_ok(),
        };
        prop_assert_eq!(
            evaluated,
            model_allows(&rules, not_after, NOW, &request, user, &approved),
            "policy {} request {:?} approved {:?}", document, request, approved
        );
    }
}
