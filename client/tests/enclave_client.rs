//! [`EnclaveClient`] against an in-test enclave stand-in over real sockets.
//!
//! The tests of timeouts, reconnection backoff and connection life run on paused time
//! (`start_paused`): client and stand-in share the test's runtime over Unix sockets, so the clock
//! only has to move when both wait on a timer, and it jumps there instead of sleeping.
#![cfg(test)]

use std::time::Duration;

use nitro_signer_client::{ClientError, EnclaveClient, EnclaveConfig};
use nitro_signer_common::{
    UserId,
    protocol::{AwsCredentials, ErrorCode, KeyRef, SignPayload, SignRequest},
    transport::Address,
};
use nitro_signer_tests::stand_in::StandIn;
use serde_bytes::ByteBuf;
use tokio::time::Instant;
use zeroize::Zeroizing;

fn config(address: &Address) -> EnclaveConfig {
    let mut config = EnclaveConfig::new(address.clone());
    config.connections = 2;
    config.request_timeout = Duration::from_secs(5);
    config
}

fn sign(blob: &str, json: &str) -> SignRequest {
    SignRequest {
        approvals: Vec::new(),
        key: KeyRef {
            key_blob: ByteBuf::from(blob.as_bytes().to_vec()),
            user_id: Some(UserId::new("alice").unwrap()),
        },
        payload: SignPayload::Transaction(json.to_owned()),
    }
}

fn credentials(id: &str) -> AwsCredentials {
    AwsCredentials {
        access_key_id: id.into(),
        secret_access_key: Zeroizing::new("secret".into()),
        session_token: None,
        expires_at: None,
    }
}

#[tokio::test(start_paused = true)]
async fn answers_are_routed_by_id_when_they_come_out_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = StandIn::start_unix(&dir).await;
    let mut config = config(&enclave.address);
    config.connections = 1;
    let client = EnclaveClient::new(config);

    let start = Instant::now();
    let slow = async {
        let signed = client
            .sign(sign("slow:300", r#"{"n":"slow"}"#))
            .await
            .unwrap();
        (signed, start.elapsed())
    };
    let fast = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let signed = client.sign(sign("fast", r#"{"n":"fast"}"#)).await.unwrap();
        (signed, start.elapsed())
    };
    let ((_, slow_took), (_, fast_took)) = tokio::join!(slow, fast);
    assert!(fast_took < Duration::from_millis(200), "{fast_took:?}");
    assert!(slow_took >= Duration::from_millis(300), "{slow_took:?}");
    // The stand-in records a payload when it answers: the fast one first.
    assert_eq!(enclave.payloads(), [r#"{"n":"fast"}"#, r#"{"n":"slow"}"#]);
    assert_eq!(enclave.connections(), 1);

    // Many concurrent calls on one connection each get their own answer.
    let calls = (0..50).map(|i| {
        let client = client.clone();
        async move { client.attest(vec![i]).await.map(|doc| (i, doc)) }
    });
    for result in futures_join_all(calls).await {
        let (i, doc) = result.unwrap();
        assert_eq!(doc.document.as_slice(), [b"doc:".as_slice(), &[i]].concat());
    }
}

/// `join_all` without the futures crate: spawn and await in order.
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

#[tokio::test]
async fn enclave_errors_and_typed_answers() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = StandIn::start_unix(&dir).await;
    let client = EnclaveClient::new(config(&enclave.address));

    let error = client
        .sign(sign("error:policy_refused", "{}"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Enclave(body) if body.code == ErrorCode::PolicyRefused),
        "{error:?}"
    );
    let status = client.status().await.unwrap();
    assert_eq!(status.server, "stand-in");
    let key = client.generate_key(Some("tenant".into())).await.unwrap();
    assert_eq!(key.key_blob.as_slice(), b"new-blob");
    let stats = client.stats();
    assert_eq!(stats.configured, 2);
    assert_eq!(stats.live, 2);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_request_times_out_without_blocking_others() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = StandIn::start_unix(&dir).await;
    let mut config = config(&enclave.address);
    config.connections = 1;
    config.request_timeout = Duration::from_millis(300);
    let client = EnclaveClient::new(config);

    let stalled = tokio::spawn({
        let client = client.clone();
        async move {
            let start = Instant::now();
            (client.sign(sign("stall", "{}")).await, start.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.sign(sign("fast", "{}")).await.unwrap();
    let (result, took) = stalled.await.unwrap();
    assert!(
        matches!(result, Err(ClientError::Timeout(t)) if t == Duration::from_millis(300)),
        "{result:?}"
    );
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(1));
    // The connection is still good.
    client.status().await.unwrap();
    assert_eq!(client.stats().live, 1);
}

#[tokio::test(start_paused = true)]
async fn in_flight_requests_fail_at_once_when_the_connection_dies_and_calls_fail_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut enclave = StandIn::start_unix(&dir).await;
    let client = EnclaveClient::new(config(&enclave.address));
    assert!(client.wait_until_live(Duration::from_secs(2)).await);

    let stalled: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                (client.sign(sign("stall", "{}")).await, start.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    enclave.stop().await;
    for call in stalled {
        let (result, took) = call.await.unwrap();
        assert!(
            matches!(&result, Err(ClientError::Unavailable(reason)) if reason.contains("lost")),
            "{result:?}"
        );
        assert!(took < Duration::from_secs(1), "{took:?}");
    }

    // Down: no waiting for the 5 s timeout.
    for _ in 0..5 {
        let start = Instant::now();
        let error = client.status().await.unwrap_err();
        assert!(matches!(error, ClientError::Unavailable(_)), "{error:?}");
        assert!(start.elapsed() < Duration::from_millis(100));
        let message = error.to_string();
        assert!(message.contains("enclave.sock"), "{message}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.stats().live, 0);

    // Back: the client recovers by itself within about a second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    enclave.restart().await;
    let back = Instant::now();
    loop {
        if client.status().await.is_ok() {
            break;
        }
        assert!(back.elapsed() < Duration::from_millis(1500), "no recovery");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(client.wait_until_live(Duration::from_millis(1500)).await);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stats = client.stats();
    assert_eq!(stats.live, 2);
    assert_eq!(stats.reconnects, 2);
    assert_eq!(stats.disconnects, 2);
}

#[tokio::test]
async fn a_call_whose_connection_dies_before_sending_goes_to_another_and_a_sent_one_never_does() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = StandIn::start_unix(&dir).await;
    let mut config = config(&enclave.address);
    config.connections = 2;
    config.max_in_flight = 1;
    let client = EnclaveClient::new(config);
    let start = Instant::now();
    while client.stats().live < 2 {
        assert!(start.elapsed() < Duration::from_secs(2), "not connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let call = |blob: &'static str, json: String| {
        let client = client.clone();
        tokio::spawn(async move { client.sign(sign(blob, &json)).await })
    };
    let pause = || tokio::time::sleep(Duration::from_millis(30));

    // One connection carries a request when it dies (at 300 ms); the other is busy until 600 ms.
    let dying = call("die-after:300", r#"{"n":"dying"}"#.into());
    pause().await;
    let slow = call("slow:600", r#"{"n":"slow"}"#.into());
    pause().await;
    // Both connections are full: these two wait for room, one on each (ties alternate).
    let mut waiting = Vec::new();
    for n in 0..2 {
        waiting.push(call("fast", format!(r#"{{"n":{n}}}"#)));
        pause().await;
    }

    // The request in flight on the dying connection may have been handled: it fails, and is not
    // sent again.
    let error = dying.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, ClientError::Unavailable(reason) if reason.contains("lost")),
        "{error:?}"
    );
    slow.await.unwrap().unwrap();
    // The call that waited on the dying connection had sent nothing: it went to the other one.
    for call in waiting {
        call.await.unwrap().unwrap();
    }
    let mut payloads = enclave.payloads();
    payloads.sort();
    assert_eq!(payloads, [r#"{"n":"slow"}"#, r#"{"n":0}"#, r#"{"n":1}"#]);
    assert_eq!(
        enclave
            .seen
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        4,
        "every request reached the enclave exactly once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_started_before_the_enclave_connects_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let address = Address::Unix(dir.path().join("late.sock"));
    let client = EnclaveClient::new(config(&address));
    let start = Instant::now();
    assert!(matches!(
        client.status().await,
        Err(ClientError::Unavailable(_))
    ));
    assert!(start.elapsed() < Duration::from_millis(500));

    let _enclave = StandIn::start(address).await;
    assert!(client.wait_until_live(Duration::from_millis(1500)).await);
    client.status().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn credentials_go_to_every_connection_and_again_after_reconnecting() {
    let dir = tempfile::tempdir().unwrap();
    let mut enclave = StandIn::start_unix(&dir).await;
    let client = EnclaveClient::new(config(&enclave.address));

    // Stored before any connection: sent right after the hello.
    client.set_credentials(credentials("AK1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.stats().live, 2);
    assert_eq!(enclave.credentials(), ["AK1", "AK1"]);

    // Replaced while connected: pushed on every live connection.
    client.set_credentials(credentials("AK2")).await.unwrap();
    assert_eq!(enclave.credentials(), ["AK1", "AK1", "AK2", "AK2"]);

    // New connections get the latest ones before any request.
    enclave.stop().await;
    enclave.restart().await;
    assert!(client.wait_until_live(Duration::from_secs(2)).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        enclave.credentials(),
        ["AK1", "AK1", "AK2", "AK2", "AK2", "AK2"]
    );
    assert!(client.status().await.unwrap().has_credentials);
}

#[tokio::test]
async fn in_flight_requests_per_connection_are_bounded() {
    let listener_address = Address::Tcp("127.0.0.1:0".into());
    let enclave = StandIn::start(listener_address).await;
    let mut config = config(&enclave.address);
    config.connections = 1;
    config.max_in_flight = 3;
    let client = EnclaveClient::new(config);
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.sign(sign("slow:50", "{}")).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let most = enclave
        .seen
        .max_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(most, 3);
}

#[tokio::test]
async fn oversized_requests_are_refused_locally() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = StandIn::start_unix(&dir).await;
    let mut config = config(&enclave.address);
    config.max_frame = 1024;
    let client = EnclaveClient::new(config);
    let big = format!("\"{}\"", "x".repeat(2000));
    let error = client.sign(sign("k", &big)).await.unwrap_err();
    assert!(
        matches!(error, ClientError::TooLarge { max: 1024, .. }),
        "{error:?}"
    );
    client.status().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_the_client_closes_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = StandIn::start_unix(&dir).await;
    let client = EnclaveClient::new(config(&enclave.address));
    assert!(client.wait_until_live(Duration::from_secs(2)).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(enclave.connections(), 2);
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ended = enclave
        .seen
        .disconnected
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(ended, 2);
}
