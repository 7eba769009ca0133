//! What every nitro-signer binary does the same way at its edge: its async runtime, and waiting
//! for a stop signal.

/// Completes on Ctrl-C (SIGINT) or SIGTERM, the signals systemd, `nitro-signer dev` and
/// terminals send.
pub async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}

/// How many threads run a binary's asynchronous work.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct RuntimeArgs {
    /// Worker threads of the async runtime [default: one per CPU]. Components that share a
    /// machine (the parent proxy beside other services, or the whole `nitro-signer dev` stack on
    /// one laptop) waste less time switching between threads with fewer.
    #[arg(long, env = "NITRO_SIGNER_WORKER_THREADS", value_name = "N")]
    pub worker_threads: Option<std::num::NonZeroUsize>,
}

impl RuntimeArgs {
    /// The multi-threaded Tokio runtime these options describe.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(threads) = self.worker_threads {
            builder.worker_threads(threads.get());
        }
        builder.enable_all().build()
    }
}
