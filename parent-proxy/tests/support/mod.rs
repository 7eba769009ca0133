//! The proxy in process, against the enclave stand-in: what the router, connection and client
//! tests start.

use std::{net::SocketAddr, time::Duration};

use nitro_signer_proxy::{Args, Server};
use nitro_signer_tests::stand_in::StandIn;
use tokio::sync::oneshot;

/// Starts the proxy on a loopback port against an enclave stand-in listening on a Unix socket in
/// `dir`, with `configure` applied to its arguments (no AWS credentials, no authentication). Returns once the proxy
/// is connected to the stand-in: its address, the stand-in, and the sender whose drop stops it.
pub(crate) async fn start_proxy(
    dir: &tempfile::TempDir,
    configure: impl FnOnce(&mut Args),
) -> (SocketAddr, StandIn, oneshot::Sender<()>) {
    let enclave = StandIn::start_unix(dir).await;
    let mut args = Args::new(enclave.address.clone());
    args.listen = "127.0.0.1:0".into();
    args.no_aws_credentials = true;
    args.no_auth = true;
    configure(&mut args);
    let server = Server::bind(args).await.unwrap();
    assert!(
        server
            .enclave_client()
            .wait_until_live(Duration::from_secs(2))
            .await
    );
    let address = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    (address, enclave, stop)
}
