//! Tools for the people who approve: `nitro-signer approvers keygen` makes an approver's key
//! file, `nitro-signer approve` computes what a request will sign, with the same parsing and
//! hashing as the enclave (`nitro_signer_eth`, `nitro_signer_policy`), and prints the approval.
//!
//! The approval is the approver's signature over the statement of `docs/policy.md`; it names the
//! key id, the user id, the exact hash the enclave will sign and an expiry, so it approves that
//! one request and nothing else.

use std::{
    fs::OpenOptions,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use nitro_signer_common::UserId;
use nitro_signer_enclave::{Payload, SigningPolicy};
use nitro_signer_eth::{
    AuthorizationRequest, PersonalMessage, TransactionRequest, TypedData, hex::FromJsonHex,
};
use nitro_signer_policy::{
    Policy,
    approval::{
        ApproverKind, ApproverSecret, MAX_VALIDITY_SECS, batch_subject, policy_subject,
        statement_digest,
    },
};

/// `nitro-signer approvers …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ApproversCommand {
    /// Make an approver's key: a key file (mode 0600) and, on standard output, the entry for
    /// the policy's `approvers`.
    Keygen(KeygenArgs),
}

/// The signature scheme of an approver's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scheme {
    /// Ed25519.
    Ed25519,
    /// ECDSA P-256 with SHA-256 (as AWS KMS `ECDSA_SHA_256`, WebCrypto and HSMs do).
    P256,
}

/// Options of `approvers keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// The signature scheme.
    #[arg(long = "type", value_enum, default_value = "ed25519")]
    pub(crate) scheme: Scheme,
    /// Where to write the key file; an existing file is not overwritten.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
}

/// What an approval is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Subject {
    /// An `eth_signTransaction` object (JSON).
    Transaction,
    /// An EIP-191 message: the file's bytes, as they are.
    Message,
    /// An `eth_signTypedData_v4` document (JSON).
    TypedData,
    /// An EIP-7702 authorization `{chainId, address, nonce}` (JSON).
    Authorization,
    /// A JSON array of transactions, signed as one batch.
    Batch,
    /// A new policy document for the key (`POST /v1/keys/policy`); no user id.
    Policy,
    /// A raw 32-byte digest (0x-hex). You approve whatever it is the hash of, a transaction or
    /// a policy change included: approve digests only from sources you trust.
    Digest,
}

/// Options of `approve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ApproveArgs {
    /// The approver's key file (`approvers keygen`).
    #[arg(long, value_name = "FILE")]
    pub(crate) key: PathBuf,
    /// The approver's name in the key's policy; default: the key file's name without its
    /// extension (`ops-1.key` approves as `ops-1`).
    #[arg(long)]
    pub(crate) approver: Option<String>,
    /// The key id returned when the key was created (0x + 64 hex digits).
    #[arg(long)]
    pub(crate) key_id: String,
    /// The user id of the request (absent for imported private keys and policy changes).
    #[arg(long)]
    pub(crate) user_id: Option<String>,
    /// Seconds the approval stays valid, from now: at most 86400 (24 hours).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub(crate) expires_in: u64,
    /// What is approved.
    #[arg(value_enum)]
    pub(crate) subject: Subject,
    /// The file holding it (`-` for standard input).
    pub(crate) file: PathBuf,
}

/// Runs `approvers keygen`.
pub(crate) fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let kind = match args.scheme {
        Scheme::Ed25519 => ApproverKind::Ed25519,
        Scheme::P256 => ApproverKind::P256,
    };
    let secret = ApproverSecret::generate(kind).context("making the key")?;
    let contents = secret.to_file_json();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
        .with_context(|| format!("creating {} (it must not exist)", args.out.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", args.out.display()))?;
    let public = secret.public_key();
    let entry = serde_json::json!({
        "type": public.kind(),
        "publicKey": format!("0x{}", alloy_primitives::hex::encode(public.public_key())),
    });
    write_stdout(&format!("{entry}\n"))
}

/// Runs `approve`.
pub(crate) fn approve(args: &ApproveArgs) -> anyhow::Result<()> {
    if args.expires_in == 0 || args.expires_in > MAX_VALIDITY_SECS {
        bail!(
            "--expires-in: 1 to {MAX_VALIDITY_SECS} seconds (the enclave counts no approval valid for longer)"
        );
    }
    let key_id = alloy_primitives::B256::from_json_hex(&args.key_id)
        .map_err(|e| anyhow::anyhow!("--key-id: {e}"))?;
    let user = args
        .user_id
        .as_deref()
        .map(UserId::new)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--user-id: {e}"))?;
    if args.subject == Subject::Policy && user.is_some() {
        bail!("--user-id: a policy change is for the whole key; give no user id");
    }
    let input = read(&args.file)?;
    let subject = subject_of(args.subject, &input)?;
    let secret_json = std::fs::read_to_string(&args.key)
        .map(zeroize::Zeroizing::new)
        .with_context(|| format!("reading {}", args.key.display()))?;
    let secret = ApproverSecret::from_file_json(&secret_json)
        .with_context(|| format!("{} is not an approver key file", args.key.display()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let expires_at = now + args.expires_in;
    let digest = statement_digest(
        &key_id.0,
        user.as_ref().map(UserId::as_str),
        &subject,
        expires_at,
    );
    let signature = secret.sign(&digest).context("signing")?;
    let approver = match &args.approver {
        Some(name) => name.clone(),
        None => args
            .key
            .file_stem()
            .and_then(|stem| stem.to_str())
            .map(str::to_owned)
            .context("--approver: the key file's name gives none; name the approver")?,
    };
    let approval = serde_json::json!({
        "approver": approver,
        "expiresAt": expires_at,
        "signature": format!("0x{}", alloy_primitives::hex::encode(signature)),
    });
    write_stdout(&format!("{approval}\n"))
}

/// The hash the enclave will sign for `input` read as `kind`: the enclave's own
/// [`Payload::prepare`], with every opt-in on (the key's policy decides what is allowed).
pub(crate) fn subject_of(kind: Subject, input: &[u8]) -> anyhow::Result<[u8; 32]> {
    let everything = SigningPolicy {
        allow_raw_digest: true,
        allow_pre_eip155: true,
        allow_any_chain_authorization: true,
    };
    let hash = |payload: Payload| -> anyhow::Result<[u8; 32]> {
        Ok(payload.prepare(&everything)?.signing_hash().0)
    };
    match kind {
        Subject::Transaction => hash(Payload::Transaction(TransactionRequest::from_json(input)?)),
        Subject::Message => hash(Payload::Message(PersonalMessage::Bytes(
            input.to_vec().into(),
        ))),
        Subject::TypedData => hash(Payload::TypedData(TypedData::from_json(input)?)),
        Subject::Authorization => hash(Payload::Authorization(AuthorizationRequest::from_json(
            input,
        )?)),
        Subject::Digest => {
            let text = std::str::from_utf8(input).context("a digest is 0x-hex text")?;
            let digest = alloy_primitives::B256::from_json_hex(text.trim())
                .map_err(|e| anyhow::anyhow!("digest: {e}"))?;
            hash(Payload::DangerousDigest(digest))
        }
        Subject::Batch => {
            let items: Vec<&serde_json::value::RawValue> =
                serde_json::from_slice(input).context("a batch is a JSON array of transactions")?;
            let hashes = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    TransactionRequest::from_json(item.get().as_bytes())
                        .map_err(anyhow::Error::from)
                        .and_then(|tx| hash(Payload::Transaction(tx)))
                        .with_context(|| format!("[{i}]"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok(batch_subject(&hashes))
        }
        Subject::Policy => {
            let policy = Policy::from_json(input).map_err(|e| anyhow::anyhow!("policy.{e}"))?;
            Ok(policy_subject(policy.canonical()))
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buffer = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer)?;
        return Ok(buffer);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    Ok(stdout.flush()?)
}
