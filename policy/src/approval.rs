//! Placeholder: replaced by the approval module.
use std::collections::BTreeSet;

/// An approver's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproverKey {
    /// Ed25519, 32 bytes.
    Ed25519([u8; 32]),
    /// P-256, SEC1.
    P256(Box<[u8]>),
}

/// An approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The approver's name.
    pub approver: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// The signature.
    pub signature: Vec<u8>,
}

/// Placeholder.
pub fn placeholder() -> BTreeSet<String> {
    BTreeSet::new()
}

/// Placeholder error.
#[derive(Debug, thiserror::Error)]
#[error("bad key")]
pub struct ApprovalError;

impl ApproverKey {
    /// Placeholder.
    pub fn ed25519(bytes: &[u8]) -> Result<Self, ApprovalError> {
        bytes
            .try_into()
            .map(Self::Ed25519)
            .map_err(|_| ApprovalError)
    }
    /// Placeholder.
    pub fn p256(bytes: &[u8]) -> Result<Self, ApprovalError> {
        Ok(Self::P256(bytes.into()))
    }
}

/// Placeholder.
pub struct Statement<'a> {
    /// Key id.
    pub key_id: &'a [u8; 32],
    /// User.
    pub user_id: Option<&'a str>,
    /// Subject.
    pub subject: &'a [u8; 32],
    /// Now.
    pub now: u64,
}

/// Placeholder.
pub fn batch_subject(_hashes: &[[u8; 32]]) -> [u8; 32] {
    [0; 32]
}

/// Placeholder.
pub fn valid_approvers<'p>(
    _approvers: &'p std::collections::BTreeMap<String, ApproverKey>,
    _approvals: &[Approval],
    _statement: &Statement<'_>,
) -> BTreeSet<&'p str> {
    BTreeSet::new()
}

/// Placeholder.
pub fn policy_subject(_canonical: &[u8]) -> [u8; 32] {
    [0; 32]
}
