//! Roles, hashing and account keys: which message a signer signs, and how it is hashed.
//!
//! # Roles
//!
//! The caller says which role it signs for and which `(address, keyIndex)` it is;
//! [`FlowTransaction::signing_message`] refuses a role the signer does not hold:
//!
//! - [`Role::Proposer`]: the signer is exactly the proposal key (`proposalKey.address` and
//!   `proposalKey.keyIndex`); signs the payload.
//! - [`Role::Authorizer`]: the signer's address is one of `authorizers` (any of its keys);
//!   signs the payload.
//! - [`Role::Payer`]: the signer's address is `payer` (any of its keys); signs the envelope,
//!   which covers the `payloadSignatures`.
//!
//! A payload role refuses a transaction with a non-empty `payloadSignatures`: payload signers
//! sign before those exist, and a request that carries signatures the message does not cover
//! would say more than what is signed. (An empty list is accepted.)
//!
//! # Hashing
//!
//! The message is hashed with the account key's hash algorithm, [`HashAlgorithm::Sha2_256`] or
//! [`HashAlgorithm::Sha3_256`] (Flow codes 1 and 3), by [`hash`].

use alloy_rlp::Encodable;
use serde::{Deserialize, Serialize};

use crate::{FlowError, FlowTransaction, format, format::Address};

/// The hash algorithm of a Flow account key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashAlgorithm {
    /// SHA2-256, Flow code 1.
    #[serde(rename = "sha2-256")]
    Sha2_256,
    /// SHA3-256, Flow code 3.
    #[serde(rename = "sha3-256")]
    Sha3_256,
}

impl HashAlgorithm {
    /// The algorithm's code in Flow account keys.
    pub const fn code(self) -> u8 {
        match self {
            Self::Sha2_256 => 1,
            Self::Sha3_256 => 3,
        }
    }

    /// The algorithm with Flow code `code`, if it is one of these two.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Sha2_256),
            3 => Some(Self::Sha3_256),
            _ => None,
        }
    }
}

/// The role a signature is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The proposal key's signature, over the payload.
    Proposer,
    /// An authorizer's signature, over the payload.
    Authorizer,
    /// The payer's signature, over the envelope.
    Payer,
}

impl Role {
    /// The role's JSON name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Proposer => "proposer",
            Self::Authorizer => "authorizer",
            Self::Payer => "payer",
        }
    }
}

/// Which account key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Signer {
    /// The signing account.
    pub address: Address,
    /// The index of the key on that account.
    #[serde(with = "format::uint")]
    pub key_index: u32,
}

impl FlowTransaction {
    /// Checks the transaction's rules ([`FlowTransaction::validate`]) and that `signer` holds
    /// `role` in it (see the module docs), and returns the message that role signs: the payload
    /// message for the proposer and the authorizers, the envelope message for the payer. Hash
    /// it with [`hash`].
    pub fn signing_message(&self, role: Role, signer: &Signer) -> Result<Vec<u8>, FlowError> {
        self.validate()?;
        let refuse = |message: String| FlowError::Role {
            role: role.name(),
            message,
        };
        match role {
            Role::Proposer | Role::Authorizer => {
                if self
                    .payload_signatures
                    .as_ref()
                    .is_some_and(|s| !s.is_empty())
                {
                    return Err(refuse(
                        "payloadSignatures must be absent or empty: the payload roles sign \
                         before payload signatures exist"
                            .into(),
                    ));
                }
                if role == Role::Proposer
                    && (signer.address != self.proposal_key.address
                        || signer.key_index != self.proposal_key.key_index)
                {
                    return Err(refuse(format!(
                        "key {} of {} is not the proposal key (key {} of {})",
                        signer.key_index,
                        signer.address,
                        self.proposal_key.key_index,
                        self.proposal_key.address
                    )));
                }
                if role == Role::Authorizer && !self.authorizers.contains(&signer.address) {
                    return Err(refuse(format!(
                        "{} is not one of the transaction's authorizers",
                        signer.address
                    )));
                }
                Ok(self.payload_message())
            }
            Role::Payer => {
                if signer.address != self.payer {
                    return Err(refuse(format!(
                        "{} is not the transaction's payer ({})",
                        signer.address, self.payer
                    )));
                }
                self.envelope_message()
            }
        }
    }
}

/// The 32-byte digest of `message` under `algorithm`: the value an account key of that hash
/// algorithm signs.
pub fn hash(algorithm: HashAlgorithm, message: &[u8]) -> [u8; 32] {
    let algorithm = match algorithm {
        HashAlgorithm::Sha2_256 => &aws_lc_rs::digest::SHA256,
        HashAlgorithm::Sha3_256 => &aws_lc_rs::digest::SHA3_256,
    };
    let digest = aws_lc_rs::digest::digest(algorithm, message);
    let mut out = [0u8; 32];
    for (o, d) in out.iter_mut().zip(digest.as_ref()) {
        *o = *d;
    }
    out
}

/// Flow's signature algorithm code for ECDSA on P-256.
pub const SIGN_ALGO_ECDSA_P256: u8 = 2;
/// Flow's signature algorithm code for ECDSA on secp256k1.
pub const SIGN_ALGO_ECDSA_SECP256K1: u8 = 3;
/// The weight of a key that signs alone (Flow's signing threshold is 1000).
pub const FULL_WEIGHT: u16 = 1000;

/// An account key as flow-go-sdk's `AccountKey.Encode` encodes it, to add it to an account:
/// RLP `[publicKey, signAlgo, hashAlgo, weight]`, where `publicKey` is the 64-byte `x ‖ y` of
/// the public key (no `0x04` prefix), `signAlgo` is [`SIGN_ALGO_ECDSA_P256`] or
/// [`SIGN_ALGO_ECDSA_SECP256K1`], `hashAlgo` is [`HashAlgorithm::code`] and `weight` is usually
/// [`FULL_WEIGHT`].
pub fn account_key_rlp(
    public_key_xy: &[u8; 64],
    sign_algo: u8,
    hash_algo: HashAlgorithm,
    weight: u16,
) -> Vec<u8> {
    let hash_code = hash_algo.code();
    let payload_length =
        public_key_xy.length() + sign_algo.length() + hash_code.length() + weight.length();
    let header = alloy_rlp::Header {
        list: true,
        payload_length,
    };
    let mut out = Vec::with_capacity(header.length_with_payload());
    header.encode(&mut out);
    public_key_xy.encode(&mut out);
    sign_algo.encode(&mut out);
    hash_code.encode(&mut out);
    weight.encode(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_codes_round_trip() {
        for alg in [HashAlgorithm::Sha2_256, HashAlgorithm::Sha3_256] {
            assert_eq!(HashAlgorithm::from_code(alg.code()), Some(alg));
        }
        assert_eq!(HashAlgorithm::from_code(2), None);
        assert_eq!(
            serde_json::to_string(&HashAlgorithm::Sha3_256).unwrap(),
            r#""sha3-256""#
        );
    }

    #[test]
    fn hashes_match_known_digests() {
        // FIPS 180-2 and FIPS 202 test vectors for "abc".
        assert_eq!(
            hash(HashAlgorithm::Sha2_256, b"abc"),
            hex_32("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            hash(HashAlgorithm::Sha3_256, b"abc"),
            hex_32("3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532")
        );
    }

    fn hex_32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }
}
