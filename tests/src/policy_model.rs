//! A small, obviously correct model of the policy format (`docs/policy.md`, "Semantics" and
//! "Conditions", read literally), with random rules and requests over small pools: the
//! reference the policy evaluator (`policy/tests/reference_model.rs`) and the whole stack
//! (`cli/tests/policy_e2e.rs`) are checked against. It reads its own description of the rules
//! and of the request, never the policy crate's.

use std::collections::BTreeSet;

use proptest::{prelude::*, sample::subsequence};
use serde_json::{Value, json};

/// Addresses requests and rules pick from.
pub const ADDRESSES: [&str; 3] = [
    "0x1111111111111111111111111111111111111111",
    "0x2222222222222222222222222222222222222222",
    "0x3333333333333333333333333333333333333333",
];
/// User ids.
pub const USERS: [&str; 2] = ["alice", "bob"];
/// Chain ids (0: an authorization valid on every chain).
pub const CHAINS: [u64; 3] = [0, 1, 5];
/// Request kinds.
pub const KINDS: [&str; 4] = ["transaction", "message", "authorization", "digest"];
/// Approver names.
pub const APPROVERS: [&str; 3] = ["a0", "a1", "a2"];

/// A rule, as the model reads it.
#[derive(Debug, Clone)]
pub struct ModelRule {
    /// `deny`.
    pub deny: bool,
    /// `kinds`.
    pub kinds: Option<Vec<&'static str>>,
    /// `users`.
    pub users: Option<Vec<&'static str>>,
    /// `chain_ids`.
    pub chain_ids: Option<Vec<u64>>,
    /// `to`.
    pub to: Option<Vec<&'static str>>,
    /// `value_max`.
    pub value_max: Option<u64>,
    /// `contract_creation`.
    pub contract_creation: Option<bool>,
    /// `delegates`.
    pub delegates: Option<Vec<&'static str>>,
    /// `approvals`.
    pub approvals: Option<(usize, Vec<&'static str>)>,
}

/// A request, as the model reads it.
#[derive(Debug, Clone)]
pub enum ModelRequest {
    /// A transaction.
    Transaction {
        /// Chain id; `None`: legacy without one.
        chain: Option<u64>,
        /// Recipient; `None`: contract creation.
        to: Option<&'static str>,
        /// Wei.
        value: u64,
        /// Type-4 delegation targets.
        delegates: Vec<&'static str>,
    },
    /// A personal message.
    Message,
    /// A raw digest.
    Digest,
    /// An EIP-7702 authorization.
    Authorization {
        /// Chain id.
        chain: u64,
        /// Delegation target.
        address: &'static str,
    },
}

impl ModelRequest {
    /// The request's kind, as policies name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transaction { .. } => "transaction",
            Self::Message => "message",
            Self::Digest => "digest",
            Self::Authorization { .. } => "authorization",
        }
    }

    /// Its EIP-7702 delegation targets.
    pub fn delegates(&self) -> Vec<&'static str> {
        match self {
            Self::Transaction { delegates, .. } => delegates.clone(),
            Self::Authorization { address, .. } => vec![address],
            _ => vec![],
        }
    }

    /// Its chain id, if it has one.
    pub fn chain(&self) -> Option<u64> {
        match self {
            Self::Transaction { chain, .. } => *chain,
            Self::Authorization { chain, .. } => Some(*chain),
            _ => None,
        }
    }
}

/// The model: `docs/policy.md`, "Semantics" and "Conditions", read literally.
pub fn model_allows(
    rules: &[ModelRule],
    not_after: Option<u64>,
    now: u64,
    request: &ModelRequest,
    user: Option<&str>,
    approved: &BTreeSet<&str>,
) -> bool {
    if not_after.is_some_and(|t| now > t) {
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

/// The rule in the policy format.
pub fn rule_json(rule: &ModelRule) -> Value {
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

/// Random rules over the pools above.
pub fn rule() -> impl Strategy<Value = ModelRule> {
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

/// Random requests over the pools above.
pub fn request() -> impl Strategy<Value = ModelRequest> {
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

/// A transaction request as `eth_signTransaction` JSON (valid with the policy setting
/// `preEip155`).
pub fn transaction_json(request: &ModelRequest) -> Option<Value> {
    let ModelRequest::Transaction {
        chain,
        to,
        value,
        delegates,
    } = request
    else {
        return None;
    };
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
    Some(tx)
}

/// An authorization request as JSON (valid with the policy setting `anyChainAuthorization`).
pub fn authorization_json(request: &ModelRequest) -> Option<Value> {
    let ModelRequest::Authorization { chain, address } = request else {
        return None;
    };
    Some(json!({"chainId": format!("0x{chain:x}"), "address": address, "nonce": "0x0"}))
}

/// The policy document of `rules`, with `approvers` (name → `{"type", "publicKey"}`), the
/// settings the model's requests need, and `notAfter`.
pub fn policy_json(
    rules: &[ModelRule],
    approvers: serde_json::Map<String, Value>,
    not_after: Option<u64>,
) -> Value {
    let mut document = json!({
        "version": 1,
        "approvers": approvers,
        "rules": rules.iter().map(rule_json).collect::<Vec<_>>(),
        "settings": {"preEip155": true, "anyChainAuthorization": true},
    });
    if let Some(t) = not_after {
        document["notAfter"] = json!(t);
    }
    document
}
