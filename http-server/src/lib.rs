//! nitro-signer's HTTP/1 server for an axum [`Router`], hardened against many, slow or stalled
//! clients: the parent proxy and the KMS emulator both serve through [`serve`].
//!
//! `axum::serve` sets no header-read timeout and no connection cap, so a client that sends half
//! a request header (slowloris) or opens connections without end holds sockets and file
//! descriptors for ever. Here every way a client can hold a connection is bounded:
//!
//! - connections served at once ([`ServerLimits::max_connections`]): a permit is taken *before*
//!   `accept`, so further clients wait in the kernel's listen backlog and cost nothing here;
//! - waiting for a request's head, including an idle keep-alive connection
//!   ([`ServerLimits::header_read_timeout`]); under pressure, a connection's first head
//!   ([`ServerLimits::pressure_header_timeout`], see "Slow clients under pressure" below), and the head's size ([`MAX_HEAD_BYTES`], 64 KiB;
//!   a larger one is answered 431);
//! - not reading a response ([`ServerLimits::write_timeout`]);
//! - the request itself ([`ServerLimits::request_timeout`]) and its body
//!   ([`ServerLimits::max_body_bytes`]), which the application enforces in its own protocol (see
//!   the fields' docs);
//! - shutdown: idle connections close at once, busy ones after their answer, and [`serve`]
//!   returns within the request and write timeouts;
//! - the lingering close ([`LINGERING_CLOSE_TIMEOUT`], [`LINGERING_CLOSE_MAX_BYTES`]).
//!
//! # Slow clients under pressure
//!
//! A client that sends its first request head a byte at a time (slowloris) holds a connection
//! for the whole header-read timeout; enough of them fill the cap, and new clients wait in the
//! backlog for up to that timeout. Two rules keep the server reachable:
//!
//! - Connections that have not yet sent a whole request head ("new" connections) may hold at
//!   most three quarters of [`ServerLimits::max_connections`] ([`new_connection_limit`]): the
//!   rest is kept for connections that have (keep-alive clients), and a new connection is not
//!   accepted while the new share is full.
//! - When new connections hold half of their share or more, a new connection that has not sent
//!   a whole head within [`ServerLimits::pressure_header_timeout`] (1 s by default, checked
//!   every [`PRESSURE_CHECK_INTERVAL`]) is closed. A real client sends its head in one packet,
//!   within milliseconds; slow senders are cut after about a second instead of ten, and the
//!   clients behind them in the backlog get their turn.
//!
//! Once a connection has sent one whole head it is no longer new: it waits for later heads (and
//! idles between requests) within [`ServerLimits::header_read_timeout`], as before.
//!
//! # Lingering close
//!
//! When the server ends a connection while the client may still be sending (a body answered
//! with `413` before it was all read, a request answered early, `Connection: close`), closing
//! the socket with unread data makes the kernel send a reset: the client's write fails with a
//! broken pipe, and it may never read the answer. As nginx does, the server instead closes its
//! write side once the answer is flushed, then reads and discards what the client still sends
//! until the client closes, for at most [`LINGERING_CLOSE_TIMEOUT`] and
//! [`LINGERING_CLOSE_MAX_BYTES`], and only then closes the socket. The connection keeps its
//! place under [`ServerLimits::max_connections`] meanwhile, and shutdown cuts it short. A client
//! that has already closed costs nothing (the first read sees its end of stream); connections
//! that end in an error (timeouts, resets, malformed requests) close at once, as before.
//!
//! This gives a client no new way to hold a connection for long: lingering follows a whole
//! request, and lasts less than the (default) [`ServerLimits::header_read_timeout`] a client
//! can already spend sending nothing.
//!
//! # Layout
//!
//! - [`ServerLimits`] and [`serve`]: the accept loop, its connection cap and the drain.
//! - `serve_connection`: one connection under hyper's HTTP/1 with the timeouts, then `linger`.
//! - `WriteTimeout`: the stream wrapper that fails a write that makes no progress.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{Router, extract::DefaultBodyLimit};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    time::{Instant, Sleep},
};
use tracing::{debug, warn};

/// Limits that keep many, slow or stalled clients from exhausting the server. Every way a
/// client can hold a connection is bounded: waiting for a request's headers (including idle
/// keep-alive), sending its body, and not reading its response (and the lingering close, by
/// [`LINGERING_CLOSE_TIMEOUT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once. Further clients wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Time for a request's headers to arrive, from the start of the connection or the end of
    /// the previous response; an idle keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
    /// Time a new connection (one that has not yet sent a whole request head) may take to send
    /// its first head while new connections hold half of their share of the cap or more; see
    /// the crate docs, "Slow clients under pressure". At or above `header_read_timeout`, this
    /// rule is off.
    pub pressure_header_timeout: Duration,
    /// Time from the end of the headers to the answer, body included.
    ///
    /// [`serve`] does not cut requests off itself: the application answers a request that runs
    /// out of time in its own protocol, and logs and counts it like any other answer (an axum
    /// middleware or handler with `tokio::time::timeout`). [`serve`] counts on it being
    /// enforced: it bounds the shutdown drain.
    pub request_timeout: Duration,
    /// Time a response write may make no progress (a client that does not read) before the
    /// connection is closed.
    pub write_timeout: Duration,
    /// Largest request body, in bytes: the default limit of axum's body extractors
    /// (`DefaultBodyLimit`) on every route. The application answers a body over it in its own
    /// protocol.
    pub max_body_bytes: usize,
}

impl Default for ServerLimits {
    /// 256 connections, 10 s for headers (1 s for a first head under pressure), 30 s per
    /// request, 10 s write stall, 1 MiB bodies.
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            pressure_header_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// Largest request head (request line, headers and the blank line that ends them), in bytes:
/// nitro-signer's clients send a few hundred bytes of headers (SigV4-signed requests included).
/// A larger head is answered `431 Request Header Fields Too Large` and the connection closed.
///
/// Enforced with hyper's `max_header_size`: its `max_buf_size` alone does not hold, because the
/// read buffer grows by whole allocations and a read fills all of its spare capacity (a 114 KB
/// head was served with `max_buf_size` at 64 KiB).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How often a new connection past [`ServerLimits::pressure_header_timeout`] checks whether the
/// server is under pressure.
pub const PRESSURE_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Most connections that have not yet sent a whole request head, for a cap of `max_connections`:
/// three quarters of it (all of it for a cap under 4), so that a quarter is kept for connections
/// that have.
pub fn new_connection_limit(max_connections: usize) -> usize {
    (max_connections - max_connections / 4).max(1)
}

/// Pause after a failed `accept` (e.g. out of file descriptors) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Longest a connection lingers after the server has answered and closed its write side:
/// enough for a client on the same network to finish writing a body several MiB long and
/// read the answer; short enough that lingering holds few connections. See the crate docs.
pub const LINGERING_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Most a lingering connection reads and discards: a body several times the default 1 MiB
/// limit. A client that sends more gets a reset, as without the lingering close.
pub const LINGERING_CLOSE_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Serves `app` over HTTP/1 on `listener` until `shutdown` completes, then stops accepting,
/// lets requests in flight finish (each is bounded by `limits`) and returns.
///
/// Connections beyond [`ServerLimits::max_connections`] are not accepted until one closes.
/// Connection errors (timeouts, resets, malformed requests) are logged at debug level and
/// close that connection only; a failed `accept` is logged and retried after a pause.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    // Within what the semaphore and its drain (`acquire_many` takes a u32) can count.
    let most = Semaphore::MAX_PERMITS.min(usize::try_from(u32::MAX).unwrap_or(usize::MAX));
    let max_connections = limits.max_connections.clamp(1, most);
    // The outermost layer: a route's own `DefaultBodyLimit` still takes precedence.
    let app = app.layer(DefaultBodyLimit::max(limits.max_body_bytes));
    let connections = Arc::new(Semaphore::new(max_connections));
    let pressure = Arc::new(Pressure::new(
        new_connection_limit(max_connections),
        &limits,
    ));
    let (stop, stopping) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        // A permit before `accept`: beyond the limit, clients wait in the kernel's backlog
        // instead of costing a task and buffers here.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        // And a place among the new connections, given back once a whole head has come.
        let new_permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&pressure.new_connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let stopping = stopping.clone();
        let pressure = Arc::clone(&pressure);
        tokio::spawn(async move {
            serve_connection(stream, peer, app, limits, &pressure, new_permit, stopping).await;
            drop(permit);
        });
    }
    // Stop accepting now: clients still in the backlog are refused rather than left waiting.
    drop(listener);
    // Idle connections close at once; busy ones after their answer, which the limits bound.
    drop(stop);
    let drain = limits.request_timeout + limits.write_timeout;
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, connections.acquire_many(all))
        .await
        .is_err()
    {
        warn!("connections still open after the shutdown drain; abandoning them");
    }
}

/// The new connections' share of the cap, and when they are under pressure.
struct Pressure {
    /// One permit per new connection (see the crate docs).
    new_connections: Arc<Semaphore>,
    /// The size of that share.
    limit: usize,
    /// [`ServerLimits::pressure_header_timeout`], or `None` when the rule is off.
    timeout: Option<Duration>,
}

impl Pressure {
    fn new(limit: usize, limits: &ServerLimits) -> Self {
        Self {
            new_connections: Arc::new(Semaphore::new(limit)),
            limit,
            timeout: (limits.pressure_header_timeout < limits.header_read_timeout)
                .then_some(limits.pressure_header_timeout),
        }
    }

    /// Whether new connections hold half of their share or more.
    fn on(&self) -> bool {
        let held = self
            .limit
            .saturating_sub(self.new_connections.available_permits());
        held.saturating_mul(2) >= self.limit
    }

    /// Completes when a connection that started at `started` and still holds its place among
    /// the new connections (`slot` is `Some`) should be closed: it is past the pressure timeout
    /// and the server is under pressure. Never completes once the connection has sent a head.
    async fn cut(&self, started: Instant, slot: &Mutex<Option<OwnedSemaphorePermit>>) {
        let Some(timeout) = self.timeout else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(started + timeout).await;
        loop {
            let new = slot.lock().map(|held| held.is_some()).unwrap_or(false);
            if !new {
                return std::future::pending().await;
            }
            if self.on() {
                return;
            }
            tokio::time::sleep(PRESSURE_CHECK_INTERVAL).await;
        }
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ServerLimits,
    pressure: &Pressure,
    new_permit: OwnedSemaphorePermit,
    mut stopping: watch::Receiver<()>,
) {
    let started = Instant::now();
    // Answers are small and written at once; do not hold them back.
    let _ = stream.set_nodelay(true);
    // Held while the connection is new; hyper calls the service once a whole head has come.
    let slot = Arc::new(Mutex::new(Some(new_permit)));
    let service = {
        let slot = Arc::clone(&slot);
        let app = TowerToHyperService::new(app);
        hyper::service::service_fn(move |request| {
            if let Ok(mut held) = slot.lock() {
                held.take();
            }
            hyper::service::Service::call(&app, request)
        })
    };
    let result = {
        // hyper only borrows the stream, which is left for the lingering close.
        let io = TokioIo::new(WriteTimeout::new(&mut stream, limits.write_timeout));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_header_size(MAX_HEAD_BYTES)
            .max_buf_size(MAX_HEAD_BYTES)
            .keep_alive(true);
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => result,
            () = pressure.cut(started, &slot) => {
                debug!(%peer, "closed: no whole request head in time while under pressure");
                return;
            }
            _ = stopping.changed() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    };
    match result {
        // hyper has flushed the last answer and shut down the write side (its FIN follows
        // the answer): the client may still be sending.
        Ok(()) => linger(&mut stream, &mut stopping).await,
        // Timeouts, resets and malformed requests: the client's problem, not the server's.
        // No lingering: the client is stalled, gone or not speaking HTTP.
        Err(e) => debug!(%peer, error = %e, "connection closed"),
    }
}

/// The lingering close (see the crate docs): reads and discards what the client still sends
/// until it closes, or [`LINGERING_CLOSE_MAX_BYTES`] have come, [`LINGERING_CLOSE_TIMEOUT`] has
/// passed or shutdown has begun, whichever is first. Without it, closing a socket with unread
/// data resets the connection, and the client may lose the answer it has not read yet.
async fn linger(stream: &mut TcpStream, stopping: &mut watch::Receiver<()>) {
    let mut rest = AsyncReadExt::take(&mut *stream, LINGERING_CLOSE_MAX_BYTES);
    let mut sink = tokio::io::sink();
    let discard = tokio::io::copy(&mut rest, &mut sink);
    tokio::select! {
        // An end of stream, a reset or the byte bound: done either way.
        _ = tokio::time::timeout(LINGERING_CLOSE_TIMEOUT, discard) => {}
        // Already closed if shutdown began earlier: the drain does not wait for lingering.
        _ = stopping.changed() => {}
    }
}

/// A stream whose writes fail once they have made no progress for a while, so that a client
/// that stops reading its responses cannot pin a connection (hyper has no write timeout).
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled_since: None,
        }
    }

    /// Passes a write's progress through; a write that stays pending past the timeout fails.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled_since = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let stall = self
                    .stalled_since
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::WriteTimeout;

    #[tokio::test]
    async fn a_write_that_makes_no_progress_fails_after_the_timeout() {
        let (near, mut far) = tokio::io::duplex(64);
        let timeout = Duration::from_millis(200);
        let mut stream = WriteTimeout::new(near, timeout);
        // Progress resets the clock: writes interleaved with reads keep going past it.
        for _ in 0..4 {
            stream.write_all(&[7u8; 64]).await.unwrap();
            tokio::time::sleep(timeout / 2).await;
            let mut buf = [0u8; 64];
            far.read_exact(&mut buf).await.unwrap();
        }
        // A peer that stops reading: the write fails instead of waiting forever.
        let started = Instant::now();
        let error = stream.write_all(&[7u8; 1024]).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= timeout);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
