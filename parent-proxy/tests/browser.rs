//! Requests a web page could make are refused over real sockets, each check on its own
//! (`Host`, `Origin`, `Content-Type`), while back ends (the Rust client, curl-like raw requests)
//! are served. See `parent-proxy/src/guard.rs`.
#![cfg(test)]

mod support;

use std::{net::SocketAddr, time::Duration};

use nitro_signer_client::{
    HttpClient,
    api::{AddressRequest, KeyBlob},
};
use nitro_signer_tests::{sockets::read_until_closed, stand_in::StandIn};
use serde_json::Value;
use tokio::{io::AsyncWriteExt, net::TcpStream, sync::oneshot};

const PROMPTLY: Duration = Duration::from_secs(10);

/// A `/v1/sign/message` body for the stand-in's key blob "k".
const BODY: &str = r#"{"keyBlob":"aw==","message":"0x6869"}"#;

struct Proxy {
    address: SocketAddr,
    _enclave: StandIn,
    _dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

async fn start(configure: impl FnOnce(&mut nitro_signer_proxy::Args)) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let (address, enclave, stop) = support::start_proxy(&dir, configure).await;
    Proxy {
        address,
        _enclave: enclave,
        _dir: dir,
        _stop: stop,
    }
}

/// Sends one raw request with these extra header lines; the status and the JSON body.
async fn raw(
    proxy: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, Value) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream, PROMPTLY).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_style_request_is_refused_check_by_check() {
    let proxy = start(|_| {}).await;
    let json = "Content-Type: application/json\r\n";
    let local = format!("Host: {}\r\n", proxy.address);

    // The request of the report: all three at once.
    let (status, body) = raw(
        proxy.address,
        "POST",
        "/v1/sign/message",
        "Host: evil.example\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\n",
        BODY,
    )
    .await;
    assert_eq!((status, code(&body)), (421, "host_not_allowed"), "{body}");

    // Each check alone, the others passing.
    let cases = [
        (
            format!("Host: evil.example\r\n{json}"),
            421,
            "host_not_allowed",
        ),
        (
            format!("Host: evil.example:{}\r\n{json}", proxy.address.port()),
            421,
            "host_not_allowed",
        ),
        (json.to_owned(), 421, "host_not_allowed"),
        (
            format!("{local}Origin: http://evil.example\r\n{json}"),
            403,
            "origin_not_allowed",
        ),
        (
            format!("{local}Origin: null\r\n{json}"),
            403,
            "origin_not_allowed",
        ),
        (
            format!("{local}Content-Type: text/plain\r\n"),
            415,
            "unsupported_media_type",
        ),
        (
            format!("{local}Content-Type: application/x-www-form-urlencoded\r\n"),
            415,
            "unsupported_media_type",
        ),
        (local.clone(), 415, "unsupported_media_type"),
        (
            format!("{local}Origin: http://evil.example\r\n"),
            403,
            "origin_not_allowed",
        ),
    ];
    for (headers, want_status, want_code) in cases {
        let (status, body) = raw(proxy.address, "POST", "/v1/sign/message", &headers, BODY).await;
        assert_eq!(
            (status, code(&body)),
            (want_status, want_code),
            "{headers:?}: {body}"
        );
        assert!(body["error"]["message"].is_string(), "{body}");
    }

    // Host applies to GET endpoints too; Content-Type does not.
    let (status, body) = raw(
        proxy.address,
        "GET",
        "/healthz",
        "Host: evil.example\r\n",
        "",
    )
    .await;
    assert_eq!((status, code(&body)), (421, "host_not_allowed"));
    for host in [local.clone(), "Host: localhost\r\n".to_owned()] {
        let (status, _) = raw(proxy.address, "GET", "/healthz", &host, "").await;
        assert_eq!(status, 200, "{host:?}");
    }

    // curl-like back-end requests are signed.
    for headers in [
        format!("{local}{json}"),
        format!("Host: localhost:{}\r\n{json}", proxy.address.port()),
        format!("{local}Content-Type: application/json; charset=utf-8\r\n"),
    ] {
        let (status, body) = raw(proxy.address, "POST", "/v1/sign/message", &headers, BODY).await;
        assert_eq!(status, 200, "{headers:?}: {body}");
        assert!(body["signature"].is_string(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_hosts_and_origins_are_accepted() {
    let proxy = start(|args| {
        args.allowed_hosts = vec!["signer.internal".into()];
        args.allowed_origins = vec!["https://ops.example".into()];
    })
    .await;
    let json = "Content-Type: application/json\r\n";
    let accepted = [
        format!("Host: signer.internal\r\n{json}"),
        format!("Host: SIGNER.internal:8080\r\n{json}"),
        format!("Host: localhost\r\nOrigin: https://ops.example\r\n{json}"),
    ];
    for headers in accepted {
        let (status, body) = raw(proxy.address, "POST", "/v1/sign/message", &headers, BODY).await;
        assert_eq!(status, 200, "{headers:?}: {body}");
    }
    let refused = [
        (format!("Host: other.internal\r\n{json}"), 421),
        (
            format!("Host: signer.internal\r\nOrigin: https://evil.example\r\n{json}"),
            403,
        ),
    ];
    for (headers, want) in refused {
        let (status, body) = raw(proxy.address, "POST", "/v1/sign/message", &headers, BODY).await;
        assert_eq!(status, want, "{headers:?}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_is_served() {
    let proxy = start(|_| {}).await;
    for url in [
        format!("http://{}", proxy.address),
        format!("http://localhost:{}", proxy.address.port()),
    ] {
        let client = HttpClient::new(&url).unwrap();
        let health = client.health().await;
        assert!(health.is_ok(), "{url}: {health:?}");
        let address = client
            .address(&AddressRequest {
                key_blob: KeyBlob::new(b"k".to_vec()),
                user_id: None,
            })
            .await;
        assert!(address.is_ok(), "{url}: {address:?}");
    }
}
