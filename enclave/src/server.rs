//! The enclave's server: connections from the parent, many requests in flight on each.
//!
//! Every peer is untrusted. A connection must say hello within a time limit; frames are bounded
//! before allocation and must complete once started; a frame that does not decode gets an error
//! answer (or, when even its request id is unreadable, a closed connection); a peer that stops
//! reading its answers is disconnected (the whole connection, not only its writer). A connection
//! idle (no request read, none in flight) for [`ServerLimits::idle_timeout`] is closed, and when
//! every slot is taken a newcomer gets the slot of the connection idle the longest, so peers that
//! connect and stay silent cannot lock the parent's proxy out. Requests in flight are capped per
//! connection and across all of them; past the enclave-wide cap, requests are refused at once
//! with `busy`; a request whose id is already in flight on its connection is refused. None of
//! this affects other connections, and nothing a peer sends can panic the server: requests are
//! handled by [`Enclave::handle`], which turns every failure into an error answer.
//!
//! On shutdown the server stops accepting, stops reading new requests, lets the requests in
//! flight finish and their answers be written (within [`ServerLimits::drain_timeout`]), then
//! returns.

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    future::Future,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use nitro_signer_common::{
    protocol::{
        ErrorBody, ErrorCode, Hello, HelloReply, PROTOCOL_VERSION, Request, RequestBody, Response,
        ResponseBody,
        codec::{self, CodecError},
        frame::{self, FrameError},
    },
    transport::{Listener, Stream},
};
use serde::Deserialize;
use tokio::{
    io::{AsyncRead, AsyncWrite, WriteHalf},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch},
    task::{AbortHandle, JoinHandle, JoinSet},
    time::Instant,
};
use tracing::{Instrument, debug, debug_span, info, info_span, warn};

use crate::{limits, service::Enclave};

/// Limits that keep one peer from exhausting the enclave.
///
/// # Memory
///
/// At worst (every frame at `max_frame`, answers as large), the server holds about
/// `max_connections × (3 × max_frame + 80 KiB) + max_in_flight_total × 2 × max_frame`
/// ([`crate::limits::worst_case`]): per connection, the frame being read (and its decoded form)
/// and the writer's buffer; per request in flight, the request and its answer until the writer
/// takes it. The defaults keep this within the memory budget of [`crate::limits`] (509.25 of
/// 512 MiB, half the enclave's 1 GiB).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Concurrent connections. When all are taken, a newcomer gets the slot of the connection
    /// idle the longest; when every connection has a request in flight, it is closed on accept.
    pub max_connections: usize,
    /// Requests in flight per connection; further frames are not read until one finishes.
    pub max_in_flight: usize,
    /// Requests in flight across all connections. When it is reached, further requests are
    /// answered at once with [`ErrorCode::Busy`] instead of waiting, and reading goes on.
    pub max_in_flight_total: usize,
    /// Largest frame.
    pub max_frame: usize,
    /// Time for a started frame to arrive completely, for an answer to be written, and for the
    /// hello after connecting.
    pub io_timeout: Duration,
    /// How long a connection may stay idle (no request read, none in flight) before it is
    /// closed. Checked every quarter of it (at most every second), so a connection is closed
    /// at most that much later.
    pub idle_timeout: Duration,
    /// On shutdown, how long requests in flight get to finish and have their answers written;
    /// connections still open after it are closed. Longer than the enclave's KMS operation
    /// timeout ([`limits::KMS_OPERATION_TIMEOUT`]), so that a request waiting for KMS gets its
    /// answer.
    pub drain_timeout: Duration,
}

impl Default for ServerLimits {
    /// The defaults of [`crate::limits`].
    fn default() -> Self {
        Self {
            max_connections: limits::MAX_CONNECTIONS,
            max_in_flight: limits::MAX_IN_FLIGHT,
            max_in_flight_total: limits::MAX_IN_FLIGHT_TOTAL,
            max_frame: limits::MAX_FRAME,
            io_timeout: limits::IO_TIMEOUT,
            idle_timeout: limits::IDLE_TIMEOUT,
            drain_timeout: limits::DRAIN_TIMEOUT,
        }
    }
}

/// What every connection shares.
#[derive(Clone)]
struct Shared {
    enclave: Arc<Enclave>,
    limits: ServerLimits,
    /// Permits for requests in flight across all connections.
    budget: Arc<Semaphore>,
    /// Becomes true when the server shuts down.
    draining: watch::Receiver<bool>,
}

/// Serves `listener` until `shutdown` completes, then drains: stops accepting and reading new
/// requests, lets the requests in flight finish and their answers be written within
/// [`ServerLimits::drain_timeout`], closes what is left, and returns.
pub async fn serve(
    listener: Listener,
    enclave: Arc<Enclave>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Registry::default());
    let (drain, draining) = watch::channel(false);
    let shared = Shared {
        enclave: Arc::clone(&enclave),
        limits,
        budget: Arc::new(Semaphore::new(
            limits.max_in_flight_total.clamp(1, Semaphore::MAX_PERMITS),
        )),
        draining,
    };
    let sweeper = tokio::spawn({
        let enclave = Arc::clone(&enclave);
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                enclave.evict_expired();
            }
        }
    });
    let idle_sweeper = tokio::spawn({
        let open = Arc::clone(&open);
        async move {
            let every =
                (limits.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                open.close_idle(limits.idle_timeout);
            }
        }
    });
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(ticket) = open.admit(limits.max_connections, limits.max_in_flight) else {
            warn!(%peer, limit = limits.max_connections, "connection refused: at the connection limit, every connection busy");
            continue;
        };
        let shared = shared.clone();
        let id = ticket.id;
        let task = connections.spawn(
            async move {
                debug!("connected");
                let reason = connection(stream, shared, &ticket.activity).await;
                debug!(%reason, "disconnected");
                drop(ticket);
            }
            .instrument(info_span!("connection", %peer)),
        );
        open.set_task(id, task);
    }
    // New connections are refused from here on.
    drop(listener);
    drain.send_replace(true);
    if !connections.is_empty() {
        info!(
            connections = connections.len(),
            "shutting down: finishing the requests in flight"
        );
        let drained = tokio::time::timeout(limits.drain_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                connections = connections.len(),
                drain_timeout = ?limits.drain_timeout,
                "requests still in flight at the end of the drain; closing their connections"
            );
            connections.shutdown().await;
        }
    }
    sweeper.abort();
    idle_sweeper.abort();
    info!("server stopped");
}

/// Aborts the task when dropped: a connection's writer ends with the connection.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the server knows of a connection's traffic, to close it when idle.
struct Activity {
    /// When the connection was opened.
    opened: Instant,
    /// When a request was last read or finished, in microseconds since `opened`.
    last: AtomicU64,
    /// The connection's requests in flight: each holds a permit, and the reader holds one while
    /// it waits for a frame.
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
}

impl Activity {
    fn new(max_in_flight: usize) -> Self {
        Self {
            opened: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
        }
    }

    /// Records traffic: a request read or finished.
    fn touch(&self) {
        let since = u64::try_from(self.opened.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last.store(since, Ordering::Relaxed);
    }

    /// How long the connection has been idle; `None` while a request is in flight.
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.in_flight.available_permits() + 1 < self.max_in_flight {
            return None;
        }
        let last = self.opened + Duration::from_micros(self.last.load(Ordering::Relaxed));
        Some(now.saturating_duration_since(last))
    }
}

/// The open connections, for the idle limit and for making room for newcomers.
#[derive(Default)]
struct Registry {
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next: u64,
    connections: HashMap<u64, Tracked>,
}

struct Tracked {
    activity: Arc<Activity>,
    /// Set right after the connection's task is spawned.
    task: Option<AbortHandle>,
}

/// A connection's place in the [`Registry`]; dropped when its task ends (or is aborted).
struct Ticket {
    id: u64,
    activity: Arc<Activity>,
    registry: Arc<Registry>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.registry.lock().connections.remove(&self.id);
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Open> {
        lock(&self.open)
    }

    /// Registers a new connection. When `max` are open, closes the one idle the longest to make
    /// room; when none is idle (every connection has a request in flight), refuses (`None`).
    ///
    /// Why the longest idle, whatever its idle time: any process on the parent can connect, and
    /// nothing tells the proxy's connections from others, so no share of the slots can be
    /// reserved for it. A connection that carries requests is never taken; the proxy's idle ones
    /// send a keep-alive well inside the idle limit, so silent peers are always idle longer than
    /// they are. This holds against silent peers only: peers that keep every slot busy with
    /// requests are never evicted, and new ones evict the proxy's idle connections, so a busy
    /// flood can still keep the proxy out (a known gap, issue 17: the enclave would need to
    /// recognise the proxy, e.g. by a privileged vsock source port).
    fn admit(self: &Arc<Self>, max: usize, max_in_flight: usize) -> Option<Ticket> {
        let mut open = self.lock();
        if open.connections.len() >= max {
            let now = Instant::now();
            let (&victim, idle) = open
                .connections
                .iter()
                .filter(|(_, tracked)| tracked.task.is_some())
                .filter_map(|(id, tracked)| Some((id, tracked.activity.idle_for(now)?)))
                .max_by_key(|(_, idle)| *idle)?;
            if let Some(tracked) = open.connections.remove(&victim)
                && let Some(task) = tracked.task
            {
                task.abort();
            }
            info!(idle = ?idle, "at the connection limit: closing the connection idle the longest");
        }
        let id = open.next;
        open.next = open.next.wrapping_add(1);
        let activity = Arc::new(Activity::new(max_in_flight.max(1)));
        open.connections.insert(
            id,
            Tracked {
                activity: Arc::clone(&activity),
                task: None,
            },
        );
        Some(Ticket {
            id,
            activity,
            registry: Arc::clone(self),
        })
    }

    /// Records the task of connection `id`. Called after spawning it, outside the lock: the
    /// task's [`Ticket`] takes the lock when dropped.
    fn set_task(&self, id: u64, task: AbortHandle) {
        if let Some(tracked) = self.lock().connections.get_mut(&id) {
            tracked.task = Some(task);
        }
    }

    /// Closes the connections idle for longer than `limit`.
    fn close_idle(&self, limit: Duration) {
        let now = Instant::now();
        let mut open = self.lock();
        open.connections.retain(|_, tracked| {
            let idle = tracked
                .activity
                .idle_for(now)
                .is_some_and(|idle| idle > limit);
            match &tracked.task {
                Some(task) if idle => {
                    debug!(?limit, "closing an idle connection");
                    task.abort();
                    false
                }
                _ => true,
            }
        });
    }
}

/// Serves one connection; returns why it ended.
async fn connection(stream: Stream, shared: Shared, activity: &Arc<Activity>) -> String {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = frame::buffered(reader);
    let limits = shared.limits;
    let mut draining = shared.draining.clone();
    if let Err(reason) = handshake(
        &mut reader,
        &mut writer,
        &shared.enclave,
        limits,
        &mut draining,
    )
    .await
    {
        return reason;
    }

    // Answers go through one writer task, in the order they finish.
    let (answers, mut to_write) = mpsc::channel::<Answer>(limits.max_in_flight);
    let mut writer_task = AbortOnDrop(tokio::spawn(async move {
        match frame::write_queued(
            &mut writer,
            &mut to_write,
            limits.max_frame,
            limits.io_timeout,
        )
        .await
        {
            Ok(()) => "closed".to_owned(),
            Err(FrameError::NotRead(_)) => "the peer does not read its answers".to_owned(),
            Err(error) => error.to_string(),
        }
    }));
    // A writer that stops (the peer does not read its answers) ends the whole connection, the
    // reader too: otherwise the reader would keep the slot until the peer sends again.
    let read = tokio::select! {
        read = read_requests(&mut reader, &answers, activity, shared) => read,
        written = &mut writer_task.0 => {
            return written.unwrap_or_else(|error| error.to_string());
        }
    };
    let Err(reason) = read;
    drop(answers);
    // In-flight requests finish and their answers are written, unless the peer is gone. During
    // a shutdown, `serve` bounds the wait.
    let _ = (&mut writer_task.0).await;
    reason
}

/// Waits for the peer's hello (within [`ServerLimits::io_timeout`]) and answers it. `Ok` when
/// the peer was welcomed; otherwise why the connection ends.
async fn handshake<R: AsyncRead + Unpin, W: AsyncWrite>(
    reader: &mut R,
    writer: &mut WriteHalf<W>,
    enclave: &Enclave,
    limits: ServerLimits,
    draining: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let hello = tokio::select! {
        hello = tokio::time::timeout(
            limits.io_timeout,
            frame::read_frame(reader, limits.max_frame, limits.io_timeout),
        ) => hello,
        _ = draining.wait_for(|draining| *draining) => return Err("shutting down".into()),
    };
    let hello = match hello {
        Err(_) => return Err("no hello in time".into()),
        Ok(Err(error)) => return Err(error.to_string()),
        Ok(Ok(bytes)) => bytes,
    };
    let reply = match codec::decode::<Hello>(&hello) {
        Ok(hello) if hello.versions.contains(&PROTOCOL_VERSION) => {
            // The name is the peer's: log a bounded, printable prefix of it.
            let client: String = hello
                .client
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect();
            info!(%client, version = PROTOCOL_VERSION, "hello");
            HelloReply::Welcome(enclave.welcome(PROTOCOL_VERSION))
        }
        Ok(hello) => HelloReply::Refused(ErrorBody::new(
            ErrorCode::UnsupportedProtocol,
            format!(
                "the enclave speaks protocol version {PROTOCOL_VERSION}; the client offered {:?}",
                hello.versions
            ),
        )),
        Err(error) => HelloReply::Refused(ErrorBody::new(
            ErrorCode::InvalidRequest,
            format!("expected a hello: {error}"),
        )),
    };
    let welcomed = matches!(reply, HelloReply::Welcome(_));
    write(writer, &reply, limits).await?;
    if welcomed {
        Ok(())
    } else {
        Err("hello refused".into())
    }
}

/// Reads requests and starts each, until the peer closes, a frame is unusable, the writer stops
/// or the server shuts down; returns why. Answers are queued on `answers`.
async fn read_requests<R: AsyncRead + Unpin>(
    reader: &mut R,
    answers: &mpsc::Sender<Answer>,
    activity: &Arc<Activity>,
    shared: Shared,
) -> Result<Infallible, String> {
    let Shared {
        enclave,
        limits,
        budget,
        mut draining,
    } = shared;
    let in_flight = &activity.in_flight;
    // The ids of the requests in flight: a second request with one of them is refused.
    let ids = Arc::new(Mutex::new(HashSet::new()));
    // One wait for the shutdown for the life of the connection (not one per request).
    let shutting_down = async move {
        let _ = draining.wait_for(|draining| *draining).await;
    };
    tokio::pin!(shutting_down);

    loop {
        let Ok(permit) = Arc::clone(in_flight).acquire_owned().await else {
            return Err("closing".to_owned());
        };
        // A frame cut short by the shutdown is dropped with the connection: its request was
        // never received.
        let read = tokio::select! {
            read = frame::read_frame(reader, limits.max_frame, limits.io_timeout) => read,
            () = &mut shutting_down => return Err("shutting down".to_owned()),
        };
        let bytes = match read {
            Ok(bytes) => bytes,
            Err(FrameError::Closed) => return Err("closed by the peer".to_owned()),
            Err(error) => return Err(error.to_string()),
        };
        activity.touch();
        let request = match codec::decode::<Request>(&bytes) {
            Ok(request) => request,
            // The frame is a request whose body does not decode: answer, keep serving.
            Err(error) => match request_id(&bytes) {
                Some(id) => {
                    let message = error.to_string();
                    queue(
                        answers,
                        error_answer(id, ErrorCode::InvalidRequest, message),
                    )
                    .await?;
                    continue;
                }
                None => return Err(format!("undecodable frame: {error}")),
            },
        };
        // The peer gets two answers with this id, this refusal and the first request's: the
        // message names the id so that the refusal can be told apart.
        if !lock(&ids).insert(request.id) {
            let message = format!(
                "request id {} is already in flight on this connection; use a new id for each \
                 request",
                request.id
            );
            queue(
                answers,
                error_answer(request.id, ErrorCode::InvalidRequest, message),
            )
            .await?;
            continue;
        }
        if matches!(request.body, RequestBody::SetCredentials(_)) {
            // Handled before the next frame is read, so that every later request on this
            // connection sees the new credentials. Outside the enclave-wide budget: it is
            // quick, one at a time per connection, and the enclave is useless without it.
            let body = enclave.handle(request.body).await;
            let id = request.id;
            let response = Response {
                id,
                body,
                receipt: None,
            };
            lock(&ids).remove(&id);
            queue(answers, encode_response(response)).await?;
            drop(permit);
            continue;
        }
        let Ok(budgeted) = Arc::clone(&budget).try_acquire_owned() else {
            // At the enclave-wide limit: refuse at once rather than queue, and keep reading, so
            // that a flood costs a short answer per request and nothing more.
            debug!(id = request.id, limit = limits.max_in_flight_total, "busy");
            let message = format!(
                "the enclave is at its limit of {} requests in flight; retry later",
                limits.max_in_flight_total
            );
            lock(&ids).remove(&request.id);
            queue(answers, error_answer(request.id, ErrorCode::Busy, message)).await?;
            continue;
        };
        let ids = Arc::clone(&ids);
        let activity = Arc::clone(activity);
        let enclave = Arc::clone(&enclave);
        let answers = answers.clone();
        let (id, kind) = (request.id, request.body.kind());
        tokio::spawn(
            async move {
                let answer = handle(&enclave, request, limits.max_frame).await;
                // Before the answer goes: once the peer has it, it may use the id again.
                lock(&ids).remove(&id);
                activity.touch();
                // The enclave-wide permit goes with the answer, so that answers waiting for a
                // slow peer count against the memory budget like requests being handled.
                let _ = answers
                    .send(Answer {
                        bytes: answer,
                        _budgeted: Some(budgeted),
                    })
                    .await;
                drop(permit);
            }
            // A `debug` span: an enabled span costs a few hundred nanoseconds per request, and
            // the request id is the connection's own counter, of little use at `info`.
            .instrument(debug_span!("request", id, kind)),
        );
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something did, the data is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a connection ends when its writer task has stopped.
const WRITER_STOPPED: &str = "writer stopped";

/// An encoded answer queued for the writer task, with the enclave-wide in-flight permit of its
/// request (none for the short error answers given without one), released when the writer has
/// copied the answer into its buffer.
struct Answer {
    bytes: Vec<u8>,
    _budgeted: Option<OwnedSemaphorePermit>,
}

impl AsRef<[u8]> for Answer {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Queues `answer` (one that holds no permit) for the writer task; fails when the writer has
/// stopped.
async fn queue(answers: &mpsc::Sender<Answer>, answer: Vec<u8>) -> Result<(), String> {
    answers
        .send(Answer {
            bytes: answer,
            _budgeted: None,
        })
        .await
        .map_err(|_| WRITER_STOPPED.to_owned())
}

/// Handles `request` and encodes its answer, no larger than `max_frame`.
async fn handle(enclave: &Enclave, request: Request, max_frame: usize) -> Vec<u8> {
    let id = request.id;
    let (body, receipt) = enclave.answer(request.body).await;
    if let ResponseBody::Error(error) = &body {
        debug!(code = error.code.as_str(), "refused");
    }
    let answer = encode_response(Response { id, body, receipt });
    if answer.len() <= max_frame {
        return answer;
    }
    // Sending it would close the connection for every request on it.
    let message = format!(
        "the answer ({} bytes) exceeds the {max_frame}-byte frame limit; send fewer or smaller \
         payloads per request",
        answer.len()
    );
    error_answer(id, ErrorCode::InvalidRequest, message)
}

/// The encoded error answer `code`, saying `message`, to request `id`.
fn error_answer(id: u64, code: ErrorCode, message: String) -> Vec<u8> {
    encode_response(Response {
        id,
        body: ResponseBody::Error(ErrorBody::new(code, message)),
        receipt: None,
    })
}

async fn write<T: serde::Serialize, W: AsyncWrite>(
    writer: &mut WriteHalf<W>,
    message: &T,
    limits: ServerLimits,
) -> Result<(), String> {
    let bytes = codec::encode(message).map_err(|e| e.to_string())?;
    tokio::time::timeout(
        limits.io_timeout,
        frame::write_frame(writer, &bytes, limits.max_frame),
    )
    .await
    .map_err(|_| "the peer does not read".to_owned())?
    .map_err(|e| e.to_string())
}

fn encode_response(response: Response) -> Vec<u8> {
    let id = response.id;
    codec::encode(&response).unwrap_or_else(|error: CodecError| {
        // Our own types always encode; if one ever does not, say so instead of going silent.
        codec::encode(&Response {
            id,
            body: ResponseBody::Error(ErrorBody::new(ErrorCode::Internal, error.to_string())),
            receipt: None,
        })
        .unwrap_or_default()
    })
}

/// The id of a frame that is a request map but whose body did not decode.
fn request_id(bytes: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: u64,
        #[serde(rename = "body")]
        _body: serde::de::IgnoredAny,
    }
    codec::decode::<IdOnly>(bytes)
        .ok()
        .map(|request| request.id)
}
