//! Client commands against a running parent proxy, through [`nitro_signer_client::HttpClient`].
//! Payloads are read as JSON from a file or standard input and passed on as written; answers are
//! printed as the API's JSON.

use std::{
    collections::BTreeMap,
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
    attestation::{Expectations, Pcr, RootOfTrust, Verifier},
};
use nitro_signer_enclave::nsm::SimulatorConfig;
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
    /// A client of the proxy, with the API key if one is configured.
    pub(crate) fn client(&self) -> anyhow::Result<HttpClient> {
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
    pub(crate) fn blob(&self) -> anyhow::Result<KeyBlob> {
        serde_json::from_value(serde_json::Value::String(self.key_blob.clone()))
            .context("--key-blob is not base64")
    }

    pub(crate) fn user(&self) -> anyhow::Result<Option<UserId>> {
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

    /// Check the enclave's receipt for the new key before printing it: the blob was made by an
    /// attested enclave running the image `--pcr0/1/2` pin (`--dev`: the local dev stack's
    /// simulator). A blob made anywhere else is refused.
    #[arg(long)]
    verify: bool,

    #[command(flatten)]
    trust: crate::verify::TrustArgs,
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
    pub(crate) fn read(&self) -> anyhow::Result<Vec<Approval>> {
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
        payload(self.file.as_deref())
    }
}

/// A JSON payload from `file`, or standard input when it is `-` or absent; sent as written.
pub(crate) fn payload(file: Option<&Path>) -> anyhow::Result<Box<RawValue>> {
    let mut text = String::new();
    match file {
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

/// Options of `attest`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AttestArgs {
    #[command(flatten)]
    target: Target,

    /// Verify the document: signature, certificate chain to the root, nonce, and the expected
    /// PCRs, of which PCR0, PCR1 and PCR2 are required. Without it, the document is printed
    /// unverified.
    #[arg(long)]
    verify: bool,

    /// A PCR the document must show, as `INDEX=HEX`; repeat for several. `--verify` needs at
    /// least PCR0, PCR1 and PCR2 (`0=…` `1=…` `2=…`, from the image's measurements): PCR1 alone
    /// is the same for every image built with one nitro-cli.
    #[arg(long, value_name = "INDEX=HEX")]
    expect_pcr: Vec<String>,

    /// Trust the local dev stack's NSM simulator root (read from its data directory) instead of
    /// the AWS Nitro root, and expect the simulator's PCR0, PCR1 and PCR2 unless `--expect-pcr`
    /// gives them. Such a document proves nothing about hardware.
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
        // `--verify` makes one (the client adds it).
        nonce: None,
    };
    let client = if args.verify {
        args.trust.client(&args.target)?
    } else {
        args.target.client()?
    };
    print(&client.generate_key_with(&request).await?)
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
        nonce: None,
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

/// The PCRs every verification pins: image (PCR0), kernel and boot ramdisk (PCR1, the same for
/// every image built with one nitro-cli, so never enough alone) and application (PCR2).
const REQUIRED_PCRS: [u8; 3] = [0, 1, 2];

/// The PCRs `attest --verify` expects: `--expect-pcr` values, with (under `--dev`) the dev
/// stack's simulated measurements for PCR0, PCR1 and PCR2 where none is given. Refuses a set
/// that pins fewer than PCR0, PCR1 and PCR2, naming the flags missing.
fn expected_pcrs(specs: &[String], dev: bool) -> anyhow::Result<BTreeMap<u8, Pcr>> {
    let mut pcrs = BTreeMap::new();
    for spec in specs {
        let (index, value) = spec
            .split_once('=')
            .with_context(|| format!("--expect-pcr {spec}: expected INDEX=HEX"))?;
        let index: u8 = index
            .parse()
            .ok()
            .filter(|index| *index < 32)
            .with_context(|| format!("--expect-pcr {spec}: expected an index from 0 to 31"))?;
        let value: Pcr = hex::decode(value.trim_start_matches("0x"))
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .with_context(|| format!("--expect-pcr {spec}: expected 48 bytes of hex"))?;
        if pcrs
            .insert(index, value)
            .is_some_and(|earlier| earlier != value)
        {
            bail!("--expect-pcr gives two different values for PCR{index}");
        }
    }
    if dev {
        // The dev stack's enclave runs the NSM simulator with its default measurements.
        for (index, value) in SimulatorConfig::default_pcrs() {
            if REQUIRED_PCRS.contains(&index) {
                pcrs.entry(index).or_insert(value);
            }
        }
    }
    let missing: Vec<String> = REQUIRED_PCRS
        .iter()
        .filter(|index| !pcrs.contains_key(index))
        .map(|index| format!("--expect-pcr {index}=HEX"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "--verify needs PCR0, PCR1 and PCR2 pinned (PCR1 alone is the same for every image \
             built with one nitro-cli); missing: {} (the values from the image's measurements \
             file, see docs/deploy.md step 7)",
            missing.join(" ")
        );
    }
    Ok(pcrs)
}

/// `attest`.
pub(crate) async fn attest(args: AttestArgs) -> anyhow::Result<()> {
    // The arguments are checked before anything goes over the network.
    let expected = if args.verify {
        Some(expected_pcrs(&args.expect_pcr, args.dev)?)
    } else {
        None
    };
    let mut nonce = [0u8; 32];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let answer = args.target.client()?.attestation(&nonce).await?;
    let Some(pcrs) = expected else {
        return print(&serde_json::json!({
            "verified": false,
            "document": base64_of(&answer.document),
        }));
    };
    let root = if args.dev {
        let path = args.data_dir.join("nsm").join("nsm-root-cert.der");
        let der = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        RootOfTrust::dangerous_simulated(Sha256::digest(&der).into())
    } else {
        RootOfTrust::aws_nitro()
    };
    let expectations = Expectations {
        pcrs,
        nonce: Some(nonce.to_vec()),
        allow_debug: args.allow_debug,
        ..Default::default()
    };
    // PCR0-2 are pinned above; only inspecting a debug enclave (`--allow-debug`) needs the
    // verifier that allows one.
    let verifier = if args.allow_debug {
        Verifier::dangerous_unpinned(root, expectations)
    } else {
        Verifier::pinned(root, expectations)?
    };
    let verified = verifier
        .verify(&answer.document, SystemTime::now())
        .context("the attestation document did not verify")?;
    let document = verified.document();
    let pcrs: BTreeMap<String, String> = document
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn spec(index: u8, byte: u8) -> String {
        format!("{index}={}", hex::encode([byte; 48]))
    }

    #[test]
    fn verification_pins_pcr0_pcr1_and_pcr2() {
        let all = [spec(0, 0xa0), spec(1, 0xa1), spec(2, 0xa2), spec(8, 0xa8)];
        let pcrs = expected_pcrs(&all, false).unwrap();
        assert_eq!(pcrs.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 8]);
        assert_eq!(pcrs[&1], [0xa1; 48]);

        // Fewer than the three, in any combination: refused, naming the flags missing.
        for (given, missing) in [
            (
                vec![],
                "--expect-pcr 0=HEX --expect-pcr 1=HEX --expect-pcr 2=HEX",
            ),
            (vec![spec(1, 1)], "--expect-pcr 0=HEX --expect-pcr 2=HEX"),
            (
                vec![spec(0, 0), spec(2, 2)],
                "missing: --expect-pcr 1=HEX (",
            ),
            (
                vec![spec(0, 0), spec(1, 1), spec(8, 8)],
                "missing: --expect-pcr 2=HEX (",
            ),
        ] {
            let error = expected_pcrs(&given, false).unwrap_err().to_string();
            assert!(error.contains(missing), "{given:?}: {error}");
            assert!(error.contains("PCR0, PCR1 and PCR2"), "{error}");
        }

        // The dev stack: the simulator's measurements, unless given.
        let simulated = SimulatorConfig::default_pcrs();
        let dev = expected_pcrs(&[], true).unwrap();
        assert_eq!(dev.keys().copied().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(dev[&2], simulated[&2]);
        let dev = expected_pcrs(&[spec(2, 0x22)], true).unwrap();
        assert_eq!(dev[&2], [0x22; 48]);
        assert_eq!(dev[&0], simulated[&0]);
    }

    #[test]
    fn malformed_expectations_are_refused() {
        let good = [spec(0, 0), spec(1, 1), spec(2, 2)];
        for bad in [
            "0".to_owned(),
            format!("x={}", hex::encode([0; 48])),
            format!("32={}", hex::encode([0; 48])),
            format!("2={}", hex::encode([0; 32])),
            spec(2, 3),
        ] {
            let mut given = good.to_vec();
            given.push(bad.clone());
            assert!(expected_pcrs(&given, false).is_err(), "{bad}");
        }
        // The same value twice is harmless.
        let mut twice = good.to_vec();
        twice.push(spec(2, 2));
        assert!(expected_pcrs(&twice, false).is_ok());
    }
}
