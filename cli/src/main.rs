//! `nitro-signer`: the local simulated stack, client commands against a running proxy, and key
//! import. The same binary also runs each component (`enclave`, `proxy`, `kms-emulator`) with the
//! same options as the production binaries; `dev` starts them that way.

// A command line prints its results on standard output; logs go to standard error.
#![allow(clippy::print_stdout)]

mod accounts;
mod approve;
mod audit;
mod bench;
mod client;
mod dev;
mod flow;
mod import;
mod policy;
mod tenants;
mod verify;

use clap::{Parser, Subcommand};
use nitro_signer_common::{
    logging::{self, LogFormat},
    process::RuntimeArgs,
};
use tokio::io::AsyncReadExt;

/// nitro-signer: Ethereum signing inside AWS Nitro Enclaves.
#[derive(Debug, Parser)]
#[command(name = "nitro-signer", version, about, long_about = None)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, env = "NITRO_SIGNER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the whole system locally in simulated mode: KMS emulator, enclave (NSM simulator)
    /// and parent proxy. Prints the proxy URL when ready; Ctrl-C stops everything.
    Dev(dev::DevArgs),
    /// Create keys (inside the enclave) or import existing ones (client-side KMS Encrypt).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The address of a key (and user).
    Address(client::AddressArgs),
    /// Sign a transaction, message, typed data or EIP-7702 authorization.
    #[command(subcommand)]
    Sign(client::SignCommand),
    /// Fetch the enclave's attestation document for a fresh nonce and verify it.
    Attest(client::AttestArgs),
    /// Verify what the enclave gave: its receipts (`docs/receipts.md`).
    #[command(subcommand)]
    Verify(verify::VerifyCommand),
    /// Write the production KMS key policy for an enclave image, from its measurements.
    Policy(policy::PolicyArgs),
    /// Approvers' keys (`docs/policy.md`).
    #[command(subcommand)]
    Approvers(approve::ApproversCommand),
    /// Approve one request for a key's policy: parses and hashes it as the enclave will, and
    /// prints the approval (JSON) to attach to the request.
    Approve(approve::ApproveArgs),
    /// The parent proxy's tenants file (`--tenants`): API keys and the key blob owner labels
    /// each may use.
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
    /// Flow: a key's public key and account key, and transaction signatures (`docs/flow.md`).
    #[command(subcommand)]
    Flow(flow::FlowCommand),
    /// Accounts of the proxy's Ethereum JSON-RPC endpoint (`docs/json-rpc.md`).
    #[command(subcommand)]
    Accounts(accounts::AccountsCommand),
    /// Audit logs (the proxy's `--audit-log`).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Load generator: signs transactions through the HTTP API with N concurrent connections,
    /// verifies every signature, and reports throughput, latency percentiles and the ratio to
    /// bare k256 signing on the same machine.
    Bench(bench::BenchArgs),
    /// Run the enclave process (what `nitro-signer-enclave` runs).
    Enclave(Component<nitro_signer_enclave::cli::Args>),
    /// Run the parent proxy (what `nitro-signer-proxy` runs).
    Proxy(Component<nitro_signer_proxy::Args>),
    /// Run the KMS emulator (what `nitro-signer-kms-emulator` runs).
    KmsEmulator(Component<nitro_signer_kms_emulator::cli::Args>),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Generate a new master seed inside the enclave; prints the key blob and key id.
    Create(client::CreateArgs),
    /// Encrypt an existing seed or private key under a KMS key (migration from a hot wallet).
    Import(import::ImportArgs),
    /// Replace a key's policy document, with the current policy's admins' approvals; prints the
    /// new key blob (store it in place of the old one), key id and policy hash.
    Policy(client::UpdatePolicyArgs),
}

/// A component's own options, plus how it is supervised.
#[derive(Debug, clap::Args)]
struct Component<A: clap::Args> {
    #[command(flatten)]
    args: A,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Stop when standard input closes (the supervising `nitro-signer dev` has exited).
    #[arg(long, hide = true)]
    exit_with_parent: bool,
}

/// Completes on Ctrl-C, SIGTERM, or (when `with_parent`) when standard input closes.
async fn shutdown(with_parent: bool) {
    let parent_gone = async {
        if with_parent {
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = nitro_signer_common::process::shutdown_signal() => {}
        () = parent_gone => {}
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = match &cli.command {
        Command::Enclave(c) => c.runtime,
        Command::Proxy(c) => c.runtime,
        Command::KmsEmulator(c) => c.runtime,
        _ => RuntimeArgs::default(),
    };
    runtime.runtime()?.block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev(args) => dev::run(args).await,
        Command::Keys(KeysCommand::Create(args)) => client::create(args).await,
        Command::Keys(KeysCommand::Import(args)) => import::run(args).await,
        Command::Keys(KeysCommand::Policy(args)) => client::update_policy(args).await,
        Command::Address(args) => client::address(args).await,
        Command::Sign(command) => client::sign(command).await,
        Command::Attest(args) => client::attest(args).await,
        Command::Verify(command) => verify::run(command).await,
        Command::Policy(args) => policy::run(args),
        Command::Approvers(approve::ApproversCommand::Keygen(args)) => approve::keygen(&args),
        Command::Approve(args) => approve::approve(&args),
        Command::Tenants(tenants::TenantsCommand::Add(args)) => tenants::add(args),
        Command::Tenants(tenants::TenantsCommand::Remove(args)) => tenants::remove(args),
        Command::Audit(command) => audit::run(command),
        Command::Accounts(command) => accounts::run(command).await,
        Command::Flow(command) => flow::run(command).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Enclave(c) => {
            Ok(nitro_signer_enclave::cli::run(c.args, shutdown(c.exit_with_parent)).await?)
        }
        Command::Proxy(c) => {
            Ok(nitro_signer_proxy::run(c.args, shutdown(c.exit_with_parent)).await?)
        }
        Command::KmsEmulator(c) => {
            Ok(nitro_signer_kms_emulator::cli::run(c.args, shutdown(c.exit_with_parent)).await?)
        }
    }
}
