//! [`EnclaveClient`]: a pool of multiplexed connections to the enclave's framed protocol.
//!
//! Each connection carries many requests at once: a writer task sends frames in the order they
//! are queued, a reader task hands each answer to the caller waiting for its id, in whatever order
//! the enclave finishes them. One manager task per connection slot opens the connection, says
//! hello, sends the stored AWS credentials, and when the connection dies fails everything that was
//! in flight on it and reconnects with a capped backoff. Calls never wait for a dead connection:
//! with no live connection they fail at once with [`ClientError::Unavailable`]. A call whose
//! connection dies before its request was handed to the writer goes once to another live
//! connection; a request that may have been sent is never sent again. A connection with nothing
//! in flight sends a `status` request every [`EnclaveConfig::keepalive_interval`], so that the
//! enclave, which closes connections idle for a minute, keeps it.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use nitro_signer_common::{
    protocol::{
        AddressInfo, AttestRequest, AttestationDocument, AwsCredentials, BatchItem, ErrorBody,
        GenerateKey, Hello, HelloReply, KeyRef, NewKey, PROTOCOL_VERSION, Request, RequestBody,
        Response, ResponseBody, SignBatchRequest, SignRequest, Signed, Status, UpdatePolicy,
        Welcome,
        codec::{self, CodecError},
        frame::{self, FrameError},
    },
    receipt::Receipt,
    transport::{self, Address, Stream},
};
use serde_bytes::ByteBuf;
use tokio::{
    io::{BufReader, ReadHalf, WriteHalf},
    sync::{Semaphore, mpsc, oneshot, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, info, warn};

/// Why a call to the enclave failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No connection to the enclave is live, or the connection carrying the request died before
    /// the answer came. The request may or may not have been handled.
    #[error("enclave unavailable: {0}")]
    Unavailable(String),
    /// The enclave did not answer within the request timeout. The request may still complete
    /// inside the enclave; its late answer is dropped.
    #[error("the enclave did not answer within {0:?}")]
    Timeout(Duration),
    /// The encoded request is larger than the largest frame.
    #[error("the request is {len} bytes; the largest frame is {max} bytes")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// Frame limit.
        max: usize,
    },
    /// A message could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The enclave answered with an error.
    #[error("the enclave refused the request: {0}")]
    Enclave(ErrorBody),
    /// The enclave answered with a kind of answer that does not belong to the request.
    #[error("unexpected answer from the enclave: expected {expected}, got {got}")]
    UnexpectedResponse {
        /// The answer kind the request calls for.
        expected: &'static str,
        /// The answer kind received.
        got: &'static str,
    },
}

/// How an [`EnclaveClient`] connects. Build with [`EnclaveConfig::new`] and adjust the fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EnclaveConfig {
    /// The enclave's address (`vsock://16:5000` in production).
    pub address: Address,
    /// Connections kept open (at least one).
    pub connections: usize,
    /// Longest wait for an answer, counted from the call (including the wait for a free slot).
    pub request_timeout: Duration,
    /// Requests in flight per connection; further calls on a full connection wait their turn.
    pub max_in_flight: usize,
    /// Largest frame sent or accepted.
    pub max_frame: usize,
    /// Limit for connecting and the hello exchange, and for a started frame to arrive completely.
    pub io_timeout: Duration,
    /// First delay before reconnecting; it doubles after every failed attempt.
    pub reconnect_min: Duration,
    /// Longest delay between reconnection attempts.
    pub reconnect_max: Duration,
    /// Name sent in the hello, for the enclave's logs.
    pub client_name: String,
    /// How often a connection with no request in flight sends a `status` request, to stay
    /// open: the enclave closes connections idle for longer than its idle timeout (60 s by
    /// default), and gives the slot of its longest-idle connection to a newcomer when full.
    /// `None` sends none.
    pub keepalive_interval: Option<Duration>,
}

impl EnclaveConfig {
    /// Defaults for `address`: 4 connections, 10 s request timeout, 256 requests in flight per
    /// connection, 2 MiB frames ([`frame::MAX_FRAME_LEN`]), 5 s I/O timeout, reconnection from 50 ms up to 1 s,
    /// a keep-alive every 15 s (a quarter of the enclave's default idle timeout).
    pub fn new(address: Address) -> Self {
        Self {
            address,
            connections: 4,
            request_timeout: Duration::from_secs(10),
            max_in_flight: 256,
            max_frame: frame::MAX_FRAME_LEN,
            io_timeout: Duration::from_secs(5),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(1),
            client_name: concat!("nitro-signer-client ", env!("CARGO_PKG_VERSION")).to_owned(),
            keepalive_interval: Some(Duration::from_secs(15)),
        }
    }
}

/// Connection counters, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Connections configured.
    pub configured: usize,
    /// Connections currently open and welcomed.
    pub live: usize,
    /// Connections opened after a slot's first one (each follows a lost connection).
    pub reconnects: u64,
    /// Connections lost.
    pub disconnects: u64,
}

/// A client of the enclave's framed protocol: a pool of multiplexed connections that heals
/// itself. Cheap to clone; all clones share the pool. The background tasks stop when the last
/// clone is dropped.
#[derive(Clone)]
pub struct EnclaveClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for EnclaveClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnclaveClient")
            .field("address", &self.inner.config.address)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: EnclaveConfig,
    slots: Vec<Mutex<Option<Arc<Connection>>>>,
    next_slot: AtomicUsize,
    next_id: AtomicU64,
    credentials: Mutex<Option<AwsCredentials>>,
    /// Live connection count; receivers wait on it.
    live: watch::Sender<usize>,
    /// Becomes true once any slot has finished its first connection attempt.
    attempted: watch::Sender<bool>,
    last_error: Mutex<Option<String>>,
    reconnects: AtomicU64,
    disconnects: AtomicU64,
    /// Dropped with the last client: the managers see the channel close and stop.
    _alive: watch::Sender<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something did, the data is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EnclaveClient {
    /// Starts the pool: one background task per connection connects (and reconnects) to the
    /// enclave. Returns at once; calls made before the first connection attempt has finished
    /// wait for it. Must be called inside a Tokio runtime.
    pub fn new(config: EnclaveConfig) -> Self {
        let connections = config.connections.max(1);
        let (alive, alive_rx) = watch::channel(());
        let inner = Arc::new(Inner {
            slots: (0..connections).map(|_| Mutex::new(None)).collect(),
            config,
            next_slot: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            credentials: Mutex::new(None),
            live: watch::Sender::new(0),
            attempted: watch::Sender::new(false),
            last_error: Mutex::new(None),
            reconnects: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            _alive: alive,
        });
        for slot in 0..connections {
            tokio::spawn(manage(Arc::downgrade(&inner), slot, alive_rx.clone()));
        }
        Self { inner }
    }

    /// The enclave's address.
    pub fn address(&self) -> &Address {
        &self.inner.config.address
    }

    /// Connection counters.
    pub fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            configured: self.inner.slots.len(),
            live: *self.inner.live.borrow(),
            reconnects: self.inner.reconnects.load(Ordering::Relaxed),
            disconnects: self.inner.disconnects.load(Ordering::Relaxed),
        }
    }

    /// Waits until at least one connection is live; false if none is within `timeout`.
    pub async fn wait_until_live(&self, timeout: Duration) -> bool {
        let mut live = self.inner.live.subscribe();
        matches!(
            tokio::time::timeout(timeout, live.wait_for(|n| *n > 0)).await,
            Ok(Ok(_))
        )
    }

    /// Sends one request and waits for its answer. An [`ResponseBody::Error`] answer becomes
    /// [`ClientError::Enclave`].
    ///
    /// When the connection picked turns out to be dead before the request was handed to its
    /// writer (so the request provably never reached the enclave), the request goes once to
    /// another live connection instead. A request that may have been sent is never sent again:
    /// signing twice is not harmless to every caller.
    pub async fn call(&self, body: RequestBody) -> Result<ResponseBody, ClientError> {
        self.call_receipted(body).await.map(|(body, _)| body)
    }

    /// [`Self::call`], with the enclave's receipt for what it did (see
    /// [`nitro_signer_common::receipt`]), when the answer carries one.
    pub async fn call_receipted(
        &self,
        body: RequestBody,
    ) -> Result<(ResponseBody, Option<Receipt>), ClientError> {
        let config = &self.inner.config;
        let deadline = Instant::now() + config.request_timeout;
        let connection = self.inner.pick(deadline).await?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = codec::encode(&Request { id, body })?;
        let answer = match connection.call(id, bytes, deadline, config).await {
            Ok(answer) => answer,
            Err(CallError::NotSent(error, bytes)) => {
                let Some(other) = self.inner.least_loaded(Some(&connection)) else {
                    return Err(error);
                };
                debug!(%error, "connection lost before the request was sent; sending it on another");
                other
                    .call(id, bytes, deadline, config)
                    .await
                    .map_err(CallError::into_client_error)?
            }
            Err(CallError::Failed(error)) => return Err(error),
        };
        match answer {
            (ResponseBody::Error(error), _) => Err(ClientError::Enclave(error)),
            answer => Ok(answer),
        }
    }

    /// Stores `credentials` for every connection opened from now on, and sends them on every
    /// live connection. The credentials are kept even when sending fails (the error of the first
    /// failed connection is returned); a connection that failed reconnects and sends them again.
    pub async fn set_credentials(&self, credentials: AwsCredentials) -> Result<(), ClientError> {
        *lock(&self.inner.credentials) = Some(credentials.clone());
        let live: Vec<_> = self
            .inner
            .slots
            .iter()
            .filter_map(|slot| lock(slot).clone())
            .collect();
        let mut result = Ok(());
        for connection in live {
            let sent = self.inner.send_credentials(&connection, &credentials).await;
            if result.is_ok() {
                result = sent;
            }
        }
        result
    }

    /// The enclave's status and counters.
    pub async fn status(&self) -> Result<Status, ClientError> {
        match self.call(RequestBody::Status).await? {
            ResponseBody::Status(status) => Ok(status),
            other => Err(unexpected("status", &other)),
        }
    }

    /// Generates a new master seed inside the enclave, optionally bound to an owner label, without
    /// a policy document (see [`Self::generate_key_with`]).
    pub async fn generate_key(&self, owner: Option<String>) -> Result<NewKey, ClientError> {
        self.generate_key_with(GenerateKey {
            owner,
            policy: None,
            nonce: None,
        })
        .await
    }

    /// Generates a new master seed inside the enclave with an owner label and a policy document
    /// (JSON text, parsed by the enclave), each optional. The answer carries the policy's hash
    /// when there is one.
    pub async fn generate_key_with(&self, request: GenerateKey) -> Result<NewKey, ClientError> {
        match self.call(RequestBody::GenerateKey(request)).await? {
            ResponseBody::Key(key) => Ok(key),
            other => Err(unexpected("key", &other)),
        }
    }

    /// Re-encrypts a key under a new policy document, approved by the current policy's admins;
    /// the answer is the new blob (same key id) and the new policy's hash.
    pub async fn update_policy(&self, request: UpdatePolicy) -> Result<NewKey, ClientError> {
        match self.call(RequestBody::UpdatePolicy(request)).await? {
            ResponseBody::Key(key) => Ok(key),
            other => Err(unexpected("key", &other)),
        }
    }

    /// The address and public key of a key (and user).
    pub async fn address_of(&self, key: KeyRef) -> Result<AddressInfo, ClientError> {
        match self.call(RequestBody::Address(key)).await? {
            ResponseBody::Address(address) => Ok(address),
            other => Err(unexpected("address", &other)),
        }
    }

    /// Signs one payload.
    pub async fn sign(&self, request: SignRequest) -> Result<Signed, ClientError> {
        match self.call(RequestBody::Sign(request)).await? {
            ResponseBody::Signed(signed) => Ok(*signed),
            other => Err(unexpected("signed", &other)),
        }
    }

    /// Signs several transactions; one result per transaction, in order.
    pub async fn sign_batch(
        &self,
        request: SignBatchRequest,
    ) -> Result<Vec<BatchItem>, ClientError> {
        match self.call(RequestBody::SignBatch(request)).await? {
            ResponseBody::SignedBatch(items) => Ok(items),
            other => Err(unexpected("signed_batch", &other)),
        }
    }

    /// An attestation document over `nonce`.
    pub async fn attest(&self, nonce: Vec<u8>) -> Result<AttestationDocument, ClientError> {
        let request = AttestRequest {
            nonce: ByteBuf::from(nonce),
        };
        match self.call(RequestBody::Attest(request)).await? {
            ResponseBody::Attestation(document) => Ok(document),
            other => Err(unexpected("attestation", &other)),
        }
    }
}

fn unexpected(expected: &'static str, got: &ResponseBody) -> ClientError {
    ClientError::UnexpectedResponse {
        expected,
        got: got.kind(),
    }
}

impl Inner {
    /// The live connection with the most free room, other than `except`, starting the scan at a
    /// rotating slot so that ties are spread round-robin. A connection that has died but is not
    /// yet cleared from its slot is skipped.
    fn least_loaded(&self, except: Option<&Arc<Connection>>) -> Option<Arc<Connection>> {
        let start = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let count = self.slots.len();
        let mut best: Option<(usize, Arc<Connection>)> = None;
        for slot in self.slots.iter().cycle().skip(start % count).take(count) {
            let Some(connection) = lock(slot).clone() else {
                continue;
            };
            if connection.permits.is_closed()
                || except.is_some_and(|except| Arc::ptr_eq(except, &connection))
            {
                continue;
            }
            let free = connection.permits.available_permits();
            if best.as_ref().is_none_or(|(most, _)| free > *most) {
                best = Some((free, connection));
            }
        }
        best.map(|(_, connection)| connection)
    }

    async fn pick(&self, deadline: Instant) -> Result<Arc<Connection>, ClientError> {
        if let Some(connection) = self.least_loaded(None) {
            return Ok(connection);
        }
        // Right after start, give the first connection attempts a chance instead of failing.
        if !*self.attempted.borrow() {
            let mut attempted = self.attempted.subscribe();
            let _ = tokio::time::timeout_at(deadline, attempted.wait_for(|done| *done)).await;
            if let Some(connection) = self.least_loaded(None) {
                return Ok(connection);
            }
        }
        let reason = lock(&self.last_error)
            .clone()
            .unwrap_or_else(|| "not connected yet".to_owned());
        Err(ClientError::Unavailable(format!(
            "no connection to the enclave at {} ({reason})",
            self.config.address
        )))
    }

    async fn send_credentials(
        &self,
        connection: &Connection,
        credentials: &AwsCredentials,
    ) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.config.request_timeout;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let bytes = codec::encode(&Request {
            id,
            body: RequestBody::SetCredentials(credentials.clone()),
        })?;
        match connection
            .call(id, bytes, deadline, &self.config)
            .await
            .map_err(CallError::into_client_error)?
            .0
        {
            ResponseBody::CredentialsSet => Ok(()),
            ResponseBody::Error(error) => Err(ClientError::Enclave(error)),
            other => Err(unexpected("credentials_set", &other)),
        }
    }

    fn set_last_error(&self, reason: &str) {
        *lock(&self.last_error) = Some(reason.to_owned());
    }
}

type Answer = Result<(ResponseBody, Option<Receipt>), ClientError>;

/// Why a call on one connection failed.
enum CallError {
    /// The connection was closed before the request was handed to its writer: the request
    /// never left this process, and may go to another connection. Its encoded bytes come back.
    NotSent(ClientError, Vec<u8>),
    /// Any other failure. The request may have reached the enclave.
    Failed(ClientError),
}

impl CallError {
    fn into_client_error(self) -> ClientError {
        match self {
            Self::NotSent(error, _) | Self::Failed(error) => error,
        }
    }
}

impl From<ClientError> for CallError {
    fn from(error: ClientError) -> Self {
        Self::Failed(error)
    }
}

/// One open, welcomed connection.
struct Connection {
    /// Room for every permit: sending never waits.
    to_writer: mpsc::Sender<Vec<u8>>,
    /// Bounds the requests in flight; closed when the connection dies.
    permits: Arc<Semaphore>,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// Set once the connection died: why. No request is registered after that.
    closed: Option<String>,
    waiting: HashMap<u64, oneshot::Sender<Answer>>,
}

/// Removes a request's entry when its caller stops waiting (answer, timeout or cancellation).
struct Registration<'a> {
    connection: &'a Connection,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        lock(&self.connection.pending).waiting.remove(&self.id);
    }
}

impl Connection {
    /// Sends the request `bytes` (whose id is `id`) and waits for its answer until `deadline`.
    /// Fails with [`CallError::NotSent`] only when the request provably never left: the
    /// connection was closed before the frame was handed to the writer task.
    async fn call(
        &self,
        id: u64,
        bytes: Vec<u8>,
        deadline: Instant,
        config: &EnclaveConfig,
    ) -> Result<(ResponseBody, Option<Receipt>), CallError> {
        if bytes.len() > config.max_frame {
            return Err(ClientError::TooLarge {
                len: bytes.len(),
                max: config.max_frame,
            }
            .into());
        }
        let _permit = match tokio::time::timeout_at(deadline, self.permits.acquire()).await {
            Err(_) => return Err(ClientError::Timeout(config.request_timeout).into()),
            Ok(Err(_)) => return Err(CallError::NotSent(self.unavailable(), bytes)),
            Ok(Ok(permit)) => permit,
        };
        let (answer, answered) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if let Some(reason) = &pending.closed {
                let error = ClientError::Unavailable(reason.clone());
                return Err(CallError::NotSent(error, bytes));
            }
            pending.waiting.insert(id, answer);
        }
        let _registration = Registration {
            connection: self,
            id,
        };
        // The writer task is gone (it ended with the connection): the frame comes back unsent.
        // Once the channel has taken it, it may be written, and it counts as sent.
        if let Err(unsent) = self.to_writer.send(bytes).await {
            return Err(CallError::NotSent(self.unavailable(), unsent.0));
        }
        match tokio::time::timeout_at(deadline, answered).await {
            Err(_) => Err(ClientError::Timeout(config.request_timeout).into()),
            Ok(Err(_)) => Err(self.unavailable().into()),
            Ok(Ok(answer)) => answer.map_err(CallError::Failed),
        }
    }

    fn unavailable(&self) -> ClientError {
        let reason = lock(&self.pending)
            .closed
            .clone()
            .unwrap_or_else(|| "connection closed".to_owned());
        ClientError::Unavailable(reason)
    }

    fn deliver(&self, response: Response) {
        let waiting = lock(&self.pending).waiting.remove(&response.id);
        match waiting {
            Some(answer) => {
                // The caller may have just given up; nothing to do then.
                let _ = answer.send(Ok((response.body, response.receipt)));
            }
            None => debug!(
                id = response.id,
                "answer for a request no longer waited for"
            ),
        }
    }

    /// Fails everything in flight and refuses new requests. The first reason given is kept.
    fn close(&self, reason: &str) {
        self.permits.close();
        let waiting = {
            let mut pending = lock(&self.pending);
            if pending.closed.is_some() {
                return;
            }
            pending.closed = Some(reason.to_owned());
            std::mem::take(&mut pending.waiting)
        };
        for (_, answer) in waiting {
            let _ = answer.send(Err(ClientError::Unavailable(reason.to_owned())));
        }
    }
}

/// A connection and the two tasks that serve it.
struct Opened {
    connection: Arc<Connection>,
    reader: JoinHandle<String>,
    writer: JoinHandle<String>,
    welcome: Welcome,
}

impl Opened {
    /// Waits until either task ends, or the client is dropped; returns why.
    async fn closed(&mut self, alive: &mut watch::Receiver<()>) -> String {
        let reason = tokio::select! {
            reason = &mut self.reader => reason.unwrap_or_else(|error| error.to_string()),
            reason = &mut self.writer => reason.unwrap_or_else(|error| error.to_string()),
            _ = alive.changed() => "client dropped".to_owned(),
        };
        self.reader.abort();
        self.writer.abort();
        reason
    }
}

/// Connects, says hello and starts the reader and writer tasks.
async fn open(config: &EnclaveConfig) -> Result<Opened, String> {
    let handshake = async {
        let mut stream = transport::connect(&config.address)
            .await
            .map_err(|error| format!("cannot connect: {error}"))?;
        let hello = codec::encode(&Hello {
            versions: vec![PROTOCOL_VERSION],
            client: config.client_name.clone(),
        })
        .map_err(|error| error.to_string())?;
        frame::write_frame(&mut stream, &hello, config.max_frame)
            .await
            .map_err(|error| format!("hello not sent: {error}"))?;
        let reply = frame::read_frame(&mut stream, config.max_frame, config.io_timeout)
            .await
            .map_err(|error| format!("no hello reply: {error}"))?;
        match codec::decode::<HelloReply>(&reply).map_err(|error| error.to_string())? {
            HelloReply::Welcome(welcome) if welcome.version == PROTOCOL_VERSION => {
                Ok((stream, welcome))
            }
            HelloReply::Welcome(welcome) => Err(format!(
                "the enclave chose protocol version {}, which this client does not speak",
                welcome.version
            )),
            HelloReply::Refused(error) => Err(format!("hello refused: {error}")),
        }
    };
    let (stream, welcome) = tokio::time::timeout(config.io_timeout, handshake)
        .await
        .map_err(|_| format!("no hello reply within {:?}", config.io_timeout))??;
    let (reader, writer) = tokio::io::split(stream);
    let in_flight = config.max_in_flight.max(1);
    let (to_writer, queued) = mpsc::channel(in_flight);
    let connection = Arc::new(Connection {
        to_writer,
        permits: Arc::new(Semaphore::new(in_flight)),
        pending: Mutex::new(Pending::default()),
    });
    // Either task ending fails what is in flight at once, before the manager even notices.
    let reader = tokio::spawn({
        let connection = Arc::clone(&connection);
        let reading = read_answers(
            frame::buffered(reader),
            Arc::clone(&connection),
            config.max_frame,
            config.io_timeout,
        );
        async move {
            let reason = reading.await;
            connection.close(&format!("connection to the enclave lost: {reason}"));
            reason
        }
    });
    let writer = tokio::spawn({
        let connection = Arc::clone(&connection);
        let writing = write_requests(writer, queued, config.max_frame, config.io_timeout);
        async move {
            let reason = writing.await;
            connection.close(&format!("connection to the enclave lost: {reason}"));
            reason
        }
    });
    Ok(Opened {
        reader,
        writer,
        connection,
        welcome,
    })
}

async fn read_answers(
    mut reader: BufReader<ReadHalf<Stream>>,
    connection: Arc<Connection>,
    max_frame: usize,
    io_timeout: Duration,
) -> String {
    loop {
        let bytes = match frame::read_frame(&mut reader, max_frame, io_timeout).await {
            Ok(bytes) => bytes,
            Err(FrameError::Closed) => return "connection closed by the enclave".to_owned(),
            Err(error) => return error.to_string(),
        };
        match codec::decode::<Response>(&bytes) {
            Ok(response) => connection.deliver(response),
            Err(error) => return format!("undecodable answer from the enclave: {error}"),
        }
    }
}

async fn write_requests(
    mut writer: WriteHalf<Stream>,
    mut queued: mpsc::Receiver<Vec<u8>>,
    max_frame: usize,
    io_timeout: Duration,
) -> String {
    match frame::write_queued(&mut writer, &mut queued, max_frame, io_timeout).await {
        Ok(()) => "client closed".to_owned(),
        Err(FrameError::NotRead(_)) => {
            format!("the enclave did not read a request within {io_timeout:?}")
        }
        Err(error) => error.to_string(),
    }
}

/// Keeps a connection open while it has nothing to do (see
/// [`EnclaveConfig::keepalive_interval`]).
struct KeepAlive {
    connection: Arc<Connection>,
    config: EnclaveConfig,
    client: std::sync::Weak<Inner>,
}

impl KeepAlive {
    /// Sends a `status` request every interval while nothing is in flight; never returns.
    async fn run(self) -> std::convert::Infallible {
        let Some(every) = self
            .config
            .keepalive_interval
            .filter(|every| !every.is_zero())
        else {
            return std::future::pending().await;
        };
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A request in flight keeps the connection busy in the enclave's eyes already.
            if self.connection.permits.available_permits() < self.config.max_in_flight.max(1) {
                continue;
            }
            // Ids are unique per client: the enclave refuses one already in flight.
            let Some(id) = self
                .client
                .upgrade()
                .map(|client| client.next_id.fetch_add(1, Ordering::Relaxed))
            else {
                continue;
            };
            let Ok(bytes) = codec::encode(&Request {
                id,
                body: RequestBody::Status,
            }) else {
                continue;
            };
            let deadline = Instant::now() + self.config.request_timeout;
            // A failed keep-alive needs nothing more: a dead connection ends on its own.
            if let Err(error) = self
                .connection
                .call(id, bytes, deadline, &self.config)
                .await
            {
                debug!(error = %error.into_client_error(), "keep-alive failed");
            }
        }
    }
}

/// Keeps one connection slot connected until the client is dropped.
async fn manage(inner: std::sync::Weak<Inner>, slot: usize, mut alive: watch::Receiver<()>) {
    let mut delay = None::<Duration>;
    let mut opened_before = false;
    let mut failures = 0u32;
    loop {
        if let Some(wait) = delay {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = alive.changed() => return,
            }
        }
        let Some(client) = inner.upgrade() else {
            return;
        };
        let config = &client.config;
        let attempt = tokio::select! {
            attempt = open(config) => attempt,
            _ = alive.changed() => return,
        };
        let backoff = |delay: Option<Duration>| {
            delay.map_or(config.reconnect_min, |delay| {
                (delay * 2).min(config.reconnect_max)
            })
        };
        let mut opened = match attempt {
            Ok(opened) => opened,
            Err(reason) => {
                if failures == 0 {
                    warn!(slot, address = %config.address, %reason, "cannot connect to the enclave; retrying");
                } else {
                    debug!(slot, address = %config.address, %reason, "cannot connect to the enclave");
                }
                failures = failures.saturating_add(1);
                client.set_last_error(&reason);
                client.attempted.send_replace(true);
                delay = Some(backoff(delay));
                continue;
            }
        };
        let sent = lock(&client.credentials).clone();
        if let Some(credentials) = &sent
            && let Err(error) = client
                .send_credentials(&opened.connection, credentials)
                .await
        {
            warn!(slot, %error, "the enclave did not take the AWS credentials");
        }
        if opened.reader.is_finished() || opened.writer.is_finished() {
            // Died during the credentials exchange: treat it as a failed attempt.
            let reason = opened.closed(&mut alive).await;
            opened.connection.close(&reason);
            client.set_last_error(&reason);
            client.attempted.send_replace(true);
            delay = Some(backoff(delay));
            continue;
        }
        info!(
            slot,
            address = %config.address,
            server = %opened.welcome.server,
            simulated = opened.welcome.simulated,
            "connected to the enclave"
        );
        if opened_before {
            client.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        opened_before = true;
        failures = 0;
        if let Some(current) = client.slots.get(slot) {
            *lock(current) = Some(Arc::clone(&opened.connection));
        }
        client.live.send_modify(|live| *live += 1);
        client.attempted.send_replace(true);
        // Credentials replaced while this connection was not yet published did not reach it.
        let latest = lock(&client.credentials).clone();
        if latest != sent
            && let Some(credentials) = &latest
            && let Err(error) = client
                .send_credentials(&opened.connection, credentials)
                .await
        {
            warn!(slot, %error, "the enclave did not take the AWS credentials");
        }
        let keepalive = KeepAlive {
            connection: Arc::clone(&opened.connection),
            config: client.config.clone(),
            client: Arc::downgrade(&client),
        };
        // Do not keep the client alive while idle: only the Weak is held across the wait.
        drop(client);

        let reason = tokio::select! {
            reason = opened.closed(&mut alive) => reason,
            never = keepalive.run() => match never {},
        };
        let Some(client) = inner.upgrade() else {
            opened.connection.close(&reason);
            return;
        };
        if let Some(current) = client.slots.get(slot) {
            *lock(current) = None;
        }
        client
            .live
            .send_modify(|live| *live = live.saturating_sub(1));
        client.disconnects.fetch_add(1, Ordering::Relaxed);
        let reason = format!("connection to the enclave lost: {reason}");
        opened.connection.close(&reason);
        warn!(slot, address = %client.config.address, %reason, "reconnecting");
        client.set_last_error(&reason);
        delay = Some(client.config.reconnect_min);
    }
}
