//! What the enclave's `Kms` reports when KMS fails, through the real `aws-sdk-kms` (its retries
//! included): a fake KMS on loopback answers with canned JSON 1.1 errors, cuts connections,
//! never answers, or is not there at all. The caller's message must be a plain sentence without
//! KMS's identifiers (KMS's `AccessDeniedException` message names the role, the account and the
//! key ARN) and without the SDK's internals; the enclave's log must have the details, and never
//! the credentials.
#![cfg(test)]

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use nitro_signer_common::{
    key_blob::{KeyBlob, KeyKind, KeyMetadata},
    protocol::AwsCredentials,
};
use nitro_signer_enclave::{
    kms::{CiphertextRefusal, Kms, KmsError, KmsSettings, Operation, Unreachable},
    nsm::{Nsm, SimulatedNsm, SimulatorConfig},
    recipient::RecipientKey,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use zeroize::Zeroizing;

const ACCOUNT: &str = "111122223333";
const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const ROLE_ARN: &str = "arn:aws:sts::111122223333:assumed-role/signer-role/i-0123456789abcdef0";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY0";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzSESSIONTOKENdoNotLogMe0123456789";

/// What the fake KMS does with each request.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answers with this JSON 1.1 error (HTTP status, `__type`).
    Error(&'static str, &'static str),
    /// Answers `200 OK` with this JSON body.
    Success(&'static str),
    /// Reads the request, then closes the connection without answering.
    Close,
    /// Reads the request and never answers.
    Silent,
}

/// A fake KMS over plain HTTP on loopback; counts the requests it saw.
async fn fake_kms(behaviour: Behaviour) -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut stream = stream;
                if !read_request(&mut stream).await {
                    return;
                }
                *seen.lock().unwrap() += 1;
                match behaviour {
                    Behaviour::Success(body) => {
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nx-amzn-RequestId: fake\r\n\
                             Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\
                             Connection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                    }
                    Behaviour::Error(status, error_type) => {
                        let body = format!(
                            r#"{{"__type":"{error_type}","message":"User: {ROLE_ARN} is not authorized to perform: kms:Decrypt on resource: {KEY_ARN} because no resource-based policy allows the kms:Decrypt action"}}"#
                        );
                        let answer = format!(
                            "HTTP/1.1 {status}\r\nx-amzn-RequestId: fake\r\nx-amzn-ErrorType: \
                             {error_type}:http://internal.amazon.com/coral/com.amazonaws.kms/\r\n\
                             Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\
                             Connection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                    }
                    Behaviour::Close => {}
                    Behaviour::Silent => std::future::pending::<()>().await,
                }
            });
        }
    });
    (address, requests)
}

/// Reads one HTTP request (headers and a `Content-Length` body); false if the peer went away.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let headers = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let length: usize = headers
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().unwrap());
    while buf.len() < header_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

struct Enclave {
    kms: Kms,
    _dir: tempfile::TempDir,
}

/// The enclave's KMS client for `endpoint`, with credentials (a session token included).
fn enclave(endpoint: &str, attempt: Duration, operation: Duration) -> Enclave {
    let dir = tempfile::tempdir().unwrap();
    let nsm: Arc<dyn Nsm> =
        Arc::new(SimulatedNsm::open(SimulatorConfig::new(dir.path().join("nsm"))).unwrap());
    let kms = Kms::new(
        &KmsSettings {
            region: "us-east-1".into(),
            endpoint: Some(endpoint.to_owned()),
            attempt_timeout: attempt,
            operation_timeout: operation,
            http_client: None,
        },
        nsm,
        RecipientKey::generate().unwrap(),
    );
    kms.credentials()
        .set(&AwsCredentials {
            access_key_id: "ASIAEXAMPLEACCESSKEY".into(),
            secret_access_key: Zeroizing::new(SECRET_KEY.into()),
            session_token: Some(Zeroizing::new(SESSION_TOKEN.into())),
            expires_at: None,
        })
        .unwrap();
    Enclave { kms, _dir: dir }
}

fn blob() -> KeyBlob {
    KeyBlob::new(
        KeyMetadata::new(KeyKind::Seed, KEY_ARN, None, Vec::new()).unwrap(),
        vec![7; 64],
    )
    .unwrap()
}

/// The caller's message for `error`: checked to carry nothing of KMS's or the SDK's.
fn caller_sees(error: &KmsError) -> String {
    let text = error.to_string();
    for leak in [
        ACCOUNT,
        "arn:",
        "signer-role",
        "not authorized",
        "DispatchFailure",
        "IncompleteMessage",
        "ConnectorError",
        "{",
    ] {
        assert!(!text.contains(leak), "{leak:?} reaches the caller: {text}");
    }
    assert!(text.len() < 300, "{text}");
    text
}

/// Log events recorded by [`Recorder`], one line each: the message and every field.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl Logs {
    fn warnings(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(level, _)| *level == tracing::Level::WARN)
            .map(|(_, line)| line.clone())
            .collect()
    }

    fn all(&self) -> String {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .map(|(_, line)| line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A minimal subscriber that records every event and span at every level, with all fields.
struct Recorder(Logs);

impl Recorder {
    fn push(&self, level: tracing::Level, line: Line) {
        self.0.0.lock().unwrap().push((level, line.0));
    }
}

/// The fields of an event or span, as ` name=value` pairs.
struct Line(String);

impl tracing::field::Visit for Line {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut line = Line(String::new());
        span.record(&mut line);
        self.push(*span.metadata().level(), line);
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut line = Line(String::new());
        values.record(&mut line);
        self.push(tracing::Level::TRACE, line);
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        self.push(*event.metadata().level(), line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn record_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let guard = tracing::subscriber::set_default(Recorder(logs.clone()));
    (logs, guard)
}

fn assert_no_credentials_in(logs: &Logs) {
    let all = logs.all();
    assert!(!all.contains(SECRET_KEY), "the secret key is in the log");
    assert!(
        !all.contains(SESSION_TOKEN),
        "the session token is in the log"
    );
}

const SECOND: Duration = Duration::from_secs(1);

/// A `Decrypt` answer that names another key than the blob's is refused before its
/// `CiphertextForRecipient` is even looked at (KMS itself refuses a ciphertext under another
/// key; this holds even if something answers in its name).
#[tokio::test]
async fn a_decrypt_answer_for_another_key_is_refused() {
    let (logs, _guard) = record_logs();
    let other = "arn:aws:kms:us-east-1:444455556666:key/parent-owned";
    for body in [
        r#"{"KeyId":"arn:aws:kms:us-east-1:444455556666:key/parent-owned","CiphertextForRecipient":"AAAA","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}"#,
        r#"{"CiphertextForRecipient":"AAAA","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}"#,
    ] {
        let (address, requests) = fake_kms(Behaviour::Success(body)).await;
        let enclave = enclave(&format!("http://{address}"), SECOND, 3 * SECOND);
        let error = enclave.kms.decrypt(&blob()).await.unwrap_err();
        let KmsError::WrongKey {
            configured,
            answered,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(configured, KEY_ARN);
        assert!(answered.is_empty() || answered == other, "{answered}");
        assert_eq!(*requests.lock().unwrap(), 1);
    }
    assert!(
        logs.warnings()
            .iter()
            .any(|line| line.contains("another key") && line.contains(other)),
        "{:?}",
        logs.warnings()
    );
}

#[tokio::test]
async fn access_denied_names_what_to_check_and_logs_kms_message_for_the_operator() {
    let (logs, _guard) = record_logs();
    let (address, requests) =
        fake_kms(Behaviour::Error("400 Bad Request", "AccessDeniedException")).await;
    let enclave = enclave(&format!("http://{address}"), SECOND, 3 * SECOND);

    let error = enclave.kms.decrypt(&blob()).await.unwrap_err();
    assert_eq!(error, KmsError::AccessDenied(Operation::Decrypt));
    assert_eq!(
        caller_sees(&error),
        "KMS denied Decrypt: check the key policy's attestation conditions (the PCRs of this \
         enclave image) and the instance role's permissions on the key"
    );
    assert_eq!(*requests.lock().unwrap(), 1, "access denied is not retried");

    // The operator finds KMS's own explanation in the enclave's log.
    let warnings = logs.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("AccessDeniedException"),
        "{warnings:?}"
    );
    assert!(warnings[0].contains(ROLE_ARN), "{warnings:?}");
    assert_no_credentials_in(&logs);
}

#[tokio::test]
async fn kms_error_answers_are_retried_then_reported_by_kind() {
    let (logs, _guard) = record_logs();
    for (status, error_type, expected, retried) in [
        (
            "400 Bad Request",
            "ThrottlingException",
            "KMS throttled the request (ThrottlingException); retry later",
            true,
        ),
        (
            "500 Internal Server Error",
            "KMSInternalException",
            "KMS failed (KMSInternalException); retry later",
            true,
        ),
        (
            "400 Bad Request",
            "InvalidCiphertextException",
            &CiphertextRefusal::Invalid.to_string(),
            false,
        ),
        (
            "400 Bad Request",
            "UnrecognizedClientException",
            "KMS rejected the AWS credentials (UnrecognizedClientException): check the instance \
             role's credentials that the parent proxy forwards, and the enclave's clock",
            false,
        ),
    ] {
        let (address, requests) = fake_kms(Behaviour::Error(status, error_type)).await;
        let enclave = enclave(&format!("http://{address}"), SECOND, 5 * SECOND);
        let error = enclave.kms.decrypt(&blob()).await.unwrap_err();
        assert_eq!(caller_sees(&error), expected, "{error_type}");
        let attempts = *requests.lock().unwrap();
        assert_eq!(attempts > 1, retried, "{error_type}: {attempts} attempts");
    }
    assert_no_credentials_in(&logs);
}

#[tokio::test]
async fn a_connection_cut_before_the_answer_is_kms_unreachable_not_sdk_internals() {
    let (logs, _guard) = record_logs();
    let (address, requests) = fake_kms(Behaviour::Close).await;
    let enclave = enclave(&format!("http://{address}"), SECOND, 5 * SECOND);
    let error = enclave.kms.decrypt(&blob()).await.unwrap_err();
    assert_eq!(error, KmsError::Unreachable(Unreachable::Connection));
    let text = caller_sees(&error);
    assert!(
        text.starts_with("KMS is unreachable (connection failed or closed): check the vsock-proxy"),
        "{text}"
    );
    assert!(
        *requests.lock().unwrap() > 1,
        "the SDK retries a cut connection"
    );
    // The log says how the connection failed.
    let warnings = logs.warnings();
    assert!(
        warnings
            .iter()
            .any(|line| line.contains("dispatch failure") && line.contains("Decrypt")),
        "{warnings:?}"
    );
    assert_no_credentials_in(&logs);
}

#[tokio::test]
async fn nobody_listening_is_kms_unreachable() {
    // Bind and drop: a loopback port nobody listens on.
    let address = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let enclave = enclave(&format!("http://{address}"), SECOND, 5 * SECOND);
    let error = enclave.kms.decrypt(&blob()).await.unwrap_err();
    assert_eq!(error, KmsError::Unreachable(Unreachable::Connection));
    caller_sees(&error);
}

#[tokio::test]
async fn a_silent_kms_is_reported_with_the_time_waited() {
    let (address, _) = fake_kms(Behaviour::Silent).await;
    let enclave = enclave(
        &format!("http://{address}"),
        Duration::from_millis(300),
        Duration::from_millis(700),
    );
    let error = enclave.kms.decrypt(&blob()).await.unwrap_err();
    let KmsError::TimedOut(waited) = error else {
        panic!("{error:?}");
    };
    assert!(
        (Duration::from_millis(600)..Duration::from_secs(3)).contains(&waited),
        "{waited:?}"
    );
    let text = caller_sees(&error);
    assert!(
        text.starts_with("KMS did not answer within 0.7 s"),
        "{text}"
    );
}
