//! `verify receipt` and the trust options every receipt check shares (`keys create --verify`).
//!
//! Trust in a receipt comes from an attestation document of the enclave's boot, fetched for a
//! fresh nonce, verified against a pinned root and pinned PCR0, PCR1 and PCR2 (never fewer), and
//! binding the boot's receipt key. See `docs/receipts.md`.

use std::{io::Read, path::PathBuf, sync::Arc, time::SystemTime};

use anyhow::{Context, bail};
use nitro_signer_client::{
    HttpClient, ReceiptVerifier,
    api::{
        AddressResponse, AuthorizationResponse, FlowPublicKeyResponse, FlowSignatureResponse,
        KeyBlob, KeyResponse, SignTransactionsResponse, SignatureResponse, SignedTransaction,
    },
    receipts::{self, Asked, Boot},
};
use nitro_signer_common::{
    UserId,
    attestation::{Expectations, Pcr, RootOfTrust},
    key_blob::Curve,
    receipt::{self, Operation, Statement},
};
use nitro_signer_enclave::nsm::SimulatorConfig;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::client::{Target, print};

/// Which enclave images' receipts to trust.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TrustArgs {
    /// PCR0 (the enclave image) the attestation must show, 48 bytes of hex (as `nitro-cli
    /// describe-eif` prints it).
    #[arg(long, value_name = "HEX", env = "NITRO_SIGNER_PCR0")]
    pcr0: Option<String>,

    /// PCR1 (kernel and boot ramdisk), 48 bytes of hex.
    #[arg(long, value_name = "HEX", env = "NITRO_SIGNER_PCR1")]
    pcr1: Option<String>,

    /// PCR2 (the application), 48 bytes of hex.
    #[arg(long, value_name = "HEX", env = "NITRO_SIGNER_PCR2")]
    pcr2: Option<String>,

    /// Trust the local dev stack's NSM simulator (its root from `--data-dir`, its PCRs unless
    /// given) instead of AWS Nitro hardware. Such receipts prove nothing about hardware.
    #[arg(long)]
    dev: bool,

    /// The dev stack's data directory (with `--dev`).
    #[arg(long, default_value = ".nitro-signer", env = "NITRO_SIGNER_DATA_DIR")]
    data_dir: PathBuf,
}

impl TrustArgs {
    /// The verifier these options describe; refuses fewer than PCR0, PCR1 and PCR2.
    pub(crate) fn receipt_verifier(&self) -> anyhow::Result<ReceiptVerifier> {
        let (root, pcrs) = self.root_and_pcrs()?;
        let expectations = Expectations {
            pcrs: (0u8..).zip(pcrs).collect(),
            ..Default::default()
        };
        Ok(ReceiptVerifier::new(root, expectations)?)
    }

    /// The root and PCR0, PCR1, PCR2 these options pin (all three, never all zero).
    pub(crate) fn root_and_pcrs(&self) -> anyhow::Result<(RootOfTrust, [Pcr; 3])> {
        let simulated = SimulatorConfig::default_pcrs();
        let mut pcrs = [[0u8; 48]; 3];
        for ((index, given), slot) in [(0u8, &self.pcr0), (1, &self.pcr1), (2, &self.pcr2)]
            .into_iter()
            .zip(&mut pcrs)
        {
            let value = match (given, self.dev) {
                (Some(hex), _) => parse_pcr(index, hex)?,
                (None, true) => *simulated
                    .get(&index)
                    .with_context(|| format!("the simulator has no PCR{index}"))?,
                (None, false) => bail!(
                    "--pcr{index} is required: receipts are trusted only from an attested image \
                     with PCR0, PCR1 and PCR2 pinned (PCR1 alone is the same for every image \
                     built with one nitro-cli)"
                ),
            };
            *slot = value;
        }
        if pcrs.iter().all(|pcr| pcr.iter().all(|b| *b == 0)) {
            bail!("all-zero PCRs are a debug-mode enclave's, whose memory the parent can read");
        }
        let root = if self.dev {
            let path = self.data_dir.join("nsm").join("nsm-root-cert.der");
            let der =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            RootOfTrust::dangerous_simulated(Sha256::digest(&der).into())
        } else {
            RootOfTrust::aws_nitro()
        };
        Ok((root, pcrs))
    }

    /// A client of `target` that checks every receipt.
    pub(crate) fn client(&self, target: &Target) -> anyhow::Result<HttpClient> {
        Ok(target
            .client()?
            .with_receipt_verifier(Arc::new(self.receipt_verifier()?)))
    }
}

fn parse_pcr(index: u8, hex: &str) -> anyhow::Result<Pcr> {
    hex::decode(hex.trim_start_matches("0x"))
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .with_context(|| format!("--pcr{index}: expected 48 bytes of hex"))
}

/// `verify`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum VerifyCommand {
    /// Verify an enclave receipt: fetch the enclave's attestation document for a fresh nonce,
    /// verify it (AWS root, PCR0, PCR1, PCR2), check that it binds the receipt key, verify the
    /// receipt's signature, and, for a whole API answer, that the receipt says what the answer
    /// says. Prints the receipt's statement.
    Receipt(ReceiptArgs),
}

/// Options of `verify receipt`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ReceiptArgs {
    #[command(flatten)]
    target: Target,

    #[command(flatten)]
    trust: TrustArgs,

    /// A file with an API answer carrying a `receipt` (as the proxy returned it), or a bare
    /// receipt `{"statement", "signature"}`; `-` reads standard input.
    #[arg(default_value = "-")]
    file: PathBuf,

    /// The key blob (base64) the request was made with: checked against the receipt (for a
    /// policy change, the blob that was replaced).
    #[arg(long)]
    key_blob: Option<String>,

    /// The user id the request was made with: checked against the receipt.
    #[arg(long)]
    user_id: Option<String>,

    /// What the answer is (e.g. `sign_message`, `generate_key`): message, typed-data and digest
    /// answers look alike, so without it the receipt's own word is taken.
    #[arg(long, value_name = "OPERATION")]
    operation: Option<String>,
}

/// Runs `verify`.
pub(crate) async fn run(command: VerifyCommand) -> anyhow::Result<()> {
    match command {
        VerifyCommand::Receipt(args) => verify_receipt(args).await,
    }
}

async fn verify_receipt(args: ReceiptArgs) -> anyhow::Result<()> {
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let value: Value = serde_json::from_str(&text).context("the input is not JSON")?;
    let (answer, receipt) = match value.get("receipt") {
        Some(receipt) => (Some(&value), receipt.clone()),
        None => (None, value.clone()),
    };
    let receipt: nitro_signer_client::api::Receipt =
        serde_json::from_value(receipt).context("not a receipt {\"statement\", \"signature\"}")?;
    let receipt = receipts::from_api(&receipt)?;
    let key = receipt.statement_unverified()?.receipt_key;

    let verifier = args.trust.receipt_verifier()?;
    let http = args.target.client()?;
    let nonce = receipt::random_nonce()?;
    let document = http.attestation(&nonce).await?.document;
    let boot = verifier
        .trust(&document, &nonce, SystemTime::now())
        .context("the enclave's attestation document did not verify")?;
    if boot.receipt_key != key {
        bail!(
            "the receipt was signed by receipt key {}, but the enclave behind {} attests {}: \
             it was restarted since, or the receipt is not from it",
            hex::encode(key),
            args.target.url,
            hex::encode(boot.receipt_key)
        );
    }
    let statement = verifier
        .verify(&receipt)
        .context("the receipt does not verify")?;

    let key_blob = args
        .key_blob
        .as_ref()
        .map(|blob| serde_json::from_value::<KeyBlob>(Value::String(blob.clone())))
        .transpose()
        .context("--key-blob: expected base64")?;
    let user_id = args
        .user_id
        .as_deref()
        .map(UserId::new)
        .transpose()
        .context("--user-id")?;
    let asked = Asked {
        key_blob: key_blob.as_ref().map(KeyBlob::as_bytes),
        user_id: user_id.as_ref().map(Some),
        nonce: None,
    };
    if let Some(name) = &args.operation {
        let operation = Operation::from_name(name)
            .with_context(|| format!("--operation {name}: not an operation of docs/receipts.md"))?;
        if statement.operation != operation {
            bail!(
                "the receipt is for {}, not {operation}",
                statement.operation
            );
        }
    }
    if let Some(answer) = answer {
        check_answer(&statement, asked, answer.clone())?;
    } else if asked.key_blob.is_some() || asked.user_id.is_some() {
        // A bare receipt: only the key and user can be compared.
        receipts::check_request(&statement, asked)?;
    }
    print(&json!({
        "verified": true,
        "checked": {
            "answer": answer.is_some(),
            "operation": args.operation.is_some(),
            "keyBlob": asked.key_blob.is_some(),
            "userId": asked.user_id.is_some(),
        },
        "boot": boot_json(&boot),
        "statement": statement_json(&statement),
    }))
}

/// Checks `answer` against the receipt, by the receipt's operation.
fn check_answer(statement: &Statement, asked: Asked<'_>, answer: Value) -> anyhow::Result<()> {
    let context = || format!("the answer is not a {} answer", statement.operation);
    match statement.operation {
        op @ (Operation::GenerateKey | Operation::UpdatePolicy) => {
            let answer: KeyResponse = serde_json::from_value(answer).with_context(context)?;
            receipts::check_key(statement, op, asked, &answer)?;
        }
        Operation::Address => {
            let answer: AddressResponse = serde_json::from_value(answer).with_context(context)?;
            receipts::check_address(statement, asked, &answer)?;
        }
        Operation::SignTransaction => {
            let answer: SignedTransaction = serde_json::from_value(answer).with_context(context)?;
            receipts::check_transaction(statement, asked, &answer)?;
        }
        Operation::SignBatch => {
            let answer: SignTransactionsResponse =
                serde_json::from_value(answer).with_context(context)?;
            receipts::check_batch(statement, asked, &answer)?;
        }
        Operation::SignAuthorization => {
            let answer: AuthorizationResponse =
                serde_json::from_value(answer).with_context(context)?;
            receipts::check_authorization(statement, asked, &answer)?;
        }
        Operation::FlowPublicKey => {
            let answer: FlowPublicKeyResponse =
                serde_json::from_value(answer).with_context(context)?;
            // The answer does not say the curve: the fingerprint must be the key's on one.
            let fits =
                |curve| receipts::check_flow_public_key(statement, asked, curve, None, &answer);
            if fits(Curve::P256).is_err() {
                fits(Curve::Secp256k1)?;
            }
        }
        Operation::SignFlow => {
            let answer: FlowSignatureResponse =
                serde_json::from_value(answer).with_context(context)?;
            // The answer names its key; the receipt's fingerprint must be that key's on one curve.
            let fits =
                |curve| receipts::check_flow_signature(statement, asked, Some(curve), &answer);
            if fits(Curve::P256).is_err() {
                fits(Curve::Secp256k1)?;
            }
            let hashed = [
                nitro_signer_flow::HashAlgorithm::Sha2_256,
                nitro_signer_flow::HashAlgorithm::Sha3_256,
            ]
            .into_iter()
            .any(|algorithm| nitro_signer_flow::hash(algorithm, &answer.message) == answer.hash.0);
            if !hashed {
                bail!("the hash signed is not the answered message's SHA2-256 or SHA3-256");
            }
        }
        op => {
            let answer: SignatureResponse = serde_json::from_value(answer).with_context(context)?;
            receipts::check_signature(statement, asked, op, &answer)?;
        }
    }
    Ok(())
}

fn boot_json(boot: &Boot) -> Value {
    json!({
        "receiptKey": format!("0x{}", hex::encode(boot.receipt_key)),
        "moduleId": boot.module_id,
        "attestedAtMs": boot.attested_at_ms,
        "simulated": boot.simulated,
    })
}

fn hex32(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// A statement as JSON, for people and scripts.
pub(crate) fn statement_json(statement: &Statement) -> Value {
    json!({
        "operation": statement.operation.as_str(),
        "receiptKey": hex32(&statement.receipt_key),
        "sequence": statement.sequence,
        "timeMs": statement.time_ms,
        "keyId": hex32(&statement.key_id),
        "blobHash": hex32(&statement.blob_hash),
        "policyHash": statement.policy_hash.map(|h| hex32(&h)),
        "userId": statement.user_id.as_ref().map(UserId::as_str),
        "address": statement.address.map(|a| hex32(&a)),
        "approvalsDigest": statement.approvals_digest.map(|d| hex32(&d)),
        "previousBlobHash": statement.previous_blob_hash.map(|h| hex32(&h)),
        "items": statement.items.iter().map(|item| json!({
            "index": item.index,
            "hash": hex32(&item.hash),
            "signature": hex32(&item.signature),
        })).collect::<Vec<_>>(),
    })
}
