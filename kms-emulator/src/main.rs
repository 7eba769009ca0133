//! `nitro-signer-kms-emulator`: a local stand-in for AWS KMS, for nitro-signer's simulated mode.

use clap::Parser;
use nitro_signer_common::process::RuntimeArgs;
use nitro_signer_kms_emulator::cli;

/// A local stand-in for AWS KMS: the KMS JSON protocol with SigV4, key policies with attestation
/// conditions, and Recipient (CiphertextForRecipient) answers. For development and tests only.
#[derive(Debug, Parser)]
#[command(name = "nitro-signer-kms-emulator", version)]
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
