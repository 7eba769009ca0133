#![cfg(test)]
//! For random policies mixing Flow and Ethereum conditions and random Flow and Ethereum
//! requests, the evaluator allows exactly what a small model of `docs/policy.md` ("Semantics"
//! and the `kinds`, `users`, `chainIds` and `flow` rows of "Conditions", read literally) allows.
//! The model reads its own description of the rules and requests; the evaluator reads the
//! policy's JSON and the transaction as `nitro_signer_flow` parses it.

use nitro_signer_eth::{TxOptions, UnsignedTransaction};
use nitro_signer_flow::{FlowTransaction, Role, Signer};
use nitro_signer_policy::{Decision, Facts, Policy};
use proptest::{prelude::*, sample::subsequence};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const FLOW_ADDRESSES: [&str; 3] = [
    "0x0000000000000001",
    "0xf8d6e0586b0a20c7",
    "0x01cf0e2f2f715450",
];
const SCRIPTS: [&str; 3] = [
    "transaction {}",
    "transaction { prepare(acct: &Account) {} }",
    "transaction { execute { log(\"hé\") } }",
];
const ROLES: [&str; 3] = ["proposer", "authorizer", "payer"];
const KINDS: [&str; 4] = ["transaction", "message", "digest", "flowTransaction"];
const USERS: [&str; 2] = ["alice", "bob"];
const CHAINS: [u64; 2] = [1, 5];

#[derive(Debug, Clone)]
struct FlowCondition {
    payers: Option<Vec<&'static str>>,
    authorizers: Option<Vec<&'static str>>,
    scripts: Option<Vec<&'static str>>,
    roles: Option<Vec<&'static str>>,
}

#[derive(Debug, Clone)]
struct ModelRule {
    deny: bool,
    kinds: Option<Vec<&'static str>>,
    users: Option<Vec<&'static str>>,
    chain_ids: Option<Vec<u64>>,
    flow: Option<FlowCondition>,
}

#[derive(Debug, Clone)]
enum ModelRequest {
    Flow {
        payer: &'static str,
        authorizers: Vec<&'static str>,
        script: &'static str,
        role: &'static str,
        /// The signing account (key 0); the proposal key is `FLOW_ADDRESSES[0]`'s key 0.
        signer: &'static str,
    },
    /// An Ethereum transaction on chain 1.
    Transaction,
    Message,
    Digest,
}

impl ModelRequest {
    fn kind(&self) -> &'static str {
        match self {
            Self::Flow { .. } => "flowTransaction",
            Self::Transaction => "transaction",
            Self::Message => "message",
            Self::Digest => "digest",
        }
    }
}

/// `docs/policy.md`, read literally.
fn model_allows(rules: &[ModelRule], request: &ModelRequest, user: Option<&str>) -> bool {
    let matches = |rule: &ModelRule| {
        let kind = request.kind();
        let kind_ok = match &rule.kinds {
            Some(kinds) => kinds.contains(&kind),
            None => rule.deny || (kind != "digest" && kind != "flowTransaction"),
        };
        let users_ok = rule
            .users
            .as_ref()
            .is_none_or(|users| user.is_some_and(|u| users.contains(&u)));
        let chain = match request {
            ModelRequest::Transaction => Some(1),
            _ => None,
        };
        let chain_ok = rule
            .chain_ids
            .as_ref()
            .is_none_or(|ids| chain.is_some_and(|c| ids.contains(&c)));
        let flow_ok = match (&rule.flow, request) {
            (None, _) => true,
            (
                Some(f),
                ModelRequest::Flow {
                    payer,
                    authorizers,
                    script,
                    role,
                    signer,
                },
            ) => {
                // docs/policy.md: the roles a signature counts for.
                let mut roles = vec![*role];
                if authorizers.contains(signer) {
                    roles.push("authorizer");
                }
                if *signer == FLOW_ADDRESSES[0] {
                    roles.push("proposer");
                }
                f.payers.as_ref().is_none_or(|p| p.contains(payer))
                    && f.authorizers.as_ref().is_none_or(|listed| {
                        if rule.deny {
                            authorizers.iter().any(|a| listed.contains(a))
                        } else {
                            authorizers.iter().all(|a| listed.contains(a))
                        }
                    })
                    && f.scripts.as_ref().is_none_or(|s| s.contains(script))
                    && f.roles.as_ref().is_none_or(|listed| {
                        if rule.deny {
                            roles.iter().any(|r| listed.contains(r))
                        } else {
                            roles.iter().all(|r| listed.contains(r))
                        }
                    })
            }
            (Some(_), _) => false,
        };
        kind_ok && users_ok && chain_ok && flow_ok
    };
    !rules.iter().any(|rule| rule.deny && matches(rule))
        && rules.iter().any(|rule| !rule.deny && matches(rule))
}

fn rule_json(rule: &ModelRule) -> Value {
    let mut when = serde_json::Map::new();
    if let Some(kinds) = &rule.kinds {
        when.insert("kinds".into(), json!(kinds));
    }
    if let Some(users) = &rule.users {
        when.insert("users".into(), json!(users));
    }
    if let Some(ids) = &rule.chain_ids {
        let ids: Vec<String> = ids.iter().map(|c| format!("0x{c:x}")).collect();
        when.insert("chainIds".into(), json!(ids));
    }
    if let Some(f) = &rule.flow {
        let mut flow = serde_json::Map::new();
        if let Some(p) = &f.payers {
            flow.insert("payers".into(), json!(p));
        }
        if let Some(a) = &f.authorizers {
            flow.insert("authorizers".into(), json!(a));
        }
        if let Some(s) = &f.scripts {
            let hashes: Vec<String> = s
                .iter()
                .map(|s| format!("0x{}", alloy_primitives::hex::encode(Sha256::digest(s))))
                .collect();
            flow.insert("scripts".into(), json!(hashes));
        }
        if let Some(r) = &f.roles {
            flow.insert("roles".into(), json!(r));
        }
        when.insert("flow".into(), Value::Object(flow));
    }
    json!({"effect": if rule.deny { "deny" } else { "allow" }, "when": when})
}

fn some_of<T: Clone + std::fmt::Debug + 'static>(
    pool: &'static [T],
) -> impl Strategy<Value = Option<Vec<T>>> {
    prop::option::weighted(0.4, subsequence(pool, 1..=pool.len()))
}

fn flow_condition() -> impl Strategy<Value = Option<FlowCondition>> {
    prop::option::weighted(
        0.6,
        (
            some_of(&FLOW_ADDRESSES),
            some_of(&FLOW_ADDRESSES),
            some_of(&SCRIPTS),
            some_of(&ROLES),
        )
            .prop_map(|(payers, authorizers, scripts, roles)| FlowCondition {
                payers,
                authorizers,
                scripts,
                roles,
            })
            .prop_filter("at least one member", |f| {
                f.payers.is_some()
                    || f.authorizers.is_some()
                    || f.scripts.is_some()
                    || f.roles.is_some()
            }),
    )
}

fn rule() -> impl Strategy<Value = ModelRule> {
    (
        any::<bool>(),
        some_of(&KINDS),
        prop::option::weighted(0.2, subsequence(&USERS[..], 1..=2)),
        prop::option::weighted(0.2, subsequence(&CHAINS[..], 1..=2)),
        flow_condition(),
    )
        .prop_map(|(deny, kinds, users, chain_ids, flow)| ModelRule {
            deny,
            kinds,
            users,
            chain_ids,
            flow,
        })
}

fn request() -> impl Strategy<Value = ModelRequest> {
    prop_oneof![
        6 => (
            prop::sample::select(&FLOW_ADDRESSES[..]),
            subsequence(&FLOW_ADDRESSES[..], 0..=3).prop_shuffle(),
            prop::sample::select(&SCRIPTS[..]),
            prop::sample::select(&ROLES[..]),
            prop::sample::select(&FLOW_ADDRESSES[..]),
        )
            .prop_map(|(payer, authorizers, script, role, signer)| ModelRequest::Flow {
                payer,
                authorizers,
                script,
                role,
                signer,
            }),
        1 => Just(ModelRequest::Transaction),
        1 => Just(ModelRequest::Message),
        1 => Just(ModelRequest::Digest),
    ]
}

fn role(name: &str) -> Role {
    serde_json::from_value(json!(name)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn the_evaluator_agrees_with_the_flow_model(
        rules in prop::collection::vec(rule(), 1..6),
        request in request(),
        user in prop::option::weighted(0.8, prop::sample::select(&USERS[..])),
    ) {
        prop_assume!(rules.iter().any(|rule| !rule.deny));
        let document = json!({"version": 1, "rules": rules.iter().map(rule_json).collect::<Vec<_>>()});
        let policy = Policy::from_json(document.to_string().as_bytes()).unwrap();
        let flow;
        let eth;
        let facts = match &request {
            ModelRequest::Flow { payer, authorizers, script, role: r, signer } => {
                flow = FlowTransaction::from_json(json!({
                    "script": script, "arguments": [],
                    "referenceBlockId": format!("0x{}", "cd".repeat(32)), "gasLimit": 100,
                    "proposalKey": {"address": FLOW_ADDRESSES[0], "keyIndex": 0, "sequenceNumber": 0},
                    "payer": payer, "authorizers": authorizers,
                }).to_string().as_bytes()).unwrap();
                let signer = Signer { address: signer.parse().unwrap(), key_index: 0 };
                Facts::flow_transaction(&flow, role(r), &signer, user)
            }
            ModelRequest::Transaction => {
                eth = UnsignedTransaction::from_json(
                    json!({"chainId": "0x1", "nonce": "0x0", "gas": "0x5208", "maxFeePerGas": "0x2",
                           "maxPriorityFeePerGas": "0x1",
                           "to": "0x1111111111111111111111111111111111111111", "value": "0x0"})
                        .to_string().as_bytes(),
                    TxOptions { allow_pre_eip155: false },
                ).unwrap();
                Facts::transaction(&eth, user)
            }
            ModelRequest::Message => Facts::message(user),
            ModelRequest::Digest => Facts::digest(user),
        };
        let evaluated = matches!(policy.evaluate(&facts, 0), Decision::Allowed(_));
        prop_assert_eq!(
            evaluated,
            model_allows(&rules, &request, user),
            "policy {} request {:?} user {:?}", document, request, user
        );
    }
}
