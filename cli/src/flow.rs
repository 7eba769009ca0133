//! Flow commands (`docs/flow.md`): `nitro-signer flow public-key` (a key's public key on a curve
//! and its account-key encoding) and `nitro-signer flow sign` (a Flow transaction signature).

use anyhow::Context;
use nitro_signer_client::api::{FlowPublicKeyRequest, SignFlowTransactionRequest};
use nitro_signer_common::key_blob::Curve;
use serde_json::value::RawValue;

use crate::client::{ApprovalArgs, KeyArgs, Target, payload, print};

/// `flow` commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum FlowCommand {
    /// The public key of a key (and user) on a curve, and the account key to add to a Flow
    /// account (RLP [publicKey, signAlgo, hashAlgo, weight 1000]).
    PublicKey(PublicKeyArgs),
    /// Sign a Flow transaction (JSON from FILE or standard input) for a role.
    Sign(SignArgs),
}

/// The curve of a Flow account key.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum CurveArg {
    /// ECDSA P-256 (Flow signAlgo 2).
    P256,
    /// ECDSA secp256k1 (Flow signAlgo 3).
    Secp256k1,
}

impl CurveArg {
    fn curve(self) -> Curve {
        match self {
            Self::P256 => Curve::P256,
            Self::Secp256k1 => Curve::Secp256k1,
        }
    }
}

/// The hash algorithm of a Flow account key.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum HashArg {
    /// SHA2-256 (Flow hashAlgo 1).
    #[value(name = "sha2-256")]
    Sha2_256,
    /// SHA3-256 (Flow hashAlgo 3).
    #[value(name = "sha3-256")]
    Sha3_256,
}

impl HashArg {
    fn algorithm(self) -> nitro_signer_flow::HashAlgorithm {
        match self {
            Self::Sha2_256 => nitro_signer_flow::HashAlgorithm::Sha2_256,
            Self::Sha3_256 => nitro_signer_flow::HashAlgorithm::Sha3_256,
        }
    }
}

/// The role a Flow signature is made for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RoleArg {
    /// The proposal key; signs the payload.
    Proposer,
    /// An authorizer; signs the payload.
    Authorizer,
    /// The payer; signs the envelope.
    Payer,
}

/// Options of `flow public-key`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PublicKeyArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    key: KeyArgs,
    /// The curve.
    #[arg(long, value_enum)]
    curve: CurveArg,
    /// The account key's hash algorithm.
    #[arg(long, value_enum)]
    hash: HashArg,
}

/// Options of `flow sign`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    approvals: ApprovalArgs,
    /// The curve of the signing account key.
    #[arg(long, value_enum)]
    curve: CurveArg,
    /// The account key's hash algorithm.
    #[arg(long, value_enum)]
    hash: HashArg,
    /// The role signed for.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// The signing account's address (0x and 16 hex digits).
    #[arg(long)]
    address: String,
    /// The index of the signing key on that account.
    #[arg(long)]
    key_index: u32,
    /// File with the transaction JSON; `-` or absent reads standard input.
    file: Option<std::path::PathBuf>,
}

/// `flow …`.
pub(crate) async fn run(command: FlowCommand) -> anyhow::Result<()> {
    match command {
        FlowCommand::PublicKey(args) => {
            let request = FlowPublicKeyRequest {
                key_blob: args.key.blob()?,
                user_id: args.key.user()?,
                curve: args.curve.curve(),
                hash: args.hash.algorithm(),
            };
            print(&args.target.client()?.flow_public_key(&request).await?)
        }
        FlowCommand::Sign(args) => {
            let raw = |value: serde_json::Value| {
                RawValue::from_string(value.to_string()).context("encoding an option")
            };
            let request = SignFlowTransactionRequest {
                key_blob: args.key.blob()?,
                user_id: args.key.user()?,
                curve: raw(serde_json::to_value(args.curve.curve())?)?,
                hash: raw(serde_json::to_value(args.hash.algorithm())?)?,
                role: raw(serde_json::Value::String(
                    format!("{:?}", args.role).to_lowercase(),
                ))?,
                signer: raw(serde_json::json!({
                    "address": args.address,
                    "keyIndex": args.key_index,
                }))?,
                transaction: payload(args.file.as_deref())?,
                approvals: args.approvals.read()?,
            };
            print(
                &args
                    .target
                    .client()?
                    .sign_flow_transaction(&request)
                    .await?,
            )
        }
    }
}
