//! Slowloris over real sockets, reduced: with the cap at 32, 40 clients that send a request head
//! one byte a second (and reconnect when cut) must not keep a new client waiting for the
//! header-read timeout: it is served within [`BOUND`].
#![cfg(test)]

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use nitro_signer_http_server::{ServerLimits, serve};
use nitro_signer_tests::sockets::read_until_closed;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinSet,
};

/// The cap of the reduced scenario.
const CAP: usize = 32;

/// Slow clients: more than the cap, as in the report (1,100 against 1,024).
const SLOW: usize = 40;

/// How soon a new client must be served: the pressure timeout (1 s), a check interval, and a
/// round of slow clients ahead of it in the backlog, with room for a loaded machine. Without the
/// pressure rule it waits for the 10 s header-read timeout.
const BOUND: Duration = Duration::from_secs(5);

async fn start(limits: ServerLimits) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new().route("/", get(|| async { "ok" }));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, app, limits, async move {
        let _ = stopped.await;
    }));
    (address, stop)
}

/// A slowloris client: sends a head a byte a second, never finishing it; reconnects when cut.
async fn slow_client(address: SocketAddr) {
    let head = b"GET / HTTP/1.1\r\nHost: test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    loop {
        let Ok(mut stream) = TcpStream::connect(address).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for byte in head {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// New clients, one every [`NEW_EVERY`], while the slow clients run.
const NEW_CLIENTS: usize = 12;
const NEW_EVERY: Duration = Duration::from_millis(250);

/// One new client's request: how long until its whole answer.
async fn new_client(address: SocketAddr) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(30)).await;
    let waited = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    waited
}

/// Starts the slow clients, lets them fill the server, then starts [`NEW_CLIENTS`] new clients
/// [`NEW_EVERY`] apart: their waits, sorted.
async fn new_client_waits(limits: ServerLimits) -> Vec<Duration> {
    let (address, _stop) = start(limits).await;
    let mut slow = JoinSet::new();
    for _ in 0..SLOW {
        slow.spawn(slow_client(address));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut new = JoinSet::new();
    for _ in 0..NEW_CLIENTS {
        new.spawn(new_client(address));
        tokio::time::sleep(NEW_EVERY).await;
    }
    let mut waits = new.join_all().await;
    slow.abort_all();
    waits.sort();
    eprintln!(
        "{} new clients: p50 {:?}, max {:?}",
        waits.len(),
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
    waits
}

fn limits() -> ServerLimits {
    ServerLimits {
        max_connections: CAP,
        ..ServerLimits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_is_served_promptly_while_slow_clients_fill_the_cap() {
    let waits = new_client_waits(limits()).await;
    assert!(waits.iter().all(|waited| *waited < BOUND), "{waits:?}");
}

/// The figure without the pressure rule, for comparison: `cargo test -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes about ten seconds; prints the baseline"]
async fn baseline_without_the_pressure_rule() {
    let limits = ServerLimits {
        pressure_header_timeout: ServerLimits::default().header_read_timeout,
        ..limits()
    };
    eprintln!("without the pressure rule:");
    new_client_waits(limits).await;
}
