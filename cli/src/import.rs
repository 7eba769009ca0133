//! `nitro-signer keys import`: encrypts an existing seed or private key under a KMS key, with the
//! encryption context that binds its key blob, on the client side.
//!
//! This is KMS `Encrypt`, which needs no attestation: the secret already exists outside the
//! enclave (a hot wallet being migrated), so the import is only as safe as the machine it runs on.
//! Run it where the secret already is, then destroy the secret. The secret is read from a file or
//! standard input, never from the command line (which other users can see in the process list).

use std::{
    collections::HashMap,
    io::Read,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use nitro_signer_common::key_blob::{KeyBlob, KeyKind, KeyMetadata, PolicyFlag};
use nitro_signer_enclave::{KeyMaterial, MasterSeed, PrivateKey};
use zeroize::Zeroizing;

use crate::dev::{DevCredentials, DevState};

/// What is imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// A 32-byte master seed; users' keys are derived from it.
    Seed,
    /// A secp256k1 private key, used as it is.
    PrivateKey,
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

    /// Opt-ins bound to the blob; repeat for several.
    #[arg(long, value_enum)]
    pub(crate) allow: Vec<Allow>,

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

/// Runs the import and prints `{"keyBlob", "keyId", "address"?}`.
pub(crate) async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let secret = read_secret(&args)?;
    let material = match args.kind {
        Kind::Seed => KeyMaterial::Seed(MasterSeed::new(secret.clone())),
        Kind::PrivateKey => KeyMaterial::Imported(
            PrivateKey::from_bytes(&secret).context("not a valid secp256k1 private key")?,
        ),
    };
    let kind = match args.kind {
        Kind::Seed => KeyKind::Seed,
        Kind::PrivateKey => KeyKind::PrivateKey,
    };
    let policy = args
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

    let blob = encrypt(&client, &kms_key, kind, args.owner.clone(), policy, &secret).await?;
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

/// A key blob for `secret`: KMS `Encrypt` under `kms_key` with the encryption context of the
/// blob's metadata (kind, owner, policy), which `Decrypt` in the enclave must repeat.
pub(crate) async fn encrypt(
    client: &aws_sdk_kms::Client,
    kms_key: &str,
    kind: KeyKind,
    owner: Option<String>,
    policy: Vec<PolicyFlag>,
    secret: &Zeroizing<[u8; 32]>,
) -> anyhow::Result<KeyBlob> {
    let metadata = KeyMetadata::new(kind, kms_key, owner, policy)?;
    let encrypted = client
        .encrypt()
        .key_id(kms_key)
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
        Some(answered) if answered != kms_key => KeyMetadata::new(
            kind,
            answered,
            metadata.owner().map(str::to_owned),
            metadata.policy().to_vec(),
        )?,
        _ => metadata,
    };
    Ok(KeyBlob::new(metadata, ciphertext.as_ref().to_vec())?)
}
