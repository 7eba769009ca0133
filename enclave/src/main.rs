//! `nitro-signer-enclave`: the process that runs inside the Nitro Enclave.

use clap::Parser;
use nitro_signer_common::process::RuntimeArgs;
use nitro_signer_enclave::cli;

/// The nitro-signer enclave: holds keys, signs, and returns only signatures.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Command {
    #[command(flatten)]
    args: cli::Args,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

fn main() -> anyhow::Result<()> {
    let command = Command::parse();
    nitro_signer_common::logging::init(nitro_signer_common::logging::LogFormat::Text);
    command.runtime.runtime()?.block_on(cli::run(
        command.args,
        nitro_signer_common::process::shutdown_signal(),
    ))?;
    Ok(())
}
