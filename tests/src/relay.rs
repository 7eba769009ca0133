//! A fault-injecting TCP relay for HTTP/1.1 traffic to KMS: it passes traffic through, or makes
//! KMS unreachable (new connections closed at once, open ones cut), slow (answers held back), or
//! failing (every request answered by the relay itself with a KMS JSON 1.1 error), and counts the
//! attempts that meet a fault.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// What the relay does with the enclave's KMS traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes pass through to the emulator.
    Pass,
    /// KMS unreachable: new connections are closed as soon as they are accepted.
    Down,
    /// Each request reaches the emulator, but its answer is held back this long.
    Slow(Duration),
    /// Every request is answered by the relay with this KMS error.
    Errors(Fault),
}

/// A KMS error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `500 KMSInternalException`.
    Internal,
    /// `400 ThrottlingException`.
    Throttling,
}

impl Fault {
    /// The whole HTTP answer, as AWS sends JSON 1.1 protocol errors (`x-amzn-ErrorType` and
    /// `__type`).
    pub fn response(self, request_number: usize) -> Vec<u8> {
        let (status, error_type) = match self {
            Self::Internal => ("500 Internal Server Error", "KMSInternalException"),
            Self::Throttling => ("400 Bad Request", "ThrottlingException"),
        };
        let body =
            format!(r#"{{"__type":"{error_type}","message":"injected by the test's KMS relay"}}"#);
        format!(
            "HTTP/1.1 {status}\r\nx-amzn-RequestId: fault-{request_number}\r\n\
             x-amzn-ErrorType: {error_type}:http://internal.amazon.com/coral/com.amazonaws.kms/\r\n\
             Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// A TCP relay in front of the KMS emulator. Changing the mode cuts every open connection, so
/// the enclave's pooled connections cannot bypass a new fault.
pub struct Relay {
    address: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Attempts that met a fault since the last mode change: connections closed while down,
    /// requests held while slow, requests answered with an error.
    faulted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on a fresh loopback port, passing traffic through to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (mode, modes) = watch::channel(Mode::Pass);
        let faulted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&faulted);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(relay_connection(
                    client,
                    upstream,
                    modes.clone(),
                    Arc::clone(&counter),
                ));
            }
        });
        Self {
            address,
            mode,
            faulted,
            task,
        }
    }

    /// `http://` and its address: the KMS endpoint to give the client.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Switches to `mode`, cutting every open connection, and resets the fault count.
    pub fn set(&self, mode: Mode) {
        self.faulted.store(0, Ordering::SeqCst);
        self.mode.send_replace(mode);
    }

    /// Attempts that met the fault since the last call (or mode change).
    pub fn take_faulted(&self) -> usize {
        self.faulted.swap(0, Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay_connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut modes: watch::Receiver<Mode>,
    faulted: Arc<AtomicUsize>,
) {
    let mode = *modes.borrow_and_update();
    let work = async {
        let mut pending = Vec::new();
        match mode {
            Mode::Pass => {
                if let Ok(mut server) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
                // Upstream unreachable (emulator stopped): the client sees its connection close.
            }
            Mode::Down => {
                faulted.fetch_add(1, Ordering::SeqCst);
            }
            Mode::Slow(delay) => {
                let Some(request) = read_request(&mut client, &mut pending).await else {
                    return;
                };
                faulted.fetch_add(1, Ordering::SeqCst);
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    return;
                };
                if server.write_all(&request).await.is_err() {
                    return;
                }
                // KMS has the request; its answer comes late.
                tokio::time::sleep(delay).await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
            Mode::Errors(fault) => {
                while read_request(&mut client, &mut pending).await.is_some() {
                    let number = faulted.fetch_add(1, Ordering::SeqCst);
                    if client.write_all(&fault.response(number)).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        () = work => {}
        _ = modes.changed() => {}
    }
}

/// One HTTP/1.1 request (head and `Content-Length` body) from `stream`, with `pending` holding
/// bytes read past the previous one. `None` when the peer closes.
async fn read_request(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&pending[..end]).ok()?;
            let length = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let total = end + 4 + length;
            while pending.len() < total {
                read_more(stream, pending).await?;
            }
            return Some(pending.drain(..total).collect());
        }
        read_more(stream, pending).await?;
    }
}

async fn read_more(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            pending.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}
