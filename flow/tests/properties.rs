//! Properties over arbitrary transactions: encoding never panics, the payload and envelope RLP
//! decode back (with alloy-rlp's decoder) to the same fields, JSON round-trips, and arbitrary
//! bytes never make the parser panic.

#![cfg(test)]

use alloy_rlp::{Decodable, Header};
use nitro_signer_flow::{
    Address, FlowTransaction, PayloadSignature, ProposalKey, Role, Signer, TRANSACTION_DOMAIN_TAG,
};
use proptest::prelude::*;

fn address() -> impl Strategy<Value = Address> {
    any::<[u8; 8]>()
        .prop_filter("not zero", |a| *a != [0; 8])
        .prop_map(Address)
}

/// Small address space so that roles overlap often.
fn small_address() -> impl Strategy<Value = Address> {
    prop_oneof![(1u64..6).prop_map(|i| Address(i.to_be_bytes())), address()]
}

fn argument() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| serde_json::json!({"type": "String", "value": s}).to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("null".to_string()),
    ]
}

fn transaction() -> impl Strategy<Value = FlowTransaction> {
    (
        any::<String>(),
        prop::collection::vec(argument(), 0..5),
        any::<[u8; 32]>(),
        any::<u64>(),
        (small_address(), any::<u32>(), any::<u64>()),
        small_address(),
        prop::collection::btree_set(small_address(), 0..6),
        prop::collection::vec(
            (
                0usize..16,
                0u32..4,
                prop::collection::vec(any::<u8>(), 0..80),
            ),
            0..6,
        ),
        any::<bool>(),
    )
        .prop_map(
            |(script, arguments, block, gas, (pa, pk, seq), payer, auths, sigs, has_sigs)| {
                let mut tx = FlowTransaction {
                    script,
                    arguments,
                    reference_block_id: block,
                    gas_limit: gas,
                    proposal_key: ProposalKey {
                        address: pa,
                        key_index: pk,
                        sequence_number: seq,
                    },
                    payer,
                    authorizers: auths.into_iter().collect(),
                    payload_signatures: None,
                };
                let signers = tx.signers();
                let mut out: Vec<PayloadSignature> = Vec::new();
                for (who, key_index, signature) in sigs {
                    let address = signers[who % signers.len()];
                    if !out
                        .iter()
                        .any(|s| s.address == address && s.key_index == key_index)
                    {
                        out.push(PayloadSignature {
                            address,
                            key_index,
                            signature,
                        });
                    }
                }
                if has_sigs {
                    tx.payload_signatures = Some(out);
                }
                tx
            },
        )
}

/// The fields of a payload as decoded from RLP.
#[derive(Debug, PartialEq)]
struct Decoded {
    script: Vec<u8>,
    arguments: Vec<Vec<u8>>,
    block: [u8; 32],
    gas: u64,
    proposer: [u8; 8],
    key_index: u32,
    sequence: u64,
    payer: [u8; 8],
    authorizers: Vec<[u8; 8]>,
}

fn bytes(buf: &mut &[u8]) -> Vec<u8> {
    Header::decode_bytes(buf, false).unwrap().to_vec()
}

fn list<'a>(buf: &mut &'a [u8]) -> &'a [u8] {
    Header::decode_bytes(buf, true).unwrap()
}

fn decode_payload(buf: &mut &[u8]) -> Decoded {
    let mut p = list(buf);
    let script = bytes(&mut p);
    let mut a = list(&mut p);
    let mut arguments = Vec::new();
    while !a.is_empty() {
        arguments.push(bytes(&mut a));
    }
    let block = <[u8; 32]>::decode(&mut p).unwrap();
    let gas = u64::decode(&mut p).unwrap();
    let proposer = <[u8; 8]>::decode(&mut p).unwrap();
    let key_index = u32::decode(&mut p).unwrap();
    let sequence = u64::decode(&mut p).unwrap();
    let payer = <[u8; 8]>::decode(&mut p).unwrap();
    let mut au = list(&mut p);
    let mut authorizers = Vec::new();
    while !au.is_empty() {
        authorizers.push(<[u8; 8]>::decode(&mut au).unwrap());
    }
    assert!(p.is_empty(), "trailing fields in the payload");
    Decoded {
        script,
        arguments,
        block,
        gas,
        proposer,
        key_index,
        sequence,
        payer,
        authorizers,
    }
}

fn expected(tx: &FlowTransaction) -> Decoded {
    Decoded {
        script: tx.script.as_bytes().to_vec(),
        arguments: tx.arguments.iter().map(|a| a.as_bytes().to_vec()).collect(),
        block: tx.reference_block_id,
        gas: tx.gas_limit,
        proposer: tx.proposal_key.address.0,
        key_index: tx.proposal_key.key_index,
        sequence: tx.proposal_key.sequence_number,
        payer: tx.payer.0,
        authorizers: tx.authorizers.iter().map(|a| a.0).collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn payload_decodes_back_to_the_fields(tx in transaction()) {
        let message = tx.payload_message();
        prop_assert_eq!(&message[..32], &TRANSACTION_DOMAIN_TAG[..]);
        let mut buf = &message[32..];
        prop_assert_eq!(decode_payload(&mut buf), expected(&tx));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn envelope_decodes_back_sorted_by_signer_then_key(tx in transaction()) {
        let message = tx.envelope_message().unwrap();
        prop_assert_eq!(&message[..32], &TRANSACTION_DOMAIN_TAG[..]);
        let mut buf = &message[32..];
        let mut envelope = list(&mut buf);
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decode_payload(&mut envelope), expected(&tx));
        let mut sigs = list(&mut envelope);
        prop_assert!(envelope.is_empty());
        let signers = tx.signers();
        let mut decoded = Vec::new();
        while !sigs.is_empty() {
            let mut s = list(&mut sigs);
            let index = u64::decode(&mut s).unwrap();
            let key_index = u32::decode(&mut s).unwrap();
            let signature = bytes(&mut s);
            prop_assert!(s.is_empty());
            decoded.push((index, key_index, signature));
        }
        let mut want: Vec<(u64, u32, Vec<u8>)> = tx
            .payload_signatures
            .iter()
            .flatten()
            .map(|s| {
                let i = signers.iter().position(|a| *a == s.address).unwrap() as u64;
                (i, s.key_index, s.signature.clone())
            })
            .collect();
        want.sort_by_key(|w| (w.0, w.1));
        prop_assert_eq!(decoded, want);
    }

    #[test]
    fn json_round_trips_and_roles_agree_with_the_encoders(tx in transaction()) {
        let json = serde_json::to_vec(&tx).unwrap();
        let parsed = FlowTransaction::from_json(&json);
        // Generated transactions stay within the limits and their arguments are JSON.
        let parsed = parsed.unwrap();
        prop_assert_eq!(&parsed, &tx);
        let payer = Signer { address: tx.payer, key_index: 0 };
        prop_assert_eq!(tx.signing_message(Role::Payer, &payer).unwrap(), tx.envelope_message().unwrap());
        let proposer = Signer { address: tx.proposal_key.address, key_index: tx.proposal_key.key_index };
        let payload_roles = tx.signing_message(Role::Proposer, &proposer);
        if tx.payload_signatures.as_ref().is_some_and(|s| !s.is_empty()) {
            prop_assert!(payload_roles.is_err());
        } else {
            prop_assert_eq!(payload_roles.unwrap(), tx.payload_message());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(tx) = FlowTransaction::from_json(&bytes) {
            let _ = tx.payload_message();
            let _ = tx.envelope_message();
        }
    }

    #[test]
    fn mutated_documents_never_panic(
        tx in transaction(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut json = serde_json::to_vec(&tx).unwrap();
        for (at, byte) in edits {
            let i = at.index(json.len());
            json[i] = byte;
        }
        if let Ok(tx) = FlowTransaction::from_json(&json) {
            let _ = tx.payload_message();
            let _ = tx.envelope_message();
            let _ = tx.signing_message(Role::Authorizer, &Signer { address: tx.payer, key_index: 0 });
        }
    }
}
