//! The signature as callers receive it.

use alloy_primitives::{Signature, U256};

/// A secp256k1 ECDSA signature in the forms Ethereum tooling expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthSignature {
    /// `r`.
    pub r: U256,
    /// `s`, always in the lower half of the curve order (EIP-2).
    pub s: U256,
    /// Parity of the nonce point's y coordinate (the recovery id).
    pub y_parity: bool,
    /// Legacy `v`: `27 + yParity` without a chain id, `35 + 2·chainId + yParity` with one
    /// (EIP-155). `None` where the encoding carries `yParity` instead (typed transactions).
    /// Wide enough for every 64-bit chain id.
    pub v: Option<u128>,
}

impl EthSignature {
    /// Wraps `signature`, with the legacy `v` where it applies.
    pub fn new(signature: Signature, v: Option<u128>) -> Self {
        Self {
            r: signature.r(),
            s: signature.s(),
            y_parity: signature.v(),
            v,
        }
    }

    /// The 65-byte `r ‖ s ‖ v` form with `v` = 27 or 28, as `personal_sign` and
    /// `eth_signTypedData_v4` return it.
    pub fn to_rsv_bytes(&self) -> [u8; 65] {
        Signature::new(self.r, self.s, self.y_parity).as_bytes()
    }

    /// The same signature as alloy's type.
    pub fn as_alloy(&self) -> Signature {
        Signature::new(self.r, self.s, self.y_parity)
    }
}
