//! Key material: master seeds, private keys and the per-user derivation, on secp256k1
//! ([`PrivateKey`]) and P-256 ([`P256PrivateKey`]).
//!
//! Both kinds of secret are held in zeroizing containers, have hand-written `Debug` that prints
//! nothing secret, and cannot be cloned. The derivation is specified in `docs/key-derivation.md`;
//! the test vectors there are checked by this crate's tests.

use std::fmt;

use alloy_primitives::{Address, keccak256};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use k256::{NonZeroScalar, PublicKey, elliptic_curve::sec1::ToEncodedPoint};
use nitro_signer_common::{
    UserId,
    key_blob::{Curve, KeyKind},
};
use zeroize::{Zeroize, Zeroizing};

/// HKDF salt of the per-user secp256k1 derivation, version 1.
pub const DERIVATION_SALT: &[u8] = b"nitro-signer/secp256k1/v1";

/// HKDF salt of the per-user P-256 derivation, version 1.
pub const P256_DERIVATION_SALT: &[u8] = b"nitro-signer/p256/v1";

/// HKDF salt of the per-user secp256k1 derivation for Flow accounts, version 1: a user's Flow
/// secp256k1 key is not their Ethereum key, so that no Ethereum request (a raw digest, say) can
/// sign for their Flow account, and the two accounts are not linked by one public key.
pub const FLOW_SECP256K1_DERIVATION_SALT: &[u8] = b"nitro-signer/flow-secp256k1/v1";

/// HKDF salt of [`KeyMaterial::key_id`].
pub const KEY_ID_SALT: &[u8] = b"nitro-signer/key-id/v1";

/// Why key material cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A master seed of the wrong length.
    #[error("a master seed is 32 bytes, got {len}")]
    SeedLength {
        /// Length of the rejected seed.
        len: usize,
    },
    /// Private key bytes that are not 32 bytes, or not a scalar in `[1, n-1]`.
    #[error("not a valid secp256k1 private key")]
    InvalidPrivateKey,
    /// P-256 private key bytes that are not 32 bytes, or not a scalar in `[1, n-1]`.
    #[error("not a valid P-256 private key")]
    InvalidP256PrivateKey,
    /// An imported key asked for on another curve than its own.
    #[error("curve: this key is a {key} key and cannot sign on {asked}")]
    WrongCurve {
        /// The imported key's curve.
        key: &'static str,
        /// The curve asked for.
        asked: &'static str,
    },
    /// A seed needs a user id to pick the derived key.
    #[error("userId: required for a key derived from a master seed")]
    UserIdRequired,
    /// An imported private key is used as it is; a user id would be silently ignored.
    #[error("userId: not allowed for an imported private key, which is used as it is")]
    UserIdNotAllowed,
    /// 255 HKDF outputs in a row were out of range (probability about 2^-32000): unreachable in
    /// practice, an error rather than a panic all the same.
    #[error("key derivation found no valid scalar")]
    DerivationExhausted,
}

/// A tenant's master seed: 32 random bytes from which every user's key is derived.
pub struct MasterSeed(Zeroizing<[u8; 32]>);

impl MasterSeed {
    /// Length of a seed in bytes.
    pub const LEN: usize = 32;

    /// Takes ownership of seed bytes.
    pub fn new(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    /// Copies a seed out of a buffer (a KMS plaintext, say); the caller zeroizes the buffer.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        if bytes.len() != Self::LEN {
            return Err(KeyError::SeedLength { len: bytes.len() });
        }
        seed.copy_from_slice(bytes);
        Ok(Self(seed))
    }

    /// Derives `user`'s private key:
    /// `HKDF-SHA256(IKM = seed, salt = DERIVATION_SALT, info = user id, L = 32)` read as a
    /// big-endian scalar if it is in `[1, n-1]`, else the same with
    /// `info = user id ‖ 0x00 ‖ counter` for counter = 1, 2, … until it is.
    pub fn derive(&self, user: &UserId) -> Result<PrivateKey, KeyError> {
        self.derive_accepting(DERIVATION_SALT, user, |okm| {
            PrivateKey::from_bytes(okm).ok()
        })
    }

    /// Derives `user`'s P-256 private key: [`MasterSeed::derive`] with
    /// [`P256_DERIVATION_SALT`] and P-256's order.
    pub fn derive_p256(&self, user: &UserId) -> Result<P256PrivateKey, KeyError> {
        self.derive_accepting(P256_DERIVATION_SALT, user, |okm| {
            P256PrivateKey::from_bytes(okm).ok()
        })
    }

    /// Derives `user`'s secp256k1 key for Flow: [`MasterSeed::derive`] with
    /// [`FLOW_SECP256K1_DERIVATION_SALT`].
    pub fn derive_flow_secp256k1(&self, user: &UserId) -> Result<PrivateKey, KeyError> {
        self.derive_accepting(FLOW_SECP256K1_DERIVATION_SALT, user, |okm| {
            PrivateKey::from_bytes(okm).ok()
        })
    }

    /// The derivation loop, with the range check as a parameter so that tests can force the
    /// retry path (which real inputs take with probability 2^-128).
    fn derive_accepting<K>(
        &self,
        salt: &[u8],
        user: &UserId,
        mut accept: impl FnMut(&[u8; 32]) -> Option<K>,
    ) -> Result<K, KeyError> {
        // aws-lc's HKDF: it zeroizes its copy of the seed and cleanses its HMAC state (the PRK,
        // from which every user's key follows), which the `hkdf` crate does not.
        let prk = Salt::new(HKDF_SHA256, salt).extract(self.0.as_slice());
        let mut okm = Zeroizing::new([0u8; 32]);
        for counter in 0..=u8::MAX {
            let suffix = [0x00, counter];
            let info: [&[u8]; 2] = [user.as_bytes(), if counter == 0 { &[] } else { &suffix }];
            prk.expand(&info, Okm32)
                .and_then(|okm_source| okm_source.fill(okm.as_mut_slice()))
                .map_err(|_| KeyError::DerivationExhausted)?;
            if let Some(key) = accept(&okm) {
                return Ok(key);
            }
        }
        Err(KeyError::DerivationExhausted)
    }
}

/// HKDF output length of the derivation: one secp256k1 scalar.
struct Okm32;

impl KeyType for Okm32 {
    fn len(&self) -> usize {
        32
    }
}

impl fmt::Debug for MasterSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterSeed(<redacted>)")
    }
}

/// A secp256k1 private key: a scalar in `[1, n-1]`, zeroized when dropped.
pub struct PrivateKey(NonZeroScalar);

impl PrivateKey {
    /// Reads a 32-byte big-endian scalar, refusing 0 and values `>= n`.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let mut repr = k256::FieldBytes::from(*bytes);
        let scalar = NonZeroScalar::from_repr(repr);
        repr.zeroize();
        Option::from(scalar)
            .map(Self)
            .ok_or(KeyError::InvalidPrivateKey)
    }

    /// Reads a private key from a buffer of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: &[u8; 32] = bytes.try_into().map_err(|_| KeyError::InvalidPrivateKey)?;
        Self::from_bytes(array)
    }

    /// The secret scalar, for the signing primitive.
    pub(crate) fn scalar(&self) -> &NonZeroScalar {
        &self.0
    }

    /// A second zeroizing copy of the key (for a signer built from an imported key, which the
    /// key material keeps too). Deliberately not `Clone`.
    pub(crate) fn duplicate(&self) -> Self {
        Self(self.0)
    }

    /// The public key. Costs one scalar multiplication, as much as a signature: compute it once
    /// per key, not per request.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_secret_scalar(&self.0)
    }

    /// The Ethereum address: the last 20 bytes of keccak-256 of the uncompressed public key
    /// without its 0x04 prefix. Costs what [`Self::public_key`] costs.
    pub fn address(&self) -> Address {
        address_of(&self.public_key())
    }
}

/// The Ethereum address of a public key.
pub fn address_of(public_key: &PublicKey) -> Address {
    let point = public_key.to_encoded_point(false);
    // The 0x04 prefix of the uncompressed encoding is not hashed.
    Address::from_word(keccak256(point.as_bytes().get(1..).unwrap_or_default()))
}

/// An ECDSA P-256 private key: a scalar in `[1, n-1]`, zeroized when dropped.
pub struct P256PrivateKey(p256::NonZeroScalar);

impl P256PrivateKey {
    /// Reads a 32-byte big-endian scalar, refusing 0 and values `>= n`.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let mut repr = p256::FieldBytes::from(*bytes);
        let scalar = p256::NonZeroScalar::from_repr(repr);
        repr.zeroize();
        Option::from(scalar)
            .map(Self)
            .ok_or(KeyError::InvalidP256PrivateKey)
    }

    /// Reads a private key from a buffer of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: &[u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::InvalidP256PrivateKey)?;
        Self::from_bytes(array)
    }

    /// The secret scalar, for the signing primitive.
    pub(crate) fn scalar(&self) -> &p256::NonZeroScalar {
        &self.0
    }

    /// A second zeroizing copy of the key. Deliberately not `Clone`.
    pub(crate) fn duplicate(&self) -> Self {
        Self(self.0)
    }

    /// The public point as 64 bytes `x ‖ y` (Flow's form). Costs one scalar multiplication.
    pub fn public_key_xy(&self) -> [u8; 64] {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        let point = p256::PublicKey::from_secret_scalar(&self.0).to_encoded_point(false);
        let mut xy = [0u8; 64];
        // The uncompressed encoding is 0x04 ‖ x ‖ y.
        if let Some(coordinates) = point.as_bytes().get(1..65) {
            xy.copy_from_slice(coordinates);
        }
        xy
    }
}

impl Drop for P256PrivateKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for P256PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P256PrivateKey(<redacted>)")
    }
}

/// A user's key on one curve.
#[derive(Debug)]
pub enum CurveKey {
    /// secp256k1.
    Secp256k1(PrivateKey),
    /// P-256.
    P256(P256PrivateKey),
}

impl CurveKey {
    /// The public point as 64 bytes `x ‖ y`. Costs one scalar multiplication.
    pub fn public_key_xy(&self) -> [u8; 64] {
        match self {
            Self::Secp256k1(key) => {
                let point = key.public_key().to_encoded_point(false);
                let mut xy = [0u8; 64];
                if let Some(coordinates) = point.as_bytes().get(1..65) {
                    xy.copy_from_slice(coordinates);
                }
                xy
            }
            Self::P256(key) => key.public_key_xy(),
        }
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// The user-id rule of [`KeyMaterial::user_key`], from the blob's kind alone: a seed needs a user
/// id, an imported key refuses one. Checked before the key is loaded.
pub fn check_user(kind: KeyKind, user: Option<&UserId>) -> Result<(), KeyError> {
    match (kind, user) {
        (KeyKind::Seed, None) => Err(KeyError::UserIdRequired),
        (KeyKind::PrivateKey | KeyKind::P256PrivateKey, Some(_)) => Err(KeyError::UserIdNotAllowed),
        _ => Ok(()),
    }
}

/// The curve rule of [`KeyMaterial::flow_key`], from the blob's kind alone: an imported key
/// signs on its own curve only. Checked before the key is loaded.
pub fn check_curve(kind: KeyKind, curve: Curve) -> Result<(), KeyError> {
    match kind.curve() {
        Some(own) if own != curve => Err(KeyError::WrongCurve {
            key: own.as_str(),
            asked: curve.as_str(),
        }),
        _ => Ok(()),
    }
}

/// The secret a key blob holds.
#[derive(Debug)]
pub enum KeyMaterial {
    /// A master seed; users' keys are derived from it.
    Seed(MasterSeed),
    /// An imported secp256k1 private key, used as it is.
    Imported(PrivateKey),
    /// An imported P-256 private key, used as it is.
    ImportedP256(P256PrivateKey),
}

impl KeyMaterial {
    /// The private key for `user`: derived from a seed (a user id is required), or the imported
    /// key itself (a user id is refused, so that it cannot be silently ignored).
    pub fn user_key(&self, user: Option<&UserId>) -> Result<PrivateKey, KeyError> {
        check_user(self.kind(), user)?;
        match (self, user) {
            (Self::Seed(seed), Some(user)) => seed.derive(user),
            (Self::Imported(key), _) => Ok(key.duplicate()),
            (Self::Seed(_), None) => Err(KeyError::UserIdRequired),
            (Self::ImportedP256(_), _) => Err(KeyError::WrongCurve {
                key: Curve::P256.as_str(),
                asked: Curve::Secp256k1.as_str(),
            }),
        }
    }

    /// The private key for `user`'s Flow account key on `curve`: derived from a seed with the
    /// curve's Flow salt ([`P256_DERIVATION_SALT`], [`FLOW_SECP256K1_DERIVATION_SALT`]), or the
    /// imported key itself if it is on that curve. (An imported secp256k1 key is the same key
    /// for Flow and Ethereum: its policy decides what it signs on each.)
    pub fn flow_key(&self, curve: Curve, user: Option<&UserId>) -> Result<CurveKey, KeyError> {
        check_user(self.kind(), user)?;
        check_curve(self.kind(), curve)?;
        match (self, curve, user) {
            (Self::Seed(seed), Curve::Secp256k1, Some(user)) => {
                seed.derive_flow_secp256k1(user).map(CurveKey::Secp256k1)
            }
            (Self::Seed(seed), Curve::P256, Some(user)) => {
                seed.derive_p256(user).map(CurveKey::P256)
            }
            (Self::Seed(_), _, None) => Err(KeyError::UserIdRequired),
            (Self::Imported(key), _, _) => Ok(CurveKey::Secp256k1(key.duplicate())),
            (Self::ImportedP256(key), _, _) => Ok(CurveKey::P256(key.duplicate())),
        }
    }

    /// What the blob says this is.
    pub fn kind(&self) -> KeyKind {
        match self {
            Self::Seed(_) => KeyKind::Seed,
            Self::Imported(_) => KeyKind::PrivateKey,
            Self::ImportedP256(_) => KeyKind::P256PrivateKey,
        }
    }

    /// The 32 secret bytes, for re-encryption under a new policy.
    pub(crate) fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        match self {
            Self::Seed(seed) => Zeroizing::new(*seed.0),
            Self::Imported(key) => Zeroizing::new(key.0.to_bytes().into()),
            Self::ImportedP256(key) => Zeroizing::new(key.0.to_bytes().into()),
        }
    }

    /// The key's stable public identifier:
    /// `HKDF-SHA256(IKM = secret, salt = KEY_ID_SALT, info = kind, L = 32)`, where secret is the
    /// 32 secret bytes and kind `seed`, `private-key` or `p256-private-key`.
    ///
    /// One-way, so it reveals nothing about the secret; independent of the KMS key and blob, so a
    /// key re-encrypted under another KMS key keeps its id; and salted apart from the per-user
    /// derivation, so no user id can make a user's key equal to it.
    pub fn key_id(&self) -> Result<[u8; 32], KeyError> {
        let secret = self.secret_bytes();
        let kind = self.kind().as_str();
        let mut id = [0u8; 32];
        Salt::new(HKDF_SHA256, KEY_ID_SALT)
            .extract(secret.as_slice())
            .expand(&[kind.as_bytes()], Okm32)
            .and_then(|okm| okm.fill(&mut id))
            .map_err(|_| KeyError::DerivationExhausted)?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::new(id).unwrap()
    }

    #[test]
    fn debug_output_is_redacted() {
        let seed = MasterSeed::new(Zeroizing::new([0x42; 32]));
        let key = PrivateKey::from_bytes(&[0x46; 32]).unwrap();
        let material = KeyMaterial::Imported(PrivateKey::from_bytes(&[0x46; 32]).unwrap());
        for shown in [
            format!("{seed:?}"),
            format!("{key:?}"),
            format!("{material:?}"),
        ] {
            assert!(!shown.contains("42") && !shown.contains("46"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }

    #[test]
    fn refuses_out_of_range_private_keys() {
        // n, the group order, and n + 1 are out of range; n - 1 is the largest valid key.
        let n = alloy_hex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
        let n_minus_1 =
            alloy_hex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140");
        assert_eq!(
            PrivateKey::from_bytes(&[0; 32]).unwrap_err(),
            KeyError::InvalidPrivateKey
        );
        assert_eq!(
            PrivateKey::from_bytes(&n).unwrap_err(),
            KeyError::InvalidPrivateKey
        );
        assert_eq!(
            PrivateKey::from_bytes(&[0xff; 32]).unwrap_err(),
            KeyError::InvalidPrivateKey
        );
        assert!(PrivateKey::from_bytes(&n_minus_1).is_ok());
        assert_eq!(
            PrivateKey::from_slice(&[1; 31]).unwrap_err(),
            KeyError::InvalidPrivateKey
        );
    }

    fn alloy_hex(s: &str) -> [u8; 32] {
        alloy_primitives::hex::decode_to_array(s).unwrap()
    }

    #[test]
    fn the_retry_path_uses_the_documented_info() {
        // Force the first candidate out of range; the key must then come from
        // info = user id || 0x00 || 0x01, whose value the Python generator documents.
        let seed = MasterSeed::new(Zeroizing::new(core::array::from_fn(|i| i as u8)));
        let mut attempts = 0;
        let key = seed
            .derive_accepting(DERIVATION_SALT, &user("alice"), |okm| {
                attempts += 1;
                (attempts > 1).then(|| PrivateKey::from_bytes(okm).unwrap())
            })
            .unwrap();
        assert_eq!(attempts, 2);
        let documented =
            alloy_hex("a3d3d655ee2862e90029b3ab07e83b32173e972f6092dfe9296fb6ebf1a03327");
        assert_eq!(
            key.address(),
            PrivateKey::from_bytes(&documented).unwrap().address()
        );
    }

    #[test]
    fn key_ids_match_the_documented_vectors() {
        // docs/key-derivation.md, "Key id".
        let seed = KeyMaterial::Seed(MasterSeed::new(Zeroizing::new(core::array::from_fn(|i| {
            i as u8
        }))));
        assert_eq!(
            seed.key_id().unwrap(),
            alloy_hex("be48986b7e38e07ba2968420838110af3a7ac077f6c06f67a56419ba89c5def0")
        );
        let imported = KeyMaterial::Imported(PrivateKey::from_bytes(&[0x46; 32]).unwrap());
        assert_eq!(
            imported.key_id().unwrap(),
            alloy_hex("834bb007b26d14a96dba117ec6febde02b56ad47c617579eac020044fb461bab")
        );
    }

    #[test]
    fn p256_derivation_matches_the_documented_vectors_and_retries_the_same_way() {
        // docs/key-derivation.md, "P-256 test vectors" (tests/vectors/p256_derivation.py).
        let seed = MasterSeed::new(Zeroizing::new(core::array::from_fn(|i| i as u8)));
        let key = seed.derive_p256(&user("alice")).unwrap();
        assert_eq!(
            <[u8; 32]>::from(key.0.to_bytes()),
            alloy_hex("6f25290023fc3e3d197e16bd20d6b0bb327c995fcaa3f3564e1bc18263eda065")
        );
        assert_eq!(
            alloy_primitives::hex::encode(key.public_key_xy()),
            "85cac42373c7a8c50ab67fe328cf1dc0b3a6f8b4167101e9c15485f5ad86f71e\
             c00bf654aa2a30fe213cca6aeecb8f4c07a223543e4ce7feefae466cbda8f0ab"
        );
        let mut attempts = 0;
        let retried = seed
            .derive_accepting(P256_DERIVATION_SALT, &user("alice"), |okm| {
                attempts += 1;
                (attempts > 1).then(|| P256PrivateKey::from_bytes(okm).unwrap())
            })
            .unwrap();
        assert_eq!(
            <[u8; 32]>::from(retried.0.to_bytes()),
            alloy_hex("40c7991fcd2e660b43d849c4728db15b273e9d93d5729eacfa9101383869689a")
        );
    }

    #[test]
    fn curves_are_kept_apart() {
        // P-256's order n, and n - 1.
        let n = alloy_hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
        let n_minus_1 =
            alloy_hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550");
        assert_eq!(
            P256PrivateKey::from_bytes(&n).unwrap_err(),
            KeyError::InvalidP256PrivateKey
        );
        assert!(P256PrivateKey::from_bytes(&n_minus_1).is_ok());
        assert!(
            format!("{:?}", P256PrivateKey::from_bytes(&n_minus_1).unwrap()).contains("redacted")
        );

        let seed = KeyMaterial::Seed(MasterSeed::new(Zeroizing::new([7; 32])));
        let alice = user("alice");
        let k1 = seed.flow_key(Curve::Secp256k1, Some(&alice)).unwrap();
        let r1 = seed.flow_key(Curve::P256, Some(&alice)).unwrap();
        assert!(matches!(k1, CurveKey::Secp256k1(_)) && matches!(r1, CurveKey::P256(_)));
        assert_ne!(k1.public_key_xy(), r1.public_key_xy());
        // The Flow secp256k1 key is not the Ethereum one.
        let ethereum = seed.user_key(Some(&alice)).unwrap();
        let CurveKey::Secp256k1(flow) = &k1 else {
            panic!("secp256k1")
        };
        assert_ne!(ethereum.address(), flow.address());

        let imported = KeyMaterial::ImportedP256(P256PrivateKey::from_bytes(&[0x46; 32]).unwrap());
        assert_eq!(imported.kind(), KeyKind::P256PrivateKey);
        assert!(matches!(
            imported.flow_key(Curve::P256, None),
            Ok(CurveKey::P256(_))
        ));
        assert_eq!(
            imported.user_key(None).unwrap_err(),
            KeyError::WrongCurve {
                key: "p256",
                asked: "secp256k1"
            }
        );
        assert_eq!(
            imported.flow_key(Curve::P256, Some(&alice)).unwrap_err(),
            KeyError::UserIdNotAllowed
        );
        let k1_imported = KeyMaterial::Imported(PrivateKey::from_bytes(&[0x46; 32]).unwrap());
        assert!(matches!(
            k1_imported.flow_key(Curve::P256, None),
            Err(KeyError::WrongCurve {
                key: "secp256k1",
                asked: "p256"
            })
        ));
        // The same 32 bytes as another kind have another id.
        assert_ne!(imported.key_id().unwrap(), k1_imported.key_id().unwrap());
    }

    #[test]
    fn the_flow_sign_algo_codes_agree() {
        assert_eq!(
            Curve::P256.flow_sign_algo(),
            nitro_signer_flow::SIGN_ALGO_ECDSA_P256
        );
        assert_eq!(
            Curve::Secp256k1.flow_sign_algo(),
            nitro_signer_flow::SIGN_ALGO_ECDSA_SECP256K1
        );
    }

    #[test]
    fn seed_length_is_checked() {
        assert_eq!(
            MasterSeed::from_slice(&[0; 31]).unwrap_err(),
            KeyError::SeedLength { len: 31 }
        );
        assert!(MasterSeed::from_slice(&[0; 32]).is_ok());
    }

    #[test]
    fn user_ids_pick_distinct_keys_and_are_required_only_for_seeds() {
        let material = KeyMaterial::Seed(MasterSeed::new(Zeroizing::new([7; 32])));
        let a = material.user_key(Some(&user("alice"))).unwrap().address();
        let b = material.user_key(Some(&user("bob"))).unwrap().address();
        assert_ne!(a, b);
        assert_eq!(
            material.user_key(Some(&user("alice"))).unwrap().address(),
            a
        );
        assert_eq!(
            material.user_key(None).unwrap_err(),
            KeyError::UserIdRequired
        );

        let imported = KeyMaterial::Imported(PrivateKey::from_bytes(&[0x46; 32]).unwrap());
        assert_eq!(
            imported.user_key(Some(&user("alice"))).unwrap_err(),
            KeyError::UserIdNotAllowed
        );
        // The EIP-155 example key.
        assert_eq!(
            imported.user_key(None).unwrap().address().to_string(),
            "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F"
        );
    }
}
