//! The proxy's connection limits over real sockets, against the enclave stand-in: a client that
//! sends half a request header is cut off after `--header-read-timeout-ms` while others are
//! served, and connections beyond `--max-connections` wait for a free slot.
#![cfg(test)]

mod support;

use std::{
    net::SocketAddr,
    num::{NonZeroU64, NonZeroUsize},
    time::{Duration, Instant},
};

use nitro_signer_proxy::Args;
use nitro_signer_tests::sockets::{read_until_closed, still_open_and_silent};
use nitro_signer_tests::stand_in::StandIn;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
};

/// Generous bound for things that should happen promptly, on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(10);

/// The stand-in's key blob "k" in base64.
const KEY: &str = "aw==";

/// A complete request that the proxy answers without the enclave.
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

struct Proxy {
    address: SocketAddr,
    _enclave: StandIn,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

async fn start(configure: impl FnOnce(&mut Args)) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let (address, enclave, stop) = support::start_proxy(&dir, configure).await;
    Proxy {
        address,
        _enclave: enclave,
        _dir: dir,
        _stop: stop,
    }
}

/// An address request through the proxy to the enclave stand-in.
async fn address(http: &reqwest::Client, proxy: SocketAddr) -> Value {
    let response = http
        .post(format!("http://{proxy}/v1/address"))
        .json(&json!({"keyBlob": KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_half_sent_header_is_cut_off_while_others_are_served() {
    let header_read_timeout = Duration::from_millis(700);
    let proxy = start(|args| {
        args.header_read_timeout_ms =
            NonZeroU64::new(u64::try_from(header_read_timeout.as_millis()).unwrap()).unwrap();
    })
    .await;

    // A slowloris client: half a request header, then nothing.
    let mut stalled = TcpStream::connect(proxy.address).await.unwrap();
    stalled
        .write_all(b"POST /v1/address HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        .await
        .unwrap();
    let stalled_at = Instant::now();

    // Meanwhile, other clients are served, through to the enclave and on fresh connections.
    // No connection reuse: the header timeout also closes idle keep-alive connections, and a
    // pooled one could be closed just as it is reused.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for _ in 0..2 {
        assert!(address(&http, proxy.address).await["address"].is_string());
    }
    let mut other = TcpStream::connect(proxy.address).await.unwrap();
    other.write_all(HEALTHZ).await.unwrap();
    let answer = read_until_closed(&mut other, PROMPTLY).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    if stalled_at.elapsed() < header_read_timeout {
        assert!(
            still_open_and_silent(&stalled),
            "the stalled client was cut off before its header timeout"
        );
    }

    // Then the stalled client is disconnected (perhaps with an error answer, never a success).
    let answer = read_until_closed(&mut stalled, PROMPTLY).await;
    let closed_after = stalled_at.elapsed();
    assert!(
        closed_after >= header_read_timeout - Duration::from_millis(100),
        "closed after {closed_after:?}"
    );
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // And the proxy still serves.
    assert!(address(&http, proxy.address).await["address"].is_string());
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    // The default header timeout (10 s) is far longer than the test: the slot is freed by the
    // holder leaving, not by a timeout.
    let proxy = start(|args| args.max_connections = NonZeroUsize::new(1).unwrap()).await;

    // The holder takes the only slot (connected, nothing sent yet).
    let holder = TcpStream::connect(proxy.address).await.unwrap();
    // Let the proxy accept the holder before the next client arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The next client connects (the kernel's backlog takes it) and sends a whole request, but is
    // not served while the holder is connected.
    let mut waiting = TcpStream::connect(proxy.address).await.unwrap();
    waiting.write_all(HEALTHZ).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        still_open_and_silent(&waiting),
        "served beyond --max-connections"
    );

    // Once the holder leaves, the waiting client is served.
    drop(holder);
    let left_at = Instant::now();
    let answer = read_until_closed(&mut waiting, PROMPTLY).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"status":"ok"}"#), "{answer}");
    assert!(left_at.elapsed() < PROMPTLY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_an_oversized_body_reads_the_413() {
    let limit = 1 << 20;
    let proxy = start(|args| args.max_body_bytes = NonZeroUsize::new(limit).unwrap()).await;
    // About four times the limit: the proxy answers after the first MiB, and the client, which
    // writes its whole body (reading meanwhile, as an HTTP client does), must be able to finish
    // writing it and read the answer rather than a broken pipe or a reset.
    let body = json!({
        "keyBlob": KEY,
        "transaction": {"data": format!("0x{}", "00".repeat(2 * limit))},
    })
    .to_string();
    let mut request = format!(
        "POST /v1/sign/transaction HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());

    let rounds = 10;
    let mut failures = Vec::new();
    for round in 0..rounds {
        let mut stream = TcpStream::connect(proxy.address).await.unwrap();
        let (mut reader, mut writer) = stream.split();
        let (written, read) = tokio::time::timeout(PROMPTLY, async {
            tokio::join!(writer.write_all(&request), async {
                let mut received = Vec::new();
                reader.read_to_end(&mut received).await.map(|_| received)
            })
        })
        .await
        .expect("the exchange did not end");
        // A clean end of stream comes after the whole answer.
        let answer = match (written, read) {
            (Ok(()), Ok(answer)) => String::from_utf8_lossy(&answer).into_owned(),
            (written, read) => {
                // The status line is enough to say what was read.
                let read = read.map(|answer| {
                    let answer = String::from_utf8_lossy(&answer);
                    answer.lines().next().unwrap_or_default().to_owned()
                });
                failures.push(format!("round {round}: write {written:?}, read {read:?}"));
                continue;
            }
        };
        if !answer.starts_with("HTTP/1.1 413") || !answer.contains(r#""payload_too_large""#) {
            failures.push(format!("round {round}: {answer}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {rounds} rounds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // And the proxy still serves.
    let http = reqwest::Client::new();
    assert!(address(&http, proxy.address).await["address"].is_string());
}
