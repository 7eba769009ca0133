//! The signing primitive and the request layer above it.
//!
//! [`PrivateKey::dangerous_sign_prehash`] is the only place a signature is made. It takes exactly 32
//! bytes: k256's own prehash API accepts any input of 16 bytes or more and silently truncates
//! longer ones, which the `[u8; 32]` type rules out.
//!
//! The request layer comes in two steps. [`Payload::prepare`] parses, validates and hashes what
//! the caller asked to sign (see `nitro_signer_eth`), never a hash the caller hands in unless the
//! [`SigningPolicy`] explicitly allows raw digests; it needs no key, so the service runs it before
//! it loads one. [`UserSigner::sign_prepared`] then signs the result. [`UserSigner::sign`] does
//! both.

use alloy_primitives::{Address, B256, Signature};
use k256::{FieldBytes, ecdsa::hazmat::SignPrimitive};
use nitro_signer_common::UserId;
use nitro_signer_eth::{
    AuthorizationOptions, AuthorizationRequest, EthSignature, PayloadError, PersonalMessage,
    SignedAuthorization, TransactionRequest, TxOptions, TypedData, UnsignedAuthorization,
    UnsignedTransaction,
};
use sha2::Sha256;

use crate::keys::{CurveKey, KeyError, KeyMaterial, P256PrivateKey, PrivateKey};

/// Why a request was not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The payload is malformed or not allowed.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The key cannot be used as asked.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The transaction's `from` is not the signing key's address.
    #[error("from: {expected} is not the address of the signing key ({actual})")]
    FromMismatch {
        /// What the caller said.
        expected: Address,
        /// The address of the key that would sign.
        actual: Address,
    },
    /// Raw digest signing was asked for but the policy does not allow it.
    #[error(
        "digest: signing a caller-supplied hash is disabled; sign the transaction or message \
         itself, or enable raw digest signing for this key"
    )]
    DigestNotAllowed,
    /// The nonce point's x coordinate exceeded the group order (probability about 2^-128), so
    /// the recovery id is not expressible as an Ethereum `yParity`.
    #[error("signature not representable with a y-parity; retry is not possible for this hash")]
    Unrepresentable,
}

impl P256PrivateKey {
    /// Signs a 32-byte hash: ECDSA over P-256 with an RFC 6979 deterministic nonce (SHA-256 as
    /// its HMAC hash), as `r ‖ s`, each 32 bytes big-endian. `s` is left as the algorithm gives
    /// it (P-256 verifiers, Flow's included, accept both halves).
    ///
    /// As [`PrivateKey::dangerous_sign_prehash`], the hash is signed as it is: callers hash what
    /// they parsed themselves.
    pub fn dangerous_sign_prehash(&self, prehash: &[u8; 32]) -> Result<[u8; 64], SignError> {
        self.dangerous_sign_prehash_with_public_key(prehash)
            .map(|(signature, _)| signature)
    }

    /// [`Self::dangerous_sign_prehash`], and the public key `x ‖ y`, which building the signing
    /// key computes anyway (so the pair costs what the signature alone does).
    pub fn dangerous_sign_prehash_with_public_key(
        &self,
        prehash: &[u8; 32],
    ) -> Result<([u8; 64], [u8; 64]), SignError> {
        use p256::ecdsa::signature::hazmat::PrehashSigner as _;
        // A signing key is a copy of the scalar; ecdsa zeroizes it when dropped.
        let signing_key = p256::ecdsa::SigningKey::from(*self.scalar());
        let signature: p256::ecdsa::Signature = signing_key
            .sign_prehash(prehash)
            .map_err(|_| SignError::Unrepresentable)?;
        let point = signing_key.verifying_key().to_encoded_point(false);
        let mut public_key = [0u8; 64];
        let coordinates = point
            .as_bytes()
            .get(1..65)
            .ok_or(SignError::Unrepresentable)?;
        public_key.copy_from_slice(coordinates);
        Ok((signature.to_bytes().into(), public_key))
    }
}

impl CurveKey {
    /// [`Self::dangerous_sign_prehash`] and the public key `x ‖ y`, at the cost of a signature
    /// and (on secp256k1) one scalar multiplication; on P-256 the public key comes with the
    /// signing key.
    pub fn dangerous_sign_prehash_with_public_key(
        &self,
        prehash: &[u8; 32],
    ) -> Result<([u8; 64], [u8; 64]), SignError> {
        match self {
            Self::P256(key) => key.dangerous_sign_prehash_with_public_key(prehash),
            Self::Secp256k1(_) => Ok((self.dangerous_sign_prehash(prehash)?, self.public_key_xy())),
        }
    }

    /// Signs a 32-byte hash on the key's curve, as `r ‖ s` (secp256k1's `s` normalized to the
    /// lower half, as Ethereum wants; P-256's as it comes). The hash is signed as it is.
    pub fn dangerous_sign_prehash(&self, prehash: &[u8; 32]) -> Result<[u8; 64], SignError> {
        match self {
            Self::Secp256k1(key) => {
                let signature = key.dangerous_sign_prehash(prehash)?;
                let mut rs = [0u8; 64];
                rs[..32].copy_from_slice(&signature.r().to_be_bytes::<32>());
                rs[32..].copy_from_slice(&signature.s().to_be_bytes::<32>());
                Ok(rs)
            }
            Self::P256(key) => key.dangerous_sign_prehash(prehash),
        }
    }
}

impl PrivateKey {
    /// Signs a 32-byte hash: ECDSA over secp256k1 with an RFC 6979 deterministic nonce, `s`
    /// normalized to the lower half of the order (EIP-2), and the y-parity of the nonce point.
    ///
    /// The hash is signed as it is, hence the name: whoever calls this is responsible for having
    /// computed it from content they parsed. The request layer ([`UserSigner::sign`]) is the
    /// way to sign for callers; it refuses raw digests unless the policy allows them. Does not
    /// compute the public key.
    pub fn dangerous_sign_prehash(&self, prehash: &[u8; 32]) -> Result<Signature, SignError> {
        let z = FieldBytes::from(*prehash);
        let scalar: &k256::Scalar = self.scalar().as_ref();
        let (signature, recovery_id) = scalar
            .try_sign_prehashed_rfc6979::<Sha256>(&z, &[])
            .map_err(|_| SignError::Unrepresentable)?;
        let recovery_id = recovery_id.ok_or(SignError::Unrepresentable)?;
        if recovery_id.is_x_reduced() {
            return Err(SignError::Unrepresentable);
        }
        let (r, s) = signature.split_bytes();
        Ok(Signature::from_scalars_and_parity(
            B256::from_slice(&r),
            B256::from_slice(&s),
            recovery_id.is_y_odd(),
        ))
    }
}

/// What a key may be used for beyond the safe defaults. Everything is off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SigningPolicy {
    /// Sign 32-byte hashes handed in by the caller ([`Payload::DangerousDigest`]). The enclave
    /// then cannot know what it signs; enable only for keys that need it.
    pub allow_raw_digest: bool,
    /// Sign legacy transactions without a chain id (replayable on every chain).
    pub allow_pre_eip155: bool,
    /// Sign EIP-7702 authorizations with chain id 0 (valid on every chain).
    pub allow_any_chain_authorization: bool,
}

/// What to sign. Every variant except [`Payload::DangerousDigest`] is parsed and hashed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// An `eth_signTransaction` object.
    Transaction(TransactionRequest),
    /// An EIP-191 personal message.
    Message(PersonalMessage),
    /// EIP-712 typed data.
    TypedData(TypedData),
    /// An EIP-7702 authorization tuple.
    Authorization(AuthorizationRequest),
    /// A caller-supplied hash, signed as it is; refused unless
    /// [`SigningPolicy::allow_raw_digest`].
    DangerousDigest(B256),
}

impl Payload {
    /// Parses, validates and hashes the payload, checked against the key's opt-ins: everything
    /// that does not need the key, so that a request refused here costs no KMS call.
    pub fn prepare(self, policy: &SigningPolicy) -> Result<Prepared, SignError> {
        Ok(match self {
            Self::Transaction(request) => {
                let options = TxOptions {
                    allow_pre_eip155: policy.allow_pre_eip155,
                };
                Prepared::Transaction(request.into_unsigned(options)?)
            }
            Self::Message(message) => Prepared::Message(message.signing_hash()),
            Self::TypedData(typed) => {
                typed.signing_hash()?;
                Prepared::TypedData(Box::new(typed))
            }
            Self::Authorization(request) => {
                let options = AuthorizationOptions {
                    allow_any_chain: policy.allow_any_chain_authorization,
                };
                Prepared::Authorization(request.into_unsigned(options)?)
            }
            Self::DangerousDigest(digest) if policy.allow_raw_digest => Prepared::Digest(digest),
            Self::DangerousDigest(_) => return Err(SignError::DigestNotAllowed),
        })
    }
}

/// A payload parsed, validated against the key's opt-ins and hashed ([`Payload::prepare`]):
/// exactly what will be signed, known before the key is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// A transaction of one type, with the `from` the caller gave, if any.
    Transaction(UnsignedTransaction),
    /// An EIP-7702 authorization tuple.
    Authorization(UnsignedAuthorization),
    /// An EIP-191 message's hash.
    Message(B256),
    /// EIP-712 typed data, hashed (kept whole for the key's policy, which looks at its domain).
    TypedData(Box<TypedData>),
    /// A caller-supplied hash the key's opt-ins or policy allow.
    Digest(B256),
}

impl Prepared {
    /// The hash that will be signed.
    pub fn signing_hash(&self) -> B256 {
        match self {
            Self::Transaction(tx) => tx.signing_hash(),
            Self::Authorization(auth) => auth.signing_hash(),
            // Hashed when prepared; the error cannot occur on a prepared document.
            Self::TypedData(typed) => typed.signing_hash().unwrap_or_default(),
            Self::Message(hash) | Self::Digest(hash) => *hash,
        }
    }
}

/// A signature and everything the caller needs with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The signer's address.
    pub from: Address,
    /// The hash that was signed.
    pub signing_hash: B256,
    /// The signature.
    pub signature: EthSignature,
    /// What the signature completes, per payload kind.
    pub output: SignedOutput,
}

/// The payload-specific part of a [`Signed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedOutput {
    /// A transaction, ready for `eth_sendRawTransaction` (EIP-4844: add the blob sidecar first).
    Transaction {
        /// EIP-2718 encoding of the signed transaction.
        raw: nitro_signer_eth::Bytes,
        /// Its transaction hash.
        tx_hash: B256,
    },
    /// A signed EIP-7702 tuple, ready for a set-code transaction's authorization list.
    Authorization(SignedAuthorization),
    /// Messages, typed data and digests: the signature is the whole result.
    SignatureOnly,
}

/// One user's key, ready to sign, with its address computed once.
///
/// Computing the address costs a scalar multiplication, as much as a signature; a signer is
/// meant to be built once per key and user and reused for many requests.
#[derive(Debug)]
pub struct UserSigner {
    key: PrivateKey,
    address: Address,
}

impl UserSigner {
    /// Wraps `key`, computing its address.
    pub fn new(key: PrivateKey) -> Self {
        let address = key.address();
        Self { key, address }
    }

    /// Wraps `key` with its address computed earlier. The caller vouches that `address` is
    /// `key`'s (the service caches addresses by blob and user, both of which determine the key).
    pub(crate) fn with_known_address(key: PrivateKey, address: Address) -> Self {
        Self { key, address }
    }

    /// The signer for `user` from `material` (see [`KeyMaterial::user_key`]).
    pub fn for_user(material: &KeyMaterial, user: Option<&UserId>) -> Result<Self, KeyError> {
        material.user_key(user).map(Self::new)
    }

    /// The signer's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Parses, checks and hashes `payload` ([`Payload::prepare`]) and signs the hash.
    pub fn sign(&self, payload: Payload, policy: &SigningPolicy) -> Result<Signed, SignError> {
        self.sign_prepared(payload.prepare(policy)?)
    }

    /// Signs what [`Payload::prepare`] made. The one check left that needs the key: a
    /// transaction's `from`, when given, must be this signer's address.
    pub fn sign_prepared(&self, prepared: Prepared) -> Result<Signed, SignError> {
        match prepared {
            Prepared::Transaction(tx) => {
                if let Some(expected) = tx.expected_from()
                    && expected != self.address
                {
                    return Err(SignError::FromMismatch {
                        expected,
                        actual: self.address,
                    });
                }
                let signed = tx.sign_with(|hash| self.key.dangerous_sign_prehash(&hash.0))?;
                Ok(Signed {
                    from: self.address,
                    signing_hash: signed.signing_hash,
                    signature: signed.signature,
                    output: SignedOutput::Transaction {
                        raw: signed.raw,
                        tx_hash: signed.tx_hash,
                    },
                })
            }
            Prepared::Authorization(auth) => {
                let signing_hash = auth.signing_hash();
                let signature = self.key.dangerous_sign_prehash(&signing_hash.0)?;
                Ok(Signed {
                    from: self.address,
                    signing_hash,
                    signature: EthSignature::new(signature, None),
                    output: SignedOutput::Authorization(auth.into_signed(signature)),
                })
            }
            Prepared::TypedData(typed) => self.sign_hash(typed.signing_hash()?),
            Prepared::Message(signing_hash) | Prepared::Digest(signing_hash) => {
                self.sign_hash(signing_hash)
            }
        }
    }

    fn sign_hash(&self, signing_hash: B256) -> Result<Signed, SignError> {
        let signature = self.key.dangerous_sign_prehash(&signing_hash.0)?;
        Ok(Signed {
            from: self.address,
            signing_hash,
            signature: EthSignature::new(signature, None),
            output: SignedOutput::SignatureOnly,
        })
    }
}
