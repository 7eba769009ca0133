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
