//! Checking the enclave's receipts (see `docs/receipts.md`).
//!
//! A [`ReceiptVerifier`] trusts a boot's receipt key once an attestation document of that boot
//! verified against a pinned root and pinned PCR0, PCR1 and PCR2, carried the caller's nonce, and
//! bound the key (its `public_key` is the key's SubjectPublicKeyInfo, its `user_data`
//! [`RECEIPT_KEY_USER_DATA`]). From then on a receipt costs one Ed25519 verification. The
//! `check_*` functions then compare what a receipt says with the answer it came with, so that an
//! answer the enclave did not give (a key blob made outside it, an address or a signature it did
//! not make) is refused.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::SystemTime,
};

use nitro_signer_api::{
    AddressResponse, AuthorizationResponse, BatchResult, FlowPublicKeyResponse,
    FlowSignatureResponse, KeyResponse, SignTransactionsResponse, SignatureResponse,
    SignedTransaction,
};
use nitro_signer_common::{
    UserId,
    attestation::{AttestationError, Expectations, RootOfTrust, Verifier},
    key_blob::{Curve, KeyBlob, KeyKind},
    receipt::{
        self, Operation, RECEIPT_KEY_USER_DATA, Receipt, ReceiptError, Statement,
        receipt_key_from_spki,
    },
};
use serde_bytes::{ByteArray, ByteBuf};

/// Why an answer's receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The answer carries no receipt.
    #[error("the answer carries no receipt")]
    Missing,
    /// The attestation document does not verify.
    #[error("attestation: {0}")]
    Attestation(#[from] AttestationError),
    /// The attestation document verified but binds no receipt key.
    #[error("the attestation document binds no receipt key")]
    NotBound,
    /// The receipt is malformed, signed by an unattested key, or its signature does not verify.
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    /// The receipt is genuine but says something else than the answer.
    #[error("the receipt does not match the answer: {0}")]
    Mismatch(&'static str),
}

/// A boot whose receipt key was attested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// The receipt key.
    pub receipt_key: [u8; 32],
    /// The enclave's module id, from the document.
    pub module_id: String,
    /// When the verified document was made (ms since the Unix epoch).
    pub attested_at_ms: u64,
    /// Whether the document chains to a simulator's root.
    pub simulated: bool,
}

/// Trusted receipt keys, one per attested boot, and the verifier that admits them.
#[derive(Debug)]
pub struct ReceiptVerifier {
    verifier: Verifier,
    boots: Mutex<HashMap<[u8; 32], Boot>>,
}

impl ReceiptVerifier {
    /// A verifier admitting boots whose documents chain to `root` and meet `expectations`,
    /// which must pin PCR0, PCR1 and PCR2 and refuse debug enclaves ([`Verifier::pinned`]).
    pub fn new(root: RootOfTrust, expectations: Expectations) -> Result<Self, AttestationError> {
        Ok(Self {
            verifier: Verifier::pinned(root, expectations)?,
            boots: Mutex::new(HashMap::new()),
        })
    }

    /// Verifies `document` (which must carry `nonce`) at `now`, and trusts the receipt key it
    /// binds. Returns the boot.
    pub fn trust(
        &self,
        document: &[u8],
        nonce: &[u8],
        now: SystemTime,
    ) -> Result<Boot, VerifyError> {
        let verified = self.verifier.expecting_nonce(nonce).verify(document, now)?;
        let document = verified.document();
        if document.user_data.as_deref() != Some(RECEIPT_KEY_USER_DATA) {
            return Err(VerifyError::NotBound);
        }
        let receipt_key = document
            .public_key
            .as_deref()
            .and_then(receipt_key_from_spki)
            .ok_or(VerifyError::NotBound)?;
        let boot = Boot {
            receipt_key,
            module_id: document.module_id.clone(),
            attested_at_ms: document.timestamp_ms,
            simulated: verified.is_simulated(),
        };
        self.boots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(receipt_key, boot.clone());
        Ok(boot)
    }

    /// Whether `receipt_key` belongs to an attested boot.
    pub fn is_trusted(&self, receipt_key: &[u8; 32]) -> bool {
        self.boots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(receipt_key)
    }

    /// The attested boots.
    pub fn boots(&self) -> Vec<Boot> {
        self.boots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Verifies `receipt` with the key of an attested boot: one signature verification.
    pub fn verify(&self, receipt: &Receipt) -> Result<Statement, VerifyError> {
        let statement = receipt.statement_unverified()?;
        if !self.is_trusted(&statement.receipt_key) {
            return Err(ReceiptError::UnknownKey.into());
        }
        Ok(receipt.verify(&statement.receipt_key)?)
    }
}

/// A receipt as the HTTP API carries it, in the framed protocol's type.
pub fn from_api(receipt: &nitro_signer_api::Receipt) -> Result<Receipt, VerifyError> {
    let signature: [u8; 64] = receipt
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| ReceiptError::Malformed("the signature is not 64 bytes"))?;
    Ok(Receipt {
        statement: ByteBuf::from(receipt.statement.clone()),
        signature: ByteArray::new(signature),
    })
}

fn ensure(condition: bool, what: &'static str) -> Result<(), VerifyError> {
    if condition {
        Ok(())
    } else {
        Err(VerifyError::Mismatch(what))
    }
}

/// What a request asked of which key, checked against its receipt. `None` fields are not
/// checked (a back end checking a receipt on its own may not have the request at hand).
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked<'a> {
    /// The key blob sent (for a policy change: the blob that was replaced).
    pub key_blob: Option<&'a [u8]>,
    /// The user id sent (`Some(None)`: none was sent).
    pub user_id: Option<Option<&'a UserId>>,
    /// The nonce a key creation or policy change carried.
    pub nonce: Option<[u8; 32]>,
}

/// Checks that the receipt is about the key blob and user that were asked for.
pub fn check_request(statement: &Statement, asked: Asked<'_>) -> Result<(), VerifyError> {
    if let Some(blob) = asked.key_blob {
        let expected = receipt::blob_hash(blob);
        let used = match statement.operation {
            Operation::UpdatePolicy => statement.previous_blob_hash,
            _ => Some(statement.blob_hash),
        };
        ensure(used == Some(expected), "another key blob")?;
    }
    if let Some(user) = asked.user_id {
        ensure(statement.user_id.as_ref() == user, "another user id")?;
    }
    if let Some(nonce) = asked.nonce {
        ensure(
            statement.request_nonce == Some(nonce),
            "another request's nonce (a replayed answer)",
        )?;
    }
    Ok(())
}

/// Checks the receipt of `POST /v1/keys` (`operation` [`Operation::GenerateKey`]) or
/// `POST /v1/keys/policy` ([`Operation::UpdatePolicy`]; `asked.key_blob` the blob that was
/// replaced): the enclave made this blob, with this key id and policy.
pub fn check_key(
    statement: &Statement,
    operation: Operation,
    asked: Asked<'_>,
    answer: &KeyResponse,
) -> Result<(), VerifyError> {
    ensure(statement.operation == operation, "another operation")?;
    check_request(statement, asked)?;
    ensure(
        statement.blob_hash == receipt::blob_hash(answer.key_blob.as_bytes()),
        "another key blob than the one answered",
    )?;
    ensure(statement.key_id == answer.key_id.0, "another key id")?;
    ensure(
        statement.policy_hash == answer.policy_hash.map(|hash| hash.0),
        "another policy hash",
    )
}

/// Checks that the blob of a key answer (whose receipt [`check_key`] checked) is what was asked
/// for: a seed (for key creation), the `owner` label, and the policy document `policy` (the
/// request's JSON text, compared as a JSON value with the document the blob carries, whose
/// SHA-256 must be the receipt's policy hash). Without it, a parent could forward another
/// request than the back end's (its own approvers, another owner) and hand back the genuine
/// answer to that.
pub fn check_key_contents(
    statement: &Statement,
    answer: &KeyResponse,
    owner: Option<&str>,
    policy: Option<&str>,
) -> Result<(), VerifyError> {
    let blob = KeyBlob::decode(answer.key_blob.as_bytes())
        .map_err(|_| VerifyError::Mismatch("the answered key blob does not decode"))?;
    let metadata = blob.metadata();
    if statement.operation == Operation::GenerateKey {
        ensure(metadata.kind() == KeyKind::Seed, "another kind of key")?;
    }
    ensure(metadata.owner() == owner, "another owner label")?;
    let document = metadata.policy_document();
    ensure(
        statement.policy_hash == document.map(receipt::blob_hash),
        "a policy hash that is not the blob's policy",
    )?;
    match (policy, document) {
        (None, None) => Ok(()),
        (Some(asked), Some(document)) => {
            let asked: serde_json::Value = serde_json::from_str(asked)
                .map_err(|_| VerifyError::Mismatch("the policy asked for is not JSON"))?;
            let kept: serde_json::Value = serde_json::from_slice(document)
                .map_err(|_| VerifyError::Mismatch("the blob's policy is not JSON"))?;
            ensure(asked == kept, "another policy than the one asked for")
        }
        _ => Err(VerifyError::Mismatch(
            "another policy than the one asked for",
        )),
    }
}

/// Checks the receipt of `POST /v1/address`.
pub fn check_address(
    statement: &Statement,
    asked: Asked<'_>,
    answer: &AddressResponse,
) -> Result<(), VerifyError> {
    ensure(
        statement.operation == Operation::Address,
        "another operation",
    )?;
    check_request(statement, asked)?;
    ensure(
        statement.address == Some(answer.address.into_array()),
        "another address",
    )
}

/// `r ‖ s ‖ yParity` of a transaction's signature.
fn transaction_signature(signed: &SignedTransaction) -> [u8; 65] {
    let mut bytes = [0u8; 65];
    bytes[..32].copy_from_slice(&signed.signature.r.to_be_bytes::<32>());
    bytes[32..64].copy_from_slice(&signed.signature.s.to_be_bytes::<32>());
    bytes[64] = u8::from(signed.signature.y_parity);
    bytes
}

fn check_single(
    statement: &Statement,
    asked: Asked<'_>,
    operation: Operation,
    from: [u8; 20],
    hash: [u8; 32],
    signature: [u8; 65],
) -> Result<(), VerifyError> {
    ensure(statement.operation == operation, "another operation")?;
    check_request(statement, asked)?;
    ensure(statement.address == Some(from), "another signer")?;
    let item = statement
        .items
        .first()
        .ok_or(VerifyError::Mismatch("no signature"))?;
    ensure(item.hash == hash, "another signed hash")?;
    ensure(item.signature == signature, "another signature")
}

/// Checks the receipt of `POST /v1/sign/transaction`.
pub fn check_transaction(
    statement: &Statement,
    asked: Asked<'_>,
    answer: &SignedTransaction,
) -> Result<(), VerifyError> {
    check_single(
        statement,
        asked,
        Operation::SignTransaction,
        answer.from.into_array(),
        answer.signing_hash.0,
        transaction_signature(answer),
    )
}

/// Checks the receipt of `POST /v1/sign/message`, `/v1/sign/typed-data` or `/v1/sign/digest`
/// (`operation` says which).
pub fn check_signature(
    statement: &Statement,
    asked: Asked<'_>,
    operation: Operation,
    answer: &SignatureResponse,
) -> Result<(), VerifyError> {
    let mut signature: [u8; 65] = answer
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| VerifyError::Mismatch("the answer's signature is not 65 bytes"))?;
    // The API's `v` is 27 or 28; the receipt's is the parity.
    signature[64] = match signature[64] {
        27 => 0,
        28 => 1,
        _ => return Err(VerifyError::Mismatch("the answer's v is not 27 or 28")),
    };
    check_single(
        statement,
        asked,
        operation,
        answer.from.into_array(),
        answer.hash.0,
        signature,
    )
}

/// A Flow answer's 64-byte public key, checked against the receipt's fingerprint on `curve`.
fn flow_public_key(
    statement: &Statement,
    curve: Curve,
    public_key: &[u8],
) -> Result<[u8; 64], VerifyError> {
    let public_key: [u8; 64] = public_key
        .try_into()
        .map_err(|_| VerifyError::Mismatch("the answer's public key is not 64 bytes"))?;
    ensure(
        statement.address == Some(receipt::flow_key_fingerprint(curve, &public_key)),
        "another public key or curve",
    )?;
    Ok(public_key)
}

/// Checks the receipt of `POST /v1/flow/public-key`: the enclave derived this public key on
/// this curve for the key and user asked (`address` is [`receipt::flow_key_fingerprint`]), and
/// the answer's account key encodes that key on that curve with weight 1000 and `hash` (either
/// hash algorithm when `None`).
pub fn check_flow_public_key(
    statement: &Statement,
    asked: Asked<'_>,
    curve: Curve,
    hash: Option<nitro_signer_flow::HashAlgorithm>,
    answer: &FlowPublicKeyResponse,
) -> Result<(), VerifyError> {
    ensure(
        statement.operation == Operation::FlowPublicKey,
        "another operation",
    )?;
    check_request(statement, asked)?;
    let public_key = flow_public_key(statement, curve, &answer.public_key)?;
    let hashes = match hash {
        Some(hash) => vec![hash],
        None => vec![
            nitro_signer_flow::HashAlgorithm::Sha2_256,
            nitro_signer_flow::HashAlgorithm::Sha3_256,
        ],
    };
    let encodes = hashes.into_iter().any(|hash| {
        answer.account_key
            == nitro_signer_flow::account_key_rlp(
                &public_key,
                curve.flow_sign_algo(),
                hash,
                nitro_signer_flow::FULL_WEIGHT,
            )
    });
    ensure(
        encodes,
        "an account key that is not the receipted public key's",
    )
}

/// Checks the receipt of `POST /v1/sign/flow-transaction`: the enclave signed this hash with
/// this signature for the key and user asked, with the key the answer names (`publicKey`) on
/// `curve` when it is given.
pub fn check_flow_signature(
    statement: &Statement,
    asked: Asked<'_>,
    curve: Option<Curve>,
    answer: &FlowSignatureResponse,
) -> Result<(), VerifyError> {
    ensure(
        statement.operation == Operation::SignFlow,
        "another operation",
    )?;
    check_request(statement, asked)?;
    if let Some(curve) = curve {
        flow_public_key(statement, curve, &answer.public_key)?;
    }
    let item = statement
        .items
        .first()
        .ok_or(VerifyError::Mismatch("no signature"))?;
    ensure(item.hash == answer.hash.0, "another signed hash")?;
    let mut signature = [0u8; 65];
    signature
        .get_mut(..64)
        .filter(|_| answer.signature.len() == 64)
        .ok_or(VerifyError::Mismatch(
            "the answer's signature is not 64 bytes",
        ))?
        .copy_from_slice(&answer.signature);
    ensure(item.signature == signature, "another signature")
}

/// Checks the receipt of `POST /v1/sign/authorization`.
pub fn check_authorization(
    statement: &Statement,
    asked: Asked<'_>,
    answer: &AuthorizationResponse,
) -> Result<(), VerifyError> {
    let mut signature = [0u8; 65];
    signature[..32].copy_from_slice(&answer.r.to_be_bytes::<32>());
    signature[32..64].copy_from_slice(&answer.s.to_be_bytes::<32>());
    signature[64] = u8::from(answer.y_parity);
    check_single(
        statement,
        asked,
        Operation::SignAuthorization,
        answer.from.into_array(),
        answer.hash.0,
        signature,
    )
}

/// Checks the receipt of `POST /v1/sign/transactions`: it lists exactly the transactions the
/// answer says were signed, with their hashes and signatures.
pub fn check_batch(
    statement: &Statement,
    asked: Asked<'_>,
    answer: &SignTransactionsResponse,
) -> Result<(), VerifyError> {
    ensure(
        statement.operation == Operation::SignBatch,
        "another operation",
    )?;
    check_request(statement, asked)?;
    let mut items = statement.items.iter();
    for (index, result) in answer.results.iter().enumerate() {
        let BatchResult::Signed(signed) = result else {
            continue;
        };
        let item = items.next().ok_or(VerifyError::Mismatch(
            "a signed transaction is not in the receipt",
        ))?;
        ensure(usize::from(item.index) == index, "another batch index")?;
        ensure(
            statement.address == Some(signed.from.into_array()),
            "another signer",
        )?;
        ensure(item.hash == signed.signing_hash.0, "another signed hash")?;
        ensure(
            item.signature == transaction_signature(signed),
            "another signature",
        )?;
    }
    ensure(
        items.next().is_none(),
        "the receipt lists a transaction the answer does not",
    )
}
