//! `nitro-signer dev` as a process: the whole simulated stack (KMS emulator, enclave with the NSM
//! simulator, parent proxy, each its own process), ready when it prints `ready URL`.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::process::{append_log, signal};

/// A running `nitro-signer dev`, killed when dropped.
pub struct DevStack {
    child: Child,
    /// The proxy's base URL.
    pub url: String,
    /// The pid of each enclave `dev` starts after the first (it restarts a dead one).
    pub enclave_pids: mpsc::Receiver<u32>,
    /// The pid of the first enclave.
    pub enclave_pid: u32,
    /// The API key `dev --auth` printed (`api-key …`), if it was started so.
    pub api_key: Option<String>,
}

impl DevStack {
    /// Runs `bin dev` on `data_dir` at the most verbose log level, its log appended to `log`, and
    /// waits (up to two minutes) for it to be ready.
    pub fn start(bin: &str, data_dir: &Path, log: &Path) -> Self {
        Self::start_with(bin, data_dir, log, &[])
    }

    /// [`DevStack::start`] with more `dev` options (`--auth`…).
    pub fn start_with(bin: &str, data_dir: &Path, log: &Path, options: &[&str]) -> Self {
        let mut child = Command::new(bin)
            .args(["dev", "--http", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(options)
            .env(
                "RUST_LOG",
                "trace,hyper=info,h2=info,aws_smithy_runtime=debug",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(append_log(log))
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (lines_tx, lines) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (pids_tx, enclave_pids) = mpsc::channel();
        let mut url = None;
        let mut enclave_pid = None;
        let mut api_key = None;
        let deadline = Instant::now() + Duration::from_secs(120);
        while url.is_none() {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the dev stack did not become ready");
            if let Some(pid) = enclave_pid_of(&line) {
                enclave_pid = Some(pid);
            }
            if let Some(key) = line.strip_prefix("api-key ") {
                api_key = Some(key.to_owned());
            }
            url = line.strip_prefix("ready ").map(str::to_owned);
        }
        std::thread::spawn(move || {
            for line in lines {
                if let Some(pid) = enclave_pid_of(&line)
                    && pids_tx.send(pid).is_err()
                {
                    break;
                }
            }
        });
        Self {
            child,
            url: url.unwrap(),
            enclave_pids,
            enclave_pid: enclave_pid.unwrap(),
            api_key,
        }
    }

    /// SIGTERM, and wait (up to 20 s) for it to be gone.
    pub fn stop(mut self) {
        signal("TERM", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "dev did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for DevStack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid in a `enclave pid=N …` line of `dev`'s standard output.
fn enclave_pid_of(line: &str) -> Option<u32> {
    line.strip_prefix("enclave pid=")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
