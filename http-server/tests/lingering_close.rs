//! The lingering close over real sockets: a client still writing a body the server refused reads
//! the whole `413` instead of a reset, and a client cannot make a connection linger beyond its
//! bounds, outside the connection cap, or past shutdown.
#![cfg(test)]

use std::{
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, routing::post};
use nitro_signer_http_server::{
    LINGERING_CLOSE_MAX_BYTES, LINGERING_CLOSE_TIMEOUT, ServerLimits, serve,
};
use nitro_signer_tests::sockets::{read_until_closed, still_open_and_silent};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};

/// Generous bound for things that should happen promptly, on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(10);

/// The body limit of the test server.
const LIMIT: usize = 1024;

struct Running {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<()>,
}

/// A server that answers a body within `limits.max_body_bytes` with its length, and a larger one
/// with axum's `413`.
async fn start(limits: ServerLimits) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/",
        post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(serve(listener, app, limits, async move {
        let _ = stopped.await;
    }));
    Running {
        address,
        stop: Some(stop),
        served,
    }
}

fn small_limit() -> ServerLimits {
    ServerLimits {
        max_body_bytes: LIMIT,
        ..ServerLimits::default()
    }
}

/// The head of a `POST /` with a `length`-byte body, as a client that does not wait for
/// `100 Continue` sends it.
fn head(length: usize) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: {length}\r\n\r\n").into_bytes()
}

/// What a client that writes a whole request while reading the answer saw.
struct Exchange {
    /// Whether the whole request was written, or how writing it failed.
    written: io::Result<()>,
    /// Everything read before the end of the stream or the error.
    received: Vec<u8>,
    /// How reading ended: `None` at a clean end of stream.
    read_error: Option<io::Error>,
}

/// Starts a request whose body is far over [`LIMIT`] and reads the `413`; the server has then
/// closed its write side and lingers. Returns when the `413` had been read.
async fn refused(address: SocketAddr) -> (TcpStream, Instant) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let mut request = head(1 << 30);
    request.resize(request.len() + 2 * LIMIT, b'x');
    stream.write_all(&request).await.unwrap();
    let answer = read_until_closed(&mut stream, PROMPTLY).await;
    let answered_at = Instant::now();
    assert_eq!(parse_response(&answer).unwrap().0, 413);
    (stream, answered_at)
}

/// Writes `chunk` every `pause` until a write fails; returns how much was written.
async fn send_until_cut_off(stream: &mut TcpStream, chunk: &[u8], pause: Duration) -> usize {
    let mut written = 0;
    while stream.write_all(chunk).await.is_ok() {
        written += chunk.len();
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    written
}

/// Writes `request` on `stream` while reading what comes back until the server closes.
/// The write side stays open once the request is written, as an HTTP client's does.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Exchange {
    let (mut reader, mut writer) = stream.split();
    let write = async { writer.write_all(request).await };
    let read = async {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => return (received, None),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) => return (received, Some(e)),
            }
        }
    };
    let (written, (received, read_error)) =
        tokio::time::timeout(PROMPTLY, async { tokio::join!(write, read) })
            .await
            .expect("the exchange did not end");
    Exchange {
        written,
        received,
        read_error,
    }
}

/// The status and body of a complete HTTP/1.1 response with a `content-length`, or why
/// `received` is not one.
fn parse_response(received: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let text = String::from_utf8_lossy(received);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete response head in {text:?}"))?;
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| format!("no content-length in {head:?}"))?;
    if body.len() != length {
        return Err(format!(
            "a {}-byte body where content-length says {length}: {text:?}",
            body.len()
        ));
    }
    Ok((status, body.as_bytes().to_vec()))
}

/// Why an exchange is not a whole request answered with a whole `413` and a clean close.
fn refused_cleanly(exchange: &Exchange) -> Result<(), String> {
    let mut problems = Vec::new();
    if let Err(e) = &exchange.written {
        problems.push(format!("writing the body failed: {e}"));
    }
    match parse_response(&exchange.received) {
        Ok((413, _)) => {}
        Ok((status, body)) => problems.push(format!(
            "answered {status}: {}",
            String::from_utf8_lossy(&body)
        )),
        Err(why) => problems.push(why),
    }
    if let Some(e) = &exchange.read_error {
        problems.push(format!(
            "reading ended in an error after {} bytes: {e}",
            exchange.received.len()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_writing_an_oversized_body_reads_the_413() {
    let running = start(small_limit()).await;
    // Several MiB against a 1 KiB limit: nearly all of it is still to be written when the
    // server answers. (Within what a lingering close takes in.)
    let size = 4 * 1024 * 1024;
    assert!(size < usize::try_from(LINGERING_CLOSE_MAX_BYTES).unwrap());
    let mut request = head(size);
    request.resize(request.len() + size, b'x');

    let rounds = 20;
    let mut failures = Vec::new();
    for round in 0..rounds {
        let mut stream = TcpStream::connect(running.address).await.unwrap();
        let exchange = exchange(&mut stream, &request).await;
        if let Err(why) = refused_cleanly(&exchange) {
            failures.push(format!("round {round}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {rounds} rounds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // A body within the limit is still read whole and answered, and the server keeps serving.
    let mut stream = TcpStream::connect(running.address).await.unwrap();
    let mut request =
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
            .to_vec();
    request.resize(request.len() + 1000, b'x');
    let exchange = exchange(&mut stream, &request).await;
    assert!(exchange.written.is_ok() && exchange.read_error.is_none());
    assert_eq!(
        parse_response(&exchange.received).unwrap(),
        (200, b"1000 bytes".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lingering_ends_after_its_time_bound_and_keeps_its_connection_slot() {
    let running = start(ServerLimits {
        max_connections: 1,
        ..small_limit()
    })
    .await;
    // A client that keeps sending, slowly, after its 413: never the byte bound, so the time
    // bound ends it.
    let (mut lingering, answered_at) = refused(running.address).await;
    // Meanwhile, the next client waits: the lingering connection holds the only slot.
    let mut waiting = TcpStream::connect(running.address).await.unwrap();
    waiting
        .write_all(
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        still_open_and_silent(&waiting),
        "served beyond max_connections"
    );
    let wait = tokio::spawn(async move {
        let answer = read_until_closed(&mut waiting, PROMPTLY).await;
        (answer, Instant::now())
    });

    let cut_off = tokio::time::timeout(
        LINGERING_CLOSE_TIMEOUT + PROMPTLY,
        send_until_cut_off(&mut lingering, &[b'x'; 1024], Duration::from_millis(50)),
    )
    .await
    .expect("a lingering connection outlived its time bound");
    let lingered = answered_at.elapsed();
    assert!(cut_off > 0, "cut off at once");
    assert!(
        lingered >= LINGERING_CLOSE_TIMEOUT - Duration::from_millis(100),
        "cut off after {lingered:?}"
    );

    let (answer, served_at) = wait.await.unwrap();
    assert_eq!(parse_response(&answer).unwrap(), (200, b"2 bytes".to_vec()));
    let served_after = served_at.duration_since(answered_at);
    assert!(
        served_after >= LINGERING_CLOSE_TIMEOUT - Duration::from_millis(100),
        "served after {served_after:?}, while the only slot was lingering"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lingering_ends_after_its_byte_bound() {
    let running = start(small_limit()).await;
    let (mut lingering, answered_at) = refused(running.address).await;
    // As fast as it can: the time bound alone would let a loopback client send gigabytes.
    let sent = tokio::time::timeout(
        LINGERING_CLOSE_TIMEOUT + PROMPTLY,
        send_until_cut_off(&mut lingering, &[b'x'; 64 * 1024], Duration::ZERO),
    )
    .await
    .expect("a lingering connection outlived its time bound");
    // What the server discarded, plus what the socket buffers on both sides held.
    let most = usize::try_from(LINGERING_CLOSE_MAX_BYTES).unwrap() + 32 * 1024 * 1024;
    assert!(sent <= most, "{sent} bytes taken in while lingering");
    let lingered = answered_at.elapsed();
    assert!(
        lingered < LINGERING_CLOSE_TIMEOUT,
        "cut off {lingered:?} after the answer, by the time bound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_lingering_connections() {
    let mut running = start(small_limit()).await;
    // Refused, then still sending a little: the connection lingers, taking it in.
    let (mut lingering, answered_at) = refused(running.address).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        lingering.write_all(&[b'x'; 1024]).await.unwrap();
    }

    let stopped_at = Instant::now();
    running.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(PROMPTLY, &mut running.served)
        .await
        .expect("serve did not return after shutdown")
        .unwrap();
    let drained = stopped_at.elapsed();
    assert!(
        drained < LINGERING_CLOSE_TIMEOUT / 2,
        "serve returned {drained:?} after shutdown"
    );
    // The lingering connection was closed by the shutdown, not by its time bound.
    send_until_cut_off(&mut lingering, &[b'x'; 1024], Duration::from_millis(20)).await;
    let lingered = answered_at.elapsed();
    assert!(
        lingered < LINGERING_CLOSE_TIMEOUT,
        "cut off {lingered:?} after the answer"
    );
}
