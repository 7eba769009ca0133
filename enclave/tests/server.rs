//! The enclave server over a real TCP socket: the protocol (hello, multiplexed requests answered
//! out of order, typed errors) and hostile peers (garbage, huge lengths, half-sent frames,
//! stalled connections, connection floods, idle connections holding every slot, peers that never
//! read) that must never disturb well-behaved connections or lock the proxy out.
#![cfg(test)]

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use nitro_signer_client::{EnclaveClient, EnclaveConfig};
use nitro_signer_common::{
    attestation::{Expectations, RootOfTrust, Verifier},
    key_blob::{KeyBlob, KeyKind, KeyMetadata},
    protocol::{
        AttestRequest, AwsCredentials, ErrorCode, Hello, HelloReply, KeyRef, PROTOCOL_VERSION,
        Request, RequestBody, Response, ResponseBody, SignPayload, SignRequest,
        codec::{decode, encode},
        frame::{MAX_FRAME_LEN, read_frame, write_frame},
    },
    transport::{Address, Listener, Stream, connect},
};
use nitro_signer_enclave::{
    cache::CacheLimits,
    kms::{Kms, KmsSettings},
    nsm::{Nsm, SimulatedNsm, SimulatorConfig},
    receipts::ReceiptSigner,
    recipient::RecipientKey,
    server::{ServerLimits, serve},
    service::{Enclave, Settings},
};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IO_TIMEOUT: Duration = Duration::from_millis(300);
const MAX_CONNECTIONS: usize = 8;

struct Running {
    address: Address,
    root: [u8; 32],
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

/// Where the enclave's KMS client goes, and its time limits.
struct KmsTarget {
    endpoint: String,
    attempt_timeout: Duration,
    operation_timeout: Duration,
}

impl Default for KmsTarget {
    /// Nothing listens there: tests that use it never get as far as KMS.
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:9".into(),
            attempt_timeout: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(2),
        }
    }
}

/// The KMS key of the test blobs, the one the enclave under test allows.
const KMS_KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/key-1";

fn test_limits() -> ServerLimits {
    ServerLimits {
        max_connections: MAX_CONNECTIONS,
        max_in_flight: 16,
        io_timeout: IO_TIMEOUT,
        ..ServerLimits::default()
    }
}

async fn start() -> Running {
    start_with(ServerLimits::default().max_frame).await
}

async fn start_with(max_frame: usize) -> Running {
    start_server(
        ServerLimits {
            max_frame,
            ..test_limits()
        },
        KmsTarget::default(),
    )
    .await
}

async fn start_server(limits: ServerLimits, kms: KmsTarget) -> Running {
    start_server_on(limits, kms, false).await
}

/// [`start_server`], over a Unix socket when `unix` (its buffers are small and fixed, unlike
/// loopback TCP's, which grow to megabytes).
async fn start_server_on(limits: ServerLimits, kms: KmsTarget, unix: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let simulator = SimulatedNsm::open(SimulatorConfig::new(dir.path().join("nsm"))).unwrap();
    let root = simulator.root_fingerprint();
    let nsm: Arc<dyn Nsm> = Arc::new(simulator);
    let kms = Kms::new(
        &KmsSettings {
            region: "us-east-1".into(),
            endpoint: Some(kms.endpoint),
            attempt_timeout: kms.attempt_timeout,
            operation_timeout: kms.operation_timeout,
            http_client: None,
        },
        Arc::clone(&nsm),
        RecipientKey::generate().unwrap(),
    );
    let enclave = Arc::new(Enclave::new(
        Settings {
            generation_key: None,
            allowed_kms_keys: [KMS_KEY.to_owned()].into(),
            simulated: true,
            require_policy: false,
            cache: CacheLimits::default(),
        },
        Arc::clone(&nsm),
        kms,
        Some(ReceiptSigner::generate(nsm.as_ref()).unwrap()),
    ));
    let address = if unix {
        Address::Unix(dir.path().join("enclave.sock"))
    } else {
        Address::Tcp("127.0.0.1:0".into())
    };
    let listener = Listener::bind(&address).await.unwrap();
    let address = listener.local_address().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, enclave, limits, async {
        let _ = stopped.await;
    }));
    Running {
        address,
        root,
        _dir: dir,
        stop: Some(stop),
        server,
    }
}

/// A KMS that accepts connections and never answers: requests that reach it stay in flight
/// until the enclave's KMS timeouts end them.
async fn black_hole_kms() -> KmsTarget {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    KmsTarget {
        endpoint,
        ..KmsTarget::default()
    }
}

async fn send<T: serde::Serialize>(stream: &mut Stream, message: &T) {
    write_frame(stream, &encode(message).unwrap(), MAX_FRAME_LEN)
        .await
        .unwrap();
}

async fn receive<T: serde::de::DeserializeOwned>(stream: &mut Stream) -> T {
    decode(
        &read_frame(stream, MAX_FRAME_LEN, Duration::from_secs(5))
            .await
            .unwrap(),
    )
    .unwrap()
}

async fn open(address: &Address) -> Stream {
    let mut stream = connect(address).await.unwrap();
    send(
        &mut stream,
        &Hello {
            versions: vec![PROTOCOL_VERSION],
            client: "test".into(),
        },
    )
    .await;
    match receive::<HelloReply>(&mut stream).await {
        HelloReply::Welcome(welcome) => {
            assert_eq!(welcome.version, PROTOCOL_VERSION);
            assert!(welcome.simulated);
        }
        HelloReply::Refused(error) => panic!("refused: {error}"),
    }
    stream
}

async fn status(stream: &mut Stream, id: u64) {
    send(
        stream,
        &Request {
            id,
            body: RequestBody::Status,
        },
    )
    .await;
    let response: Response = receive(stream).await;
    assert_eq!(response.id, id);
    assert!(matches!(response.body, ResponseBody::Status(_)));
}

/// Whether the server closed `stream` (reading gives end of file or an error) within `within`.
async fn closed_within(stream: &mut Stream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

fn blob() -> ByteBuf {
    ByteBuf::from(
        KeyBlob::new(
            KeyMetadata::new(KeyKind::Seed, KMS_KEY, None, Vec::new()).unwrap(),
            vec![1; 64],
        )
        .unwrap()
        .encode(),
    )
}

#[tokio::test]
async fn requests_are_multiplexed_and_answered_by_id() {
    let running = start().await;
    let mut stream = open(&running.address).await;
    let nonce = b"verifier nonce".to_vec();
    let requests = [
        Request {
            id: 10,
            body: RequestBody::Attest(AttestRequest {
                nonce: ByteBuf::from(nonce.clone()),
            }),
        },
        Request {
            id: 11,
            body: RequestBody::Sign(SignRequest {
                approvals: Vec::new(),
                key: KeyRef {
                    key_blob: blob(),
                    user_id: Some(nitro_signer_common::UserId::new("u").unwrap()),
                },
                payload: SignPayload::Transaction("{\"chainId\": 1}".into()),
            }),
        },
        Request {
            id: 12,
            body: RequestBody::Sign(SignRequest {
                approvals: Vec::new(),
                key: KeyRef {
                    key_blob: blob(),
                    user_id: Some(nitro_signer_common::UserId::new("u").unwrap()),
                },
                payload: SignPayload::Message(ByteBuf::from(b"hi".to_vec())),
            }),
        },
        Request {
            id: 13,
            body: RequestBody::Status,
        },
    ];
    for request in &requests {
        send(&mut stream, request).await;
    }
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..requests.len() {
        let response: Response = receive(&mut stream).await;
        answers.insert(response.id, response.body);
    }
    match &answers[&10] {
        ResponseBody::Attestation(document) => {
            let verifier = Verifier::dangerous_unpinned(
                RootOfTrust::dangerous_simulated(running.root),
                Expectations {
                    nonce: Some(nonce),
                    ..Default::default()
                },
            );
            verifier
                .verify(&document.document, SystemTime::now())
                .unwrap();
        }
        other => panic!("{other:?}"),
    }
    // The payload is parsed before the key is looked up: a bad one never reaches KMS.
    match &answers[&11] {
        ResponseBody::Error(error) => {
            assert_eq!(error.code, ErrorCode::InvalidRequest);
            assert!(error.message.contains("chainId"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    // A good payload needs the key: without credentials from the parent, KMS is not called.
    match &answers[&12] {
        ResponseBody::Error(error) => assert_eq!(error.code, ErrorCode::NoCredentials, "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(answers[&13], ResponseBody::Status(_)));
}

#[tokio::test]
async fn an_undecodable_request_body_gets_an_error_and_the_connection_lives_on() {
    let running = start().await;
    let mut stream = open(&running.address).await;
    let bad = serde_cbor::to_vec(&serde_cbor::Value::Map(
        [
            (
                serde_cbor::Value::Text("id".into()),
                serde_cbor::Value::Integer(5),
            ),
            (
                serde_cbor::Value::Text("body".into()),
                serde_cbor::Value::Text("format_disk".into()),
            ),
        ]
        .into_iter()
        .collect(),
    ))
    .unwrap();
    write_frame(&mut stream, &bad, MAX_FRAME_LEN).await.unwrap();
    let response: Response = receive(&mut stream).await;
    assert_eq!(response.id, 5);
    assert!(
        matches!(&response.body, ResponseBody::Error(e) if e.code == ErrorCode::InvalidRequest)
    );
    status(&mut stream, 6).await;
}

#[tokio::test]
async fn requests_outside_the_one_cbor_form_get_invalid_request_and_tags_close() {
    let running = start().await;
    let mut stream = open(&running.address).await;
    // `{"id": 5, "body": ...}` with, in turn: an unknown field in the attest body, the body's
    // struct as an array, the body as a legacy enum array, and an unknown top-level field.
    let id_5_body = "a2 626964 05 64626f6479";
    let attest = "66617474657374";
    for (case, body) in [
        (
            "unknown field",
            format!("{id_5_body} a1 {attest} a2 656e6f6e6365 4101 656578747261 00"),
        ),
        ("array form", format!("{id_5_body} a1 {attest} 81 4101")),
        ("legacy enum", format!("{id_5_body} 81 66737461747573")),
        (
            "unknown top-level field",
            "a3 626964 05 64626f6479 66737461747573 656578747261 00".to_owned(),
        ),
    ] {
        let bytes = hex::decode(body.replace(' ', "")).unwrap();
        write_frame(&mut stream, &bytes, MAX_FRAME_LEN)
            .await
            .unwrap();
        let response: Response = receive(&mut stream).await;
        assert_eq!(response.id, 5, "{case}");
        assert!(
            matches!(&response.body, ResponseBody::Error(e) if e.code == ErrorCode::InvalidRequest),
            "{case}: {response:?}"
        );
    }
    status(&mut stream, 6).await;
    // A tagged frame has no readable id (the id reader is as strict as the decoder): like any
    // frame that is not a request map, it closes the connection.
    let tagged = hex::decode("d9d9f7a2626964076462 6f647966737461747573".replace(' ', "")).unwrap();
    write_frame(&mut stream, &tagged, MAX_FRAME_LEN)
        .await
        .unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_client_without_a_common_version_is_refused() {
    let running = start().await;
    let mut stream = connect(&running.address).await.unwrap();
    send(
        &mut stream,
        &Hello {
            versions: vec![99],
            client: "future".into(),
        },
    )
    .await;
    match receive::<HelloReply>(&mut stream).await {
        HelloReply::Refused(error) => assert_eq!(error.code, ErrorCode::UnsupportedProtocol),
        other => panic!("{other:?}"),
    }
    assert!(closed_within(&mut stream, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn hostile_peers_are_cut_off_without_disturbing_others() {
    let running = start().await;
    let mut good = open(&running.address).await;

    // Garbage instead of a hello.
    let mut garbage = connect(&running.address).await.unwrap();
    garbage
        .write_all(&[0, 0, 0, 4, 0xff, 0xfe, 0x00, 0x13])
        .await
        .unwrap();
    let reply: HelloReply = receive(&mut garbage).await;
    assert!(matches!(reply, HelloReply::Refused(e) if e.code == ErrorCode::InvalidRequest));
    assert!(closed_within(&mut garbage, Duration::from_secs(2)).await);

    // A 4 GiB frame announced after the hello.
    let mut huge = open(&running.address).await;
    huge.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert!(closed_within(&mut huge, Duration::from_secs(2)).await);

    // Half a frame, then nothing.
    let mut half = open(&running.address).await;
    half.write_all(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap();
    assert!(closed_within(&mut half, IO_TIMEOUT * 5).await);

    // Connected, never says hello.
    let mut silent = connect(&running.address).await.unwrap();
    assert!(closed_within(&mut silent, IO_TIMEOUT * 5).await);

    // Garbage that frames correctly but is not a request: the connection is closed.
    let mut nonsense = open(&running.address).await;
    write_frame(&mut nonsense, &[0xff; 32], MAX_FRAME_LEN)
        .await
        .unwrap();
    assert!(closed_within(&mut nonsense, Duration::from_secs(2)).await);

    status(&mut good, 1).await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_when_every_connection_is_busy() {
    let running = start_server(test_limits(), black_hole_kms().await).await;
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut stream = open(&running.address).await;
        set_credentials(&mut stream, 1).await;
        // Waits for KMS, which never answers: the connection is busy.
        send(&mut stream, &sign_request(2)).await;
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = connect(&running.address).await.unwrap();
    assert!(closed_within(&mut extra, Duration::from_millis(500)).await);
    for stream in &mut held {
        let response: Response = receive(stream).await;
        assert_eq!(error_of(&response).code, ErrorCode::KmsUnavailable);
        status(stream, 3).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Now idle, they make room for a newcomer: the one idle the longest goes.
    let mut again = open(&running.address).await;
    status(&mut again, 99).await;
    assert!(closed_within(&mut held[0], Duration::from_secs(1)).await);
    status(&mut held[1], 4).await;
}

/// Opens `count` connections that say hello and nothing more.
async fn idle_peers(address: &Address, count: usize) -> Vec<Stream> {
    let mut peers = Vec::new();
    for _ in 0..count {
        peers.push(open(address).await);
    }
    peers
}

#[tokio::test]
async fn idle_peers_holding_every_slot_cannot_lock_the_proxy_out() {
    // The idle limit is the default minute: the newcomer gets in by taking an idle peer's slot.
    let running = start_server(
        ServerLimits {
            idle_timeout: Duration::from_secs(60),
            ..test_limits()
        },
        KmsTarget::default(),
    )
    .await;
    let mut peers = idle_peers(&running.address, MAX_CONNECTIONS).await;
    let started = std::time::Instant::now();
    let mut config = EnclaveConfig::new(running.address.clone());
    config.connections = 2;
    config.request_timeout = Duration::from_secs(2);
    let client = EnclaveClient::new(config);
    assert!(client.wait_until_live(Duration::from_secs(2)).await);
    assert!(client.status().await.unwrap().simulated);
    let served = started.elapsed();
    eprintln!(
        "a new client was served in {served:?} with {MAX_CONNECTIONS} idle peers holding every slot"
    );
    assert!(served < Duration::from_secs(1), "{served:?}");
    // Its two connections took the slots of the two peers idle the longest.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(client.stats().live, 2);
    assert!(closed_within(&mut peers[0], Duration::from_millis(500)).await);
    assert!(closed_within(&mut peers[1], Duration::from_millis(500)).await);
    status(&mut peers[2], 1).await;
}

#[tokio::test]
async fn a_connection_idle_past_the_limit_is_closed_and_a_busy_one_is_not() {
    let idle_timeout = Duration::from_millis(300);
    let running = start_server(
        ServerLimits {
            idle_timeout,
            ..test_limits()
        },
        black_hole_kms().await,
    )
    .await;
    let started = std::time::Instant::now();
    let mut idle = open(&running.address).await;
    let mut busy = open(&running.address).await;
    set_credentials(&mut busy, 1).await;
    // Waits for KMS (2 s at most here), much longer than the idle limit.
    send(&mut busy, &sign_request(2)).await;
    assert!(closed_within(&mut idle, Duration::from_secs(1)).await);
    let closed_after = started.elapsed();
    eprintln!("an idle connection was closed after {closed_after:?} (idle limit {idle_timeout:?})");
    assert!(closed_after >= idle_timeout, "{closed_after:?}");
    // A connection that keeps sending stays.
    let mut chatty = open(&running.address).await;
    for id in 0..8 {
        status(&mut chatty, id).await;
        tokio::time::sleep(idle_timeout / 3).await;
    }
    // The busy one gets its answer, then is closed once idle past the limit.
    let response: Response = receive(&mut busy).await;
    assert_eq!(response.id, 2);
    assert_eq!(error_of(&response).code, ErrorCode::KmsUnavailable);
    assert!(closed_within(&mut busy, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn a_peer_that_never_reads_its_answers_loses_its_connection() {
    // Room for every request on the connection, and time for all of them to be read and
    // handled before the writer gives up, so that the reader is back waiting for a frame: only
    // the writer sees that the peer does not read.
    let requests = 3_000;
    let io_timeout = Duration::from_millis(500);
    let running = start_server_on(
        ServerLimits {
            max_in_flight: requests,
            max_in_flight_total: requests,
            io_timeout,
            ..test_limits()
        },
        KmsTarget::default(),
        true,
    )
    .await;
    let mut stream = open(&running.address).await;
    // About 600 KB of answers, more than the socket's buffers (~200 KiB) and the writer's
    // batch (64 KiB) hold.
    let mut out = Vec::new();
    for id in 0..requests as u64 {
        nitro_signer_common::protocol::frame::append_frame(
            &mut out,
            &encode(&status_request(id)).unwrap(),
            MAX_FRAME_LEN,
        )
        .unwrap();
    }
    stream.write_all(&out).await.unwrap();
    // The writer gives up after the I/O timeout; then the connection is closed, though the
    // peer sends nothing more. Reading only afterwards drains what the buffers hold, then
    // finds the end.
    tokio::time::sleep(io_timeout * 4).await;
    assert!(closed_within(&mut stream, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_request_id_already_in_flight_is_refused_without_disturbing_the_first() {
    let running = start_server(test_limits(), black_hole_kms().await).await;
    let mut stream = open(&running.address).await;
    set_credentials(&mut stream, 1).await;
    send(&mut stream, &sign_request(10)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&mut stream, &status_request(10)).await;
    let response: Response = receive(&mut stream).await;
    assert_eq!(response.id, 10);
    let error = error_of(&response);
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    assert!(
        error.message.contains("request id 10 is already in flight"),
        "{error}"
    );
    // The first goes on (KMS never answers) and gets its own answer.
    let response: Response = receive(&mut stream).await;
    assert_eq!(response.id, 10);
    assert_eq!(error_of(&response).code, ErrorCode::KmsUnavailable);
    // Once answered, the id may be used again.
    status(&mut stream, 10).await;
}

#[tokio::test]
async fn the_pools_keep_alive_keeps_an_idle_connection_past_the_idle_limit() {
    let idle_timeout = Duration::from_millis(300);
    let running = start_server(
        ServerLimits {
            idle_timeout,
            ..test_limits()
        },
        KmsTarget::default(),
    )
    .await;
    let client = |keepalive| {
        let mut config = EnclaveConfig::new(running.address.clone());
        config.connections = 1;
        config.keepalive_interval = keepalive;
        EnclaveClient::new(config)
    };
    let kept = client(Some(idle_timeout / 4));
    let silent = client(None);
    assert!(kept.wait_until_live(Duration::from_secs(2)).await);
    assert!(silent.wait_until_live(Duration::from_secs(2)).await);
    tokio::time::sleep(idle_timeout * 4).await;
    assert_eq!(kept.stats().disconnects, 0, "{:?}", kept.stats());
    kept.status().await.unwrap();
    // Without the keep-alive, the enclave closes the connection (and the pool reconnects).
    assert!(silent.stats().disconnects >= 1, "{:?}", silent.stats());
}

#[tokio::test]
async fn an_answer_too_large_for_a_frame_becomes_an_error_and_the_connection_lives_on() {
    // An attestation document (a few KiB with its certificate chain) does not fit 2 KiB frames.
    let running = start_with(2048).await;
    let mut stream = open(&running.address).await;
    send(
        &mut stream,
        &Request {
            id: 1,
            body: RequestBody::Attest(AttestRequest {
                nonce: ByteBuf::from(vec![7; 16]),
            }),
        },
    )
    .await;
    let response: Response = receive(&mut stream).await;
    assert_eq!(response.id, 1);
    match response.body {
        ResponseBody::Error(error) => assert!(error.message.contains("frame limit"), "{error}"),
        other => panic!("{other:?}"),
    }
    status(&mut stream, 2).await;
}

/// Sends credentials on `stream` (request `id`) and waits for the acknowledgement.
async fn set_credentials(stream: &mut Stream, id: u64) {
    send(
        stream,
        &Request {
            id,
            body: RequestBody::SetCredentials(AwsCredentials {
                access_key_id: "AKIDTEST".into(),
                secret_access_key: zeroize::Zeroizing::new("secret".into()),
                session_token: None,
                expires_at: None,
            }),
        },
    )
    .await;
    let response: Response = receive(stream).await;
    assert_eq!(response.id, id);
    assert!(
        matches!(response.body, ResponseBody::CredentialsSet),
        "{:?}",
        response.body
    );
}

/// A signing request whose payload is valid: it needs the key, so it goes to KMS.
fn sign_request(id: u64) -> Request {
    Request {
        id,
        body: RequestBody::Sign(SignRequest {
            approvals: Vec::new(),
            key: KeyRef {
                key_blob: blob(),
                user_id: Some(nitro_signer_common::UserId::new("u").unwrap()),
            },
            payload: SignPayload::Message(ByteBuf::from(b"hi".to_vec())),
        }),
    }
}

fn status_request(id: u64) -> Request {
    Request {
        id,
        body: RequestBody::Status,
    }
}

fn error_of(response: &Response) -> &nitro_signer_common::protocol::ErrorBody {
    match &response.body {
        ResponseBody::Error(error) => error,
        other => panic!("request {}: {other:?}", response.id),
    }
}

#[tokio::test]
async fn past_the_enclave_wide_limit_requests_are_refused_at_once_and_reading_goes_on() {
    let kms = black_hole_kms().await;
    let running = start_server(
        ServerLimits {
            max_in_flight_total: 4,
            ..test_limits()
        },
        kms,
    )
    .await;
    let mut first = open(&running.address).await;
    set_credentials(&mut first, 1).await;
    // Four requests wait for KMS: the enclave is at its limit.
    for id in 10..14 {
        send(&mut first, &sign_request(id)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Another connection is refused at once, not queued.
    let mut second = open(&running.address).await;
    let started = std::time::Instant::now();
    send(&mut second, &status_request(20)).await;
    let response: Response = receive(&mut second).await;
    assert_eq!(response.id, 20);
    let error = error_of(&response);
    assert_eq!(error.code, ErrorCode::Busy);
    assert_eq!(
        error.message,
        "the enclave is at its limit of 4 requests in flight; retry later"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    // The full connection keeps being read: its next request is refused at once too.
    send(&mut first, &status_request(14)).await;
    let response: Response = receive(&mut first).await;
    assert_eq!(response.id, 14);
    assert_eq!(error_of(&response).code, ErrorCode::Busy);

    // The four end (KMS never answers) and the room is back.
    let mut ended = Vec::new();
    for _ in 10..14 {
        let response: Response = receive(&mut first).await;
        assert_eq!(error_of(&response).code, ErrorCode::KmsUnavailable);
        ended.push(response.id);
    }
    ended.sort_unstable();
    assert_eq!(ended, [10, 11, 12, 13]);
    status(&mut second, 21).await;
    status(&mut first, 15).await;
}

#[tokio::test]
async fn on_shutdown_requests_in_flight_are_answered_before_the_server_returns() {
    let kms = KmsTarget {
        attempt_timeout: Duration::from_millis(500),
        operation_timeout: Duration::from_millis(800),
        ..black_hole_kms().await
    };
    let mut running = start_server(
        ServerLimits {
            drain_timeout: Duration::from_secs(5),
            ..test_limits()
        },
        kms,
    )
    .await;
    let mut busy = open(&running.address).await;
    let mut idle = open(&running.address).await;
    set_credentials(&mut busy, 1).await;
    send(&mut busy, &sign_request(10)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    running.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // No new connections; an idle one is closed at once.
    assert!(connect(&running.address).await.is_err(), "still accepting");
    assert!(closed_within(&mut idle, Duration::from_millis(300)).await);
    // The server waits for the request in flight ...
    assert!(
        !running.server.is_finished(),
        "returned with a request in flight"
    );
    // ... which is answered; a request sent after the shutdown is not read.
    send(&mut busy, &status_request(11)).await;
    let response: Response = receive(&mut busy).await;
    assert_eq!(response.id, 10);
    assert_eq!(error_of(&response).code, ErrorCode::KmsUnavailable);
    assert!(closed_within(&mut busy, Duration::from_secs(2)).await);
    tokio::time::timeout(Duration::from_secs(2), &mut running.server)
        .await
        .expect("the server returns once drained")
        .unwrap();
}

#[tokio::test]
async fn the_drain_on_shutdown_is_bounded() {
    let kms = KmsTarget {
        attempt_timeout: Duration::from_secs(20),
        operation_timeout: Duration::from_secs(30),
        ..black_hole_kms().await
    };
    let drain_timeout = Duration::from_millis(300);
    let mut running = start_server(
        ServerLimits {
            drain_timeout,
            ..test_limits()
        },
        kms,
    )
    .await;
    let mut stuck = open(&running.address).await;
    set_credentials(&mut stuck, 1).await;
    send(&mut stuck, &sign_request(10)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = std::time::Instant::now();
    running.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), &mut running.server)
        .await
        .expect("the server returns after the drain timeout")
        .unwrap();
    let took = started.elapsed();
    assert!(took >= drain_timeout, "{took:?}");
    // The connection is closed without an answer.
    assert!(closed_within(&mut stuck, Duration::from_millis(500)).await);
}
