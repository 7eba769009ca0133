//! The project's binaries as processes: started with their logs in a file, ready when they print
//! their `listening on ADDRESS` line, stopped with a signal.

use std::{
    fs::File,
    io::Write as _,
    path::Path,
    process::{Command as StdCommand, Stdio},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, BufReader},
    process::{Child, ChildStdin, Command},
};

/// `path` opened for appending (created if need be), for a component's stderr: a restarted
/// component adds to the log of the one before.
pub fn append_log(path: &Path) -> File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// Sends signal `name` (`TERM`, `KILL`, …) to process `pid` with `kill(1)`.
pub fn signal(name: &str, pid: u32) {
    let status = StdCommand::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Reads a component's readiness line from its standard output and returns what follows
/// `listening on ` (the bound address). Panics if no line comes `within`, if the component
/// exits first, or if the line is anything else.
pub async fn read_listening_line(
    stdout: &mut (impl AsyncBufRead + Unpin),
    name: &str,
    within: Duration,
) -> String {
    let mut line = String::new();
    let read = tokio::time::timeout(within, stdout.read_line(&mut line))
        .await
        .unwrap_or_else(|_| panic!("the {name} did not start within {within:?}"))
        .unwrap();
    assert_ne!(read, 0, "the {name} exited during start-up (see its log)");
    line.strip_suffix('\n')
        .and_then(|line| line.strip_prefix("listening on "))
        .unwrap_or_else(|| panic!("unexpected readiness line from the {name}: {line:?}"))
        .to_owned()
}

/// A component process of the `nitro-signer` binary (`kms-emulator`, `enclave` or `proxy`),
/// killed when dropped.
pub struct Component {
    name: &'static str,
    child: Child,
    // Held open: the component exits when it closes (`--exit-with-parent`).
    _stdin: ChildStdin,
    /// What it printed after `listening on `.
    pub address: String,
}

impl Component {
    /// Runs `bin` with `args` and `--exit-with-parent`, `env` added to its environment and its
    /// stderr appended to `log`, and waits (up to a minute) for its readiness line.
    pub async fn start(
        bin: &str,
        name: &'static str,
        args: &[std::ffi::OsString],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Self {
        let mut child = Command::new(bin)
            .args(args)
            .arg("--exit-with-parent")
            .envs(env.iter().copied())
            .env("RUST_LOG", "info,aws_smithy_runtime=debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(append_log(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let address = read_listening_line(&mut stdout, name, Duration::from_secs(60)).await;
        tokio::spawn(async move { tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await });
        Self {
            name,
            child,
            _stdin: stdin,
            address,
        }
    }

    /// SIGKILL, and wait for it to be gone.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        let status = self.child.wait().await.unwrap();
        assert!(!status.success(), "the {} exited cleanly", self.name);
    }
}

/// Runs `bin keys import` with `args` and `env`, `seed` in hex on its stdin; after checking it
/// succeeded, the key blob it printed and its log (stderr).
pub fn import_seed(
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
    seed: &[u8],
) -> (String, String) {
    let mut child = StdCommand::new(bin)
        .args(["keys", "import"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(hex::encode(seed).as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    (answer["keyBlob"].as_str().unwrap().to_owned(), log)
}
