//! The request head limit over real sockets: a head of 63 KiB is served, one of 65 KiB or more
//! (114 KiB, the size the report saw accepted) is answered `431 Request Header Fields Too Large`
//! and the connection closed, whether it comes in one header or many.
#![cfg(test)]

use std::{net::SocketAddr, time::Duration};

use axum::{Router, routing::get};
use nitro_signer_http_server::{MAX_HEAD_BYTES, ServerLimits, serve};
use nitro_signer_tests::sockets::read_until_closed;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::oneshot,
};

const PROMPTLY: Duration = Duration::from_secs(10);

async fn start() -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new().route("/", get(|| async { "ok" }));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, app, ServerLimits::default(), async move {
        let _ = stopped.await;
    }));
    (address, stop)
}

/// A `GET /` whose whole head (request line, headers, final blank line) is `size` bytes, its
/// padding in `count` headers.
fn request(size: usize, count: usize) -> Vec<u8> {
    let start = "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n";
    // Each header line is `x-pad-N: ` + value + CRLF; the head ends with CRLF.
    let mut head = String::from(start);
    let mut left = size - start.len() - 2;
    for i in 0..count {
        let name = format!("x-pad-{i}: ");
        let line = if i + 1 == count {
            left
        } else {
            left / (count - i)
        };
        let value = line - name.len() - 2;
        head.push_str(&name);
        head.push_str(&"a".repeat(value));
        head.push_str("\r\n");
        left -= line;
    }
    head.push_str("\r\n");
    assert_eq!(head.len(), size);
    head.into_bytes()
}

async fn status(address: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = stream.write_all(request).await;
    let answer = read_until_closed(&mut stream, PROMPTLY).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_up_to_64_kib_are_served_and_larger_ones_get_431() {
    assert_eq!(MAX_HEAD_BYTES, 64 * 1024);
    let (address, _stop) = start().await;
    for count in [1, 50] {
        let ok = status(address, &request(63 * 1024, count)).await;
        assert_eq!(ok, "HTTP/1.1 200 OK", "63 KiB in {count} headers");
        for size in [MAX_HEAD_BYTES + 1, 65 * 1024, 114 * 1024, 1024 * 1024] {
            let refused = status(address, &request(size, count)).await;
            assert_eq!(
                refused, "HTTP/1.1 431 Request Header Fields Too Large",
                "{size} bytes in {count} headers"
            );
        }
    }
}
