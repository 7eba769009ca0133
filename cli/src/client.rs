//! Client commands against a running parent proxy, through [`nitro_signer_client::HttpClient`].
//! Payloads are read as JSON from a file or standard input and passed on as written; answers are
//! printed as the API's JSON.

use std::{
    io::Read,
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::{Context, bail};
use nitro_signer_client::{
    HttpClient,
    api::{
        AddressRequest, Approval, GenerateKeyRequest, KeyBlob, MAX_APPROVALS, Message,
        SignAuthorizationRequest, SignMessageRequest, SignTransactionRequest,
        SignTransactionsRequest, SignTypedDataRequest, UpdatePolicyRequest,
    },
};
use nitro_signer_common::{
    UserId,
    attestation::{Expectations, RootOfTrust, Verifier},
};
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Where the proxy is.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Target {
    /// The parent proxy's URL.
    #[arg(
        long,
        env = "NITRO_SIGNER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(crate) url: String,

    /// API key, for a proxy that requires one (--tenants). Prefer the environment variable: a
    /// command line is visible to other users of the machine.
    #[arg(long, env = "NITRO_SIGNER_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
}

impl Target {
    fn client(&self) -> anyhow::Result<HttpClient> {
        let client = HttpClient::new(self.url.clone())?;
        Ok(match &self.api_key {
            Some(key) => client.with_api_key(key)?,
            None => client,
        })
    }
}

/// Which key signs.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct KeyArgs {
    /// The key blob, base64, as `keys create` or `keys import` printed it.
    #[arg(long, env = "NITRO_SIGNER_KEY_BLOB")]
    pub(crate) key_blob: String,

    /// The user whose derived key signs (required for seeds, refused for imported private keys).
    #[arg(long)]
    pub(crate) user_id: Option<String>,
}

impl KeyArgs {
    fn blob(&self) -> anyhow::Result<KeyBlob> {
        serde_json::from_value(serde_json::Value::String(self.key_blob.clone()))
            .context("--key-blob is not base64")
    }

    fn user(&self) -> anyhow::Result<Option<UserId>> {
        self.user_id
            .clone()
            .map(UserId::new)
            .transpose()
            .context("--user-id")
    }
}

/// Options of `keys create`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CreateArgs {
    #[command(flatten)]
    target: Target,

    /// Owner or tenant label, bound to the key through the KMS encryption context. With an API
    /// key, one of its owners (default: its first).
    #[arg(long)]
    label: Option<String>,

    /// File with the key's policy document (JSON, see docs/policy.md), sent as written; the
    /// enclave checks it and binds its hash to the blob.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

/// Options of `keys policy`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct UpdatePolicyArgs {
    #[command(flatten)]
    target: Target,

    /// The key blob, base64, whose policy changes.
    #[arg(long, env = "NITRO_SIGNER_KEY_BLOB")]
    key_blob: String,

    /// File with the new policy document (JSON), sent as written.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,

    #[command(flatten)]
    approvals: ApprovalArgs,
}

/// Approvals attached to a request.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ApprovalArgs {
    /// File with an approval, `{"approver", "expiresAt", "signature"}`, or a JSON array of them;
    /// repeat for several (at most 16 in all).
    #[arg(long = "approval", value_name = "FILE")]
    files: Vec<PathBuf>,
}

impl ApprovalArgs {
    /// The approvals of every file, in order.
    fn read(&self) -> anyhow::Result<Vec<Approval>> {
        let mut approvals = Vec::new();
        for path in &self.files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let parsed = if text.trim_start().starts_with('[') {
                serde_json::from_str::<Vec<Approval>>(&text)
            } else {
                serde_json::from_str::<Approval>(&text).map(|approval| vec![approval])
            };
            approvals.extend(parsed.with_context(|| {
                format!(
                    "{}: expected {{\"approver\", \"expiresAt\", \"signature\"}} or a list of them",
                    path.display()
                )
            })?);
        }
        if approvals.len() > MAX_APPROVALS {
            bail!(
                "{} approvals given; a request carries at most {MAX_APPROVALS}",
                approvals.len()
            );
        }
        Ok(approvals)
    }
}

/// Options of `address`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AddressArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    key: KeyArgs,
}

/// What to sign; the JSON comes from `FILE` or standard input.
#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum SignCommand {
    /// An `eth_signTransaction` object; prints the signed transaction.
    Transaction(SignArgs),
    /// A JSON array of transactions for one key and user; prints one result per transaction.
    Transactions(SignArgs),
    /// An EIP-191 message: `"0x…"` bytes or `{"utf8": "…"}`.
    Message(SignArgs),
    /// An `eth_signTypedData_v4` document.
    TypedData(SignArgs),
    /// An EIP-7702 authorization `{"chainId", "address", "nonce"}`.
    Authorization(SignArgs),
}

/// Options of the `sign` commands.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    approvals: ApprovalArgs,
    /// File with the JSON payload; `-` or absent reads standard input.
    file: Option<PathBuf>,
}

impl SignArgs {
    fn payload(&self) -> anyhow::Result<Box<RawValue>> {
        let mut text = String::new();
        match &self.file {
            Some(path) if path.as_os_str() != "-" => {
                text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
            }
            _ => {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading the payload from standard input")?;
            }
        }
        RawValue::from_string(text).context("the payload is not valid JSON")
    }
}

/// Options of `attest`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AttestArgs {
    #[command(flatten)]
    target: Target,

    /// Verify the document: signature, certificate chain to the root, nonce, and the expected
    /// PCRs. Without it, the document is printed unverified.
    #[arg(long)]
    verify: bool,

    /// A PCR the document must show, as `INDEX=HEX`; repeat for several (e.g. `0=…` `1=…` `2=…`).
    #[arg(long, value_name = "INDEX=HEX")]
    expect_pcr: Vec<String>,

    /// Trust the local dev stack's NSM simulator root (read from its data directory) instead of
    /// the AWS Nitro root. Such a document proves nothing about hardware.
    #[arg(long)]
    dev: bool,

    /// The dev stack's data directory (with `--dev`).
    #[arg(long, default_value = ".nitro-signer", env = "NITRO_SIGNER_DATA_DIR")]
    data_dir: PathBuf,

    /// Accept a debug-mode enclave (all-zero PCRs). Never in production.
    #[arg(long)]
    allow_debug: bool,
}

/// Prints `value` as pretty JSON on standard output. A closed pipe (`| head`) is not an error.
pub(crate) fn print<T: Serialize>(value: &T) -> anyhow::Result<()> {
    use std::io::Write;

    let text = serde_json::to_string_pretty(value)?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}

/// A JSON document from `path`, kept as written.
fn read_json(path: &Path, what: &str) -> anyhow::Result<Box<RawValue>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    RawValue::from_string(text).with_context(|| format!("the {what} is not valid JSON"))
}

/// `keys create`.
pub(crate) async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let request = GenerateKeyRequest {
        label: args.label,
        policy: args
            .policy
            .as_deref()
            .map(|path| read_json(path, "policy"))
            .transpose()?,
    };
    print(&args.target.client()?.generate_key_with(&request).await?)
}

/// `keys policy`.
pub(crate) async fn update_policy(args: UpdatePolicyArgs) -> anyhow::Result<()> {
    let key_blob = KeyArgs {
        key_blob: args.key_blob.clone(),
        user_id: None,
    }
    .blob()?;
    let request = UpdatePolicyRequest {
        key_blob,
        policy: read_json(&args.policy, "policy")?,
        approvals: args.approvals.read()?,
    };
    print(&args.target.client()?.update_policy(&request).await?)
}

/// `address`.
pub(crate) async fn address(args: AddressArgs) -> anyhow::Result<()> {
    let request = AddressRequest {
        key_blob: args.key.blob()?,
        user_id: args.key.user()?,
    };
    print(&args.target.client()?.address(&request).await?)
}

/// `sign …`.
pub(crate) async fn sign(command: SignCommand) -> anyhow::Result<()> {
    match command {
        SignCommand::Transaction(args) => {
            let request = SignTransactionRequest {
                key_blob: args.key.blob()?,
                user_id: args.key.user()?,
                transaction: args.payload()?,
                approvals: args.approvals.read()?,
            };
            print(&args.target.client()?.sign_transaction(&request).await?)
        }
        SignCommand::Transactions(args) => {
            let transactions: Vec<Box<RawValue>> = serde_json::from_str(args.payload()?.get())
                .context("expected a JSON array of transactions")?;
            let request = SignTransactionsRequest {
                key_blob: args.key.blob()?,
                user_id: args.key.user()?,
                transactions,
                approvals: args.approvals.read()?,
            };
            print(&args.target.client()?.sign_transactions(&request).await?)
        }
        SignCommand::Message(args) => {
            let message: Message = serde_json::from_str(args.payload()?.get())
                .context("expected \"0x…\" or {\"utf8\": \"…\"}")?;
            let request = SignMessageRequest {
                key_blob: args.key.blob()?,
                user_id: args.key.user()?,
                message,
                approvals: args.approvals.read()?,
            };
            print(&args.target.client()?.sign_message(&request).await?)
        }
        SignCommand::TypedData(args) => {
            let request = SignTypedDataRequest {
                key_blob: args.key.blob()?,
                user_id: args.key.user()?,
                typed_data: args.payload()?,
                approvals: args.approvals.read()?,
            };
            print(&args.target.client()?.sign_typed_data(&request).await?)
        }
        SignCommand::Authorization(args) => {
            let request = SignAuthorizationRequest {
                key_blob: args.key.blob()?,
                user_id: args.key.user()?,
                authorization: args.payload()?,
                approvals: args.approvals.read()?,
            };
            print(&args.target.client()?.sign_authorization(&request).await?)
        }
    }
}

/// `attest`.
pub(crate) async fn attest(args: AttestArgs) -> anyhow::Result<()> {
    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let answer = args.target.client()?.attestation(&nonce).await?;
    if !args.verify {
        return print(&serde_json::json!({
            "verified": false,
            "document": base64_of(&answer.document),
        }));
    }
    let root = if args.dev {
        let path = args.data_dir.join("nsm").join("nsm-root-cert.der");
        let der = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        RootOfTrust::dangerous_simulated(Sha256::digest(&der).into())
    } else {
        RootOfTrust::aws_nitro()
    };
    let mut pcrs = std::collections::BTreeMap::new();
    for spec in &args.expect_pcr {
        let (index, value) = spec
            .split_once('=')
            .with_context(|| format!("--expect-pcr {spec}: expected INDEX=HEX"))?;
        let value = hex::decode(value.trim_start_matches("0x"))
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .with_context(|| format!("--expect-pcr {spec}: expected 48 bytes of hex"))?;
        pcrs.insert(index.parse().context("--expect-pcr index")?, value);
    }
    if pcrs.is_empty() && !args.dev {
        bail!("--verify against the AWS root needs the expected PCRs (--expect-pcr 0=… 1=… 2=…)");
    }
    let verifier = Verifier::new(
        root,
        Expectations {
            pcrs,
            nonce: Some(nonce.to_vec()),
            allow_debug: args.allow_debug,
            ..Default::default()
        },
    );
    let verified = verifier
        .verify(&answer.document, SystemTime::now())
        .context("the attestation document did not verify")?;
    let document = verified.document();
    let pcrs: std::collections::BTreeMap<String, String> = document
        .pcrs
        .iter()
        .filter(|(_, value)| value.iter().any(|b| *b != 0))
        .map(|(index, value)| (index.to_string(), hex::encode(value)))
        .collect();
    print(&serde_json::json!({
        "verified": true,
        "simulated": verified.is_simulated(),
        "debug": verified.is_debug(),
        "moduleId": document.module_id,
        "timestampMs": document.timestamp_ms,
        "pcrs": pcrs,
    }))
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
