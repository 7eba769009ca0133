//! The audit log (`--audit-log`): every receipt the proxy receives, appended to a JSON-lines
//! file that a custodian keeps and checks with `nitro-signer audit check`. The line format is
//! `nitro_signer_common::audit`'s; `docs/deploy.md` ("Audit log") says what a log proves.
//!
//! Requests hand their receipt to [`AuditLog::record`], which only queues it (it waits for room
//! when the queue is full, so that no receipt is dropped; it never waits for the disk itself).
//! One writer task then:
//!
//! - puts each boot's receipts back in sequence order ([`Sequencer`]): answers overtake each
//!   other under concurrency. A number still missing after [`REORDER_WINDOW`] is given up on: a
//!   `gap` line says so, and the receipts held behind it are written;
//! - before a boot's first line in a file (and after each proxy start), writes a `boot` line: an
//!   attestation document that binds the receipt key, fetched from the enclave for a fresh nonce;
//! - writes everything pending in one `write` (group commit) on a blocking thread, at most one
//!   write per [`GROUP_INTERVAL`], syncs at most once a second, and rotates the file once it reaches `--audit-log-max-bytes` by renaming it
//!   to `PATH.YYYYMMDDTHHMMSSZ` (never deleting anything);
//! - on start, appends to the existing file, reading its tail to continue each boot's sequence.
//!
//! If the file cannot be written, the writer keeps what it has and retries every second; the
//! queue then fills and receipted requests wait: the proxy stops answering rather than forget.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Seek as _, SeekFrom, Write as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use nitro_signer_client::EnclaveClient;
use nitro_signer_common::{
    attestation::AttestationDocument,
    audit::{self, BootLine, GapLine, Line, ReceiptLine},
    receipt::{RECEIPT_KEY_USER_DATA, Receipt, receipt_key_spki},
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tracing::{error, info, warn};

/// How long a missing sequence number is waited for before a `gap` line gives up on it.
pub(crate) const REORDER_WINDOW: Duration = Duration::from_secs(2);

/// Most receipts held for one boot while a number is missing; past it the writer gives up at
/// once (bounds memory when the proxy misses a receipt under heavy load).
const MAX_HELD: usize = 65_536;

/// Receipts queued between the requests and the writer.
const QUEUE: usize = 8192;

/// How long the writer lets receipts gather after a write before it takes them: bounds the
/// writes (and the writer's wake-ups) to one per interval under load. Requests never wait for
/// it; a receipt reaches the file at most this much later.
const GROUP_INTERVAL: Duration = Duration::from_millis(5);

/// How much of an existing file's end is read on start to continue its boots' sequences.
const TAIL_BYTES: u64 = 1 << 20;

/// How long a boot whose attestation failed waits before the writer asks again.
const ATTEST_RETRY: Duration = Duration::from_secs(30);

/// How often the file is synced to disk while lines are being written.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// How long shutdown waits for the writer to write what it holds.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where requests hand their receipts.
#[derive(Debug, Clone)]
pub(crate) struct AuditLog {
    queue: mpsc::Sender<Receipt>,
}

impl AuditLog {
    /// Queues `receipt` for the log. Waits only when the queue is full.
    pub(crate) async fn record(&self, receipt: Receipt) {
        match self.queue.try_send(receipt) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(receipt)) => {
                // Waits in a task of its own: a request cancelled meanwhile (its timeout, a
                // client gone) still hands its receipt over.
                let queue = self.queue.clone();
                let handed = tokio::spawn(async move { queue.send(receipt).await.is_ok() });
                if !matches!(handed.await, Ok(true)) {
                    error!("the audit log is closed; a receipt was not logged");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                error!("the audit log is closed; a receipt was not logged");
            }
        }
    }
}

/// Fetches an attestation document that binds a receipt key.
pub(crate) trait Attester: Send + Sync + 'static {
    /// A document for `nonce` whose `public_key` is `receipt_key`'s SubjectPublicKeyInfo (the
    /// document is parsed, not verified: checking it is the log reader's job).
    fn attest(
        &self,
        receipt_key: [u8; 32],
        nonce: [u8; 32],
    ) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

impl Attester for EnclaveClient {
    async fn attest(&self, receipt_key: [u8; 32], nonce: [u8; 32]) -> Result<Vec<u8>, String> {
        let answer = EnclaveClient::attest(self, nonce.to_vec())
            .await
            .map_err(|e| e.to_string())?;
        let document = answer.document.into_vec();
        let parsed = AttestationDocument::parse_unverified(&document).map_err(|e| e.to_string())?;
        if parsed.public_key.as_deref() != Some(receipt_key_spki(&receipt_key).as_slice())
            || parsed.user_data.as_deref() != Some(RECEIPT_KEY_USER_DATA)
        {
            return Err(
                "the enclave's document binds another receipt key: that boot has ended, \
                        or the enclave restarted since"
                    .to_owned(),
            );
        }
        if parsed.nonce.as_deref() != Some(nonce.as_slice()) {
            return Err("the enclave's document carries another nonce".to_owned());
        }
        Ok(document)
    }
}

/// What the sequencer releases, in the order to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Out {
    Receipt(Box<ReceiptLine>),
    Gap(GapLine),
}

impl Out {
    fn receipt_key(&self) -> [u8; 32] {
        match self {
            Self::Receipt(line) => line.summary.receipt_key,
            Self::Gap(gap) => gap.receipt_key,
        }
    }

    fn into_line(self) -> Line {
        match self {
            Self::Receipt(line) => Line::Receipt(*line),
            Self::Gap(gap) => Line::Gap(gap),
        }
    }
}

/// One boot's receipts waiting for a missing number.
#[derive(Debug)]
struct Queue {
    /// The next number to write.
    next: u64,
    /// Receipts above `next`, with when they came.
    held: BTreeMap<u64, (Instant, ReceiptLine)>,
    /// Since when `next` is known to be late: when a higher number came.
    blocked_since: Option<Instant>,
}

impl Queue {
    /// Writes the run of held receipts that continues at `next`.
    fn drain(&mut self, out: &mut Vec<Out>) {
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() != self.next {
                break;
            }
            let (_, line) = entry.remove();
            out.push(Out::Receipt(Box::new(line)));
            self.next = self.next.saturating_add(1);
        }
        // The lowest receipt still held came after the new blocker was due.
        self.blocked_since = self.held.first_key_value().map(|(_, (came, _))| *came);
    }

    /// Gives up on the numbers below the lowest held receipt.
    fn give_up(&mut self, receipt_key: [u8; 32], out: &mut Vec<Out>) {
        if let Some(&first) = self.held.keys().next() {
            out.push(Out::Gap(GapLine {
                receipt_key,
                from: self.next,
                to: first - 1,
            }));
            self.next = first;
            self.drain(out);
        }
    }
}

/// Puts receipts back in sequence order per boot, giving up on a missing number after a window.
/// Pure: the caller says what time it is.
#[derive(Debug)]
pub(crate) struct Sequencer {
    window: Duration,
    max_held: usize,
    boots: HashMap<[u8; 32], Queue>,
    /// The last number already in the file, per boot (from the file's tail on start).
    written: HashMap<[u8; 32], u64>,
}

impl Sequencer {
    /// A sequencer continuing after `written` (the last number of each boot in the file).
    pub(crate) fn new(window: Duration, max_held: usize, written: HashMap<[u8; 32], u64>) -> Self {
        Self {
            window,
            max_held,
            boots: HashMap::new(),
            written,
        }
    }

    /// Takes a receipt that came at `now`; what can be written goes to `out`.
    pub(crate) fn push(&mut self, line: ReceiptLine, now: Instant, out: &mut Vec<Out>) {
        let key = line.summary.receipt_key;
        let sequence = line.summary.sequence;
        let next = self
            .written
            .get(&key)
            .map_or(1, |last| last.saturating_add(1));
        let queue = self.boots.entry(key).or_insert_with(|| Queue {
            next,
            held: BTreeMap::new(),
            blocked_since: None,
        });
        if sequence < queue.next || queue.held.contains_key(&sequence) {
            // Too late (a gap line gave up on it) or a duplicate: written as it is, where it
            // is; the checker reports it.
            out.push(Out::Receipt(Box::new(line)));
            return;
        }
        if sequence > queue.next {
            queue.held.insert(sequence, (now, line));
            queue.blocked_since.get_or_insert(now);
            if queue.held.len() > self.max_held {
                queue.give_up(key, out);
            }
            return;
        }
        out.push(Out::Receipt(Box::new(line)));
        queue.next = queue.next.saturating_add(1);
        queue.drain(out);
    }

    /// Gives up on every number that has been missing for the window.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<Out>) {
        for (key, queue) in &mut self.boots {
            while queue
                .blocked_since
                .is_some_and(|since| now.saturating_duration_since(since) >= self.window)
            {
                queue.give_up(*key, out);
            }
        }
    }

    /// When [`Self::expire`] next has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.boots
            .values()
            .filter_map(|queue| queue.blocked_since)
            .min()
            .map(|since| since + self.window)
    }

    /// Gives up on everything missing (shutdown): every held receipt is released.
    pub(crate) fn release_all(&mut self, out: &mut Vec<Out>) {
        for (key, queue) in &mut self.boots {
            while !queue.held.is_empty() {
                queue.give_up(*key, out);
            }
        }
    }
}

/// The log file: appended to, rotated by size.
#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    last_sync: Instant,
    unsynced: bool,
}

/// Opens `path` for appending, owner-only when it is created.
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
}

impl LogFile {
    /// Opens (or creates) the log, and reads the last sequence number of each boot in its tail
    /// (or, when it is empty, in the newest rotated file's).
    fn open(path: &Path, max_bytes: u64) -> io::Result<(Self, HashMap<[u8; 32], u64>)> {
        let mut file = open_append(path)?;
        let metadata = file.metadata()?;
        let size = metadata.len();
        if metadata.permissions().mode() & 0o077 != 0 {
            warn!(
                path = %path.display(),
                "the audit log is readable or writable by others than its owner"
            );
        }
        let tail = if size > 0 {
            read_tail(path)?
        } else {
            match newest_rotated(path)? {
                Some(rotated) => read_tail(&rotated)?,
                None => Vec::new(),
            }
        };
        let mut written = HashMap::new();
        for line in tail.split(|b| *b == b'\n') {
            let (key, last) = match Line::parse(line) {
                Ok(Line::Receipt(receipt)) => {
                    (receipt.summary.receipt_key, receipt.summary.sequence)
                }
                Ok(Line::Gap(gap)) => (gap.receipt_key, gap.to),
                _ => continue,
            };
            let entry = written.entry(key).or_insert(last);
            *entry = (*entry).max(last);
        }
        // A line torn by a crash stays a line of its own (the checker reports it).
        let mut size = size;
        if size > 0 && last_byte(path, size)? != b'\n' {
            file.write_all(b"\n")?;
            size += 1;
        }
        let log = Self {
            path: path.to_owned(),
            file,
            size,
            max_bytes,
            last_sync: Instant::now(),
            unsynced: false,
        };
        Ok((log, written))
    }

    /// Appends `bytes`; on failure, returns what was not written (whole lines or not).
    fn append(&mut self, mut bytes: &[u8]) -> Result<(), (io::Error, Vec<u8>)> {
        while !bytes.is_empty() {
            match self.file.write(bytes) {
                Ok(0) => {
                    let error = io::Error::new(io::ErrorKind::WriteZero, "nothing written");
                    return Err((error, bytes.to_vec()));
                }
                Ok(n) => {
                    bytes = bytes.get(n..).unwrap_or_default();
                    self.size += n as u64;
                    self.unsynced = true;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err((error, bytes.to_vec())),
            }
        }
        Ok(())
    }

    /// Syncs if lines were written and the last sync is older than `interval`.
    fn sync_if_due(&mut self, interval: Duration) -> io::Result<()> {
        if self.unsynced && self.last_sync.elapsed() >= interval {
            self.file.sync_data()?;
            self.unsynced = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Whether the file has reached its size limit.
    fn full(&self) -> bool {
        self.size >= self.max_bytes
    }

    /// Renames the file to `PATH.YYYYMMDDTHHMMSSZ` (`-NNN` added when that name exists) and
    /// starts a new one. Returns the rotated file's name.
    fn rotate(&mut self) -> io::Result<PathBuf> {
        self.file.sync_all()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let stamp = audit::utc_compact(now);
        let mut rotated = suffixed(&self.path, &stamp);
        let mut n = 1;
        while rotated.try_exists()? {
            rotated = suffixed(&self.path, &format!("{stamp}-{n:03}"));
            n += 1;
        }
        fs::rename(&self.path, &rotated)?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        self.unsynced = false;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(rotated)
    }
}

/// `path` with `.suffix` appended to its file name.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// The last [`TAIL_BYTES`] of `path`, from the first line that starts in them.
fn read_tail(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let start = size.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)?;
    if start > 0 {
        let first_line = tail
            .iter()
            .position(|b| *b == b'\n')
            .map_or(tail.len(), |i| i + 1);
        tail.drain(..first_line);
    }
    Ok(tail)
}

/// The last byte of `path`, which is `size` bytes long.
fn last_byte(path: &Path, size: u64) -> io::Result<u8> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(size.saturating_sub(1)))?;
    let mut byte = [0u8; 1];
    file.read_exact(&mut byte)?;
    Ok(byte[0])
}

/// The newest rotated file of `path` (`PATH.YYYYMMDDTHHMMSSZ…`: names sort by time).
fn newest_rotated(path: &Path) -> io::Result<Option<PathBuf>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(None);
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = name.to_owned();
    prefix.push(".");
    let prefix = prefix.as_encoded_bytes();
    let mut newest: Option<std::ffi::OsString> = None;
    for entry in fs::read_dir(dir)? {
        let entry_name = entry?.file_name();
        let rotated = entry_name
            .as_encoded_bytes()
            .strip_prefix(prefix)
            .is_some_and(|stamp| {
                stamp.len() >= 16 && stamp.first().is_some_and(u8::is_ascii_digit)
            });
        if rotated && newest.as_ref().is_none_or(|n| entry_name > *n) {
            newest = Some(entry_name);
        }
    }
    Ok(newest.map(|name| dir.join(name)))
}

/// A boot's attestation, once fetched; or when to try again.
#[derive(Debug)]
enum BootState {
    Attested(BootLine),
    Failed { retry_at: Instant },
}

/// An opened log, not yet written to: [`Self::start`] starts the writer.
#[derive(Debug)]
pub(crate) struct Opened {
    file: LogFile,
    written: HashMap<[u8; 32], u64>,
}

impl Opened {
    /// Opens (or creates, mode 0600) the log at `path`, rotated at `max_bytes`.
    pub(crate) fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        let (file, written) = LogFile::open(path, max_bytes)?;
        info!(path = %path.display(), max_bytes, boots_continued = written.len(), "audit log open");
        Ok(Self { file, written })
    }

    /// Starts the writer task; `attester` fetches boots' attestation documents.
    pub(crate) fn start<A: Attester>(self, attester: A) -> (AuditLog, AuditTask) {
        self.start_with(attester, REORDER_WINDOW)
    }

    fn start_with<A: Attester>(self, attester: A, window: Duration) -> (AuditLog, AuditTask) {
        let (queue, receipts) = mpsc::channel(QUEUE);
        let (close, closed) = oneshot::channel();
        let writer = Writer {
            receipts,
            sequencer: Sequencer::new(window, MAX_HELD, self.written),
            file: Some(self.file),
            attester,
            boots: HashMap::new(),
            in_file: HashSet::new(),
        };
        let task = tokio::spawn(writer.run(closed));
        (
            AuditLog { queue },
            AuditTask {
                close: Some(close),
                task,
            },
        )
    }
}

/// The running writer.
#[derive(Debug)]
pub(crate) struct AuditTask {
    close: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl AuditTask {
    /// Stops taking receipts, writes everything held (giving up on what is still missing) and
    /// syncs the file; waits at most [`CLOSE_TIMEOUT`].
    pub(crate) async fn close(mut self) {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
        match tokio::time::timeout(CLOSE_TIMEOUT, &mut self.task).await {
            Ok(_) => {}
            Err(_) => {
                error!("the audit log writer did not finish in time; receipts it held are lost");
                self.task.abort();
            }
        }
    }
}

struct Writer<A> {
    receipts: mpsc::Receiver<Receipt>,
    sequencer: Sequencer,
    /// `None` only while a write runs on a blocking thread.
    file: Option<LogFile>,
    attester: A,
    boots: HashMap<[u8; 32], BootState>,
    /// Boots whose boot line is in the current file.
    in_file: HashSet<[u8; 32]>,
}

impl<A: Attester> Writer<A> {
    async fn run(mut self, mut closed: oneshot::Receiver<()>) {
        let mut batch = Vec::with_capacity(QUEUE);
        let mut out = Vec::new();
        let mut closing = false;
        loop {
            let deadline = self.sequencer.next_deadline();
            let sleep = tokio::time::sleep_until(
                deadline.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std),
            );
            tokio::select! {
                received = self.receipts.recv_many(&mut batch, QUEUE) => {
                    if received == 0 {
                        break;
                    }
                }
                () = sleep, if deadline.is_some() => {}
                _ = &mut closed, if !closing => {
                    // Requests are over; take what is queued, then stop.
                    closing = true;
                    self.receipts.close();
                }
            }
            let now = Instant::now();
            for receipt in batch.drain(..) {
                match ReceiptLine::new(receipt) {
                    Ok(line) => self.sequencer.push(line, now, &mut out),
                    Err(error) => error!(%error, "the enclave sent a receipt that does not decode"),
                }
            }
            self.sequencer.expire(now, &mut out);
            if !out.is_empty() {
                self.write(&mut out).await;
                // Let receipts gather meanwhile: one write (and one wake-up of this task)
                // per interval under load, instead of one per receipt.
                tokio::time::sleep(GROUP_INTERVAL).await;
            }
        }
        self.sequencer.release_all(&mut out);
        self.write(&mut out).await;
        if let Some(mut file) = self.file.take() {
            let synced =
                tokio::task::spawn_blocking(move || file.sync_if_due(Duration::ZERO)).await;
            if !matches!(synced, Ok(Ok(()))) {
                warn!("the audit log could not be synced on close");
            }
        }
        info!("audit log closed");
    }

    /// The boot line for `key`, fetching the attestation when there is none yet.
    async fn boot_line(&mut self, key: [u8; 32]) -> Option<BootLine> {
        match self.boots.get(&key) {
            Some(BootState::Attested(line)) => return Some(line.clone()),
            Some(BootState::Failed { retry_at }) if Instant::now() < *retry_at => return None,
            _ => {}
        }
        let mut nonce = [0u8; 32];
        if aws_lc_rs::rand::fill(&mut nonce).is_err() {
            error!("no randomness for an attestation nonce");
        }
        match self.attester.attest(key, nonce).await {
            Ok(document) => {
                info!(receipt_key = %audit::hex(&key), "audit log: new boot attested");
                let line = BootLine {
                    receipt_key: key,
                    nonce: nonce.to_vec(),
                    attestation: document,
                };
                self.boots.insert(key, BootState::Attested(line.clone()));
                Some(line)
            }
            Err(error) => {
                warn!(
                    receipt_key = %audit::hex(&key),
                    %error,
                    "audit log: the boot's attestation could not be fetched; its receipts are \
                     logged without it (retrying in 30 s)"
                );
                self.boots.insert(
                    key,
                    BootState::Failed {
                        retry_at: Instant::now() + ATTEST_RETRY,
                    },
                );
                None
            }
        }
    }

    /// Writes `out` (with the boot lines it needs) in one write, then syncs and rotates as due.
    async fn write(&mut self, out: &mut Vec<Out>) {
        if out.is_empty() {
            return;
        }
        let mut bytes = Vec::with_capacity(out.len() * 640);
        for item in out.drain(..) {
            let key = item.receipt_key();
            if !self.in_file.contains(&key)
                && let Some(boot) = self.boot_line(key).await
            {
                Line::Boot(boot).encode_into(&mut bytes);
                bytes.push(b'\n');
                self.in_file.insert(key);
            }
            if let Out::Gap(gap) = &item {
                warn!(
                    receipt_key = %audit::hex(&gap.receipt_key),
                    from = gap.from,
                    to = gap.to,
                    "audit log: receipts missing (never received, or too late); a gap line says so"
                );
            }
            item.into_line().encode_into(&mut bytes);
            bytes.push(b'\n');
        }
        loop {
            let Some(mut file) = self.file.take() else {
                error!("the audit log file is gone; lines not written");
                return;
            };
            let written = tokio::task::spawn_blocking(move || {
                let result = match file.append(&bytes) {
                    Ok(()) => {
                        bytes.clear();
                        Ok(())
                    }
                    Err((error, rest)) => {
                        bytes = rest;
                        Err(error)
                    }
                };
                let rotated = match result {
                    Ok(()) if file.full() => file.rotate().map(Some),
                    Ok(()) => file.sync_if_due(SYNC_INTERVAL).map(|()| None),
                    Err(error) => Err(error),
                };
                (file, bytes, rotated)
            })
            .await;
            let (file, rest, result) = match written {
                Ok(done) => done,
                Err(error) => {
                    error!(%error, "the audit log writer's thread failed; lines lost");
                    return;
                }
            };
            self.file = Some(file);
            match result {
                Ok(None) => return,
                Ok(Some(rotated)) => {
                    info!(rotated = %rotated.display(), "audit log rotated");
                    self.in_file.clear();
                    return;
                }
                Err(error) if rest.is_empty() => {
                    // The lines are written; syncing or rotating failed. Try again next time.
                    error!(%error, "audit log: sync or rotation failed");
                    return;
                }
                Err(error) => {
                    error!(%error, "audit log: write failed; retrying in 1 s (requests wait)");
                    bytes = rest;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use nitro_signer_common::{
        UserId,
        audit::Summary,
        receipt::{Operation, Statement},
    };
    use serde_bytes::{ByteArray, ByteBuf};

    use super::*;

    const A: [u8; 32] = [0xaa; 32];
    const B: [u8; 32] = [0xbb; 32];

    fn statement(key: [u8; 32], sequence: u64) -> Statement {
        Statement {
            operation: Operation::Address,
            receipt_key: key,
            sequence,
            time_ms: 1_764_770_000_000,
            key_id: [1; 32],
            blob_hash: [2; 32],
            policy_hash: None,
            user_id: Some(UserId::new("alice").unwrap()),
            address: Some([3; 20]),
            approvals_digest: None,
            previous_blob_hash: None,
            request_nonce: None,
            items: Vec::new(),
        }
    }

    fn receipt(key: [u8; 32], sequence: u64) -> Receipt {
        Receipt {
            statement: ByteBuf::from(statement(key, sequence).encode()),
            signature: ByteArray::new([0; 64]),
        }
    }

    fn line(key: [u8; 32], sequence: u64) -> ReceiptLine {
        ReceiptLine {
            summary: Summary::of(&statement(key, sequence)),
            receipt: receipt(key, sequence),
        }
    }

    /// What came out, as `(key's first byte, 'r' or 'g', sequence or from, to)`.
    fn shape(out: &[Out]) -> Vec<(u8, char, u64, u64)> {
        out.iter()
            .map(|item| match item {
                Out::Receipt(line) => (
                    line.summary.receipt_key[0],
                    'r',
                    line.summary.sequence,
                    line.summary.sequence,
                ),
                Out::Gap(gap) => (gap.receipt_key[0], 'g', gap.from, gap.to),
            })
            .collect()
    }

    const WINDOW: Duration = Duration::from_secs(2);

    #[test]
    fn receipts_are_put_back_in_order() {
        let start = Instant::now();
        let mut sequencer = Sequencer::new(WINDOW, 100, HashMap::new());
        let mut out = Vec::new();
        for n in [2, 1, 4, 3] {
            sequencer.push(line(A, n), start, &mut out);
        }
        sequencer.push(line(B, 1), start, &mut out);
        assert_eq!(
            shape(&out),
            [
                (0xaa, 'r', 1, 1),
                (0xaa, 'r', 2, 2),
                (0xaa, 'r', 3, 3),
                (0xaa, 'r', 4, 4),
                (0xbb, 'r', 1, 1)
            ]
        );
        assert_eq!(sequencer.next_deadline(), None);
    }

    #[test]
    fn a_number_missing_for_the_window_becomes_a_gap() {
        let start = Instant::now();
        let mut sequencer = Sequencer::new(WINDOW, 100, HashMap::new());
        let mut out = Vec::new();
        sequencer.push(line(A, 1), start, &mut out);
        sequencer.push(line(A, 3), start, &mut out);
        let later = start + Duration::from_millis(500);
        sequencer.push(line(A, 6), later, &mut out);
        assert_eq!(shape(&out), [(0xaa, 'r', 1, 1)]);
        assert_eq!(sequencer.next_deadline(), Some(start + WINDOW));
        out.clear();
        sequencer.expire(start + WINDOW - Duration::from_millis(1), &mut out);
        assert!(out.is_empty());
        // 2 is given up on; 4 and 5 have been late since 6 came, half a second later.
        sequencer.expire(start + WINDOW, &mut out);
        assert_eq!(shape(&out), [(0xaa, 'g', 2, 2), (0xaa, 'r', 3, 3)]);
        assert_eq!(sequencer.next_deadline(), Some(later + WINDOW));
        out.clear();
        sequencer.expire(later + WINDOW, &mut out);
        assert_eq!(shape(&out), [(0xaa, 'g', 4, 5), (0xaa, 'r', 6, 6)]);
        // Too late, and a duplicate: written where they come, for the checker to report.
        out.clear();
        sequencer.push(line(A, 2), later + WINDOW, &mut out);
        sequencer.push(line(A, 6), later + WINDOW, &mut out);
        sequencer.push(line(A, 7), later + WINDOW, &mut out);
        assert_eq!(
            shape(&out),
            [(0xaa, 'r', 2, 2), (0xaa, 'r', 6, 6), (0xaa, 'r', 7, 7)]
        );
    }

    #[test]
    fn a_boot_seen_first_in_its_middle_starts_with_a_gap() {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut sequencer = Sequencer::new(WINDOW, 100, HashMap::new());
        sequencer.push(line(A, 41), start, &mut out);
        sequencer.expire(start + WINDOW, &mut out);
        assert_eq!(shape(&out), [(0xaa, 'g', 1, 40), (0xaa, 'r', 41, 41)]);
        // A file that already ends at 40 continues there.
        out.clear();
        let mut sequencer = Sequencer::new(WINDOW, 100, HashMap::from([(A, 40)]));
        sequencer.push(line(A, 41), start, &mut out);
        assert_eq!(shape(&out), [(0xaa, 'r', 41, 41)]);
    }

    #[test]
    fn too_many_held_gives_up_at_once_and_shutdown_releases_everything() {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut sequencer = Sequencer::new(WINDOW, 2, HashMap::new());
        for n in [2, 3, 4] {
            sequencer.push(line(A, n), start, &mut out);
        }
        assert_eq!(
            shape(&out),
            [
                (0xaa, 'g', 1, 1),
                (0xaa, 'r', 2, 2),
                (0xaa, 'r', 3, 3),
                (0xaa, 'r', 4, 4)
            ]
        );
        out.clear();
        sequencer.push(line(B, 3), start, &mut out);
        sequencer.push(line(B, 5), start, &mut out);
        sequencer.release_all(&mut out);
        assert_eq!(
            shape(&out),
            [
                (0xbb, 'g', 1, 2),
                (0xbb, 'r', 3, 3),
                (0xbb, 'g', 4, 4),
                (0xbb, 'r', 5, 5)
            ]
        );
    }

    /// Answers every attestation with a fake document naming the key, or fails.
    #[derive(Clone, Default)]
    struct FakeAttester {
        asked: Arc<Mutex<Vec<[u8; 32]>>>,
        fail: bool,
    }

    impl Attester for FakeAttester {
        async fn attest(&self, receipt_key: [u8; 32], _nonce: [u8; 32]) -> Result<Vec<u8>, String> {
            self.asked.lock().unwrap().push(receipt_key);
            if self.fail {
                return Err("no enclave".to_owned());
            }
            Ok(receipt_key[..4].to_vec())
        }
    }

    /// The lines of `path`, as `(type, key's first byte, sequence/from, to)`.
    fn lines(path: &Path) -> Vec<(&'static str, u8, u64, u64)> {
        let text = fs::read_to_string(path).unwrap();
        text.lines()
            .map(|line| match Line::parse(line.as_bytes()).unwrap() {
                Line::Boot(boot) => ("boot", boot.receipt_key[0], 0, 0),
                Line::Receipt(r) => (
                    "receipt",
                    r.summary.receipt_key[0],
                    r.summary.sequence,
                    r.summary.sequence,
                ),
                Line::Gap(gap) => ("gap", gap.receipt_key[0], gap.from, gap.to),
                _ => unreachable!(),
            })
            .collect()
    }

    async fn run(path: &Path, max_bytes: u64, attester: FakeAttester, receipts: &[(u8, u64)]) {
        let opened = Opened::open(path, max_bytes).unwrap();
        let (log, task) = opened.start_with(attester, Duration::from_millis(100));
        for &(key, sequence) in receipts {
            log.record(receipt([key; 32], sequence)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        task.close().await;
    }

    #[tokio::test]
    async fn the_writer_writes_boots_receipts_and_gaps_and_continues_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let attester = FakeAttester::default();
        let receipts = [(0xaa, 2), (0xaa, 1), (0xaa, 3), (0xaa, 5), (0xbb, 1)];
        run(&path, 1 << 20, attester.clone(), &receipts).await;
        assert_eq!(
            lines(&path),
            [
                ("boot", 0xaa, 0, 0),
                ("receipt", 0xaa, 1, 1),
                ("receipt", 0xaa, 2, 2),
                ("receipt", 0xaa, 3, 3),
                ("boot", 0xbb, 0, 0),
                ("receipt", 0xbb, 1, 1),
                ("gap", 0xaa, 4, 4),
                ("receipt", 0xaa, 5, 5),
            ]
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // A second proxy on the same file: a fresh boot line, and the sequence continues (a
        // torn last line is left on a line of its own).
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"type\":\"rec")
            .unwrap();
        run(&path, 1 << 20, attester.clone(), &[(0xaa, 6), (0xaa, 8)]).await;
        let all = lines_lossy(&path);
        assert_eq!(all[8], "{\"type\":\"rec");
        let after: Vec<_> = fs::read_to_string(&path)
            .unwrap()
            .lines()
            .skip(9)
            .map(|l| Line::parse(l.as_bytes()).unwrap())
            .map(|l| match l {
                Line::Boot(_) => "boot".to_owned(),
                Line::Receipt(r) => format!("r{}", r.summary.sequence),
                Line::Gap(g) => format!("g{}-{}", g.from, g.to),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(after, ["boot", "r6", "g7-7", "r8"]);
        assert_eq!(*attester.asked.lock().unwrap(), [A, B, A]);
    }

    fn lines_lossy(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn rotated_files_keep_their_names_in_time_order_and_each_starts_with_its_boots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let opened = Opened::open(&path, 600).unwrap();
        let (log, task) = opened.start_with(FakeAttester::default(), Duration::from_millis(100));
        for n in 1..=3 {
            log.record(receipt(A, n)).await;
            // One write per receipt, normally: each fills the file.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        task.close().await;
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        // Usually one file per receipt (two, should receipts share a write).
        assert!(names.len() >= 3, "{names:?}");
        assert_eq!(names[0], "audit.jsonl");
        let mut sequences = Vec::new();
        for name in &names[1..] {
            let stamp = name.strip_prefix("audit.jsonl.").unwrap();
            assert!(stamp.len() == 16 || stamp.len() == 20, "{stamp}");
            assert!(
                stamp.ends_with('Z') || stamp[15..].starts_with("Z-"),
                "{stamp}"
            );
            let rotated = lines(&dir.path().join(name));
            assert_eq!(rotated[0], ("boot", 0xaa, 0, 0), "{name}");
            sequences.extend(rotated[1..].iter().map(|l| l.2));
        }
        assert_eq!(sequences, [1, 2, 3]);
        assert!(lines(&path).is_empty());

        // A proxy started after the rotation continues from the newest rotated file.
        run(&path, 1 << 20, FakeAttester::default(), &[(0xaa, 4)]).await;
        assert_eq!(
            lines(&path),
            [("boot", 0xaa, 0, 0), ("receipt", 0xaa, 4, 4)]
        );
    }

    #[tokio::test]
    async fn receipts_are_logged_when_their_boot_cannot_be_attested() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let attester = FakeAttester {
            fail: true,
            ..FakeAttester::default()
        };
        run(&path, 1 << 20, attester.clone(), &[(0xaa, 1), (0xaa, 2)]).await;
        assert_eq!(
            lines(&path),
            [("receipt", 0xaa, 1, 1), ("receipt", 0xaa, 2, 2)]
        );
        // Not asked again for every receipt.
        assert_eq!(attester.asked.lock().unwrap().len(), 1);
    }
}
