//! The signable messages: `TRANSACTION_DOMAIN_TAG ‖ rlp(payload)` and
//! `TRANSACTION_DOMAIN_TAG ‖ rlp(envelope)`, as flow-go-sdk and FCL (`encode.ts`) build them.
//!
//! - payload = `[script, [argument…], referenceBlockId, gasLimit, proposalKey.address,
//!   proposalKey.keyIndex, proposalKey.sequenceNumber, payer, [authorizer…]]`: byte strings for
//!   the script, the arguments (their UTF-8 bytes), the block id (32 bytes) and the addresses
//!   (8 bytes each), RLP unsigned integers (minimal big-endian, 0 as the empty string) for the
//!   numbers;
//! - envelope = `[payload, [[signerIndex, keyIndex, signature]…]]`, where `signerIndex` is the
//!   signature's address's position in [`FlowTransaction::signers`], sorted by `signerIndex`
//!   then `keyIndex`;
//! - each message is prefixed with [`TRANSACTION_DOMAIN_TAG`]: `FLOW-V0.0-transaction` in UTF-8,
//!   right-padded with zero bytes to 32.
//!
//! Each message is built in one allocation of its exact size.

use alloy_rlp::{Encodable, Header};

use crate::{FlowError, FlowTransaction};

/// The domain tag of transaction messages: `FLOW-V0.0-transaction`, right-padded with zeros to
/// 32 bytes.
// 21 bytes of text and 11 of padding; the array type checks the length.
pub const TRANSACTION_DOMAIN_TAG: [u8; 32] = *b"FLOW-V0.0-transaction\0\0\0\0\0\0\0\0\0\0\0";

/// The payload lengths (RLP payload lengths, headers excluded) of the lists in a payload.
struct PayloadLengths {
    arguments: usize,
    authorizers: usize,
    payload: usize,
}

fn list(payload_length: usize) -> Header {
    Header {
        list: true,
        payload_length,
    }
}

impl FlowTransaction {
    fn payload_lengths(&self) -> PayloadLengths {
        let arguments = self.arguments.iter().map(|a| a.as_bytes().length()).sum();
        let authorizers = self.authorizers.iter().map(|a| a.0.length()).sum();
        let payload = self.script.as_bytes().length()
            + list(arguments).length_with_payload()
            + self.reference_block_id.length()
            + self.gas_limit.length()
            + self.proposal_key.address.0.length()
            + self.proposal_key.key_index.length()
            + self.proposal_key.sequence_number.length()
            + self.payer.0.length()
            + list(authorizers).length_with_payload();
        PayloadLengths {
            arguments,
            authorizers,
            payload,
        }
    }

    fn encode_payload(&self, lengths: &PayloadLengths, out: &mut Vec<u8>) {
        list(lengths.payload).encode(out);
        self.script.as_bytes().encode(out);
        list(lengths.arguments).encode(out);
        for a in &self.arguments {
            a.as_bytes().encode(out);
        }
        self.reference_block_id.encode(out);
        self.gas_limit.encode(out);
        self.proposal_key.address.0.encode(out);
        self.proposal_key.key_index.encode(out);
        self.proposal_key.sequence_number.encode(out);
        self.payer.0.encode(out);
        list(lengths.authorizers).encode(out);
        for a in &self.authorizers {
            a.0.encode(out);
        }
    }

    /// `TRANSACTION_DOMAIN_TAG ‖ rlp(payload)`: what the proposer and the authorizers sign.
    /// This encodes what it is given; [`FlowTransaction::signing_message`] also checks the rules
    /// and the role.
    pub fn payload_message(&self) -> Vec<u8> {
        let lengths = self.payload_lengths();
        let mut out = Vec::with_capacity(
            TRANSACTION_DOMAIN_TAG.len() + list(lengths.payload).length_with_payload(),
        );
        out.extend_from_slice(&TRANSACTION_DOMAIN_TAG);
        self.encode_payload(&lengths, &mut out);
        out
    }

    /// `TRANSACTION_DOMAIN_TAG ‖ rlp(envelope)`: what the payer signs, over the payload and the
    /// `payloadSignatures` (none when absent). Fails when a payload signature's address is not
    /// a signer of the transaction.
    pub fn envelope_message(&self) -> Result<Vec<u8>, FlowError> {
        let signers = self.signers();
        let sigs = self.payload_signatures.as_deref().unwrap_or_default();
        let mut sorted = Vec::with_capacity(sigs.len());
        for (i, sig) in sigs.iter().enumerate() {
            let index = signers
                .iter()
                .position(|a| *a == sig.address)
                .ok_or_else(|| {
                    FlowError::invalid(
                        format!("payloadSignatures[{i}].address"),
                        format!("{} is not a signer of the transaction", sig.address),
                    )
                })?;
            let len = index.length() + sig.key_index.length() + sig.signature.as_slice().length();
            sorted.push((index, sig.key_index, sig.signature.as_slice(), len));
        }
        // A stable sort, as FCL's: equal pairs (refused by `validate`) keep their order.
        sorted.sort_by_key(|&(index, key_index, _, _)| (index, key_index));
        let signatures: usize = sorted
            .iter()
            .map(|&(_, _, _, len)| list(len).length_with_payload())
            .sum();

        let lengths = self.payload_lengths();
        let envelope =
            list(lengths.payload).length_with_payload() + list(signatures).length_with_payload();
        let mut out =
            Vec::with_capacity(TRANSACTION_DOMAIN_TAG.len() + list(envelope).length_with_payload());
        out.extend_from_slice(&TRANSACTION_DOMAIN_TAG);
        list(envelope).encode(&mut out);
        self.encode_payload(&lengths, &mut out);
        list(signatures).encode(&mut out);
        for (index, key_index, signature, len) in sorted {
            list(len).encode(&mut out);
            index.encode(&mut out);
            key_index.encode(&mut out);
            signature.encode(&mut out);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_tag_is_the_padded_text() {
        assert_eq!(&TRANSACTION_DOMAIN_TAG[..21], b"FLOW-V0.0-transaction");
        assert!(TRANSACTION_DOMAIN_TAG[21..].iter().all(|b| *b == 0));
    }
}
