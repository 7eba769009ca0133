//! The enclave's receipt key and per-boot sequence (see [`nitro_signer_common::receipt`]).
//!
//! The key is Ed25519, made at start from the NSM's randomness, and never leaves this process:
//! it is not in any blob, any answer or any log. Its public half is bound by attestation
//! documents ([`ReceiptSigner::attestation`]), so a back end that verified one document of the
//! boot trusts every receipt the key signs.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use nitro_signer_common::receipt::{RECEIPT_KEY_USER_DATA, Receipt, Statement, receipt_key_spki};
use serde_bytes::{ByteArray, ByteBuf};
use zeroize::Zeroizing;

use crate::nsm::{AttestationRequest, Nsm, NsmError};

/// Signs receipts with the boot's key, numbering them from 1.
pub struct ReceiptSigner {
    key: Ed25519KeyPair,
    public: [u8; 32],
    sequence: AtomicU64,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptSigner")
            .field("public", &hex_prefix(&self.public))
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl ReceiptSigner {
    /// A new key from the NSM's randomness.
    pub fn generate(nsm: &dyn Nsm) -> Result<Self, NsmError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        nsm.fill_random(seed.as_mut_slice())?;
        let key = Ed25519KeyPair::from_seed_unchecked(seed.as_slice())
            .map_err(|_| NsmError::Crypto("receipt key from seed".into()))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(key.public_key().as_ref());
        Ok(Self {
            key,
            public,
            sequence: AtomicU64::new(0),
        })
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    /// An attestation document binding the receipt key (as `public_key`, in SubjectPublicKeyInfo
    /// form, with `user_data` [`RECEIPT_KEY_USER_DATA`]) and the caller's nonce.
    pub fn attestation(&self, nsm: &dyn Nsm, nonce: Option<&[u8]>) -> Result<Vec<u8>, NsmError> {
        let spki = receipt_key_spki(&self.public);
        nsm.attest(AttestationRequest {
            public_key: Some(&spki),
            user_data: Some(RECEIPT_KEY_USER_DATA),
            nonce,
        })
    }

    /// Signs `statement` after filling in the receipt key, the next sequence number and the
    /// time (whatever those fields held is replaced).
    pub fn sign(&self, mut statement: Statement) -> Receipt {
        statement.receipt_key = self.public;
        statement.sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        statement.time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let bytes = statement.encode();
        let mut signature = [0u8; 64];
        signature.copy_from_slice(self.key.sign(&bytes).as_ref());
        Receipt {
            statement: ByteBuf::from(bytes),
            signature: ByteArray::new(signature),
        }
    }

    /// Receipts signed so far.
    pub fn issued(&self) -> u64 {
        self.sequence.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use nitro_signer_common::{
        attestation::Pcr,
        receipt::{Operation, ReceiptError, Statement},
    };

    use super::*;

    /// An NSM whose randomness is 0, 1, …, 31 and that cannot attest.
    #[derive(Debug)]
    struct CountingNsm;

    impl Nsm for CountingNsm {
        fn attest(&self, _: AttestationRequest<'_>) -> Result<Vec<u8>, NsmError> {
            Err(NsmError::Device("not in this test".into()))
        }
        fn fill_random(&self, buf: &mut [u8]) -> Result<(), NsmError> {
            for (i, byte) in buf.iter_mut().enumerate() {
                *byte = i as u8;
            }
            Ok(())
        }
        fn pcr(&self, _: u8) -> Result<Pcr, NsmError> {
            Err(NsmError::Device("not in this test".into()))
        }
    }

    fn created() -> Statement {
        Statement {
            operation: Operation::GenerateKey,
            receipt_key: [0; 32],
            sequence: 0,
            time_ms: 0,
            key_id: [0x11; 32],
            blob_hash: [0x22; 32],
            policy_hash: None,
            user_id: None,
            address: None,
            approvals_digest: None,
            previous_blob_hash: None,
            request_nonce: None,
            items: Vec::new(),
        }
    }

    #[test]
    fn receipts_are_numbered_from_one_and_verify_with_the_public_key() {
        let signer = ReceiptSigner::generate(&CountingNsm).unwrap();
        // docs/receipts.md's vector key: the seed 00 01 … 1f.
        assert_eq!(
            alloy_primitives::hex::encode(signer.public_key()),
            "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
        );
        for expected in 1..=3 {
            let receipt = signer.sign(created());
            let statement = receipt.verify(signer.public_key()).unwrap();
            assert_eq!(statement.sequence, expected);
            assert_eq!(&statement.receipt_key, signer.public_key());
            assert!(statement.time_ms > 1_700_000_000_000);
            assert_eq!(
                receipt.verify(&[1; 32]).unwrap_err(),
                ReceiptError::UnknownKey
            );
        }
        assert_eq!(signer.issued(), 3);
        assert!(!format!("{signer:?}").contains("seed"));
    }
}
