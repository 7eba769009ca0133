//! Evaluating a policy: deny by default, on what the enclave parsed itself.
//!
//! A request is signed only if no `deny` rule matches it and at least one `allow` rule matches
//! whose approval requirement is met. [`Policy::evaluate`] decides everything that needs no
//! approval ([`Decision`]); approvals, which need the key id, are counted afterwards
//! ([`Candidates::check`]).
//!
//! [`Facts`] are built from the parsed payload types of `nitro_signer_eth`, never from anything a
//! caller says about the payload.

use std::collections::BTreeSet;

use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, U256};
use nitro_signer_eth::{TypedData, UnsignedAuthorization, UnsignedTransaction};
use nitro_signer_flow::{
    Address as FlowAddress, FlowTransaction, Role as FlowRole, Signer as FlowSigner,
};
use sha2::{Digest as _, Sha256};

use crate::document::{Conditions, Effect, Erc20Rule, FlowRule, Kind, Policy, Quorum, Rule};

/// Blob gas of one EIP-4844 blob.
const GAS_PER_BLOB: u64 = 1 << 17;

/// ERC-20 method ids.
const TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
const TRANSFER_FROM: [u8; 4] = [0x23, 0xb8, 0x72, 0xdd];
const APPROVE: [u8; 4] = [0x09, 0x5e, 0xa7, 0xb3];

/// What a policy looks at in a request: derived from the payload the enclave parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The user id (`None` for an imported key).
    pub user: Option<&'a str>,
    /// The payload.
    pub payload: PayloadFacts<'a>,
}

/// The payload-specific part of [`Facts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadFacts<'a> {
    /// A transaction.
    Transaction(TxFacts<'a>),
    /// An EIP-191 message: nothing to look at but its kind.
    Message,
    /// EIP-712 typed data.
    TypedData(TypedDataFacts<'a>),
    /// An EIP-7702 authorization.
    Authorization {
        /// Its chain id (0: every chain).
        chain_id: U256,
        /// The delegation target.
        address: Address,
    },
    /// A caller-supplied hash.
    Digest,
    /// A Flow transaction, signed for one role.
    Flow(FlowFacts<'a>),
}

/// What a policy looks at in a Flow transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowFacts<'a> {
    /// The payer.
    pub payer: FlowAddress,
    /// The authorizers, in order.
    pub authorizers: &'a [FlowAddress],
    /// SHA-256 of the script's UTF-8 bytes.
    pub script_sha256: [u8; 32],
    /// Every role the signature counts for on chain: the role asked for, and also authorizer
    /// when the signing account is one of the authorizers, and proposer when the signing key is
    /// the proposal key (Flow counts an account's signature for each role it holds: a payer that
    /// is also an authorizer authorizes with its envelope signature).
    pub roles: Vec<FlowRole>,
}

/// What a policy looks at in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFacts<'a> {
    /// The chain id; `None` for a pre-EIP-155 legacy transaction.
    pub chain_id: Option<u64>,
    /// The recipient; `None` for contract creation.
    pub to: Option<Address>,
    /// Wei sent.
    pub value: U256,
    /// The most the transaction can cost in fees.
    pub fee_max: U256,
    /// The calldata.
    pub input: &'a [u8],
    /// EIP-7702 delegation targets of a type-4 transaction's authorization list.
    pub delegates: Vec<Address>,
}

/// What a policy looks at in typed data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedDataFacts<'a> {
    /// `domain.chainId`.
    pub chain_id: Option<U256>,
    /// `domain.verifyingContract`.
    pub verifying_contract: Option<Address>,
    /// `domain.name`.
    pub name: Option<&'a str>,
    /// `primaryType`.
    pub primary_type: &'a str,
}

impl<'a> Facts<'a> {
    /// A transaction's facts.
    pub fn transaction(tx: &'a UnsignedTransaction, user: Option<&'a str>) -> Self {
        let typed = tx.as_typed();
        let gas = U256::from(typed.gas_limit()) * U256::from(typed.max_fee_per_gas());
        let blobs = typed.blob_versioned_hashes().map_or(0, <[_]>::len);
        let blob_gas = U256::from(GAS_PER_BLOB) * U256::from(blobs);
        let blob_fee = blob_gas * U256::from(typed.max_fee_per_blob_gas().unwrap_or(0));
        Self {
            user,
            payload: PayloadFacts::Transaction(TxFacts {
                chain_id: typed.chain_id(),
                to: typed.to(),
                value: typed.value(),
                fee_max: gas.saturating_add(blob_fee),
                input: typed.input(),
                delegates: typed
                    .authorization_list()
                    .map(|list| list.iter().map(|auth| auth.inner().address).collect())
                    .unwrap_or_default(),
            }),
        }
    }

    /// Typed data's facts.
    pub fn typed_data(typed: &'a TypedData, user: Option<&'a str>) -> Self {
        let document = typed.as_alloy();
        Self {
            user,
            payload: PayloadFacts::TypedData(TypedDataFacts {
                chain_id: document.domain.chain_id,
                verifying_contract: document.domain.verifying_contract,
                name: document.domain.name.as_deref(),
                primary_type: &document.primary_type,
            }),
        }
    }

    /// An authorization's facts.
    pub fn authorization(auth: &UnsignedAuthorization, user: Option<&'a str>) -> Self {
        let inner = auth.authorization();
        Self {
            user,
            payload: PayloadFacts::Authorization {
                chain_id: inner.chain_id,
                address: inner.address,
            },
        }
    }

    /// A personal message's facts.
    pub fn message(user: Option<&'a str>) -> Self {
        Self {
            user,
            payload: PayloadFacts::Message,
        }
    }

    /// A Flow transaction's facts, signed for `role` by `signer`. The script is hashed here
    /// (SHA-256 of its UTF-8 bytes), from the transaction the enclave parsed; the roles are
    /// every one the signature counts for ([`FlowFacts::roles`]).
    pub fn flow_transaction(
        tx: &'a FlowTransaction,
        role: FlowRole,
        signer: &FlowSigner,
        user: Option<&'a str>,
    ) -> Self {
        let mut roles = vec![role];
        if tx.authorizers.contains(&signer.address) {
            roles.push(FlowRole::Authorizer);
        }
        if signer.address == tx.proposal_key.address
            && signer.key_index == tx.proposal_key.key_index
        {
            roles.push(FlowRole::Proposer);
        }
        roles.sort_unstable();
        roles.dedup();
        Self {
            user,
            payload: PayloadFacts::Flow(FlowFacts {
                payer: tx.payer,
                authorizers: &tx.authorizers,
                script_sha256: Sha256::digest(tx.script.as_bytes()).into(),
                roles,
            }),
        }
    }

    /// A raw digest's facts.
    pub fn digest(user: Option<&'a str>) -> Self {
        Self {
            user,
            payload: PayloadFacts::Digest,
        }
    }

    /// The payload's kind.
    pub fn kind(&self) -> Kind {
        match self.payload {
            PayloadFacts::Transaction(_) => Kind::Transaction,
            PayloadFacts::Message => Kind::Message,
            PayloadFacts::TypedData(_) => Kind::TypedData,
            PayloadFacts::Authorization { .. } => Kind::Authorization,
            PayloadFacts::Digest => Kind::Digest,
            PayloadFacts::Flow(_) => Kind::FlowTransaction,
        }
    }

    /// The EIP-7702 delegation targets the payload carries.
    pub fn delegates(&self) -> &[Address] {
        match &self.payload {
            PayloadFacts::Transaction(tx) => &tx.delegates,
            PayloadFacts::Authorization { address, .. } => std::slice::from_ref(address),
            _ => &[],
        }
    }
}

/// Why a policy refused a request outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The policy's `notAfter` has passed.
    Expired {
        /// The policy's `notAfter`.
        not_after: u64,
    },
    /// A deny rule matched (its index in `rules`).
    Rule(usize),
    /// No allow rule matched.
    NoRuleAllows,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Expired { not_after } => {
                write!(f, "the key's policy expired (notAfter {not_after})")
            }
            Self::Rule(i) => write!(f, "rules[{i}] denies this request"),
            Self::NoRuleAllows => f.write_str("no rule of the key's policy allows this request"),
        }
    }
}

/// What a policy says about a request before approvals are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'p> {
    /// Refused, whatever the approvals.
    Denied(Denial),
    /// Allowed if the approvals meet one of these (every matching allow rule's quorum); allowed
    /// outright if one of them needs none.
    Allowed(Candidates<'p>),
}

/// The allow rules that matched a request, with their approval requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates<'p> {
    /// `(rule index, quorum)` of each matching allow rule; `None` for a rule without approvals.
    rules: Vec<(usize, Option<&'p Quorum>)>,
}

/// Approvals short of every matching rule's requirement: the nearest one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalsRequired {
    /// The rule the shortfall is for; `None` for the policy's admins.
    pub rule: Option<usize>,
    /// How many more approvals it needs.
    pub missing: usize,
    /// Who can give them (the rule's approvers not yet counted).
    pub from: Vec<String>,
}

impl std::fmt::Display for ApprovalsRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = match self.rule {
            Some(rule) => format!("rules[{rule}]"),
            None => "admins".to_owned(),
        };
        write!(
            f,
            "{} more approval{} needed ({whose}), from: {}",
            self.missing,
            if self.missing == 1 { "" } else { "s" },
            self.from.join(", ")
        )
    }
}

impl<'p> Candidates<'p> {
    /// The approvers any matching rule counts.
    pub fn approvers(&self) -> BTreeSet<&'p str> {
        self.rules
            .iter()
            .filter_map(|(_, quorum)| *quorum)
            .flat_map(|quorum| quorum.from.iter().map(String::as_str))
            .collect()
    }

    /// Whether some matching rule needs no approval at all.
    pub fn needs_no_approval(&self) -> bool {
        self.rules.iter().any(|(_, quorum)| quorum.is_none())
    }

    /// Checks the approvers counted valid against the matching rules: `Ok` if one rule's
    /// requirement is met, else the rule nearest to being met and what it still needs.
    pub fn check(&self, approved: &BTreeSet<&str>) -> Result<(), ApprovalsRequired> {
        let mut nearest: Option<(usize, &Quorum, usize)> = None;
        for &(index, quorum) in &self.rules {
            let Some(quorum) = quorum else { return Ok(()) };
            let missing = quorum.missing(approved);
            if missing == 0 {
                return Ok(());
            }
            if nearest.is_none_or(|(_, _, fewest)| missing < fewest) {
                nearest = Some((index, quorum, missing));
            }
        }
        let Some((rule, quorum, missing)) = nearest else {
            // No rules: `evaluate` never makes empty candidates; refuse all the same.
            return Err(ApprovalsRequired {
                rule: None,
                missing: 1,
                from: Vec::new(),
            });
        };
        Err(ApprovalsRequired {
            rule: Some(rule),
            missing,
            from: quorum
                .from
                .iter()
                .filter(|name| !approved.contains(name.as_str()))
                .cloned()
                .collect(),
        })
    }
}

impl Policy {
    /// Evaluates the rules on `facts` at unix time `now` (the enclave's own clock).
    pub fn evaluate(&self, facts: &Facts<'_>, now: u64) -> Decision<'_> {
        if let Some(not_after) = self.not_after()
            && now > not_after
        {
            return Decision::Denied(Denial::Expired { not_after });
        }
        let mut rules = Vec::new();
        for (index, rule) in self.rules().iter().enumerate() {
            if !rule.matches(facts) {
                continue;
            }
            match rule.effect {
                Effect::Deny => return Decision::Denied(Denial::Rule(index)),
                Effect::Allow => rules.push((index, rule.approvals.as_ref())),
            }
        }
        if rules.is_empty() {
            return Decision::Denied(Denial::NoRuleAllows);
        }
        Decision::Allowed(Candidates { rules })
    }
}

impl Rule {
    /// Whether every condition of the rule holds for `facts`.
    ///
    /// Allow rules never match three kinds of request implicitly: raw digests (the enclave cannot
    /// know what it signs) and Flow transactions (policies written before Flow must not start
    /// allowing them) must be named in `kinds`, and EIP-7702 delegations (which outlive any
    /// compromise) must be allowed by a `delegates` list that holds every target. Deny rules are
    /// read the other way, so that they refuse at least what they say: without `kinds` they
    /// cover every kind, digests and Flow included; without `delegates` they cover delegating
    /// payloads too; with `delegates` they match a payload that delegates to any listed target;
    /// with `flow.authorizers` they match a transaction with any listed authorizer.
    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        let when = &self.when;
        let kind = facts.kind();
        let deny = self.effect == Effect::Deny;
        let kind_ok = match &when.kinds {
            Some(kinds) => kinds.contains(&kind),
            None => deny || !matches!(kind, Kind::Digest | Kind::FlowTransaction),
        };
        let delegates = facts.delegates();
        let delegation_ok = match &when.delegates {
            Some(listed) if deny => delegates.iter().any(|d| listed.contains(d)),
            Some(allowed) => !delegates.is_empty() && delegates.iter().all(|d| allowed.contains(d)),
            None => deny || delegates.is_empty(),
        };
        kind_ok
            && delegation_ok
            && when
                .users
                .as_ref()
                .is_none_or(|users| facts.user.is_some_and(|user| users.contains(user)))
            && when.payload_conditions_hold(&facts.payload)
            && when.flow.as_ref().is_none_or(|rule| match &facts.payload {
                PayloadFacts::Flow(flow) => rule.holds(flow, deny),
                _ => false,
            })
    }
}

impl Conditions {
    fn payload_conditions_hold(&self, payload: &PayloadFacts<'_>) -> bool {
        let tx = match payload {
            PayloadFacts::Transaction(tx) => Some(tx),
            _ => None,
        };
        // A condition on a property the payload does not have does not hold.
        let on_tx = |f: &dyn Fn(&TxFacts<'_>) -> bool| tx.is_some_and(f);
        let chain_id = match payload {
            PayloadFacts::Transaction(tx) => tx.chain_id.map(U256::from),
            PayloadFacts::Authorization { chain_id, .. } => Some(*chain_id),
            _ => None,
        };
        self.chain_ids
            .as_ref()
            .is_none_or(|ids| chain_id.is_some_and(|id| ids.contains(&id)))
            && self
                .to
                .as_ref()
                .is_none_or(|to| on_tx(&|tx| tx.to.is_some_and(|a| to.contains(&a))))
            && self
                .value_max
                .is_none_or(|max| on_tx(&|tx| tx.value <= max))
            && self
                .fee_max
                .is_none_or(|max| on_tx(&|tx| tx.fee_max <= max))
            && self
                .contract_creation
                .is_none_or(|creation| on_tx(&|tx| tx.to.is_none() == creation))
            && self.selectors.as_ref().is_none_or(|selectors| {
                // A method id is called on a contract: a contract creation's initcode has none.
                on_tx(&|tx| {
                    tx.to.is_some()
                        && tx.input.get(..4).is_some_and(|selector| {
                            selectors.iter().any(|rule| {
                                rule.selector == selector
                                    && rule
                                        .contracts
                                        .as_ref()
                                        .is_none_or(|c| tx.to.is_some_and(|to| c.contains(&to)))
                            })
                        })
                })
            })
            && self
                .erc20
                .as_ref()
                .is_none_or(|erc20| on_tx(&|tx| erc20.allows(tx)))
            && self.typed_data.as_ref().is_none_or(|rule| match payload {
                PayloadFacts::TypedData(t) => {
                    rule.chain_ids
                        .as_ref()
                        .is_none_or(|ids| t.chain_id.is_some_and(|id| ids.contains(&id)))
                        && rule.verifying_contracts.as_ref().is_none_or(|contracts| {
                            t.verifying_contract.is_some_and(|c| contracts.contains(&c))
                        })
                        && rule
                            .names
                            .as_ref()
                            .is_none_or(|names| t.name.is_some_and(|n| names.contains(n)))
                        && rule
                            .primary_types
                            .as_ref()
                            .is_none_or(|types| types.contains(t.primary_type))
                }
                _ => false,
            })
    }
}

impl FlowRule {
    /// Whether every member given holds for `flow`: `authorizers` and `roles` need every
    /// authorizer (none satisfies it) and every role the signature counts for listed in an allow
    /// rule, and any in a deny rule; the others are the same test for both.
    fn holds(&self, flow: &FlowFacts<'_>, deny: bool) -> bool {
        self.payers
            .as_ref()
            .is_none_or(|payers| payers.contains(&flow.payer))
            && self.authorizers.as_ref().is_none_or(|listed| {
                if deny {
                    flow.authorizers.iter().any(|a| listed.contains(a))
                } else {
                    flow.authorizers.iter().all(|a| listed.contains(a))
                }
            })
            && self
                .scripts
                .as_ref()
                .is_none_or(|scripts| scripts.contains(&flow.script_sha256))
            && self.roles.as_ref().is_none_or(|listed| {
                if deny {
                    flow.roles.iter().any(|role| listed.contains(role))
                } else {
                    flow.roles.iter().all(|role| listed.contains(role))
                }
            })
    }
}

/// An ERC-20 call decoded strictly from calldata: the method id, then exactly its 32-byte
/// arguments, addresses with their 12 high bytes zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Erc20Call {
    /// `transfer(to, amount)`, or `transferFrom(from, to, amount)`.
    Transfer {
        /// The recipient.
        to: Address,
        /// The amount.
        amount: U256,
    },
    /// `approve(spender, amount)`.
    Approve {
        /// The spender.
        spender: Address,
        /// The allowance.
        amount: U256,
    },
}

impl Erc20Call {
    /// Decodes `input`; `None` if it is not exactly one of the three calls.
    pub fn decode(input: &[u8]) -> Option<Self> {
        let (selector, args) = input.split_first_chunk::<4>()?;
        let words: Vec<&[u8; 32]> = args
            .chunks(32)
            .map(<&[u8; 32]>::try_from)
            .collect::<Result<_, _>>()
            .ok()?;
        let address = |word: &[u8; 32]| {
            let (high, low) = word.split_at(12);
            high.iter()
                .all(|b| *b == 0)
                .then(|| Address::from_slice(low))
        };
        match (*selector, words.as_slice()) {
            (TRANSFER, [to, amount]) | (TRANSFER_FROM, [_, to, amount]) => Some(Self::Transfer {
                to: address(to)?,
                amount: U256::from_be_bytes(**amount),
            }),
            (TRANSFER_FROM, _) | (TRANSFER, _) => None,
            (APPROVE, [spender, amount]) => Some(Self::Approve {
                spender: address(spender)?,
                amount: U256::from_be_bytes(**amount),
            }),
            _ => None,
        }
    }
}

impl Erc20Rule {
    fn allows(&self, tx: &TxFacts<'_>) -> bool {
        let Some(token) = tx.to else { return false };
        if !self.tokens.contains(&token) {
            return false;
        }
        let (limit, party, amount) = match Erc20Call::decode(tx.input) {
            Some(Erc20Call::Transfer { to, amount }) => (&self.transfer, to, amount),
            Some(Erc20Call::Approve { spender, amount }) => (&self.approve, spender, amount),
            None => return false,
        };
        limit.as_ref().is_some_and(|limit| {
            limit.parties.as_ref().is_none_or(|p| p.contains(&party))
                && limit.amount_max.is_none_or(|max| amount <= max)
        })
    }
}
