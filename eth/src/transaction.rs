//! Ethereum transactions: the `eth_signTransaction` JSON shape, validated into one of the five
//! transaction types, hashed for signing and, once signed, encoded for `eth_sendRawTransaction`.
//!
//! # Rules
//!
//! - `type` (`0x0` legacy, `0x1` EIP-2930, `0x2` EIP-1559, `0x3` EIP-4844, `0x4` EIP-7702) may be
//!   omitted; it is then inferred, first match wins: `authorizationList` → 0x4, a blob field →
//!   0x3, `maxFeePerGas`/`maxPriorityFeePerGas` → 0x2, `accessList` → 0x1, `gasPrice` → 0x0.
//!   (Close to geth's rules; every input on which they differ ends in an error here.)
//! - EIP-4844: the signed encoding is the canonical one, without the blob sidecar; to broadcast
//!   it, a back end wraps it with the blobs, commitments and proofs (the network form), which
//!   the signature does not cover.
//! - `nonce`, `gas`, `chainId` and the type's fee fields are required: nothing that decides what
//!   gets signed is filled in by default. Only `value` (0), `input` (empty) and `accessList`
//!   (empty) have defaults, the zero values every client assumes.
//! - `to` must be present: an address, or an explicit `null` for a contract creation (types 0x0
//!   to 0x2 only). A *missing* `to` is refused, so that a forgotten field can never turn a payment
//!   into a contract deployment.
//! - A field that the type does not have (`gasPrice` on an EIP-1559 transaction, say) is an error,
//!   as is any unknown field, `input` and `data` with different contents, and a priority fee above
//!   the fee cap.
//! - A legacy transaction without `chainId` is only accepted with
//!   [`TxOptions::allow_pre_eip155`]; it is replayable on every chain.
//! - `from`, when given, is checked against the signing key by the signer, not here.

use alloy_consensus::{
    EthereumTxEnvelope, EthereumTypedTransaction, SignableTransaction, TxEip1559, TxEip2930,
    TxEip4844, TxEip7702, TxLegacy, transaction::to_eip155_value,
};
use alloy_eips::{
    eip2718::Encodable2718,
    eip2930::{AccessList, AccessListItem},
    eip4844::VERSIONED_HASH_VERSION_KZG,
    eip7702::{Authorization, SignedAuthorization},
};
use alloy_primitives::{Address, B256, Bytes, ChainId, Signature, TxKind, U256, keccak256};
use serde::{Deserialize, Deserializer};

use crate::{
    EthSignature, PayloadError,
    hex::{self, Hex},
    json::from_json_slice,
};

/// A transaction to sign, as the JSON object of `eth_signTransaction` (camelCase names, hex
/// quantities and data). Parse it with [`TransactionRequest::from_json`] and validate it with
/// [`TransactionRequest::into_unsigned`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransactionRequest {
    /// Transaction type, `0x0` to `0x4`.
    #[serde(default, rename = "type", deserialize_with = "hex::optional")]
    pub tx_type: Option<u64>,
    /// EIP-155 chain id.
    #[serde(default, deserialize_with = "hex::optional")]
    pub chain_id: Option<ChainId>,
    /// Sender nonce.
    #[serde(default, deserialize_with = "hex::optional")]
    pub nonce: Option<u64>,
    /// The address the caller expects to sign; checked, never used to pick the key.
    #[serde(default, deserialize_with = "hex::optional")]
    pub from: Option<Address>,
    /// Recipient: `Some(Some(address))`, `Some(None)` for an explicit `null` (contract
    /// creation), `None` when the field is absent (refused).
    #[serde(default, deserialize_with = "present_or_null")]
    pub to: Option<Option<Address>>,
    /// Wei sent with the transaction.
    #[serde(default, deserialize_with = "hex::optional")]
    pub value: Option<U256>,
    /// Gas limit (`gasLimit` is accepted as another name).
    #[serde(default, alias = "gasLimit", deserialize_with = "hex::optional")]
    pub gas: Option<u64>,
    /// Legacy and EIP-2930 gas price.
    #[serde(default, deserialize_with = "hex::optional")]
    pub gas_price: Option<u128>,
    /// EIP-1559 fee cap.
    #[serde(default, deserialize_with = "hex::optional")]
    pub max_fee_per_gas: Option<u128>,
    /// EIP-1559 priority fee.
    #[serde(default, deserialize_with = "hex::optional")]
    pub max_priority_fee_per_gas: Option<u128>,
    /// EIP-4844 blob fee cap.
    #[serde(default, deserialize_with = "hex::optional")]
    pub max_fee_per_blob_gas: Option<u128>,
    /// EIP-4844 versioned blob hashes.
    #[serde(default)]
    pub blob_versioned_hashes: Option<Vec<Hex<B256>>>,
    /// EIP-2930 access list.
    #[serde(default)]
    pub access_list: Option<Vec<AccessListEntry>>,
    /// EIP-7702 authorization list (tuples already signed by their authorities).
    #[serde(default)]
    pub authorization_list: Option<Vec<AuthorizationListEntry>>,
    /// Call data or init code.
    #[serde(default, deserialize_with = "hex::optional")]
    pub input: Option<Bytes>,
    /// Older name of `input`; both may be given only with the same contents.
    #[serde(default, deserialize_with = "hex::optional")]
    pub data: Option<Bytes>,
}

/// One entry of an EIP-2930 access list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessListEntry {
    /// Account address.
    #[serde(deserialize_with = "hex::required")]
    pub address: Address,
    /// Storage slots of the account.
    pub storage_keys: Vec<Hex<B256>>,
}

/// One signed EIP-7702 authorization inside a type 0x4 transaction.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationListEntry {
    /// Chain id the authorization is valid on (0: every chain).
    #[serde(deserialize_with = "hex::required")]
    pub chain_id: U256,
    /// The contract the authority delegates to.
    #[serde(deserialize_with = "hex::required")]
    pub address: Address,
    /// The authority's nonce.
    #[serde(deserialize_with = "hex::required")]
    pub nonce: u64,
    /// Signature parity, `0x0` or `0x1`.
    #[serde(deserialize_with = "hex::required")]
    pub y_parity: u8,
    /// Signature `r`.
    #[serde(deserialize_with = "hex::required")]
    pub r: U256,
    /// Signature `s`.
    #[serde(deserialize_with = "hex::required")]
    pub s: U256,
}

/// Distinguishes an absent field (outer `None`, via `#[serde(default)]`) from `null`.
fn present_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Address>>, D::Error> {
    hex::optional(d).map(Some)
}

/// What the caller explicitly allows beyond the safe defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxOptions {
    /// Sign a legacy transaction that has no `chainId` (replayable on every chain).
    pub allow_pre_eip155: bool,
}

/// A validated transaction, ready to be hashed and signed. EIP-4844 transactions are the
/// canonical form, without blob sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedTransaction {
    tx: EthereumTypedTransaction<TxEip4844>,
    from: Option<Address>,
}

/// A signed transaction and what a back end needs to broadcast and track it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTransaction {
    /// The hash that was signed.
    pub signing_hash: B256,
    /// The transaction hash (keccak-256 of `raw`).
    pub tx_hash: B256,
    /// The signature; `v` is set for legacy transactions only.
    pub signature: EthSignature,
    /// The signed transaction's EIP-2718 encoding, as `eth_sendRawTransaction` takes it (for
    /// EIP-4844, the canonical encoding: the back end adds the sidecar to broadcast it).
    pub raw: Bytes,
}

/// Which fields the request has, for the type rules.
struct Present<'a>(&'a TransactionRequest);

impl Present<'_> {
    fn fields(&self) -> [(&'static str, bool); 6] {
        let r = self.0;
        [
            ("gasPrice", r.gas_price.is_some()),
            ("maxFeePerGas", r.max_fee_per_gas.is_some()),
            ("maxPriorityFeePerGas", r.max_priority_fee_per_gas.is_some()),
            ("maxFeePerBlobGas", r.max_fee_per_blob_gas.is_some()),
            ("blobVersionedHashes", r.blob_versioned_hashes.is_some()),
            ("authorizationList", r.authorization_list.is_some()),
        ]
    }
}

/// The fields each type has, beyond those all types share; an access list is the one shared
/// field that legacy transactions lack.
fn type_fields(tx_type: u8) -> &'static [&'static str] {
    match tx_type {
        0 | 1 => &["gasPrice"],
        2 => &["maxFeePerGas", "maxPriorityFeePerGas"],
        3 => &[
            "maxFeePerGas",
            "maxPriorityFeePerGas",
            "maxFeePerBlobGas",
            "blobVersionedHashes",
        ],
        _ => &["maxFeePerGas", "maxPriorityFeePerGas", "authorizationList"],
    }
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, PayloadError> {
    value.ok_or(PayloadError::MissingField { field, why: "" })
}

impl TransactionRequest {
    /// Parses the JSON object of `eth_signTransaction`.
    pub fn from_json(json: &[u8]) -> Result<Self, PayloadError> {
        from_json_slice(json)
    }

    /// The transaction type, explicit or inferred.
    fn resolve_type(&self) -> Result<u8, PayloadError> {
        if let Some(t) = self.tx_type {
            return u8::try_from(t)
                .ok()
                .filter(|t| *t <= 4)
                .ok_or(PayloadError::UnsupportedType(t));
        }
        Ok(if self.authorization_list.is_some() {
            4
        } else if self.blob_versioned_hashes.is_some() || self.max_fee_per_blob_gas.is_some() {
            3
        } else if self.max_fee_per_gas.is_some() || self.max_priority_fee_per_gas.is_some() {
            2
        } else if self.access_list.is_some() {
            1
        } else if self.gas_price.is_some() {
            0
        } else {
            return Err(PayloadError::MissingField {
                field: "type",
                why: "; give it, or the fee fields it is inferred from (gasPrice or maxFeePerGas)",
            });
        })
    }

    /// Validates the request into a transaction of one type. See the module docs for the rules.
    pub fn into_unsigned(self, options: TxOptions) -> Result<UnsignedTransaction, PayloadError> {
        let tx_type = self.resolve_type()?;
        let allowed = type_fields(tx_type);
        for (field, present) in Present(&self).fields() {
            if present && !allowed.contains(&field) {
                return Err(PayloadError::FieldNotAllowed { field, tx_type });
            }
        }
        if tx_type == 0 && self.access_list.is_some() {
            return Err(PayloadError::FieldNotAllowed {
                field: "accessList",
                tx_type,
            });
        }

        let input = match (self.input, self.data) {
            (Some(input), Some(data)) if input != data => {
                return Err(PayloadError::Contradictory {
                    field: "data",
                    message: "differs from input; give one of them",
                });
            }
            (Some(bytes), _) | (None, Some(bytes)) => bytes,
            (None, None) => Bytes::new(),
        };
        let to = self.to.ok_or(PayloadError::MissingField {
            field: "to",
            why: "; use null to create a contract",
        })?;
        let nonce = required(self.nonce, "nonce")?;
        let gas_limit = required(self.gas, "gas")?;
        let value = self.value.unwrap_or_default();
        let access_list = AccessList(
            self.access_list
                .unwrap_or_default()
                .into_iter()
                .map(|e| AccessListItem {
                    address: e.address,
                    storage_keys: e.storage_keys.into_iter().map(|Hex(k)| k).collect(),
                })
                .collect(),
        );
        // Set-code and blob transactions cannot create contracts.
        let call_to = |to: Option<Address>| {
            to.ok_or(PayloadError::Contradictory {
                field: "to",
                message: "must be an address: this transaction type cannot create a contract",
            })
        };
        let fees_1559 = || -> Result<(u128, u128), PayloadError> {
            let max_fee = required(self.max_fee_per_gas, "maxFeePerGas")?;
            let priority = required(self.max_priority_fee_per_gas, "maxPriorityFeePerGas")?;
            if priority > max_fee {
                return Err(PayloadError::Contradictory {
                    field: "maxPriorityFeePerGas",
                    message: "is greater than maxFeePerGas",
                });
            }
            Ok((max_fee, priority))
        };

        let tx = match tx_type {
            0 => {
                let chain_id = match self.chain_id {
                    Some(id) => Some(id),
                    None if options.allow_pre_eip155 => None,
                    None => return Err(PayloadError::PreEip155NotAllowed),
                };
                EthereumTypedTransaction::Legacy(TxLegacy {
                    chain_id,
                    nonce,
                    gas_price: required(self.gas_price, "gasPrice")?,
                    gas_limit,
                    to: to.into(),
                    value,
                    input,
                })
            }
            1 => EthereumTypedTransaction::Eip2930(TxEip2930 {
                chain_id: required(self.chain_id, "chainId")?,
                nonce,
                gas_price: required(self.gas_price, "gasPrice")?,
                gas_limit,
                to: TxKind::from(to),
                value,
                access_list,
                input,
            }),
            2 => {
                let (max_fee_per_gas, max_priority_fee_per_gas) = fees_1559()?;
                EthereumTypedTransaction::Eip1559(TxEip1559 {
                    chain_id: required(self.chain_id, "chainId")?,
                    nonce,
                    gas_limit,
                    max_fee_per_gas,
                    max_priority_fee_per_gas,
                    to: TxKind::from(to),
                    value,
                    access_list,
                    input,
                })
            }
            3 => {
                let (max_fee_per_gas, max_priority_fee_per_gas) = fees_1559()?;
                let hashes: Vec<B256> =
                    required(self.blob_versioned_hashes, "blobVersionedHashes")?
                        .into_iter()
                        .map(|Hex(h)| h)
                        .collect();
                if hashes.is_empty() {
                    return Err(PayloadError::Contradictory {
                        field: "blobVersionedHashes",
                        message: "a blob transaction needs at least one blob",
                    });
                }
                if hashes
                    .iter()
                    .any(|h| h.first() != Some(&VERSIONED_HASH_VERSION_KZG))
                {
                    return Err(PayloadError::Contradictory {
                        field: "blobVersionedHashes",
                        message: "every versioned hash must start with the KZG version byte 0x01",
                    });
                }
                EthereumTypedTransaction::Eip4844(TxEip4844 {
                    chain_id: required(self.chain_id, "chainId")?,
                    nonce,
                    gas_limit,
                    max_fee_per_gas,
                    max_priority_fee_per_gas,
                    to: call_to(to)?,
                    value,
                    access_list,
                    blob_versioned_hashes: hashes,
                    max_fee_per_blob_gas: required(self.max_fee_per_blob_gas, "maxFeePerBlobGas")?,
                    input,
                })
            }
            _ => {
                let (max_fee_per_gas, max_priority_fee_per_gas) = fees_1559()?;
                let authorizations = required(self.authorization_list, "authorizationList")?;
                if authorizations.is_empty() {
                    return Err(PayloadError::Contradictory {
                        field: "authorizationList",
                        message: "a set-code transaction needs at least one authorization",
                    });
                }
                if authorizations.iter().any(|a| a.y_parity > 1) {
                    return Err(PayloadError::Contradictory {
                        field: "authorizationList",
                        message: "yParity must be 0x0 or 0x1",
                    });
                }
                EthereumTypedTransaction::Eip7702(TxEip7702 {
                    chain_id: required(self.chain_id, "chainId")?,
                    nonce,
                    gas_limit,
                    max_fee_per_gas,
                    max_priority_fee_per_gas,
                    to: call_to(to)?,
                    value,
                    access_list,
                    authorization_list: authorizations
                        .into_iter()
                        .map(|a| {
                            let auth = Authorization {
                                chain_id: a.chain_id,
                                address: a.address,
                                nonce: a.nonce,
                            };
                            SignedAuthorization::new_unchecked(auth, a.y_parity, a.r, a.s)
                        })
                        .collect(),
                    input,
                })
            }
        };
        Ok(UnsignedTransaction {
            tx,
            from: self.from,
        })
    }
}

impl UnsignedTransaction {
    /// Parses and validates in one step.
    pub fn from_json(json: &[u8], options: TxOptions) -> Result<Self, PayloadError> {
        TransactionRequest::from_json(json)?.into_unsigned(options)
    }

    /// The hash to sign: keccak-256 of the type byte and the RLP of the unsigned fields.
    pub fn signing_hash(&self) -> B256 {
        self.tx.signature_hash()
    }

    /// The `from` the caller gave, if any, which the signing key's address must equal.
    pub fn expected_from(&self) -> Option<Address> {
        self.from
    }

    /// The chain id, if the transaction has one.
    pub fn chain_id(&self) -> Option<ChainId> {
        use alloy_consensus::Transaction;
        self.tx.chain_id()
    }

    /// The EIP-2718 type byte.
    pub fn tx_type(&self) -> u8 {
        self.tx.tx_type() as u8
    }

    /// The validated transaction.
    pub fn as_typed(&self) -> &EthereumTypedTransaction<TxEip4844> {
        &self.tx
    }

    /// Hashes the transaction, has `sign` sign the hash, and encodes the signed transaction.
    ///
    /// `sign` must return a signature over exactly the hash it is given; this function does not
    /// check it (it has no public key to check against).
    pub fn sign_with<E>(
        self,
        sign: impl FnOnce(&B256) -> Result<Signature, E>,
    ) -> Result<SignedTransaction, E> {
        let signing_hash = self.signing_hash();
        let signature = sign(&signing_hash)?;
        let v = match &self.tx {
            EthereumTypedTransaction::Legacy(tx) => {
                Some(to_eip155_value(signature.v(), tx.chain_id))
            }
            _ => None,
        };
        let envelope: EthereumTxEnvelope<TxEip4844> = self.tx.into_envelope(signature);
        let raw = Bytes::from(envelope.encoded_2718());
        Ok(SignedTransaction {
            signing_hash,
            tx_hash: keccak256(&raw),
            signature: EthSignature::new(signature, v),
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<UnsignedTransaction, PayloadError> {
        UnsignedTransaction::from_json(json.as_bytes(), TxOptions::default())
    }

    const BASE_1559: &str = r#""chainId":"0x1","nonce":"0x0","gas":"0x5208",
        "to":"0x3535353535353535353535353535353535353535","value":"0x1""#;

    #[test]
    fn infers_types_from_fields() {
        let cases = [
            (r#""gasPrice":"0x1""#, 0),
            (r#""gasPrice":"0x1","accessList":[]"#, 1),
            (r#""maxFeePerGas":"0x2","maxPriorityFeePerGas":"0x1""#, 2),
            // Precedence: fee-market fields win over an access list.
            (
                r#""maxFeePerGas":"0x2","maxPriorityFeePerGas":"0x1","accessList":[]"#,
                2,
            ),
            (
                r#""maxFeePerGas":"0x2","maxPriorityFeePerGas":"0x1","maxFeePerBlobGas":"0x1",
                "blobVersionedHashes":["0x0100000000000000000000000000000000000000000000000000000000000000"]"#,
                3,
            ),
            (
                r#""maxFeePerGas":"0x2","maxPriorityFeePerGas":"0x1","authorizationList":[{"chainId":"0x1",
                "address":"0x3535353535353535353535353535353535353535","nonce":"0x0","yParity":"0x0",
                "r":"0x1","s":"0x1"}]"#,
                4,
            ),
        ];
        for (fees, want) in cases {
            let tx = parse(&format!("{{{BASE_1559},{fees}}}")).unwrap();
            assert_eq!(tx.tx_type(), want, "{fees}");
        }
    }

    #[test]
    fn refuses_missing_to() {
        let err = parse(
            r#"{"type":"0x2","chainId":"0x1","nonce":"0x0","gas":"0x1",
            "maxFeePerGas":"0x1","maxPriorityFeePerGas":"0x1"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "to: required; use null to create a contract"
        );
    }

    #[test]
    fn null_to_creates_a_contract_where_allowed() {
        let json = r#"{"type":"0x2","chainId":"0x1","nonce":"0x0","gas":"0x1","to":null,
            "maxFeePerGas":"0x1","maxPriorityFeePerGas":"0x1","input":"0x6000"}"#;
        let tx = parse(json).unwrap();
        assert!(matches!(tx.as_typed(), EthereumTypedTransaction::Eip1559(t) if t.to.is_create()));
    }

    #[test]
    fn refuses_fields_of_another_type() {
        let err = parse(&format!(
            r#"{{{BASE_1559},"type":"0x2","gasPrice":"0x1","maxFeePerGas":"0x1","maxPriorityFeePerGas":"0x1"}}"#
        ))
        .unwrap_err();
        assert_eq!(
            err,
            PayloadError::FieldNotAllowed {
                field: "gasPrice",
                tx_type: 2
            }
        );
        let err = parse(&format!(
            r#"{{{BASE_1559},"gasPrice":"0x1","type":"0x0","accessList":[]}}"#
        ))
        .unwrap_err();
        assert_eq!(
            err,
            PayloadError::FieldNotAllowed {
                field: "accessList",
                tx_type: 0
            }
        );
    }

    #[test]
    fn refuses_missing_required_fields() {
        let fields = [
            ("type", r#""0x2""#),
            ("chainId", r#""0x1""#),
            ("nonce", r#""0x0""#),
            ("gas", r#""0x1""#),
            ("to", "null"),
            ("maxFeePerGas", r#""0x1""#),
            ("maxPriorityFeePerGas", r#""0x1""#),
        ];
        let without = |skip: &str| {
            let body: Vec<String> = fields
                .iter()
                .filter(|(name, _)| *name != skip)
                .map(|(name, value)| format!(r#""{name}":{value}"#))
                .collect();
            format!("{{{}}}", body.join(","))
        };
        parse(&without("")).unwrap();
        for field in [
            "chainId",
            "nonce",
            "gas",
            "maxFeePerGas",
            "maxPriorityFeePerGas",
        ] {
            let err = parse(&without(field)).unwrap_err();
            assert_eq!(err, PayloadError::MissingField { field, why: "" });
        }
    }

    #[test]
    fn refuses_contradictions() {
        let err = parse(&format!(
            r#"{{{BASE_1559},"maxFeePerGas":"0x1","maxPriorityFeePerGas":"0x2"}}"#
        ))
        .unwrap_err();
        assert!(matches!(
            err,
            PayloadError::Contradictory {
                field: "maxPriorityFeePerGas",
                ..
            }
        ));
        let err = parse(&format!(
            r#"{{{BASE_1559},"gasPrice":"0x1","input":"0x01","data":"0x02"}}"#
        ))
        .unwrap_err();
        assert!(matches!(
            err,
            PayloadError::Contradictory { field: "data", .. }
        ));
        // The same bytes under both names are fine.
        parse(&format!(
            r#"{{{BASE_1559},"gasPrice":"0x1","input":"0x01","data":"0x01"}}"#
        ))
        .unwrap();
    }

    #[test]
    fn legacy_without_chain_id_needs_opt_in() {
        let json = r#"{"nonce":"0x0","gas":"0x1","gasPrice":"0x1","to":null}"#;
        assert_eq!(parse(json).unwrap_err(), PayloadError::PreEip155NotAllowed);
        let options = TxOptions {
            allow_pre_eip155: true,
        };
        let tx = UnsignedTransaction::from_json(json.as_bytes(), options).unwrap();
        assert_eq!(tx.chain_id(), None);
    }

    #[test]
    fn unknown_fields_and_bad_hex_name_their_path() {
        let err = parse(&format!(
            r#"{{{BASE_1559},"gasPrice":"0x1","gasprice":"0x1"}}"#
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `gasprice`"),
            "{err}"
        );
        let err = parse(&format!(
            r#"{{{BASE_1559},"gasPrice":"0x1","accessList":[{{"address":"0x12","storageKeys":[]}}]}}"#
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("accessList[0].address: expected 20 bytes"),
            "{err}"
        );
        let err = parse(&format!(r#"{{{BASE_1559},"gasPrice":1}}"#)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("gasPrice: invalid type: integer"),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_second_hex_prefix_in_every_hex_field() {
        let a = "0x3535353535353535353535353535353535353535";
        let a2 = "0x0x35353535353535353535353535353535353535";
        let h = "0x0100000000000000000000000000000000000000000000000000000000000000";
        let h2 = "0x0x01000000000000000000000000000000000000000000000000000000000000";
        let fee = r#""maxFeePerGas":"0x2","maxPriorityFeePerGas":"0x1""#;
        let blob = format!(r#"{fee},"maxFeePerBlobGas":"0x1","blobVersionedHashes":["HASH"]"#);
        let auth = format!(
            r#"{fee},"authorizationList":[{{"chainId":"0x1","address":"AUTH","nonce":"0x0","yParity":"0x0","r":"0x1","s":"0x1"}}]"#
        );
        let access = format!(r#"{fee},"accessList":[{{"address":"ACC","storageKeys":["KEY"]}}]"#);
        let cases: [(&str, String, &str, &str); 9] = [
            ("to", format!(r#""to":"TO",{fee}"#), "TO", a),
            ("from", format!(r#""from":"FROM",{fee}"#), "FROM", a),
            ("input", format!(r#""input":"IN",{fee}"#), "IN", "0x35"),
            ("data", format!(r#""data":"IN",{fee}"#), "IN", "0x35"),
            ("accessList[0].address", access.clone(), "ACC", a),
            ("accessList[0].storageKeys[0]", access, "KEY", h),
            ("blobVersionedHashes[0]", blob, "HASH", h),
            ("authorizationList[0].address", auth, "AUTH", a),
            ("gas", format!(r#""gas":"GAS",{fee}"#), "GAS", "0x5208"),
        ];
        let body = |fields: &str| {
            let mut json = format!(r#"{{"chainId":"0x1","nonce":"0x0","value":"0x1",{fields}"#);
            for (name, value) in [("to", format!(r#""{a}""#)), ("gas", r#""0x5208""#.into())] {
                if !fields.contains(&format!(r#""{name}""#)) {
                    json.push_str(&format!(r#","{name}":{value}"#));
                }
            }
            json.push('}');
            json
        };
        for (path, fields, placeholder, good) in cases {
            let accepted = body(&fields.replace(placeholder, good))
                .replace("ACC", a)
                .replace("KEY", h);
            parse(&accepted).unwrap_or_else(|e| panic!("{path}: {e}"));
            let doubled = match good.len() {
                42 => a2.to_owned(),
                66 => h2.to_owned(),
                _ => good.replacen("0x", "0x0x", 1),
            };
            let refused = body(&fields.replace(placeholder, &doubled))
                .replace("ACC", a)
                .replace("KEY", h);
            let err = parse(&refused).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("{path}: invalid hex digit")),
                "{path}: {err}"
            );
        }
    }

    #[test]
    fn refuses_unsupported_type_and_trailing_bytes() {
        assert_eq!(
            parse(r#"{"type":"0x5"}"#).unwrap_err(),
            PayloadError::UnsupportedType(5)
        );
        let err = parse(&format!(r#"{{{BASE_1559},"gasPrice":"0x1"}} x"#)).unwrap_err();
        assert!(matches!(err, PayloadError::Json { .. }), "{err}");
    }
}
