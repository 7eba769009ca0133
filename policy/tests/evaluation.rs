#![cfg(test)]
//! Every condition of the policy format: a request it allows, one it refuses, and the boundary.
//! Payloads are parsed by `nitro_signer_eth`, as in the enclave.

use std::collections::BTreeSet;

use nitro_signer_eth::{
    AuthorizationOptions, AuthorizationRequest, TxOptions, TypedData, UnsignedAuthorization,
    UnsignedTransaction,
};
use nitro_signer_policy::{
    Decision, Facts, Policy,
    eval::{Denial, Erc20Call},
};
use serde_json::{Value, json};

const A: &str = "0x1111111111111111111111111111111111111111";
const B: &str = "0x2222222222222222222222222222222222222222";
const TOKEN: &str = "0x3333333333333333333333333333333333333333";
const NOW: u64 = 1_800_000_000;

fn policy(rules: Value) -> Policy {
    policy_with(json!({"version": 1, "rules": rules}))
}

fn policy_with(document: Value) -> Policy {
    Policy::from_json(document.to_string().as_bytes()).unwrap()
}

fn tx(fields: Value) -> UnsignedTransaction {
    let mut base = json!({
        "chainId": "0x1", "nonce": "0x0", "gas": "0x5208",
        "maxFeePerGas": "0x2", "maxPriorityFeePerGas": "0x1", "to": A, "value": "0x0"
    });
    for (k, v) in fields.as_object().unwrap() {
        if v.is_null() && k != "to" {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    UnsignedTransaction::from_json(
        base.to_string().as_bytes(),
        TxOptions {
            allow_pre_eip155: true,
        },
    )
    .unwrap()
}

fn allowed(policy: &Policy, facts: &Facts<'_>) -> bool {
    match policy.evaluate(facts, NOW) {
        Decision::Allowed(candidates) => candidates.check(&BTreeSet::new()).is_ok(),
        Decision::Denied(_) => false,
    }
}

fn tx_allowed(policy: &Policy, fields: Value) -> bool {
    let tx = tx(fields);
    allowed(policy, &Facts::transaction(&tx, Some("alice")))
}

/// ERC-20 calldata: selector ‖ 32-byte words.
fn calldata(selector: &str, words: &[&str]) -> String {
    let mut out = selector.to_owned();
    for word in words {
        let digits = word.trim_start_matches("0x");
        out.push_str(&format!("{digits:0>64}"));
    }
    out
}

#[test]
fn kinds_and_the_two_kinds_never_matched_implicitly() {
    let any = policy(json!([{"effect": "allow", "when": {}}]));
    assert!(allowed(&any, &Facts::message(None)));
    assert!(tx_allowed(&any, json!({})));
    // A digest must be named.
    assert!(!allowed(&any, &Facts::digest(None)));
    let digests = policy(json!([{"effect": "allow", "when": {"kinds": ["digest"]}}]));
    assert!(allowed(&digests, &Facts::digest(None)));
    assert!(!allowed(&digests, &Facts::message(None)));
    // A delegation must be allowed by `delegates`.
    let auth = authorization("0x1", A);
    assert!(!allowed(&any, &Facts::authorization(&auth, None)));
    let kinds = policy(json!([{"effect": "allow", "when": {"kinds": ["authorization"]}}]));
    assert!(!allowed(&kinds, &Facts::authorization(&auth, None)));
}

fn authorization(chain: &str, address: &str) -> UnsignedAuthorization {
    AuthorizationRequest::from_json(
        json!({"chainId": chain, "address": address, "nonce": "0x0"})
            .to_string()
            .as_bytes(),
    )
    .unwrap()
    .into_unsigned(AuthorizationOptions {
        allow_any_chain: true,
    })
    .unwrap()
}

#[test]
fn delegates_in_authorizations_and_type_4_lists() {
    let p = policy(json!([{"effect": "allow", "when": {"delegates": [A]}}]));
    assert!(allowed(
        &p,
        &Facts::authorization(&authorization("0x1", A), None)
    ));
    assert!(!allowed(
        &p,
        &Facts::authorization(&authorization("0x1", B), None)
    ));
    let entry = |address: &str| {
        json!({"chainId": "0x1", "address": address, "nonce": "0x0",
               "yParity": "0x0", "r": "0x1", "s": "0x1"})
    };
    assert!(tx_allowed(&p, json!({"authorizationList": [entry(A)]})));
    assert!(!tx_allowed(
        &p,
        json!({"authorizationList": [entry(A), entry(B)]})
    ));
    // `delegates` is a property a plain transaction does not have.
    assert!(!tx_allowed(&p, json!({})));
}

#[test]
fn users_chain_ids_and_to() {
    let p = policy(json!([{"effect": "allow",
        "when": {"users": ["alice"], "chainIds": ["0x1", "0x2105"], "to": [A]}}]));
    assert!(tx_allowed(&p, json!({})));
    assert!(tx_allowed(&p, json!({"chainId": "0x2105"})));
    assert!(!tx_allowed(&p, json!({"chainId": "0x5"})));
    assert!(!tx_allowed(&p, json!({"to": B})));
    let t = tx(json!({}));
    assert!(!allowed(&p, &Facts::transaction(&t, Some("bob"))));
    // An imported key has no user id.
    assert!(!allowed(&p, &Facts::transaction(&t, None)));
    // A legacy transaction without chain id has none to match.
    let legacy = tx(json!({"type": "0x0", "chainId": null, "gasPrice": "0x2",
        "maxFeePerGas": null, "maxPriorityFeePerGas": null}));
    assert!(!allowed(&p, &Facts::transaction(&legacy, Some("alice"))));
    // Contract creation has no `to`.
    assert!(!tx_allowed(&p, json!({"to": null, "input": "0x6000"})));
    // `to` is a transaction property: a message never matches it.
    assert!(!allowed(&p, &Facts::message(Some("alice"))));
}

#[test]
fn value_and_fee_caps_include_the_cap() {
    let p = policy(json!([{"effect": "allow",
        "when": {"valueMax": "0x64", "feeMax": "0xa410"}}]));
    // gas 0x5208 (21000) × maxFeePerGas 2 = 42000 = 0xa410.
    assert!(tx_allowed(&p, json!({"value": "0x64"})));
    assert!(!tx_allowed(&p, json!({"value": "0x65"})));
    assert!(!tx_allowed(&p, json!({"maxFeePerGas": "0x3"})));
    assert!(!tx_allowed(&p, json!({"gas": "0x5209"})));
    // Blob gas counts: one blob is 131072 blob gas.
    let blob = json!({"type": "0x3", "maxFeePerBlobGas": "0x1",
        "blobVersionedHashes": ["0x01aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]});
    assert!(!tx_allowed(&p, blob));
    let roomy = policy(json!([{"effect": "allow", "when": {"feeMax": "0x2a410"}}]));
    let blob = json!({"type": "0x3", "maxFeePerBlobGas": "0x1",
        "blobVersionedHashes": ["0x01aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]});
    // 42000 + 131072 = 173072 = 0x2a410.
    assert!(tx_allowed(&roomy, blob));
    // Legacy: gas × gasPrice.
    assert!(tx_allowed(
        &p,
        json!({"type": "0x0", "gasPrice": "0x2", "maxFeePerGas": null, "maxPriorityFeePerGas": null})
    ));
}

#[test]
fn contract_creation() {
    let creations = policy(json!([{"effect": "allow", "when": {"contractCreation": true}}]));
    let calls = policy(json!([{"effect": "allow", "when": {"contractCreation": false}}]));
    let create = json!({"to": null, "input": "0x6000"});
    assert!(tx_allowed(&creations, create.clone()));
    assert!(!tx_allowed(&calls, create));
    assert!(tx_allowed(&calls, json!({})));
    assert!(!tx_allowed(&creations, json!({})));
}

#[test]
fn selectors_optionally_per_contract() {
    let p = policy(json!([{"effect": "allow", "when": {"selectors": [
        {"selector": "0xa9059cbb"},
        {"selector": "0x12345678", "contracts": [A]}
    ]}}]));
    assert!(tx_allowed(&p, json!({"to": B, "input": "0xa9059cbb00"})));
    assert!(tx_allowed(&p, json!({"to": A, "input": "0x12345678"})));
    assert!(!tx_allowed(&p, json!({"to": B, "input": "0x12345678"})));
    assert!(!tx_allowed(&p, json!({"input": "0x123456"})));
    assert!(!tx_allowed(&p, json!({})));
    // Initcode is not a method call.
    assert!(!tx_allowed(
        &p,
        json!({"to": null, "input": "0xa9059cbb00"})
    ));
}

#[test]
fn erc20_calls_decoded_from_calldata() {
    let p = policy(json!([{"effect": "allow", "when": {"erc20": {
        "tokens": [TOKEN],
        "transfer": {"recipients": [A], "amountMax": "0x3e8"},
        "approve": {"spenders": [B], "amountMax": "0x0"}
    }}}]));
    let call = |input: String| json!({"to": TOKEN, "input": input});
    assert!(tx_allowed(&p, call(calldata("0xa9059cbb", &[A, "0x3e8"]))));
    assert!(!tx_allowed(&p, call(calldata("0xa9059cbb", &[A, "0x3e9"]))));
    assert!(!tx_allowed(&p, call(calldata("0xa9059cbb", &[B, "0x1"]))));
    // transferFrom(from, to, amount): the recipient is the second word.
    assert!(tx_allowed(&p, call(calldata("0x23b872dd", &[B, A, "0x1"]))));
    assert!(!tx_allowed(
        &p,
        call(calldata("0x23b872dd", &[A, B, "0x1"]))
    ));
    // approve(spender, 0) only: revoking, not granting.
    assert!(tx_allowed(&p, call(calldata("0x095ea7b3", &[B, "0x0"]))));
    assert!(!tx_allowed(&p, call(calldata("0x095ea7b3", &[B, "0x1"]))));
    assert!(!tx_allowed(&p, call(calldata("0x095ea7b3", &[A, "0x0"]))));
    // Another token, trailing bytes, dirty address bits, other methods: no match.
    assert!(!tx_allowed(
        &p,
        json!({"to": A, "input": calldata("0xa9059cbb", &[A, "0x1"])})
    ));
    assert!(!tx_allowed(
        &p,
        call(calldata("0xa9059cbb", &[A, "0x1"]) + "00")
    ));
    let dirty = format!("0xa9059cbb{:0>64}{:0>64}", format!("ff{}", &A[2..]), "1");
    assert!(!tx_allowed(&p, call(dirty)));
    assert!(!tx_allowed(&p, call(calldata("0x39509351", &[B, "0x0"]))));
    assert_eq!(Erc20Call::decode(&[0xa9, 0x05, 0x9c]), None);
}

fn typed(domain: Value, primary: &str) -> TypedData {
    let mut types = json!({"EIP712Domain": [], "Mail": [{"name": "contents", "type": "string"}]});
    let order = [
        ("name", "string"),
        ("version", "string"),
        ("chainId", "uint256"),
        ("verifyingContract", "address"),
    ];
    for (field, ty) in order {
        if domain.get(field).is_some() {
            types["EIP712Domain"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": field, "type": ty}));
        }
    }
    let message = if primary == "EIP712Domain" {
        json!({})
    } else {
        json!({"contents": "hi"})
    };
    let doc = json!({"types": types, "primaryType": primary, "domain": domain, "message": message});
    TypedData::from_json(doc.to_string().as_bytes()).unwrap()
}

#[test]
fn typed_data_domain_and_primary_type() {
    let p = policy(json!([{"effect": "allow", "when": {"typedData": {
        "chainIds": ["0x1"], "verifyingContracts": [A], "names": ["Mail app"], "primaryTypes": ["Mail"]
    }}}]));
    let full = json!({"name": "Mail app", "chainId": 1, "verifyingContract": A});
    let ok = typed(full.clone(), "Mail");
    assert!(allowed(&p, &Facts::typed_data(&ok, None)));
    let other_chain = typed(
        json!({"name": "Mail app", "chainId": 5, "verifyingContract": A}),
        "Mail",
    );
    assert!(!allowed(&p, &Facts::typed_data(&other_chain, None)));
    let no_contract = typed(json!({"name": "Mail app", "chainId": 1}), "Mail");
    assert!(!allowed(&p, &Facts::typed_data(&no_contract, None)));
    let renamed = typed(
        json!({"name": "Permit2", "chainId": 1, "verifyingContract": A}),
        "Mail",
    );
    assert!(!allowed(&p, &Facts::typed_data(&renamed, None)));
    // A message is not typed data.
    assert!(!allowed(&p, &Facts::message(None)));
    // Refusing one primary type, allowing the rest.
    let no_permits = policy(json!([
        {"effect": "deny", "when": {"typedData": {"primaryTypes": ["Permit", "PermitSingle", "PermitBatch"]}}},
        {"effect": "allow", "when": {"kinds": ["typedData"]}}
    ]));
    assert!(allowed(&no_permits, &Facts::typed_data(&ok, None)));
}

#[test]
fn deny_rules_cover_digests_and_delegations_too() {
    let entry = |address: &str| {
        json!({"chainId": "0x1", "address": address, "nonce": "0x0",
               "yParity": "0x0", "r": "0x1", "s": "0x1"})
    };
    let p = policy(json!([
        {"effect": "deny", "when": {"to": [B]}},
        {"effect": "deny", "when": {"users": ["mallory"]}},
        {"effect": "deny", "when": {"delegates": [B]}},
        {"effect": "allow", "when": {"delegates": [A, B]}},
        {"effect": "allow", "when": {"kinds": ["digest", "transaction"]}}
    ]));
    // A type-4 transaction to B is denied by `to`, though it delegates.
    assert!(!tx_allowed(
        &p,
        json!({"to": B, "authorizationList": [entry(A)]})
    ));
    assert!(tx_allowed(
        &p,
        json!({"to": A, "authorizationList": [entry(A)]})
    ));
    // A list with one denied target is denied.
    assert!(!tx_allowed(
        &p,
        json!({"to": A, "authorizationList": [entry(A), entry(B)]})
    ));
    // A deny rule without `kinds` covers digests.
    assert!(allowed(&p, &Facts::digest(Some("alice"))));
    assert!(!allowed(&p, &Facts::digest(Some("mallory"))));
}

#[test]
fn deny_wins_and_nothing_is_allowed_by_default() {
    let p = policy(json!([
        {"effect": "allow", "when": {}},
        {"effect": "deny", "when": {"to": [B]}}
    ]));
    assert!(tx_allowed(&p, json!({})));
    let t = tx(json!({"to": B}));
    assert_eq!(
        p.evaluate(&Facts::transaction(&t, None), NOW),
        Decision::Denied(Denial::Rule(1))
    );
    let narrow = policy(json!([{"effect": "allow", "when": {"kinds": ["message"]}}]));
    let t = tx(json!({}));
    assert_eq!(
        narrow.evaluate(&Facts::transaction(&t, None), NOW),
        Decision::Denied(Denial::NoRuleAllows)
    );
}

#[test]
fn a_policy_expires_after_not_after() {
    let p = policy_with(json!({"version": 1, "notAfter": NOW,
        "rules": [{"effect": "allow", "when": {}}]}));
    assert!(allowed(&p, &Facts::message(None)));
    assert_eq!(
        p.evaluate(&Facts::message(None), NOW + 1),
        Decision::Denied(Denial::Expired { not_after: NOW })
    );
}

#[test]
fn approvals_any_matching_rule_and_the_nearest_shortfall() {
    // RFC 8032's test vectors 1 to 3.
    let key = |n: usize| {
        [
            "0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "0x3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "0xfc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        ][n - 1]
    };
    let p = policy_with(json!({
        "version": 1,
        "approvers": {
            "ops-1": {"type": "ed25519", "publicKey": key(1)},
            "ops-2": {"type": "ed25519", "publicKey": key(2)},
            "risk": {"type": "ed25519", "publicKey": key(3)}
        },
        "rules": [
            {"effect": "allow", "when": {"valueMax": "0x64"},
             "approvals": {"threshold": 1, "from": ["ops-1", "ops-2"]}},
            {"effect": "allow", "when": {},
             "approvals": {"threshold": 2, "from": ["ops-1", "ops-2", "risk"]}}
        ]
    }));
    let small = tx(json!({"value": "0x1"}));
    let large = tx(json!({"value": "0x65"}));
    let Decision::Allowed(small) = p.evaluate(&Facts::transaction(&small, None), NOW) else {
        panic!("allowed with approvals")
    };
    let Decision::Allowed(large) = p.evaluate(&Facts::transaction(&large, None), NOW) else {
        panic!("allowed with approvals")
    };
    let set = |names: &[&'static str]| names.iter().copied().collect::<BTreeSet<&str>>();
    assert!(!small.needs_no_approval());
    let missing = small.check(&set(&[])).unwrap_err();
    assert_eq!((missing.rule, missing.missing), (Some(0), 1));
    assert!(small.check(&set(&["ops-2"])).is_ok());
    // risk alone meets neither rule; the second rule is one short.
    let missing = small.check(&set(&["risk"])).unwrap_err();
    assert_eq!(missing.missing, 1);
    assert!(large.check(&set(&["ops-1"])).is_err());
    let missing = large.check(&set(&["ops-1"])).unwrap_err();
    assert_eq!(missing.from, vec!["ops-2".to_owned(), "risk".to_owned()]);
    assert!(large.check(&set(&["ops-1", "risk"])).is_ok());
}
