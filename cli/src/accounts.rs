//! `nitro-signer accounts add`: an account for the proxy's JSON-RPC endpoint (`POST /`). Asks
//! the proxy for the address of a key blob and user, writes `DIR/ADDRESS.json`
//! ([`AccountFile`]) and has the proxy read its accounts again (`POST /reload`).

use std::path::{Path, PathBuf};

use alloy_primitives::Address;
use anyhow::{Context, bail};
use nitro_signer_client::{
    HttpClient,
    api::{AccountFile, AddressRequest, KeyBlob},
};
use nitro_signer_common::{
    UserId,
    private_file::{create_private_dir, write_private},
};

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
    let client = args.target.client()?;
    let (address, path) = write_account(
        &client,
        args.key.blob()?,
        args.key.user()?,
        args.label,
        &args.dir,
    )
    .await?;
    let address_text = address.to_checksum(None);
    println!("address {address_text}");
    println!("file {}", path.display());
    if args.no_reload {
        return Ok(());
    }
    check_served(&client, address, &path).await?;
    println!("served {address_text}");
    Ok(())
}

/// Adds the account of `key_blob` and `user_id` to the proxy's JSON-RPC endpoint: writes
/// `dir/ADDRESS.json` and has the proxy reload its accounts; the account's address, once the
/// proxy serves it (`bench --json-rpc`; `accounts add` takes the same two steps, printing
/// between them).
pub(crate) async fn add_account(
    client: &HttpClient,
    key_blob: KeyBlob,
    user_id: Option<UserId>,
    label: Option<String>,
    dir: &Path,
) -> anyhow::Result<Address> {
    let (address, path) = write_account(client, key_blob, user_id, label, dir).await?;
    check_served(client, address, &path).await?;
    Ok(address)
}

/// Asks the proxy for the address of `key_blob` and `user_id` and writes `dir/ADDRESS.json`;
/// the address and the file.
async fn write_account(
    client: &HttpClient,
    key_blob: KeyBlob,
    user_id: Option<UserId>,
    label: Option<String>,
    dir: &Path,
) -> anyhow::Result<(Address, PathBuf)> {
    if let Some(label) = &label {
        AccountFile::check_label(label).map_err(|why| anyhow::anyhow!("--label: {why}"))?;
    }
    let request = AddressRequest { key_blob, user_id };
    let answer = client
        .address(&request)
        .await
        .context("asking the proxy for the account's address")?;
    let account = AccountFile {
        address: answer.address,
        key_blob: request.key_blob,
        user_id: request.user_id,
        label,
    };
    create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.json", account.address.to_checksum(None)));
    let mut text = serde_json::to_vec_pretty(&account)?;
    text.push(b'\n');
    write_private(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    Ok((account.address, path))
}

/// Has the proxy read its accounts again (`POST /reload`) and checks that it serves `address`,
/// written to `path`; the refusal's reason otherwise.
async fn check_served(client: &HttpClient, address: Address, path: &Path) -> anyhow::Result<()> {
    let report = client
        .reload()
        .await
        .context("asking the proxy to reload its accounts (POST /reload)")?;
    let address = address.to_checksum(None);
    if report.accounts.contains(&address) {
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
            || {
                format!(
                    "the proxy did not read the file: is {} the proxy's --accounts-dir?",
                    path.parent().unwrap_or(path).display()
                )
            },
            |refusal| refusal.reason.clone(),
        );
    bail!("the proxy does not serve {address}: {why}")
}
