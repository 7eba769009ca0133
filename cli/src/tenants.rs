//! `nitro-signer tenants`: the parent proxy's tenants file (`--tenants`): who may call its API,
//! by the SHA-256 of their API keys, and which key blob owner labels each may use. The format is
//! in `nitro_signer_common::tenants`; `docs/deploy.md` has rotation.

use std::path::{Path, PathBuf};

use anyhow::Context;
use nitro_signer_common::{
    private_file::write_private,
    tenants::{self, ApiKey, Tenant, Tenants},
};

use crate::client::print;

/// `tenants` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TenantsCommand {
    /// Add a tenant with a new API key. Prints the key once: the file keeps only its SHA-256.
    /// The proxy reads the file when it starts: restart it to apply the change.
    Add(AddArgs),
    /// Remove a tenant: its API key stops working once the proxy restarts.
    Remove(RemoveArgs),
}

/// The tenants file.
#[derive(Debug, clap::Args)]
pub(crate) struct FileArg {
    /// The tenants file (the proxy's --tenants), written with mode 0600; `add` creates it.
    #[arg(long, env = "NITRO_SIGNER_PROXY_TENANTS", value_name = "FILE")]
    file: PathBuf,
}

/// Options of `tenants add`.
#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    file: FileArg,

    /// The tenant's name, unique in the file: 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
    #[arg(long)]
    name: String,

    /// A key blob owner label whose blobs the tenant may use (1 to 128 printable ASCII
    /// characters); repeat for several. The first is the label of keys it creates without one.
    #[arg(long = "owner", value_name = "LABEL", required = true)]
    owners: Vec<String>,
}

/// Options of `tenants remove`.
#[derive(Debug, clap::Args)]
pub(crate) struct RemoveArgs {
    #[command(flatten)]
    file: FileArg,

    /// The tenant to remove.
    #[arg(long)]
    name: String,
}

/// The tenants in `path`, or `None` if there is no such file.
pub(crate) fn read(path: &Path) -> anyhow::Result<Option<Tenants>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let tenants = Tenants::parse(&bytes).with_context(|| format!("{}", path.display()))?;
    Ok(Some(tenants))
}

fn write(path: &Path, tenants: &Tenants) -> anyhow::Result<()> {
    write_private(path, tenants.to_json().as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// `tenants add`.
pub(crate) fn add(args: AddArgs) -> anyhow::Result<()> {
    let path = &args.file.file;
    let key = ApiKey::generate()?;
    let tenant = Tenant::new(args.name, key.sha256(), args.owners)?;
    let summary = serde_json::json!({
        "name": tenant.name(),
        "owners": tenant.owners(),
        "apiKey": key.as_str(),
    });
    let tenants = match read(path)? {
        Some(tenants) => tenants.with(tenant)?,
        None => Tenants::new(vec![tenant])?,
    };
    write(path, &tenants)?;
    eprintln!(
        "{}: tenant added. The API key below is shown once: only its SHA-256 is stored. \
         Restart the proxy to apply.",
        path.display()
    );
    print(&summary)
}

/// `tenants remove`.
pub(crate) fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    let path = &args.file.file;
    let tenants = read(path)?.with_context(|| format!("{} does not exist", path.display()))?;
    let remaining = match tenants.without(&args.name) {
        Err(tenants::TenantsError::Empty) => anyhow::bail!(
            "`{}` is the only tenant: a tenants file lists at least one (add the next one first, \
             or stop the proxy)",
            args.name
        ),
        other => other?,
    };
    write(path, &remaining)?;
    eprintln!(
        "{}: tenant `{}` removed. Restart the proxy to apply.",
        path.display(),
        args.name
    );
    Ok(())
}
