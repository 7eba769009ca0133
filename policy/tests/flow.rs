#![cfg(test)]
//! Flow transactions in policies: the `flowTransaction` kind, which allow rules must name, and
//! the `flow` condition (payers, authorizers, scripts, roles), each allowed, refused and at the
//! boundary. Transactions are parsed by `nitro_signer_flow`, as in the enclave.

use std::collections::BTreeSet;

use nitro_signer_eth::{TxOptions, UnsignedTransaction};
use nitro_signer_flow::{FlowTransaction, Role, Signer};
use nitro_signer_policy::{Decision, Facts, Policy, eval::Denial};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PAYER: &str = "0xf8d6e0586b0a20c7";
const OTHER: &str = "0x01cf0e2f2f715450";
const THIRD: &str = "0x179b6b1cb6755e31";
const SCRIPT: &str = "transaction { prepare(acct: &Account) {} }";
const NOW: u64 = 1_800_000_000;

fn script_hash(script: &str) -> String {
    format!(
        "0x{}",
        alloy_primitives::hex::encode(Sha256::digest(script))
    )
}

fn policy(rules: Value) -> Policy {
    Policy::from_json(json!({"version": 1, "rules": rules}).to_string().as_bytes()).unwrap()
}

/// A transaction proposed by `OTHER`, paid by `payer`, with `script` and `authorizers`.
fn flow_tx(script: &str, payer: &str, authorizers: &[&str]) -> FlowTransaction {
    FlowTransaction::from_json(
        json!({
            "script": script,
            "arguments": [],
            "referenceBlockId": format!("0x{}", "ab".repeat(32)),
            "gasLimit": 9999,
            "proposalKey": {"address": OTHER, "keyIndex": 0, "sequenceNumber": 7},
            "payer": payer,
            "authorizers": authorizers,
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

fn allowed(policy: &Policy, facts: &Facts<'_>) -> bool {
    match policy.evaluate(facts, NOW) {
        Decision::Allowed(candidates) => candidates.check(&BTreeSet::new()).is_ok(),
        Decision::Denied(_) => false,
    }
}

/// The signer a role's request names: the payer's key 0, the proposal key, the first
/// authorizer's key 0.
fn signer(tx: &FlowTransaction, role: Role) -> Signer {
    match role {
        Role::Payer => Signer {
            address: tx.payer,
            key_index: 0,
        },
        Role::Proposer => Signer {
            address: tx.proposal_key.address,
            key_index: tx.proposal_key.key_index,
        },
        Role::Authorizer => Signer {
            address: tx.authorizers.first().copied().unwrap_or(tx.payer),
            key_index: 0,
        },
    }
}

fn flow_allowed(policy: &Policy, tx: &FlowTransaction, role: Role) -> bool {
    allowed(
        policy,
        &Facts::flow_transaction(tx, role, &signer(tx, role), Some("alice")),
    )
}

fn eth_tx() -> UnsignedTransaction {
    UnsignedTransaction::from_json(
        json!({"chainId": "0x1", "nonce": "0x0", "gas": "0x5208", "maxFeePerGas": "0x2",
               "maxPriorityFeePerGas": "0x1", "to": "0x1111111111111111111111111111111111111111",
               "value": "0x0"})
        .to_string()
        .as_bytes(),
        TxOptions {
            allow_pre_eip155: false,
        },
    )
    .unwrap()
}

#[test]
fn flow_transactions_are_allowed_only_by_rules_that_name_the_kind() {
    let tx = flow_tx(SCRIPT, PAYER, &[PAYER]);
    // A policy written before Flow allows no Flow signature.
    let any = policy(json!([{"effect": "allow", "when": {}}]));
    assert!(!flow_allowed(&any, &tx, Role::Payer));
    let users = policy(json!([{"effect": "allow", "when": {"users": ["alice"]}}]));
    assert!(!flow_allowed(&users, &tx, Role::Payer));
    let eth_kinds = policy(json!([{"effect": "allow",
        "when": {"kinds": ["transaction", "message", "typedData", "authorization", "digest"]}}]));
    assert!(!flow_allowed(&eth_kinds, &tx, Role::Payer));
    // A `flow` condition alone does not opt in either.
    let flow_only = policy(json!([{"effect": "allow", "when": {"flow": {"payers": [PAYER]}}}]));
    assert!(!flow_allowed(&flow_only, &tx, Role::Payer));
    // Named, it allows every role; and it allows only Flow.
    let flow = policy(json!([{"effect": "allow", "when": {"kinds": ["flowTransaction"]}}]));
    for role in [Role::Proposer, Role::Authorizer, Role::Payer] {
        assert!(flow_allowed(&flow, &tx, role));
    }
    assert!(!allowed(&flow, &Facts::message(None)));
    assert!(!allowed(&flow, &Facts::transaction(&eth_tx(), None)));
    // `users` applies to Flow requests as to any request with a user id.
    let alice = policy(json!([{"effect": "allow",
        "when": {"kinds": ["flowTransaction"], "users": ["alice"]}}]));
    assert!(flow_allowed(&alice, &tx, Role::Payer));
    assert!(!allowed(
        &alice,
        &Facts::flow_transaction(&tx, Role::Payer, &signer(&tx, Role::Payer), Some("bob"))
    ));
    assert!(!allowed(
        &alice,
        &Facts::flow_transaction(&tx, Role::Payer, &signer(&tx, Role::Payer), None)
    ));
}

#[test]
fn deny_rules_without_kinds_refuse_flow_transactions() {
    let tx = flow_tx(SCRIPT, PAYER, &[]);
    let p = policy(json!([
        {"effect": "deny", "when": {"users": ["alice"]}},
        {"effect": "allow", "when": {"kinds": ["flowTransaction"]}}
    ]));
    assert_eq!(
        p.evaluate(
            &Facts::flow_transaction(&tx, Role::Payer, &signer(&tx, Role::Payer), Some("alice")),
            NOW
        ),
        Decision::Denied(Denial::Rule(0))
    );
    assert!(allowed(
        &p,
        &Facts::flow_transaction(&tx, Role::Payer, &signer(&tx, Role::Payer), Some("bob"))
    ));
    let everything = policy(json!([
        {"effect": "deny", "when": {}},
        {"effect": "allow", "when": {"kinds": ["flowTransaction"]}}
    ]));
    assert!(!flow_allowed(&everything, &tx, Role::Payer));
    // A deny rule with other kinds leaves Flow alone.
    let digests = policy(json!([
        {"effect": "deny", "when": {"kinds": ["digest", "transaction"]}},
        {"effect": "allow", "when": {"kinds": ["flowTransaction"]}}
    ]));
    assert!(flow_allowed(&digests, &tx, Role::Payer));
}

#[test]
fn payers() {
    let p = policy(json!([{"effect": "allow",
        "when": {"kinds": ["flowTransaction"], "flow": {"payers": [PAYER, THIRD]}}}]));
    assert!(flow_allowed(&p, &flow_tx(SCRIPT, PAYER, &[]), Role::Payer));
    assert!(flow_allowed(
        &p,
        &flow_tx(SCRIPT, THIRD, &[]),
        Role::Proposer
    ));
    assert!(!flow_allowed(&p, &flow_tx(SCRIPT, OTHER, &[]), Role::Payer));
    // Addresses compare as bytes: the case of the policy's digits does not matter.
    let upper = policy(json!([{"effect": "allow",
        "when": {"kinds": ["flowTransaction"], "flow": {"payers": ["0xF8D6E0586B0A20C7"]}}}]));
    assert!(flow_allowed(
        &upper,
        &flow_tx(SCRIPT, PAYER, &[]),
        Role::Payer
    ));
    // A deny rule on payers.
    let deny = policy(json!([
        {"effect": "deny", "when": {"flow": {"payers": [OTHER]}}},
        {"effect": "allow", "when": {"kinds": ["flowTransaction"]}}
    ]));
    assert!(!flow_allowed(
        &deny,
        &flow_tx(SCRIPT, OTHER, &[]),
        Role::Payer
    ));
    assert!(flow_allowed(
        &deny,
        &flow_tx(SCRIPT, PAYER, &[]),
        Role::Payer
    ));
}

#[test]
fn authorizers_every_one_for_allow_any_one_for_deny() {
    let p = policy(json!([{"effect": "allow",
        "when": {"kinds": ["flowTransaction"], "flow": {"authorizers": [PAYER, OTHER]}}}]));
    // No authorizers: nothing outside the list.
    assert!(flow_allowed(&p, &flow_tx(SCRIPT, PAYER, &[]), Role::Payer));
    assert!(flow_allowed(
        &p,
        &flow_tx(SCRIPT, PAYER, &[PAYER]),
        Role::Payer
    ));
    assert!(flow_allowed(
        &p,
        &flow_tx(SCRIPT, PAYER, &[OTHER, PAYER]),
        Role::Authorizer
    ));
    // One authorizer outside the list is enough to refuse.
    assert!(!flow_allowed(
        &p,
        &flow_tx(SCRIPT, PAYER, &[PAYER, THIRD]),
        Role::Payer
    ));
    assert!(!flow_allowed(
        &p,
        &flow_tx(SCRIPT, PAYER, &[THIRD]),
        Role::Payer
    ));

    let deny = policy(json!([
        {"effect": "deny", "when": {"flow": {"authorizers": [THIRD]}}},
        {"effect": "allow", "when": {"kinds": ["flowTransaction"]}}
    ]));
    assert!(!flow_allowed(
        &deny,
        &flow_tx(SCRIPT, PAYER, &[PAYER, THIRD]),
        Role::Payer
    ));
    assert!(!flow_allowed(
        &deny,
        &flow_tx(SCRIPT, PAYER, &[THIRD]),
        Role::Payer
    ));
    assert!(flow_allowed(
        &deny,
        &flow_tx(SCRIPT, PAYER, &[PAYER, OTHER]),
        Role::Payer
    ));
    // A deny rule on authorizers does not match a transaction without any.
    assert!(flow_allowed(
        &deny,
        &flow_tx(SCRIPT, PAYER, &[]),
        Role::Payer
    ));
}

#[test]
fn scripts_by_sha256_of_their_utf8_bytes() {
    let other_script = "transaction { prepare(acct: &Account) { log(\"é\") } }";
    let p = policy(json!([{"effect": "allow",
        "when": {"kinds": ["flowTransaction"], "flow": {"scripts": [script_hash(SCRIPT), script_hash(other_script)]}}}]));
    assert!(flow_allowed(&p, &flow_tx(SCRIPT, PAYER, &[]), Role::Payer));
    assert!(flow_allowed(
        &p,
        &flow_tx(other_script, PAYER, &[]),
        Role::Payer
    ));
    // One byte more (a trailing space) is another script.
    assert!(!flow_allowed(
        &p,
        &flow_tx(&format!("{SCRIPT} "), PAYER, &[]),
        Role::Payer
    ));
    assert!(!flow_allowed(&p, &flow_tx("", PAYER, &[]), Role::Payer));
    // SHA-256 of the UTF-8 bytes (FIPS 180-2's "abc" vector).
    assert_eq!(
        script_hash("abc"),
        "0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // A deny rule on scripts.
    let deny = policy(json!([
        {"effect": "deny", "when": {"flow": {"scripts": [script_hash(SCRIPT)]}}},
        {"effect": "allow", "when": {"kinds": ["flowTransaction"]}}
    ]));
    assert!(!flow_allowed(
        &deny,
        &flow_tx(SCRIPT, PAYER, &[]),
        Role::Payer
    ));
    assert!(flow_allowed(
        &deny,
        &flow_tx(other_script, PAYER, &[]),
        Role::Payer
    ));
}

#[test]
fn roles() {
    let tx = flow_tx(SCRIPT, PAYER, &[PAYER]);
    let p = policy(json!([{"effect": "allow",
        "when": {"kinds": ["flowTransaction"], "flow": {"roles": ["payer", "authorizer"]}}}]));
    assert!(flow_allowed(&p, &tx, Role::Payer));
    assert!(flow_allowed(&p, &tx, Role::Authorizer));
    assert!(!flow_allowed(&p, &tx, Role::Proposer));
    let deny = policy(json!([
        {"effect": "deny", "when": {"flow": {"roles": ["proposer"]}}},
        {"effect": "allow", "when": {"kinds": ["flowTransaction"]}}
    ]));
    assert!(!flow_allowed(&deny, &tx, Role::Proposer));
    assert!(flow_allowed(&deny, &tx, Role::Payer));
}

/// A fee sponsor's rule (sign as payer only) must not sign a transaction its account also
/// authorizes: Flow counts the payer's envelope signature as that account's authorization too,
/// which would give the script the sponsor's account.
#[test]
fn a_signature_counts_for_every_role_its_account_holds() {
    let sponsor = policy(
        json!([{"effect": "allow", "when": {"kinds": ["flowTransaction"],
        "flow": {"payers": [PAYER], "roles": ["payer"]}}}]),
    );
    assert!(flow_allowed(
        &sponsor,
        &flow_tx(SCRIPT, PAYER, &[OTHER]),
        Role::Payer
    ));
    assert!(!flow_allowed(
        &sponsor,
        &flow_tx(SCRIPT, PAYER, &[PAYER]),
        Role::Payer
    ));
    assert!(!flow_allowed(
        &sponsor,
        &flow_tx(SCRIPT, PAYER, &[OTHER, PAYER]),
        Role::Payer
    ));
    // A deny rule on authorizing catches the payer that authorizes too.
    let deny = policy(json!([
        {"effect": "deny", "when": {"flow": {"roles": ["authorizer"]}}},
        {"effect": "allow", "when": {"kinds": ["flowTransaction"]}}
    ]));
    assert!(flow_allowed(
        &deny,
        &flow_tx(SCRIPT, PAYER, &[OTHER]),
        Role::Payer
    ));
    assert!(!flow_allowed(
        &deny,
        &flow_tx(SCRIPT, PAYER, &[PAYER]),
        Role::Payer
    ));
    // The proposal key's signature is the proposer's, whatever role it is asked for.
    let tx = flow_tx(SCRIPT, OTHER, &[]);
    let payer_only = policy(
        json!([{"effect": "allow", "when": {"kinds": ["flowTransaction"],
        "flow": {"roles": ["payer"]}}}]),
    );
    let proposal_key = Signer {
        address: tx.proposal_key.address,
        key_index: tx.proposal_key.key_index,
    };
    assert!(!allowed(
        &payer_only,
        &Facts::flow_transaction(&tx, Role::Payer, &proposal_key, None)
    ));
    let another_key = Signer {
        key_index: 1,
        ..proposal_key
    };
    assert!(allowed(
        &payer_only,
        &Facts::flow_transaction(&tx, Role::Payer, &another_key, None)
    ));
}

#[test]
fn every_member_of_flow_must_hold() {
    let p = policy(
        json!([{"effect": "allow", "when": {"kinds": ["flowTransaction"], "flow": {
        "payers": [PAYER], "authorizers": [PAYER], "scripts": [script_hash(SCRIPT)], "roles": ["payer", "authorizer"]}}}]),
    );
    assert!(flow_allowed(
        &p,
        &flow_tx(SCRIPT, PAYER, &[PAYER]),
        Role::Payer
    ));
    assert!(!flow_allowed(
        &p,
        &flow_tx(SCRIPT, OTHER, &[PAYER]),
        Role::Payer
    ));
    assert!(!flow_allowed(
        &p,
        &flow_tx(SCRIPT, PAYER, &[OTHER]),
        Role::Payer
    ));
    assert!(!flow_allowed(
        &p,
        &flow_tx("x", PAYER, &[PAYER]),
        Role::Payer
    ));
    assert!(!flow_allowed(
        &p,
        &flow_tx(SCRIPT, PAYER, &[PAYER]),
        Role::Proposer
    ));
}

#[test]
fn ethereum_conditions_never_hold_for_flow_and_flow_never_for_ethereum() {
    let tx = flow_tx(SCRIPT, PAYER, &[PAYER]);
    let a = "0x1111111111111111111111111111111111111111";
    for condition in [
        json!({"chainIds": ["0x1"]}),
        json!({"to": [a]}),
        json!({"valueMax": "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"}),
        json!({"feeMax": "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"}),
        json!({"contractCreation": false}),
        json!({"contractCreation": true}),
        json!({"selectors": [{"selector": "0xa9059cbb"}]}),
        json!({"erc20": {"tokens": [a], "transfer": {}}}),
        json!({"delegates": [a]}),
        json!({"typedData": {"primaryTypes": ["Mail"]}}),
    ] {
        let mut when = condition.clone();
        when["kinds"] = json!(["flowTransaction"]);
        let allow = policy(json!([{"effect": "allow", "when": when}]));
        for role in [Role::Proposer, Role::Authorizer, Role::Payer] {
            assert!(!flow_allowed(&allow, &tx, role), "{condition}");
        }
        // Nor does a deny rule with it refuse Flow.
        let deny = policy(json!([
            {"effect": "deny", "when": condition},
            {"effect": "allow", "when": {"kinds": ["flowTransaction"]}}
        ]));
        assert!(flow_allowed(&deny, &tx, Role::Payer), "{condition}");
    }
    // `flow` never holds for an Ethereum request, in allow or deny rules.
    let eth = eth_tx();
    for member in [
        json!({"payers": [PAYER]}),
        json!({"authorizers": [PAYER]}),
        json!({"scripts": [script_hash(SCRIPT)]}),
        json!({"roles": ["payer", "proposer", "authorizer"]}),
    ] {
        let allow = policy(
            json!([{"effect": "allow", "when": {"kinds": ["transaction", "message", "digest"], "flow": member}}]),
        );
        assert!(
            !allowed(&allow, &Facts::transaction(&eth, None)),
            "{member}"
        );
        assert!(!allowed(&allow, &Facts::message(None)), "{member}");
        assert!(!allowed(&allow, &Facts::digest(None)), "{member}");
        let deny = policy(json!([
            {"effect": "deny", "when": {"flow": member}},
            {"effect": "allow", "when": {}}
        ]));
        assert!(allowed(&deny, &Facts::transaction(&eth, None)), "{member}");
        assert!(allowed(&deny, &Facts::message(None)), "{member}");
    }
}

fn error(when: Value) -> String {
    Policy::from_json(
        json!({"version": 1, "rules": [{"effect": "allow", "when": when}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn the_flow_condition_is_parsed_strictly_with_errors_that_name_the_path() {
    let at = |when: Value, path: &str| {
        let message = error(when);
        assert!(message.starts_with(&format!("{path}: ")), "{message}");
    };
    let hash = script_hash(SCRIPT);
    at(json!({"flow": {}}), "rules[0].when.flow");
    at(
        json!({"flow": {"payer": [PAYER]}}),
        "rules[0].when.flow.payer",
    );
    at(
        json!({"flow": {"scripts": []}}),
        "rules[0].when.flow.scripts",
    );
    at(
        json!({"flow": {"scripts": ["0x1234"]}}),
        "rules[0].when.flow.scripts[0]",
    );
    at(
        json!({"flow": {"scripts": [hash, hash.to_uppercase().replace("0X", "0x")]}}),
        "rules[0].when.flow.scripts",
    );
    at(
        json!({"flow": {"scripts": [hash.trim_start_matches("0x")]}}),
        "rules[0].when.flow.scripts[0]",
    );
    at(
        json!({"flow": {"payers": [PAYER, "0x01"]}}),
        "rules[0].when.flow.payers[1]",
    );
    // Flow addresses are 8 bytes; an Ethereum address is not one.
    at(
        json!({"flow": {"payers": ["0x1111111111111111111111111111111111111111"]}}),
        "rules[0].when.flow.payers[0]",
    );
    // The `0x` is required in a policy, and the zero address is no account.
    at(
        json!({"flow": {"payers": [PAYER.trim_start_matches("0x")]}}),
        "rules[0].when.flow.payers[0]",
    );
    at(
        json!({"flow": {"authorizers": ["0x0000000000000000"]}}),
        "rules[0].when.flow.authorizers[0]",
    );
    at(
        json!({"flow": {"authorizers": [PAYER, "0xF8D6E0586B0A20C7"]}}),
        "rules[0].when.flow.authorizers",
    );
    at(
        json!({"flow": {"authorizers": []}}),
        "rules[0].when.flow.authorizers",
    );
    at(
        json!({"flow": {"roles": ["signer"]}}),
        "rules[0].when.flow.roles[0]",
    );
    at(
        json!({"flow": {"roles": ["payer", "payer"]}}),
        "rules[0].when.flow.roles",
    );
    at(json!({"flow": {"roles": []}}), "rules[0].when.flow.roles");
    at(json!({"kinds": ["flow"]}), "rules[0].when.kinds[0]");
    let many: Vec<String> = (1..=257u64).map(|i| format!("0x{i:016x}")).collect();
    at(
        json!({"flow": {"payers": many}}),
        "rules[0].when.flow.payers",
    );
    let most: Vec<String> = (1..=256u64).map(|i| format!("0x{i:016x}")).collect();
    Policy::from_json(
        json!({"version": 1, "rules": [{"effect": "allow", "when": {"kinds": ["flowTransaction"], "flow": {"payers": most}}}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
}
