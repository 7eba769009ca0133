//! What every nitro-signer binary does the same way at its edge: waiting for a stop signal.

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
