//! The policy document: what a key blob carries to say what may be signed with it.
//!
//! A policy is JSON (the format is specified in `docs/policy.md`). It is parsed strictly: unknown
//! fields, repeated keys, empty lists, repeated list entries, unknown approver names and numbers
//! that do not fit are refused, each with an error that names its path
//! (`rules[1].when.to[0]: …`). Its identity is the SHA-256 of its RFC 8785 (JCS) canonical form
//! ([`Policy::hash`]): that hash is the blob's `nitro-signer:policy-sha256` encryption-context
//! entry, so KMS refuses to decrypt a blob whose policy was touched.
//!
//! Parsing is the whole of validation: a [`Policy`] value is always well-formed, and evaluating
//! one ([`crate::eval`]) cannot fail.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, B256, U256};
use nitro_signer_eth::{
    Bytes,
    hex::{self, FromJsonHex, Hex},
};
pub use nitro_signer_flow::{Address as FlowAddress, Role as FlowRole};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::approval::ApproverKey;

/// The policy format version this build reads.
pub const POLICY_VERSION: u64 = 1;
/// Longest policy document accepted as input, in bytes.
pub const MAX_POLICY_INPUT_LEN: usize = 64 * 1024;
/// Longest canonical form: what the key blob carries.
pub const MAX_POLICY_LEN: usize = 32 * 1024;
/// Most approvers a policy names.
pub const MAX_APPROVERS: usize = 32;
/// Most rules a policy has.
pub const MAX_RULES: usize = 64;
/// Most entries in any list of a rule.
pub const MAX_LIST_LEN: usize = 256;
/// Longest approver name, in bytes.
pub const MAX_APPROVER_NAME_LEN: usize = 64;
/// Largest integer a policy may hold (`notAfter`): 2^53 - 1, the largest every JSON
/// implementation reads exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PolicyError {
    /// Where in the document the problem is (`rules[0].when.kinds[1]`), `.` for the whole.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl PolicyError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// What kind of payload a request signs, as the enclave parsed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// A transaction (`eth_signTransaction` object).
    Transaction,
    /// An EIP-191 personal message.
    Message,
    /// EIP-712 typed data.
    TypedData,
    /// An EIP-7702 authorization tuple.
    Authorization,
    /// A caller-supplied 32-byte hash.
    Digest,
    /// A Flow transaction (`nitro_signer_flow`), signed for one of its roles.
    FlowTransaction,
}

impl Kind {
    /// The name used in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transaction => "transaction",
            Self::Message => "message",
            Self::TypedData => "typedData",
            Self::Authorization => "authorization",
            Self::Digest => "digest",
            Self::FlowTransaction => "flowTransaction",
        }
    }
}

/// Whether a rule allows or denies what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Effect {
    /// Sign what matches (with the rule's approvals, if it asks for any).
    Allow,
    /// Refuse what matches, whatever else allows it.
    Deny,
}

/// An M-of-N requirement: `threshold` distinct approvers among `from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    /// How many distinct approvers must approve (1 to `from.len()`).
    pub threshold: usize,
    /// The approvers who count, by name; each is in the policy's `approvers`.
    pub from: BTreeSet<String>,
}

impl Quorum {
    /// How many more of `from` must approve beyond those in `approved` (0 when met).
    pub fn missing(&self, approved: &BTreeSet<&str>) -> usize {
        let have = self
            .from
            .iter()
            .filter(|name| approved.contains(name.as_str()))
            .count();
        self.threshold.saturating_sub(have)
    }
}

/// A 4-byte method id, optionally only on some contracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorRule {
    /// The method id: the first 4 bytes of the calldata.
    pub selector: [u8; 4],
    /// The contracts (`to`) it may be called on; `None` for any.
    pub contracts: Option<BTreeSet<Address>>,
}

/// Limits on one side of ERC-20 calls: who receives (or may spend), and how much.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Erc20Limit {
    /// The recipients (`transfer`, `transferFrom`) or spenders (`approve`) allowed; `None` for
    /// any.
    pub parties: Option<BTreeSet<Address>>,
    /// The largest amount, inclusive; `None` for any.
    pub amount_max: Option<U256>,
}

/// ERC-20 calls on given token contracts, decoded from the calldata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erc20Rule {
    /// The token contracts.
    pub tokens: BTreeSet<Address>,
    /// `transfer(to, amount)` and `transferFrom(from, to, amount)`, if allowed.
    pub transfer: Option<Erc20Limit>,
    /// `approve(spender, amount)`, if allowed.
    pub approve: Option<Erc20Limit>,
}

/// Conditions on EIP-712 typed data: its domain and primary type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TypedDataRule {
    /// `domain.chainId`.
    pub chain_ids: Option<BTreeSet<U256>>,
    /// `domain.verifyingContract`.
    pub verifying_contracts: Option<BTreeSet<Address>>,
    /// `domain.name`.
    pub names: Option<BTreeSet<String>>,
    /// `primaryType`.
    pub primary_types: Option<BTreeSet<String>>,
}

/// Conditions on a Flow transaction, each list meaning any of its entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlowRule {
    /// The transaction's payer.
    pub payers: Option<BTreeSet<FlowAddress>>,
    /// The transaction's authorizers: allow rules need every one listed (none satisfies them),
    /// deny rules match if any is listed.
    pub authorizers: Option<BTreeSet<FlowAddress>>,
    /// SHA-256 of the Cadence script's UTF-8 bytes.
    pub scripts: Option<BTreeSet<[u8; 32]>>,
    /// The role signed for.
    pub roles: Option<BTreeSet<FlowRole>>,
}

/// A rule's `when`: every condition given must hold (AND); each list means any of its entries.
/// A condition on a property the payload does not have (`to` of a message) does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conditions {
    /// Payload kinds. Absent: every kind but `digest` and `flowTransaction`, which an allow rule
    /// must name to match (deny rules without kinds match every kind).
    pub kinds: Option<BTreeSet<Kind>>,
    /// User ids (an imported key's requests have none, so never match).
    pub users: Option<BTreeSet<String>>,
    /// Chain ids of transactions and authorizations.
    pub chain_ids: Option<BTreeSet<U256>>,
    /// A transaction's recipient.
    pub to: Option<BTreeSet<Address>>,
    /// A transaction's largest value, inclusive.
    pub value_max: Option<U256>,
    /// A transaction's largest fee, inclusive: gas × max fee per gas (or gas price), plus blob gas
    /// × max fee per blob gas.
    pub fee_max: Option<U256>,
    /// Whether a transaction creates a contract.
    pub contract_creation: Option<bool>,
    /// Method ids of a transaction's calldata.
    pub selectors: Option<Vec<SelectorRule>>,
    /// ERC-20 calls.
    pub erc20: Option<Erc20Rule>,
    /// EIP-7702 delegation targets: of an authorization, or every entry of a type-4
    /// transaction's authorization list. A payload that delegates matches only rules with this
    /// condition.
    pub delegates: Option<BTreeSet<Address>>,
    /// EIP-712 domain and primary type.
    pub typed_data: Option<TypedDataRule>,
    /// Flow transactions: payer, authorizers, script, role.
    pub flow: Option<FlowRule>,
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Allow or deny.
    pub effect: Effect,
    /// What the rule matches.
    pub when: Conditions,
    /// Approvals an `allow` rule needs; `None` for none.
    pub approvals: Option<Quorum>,
}

/// Parsing options that used to be per-blob opt-ins: both off by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// Legacy transactions without a chain id (replayable on every chain) may be signed.
    pub pre_eip155: bool,
    /// EIP-7702 authorizations with chain id 0 (valid on every chain) may be signed.
    pub any_chain_authorization: bool,
}

/// A parsed, checked policy document, with its canonical form and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    canonical: Vec<u8>,
    hash: [u8; 32],
    approvers: BTreeMap<String, ApproverKey>,
    rules: Vec<Rule>,
    admins: Option<Quorum>,
    not_after: Option<u64>,
    settings: Settings,
}

impl Policy {
    /// Parses and checks a policy document given by a caller (any JSON formatting).
    pub fn from_json(json: &[u8]) -> Result<Self, PolicyError> {
        if json.len() > MAX_POLICY_INPUT_LEN {
            return Err(PolicyError::new(
                ".",
                format!("longer than {MAX_POLICY_INPUT_LEN} bytes"),
            ));
        }
        nitro_signer_eth::json::check(json).map_err(json_error)?;
        let mut de = serde_json::Deserializer::from_slice(json);
        let wire: wire::Policy = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            PolicyError::new(path, e.into_inner().to_string())
        })?;
        de.end().map_err(|e| PolicyError::new(".", e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| PolicyError::new(".", e.to_string()))?;
        let canonical = serde_json_canonicalizer::to_vec(&value)
            .map_err(|e| PolicyError::new(".", format!("no canonical form: {e}")))?;
        if canonical.len() > MAX_POLICY_LEN {
            return Err(PolicyError::new(
                ".",
                format!(
                    "{} bytes in canonical form; at most {MAX_POLICY_LEN}",
                    canonical.len()
                ),
            ));
        }
        wire.check(canonical)
    }

    /// Parses a policy from a key blob, where it is kept in canonical form: bytes that are not
    /// exactly their own canonical form are refused, so that one policy has one encoding.
    pub fn from_canonical(canonical: &[u8]) -> Result<Self, PolicyError> {
        let policy = Self::from_json(canonical)?;
        if policy.canonical != canonical {
            return Err(PolicyError::new(
                ".",
                "not in RFC 8785 canonical form (a key blob keeps its policy canonical)",
            ));
        }
        Ok(policy)
    }

    /// The RFC 8785 canonical JSON: what the blob keeps and what [`Self::hash`] covers.
    pub fn canonical(&self) -> &[u8] {
        &self.canonical
    }

    /// SHA-256 of [`Self::canonical`].
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The hash as the encryption context carries it: lowercase hex, no prefix.
    pub fn hash_hex(&self) -> String {
        alloy_primitives::hex::encode(self.hash)
    }

    /// The approvers, by name.
    pub fn approvers(&self) -> &BTreeMap<String, ApproverKey> {
        &self.approvers
    }

    /// The rules, in document order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Who may change the policy; `None` if nobody may.
    pub fn admins(&self) -> Option<&Quorum> {
        self.admins.as_ref()
    }

    /// Unix time (seconds) after which the policy allows nothing.
    pub fn not_after(&self) -> Option<u64> {
        self.not_after
    }

    /// The parsing options.
    pub fn settings(&self) -> Settings {
        self.settings
    }
}

fn json_error(error: nitro_signer_eth::PayloadError) -> PolicyError {
    match error {
        nitro_signer_eth::PayloadError::Json { path, message } => PolicyError::new(path, message),
        other => PolicyError::new(".", other.to_string()),
    }
}

/// A 4-byte method id in hex.
#[derive(Debug, Clone, Copy)]
struct Selector([u8; 4]);

impl FromJsonHex for Selector {
    const EXPECTING: &'static str = "a 4-byte method id as 0x-prefixed hex (0x + 8 digits)";

    fn from_json_hex(s: &str) -> Result<Self, hex::HexError> {
        let bytes = Bytes::from_json_hex(s)?;
        let actual = bytes.len();
        <[u8; 4]>::try_from(bytes.as_ref())
            .map(Selector)
            .map_err(|_| hex::HexError::WrongLength {
                expected: 4,
                actual,
            })
    }
}

/// A Flow address as a policy writes it: `0x` and exactly 16 hex digits (either case), not the
/// zero address. Unlike the transaction JSON, the `0x` is required: one policy, one spelling.
#[derive(Debug, Clone, Copy)]
struct PolicyFlowAddress(FlowAddress);

impl<'de> Deserialize<'de> for PolicyFlowAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if !s.starts_with("0x") {
            return Err(serde::de::Error::custom(
                "a Flow address is 0x and exactly 16 hex digits",
            ));
        }
        s.parse().map(Self).map_err(serde::de::Error::custom)
    }
}

/// The document as it is written, before the checks serde cannot express.
mod wire {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Policy {
        pub version: u64,
        #[serde(default)]
        pub approvers: BTreeMap<String, Approver>,
        pub rules: Vec<Rule>,
        #[serde(default)]
        pub admins: Option<Quorum>,
        #[serde(default)]
        pub not_after: Option<u64>,
        #[serde(default)]
        pub settings: Option<Settings>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Approver {
        #[serde(rename = "type")]
        pub kind: ApproverType,
        #[serde(deserialize_with = "hex::required")]
        pub public_key: Bytes,
    }

    #[derive(Deserialize, Clone, Copy)]
    #[serde(rename_all = "lowercase")]
    pub(super) enum ApproverType {
        Ed25519,
        P256,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Settings {
        #[serde(default)]
        pub pre_eip155: bool,
        #[serde(default)]
        pub any_chain_authorization: bool,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Quorum {
        pub threshold: u64,
        pub from: Vec<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Rule {
        pub effect: Effect,
        pub when: Conditions,
        #[serde(default)]
        pub approvals: Option<Quorum>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Conditions {
        #[serde(default)]
        pub kinds: Option<Vec<Kind>>,
        #[serde(default)]
        pub users: Option<Vec<String>>,
        #[serde(default)]
        pub chain_ids: Option<Vec<Hex<U256>>>,
        #[serde(default)]
        pub to: Option<Vec<Hex<Address>>>,
        #[serde(default, deserialize_with = "hex::optional")]
        pub value_max: Option<U256>,
        #[serde(default, deserialize_with = "hex::optional")]
        pub fee_max: Option<U256>,
        #[serde(default)]
        pub contract_creation: Option<bool>,
        #[serde(default)]
        pub selectors: Option<Vec<SelectorEntry>>,
        #[serde(default)]
        pub erc20: Option<Erc20>,
        #[serde(default)]
        pub delegates: Option<Vec<Hex<Address>>>,
        #[serde(default)]
        pub typed_data: Option<TypedData>,
        #[serde(default)]
        pub flow: Option<Flow>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Flow {
        #[serde(default)]
        pub payers: Option<Vec<super::PolicyFlowAddress>>,
        #[serde(default)]
        pub authorizers: Option<Vec<super::PolicyFlowAddress>>,
        #[serde(default)]
        pub scripts: Option<Vec<Hex<B256>>>,
        #[serde(default)]
        pub roles: Option<Vec<FlowRole>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct SelectorEntry {
        #[serde(deserialize_with = "hex::required")]
        pub selector: super::Selector,
        #[serde(default)]
        pub contracts: Option<Vec<Hex<Address>>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Erc20 {
        pub tokens: Vec<Hex<Address>>,
        #[serde(default)]
        pub transfer: Option<Erc20Transfer>,
        #[serde(default)]
        pub approve: Option<Erc20Approve>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Erc20Transfer {
        #[serde(default)]
        pub recipients: Option<Vec<Hex<Address>>>,
        #[serde(default, deserialize_with = "hex::optional")]
        pub amount_max: Option<U256>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Erc20Approve {
        #[serde(default)]
        pub spenders: Option<Vec<Hex<Address>>>,
        #[serde(default, deserialize_with = "hex::optional")]
        pub amount_max: Option<U256>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct TypedData {
        #[serde(default)]
        pub chain_ids: Option<Vec<Hex<U256>>>,
        #[serde(default)]
        pub verifying_contracts: Option<Vec<Hex<Address>>>,
        #[serde(default)]
        pub names: Option<Vec<String>>,
        #[serde(default)]
        pub primary_types: Option<Vec<String>>,
    }
}

/// Collects a list into a set: not empty (an empty list would leave open whether it means
/// "nothing" or "anything"), at most [`MAX_LIST_LEN`] entries, none repeated.
fn set_of<T: Ord, U>(
    path: &str,
    list: Option<Vec<U>>,
    each: impl Fn(U) -> T,
) -> Result<Option<BTreeSet<T>>, PolicyError> {
    let Some(list) = list else { return Ok(None) };
    check_list_len(path, list.len())?;
    let len = list.len();
    let set: BTreeSet<T> = list.into_iter().map(each).collect();
    if set.len() != len {
        return Err(PolicyError::new(path, "an entry is repeated"));
    }
    Ok(Some(set))
}

fn check_list_len(path: &str, len: usize) -> Result<(), PolicyError> {
    if len == 0 {
        return Err(PolicyError::new(
            path,
            "must not be empty (leave the field out to place no condition)",
        ));
    }
    if len > MAX_LIST_LEN {
        return Err(PolicyError::new(
            path,
            format!("{len} entries; at most {MAX_LIST_LEN}"),
        ));
    }
    Ok(())
}

fn addresses(
    path: &str,
    list: Option<Vec<Hex<Address>>>,
) -> Result<Option<BTreeSet<Address>>, PolicyError> {
    set_of(path, list, |Hex(a)| a)
}

fn quantities(
    path: &str,
    list: Option<Vec<Hex<U256>>>,
) -> Result<Option<BTreeSet<U256>>, PolicyError> {
    set_of(path, list, |Hex(q)| q)
}

fn strings(path: &str, list: Option<Vec<String>>) -> Result<Option<BTreeSet<String>>, PolicyError> {
    let set = set_of(path, list, |s| s)?;
    if let Some(empty) = set
        .as_ref()
        .and_then(|s| s.iter().position(String::is_empty))
    {
        return Err(PolicyError::new(
            format!("{path}[{empty}]"),
            "must not be empty",
        ));
    }
    Ok(set)
}

fn is_approver_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_APPROVER_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl wire::Policy {
    fn check(self, canonical: Vec<u8>) -> Result<Policy, PolicyError> {
        if self.version != POLICY_VERSION {
            return Err(PolicyError::new(
                "version",
                format!("{} is not a version this build reads (1)", self.version),
            ));
        }
        if self.approvers.len() > MAX_APPROVERS {
            return Err(PolicyError::new(
                "approvers",
                format!(
                    "{} approvers; at most {MAX_APPROVERS}",
                    self.approvers.len()
                ),
            ));
        }
        let mut approvers = BTreeMap::new();
        for (name, approver) in self.approvers {
            let path = format!("approvers.{name}");
            if !is_approver_name(&name) {
                return Err(PolicyError::new(
                    path,
                    "an approver name is 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'",
                ));
            }
            let key = match approver.kind {
                wire::ApproverType::Ed25519 => ApproverKey::ed25519(&approver.public_key),
                wire::ApproverType::P256 => ApproverKey::p256(&approver.public_key),
            }
            .map_err(|e| PolicyError::new(format!("{path}.publicKey"), e.to_string()))?;
            approvers.insert(name, key);
        }
        if self.rules.is_empty() || self.rules.len() > MAX_RULES {
            return Err(PolicyError::new(
                "rules",
                format!("{} rules; 1 to {MAX_RULES} allowed", self.rules.len()),
            ));
        }
        let rules = self
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| rule.check(&format!("rules[{i}]"), &approvers))
            .collect::<Result<Vec<_>, _>>()?;
        if !rules.iter().any(|rule| rule.effect == Effect::Allow) {
            return Err(PolicyError::new(
                "rules",
                "no rule allows anything; a key that can sign nothing is a mistake",
            ));
        }
        let admins = self
            .admins
            .map(|quorum| quorum.check("admins", &approvers))
            .transpose()?;
        if let Some(not_after) = self.not_after
            && not_after > MAX_SAFE_INTEGER
        {
            return Err(PolicyError::new("notAfter", "larger than 2^53 - 1"));
        }
        let settings = self.settings.map_or(Settings::default(), |s| Settings {
            pre_eip155: s.pre_eip155,
            any_chain_authorization: s.any_chain_authorization,
        });
        let hash = Sha256::digest(&canonical).into();
        Ok(Policy {
            canonical,
            hash,
            approvers,
            rules,
            admins,
            not_after: self.not_after,
            settings,
        })
    }
}

impl wire::Quorum {
    fn check(
        self,
        path: &str,
        approvers: &BTreeMap<String, ApproverKey>,
    ) -> Result<Quorum, PolicyError> {
        if let Some((i, name)) = self
            .from
            .iter()
            .enumerate()
            .find(|(_, name)| !approvers.contains_key(name.as_str()))
        {
            return Err(PolicyError::new(
                format!("{path}.from[{i}]"),
                format!("{name:?} is not one of the policy's approvers"),
            ));
        }
        let from = strings(&format!("{path}.from"), Some(self.from))?.unwrap_or_default();
        let threshold = usize::try_from(self.threshold).unwrap_or(usize::MAX);
        if threshold == 0 || threshold > from.len() {
            return Err(PolicyError::new(
                format!("{path}.threshold"),
                format!("must be 1 to {} (the approvers in `from`)", from.len()),
            ));
        }
        Ok(Quorum { threshold, from })
    }
}

impl wire::Rule {
    fn check(
        self,
        path: &str,
        approvers: &BTreeMap<String, ApproverKey>,
    ) -> Result<Rule, PolicyError> {
        let approvals = match (self.effect, self.approvals) {
            (_, None) => None,
            (Effect::Deny, Some(_)) => {
                return Err(PolicyError::new(
                    format!("{path}.approvals"),
                    "a deny rule takes no approvals",
                ));
            }
            (Effect::Allow, Some(quorum)) => {
                Some(quorum.check(&format!("{path}.approvals"), approvers)?)
            }
        };
        Ok(Rule {
            effect: self.effect,
            when: self.when.check(&format!("{path}.when"))?,
            approvals,
        })
    }
}

impl wire::Conditions {
    fn check(self, path: &str) -> Result<Conditions, PolicyError> {
        let at = |field: &str| format!("{path}.{field}");
        let selectors = match self.selectors {
            None => None,
            Some(entries) => {
                check_list_len(&at("selectors"), entries.len())?;
                let mut seen = BTreeSet::new();
                let mut rules = Vec::with_capacity(entries.len());
                for (i, entry) in entries.into_iter().enumerate() {
                    if !seen.insert(entry.selector.0) {
                        return Err(PolicyError::new(
                            format!("{path}.selectors[{i}].selector"),
                            "repeated: give each method id once, with all its contracts",
                        ));
                    }
                    rules.push(SelectorRule {
                        selector: entry.selector.0,
                        contracts: addresses(
                            &format!("{path}.selectors[{i}].contracts"),
                            entry.contracts,
                        )?,
                    });
                }
                Some(rules)
            }
        };
        let erc20 = match self.erc20 {
            None => None,
            Some(erc20) => {
                if erc20.transfer.is_none() && erc20.approve.is_none() {
                    return Err(PolicyError::new(
                        at("erc20"),
                        "give `transfer`, `approve` or both: the calls this rule allows",
                    ));
                }
                Some(Erc20Rule {
                    tokens: addresses(&at("erc20.tokens"), Some(erc20.tokens))?.unwrap_or_default(),
                    transfer: match erc20.transfer {
                        None => None,
                        Some(t) => Some(Erc20Limit {
                            parties: addresses(&at("erc20.transfer.recipients"), t.recipients)?,
                            amount_max: t.amount_max,
                        }),
                    },
                    approve: match erc20.approve {
                        None => None,
                        Some(a) => Some(Erc20Limit {
                            parties: addresses(&at("erc20.approve.spenders"), a.spenders)?,
                            amount_max: a.amount_max,
                        }),
                    },
                })
            }
        };
        let typed_data = match self.typed_data {
            None => None,
            Some(t) => {
                let rule = TypedDataRule {
                    chain_ids: quantities(&at("typedData.chainIds"), t.chain_ids)?,
                    verifying_contracts: addresses(
                        &at("typedData.verifyingContracts"),
                        t.verifying_contracts,
                    )?,
                    names: strings(&at("typedData.names"), t.names)?,
                    primary_types: strings(&at("typedData.primaryTypes"), t.primary_types)?,
                };
                if rule == TypedDataRule::default() {
                    return Err(PolicyError::new(
                        at("typedData"),
                        "must give at least one condition",
                    ));
                }
                Some(rule)
            }
        };
        let flow = match self.flow {
            None => None,
            Some(f) => {
                let rule = FlowRule {
                    payers: set_of(&at("flow.payers"), f.payers, |a| a.0)?,
                    authorizers: set_of(&at("flow.authorizers"), f.authorizers, |a| a.0)?,
                    scripts: set_of(&at("flow.scripts"), f.scripts, |Hex(h)| h.0)?,
                    roles: set_of(&at("flow.roles"), f.roles, |r| r)?,
                };
                if rule == FlowRule::default() {
                    return Err(PolicyError::new(
                        at("flow"),
                        "must give at least one condition",
                    ));
                }
                Some(rule)
            }
        };
        Ok(Conditions {
            kinds: set_of(&at("kinds"), self.kinds, |k| k)?,
            users: strings(&at("users"), self.users)?,
            chain_ids: quantities(&at("chainIds"), self.chain_ids)?,
            to: addresses(&at("to"), self.to)?,
            value_max: self.value_max,
            fee_max: self.fee_max,
            contract_creation: self.contract_creation,
            selectors,
            erc20,
            delegates: addresses(&at("delegates"), self.delegates)?,
            typed_data,
            flow,
        })
    }
}
