//! A small enclave stand-in that speaks the framed protocol over a real socket, for tests of the
//! client and the proxy. It answers each request in its own task, so answers come back in the
//! order they finish; its key blob decides the behaviour:
//!
//! - `slow:N`: answer after N milliseconds;
//! - `stall`: never answer;
//! - `error:CODE`: answer with that error code (`policy_refused`, `no_credentials`, …);
//! - `die-after:N`: after N milliseconds, close the connection the request came on, without
//!   answering (the enclave crashed or the connection broke with the request in flight);
//! - anything else: a canned answer of the right kind.
//!
//! It records the credentials, payloads, approvals and policy documents it receives, and can be
//! stopped (listener closed, connections dropped) and restarted on the same address.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use nitro_signer_common::{
    protocol::{
        AddressInfo, Approval, AttestationDocument, BatchItem, ErrorBody, ErrorCode, FlowSigned,
        Hello, HelloReply, NewKey, PROTOCOL_VERSION, PublicKeyInfo, Request, RequestBody, Response,
        ResponseBody, SignPayload, Signature, Signed, SignedAuthorization, SignedTransaction,
        Status, UpdatePolicy, Welcome, codec, frame,
    },
    transport::{Address, Listener, Stream},
};
use serde_bytes::{ByteArray, ByteBuf};
use tokio::{sync::mpsc, task::JoinHandle, task::JoinSet};

/// What the stand-in saw.
#[derive(Default)]
pub struct Seen {
    /// Connections welcomed.
    pub connections: AtomicUsize,
    /// Access key ids received with `set_credentials`, in order.
    pub credentials: Mutex<Vec<String>>,
    /// The JSON texts / bytes of the sign payloads received, in order.
    pub payloads: Mutex<Vec<String>>,
    /// Requests being handled now, and the most at once on one connection.
    pub in_flight: AtomicUsize,
    /// Most requests in flight at once.
    pub max_in_flight: AtomicUsize,
    /// Welcomed connections that ended.
    pub disconnected: AtomicUsize,
    /// Owner labels received with `generate_key`.
    pub owners: Mutex<Vec<Option<String>>>,
    /// Policy documents (JSON text) received with `generate_key`, in order.
    pub policies: Mutex<Vec<Option<String>>>,
    /// The approvals of each `sign` and `sign_batch` request, in order.
    pub approvals: Mutex<Vec<Vec<Approval>>>,
    /// `update_policy` requests, in order.
    pub policy_updates: Mutex<Vec<UpdatePolicy>>,
    /// Request frames received, of every kind.
    pub requests: AtomicUsize,
}

/// The stand-in server.
pub struct StandIn {
    /// Where it listens (the bound port, when started on port 0).
    pub address: Address,
    /// What it saw.
    pub seen: Arc<Seen>,
    server: Option<JoinHandle<()>>,
}

impl StandIn {
    /// Starts on `address` (`tcp://127.0.0.1:0` picks a port).
    pub async fn start(address: Address) -> Self {
        let mut stand_in = Self {
            address,
            seen: Arc::default(),
            server: None,
        };
        stand_in.restart().await;
        stand_in
    }

    /// Starts on a fresh Unix socket in `dir`.
    pub async fn start_unix(dir: &tempfile::TempDir) -> Self {
        Self::start(Address::Unix(dir.path().join("enclave.sock"))).await
    }

    /// Closes the listener and every connection.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same address.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = Listener::bind(&self.address).await.unwrap();
        self.address = listener.local_address().unwrap();
        let seen = Arc::clone(&self.seen);
        self.server = Some(tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                connections.spawn(serve(stream, Arc::clone(&seen)));
            }
        }));
    }

    /// The access key ids received so far.
    pub fn credentials(&self) -> Vec<String> {
        self.seen.credentials.lock().unwrap().clone()
    }

    /// The sign payloads received so far.
    pub fn payloads(&self) -> Vec<String> {
        self.seen.payloads.lock().unwrap().clone()
    }

    /// The approvals of each sign request (single or batch) received so far.
    pub fn approvals(&self) -> Vec<Vec<Approval>> {
        self.seen.approvals.lock().unwrap().clone()
    }

    /// The policy documents of each `generate_key` received so far.
    pub fn policies(&self) -> Vec<Option<String>> {
        self.seen.policies.lock().unwrap().clone()
    }

    /// The `update_policy` requests received so far.
    pub fn policy_updates(&self) -> Vec<UpdatePolicy> {
        self.seen.policy_updates.lock().unwrap().clone()
    }

    /// Connections welcomed so far.
    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn serve(stream: Stream, seen: Arc<Seen>) {
    let second = Duration::from_secs(1);
    let (mut reader, mut writer) = tokio::io::split(stream);
    let Ok(hello) = frame::read_frame(&mut reader, frame::MAX_FRAME_LEN, second).await else {
        return;
    };
    let hello: Hello = codec::decode(&hello).unwrap();
    assert!(hello.versions.contains(&PROTOCOL_VERSION));
    let welcome = HelloReply::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        server: "stand-in".into(),
        simulated: true,
    });
    let bytes = codec::encode(&welcome).unwrap();
    if frame::write_frame(&mut writer, &bytes, frame::MAX_FRAME_LEN)
        .await
        .is_err()
    {
        return;
    }
    seen.connections.fetch_add(1, Ordering::SeqCst);

    let (answers, mut to_write) = mpsc::unbounded_channel::<Response>();
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        while let Some(response) = to_write.recv().await {
            let bytes = codec::encode(&response).unwrap();
            if frame::write_frame(&mut writer, &bytes, frame::MAX_FRAME_LEN)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let _count_the_end = CountOnDrop(Arc::clone(&seen));
    // Notified by a `die-after` request: returning drops every task, and so the connection.
    let die = Arc::new(tokio::sync::Notify::new());
    loop {
        let bytes = tokio::select! {
            read = frame::read_frame(&mut reader, frame::MAX_FRAME_LEN, second) => match read {
                Ok(bytes) => bytes,
                Err(_) => break,
            },
            () = die.notified() => break,
        };
        let request: Request = codec::decode(&bytes).unwrap();
        seen.requests.fetch_add(1, Ordering::SeqCst);
        if let Some(ms) = die_after(&request.body) {
            let die = Arc::clone(&die);
            tasks.spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                die.notify_one();
            });
            continue;
        }
        let answers = answers.clone();
        let seen = Arc::clone(&seen);
        tasks.spawn(async move {
            let now = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            seen.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let body = answer(request.body, &seen).await;
            seen.in_flight.fetch_sub(1, Ordering::SeqCst);
            let _ = answers.send(Response {
                id: request.id,
                body,
                receipt: None,
            });
        });
    }
}

/// N, for a sign request whose key blob is `die-after:N`.
fn die_after(body: &RequestBody) -> Option<u64> {
    let RequestBody::Sign(request) = body else {
        return None;
    };
    std::str::from_utf8(&request.key.key_blob)
        .ok()?
        .strip_prefix("die-after:")?
        .parse()
        .ok()
}

struct CountOnDrop(Arc<Seen>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.disconnected.fetch_add(1, Ordering::SeqCst);
    }
}

fn signature() -> Signature {
    Signature {
        from: ByteArray::new([0xab; 20]),
        signing_hash: ByteArray::new([0x5a; 32]),
        r: ByteArray::new([0x01; 32]),
        s: {
            let mut s = [0u8; 32];
            s[31] = 2;
            ByteArray::new(s)
        },
        y_parity: true,
    }
}

fn signed_transaction(legacy: bool) -> SignedTransaction {
    SignedTransaction {
        signature: signature(),
        v: legacy.then(|| ByteArray::new(37u128.to_be_bytes())),
        raw: ByteBuf::from(vec![0x02, 0xc0]),
        hash: ByteArray::new([0x3c; 32]),
    }
}

async fn answer(body: RequestBody, seen: &Seen) -> ResponseBody {
    let key = match &body {
        RequestBody::Address(key) => Some(key.key_blob.to_vec()),
        RequestBody::Sign(request) => Some(request.key.key_blob.to_vec()),
        RequestBody::SignBatch(request) => Some(request.key.key_blob.to_vec()),
        RequestBody::UpdatePolicy(request) => Some(request.key_blob.to_vec()),
        RequestBody::PublicKey(request) => Some(request.key.key_blob.to_vec()),
        RequestBody::SignFlow(request) => Some(request.key.key_blob.to_vec()),
        _ => None,
    };
    if let Some(key) = key {
        let key = String::from_utf8_lossy(&key).into_owned();
        if key == "stall" {
            std::future::pending::<()>().await;
        }
        if let Some(ms) = key.strip_prefix("slow:") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
        }
        if let Some(code) = key.strip_prefix("error:") {
            let code: ErrorCode = serde_json::from_value(serde_json::json!(code)).unwrap();
            return ResponseBody::Error(ErrorBody::new(code, format!("stand-in says {code:?}")));
        }
    }
    match body {
        RequestBody::PublicKey(request) => ResponseBody::PublicKey(PublicKeyInfo {
            curve: request.curve,
            public_key: ByteArray::new([0x77; 64]),
        }),
        RequestBody::SignFlow(request) => {
            seen.approvals.lock().unwrap().push(request.approvals);
            seen.payloads.lock().unwrap().push(request.request);
            ResponseBody::FlowSigned(FlowSigned {
                signature: ByteArray::new([0x5f; 64]),
                hash: ByteArray::new([0x4f; 32]),
                message: ByteBuf::from(b"flow-message".to_vec()),
                public_key: ByteArray::new([0x77; 64]),
            })
        }
        RequestBody::GenerateKey(request) => {
            seen.owners.lock().unwrap().push(request.owner);
            seen.policies.lock().unwrap().push(request.policy.clone());
            ResponseBody::Key(NewKey {
                policy_hash: request.policy.map(|_| ByteArray::new([0x9a; 32])),
                key_blob: ByteBuf::from(b"new-blob".to_vec()),
                key_id: ByteArray::new([0x1d; 32]),
            })
        }
        RequestBody::UpdatePolicy(request) => {
            seen.policy_updates.lock().unwrap().push(request);
            ResponseBody::Key(NewKey {
                policy_hash: Some(ByteArray::new([0x9b; 32])),
                key_blob: ByteBuf::from(b"updated-blob".to_vec()),
                key_id: ByteArray::new([0x1d; 32]),
            })
        }
        RequestBody::Address(_) => ResponseBody::Address(AddressInfo {
            address: ByteArray::new([0xab; 20]),
            public_key: ByteBuf::from([vec![0x04], vec![0x11; 64]].concat()),
        }),
        RequestBody::Sign(request) => {
            seen.approvals.lock().unwrap().push(request.approvals);
            let (text, signed) = match request.payload {
                SignPayload::Transaction(json) => {
                    let legacy = json.contains("\"gasPrice\"");
                    let signed = Signed::Transaction(signed_transaction(legacy));
                    (json, signed)
                }
                SignPayload::TypedData(json) => (json, Signed::Signature(signature())),
                SignPayload::Authorization(json) => {
                    let mut chain_id = [0u8; 32];
                    chain_id[31] = 1;
                    let signed = Signed::Authorization(SignedAuthorization {
                        signature: signature(),
                        chain_id: ByteArray::new(chain_id),
                        address: ByteArray::new([0xad; 20]),
                        nonce: 9,
                    });
                    (json, signed)
                }
                SignPayload::Message(bytes) => (
                    format!("message:{}", hex::encode(&bytes)),
                    Signed::Signature(signature()),
                ),
                SignPayload::Digest(digest) => (
                    format!("digest:{}", hex::encode(digest.as_slice())),
                    Signed::Signature(signature()),
                ),
            };
            seen.payloads.lock().unwrap().push(text);
            ResponseBody::Signed(Box::new(signed))
        }
        RequestBody::SignBatch(request) => {
            seen.approvals.lock().unwrap().push(request.approvals);
            ResponseBody::SignedBatch(
                request
                    .transactions
                    .into_iter()
                    .map(|json| {
                        let refuse = json.contains("refuse");
                        seen.payloads.lock().unwrap().push(json);
                        if refuse {
                            BatchItem::Error(ErrorBody::new(ErrorCode::PolicyRefused, "refused"))
                        } else {
                            BatchItem::Signed(Box::new(signed_transaction(false)))
                        }
                    })
                    .collect(),
            )
        }
        RequestBody::Attest(request) => ResponseBody::Attestation(AttestationDocument {
            document: ByteBuf::from([b"doc:".to_vec(), request.nonce.to_vec()].concat()),
        }),
        RequestBody::Status => ResponseBody::Status(Status {
            server: "stand-in".into(),
            simulated: true,
            has_credentials: !seen.credentials.lock().unwrap().is_empty(),
            cached_keys: 1,
            cache_hits: 2,
            kms_calls: 3,
            kms_errors: 4,
            signatures: 5,
            cpu_micros: 6_500_000,
            resident_bytes: 7 << 20,
        }),
        RequestBody::SetCredentials(credentials) => {
            seen.credentials
                .lock()
                .unwrap()
                .push(credentials.access_key_id.clone());
            ResponseBody::CredentialsSet
        }
    }
}
