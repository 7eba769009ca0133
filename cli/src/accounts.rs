//! `nitro-signer accounts add`: an account for the proxy's JSON-RPC endpoint (`POST /`). Asks
//! the proxy for the address of a key blob and user, writes `DIR/ADDRESS.json`
//! ([`AccountFile`]) and has the proxy read its accounts again (`POST /reload`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use nitro_signer_client::api::{AccountFile, AddressRequest};
use nitro_signer_common::private_file::{create_private_dir, write_private};

use crate::client::{KeyArgs, Target};

/// `accounts` commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum AccountsCommand {
    /// Add an account (a key blob and user) to the JSON-RPC endpoint: writes DIR/ADDRESS.json
    /// and makes the proxy reload its accounts.
    Add(AddArgs),
}

/// Options of `accounts add`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    key: KeyArgs,

    /// A name for people, kept in the file (at most 128 characters).
    #[arg(long)]
    label: Option<String>,

    /// The proxy's accounts directory (its --accounts-dir; `nitro-signer dev` uses
    /// DATA_DIR/accounts).
    #[arg(
        long,
        env = "NITRO_SIGNER_ACCOUNTS_DIR",
        default_value = ".nitro-signer/accounts",
        value_name = "DIR"
    )]
    dir: PathBuf,

    /// Only write the file; do not ask the proxy to reload (send it SIGHUP or `POST /reload`
    /// later).
    #[arg(long)]
    no_reload: bool,
}

/// `accounts …`.
pub(crate) async fn run(command: AccountsCommand) -> anyhow::Result<()> {
    match command {
        AccountsCommand::Add(args) => add(args).await,
    }
}

async fn add(args: AddArgs) -> anyhow::Result<()> {
    if let Some(label) = &args.label {
        AccountFile::check_label(label).map_err(|why| anyhow::anyhow!("--label: {why}"))?;
    }
    let client = args.target.client()?;
    let request = AddressRequest {
        key_blob: args.key.blob()?,
        user_id: args.key.user()?,
    };
    let answer = client
        .address(&request)
        .await
        .context("asking the proxy for the account's address")?;
    let account = AccountFile {
        address: answer.address,
        key_blob: request.key_blob,
        user_id: request.user_id,
        label: args.label,
    };
    create_private_dir(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let path = args
        .dir
        .join(format!("{}.json", account.address.to_checksum(None)));
    let mut text = serde_json::to_vec_pretty(&account)?;
    text.push(b'\n');
    write_private(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    println!("address {}", account.address.to_checksum(None));
    println!("file {}", path.display());
    if args.no_reload {
        return Ok(());
    }
    let report = client
        .reload()
        .await
        .context("asking the proxy to reload its accounts (--no-reload skips it)")?;
    let address = account.address.to_checksum(None);
    if report.accounts.contains(&address) {
        println!("served {address}");
        return Ok(());
    }
    let file = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let why = report
        .refused
        .iter()
        .chain(&report.pending)
        .find(|refusal| refusal.file == file)
        .map_or_else(
            || "the proxy did not read the file: is --dir the proxy's --accounts-dir?".to_owned(),
            |refusal| refusal.reason.clone(),
        );
    bail!("the proxy does not serve {address}: {why}")
}
