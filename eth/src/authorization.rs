//! EIP-7702 authorizations signed on their own: the tuple an account owner signs to delegate its
//! code to a contract.

use alloy_eips::eip7702::{Authorization, SignedAuthorization};
use alloy_primitives::{Address, B256, Signature, U256};
use serde::Deserialize;

use crate::{PayloadError, hex, json::from_json_slice};

/// The JSON of an authorization to sign: `{"chainId", "address", "nonce"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationRequest {
    /// Chain the delegation is valid on; 0 means every chain and needs an explicit opt-in.
    #[serde(deserialize_with = "hex::required")]
    pub chain_id: U256,
    /// Contract whose code the account delegates to.
    #[serde(deserialize_with = "hex::required")]
    pub address: Address,
    /// The signing account's nonce at the time the authorization is used.
    #[serde(deserialize_with = "hex::required")]
    pub nonce: u64,
}

/// What the caller explicitly allows beyond the safe defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthorizationOptions {
    /// Sign an authorization with chain id 0, valid on every chain.
    pub allow_any_chain: bool,
}

/// A validated authorization, ready to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedAuthorization(Authorization);

impl AuthorizationRequest {
    /// Parses the JSON form.
    pub fn from_json(json: &[u8]) -> Result<Self, PayloadError> {
        from_json_slice(json)
    }

    /// Checks the request against `options`.
    pub fn into_unsigned(
        self,
        options: AuthorizationOptions,
    ) -> Result<UnsignedAuthorization, PayloadError> {
        if self.chain_id.is_zero() && !options.allow_any_chain {
            return Err(PayloadError::ChainAgnosticAuthorizationNotAllowed);
        }
        Ok(UnsignedAuthorization(Authorization {
            chain_id: self.chain_id,
            address: self.address,
            nonce: self.nonce,
        }))
    }
}

impl UnsignedAuthorization {
    /// `keccak256(0x05 ‖ rlp([chain_id, address, nonce]))`.
    pub fn signing_hash(&self) -> B256 {
        self.0.signature_hash()
    }

    /// The tuple.
    pub fn authorization(&self) -> &Authorization {
        &self.0
    }

    /// Attaches the signature, giving the tuple as it goes into a set-code transaction.
    pub fn into_signed(self, signature: Signature) -> SignedAuthorization {
        self.0.into_signed(signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_a_second_hex_prefix() {
        let json =
            |address: &str| format!(r#"{{"chainId":"0x1","address":"{address}","nonce":"0x7"}}"#);
        let good = AuthorizationRequest::from_json(
            json("0x3535353535353535353535353535353535353535").as_bytes(),
        )
        .unwrap();
        assert_eq!(good.address, Address::repeat_byte(0x35));
        assert_eq!(good.nonce, 7);
        let err = AuthorizationRequest::from_json(
            json("0x0x35353535353535353535353535353535353535").as_bytes(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("address: invalid hex digit"),
            "{err}"
        );
    }
}
