//! Key policies in the shape of real KMS key policies, evaluated the way KMS evaluates the parts
//! that matter to an enclave: principals, actions, `Allow`/`Deny`, and conditions on the
//! recipient's attestation document.
//!
//! ```json
//! {"Version": "2012-10-17", "Statement": [{
//!   "Sid": "EnclaveOnly", "Effect": "Allow", "Principal": {"AWS": "*"},
//!   "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
//!   "Condition": {"StringEqualsIgnoreCase": {
//!     "kms:RecipientAttestation:ImageSha384": "<PCR0 hex>",
//!     "kms:RecipientAttestation:PCR8": "<PCR8 hex>"}}}]}
//! ```
//!
//! Evaluation follows AWS: a request is allowed when some `Allow` statement applies to it and no
//! `Deny` statement does; an explicit `Deny` always wins.
//!
//! Supported: `Effect`, `Principal`, `Action` or `NotAction` (a name or a list; `kms:*` and
//! `kms:Prefix*` wildcards), `Resource` `"*"`, and `Condition` with
//! - `StringEquals` or `StringEqualsIgnoreCase` on `kms:RecipientAttestation:ImageSha384`,
//!   `kms:RecipientAttestation:PCR<n>` and `kms:EncryptionContext:<key>` (a value or a list of
//!   accepted values). A condition on a key the request lacks (no `Recipient`, no such
//!   encryption-context entry) is false, as in AWS;
//! - `Null` (`"true"`: the key is absent, `"false"`: present) on those keys and on
//!   `kms:EncryptionContextKeys`;
//! - `ForAllValues:StringLike` (every key of the request's encryption context matches one of the
//!   patterns; true for an empty context, as in AWS) and `ForAnyValue:StringLike` (some key
//!   matches) on `kms:EncryptionContextKeys`, with `*` and `?` wildcards.
//!
//! `NotAction` matches every action that none of its patterns matches, as in IAM: a `Deny` with
//! `NotAction` denies everything but the actions listed.
//!
//! `Principal` is `"*"`, `{"AWS": "*"}` or `{"AWS": [ARNs or account ids]}`. A statement applies
//! to the caller ([`KeyPolicy::allows`]) when it names `*`, the caller's ARN, or the caller's
//! account (`arn:PARTITION:iam::ACCOUNT:root` or the bare account id). Naming the account, as
//! in KMS, delegates to the account's IAM policies; the emulator has no IAM and treats them as
//! allowing everything. A statement without `Principal` (which KMS would refuse) applies to
//! everyone.
//!
//! As in KMS, the `<key>` of `kms:EncryptionContext:<key>` matches without regard to case, and
//! the values compared are case-sensitive (unless `…IgnoreCase`). Anything else (other
//! operators, condition keys, `NotPrincipal`, `Service` principals...) is refused when the policy
//! is loaded, so a policy is never silently weaker than it reads.

use std::collections::BTreeMap;

use serde_json::Value;

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key policy: {0}")]
pub struct PolicyError(String);

fn err(message: impl Into<String>) -> PolicyError {
    PolicyError(message.into())
}

/// A single-valued condition key the emulator can evaluate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConditionKey {
    /// `kms:RecipientAttestation:ImageSha384` (PCR0).
    ImageSha384,
    /// `kms:RecipientAttestation:PCR<n>`.
    Pcr(u8),
    /// `kms:EncryptionContext:<key>`: the value of that entry of the request's encryption
    /// context. In a [`RequestContext`], the key as the request spelled it.
    EncryptionContext(String),
}

/// The multi-valued `kms:EncryptionContextKeys`: the keys of the request's encryption context.
const CONTEXT_KEYS: &str = "kms:EncryptionContextKeys";

impl ConditionKey {
    fn parse(key: &str) -> Result<Self, PolicyError> {
        if let Some(name) = key.strip_prefix("kms:EncryptionContext:") {
            if name.is_empty() {
                return Err(err(format!("unsupported condition key `{key}`")));
            }
            return Ok(Self::EncryptionContext(name.to_owned()));
        }
        let Some(rest) = key.strip_prefix("kms:RecipientAttestation:") else {
            return Err(err(format!("unsupported condition key `{key}`")));
        };
        if rest == "ImageSha384" {
            return Ok(Self::ImageSha384);
        }
        rest.strip_prefix("PCR")
            // Digits only, no sign, no leading zero: `PCR08` is another key to AWS.
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()) && (*n == "0" || !n.starts_with('0')))
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|n| *n < 32)
            .map(Self::Pcr)
            .ok_or_else(|| err(format!("unsupported condition key `{key}`")))
    }
}

/// What a request offers for conditions: the verified attestation's values (lowercase hex) and
/// the entries of its encryption context ([`ConditionKey::EncryptionContext`]).
pub type RequestContext = BTreeMap<ConditionKey, String>;

/// The value of `key` in `context`; encryption-context keys match without regard to case.
fn lookup<'a>(context: &'a RequestContext, key: &ConditionKey) -> Option<&'a String> {
    match key {
        ConditionKey::EncryptionContext(name) => context.iter().find_map(|(k, v)| match k {
            ConditionKey::EncryptionContext(n) if n.eq_ignore_ascii_case(name) => Some(v),
            _ => None,
        }),
        other => context.get(other),
    }
}

/// The request's encryption-context keys (`kms:EncryptionContextKeys`), as spelled.
fn context_keys(context: &RequestContext) -> impl Iterator<Item = &str> {
    context.keys().filter_map(|k| match k {
        ConditionKey::EncryptionContext(name) => Some(name.as_str()),
        _ => None,
    })
}

/// IAM's `StringLike`: `*` matches any run of characters, `?` any one; case-sensitive.
fn like(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the text position it was tried at, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || Some(c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

/// What a `Null` condition tests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NullKey {
    /// A single-valued key.
    Key(ConditionKey),
    /// `kms:EncryptionContextKeys`: present when the request has an encryption context.
    ContextKeys,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// `StringEquals`, `StringEqualsIgnoreCase`: the key is present and equals one of `values`.
    Equals {
        key: ConditionKey,
        ignore_case: bool,
        values: Vec<String>,
    },
    /// `Null`: the key is absent (`absent`) or present (`!absent`).
    Null { key: NullKey, absent: bool },
    /// `ForAllValues:StringLike` (`all`) or `ForAnyValue:StringLike` on
    /// `kms:EncryptionContextKeys`.
    ContextKeysLike { all: bool, patterns: Vec<String> },
}

impl Condition {
    fn holds(&self, context: &RequestContext) -> bool {
        match self {
            Self::Equals {
                key,
                ignore_case,
                values,
            } => {
                let Some(actual) = lookup(context, key) else {
                    return false;
                };
                values.iter().any(|v| {
                    if *ignore_case {
                        v.eq_ignore_ascii_case(actual)
                    } else {
                        v == actual
                    }
                })
            }
            Self::Null { key, absent } => {
                let present = match key {
                    NullKey::Key(key) => lookup(context, key).is_some(),
                    NullKey::ContextKeys => context_keys(context).next().is_some(),
                };
                present != *absent
            }
            Self::ContextKeysLike { all, patterns } => {
                let matches = |name: &str| patterns.iter().any(|p| like(p, name));
                if *all {
                    context_keys(context).all(matches)
                } else {
                    context_keys(context).any(matches)
                }
            }
        }
    }

    /// The conditions of one `operator: {key: values}` block.
    fn parse(operator: &str, key: &str, values: &Value) -> Result<Self, PolicyError> {
        let values = strings(values, key)?;
        match operator {
            "StringEquals" | "StringEqualsIgnoreCase" => Ok(Self::Equals {
                key: ConditionKey::parse(key)?,
                ignore_case: operator == "StringEqualsIgnoreCase",
                values,
            }),
            "Null" => {
                let absent = match values.as_slice() {
                    [one] if one == "true" => true,
                    [one] if one == "false" => false,
                    _ => return Err(err(format!("Null {key}: expected \"true\" or \"false\""))),
                };
                let key = if key == CONTEXT_KEYS {
                    NullKey::ContextKeys
                } else {
                    NullKey::Key(ConditionKey::parse(key)?)
                };
                Ok(Self::Null { key, absent })
            }
            "ForAllValues:StringLike" | "ForAnyValue:StringLike" if key == CONTEXT_KEYS => {
                Ok(Self::ContextKeysLike {
                    all: operator.starts_with("ForAllValues"),
                    patterns: values,
                })
            }
            "ForAllValues:StringLike" | "ForAnyValue:StringLike" => Err(err(format!(
                "{operator} is supported only on {CONTEXT_KEYS}, not `{key}`"
            ))),
            other => Err(err(format!("unsupported condition operator `{other}`"))),
        }
    }
}

/// Whom a statement applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principals {
    /// `"*"`, `{"AWS": "*"}`, or no `Principal` at all.
    Anyone,
    /// ARNs; an account (`arn:…:iam::ACCOUNT:root`) is kept as its 12-digit id.
    Named(Vec<PrincipalName>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalName {
    /// Every principal of this account.
    Account(String),
    /// This principal only (a role, a user...).
    Arn(String),
}

/// The account id of `arn:PARTITION:SERVICE::ACCOUNT:…`.
fn arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("arn"), Some(_), Some(_), Some(""), Some(account), Some(_))
            if is_account(account) =>
        {
            Some(account)
        }
        _ => None,
    }
}

fn is_account(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

impl Principals {
    fn parse(value: Option<&Value>) -> Result<Self, PolicyError> {
        let aws = match value {
            None => return Ok(Self::Anyone),
            Some(Value::String(s)) if s == "*" => return Ok(Self::Anyone),
            Some(Value::Object(map)) => {
                if let Some(other) = map.keys().find(|k| *k != "AWS") {
                    return Err(err(format!(
                        "Principal: only AWS principals are supported, not `{other}`"
                    )));
                }
                map.get("AWS")
                    .ok_or_else(|| err("Principal: expected {\"AWS\": …}"))?
            }
            Some(_) => return Err(err("Principal: expected \"*\" or {\"AWS\": …}")),
        };
        let names = strings(aws, "Principal")?;
        if names.iter().any(|n| n == "*") {
            return Ok(Self::Anyone);
        }
        names
            .into_iter()
            .map(|name| {
                if is_account(&name) {
                    return Ok(PrincipalName::Account(name));
                }
                // IAM allows no wildcard in a principal other than a lone `*`.
                let account = arn_account(&name)
                    .filter(|_| !name.contains('*') && !name.contains('?'))
                    .ok_or_else(|| {
                        err(format!(
                            "Principal `{name}`: expected an ARN, an account id or \"*\""
                        ))
                    })?;
                if name.ends_with(&format!(":iam::{account}:root")) {
                    Ok(PrincipalName::Account(account.to_owned()))
                } else {
                    Ok(PrincipalName::Arn(name))
                }
            })
            .collect::<Result<_, _>>()
            .map(Self::Named)
    }

    fn include(&self, caller: &str) -> bool {
        match self {
            Self::Anyone => true,
            Self::Named(names) => names.iter().any(|name| match name {
                PrincipalName::Account(account) => arn_account(caller) == Some(account.as_str()),
                PrincipalName::Arn(arn) => arn == caller,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    allow: bool,
    principals: Principals,
    /// Lowercased action patterns.
    actions: Vec<String>,
    /// `NotAction`: the statement is about every action that `actions` does not match.
    not_action: bool,
    conditions: Vec<Condition>,
}

impl Statement {
    fn matches(&self, caller: &str, action: &str, context: &RequestContext) -> bool {
        // Action names are case-insensitive in IAM; patterns were lowercased at load time.
        let action = action.to_ascii_lowercase();
        let listed = self
            .actions
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => action.starts_with(prefix),
                None => *pattern == action,
            });
        listed != self.not_action
            && self.principals.include(caller)
            && self.conditions.iter().all(|c| c.holds(context))
    }
}

/// Deserializes any JSON, failing on an object with a repeated key at any depth.
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NoDuplicateKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
                Ok(NoDuplicateKeys)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut seen = std::collections::BTreeSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("repeated key `{key}`")));
                    }
                    map.next_value::<NoDuplicateKeys>()?;
                }
                Ok(NoDuplicateKeys)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The outcome of evaluating a policy for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An `Allow` statement applies and no `Deny` does.
    Allowed,
    /// No statement applies: denied by default.
    NotAllowed,
    /// A `Deny` statement applies, whatever the `Allow` statements say.
    ExplicitDeny,
}

/// A parsed key policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    statements: Vec<Statement>,
    source: String,
}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| err(format!("{what}: expected strings")))
            })
            .collect(),
        _ => Err(err(format!(
            "{what}: expected a string or a non-empty list of strings"
        ))),
    }
}

impl KeyPolicy {
    /// A policy that allows every action to the emulator's one principal, like KMS's default key
    /// policy (which gives the account full control).
    pub fn allow_all() -> Self {
        Self::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions",
            "Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"}]}"#,
        )
        .unwrap_or_else(|_| Self {
            statements: Vec::new(),
            source: String::new(),
        })
    }

    /// Parses and checks a policy document.
    pub fn parse(json: &str) -> Result<Self, PolicyError> {
        // serde_json keeps the last of two equal keys; a policy with a repeated key (two
        // Condition blocks, say) would read stronger than it evaluates, so refuse it.
        serde_json::from_str::<NoDuplicateKeys>(json).map_err(|e| err(e.to_string()))?;
        let doc: Value = serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
        let doc = doc
            .as_object()
            .ok_or_else(|| err("expected a JSON object"))?;
        for key in doc.keys() {
            if !["Version", "Id", "Statement"].contains(&key.as_str()) {
                return Err(err(format!("unsupported field `{key}`")));
            }
        }
        let raw = match doc.get("Statement") {
            Some(Value::Array(items)) => items.clone(),
            Some(single @ Value::Object(_)) => vec![single.clone()],
            _ => return Err(err("Statement: expected an object or a list")),
        };
        let mut statements = Vec::new();
        for statement in &raw {
            let s = statement
                .as_object()
                .ok_or_else(|| err("Statement: expected objects"))?;
            for key in s.keys() {
                if ![
                    "Sid",
                    "Effect",
                    "Principal",
                    "Action",
                    "NotAction",
                    "Resource",
                    "Condition",
                ]
                .contains(&key.as_str())
                {
                    return Err(err(format!("unsupported statement field `{key}`")));
                }
            }
            let allow = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => true,
                Some("Deny") => false,
                _ => return Err(err("Effect: expected \"Allow\" or \"Deny\"")),
            };
            let (field, raw_actions) = match (s.get("Action"), s.get("NotAction")) {
                (Some(actions), None) => ("Action", actions),
                (None, Some(actions)) => ("NotAction", actions),
                _ => return Err(err("a statement needs exactly one of Action and NotAction")),
            };
            let actions: Vec<String> = strings(raw_actions, field)?
                .into_iter()
                .map(|a| a.to_ascii_lowercase())
                .collect();
            // IAM allows `*` and `?` anywhere; only a trailing `*` is evaluated here, so refuse
            // the rest rather than let a Deny silently not match.
            if let Some(bad) = actions.iter().find(|a| {
                a.contains('?') || a.trim_end_matches('*').contains('*') || !a.starts_with("kms:")
            }) {
                return Err(err(format!(
                    "{field} `{bad}`: only kms: actions with at most a trailing * are supported"
                )));
            }
            if let Some(resource) = s.get("Resource")
                && strings(resource, "Resource")? != ["*"]
            {
                return Err(err("Resource: only \"*\" is supported in a key policy"));
            }
            let mut conditions = Vec::new();
            if let Some(condition) = s.get("Condition") {
                let operators = condition
                    .as_object()
                    .ok_or_else(|| err("Condition: expected an object"))?;
                for (operator, entries) in operators {
                    let entries = entries
                        .as_object()
                        .ok_or_else(|| err("Condition: expected objects"))?;
                    for (key, values) in entries {
                        conditions.push(Condition::parse(operator, key, values)?);
                    }
                }
            }
            statements.push(Statement {
                allow,
                principals: Principals::parse(s.get("Principal"))?,
                actions,
                not_action: field == "NotAction",
                conditions,
            });
        }
        Ok(Self {
            statements,
            source: json.to_owned(),
        })
    }

    /// Whether `caller` (an ARN, e.g. `arn:aws:iam::111122223333:role/parent`) may perform
    /// `action` (e.g. `kms:Decrypt`) for a request with `context`: some `Allow` statement
    /// applies and no `Deny` statement does.
    pub fn allows(&self, caller: &str, action: &str, context: &RequestContext) -> bool {
        self.decide(caller, action, context) == Decision::Allowed
    }

    /// What the policy decides for `caller`, `action` and `context`, and why.
    pub fn decide(&self, caller: &str, action: &str, context: &RequestContext) -> Decision {
        let matching = |allow: bool| {
            self.statements
                .iter()
                .any(|s| s.allow == allow && s.matches(caller, action, context))
        };
        if matching(false) {
            Decision::ExplicitDeny
        } else if matching(true) {
            Decision::Allowed
        } else {
            Decision::NotAllowed
        }
    }

    /// The policy as it was given.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The key policy of a simulated deployment (`nitro-signer dev`, the end-to-end tests):
/// administration and `Encrypt` (for `keys import`) for `account_id`, `Decrypt` and
/// `GenerateDataKey` only for an enclave whose attestation document shows `pcrs` 0, 1 and 2 (hex)
/// — the same shape as a production policy from `nitro-signer policy`, with its explicit `Deny`
/// of those two actions without an attestation document. (The production policy's other `Deny`,
/// of every other action to the instance role, has no counterpart: here one principal both
/// administers and uses the key.)
pub fn attested_key_policy(
    account_id: &str,
    pcrs: &std::collections::BTreeMap<u8, String>,
) -> String {
    let pcr = |n: u8| pcrs.get(&n).cloned().unwrap_or_default();
    let principal = format!("arn:aws:iam::{account_id}:root");
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Administration",
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": ["kms:Create*", "kms:Describe*", "kms:List*", "kms:Put*", "kms:Encrypt"],
                "Resource": "*"
            },
            {
                "Sid": "NoDecryptWithoutAttestation",
                "Effect": "Deny",
                "Principal": {"AWS": principal},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
                "Condition": {"Null": {"kms:RecipientAttestation:ImageSha384": "true"}}
            },
            {
                "Sid": "DecryptOnlyInTheEnclave",
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
                "Condition": {"StringEqualsIgnoreCase": {
                    "kms:RecipientAttestation:ImageSha384": pcr(0),
                    "kms:RecipientAttestation:PCR1": pcr(1),
                    "kms:RecipientAttestation:PCR2": pcr(2)
                }}
            }
        ]
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whom the tests ask for.
    const CALLER: &str = "arn:aws:iam::111122223333:role/parent";

    const ENCLAVE_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[
      {"Sid":"Admin","Effect":"Allow","Principal":{"AWS":"*"},
       "Action":["kms:Create*","kms:Describe*","kms:Encrypt"],"Resource":"*"},
      {"Sid":"Enclave","Effect":"Allow","Principal":{"AWS":"*"},
       "Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*",
       "Condition":{"StringEqualsIgnoreCase":{
         "kms:RecipientAttestation:ImageSha384":"AB01",
         "kms:RecipientAttestation:PCR8":["ff00","ee00"]}}}]}"#;

    fn context(pairs: &[(ConditionKey, &str)]) -> RequestContext {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn attestation_conditions_gate_actions() {
        let policy = KeyPolicy::parse(ENCLAVE_ONLY).unwrap();
        let good = context(&[
            (ConditionKey::ImageSha384, "ab01"),
            (ConditionKey::Pcr(8), "ee00"),
        ]);
        assert!(policy.allows(CALLER, "kms:Decrypt", &good));
        assert!(policy.allows(CALLER, "kms:GenerateDataKey", &good));
        // No recipient: the condition keys are absent, so the statement does not apply.
        assert!(!policy.allows(CALLER, "kms:Decrypt", &RequestContext::new()));
        let wrong_image = context(&[
            (ConditionKey::ImageSha384, "ab02"),
            (ConditionKey::Pcr(8), "ee00"),
        ]);
        assert!(!policy.allows(CALLER, "kms:Decrypt", &wrong_image));
        let missing_pcr8 = context(&[(ConditionKey::ImageSha384, "ab01")]);
        assert!(!policy.allows(CALLER, "kms:Decrypt", &missing_pcr8));
        // Actions: wildcards and exact names.
        assert!(policy.allows(CALLER, "kms:CreateKey", &RequestContext::new()));
        assert!(policy.allows(CALLER, "kms:Encrypt", &RequestContext::new()));
        assert!(!policy.allows(CALLER, "kms:GenerateRandom", &good));
    }

    #[test]
    fn actions_are_case_insensitive() {
        let policy = KeyPolicy::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"},
              {"Effect":"Deny","Action":"KMS:decrypt","Resource":"*"}]}"#,
        )
        .unwrap();
        assert!(!policy.allows(CALLER, "kms:Decrypt", &RequestContext::new()));
        assert!(policy.allows(CALLER, "kms:Encrypt", &RequestContext::new()));
    }

    #[test]
    fn deny_overrides_allow() {
        let policy = KeyPolicy::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"},
              {"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}"#,
        )
        .unwrap();
        assert!(policy.allows(CALLER, "kms:Encrypt", &RequestContext::new()));
        assert!(!policy.allows(CALLER, "kms:Decrypt", &RequestContext::new()));
    }

    #[test]
    fn unsupported_features_are_refused_not_ignored() {
        for bad in [
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:Encrypt","NotAction":"kms:Decrypt",
               "Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Deny","NotAction":"kms:*Decrypt","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"*"},"Action":"kms:*",
               "Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},
               "Action":"kms:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::*:root"},
               "Action":"kms:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"role/parent"},
               "Action":"kms:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":"arn:aws:iam::111122223333:root",
               "Action":"kms:*","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"StringLike":{"kms:RecipientAttestation:PCR0":"*"}}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"StringEquals":{"kms:CallerAccount":"111122223333"}}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"StringEquals":{"kms:EncryptionContext:":"a"}}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"ForAllValues:StringLike":{"kms:EncryptionContext:a":"*"}}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":"a"}}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"Null":{"kms:EncryptionContext:a":"no"}}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:x"}]}"#,
            r#"{"Statement":[{"Effect":"Maybe","Action":"kms:*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":[]}]}"#,
            "[]",
            r#"{"Statement":[{"Effect":"Deny","Action":"kms:*Decrypt","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Deny","Action":"kms:Decryp?","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"StringEquals":{"kms:RecipientAttestation:PCR08":"00"}}}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"StringEquals":{"kms:RecipientAttestation:PCR+8":"00"}}}]}"#,
            // A repeated operator would keep only its last block.
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{
               "StringEquals":{"kms:RecipientAttestation:ImageSha384":"aa"},
               "StringEquals":{"kms:RecipientAttestation:PCR1":"bb"}}}]}"#,
        ] {
            assert!(KeyPolicy::parse(bad).is_err(), "{bad}");
        }
        assert!(KeyPolicy::allow_all().allows(CALLER, "kms:Decrypt", &RequestContext::new()));
    }

    #[test]
    fn principals_decide_whom_a_statement_applies_to() {
        let policy = KeyPolicy::parse(
            r#"{"Statement":[
              {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},
               "Action":"kms:DescribeKey","Resource":"*"},
              {"Effect":"Allow","Principal":{"AWS":["444455556666",
               "arn:aws:iam::111122223333:role/parent"]},"Action":"kms:Encrypt","Resource":"*"},
              {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/mallory"},
               "Action":"kms:*","Resource":"*"}]}"#,
        )
        .unwrap();
        let none = RequestContext::new();
        // The account names every principal of the account (its IAM policies decide, and the
        // emulator has none), and no other account's.
        for caller in [
            CALLER,
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:user/alice",
        ] {
            assert!(policy.allows(caller, "kms:DescribeKey", &none), "{caller}");
        }
        assert!(!policy.allows("arn:aws:iam::444455556666:root", "kms:DescribeKey", &none));
        // A role names that role only; an account id names the account.
        assert!(policy.allows(CALLER, "kms:Encrypt", &none));
        assert!(!policy.allows("arn:aws:iam::111122223333:role/other", "kms:Encrypt", &none));
        assert!(policy.allows("arn:aws:iam::444455556666:role/x", "kms:Encrypt", &none));
        // A Deny for one principal: that principal only, whatever the Allows say.
        let mallory = "arn:aws:iam::111122223333:user/mallory";
        assert_eq!(
            policy.decide(mallory, "kms:DescribeKey", &none),
            Decision::ExplicitDeny
        );
        assert_eq!(
            policy.decide(CALLER, "kms:Decrypt", &none),
            Decision::NotAllowed
        );
    }

    #[test]
    fn not_action_denies_everything_but_the_actions_listed() {
        // The shape `nitro-signer policy` gives the instance role: a broad Allow (a mistake, or
        // an IAM policy through an account statement) cannot give it more than the Denies leave.
        let policy = KeyPolicy::parse(
            r#"{"Statement":[
              {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"},
              {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:role/parent"},
               "NotAction":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*"},
              {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:role/parent"},
               "Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*",
               "Condition":{"Null":{"kms:RecipientAttestation:ImageSha384":"true"}}}]}"#,
        )
        .unwrap();
        let attested = context(&[(ConditionKey::ImageSha384, "ab01")]);
        let none = RequestContext::new();
        for action in [
            "kms:Encrypt",
            "kms:CreateGrant",
            "kms:PutKeyPolicy",
            "kms:ReEncryptFrom",
            "kms:GenerateDataKeyWithoutPlaintext",
            "kms:GenerateDataKeyPair",
            "kms:DescribeKey",
            "kms:ScheduleKeyDeletion",
        ] {
            assert_eq!(
                policy.decide(CALLER, action, &attested),
                Decision::ExplicitDeny,
                "{action}"
            );
            // Another principal is not concerned.
            assert!(
                policy.allows("arn:aws:iam::111122223333:role/admin", action, &none),
                "{action}"
            );
        }
        for action in ["kms:Decrypt", "KMS:generatedatakey"] {
            assert!(policy.allows(CALLER, action, &attested), "{action}");
            // `Null` "true": without the attestation key, denied.
            assert_eq!(
                policy.decide(CALLER, action, &none),
                Decision::ExplicitDeny,
                "{action}"
            );
        }
        // A condition key other than the one tested as null does not stand in for it.
        let pcr1_only = context(&[(ConditionKey::Pcr(1), "ab01")]);
        assert!(!policy.allows(CALLER, "kms:Decrypt", &pcr1_only));
        // NotAction in an Allow: every action but those.
        let policy = KeyPolicy::parse(
            r#"{"Statement":[{"Effect":"Allow","NotAction":"kms:Decrypt","Resource":"*"}]}"#,
        )
        .unwrap();
        assert!(policy.allows(CALLER, "kms:Encrypt", &none));
        assert!(!policy.allows(CALLER, "kms:Decrypt", &none));
    }

    #[test]
    fn wildcards_follow_string_like() {
        for (pattern, text) in [
            ("nitro-signer:*", "nitro-signer:kind"),
            ("nitro-signer:*", "nitro-signer:"),
            ("*", ""),
            ("a?c", "abc"),
            ("*:kind", "nitro-signer:kind"),
            ("a*b*c", "aXbYbZc"),
        ] {
            assert!(like(pattern, text), "{pattern} {text}");
        }
        for (pattern, text) in [
            ("nitro-signer:*", "other:kind"),
            ("nitro-signer:*", "Nitro-Signer:kind"),
            ("nitro-signer:*", "nitro-signer"),
            ("a?c", "ac"),
            ("abc", "abcd"),
            ("", "a"),
        ] {
            assert!(!like(pattern, text), "{pattern} {text}");
        }
    }

    #[test]
    fn encryption_context_conditions() {
        // The shape `nitro-signer policy` gives the parent's role for `Encrypt`.
        let policy = KeyPolicy::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*","Condition":{
              "Null":{"kms:EncryptionContext:nitro-signer:kind":"false"},
              "ForAllValues:StringLike":{"kms:EncryptionContextKeys":"nitro-signer:*"}}}]}"#,
        )
        .unwrap();
        let ec = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| {
                    (
                        ConditionKey::EncryptionContext((*k).to_owned()),
                        (*v).to_owned(),
                    )
                })
                .collect::<RequestContext>()
        };
        let ours = ec(&[("nitro-signer:kind", "seed"), ("nitro-signer:version", "1")]);
        assert!(policy.allows(CALLER, "kms:Encrypt", &ours));
        // The entry's key matches without regard to case, as in KMS.
        assert!(policy.allows(CALLER, "kms:Encrypt", &ec(&[("nitro-signer:KIND", "seed")])));
        assert!(!policy.allows(CALLER, "kms:Decrypt", &ours));
        for refused in [
            ec(&[]),
            ec(&[("nitro-signer:version", "1")]),
            ec(&[("nitro-signer:kind", "seed"), ("tenant", "a")]),
        ] {
            assert!(
                !policy.allows(CALLER, "kms:Encrypt", &refused),
                "{refused:?}"
            );
        }

        let policy = KeyPolicy::parse(
            r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{
              "StringEquals":{"kms:EncryptionContext:tenant":["a","b"]},
              "ForAnyValue:StringLike":{"kms:EncryptionContextKeys":"ten?nt"},
              "Null":{"kms:EncryptionContext:secret":"true","kms:EncryptionContextKeys":"false"}}}]}"#,
        )
        .unwrap();
        assert!(policy.allows(CALLER, "kms:Decrypt", &ec(&[("tenant", "b")])));
        assert!(!policy.allows(CALLER, "kms:Decrypt", &ec(&[("tenant", "B")])));
        assert!(!policy.allows(
            CALLER,
            "kms:Decrypt",
            &ec(&[("tenant", "a"), ("secret", "x")])
        ));
        assert!(!policy.allows(CALLER, "kms:Decrypt", &ec(&[])));
    }
}
