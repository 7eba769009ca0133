//! `nitro-signer-proxy`: the parent proxy binary. See the library for the options.

use clap::Parser;
use nitro_signer_common::{
    logging::{self, LogFormat},
    process::RuntimeArgs,
};
use nitro_signer_proxy::Args;

/// The nitro-signer parent proxy: the HTTP/JSON API back ends call, forwarded to the enclave.
#[derive(Debug, Parser)]
#[command(name = "nitro-signer-proxy", version, about, long_about = None)]
struct Cli {
    /// Log format on standard error (the filter is RUST_LOG, default info).
    #[arg(
        long,
        env = "NITRO_SIGNER_PROXY_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,

    #[command(flatten)]
    args: Args,

    #[command(flatten)]
    runtime: RuntimeArgs,
}

async fn shutdown() {
    nitro_signer_common::process::shutdown_signal().await;
    tracing::info!("shutting down");
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    cli.runtime
        .runtime()?
        .block_on(nitro_signer_proxy::run(cli.args, shutdown()))?;
    Ok(())
}
