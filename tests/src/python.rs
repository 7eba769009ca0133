//! The Python the tests run as an independent implementation (`cryptography`, `eth-account`,
//! `jsonschema`), at the versions pinned in `tests/python/requirements.txt`.
//!
//! The first test that needs it makes a virtual environment in `target/python` and installs the
//! pinned packages there (from PyPI), so that `cargo test` needs nothing installed by hand but
//! `python3` itself; later tests and runs reuse it until the requirements file changes. Test
//! binaries run in parallel: a file lock makes one of them do the work.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The pinned requirements.
const REQUIREMENTS: &str = include_str!("../python/requirements.txt");

fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/python")
}

fn run_checked(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: cannot run ({error}); is python3 installed?"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The interpreter of the test environment, made and filled on first use.
pub fn interpreter() -> PathBuf {
    let dir = venv_dir();
    let python = dir.join("bin/python3");
    let marker = dir.join("requirements.installed");
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == REQUIREMENTS) {
        return python;
    }
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let lock = std::fs::File::create(dir.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    // Another test binary may have finished while this one waited.
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == REQUIREMENTS) {
        return python;
    }
    if !python.exists() {
        run_checked(
            Command::new("python3").args(["-m", "venv"]).arg(&dir),
            "python3 -m venv target/python",
        );
    }
    let requirements = dir.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).unwrap();
    run_checked(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip install -r tests/python/requirements.txt",
    );
    std::fs::write(&marker, REQUIREMENTS).unwrap();
    python
}

/// Runs the test environment's Python with `args`, `stdin` on its standard input; its standard
/// output, after checking that it succeeded.
pub fn run(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(interpreter())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "python {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}
