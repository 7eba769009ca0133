//! The Flow transaction JSON: what Flow's access API and FCL carry, parsed strictly and checked
//! against this crate's limits.
//!
//! # Shape
//!
//! ```json
//! {
//!   "script": "transaction { prepare(acct: &Account) {} }",
//!   "arguments": ["{\"type\":\"UFix64\",\"value\":\"10.0\"}"],
//!   "referenceBlockId": "0xf0e4c2f76c58916ec258f246851bea091d14d4247a2fc3e18694461b1816e13b",
//!   "gasLimit": 9999,
//!   "proposalKey": {"address": "0x01cf0e2f2f715450", "keyIndex": 0, "sequenceNumber": 42},
//!   "payer": "0x01cf0e2f2f715450",
//!   "authorizers": ["0x01cf0e2f2f715450"],
//!   "payloadSignatures": [{"address": "0x01cf0e2f2f715450", "keyIndex": 1, "signature": "0x…"}]
//! }
//! ```
//!
//! # Rules
//!
//! - The JSON rules of every payload ([`nitro_signer_eth::json::check`]): one document, no
//!   repeated key at any depth, no `$serde_json::private::` key. Unknown fields are refused;
//!   errors name the field's path (`proposalKey.keyIndex`).
//! - Every field is required except `payloadSignatures` (absent means none). Nothing that
//!   decides what gets signed has a default.
//! - Numbers, addresses and hex: see [`crate::format`](mod@crate::format).
//! - `script`: the Cadence source text; its UTF-8 bytes are encoded. At most 64 KiB.
//! - `arguments`: each the exact JSON-Cadence text whose UTF-8 bytes are encoded, as FCL sends
//!   them (`JSON.stringify` output). Each must itself be one JSON document under the same rules
//!   (no repeated keys), and must not end in a line feed: flow-go-sdk strips one trailing `\n`
//!   from each argument before encoding and FCL does not, so such an argument would have two
//!   signing messages. At most 256 arguments, 1 MiB in all.
//! - `authorizers`: at most 64, none twice (Flow refuses a transaction that names an authorizer
//!   twice).
//! - `payloadSignatures`: at most 256; `signature` at most 256 bytes (ECDSA signatures are 64;
//!   any length is kept as flow-go-sdk does, including empty); each signature's address must be
//!   a signer of the transaction (the proposer, the payer or an authorizer), and no
//!   `(address, keyIndex)` pair may sign twice, so that the envelope's order is fully defined.
//!   Signature extension data (WebAuthn) is not supported.

use serde::{Deserialize, Serialize};

use crate::{FlowError, format, format::Address};

/// Largest `script`, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
/// Most `arguments`.
pub const MAX_ARGUMENTS: usize = 256;
/// Largest total size of the `arguments`, in bytes.
pub const MAX_ARGUMENT_BYTES: usize = 1024 * 1024;
/// Most `authorizers`.
pub const MAX_AUTHORIZERS: usize = 64;
/// Most `payloadSignatures`.
pub const MAX_PAYLOAD_SIGNATURES: usize = 256;
/// Largest `signature`, in bytes.
pub const MAX_SIGNATURE_BYTES: usize = 256;

/// A Flow transaction to sign (see the module docs for the rules). Parse it with
/// [`FlowTransaction::from_json`]; the fields are public for callers that build one in code,
/// and [`FlowTransaction::validate`] checks the rules again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowTransaction {
    /// Cadence source text.
    pub script: String,
    /// JSON-Cadence arguments, each the exact text to encode.
    pub arguments: Vec<String>,
    /// The block the transaction's expiry counts from.
    #[serde(with = "format::block_id")]
    pub reference_block_id: [u8; 32],
    /// The computation limit.
    #[serde(with = "format::uint")]
    pub gas_limit: u64,
    /// The key that proposes the transaction and whose sequence number it uses.
    pub proposal_key: ProposalKey,
    /// The account that pays the fees.
    pub payer: Address,
    /// The accounts whose storage the transaction may touch, in order.
    pub authorizers: Vec<Address>,
    /// Signatures over the payload, for the payer's envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_signatures: Option<Vec<PayloadSignature>>,
}

/// The proposal key of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProposalKey {
    /// The proposer's account.
    pub address: Address,
    /// The index of the key on that account.
    #[serde(with = "format::uint")]
    pub key_index: u32,
    /// The key's sequence number this transaction uses.
    #[serde(with = "format::uint")]
    pub sequence_number: u64,
}

/// A signature over the payload by one key of one signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PayloadSignature {
    /// The signing account.
    pub address: Address,
    /// The index of the key on that account.
    #[serde(with = "format::uint")]
    pub key_index: u32,
    /// The signature bytes (hex in JSON).
    #[serde(with = "format::bytes")]
    pub signature: Vec<u8>,
}

impl FlowTransaction {
    /// Parses and validates a transaction from JSON bytes: first the JSON rules of every payload
    /// ([`nitro_signer_eth::json::check`]), then the shape, then [`FlowTransaction::validate`].
    pub fn from_json(json: &[u8]) -> Result<Self, FlowError> {
        nitro_signer_eth::json::check(json)?;
        let mut de = serde_json::Deserializer::from_slice(json);
        let tx: Self = serde_path_to_error::deserialize(&mut de).map_err(FlowError::json)?;
        de.end().map_err(|e| FlowError::Json {
            path: ".".into(),
            message: e.to_string(),
        })?;
        tx.validate()?;
        Ok(tx)
    }

    /// Checks the rules that the shape alone does not (see the module docs).
    pub fn validate(&self) -> Result<(), FlowError> {
        if self.script.len() > MAX_SCRIPT_BYTES {
            return Err(FlowError::invalid(
                "script",
                format!("{} bytes; at most {MAX_SCRIPT_BYTES}", self.script.len()),
            ));
        }
        if self.arguments.len() > MAX_ARGUMENTS {
            return Err(FlowError::invalid(
                "arguments",
                format!(
                    "{} arguments; at most {MAX_ARGUMENTS}",
                    self.arguments.len()
                ),
            ));
        }
        let total: usize = self.arguments.iter().map(String::len).sum();
        if total > MAX_ARGUMENT_BYTES {
            return Err(FlowError::invalid(
                "arguments",
                format!("{total} bytes in all; at most {MAX_ARGUMENT_BYTES}"),
            ));
        }
        for (i, arg) in self.arguments.iter().enumerate() {
            if arg.ends_with('\n') {
                return Err(FlowError::invalid(
                    format!("arguments[{i}]"),
                    "ends in a line feed, which flow-go-sdk strips before encoding and FCL \
                     keeps: remove it",
                ));
            }
            nitro_signer_eth::json::check(arg.as_bytes()).map_err(|e| {
                FlowError::invalid(
                    format!("arguments[{i}]"),
                    format!("not one JSON-Cadence document: {e}"),
                )
            })?;
        }
        if self.authorizers.len() > MAX_AUTHORIZERS {
            return Err(FlowError::invalid(
                "authorizers",
                format!(
                    "{} authorizers; at most {MAX_AUTHORIZERS}",
                    self.authorizers.len()
                ),
            ));
        }
        for (i, a) in self.authorizers.iter().enumerate() {
            if self.authorizers.iter().take(i).any(|b| b == a) {
                return Err(FlowError::invalid(
                    format!("authorizers[{i}]"),
                    format!("{a} is already an authorizer; Flow refuses repeated authorizers"),
                ));
            }
        }
        // Parsing refuses the zero address; a transaction built in code is checked here.
        let zero = Address([0; 8]);
        let named = [
            ("proposalKey.address", self.proposal_key.address),
            ("payer", self.payer),
        ];
        if let Some((path, _)) = named.iter().find(|(_, a)| *a == zero) {
            return Err(FlowError::invalid(
                *path,
                "the zero address is not an account",
            ));
        }
        if let Some(i) = self.authorizers.iter().position(|a| *a == zero) {
            return Err(FlowError::invalid(
                format!("authorizers[{i}]"),
                "the zero address is not an account",
            ));
        }
        let sigs = self.payload_signatures.as_deref().unwrap_or_default();
        if sigs.len() > MAX_PAYLOAD_SIGNATURES {
            return Err(FlowError::invalid(
                "payloadSignatures",
                format!(
                    "{} signatures; at most {MAX_PAYLOAD_SIGNATURES}",
                    sigs.len()
                ),
            ));
        }
        let signers = self.signers();
        for (i, sig) in sigs.iter().enumerate() {
            if sig.signature.len() > MAX_SIGNATURE_BYTES {
                return Err(FlowError::invalid(
                    format!("payloadSignatures[{i}].signature"),
                    format!(
                        "{} bytes; at most {MAX_SIGNATURE_BYTES}",
                        sig.signature.len()
                    ),
                ));
            }
            if !signers.contains(&sig.address) {
                return Err(FlowError::invalid(
                    format!("payloadSignatures[{i}].address"),
                    format!(
                        "{} is not a signer of the transaction (not the proposer, the payer \
                         or an authorizer)",
                        sig.address
                    ),
                ));
            }
            if sigs
                .iter()
                .take(i)
                .any(|s| s.address == sig.address && s.key_index == sig.key_index)
            {
                return Err(FlowError::invalid(
                    format!("payloadSignatures[{i}]"),
                    format!(
                        "key {} of {} already signed the payload",
                        sig.key_index, sig.address
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The transaction's signers in signer-index order: the proposer, the payer, then the
    /// authorizers in order, each account at its first appearance only (as flow-go-sdk's
    /// `signerList` and FCL's `collectSigners` build it). A payload signature names its signer
    /// by the position in this list.
    pub fn signers(&self) -> Vec<Address> {
        let mut signers = Vec::with_capacity(2 + self.authorizers.len());
        for a in [self.proposal_key.address, self.payer]
            .into_iter()
            .chain(self.authorizers.iter().copied())
        {
            if !signers.contains(&a) {
                signers.push(a);
            }
        }
        signers
    }
}
