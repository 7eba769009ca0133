//! `nitro-signer keys import`: encrypts an existing seed or private key under a KMS key, with the
//! encryption context that binds its key blob, on the client side.
//!
//! This is KMS `Encrypt`, which needs no attestation: the secret already exists outside the
//! enclave (a hot wallet being migrated), so the import is only as safe as the machine it runs on.
//! Run it where the secret already is, then destroy the secret. The secret is read from a file or
//! standard input, never from the command line (which other users can see in the process list).
//!
//! With `--policy FILE`, the blob carries that policy document: it is parsed and checked here as
//! the enclave will (`nitro_signer_policy::Policy::from_json`), and its canonical form goes into
//! the blob, its SHA-256 into the encryption context (`nitro-signer:policy-sha256`), so that KMS
//! refuses to decrypt the blob if the policy is touched. A policy document replaces the `--allow`
//! opt-ins (a blob has one or the other).

use std::{
    collections::HashMap,
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use nitro_signer_common::key_blob::{KeyBlob, KeyKind, KeyMetadata, PolicyFlag};
use nitro_signer_enclave::{KeyMaterial, MasterSeed, P256PrivateKey, PrivateKey};
use nitro_signer_policy::Policy;
use zeroize::Zeroizing;

use crate::dev::{DevCredentials, DevState};

/// What is imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// A 32-byte master seed; users' keys are derived from it.
    Seed,
    /// A secp256k1 private key, used as it is.
    PrivateKey,
    /// An ECDSA P-256 private key (Flow accounts), used as it is.
    P256PrivateKey,
}

/// An opt-in beyond the safe defaults, bound to the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Allow {
    /// Sign caller-supplied 32-byte hashes (`/v1/sign/digest`).
    RawDigest,
    /// Sign legacy transactions without a chain id.
    PreEip155,
    /// Sign EIP-7702 authorizations valid on every chain.
    AnyChainAuthorization,
}

/// Options of `keys import`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ImportArgs {
    /// What the secret is.
    #[arg(long, value_enum)]
    pub(crate) kind: Kind,

    /// File holding the secret as 64 hex digits (optionally 0x-prefixed); `-` or absent reads
    /// standard input.
    #[arg(long, value_name = "PATH")]
    pub(crate) secret_file: Option<PathBuf>,

    /// Owner/tenant label bound to the blob (1 to 128 printable ASCII characters).
    #[arg(long)]
    pub(crate) owner: Option<String>,

    /// Opt-ins bound to the blob; repeat for several. Not with `--policy`.
    #[arg(long, value_enum)]
    pub(crate) allow: Vec<Allow>,

    /// File with the key's policy document (JSON, see docs/policy.md), checked here and bound to
    /// the blob by its hash. It replaces `--allow`: put what the opt-ins allowed in the policy.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,

    /// Use the running local dev stack's KMS emulator, key and credentials (from its data dir).
    #[arg(long, conflicts_with_all = ["kms_key_id", "kms_endpoint"])]
    pub(crate) dev: bool,

    /// The dev stack's data directory (with `--dev`).
    #[arg(long, default_value = ".nitro-signer", env = "NITRO_SIGNER_DATA_DIR")]
    pub(crate) data_dir: PathBuf,

    /// KMS key (id or ARN) to encrypt under. Credentials come from the standard AWS chain.
    #[arg(long, required_unless_present = "dev")]
    pub(crate) kms_key_id: Option<String>,

    /// KMS endpoint URL (e.g. a KMS emulator); default: the region's AWS endpoint.
    #[arg(long)]
    pub(crate) kms_endpoint: Option<String>,

    /// AWS region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub(crate) kms_region: String,
}

fn read_secret(args: &ImportArgs) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let mut text = Zeroizing::new(String::new());
    match &args.secret_file {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::File::open(path)
                .and_then(|mut file| file.read_to_string(&mut text))
                .with_context(|| format!("reading {}", path.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the secret from standard input")?;
        }
    }
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    let mut secret = Zeroizing::new([0u8; 32]);
    if hex::decode_to_slice(digits, secret.as_mut_slice()).is_err() {
        bail!("the secret must be exactly 64 hex digits (32 bytes), optionally 0x-prefixed");
    }
    Ok(secret)
}

/// The policy document of `--policy`, parsed and checked; refused with `--allow`.
fn read_policy(args: &ImportArgs) -> anyhow::Result<Option<Policy>> {
    let Some(path) = &args.policy else {
        return Ok(None);
    };
    if !args.allow.is_empty() {
        bail!(
            "--policy and --allow cannot be combined: a key blob has either opt-ins or a policy \
             document; state what the opt-ins allowed (raw digests, pre-EIP-155 transactions, \
             any-chain authorizations) in the policy instead"
        );
    }
    let json = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let policy = Policy::from_json(&json)
        .with_context(|| format!("{} is not a valid policy document", path.display()))?;
    Ok(Some(policy))
}

/// Runs the import and prints `{"keyBlob", "keyId", "address"?, "publicKey"?, "policyHash"?}`
/// (`address` for a secp256k1 key, `publicKey` (`x ‖ y`) for a P-256 key).
pub(crate) async fn run(args: ImportArgs) -> anyhow::Result<()> {
    // The policy first: a mistake in it should not cost reading the secret.
    let policy = read_policy(&args)?;
    let secret = read_secret(&args)?;
    let material = match args.kind {
        Kind::Seed => KeyMaterial::Seed(MasterSeed::new(secret.clone())),
        Kind::PrivateKey => KeyMaterial::Imported(
            PrivateKey::from_bytes(&secret).context("not a valid secp256k1 private key")?,
        ),
        Kind::P256PrivateKey => KeyMaterial::ImportedP256(
            P256PrivateKey::from_bytes(&secret).context("not a valid P-256 private key")?,
        ),
    };
    let kind = match args.kind {
        Kind::Seed => KeyKind::Seed,
        Kind::PrivateKey => KeyKind::PrivateKey,
        Kind::P256PrivateKey => KeyKind::P256PrivateKey,
    };
    let flags = args
        .allow
        .iter()
        .map(|allow| match allow {
            Allow::RawDigest => PolicyFlag::RawDigest,
            Allow::PreEip155 => PolicyFlag::PreEip155,
            Allow::AnyChainAuthorization => PolicyFlag::AnyChainAuthorization,
        })
        .collect::<Vec<_>>();

    let (client, kms_key) = if args.dev {
        dev_kms(&args.data_dir)?
    } else {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(args.kms_region.clone()));
        if let Some(endpoint) = &args.kms_endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        (
            aws_sdk_kms::Client::new(&config),
            args.kms_key_id
                .clone()
                .context("--kms-key-id is required")?,
        )
    };

    let mut metadata = KeyMetadata::new(kind, kms_key, args.owner.clone(), flags)?;
    if let Some(policy) = &policy {
        metadata = metadata.with_policy_document(policy.canonical().to_vec())?;
    }
    let blob = encrypt(&client, metadata, &secret).await?;
    let mut out = serde_json::Map::new();
    out.insert(
        "keyBlob".into(),
        base64::engine::general_purpose::STANDARD
            .encode(blob.encode())
            .into(),
    );
    out.insert(
        "keyId".into(),
        format!("0x{}", hex::encode(material.key_id()?)).into(),
    );
    if let KeyMaterial::Imported(key) = &material {
        out.insert("address".into(), key.address().to_string().into());
    }
    if let KeyMaterial::ImportedP256(key) = &material {
        out.insert(
            "publicKey".into(),
            format!("0x{}", hex::encode(key.public_key_xy())).into(),
        );
    }
    if let Some(hash) = blob.metadata().policy_hash() {
        out.insert(
            "policyHash".into(),
            format!("0x{}", hex::encode(hash)).into(),
        );
    }
    crate::client::print(&out)
}

/// The KMS client and key of the running dev stack whose state is in `data_dir`.
pub(crate) fn dev_kms(data_dir: &Path) -> anyhow::Result<(aws_sdk_kms::Client, String)> {
    let state: DevState = serde_json::from_slice(
        &std::fs::read(data_dir.join("dev-stack.json"))
            .context("no running dev stack found (start `nitro-signer dev` first)")?,
    )?;
    let credentials = DevCredentials::load_or_create(data_dir)?;
    Ok((
        credentials.kms_client(&state.kms_endpoint),
        state.kms_key_arn,
    ))
}

/// A key blob for `secret`: KMS `Encrypt` under the metadata's KMS key with the encryption
/// context of the blob's metadata (kind, owner, opt-ins or policy hash), which `Decrypt` in the
/// enclave must repeat.
pub(crate) async fn encrypt(
    client: &aws_sdk_kms::Client,
    metadata: KeyMetadata,
    secret: &Zeroizing<[u8; 32]>,
) -> anyhow::Result<KeyBlob> {
    let kms_key = metadata.kms_key().to_owned();
    let encrypted = client
        .encrypt()
        .key_id(&kms_key)
        .plaintext(Blob::new(secret.to_vec()))
        .set_encryption_context(Some(HashMap::from_iter(metadata.encryption_context())))
        .send()
        .await
        .context("KMS Encrypt failed")?;
    let ciphertext = encrypted
        .ciphertext_blob()
        .context("KMS returned no ciphertext")?;
    // The blob names the key as KMS answered it (a full ARN, even when given by alias).
    let metadata = match encrypted.key_id() {
        Some(answered) if answered != kms_key => {
            let renamed = KeyMetadata::new(
                metadata.kind(),
                answered,
                metadata.owner().map(str::to_owned),
                metadata.policy().to_vec(),
            )?;
            match metadata.policy_document() {
                Some(document) => renamed.with_policy_document(document.to_vec())?,
                None => renamed,
            }
        }
        _ => metadata,
    };
    Ok(KeyBlob::new(metadata, ciphertext.as_ref().to_vec())?)
}
