//! The server's limits over real sockets: stalled headers and bodies are cut off while other
//! clients are served, connections beyond the limit wait, oversized bodies are refused, and
//! shutdown drains.
#![cfg(test)]

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use aws_sdk_kms::Client;
use nitro_signer_common::attestation::RootOfTrust;
use nitro_signer_kms_emulator::{
    server::{self, ServerLimits},
    service::Kms,
    sigv4::Credentials,
};
use nitro_signer_tests::{kms, sockets::read_until_closed};
use tokio::{io::AsyncWriteExt, net::TcpStream, task::JoinHandle};
use zeroize::Zeroizing;

const ACCESS_KEY: &str = "AKIAEMULATOR00000000";
const SECRET_KEY: &str = "emulator-secret-key-0000000000000000000";
/// Generous bound for things that should happen promptly, on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(10);

struct Running {
    _dir: tempfile::TempDir,
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: JoinHandle<()>,
}

async fn start(limits: ServerLimits) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let kms = Kms::open(dir.path().join("kms"), RootOfTrust::aws_nitro()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let credentials = Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: Zeroizing::new(SECRET_KEY.into()),
        session_token: None,
    };
    let served = tokio::spawn(server::serve(
        listener,
        Arc::new(kms),
        credentials,
        limits,
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        _dir: dir,
        address,
        stop: Some(stop),
        served,
    }
}

fn client(address: SocketAddr) -> Client {
    kms::client(
        "us-east-1",
        &format!("http://{address}"),
        ACCESS_KEY,
        SECRET_KEY,
    )
}

/// An unsigned request: the server answers it (with `MissingAuthenticationTokenException`)
/// without touching a key, which is enough to see that it serves.
const UNSIGNED: &[u8] = b"POST / HTTP/1.1\r\nHost: kms\r\nX-Amz-Target: TrentService.ListKeys\r\n\
Content-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";

#[tokio::test]
async fn a_stalled_header_is_cut_off_while_others_are_served() {
    let header_read_timeout = Duration::from_millis(700);
    let running = start(ServerLimits {
        header_read_timeout,
        ..ServerLimits::default()
    })
    .await;

    let mut stalled = TcpStream::connect(running.address).await.unwrap();
    let mut idle = TcpStream::connect(running.address).await.unwrap();
    stalled
        .write_all(b"POST / HTTP/1.1\r\nHost: kms\r\nX-Amz-Tar")
        .await
        .unwrap();
    let stalled_at = Instant::now();

    // Meanwhile, a real client is served, twice.
    let kms = client(running.address);
    for _ in 0..2 {
        assert!(kms.list_keys().send().await.unwrap().keys().is_empty());
    }
    if stalled_at.elapsed() < header_read_timeout {
        // Both stalled connections were still open while the client was served.
        let mut buf = [0u8; 16];
        assert!(
            matches!(stalled.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        );
        assert!(
            matches!(idle.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        );
    }

    // Then the stalled connections are closed: the half header may get an error answer, the
    // idle one nothing.
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
    assert!(read_until_closed(&mut idle, PROMPTLY).await.is_empty());

    // And the server still serves.
    assert!(kms.list_keys().send().await.unwrap().keys().is_empty());
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let header_read_timeout = Duration::from_millis(600);
    let running = start(ServerLimits {
        max_connections: 1,
        header_read_timeout,
        ..ServerLimits::default()
    })
    .await;
    let mut holder = TcpStream::connect(running.address).await.unwrap();
    let held_at = Instant::now();
    // Let the server accept the holder before the next client arrives.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut waiting = TcpStream::connect(running.address).await.unwrap();
    waiting.write_all(UNSIGNED).await.unwrap();
    let answer = read_until_closed(&mut waiting, PROMPTLY).await;
    let answered_after = held_at.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("MissingAuthenticationTokenException"),
        "{answer}"
    );
    assert!(
        answered_after >= header_read_timeout - Duration::from_millis(100),
        "served after {answered_after:?}, before the only slot was free"
    );
    assert!(read_until_closed(&mut holder, PROMPTLY).await.is_empty());
}

#[tokio::test]
async fn a_body_that_never_arrives_times_out() {
    let request_timeout = Duration::from_millis(600);
    let running = start(ServerLimits {
        request_timeout,
        ..ServerLimits::default()
    })
    .await;
    let mut stream = TcpStream::connect(running.address).await.unwrap();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: kms\r\nX-Amz-Target: TrentService.ListKeys\r\n\
Content-Length: 100\r\n\r\n{\"Limit\":",
        )
        .await
        .unwrap();
    let sent_at = Instant::now();
    let answer = read_until_closed(&mut stream, PROMPTLY).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("RequestTimeoutException"), "{answer}");
    assert!(sent_at.elapsed() >= request_timeout - Duration::from_millis(100));
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let running = start(ServerLimits {
        max_body_bytes: 1024,
        ..ServerLimits::default()
    })
    .await;
    let mut stream = TcpStream::connect(running.address).await.unwrap();
    let mut request = b"POST / HTTP/1.1\r\nHost: kms\r\nX-Amz-Target: TrentService.ListKeys\r\n\
Content-Length: 2000\r\nConnection: close\r\n\r\n"
        .to_vec();
    request.extend_from_slice(&[b' '; 2000]);
    stream.write_all(&request).await.unwrap();
    let answer = read_until_closed(&mut stream, PROMPTLY).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than 1024 bytes"), "{answer}");

    // A large body within the limit is read whole (then refused for want of a signature).
    let running = start(ServerLimits::default()).await;
    let mut stream = TcpStream::connect(running.address).await.unwrap();
    let size = 512 * 1024;
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: kms\r\nX-Amz-Target: TrentService.ListKeys\r\n\
         Content-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend(std::iter::repeat_n(b' ', size));
    stream.write_all(&request).await.unwrap();
    let answer = read_until_closed(&mut stream, PROMPTLY).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("MissingAuthenticationTokenException"),
        "{answer}"
    );

    // KMS-sized requests still pass.
    assert!(
        client(running.address)
            .list_keys()
            .send()
            .await
            .unwrap()
            .keys()
            .is_empty()
    );
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let mut running = start(ServerLimits::default()).await;
    // A keep-alive connection left idle after a request, and one that never sent anything.
    let kms = client(running.address);
    kms.list_keys().send().await.unwrap();
    let mut idle = TcpStream::connect(running.address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    running.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(PROMPTLY, &mut running.served)
        .await
        .expect("serve did not return after shutdown")
        .unwrap();
    assert!(read_until_closed(&mut idle, PROMPTLY).await.is_empty());
    assert!(TcpStream::connect(running.address).await.is_err());
}
