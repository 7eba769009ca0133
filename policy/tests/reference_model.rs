#![cfg(test)]
//! For random policies, requests and sets of approvers, the evaluator allows exactly what a small,
//! obviously correct model of `docs/policy.md` allows. The model reads its own description of the
//! policy and the request; the evaluator reads the policy's JSON and the payload as the enclave
//! parses it.

use std::collections::BTreeSet;

use nitro_signer_eth::{
    AuthorizationOptions, AuthorizationRequest, TxOptions, UnsignedAuthorization,
    UnsignedTransaction,
};
use nitro_signer_policy::{Decision, Facts, Policy};
use proptest::{prelude::*, sample::subsequence};
use serde_json::{Value, json};

const ADDRESSES: [&str; 3] = [
    "0x1111111111111111111111111111111111111111",
    "0x2222222222222222222222222222222222222222",
    "0x3333333333333333333333333333333333333333",
];
const USERS: [&str; 2] = ["alice", "bob"];
const CHAINS: [u64; 3] = [0, 1, 5];
const KINDS: [&str; 4] = ["transaction", "message", "authorization", "digest"];
/// RFC 8032's test-vector public keys 1 to 3.
const APPROVER_KEYS: [&str; 3] = [
    "0xd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "0x3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    "0xfc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
];
const APPROVERS: [&str; 3] = ["a0", "a1", "a2"];
const NOW: u64 = 1_000;

#[derive(Debug, Clone)]
struct ModelRule {
    deny: bool,
    kinds: Option<Vec<&'static str>>,
    users: Option<Vec<&'static str>>,
    chain_ids: Option<Vec<u64>>,
    to: Option<Vec<&'static str>>,
    value_max: Option<u64>,
    contract_creation: Option<bool>,
    delegates: Option<Vec<&'static str>>,
    approvals: Option<(usize, Vec<&'static str>)>,
}

#[derive(Debug, Clone)]
enum ModelRequest {
    Transaction {
        chain: Option<u64>,
        to: Option<&'static str>,
        value: u64,
        delegates: Vec<&'static str>,
    },
    Message,
    Digest,
    Authorization {
        chain: u64,
        address: &'static str,
    },
}

impl ModelRequest {
    fn kind(&self) -> &'static str {
        match self {
            Self::Transaction { .. } => "transaction",
            Self::Message => "message",
            Self::Digest => "digest",
            Self::Authorization { .. } => "authorization",
        }
    }

    fn delegates(&self) -> Vec<&'static str> {
        match self {
            Self::Transaction { delegates, .. } => delegates.clone(),
            Self::Authorization { address, .. } => vec![address],
            _ => vec![],
        }
    }

    fn chain(&self) -> Option<u64> {
        match self {
            Self::Transaction { chain, .. } => *chain,
            Self::Authorization { chain, .. } => Some(*chain),
            _ => None,
        }
    }
}

/// The model: `docs/policy.md`, "Semantics" and "Conditions", read literally.
fn model_allows(
    rules: &[ModelRule],
    not_after: Option<u64>,
    request: &ModelRequest,
    user: Option<&str>,
    approved: &BTreeSet<&str>,
) -> bool {
    if not_after.is_some_and(|t| NOW > t) {
        return false;
    }
    let matches = |rule: &ModelRule| -> bool {
        let kind = request.kind();
        // Allow rules name digests and delegations explicitly; deny rules cover at least what
        // they say.
        let kind_ok = match &rule.kinds {
            Some(kinds) => kinds.contains(&kind),
            None => rule.deny || kind != "digest",
        };
        let delegates = request.delegates();
        let delegation_ok = match &rule.delegates {
            Some(listed) if rule.deny => delegates.iter().any(|d| listed.contains(d)),
            Some(allowed) => !delegates.is_empty() && delegates.iter().all(|d| allowed.contains(d)),
            None => rule.deny || delegates.is_empty(),
        };
        let users_ok = match &rule.users {
            Some(users) => user.is_some_and(|u| users.contains(&u)),
            None => true,
        };
        let chain_ok = match &rule.chain_ids {
            Some(ids) => request.chain().is_some_and(|c| ids.contains(&c)),
            None => true,
        };
        let tx = match request {
            ModelRequest::Transaction { to, value, .. } => Some((*to, *value)),
            _ => None,
        };
        let to_ok = match &rule.to {
            Some(list) => tx.is_some_and(|(to, _)| to.is_some_and(|a| list.contains(&a))),
            None => true,
        };
        let value_ok = match rule.value_max {
            Some(max) => tx.is_some_and(|(_, value)| value <= max),
            None => true,
        };
        let creation_ok = match rule.contract_creation {
            Some(creation) => tx.is_some_and(|(to, _)| to.is_none() == creation),
            None => true,
        };
        kind_ok && delegation_ok && users_ok && chain_ok && to_ok && value_ok && creation_ok
    };
    if rules.iter().any(|rule| rule.deny && matches(rule)) {
        return false;
    }
    rules.iter().any(|rule| {
        !rule.deny
            && matches(rule)
            && match &rule.approvals {
                None => true,
                Some((threshold, from)) => {
                    from.iter().filter(|name| approved.contains(*name)).count() >= *threshold
                }
            }
    })
}

fn rule_json(rule: &ModelRule) -> Value {
    let mut when = serde_json::Map::new();
    let hex = |n: u64| json!(format!("0x{n:x}"));
    if let Some(kinds) = &rule.kinds {
        when.insert("kinds".into(), json!(kinds));
    }
    if let Some(users) = &rule.users {
        when.insert("users".into(), json!(users));
    }
    if let Some(ids) = &rule.chain_ids {
        when.insert(
            "chainIds".into(),
            Value::Array(ids.iter().map(|&c| hex(c)).collect()),
        );
    }
    if let Some(to) = &rule.to {
        when.insert("to".into(), json!(to));
    }
    if let Some(max) = rule.value_max {
        when.insert("valueMax".into(), hex(max));
    }
    if let Some(creation) = rule.contract_creation {
        when.insert("contractCreation".into(), json!(creation));
    }
    if let Some(delegates) = &rule.delegates {
        when.insert("delegates".into(), json!(delegates));
    }
    let mut out = json!({"effect": if rule.deny { "deny" } else { "allow" }, "when": when});
    if let Some((threshold, from)) = &rule.approvals {
        out["approvals"] = json!({"threshold": threshold, "from": from});
    }
    out
}

fn some_of<T: Clone + std::fmt::Debug + 'static>(
    pool: &'static [T],
) -> impl Strategy<Value = Option<Vec<T>>> {
    prop::option::weighted(0.35, subsequence(pool, 1..=pool.len()))
}

fn rule() -> impl Strategy<Value = ModelRule> {
    (
        any::<bool>(),
        some_of(&KINDS),
        some_of(&USERS),
        some_of(&CHAINS),
        some_of(&ADDRESSES),
        prop::option::weighted(0.3, prop::sample::select(vec![0u64, 5, 10])),
        prop::option::weighted(0.2, any::<bool>()),
        some_of(&ADDRESSES),
        prop::option::weighted(0.4, subsequence(&APPROVERS[..], 1..=3)),
        1usize..=3,
    )
        .prop_map(
            |(deny, kinds, users, chain_ids, to, value_max, creation, delegates, from, t)| {
                ModelRule {
                    deny,
                    kinds,
                    users,
                    chain_ids,
                    to,
                    value_max,
                    contract_creation: creation,
                    delegates,
                    approvals: if deny {
                        None
                    } else {
                        from.map(|from| (t.min(from.len()), from))
                    },
                }
            },
        )
}

fn request() -> impl Strategy<Value = ModelRequest> {
    let address = prop::sample::select(&ADDRESSES[..]);
    prop_oneof![
        (
            prop::option::weighted(0.8, prop::sample::select(vec![1u64, 5])),
            prop::option::weighted(0.8, address.clone()),
            prop::sample::select(vec![0u64, 5, 6, 10, 11]),
            prop::option::weighted(0.2, subsequence(&ADDRESSES[..], 1..=2)),
        )
            .prop_map(|(chain, to, value, delegates)| {
                // A type-4 transaction has a chain id and a recipient.
                let (chain, to) = match &delegates {
                    Some(_) => (Some(chain.unwrap_or(1)), Some(to.unwrap_or(ADDRESSES[0]))),
                    None => (chain, to),
                };
                ModelRequest::Transaction {
                    chain,
                    to,
                    value,
                    delegates: delegates.unwrap_or_default(),
                }
            }),
        Just(ModelRequest::Message),
        Just(ModelRequest::Digest),
        (prop::sample::select(&CHAINS[..]), address)
            .prop_map(|(chain, address)| ModelRequest::Authorization { chain, address }),
    ]
}

enum Parsed {
    Transaction(UnsignedTransaction),
    Authorization(UnsignedAuthorization),
    Message,
    Digest,
}

/// The request as JSON, parsed as the enclave parses it.
fn parse(request: &ModelRequest) -> Parsed {
    match request {
        ModelRequest::Transaction {
            chain,
            to,
            value,
            delegates,
        } => {
            let mut tx =
                json!({"nonce": "0x0", "gas": "0x5208", "value": format!("0x{value:x}"), "to": to});
            match chain {
                Some(chain) => {
                    tx["chainId"] = json!(format!("0x{chain:x}"));
                    tx["maxFeePerGas"] = json!("0x2");
                    tx["maxPriorityFeePerGas"] = json!("0x1");
                }
                None => tx["gasPrice"] = json!("0x2"),
            }
            if to.is_none() {
                tx["input"] = json!("0x6000");
            }
            if !delegates.is_empty() {
                tx["authorizationList"] = Value::Array(
                    delegates
                        .iter()
                        .map(|d| json!({"chainId": "0x1", "address": d, "nonce": "0x0", "yParity": "0x0", "r": "0x1", "s": "0x1"}))
                        .collect(),
                );
            }
            Parsed::Transaction(
                UnsignedTransaction::from_json(
                    tx.to_string().as_bytes(),
                    TxOptions {
                        allow_pre_eip155: true,
                    },
                )
                .unwrap(),
            )
        }
        ModelRequest::Authorization { chain, address } => Parsed::Authorization(
            AuthorizationRequest::from_json(
                json!({"chainId": format!("0x{chain:x}"), "address": address, "nonce": "0x0"})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap()
            .into_unsigned(AuthorizationOptions {
                allow_any_chain: true,
            })
            .unwrap(),
        ),
        ModelRequest::Message => Parsed::Message,
        ModelRequest::Digest => Parsed::Digest,
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
        let approvers: serde_json::Map<String, Value> = APPROVERS
            .iter()
            .zip(APPROVER_KEYS)
            .map(|(name, key)| ((*name).to_owned(), json!({"type": "ed25519", "publicKey": key})))
            .collect();
        let mut document = json!({
            "version": 1,
            "approvers": approvers,
            "rules": rules.iter().map(rule_json).collect::<Vec<_>>(),
            "settings": {"preEip155": true, "anyChainAuthorization": true},
        });
        if let Some(t) = not_after {
            document["notAfter"] = json!(t);
        }
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
            model_allows(&rules, not_after, &request, user, &approved),
            "policy {} request {:?} approved {:?}", document, request, approved
        );
    }
}
