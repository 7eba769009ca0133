//! The Node.js packages the tests run as real clients and as an Ethereum node (`ethers`, `viem`,
//! `hardhat`), at the versions pinned in `tests/node/package-lock.json`, and the scripts of
//! `tests/node` that use them.
//!
//! The first test that needs them copies `tests/node/package.json` and its lock file into
//! `target/node` and runs `npm ci` there (from the npm registry), so that `cargo test` needs
//! nothing installed by hand but `node` and `npm` themselves; later tests and runs reuse the
//! install until the lock file changes. Test binaries run in parallel: a file lock makes one of
//! them do the work.
//!
//! A script runs from a copy beside that `node_modules`: ES modules resolve a bare `import
//! "ethers"` from the importing file's own directory upwards and ignore `NODE_PATH`, so a script
//! left in `tests/node` would not find the packages installed in `target`.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// The manifest, naming the pinned packages.
const PACKAGE: &str = include_str!("../node/package.json");
/// The lock file: the exact versions and integrity hashes `npm ci` installs.
const LOCK: &str = include_str!("../node/package-lock.json");

/// How long a script may run before it is killed and its test fails.
pub const SCRIPT_TIME_LIMIT: Duration = Duration::from_secs(120);

/// `target/node`, where the packages are installed and the scripts run from.
fn install_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/node")
}

/// What the marker holds once `npm ci` has installed these packages.
fn installed_marker() -> String {
    format!("{PACKAGE}\n{LOCK}")
}

/// The directory holding the installed packages (`node_modules` and the files placed beside it
/// with [`place`]), installed on first use.
pub fn dir() -> PathBuf {
    let dir = install_dir();
    let marker = dir.join("package-lock.installed");
    let expected = installed_marker();
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == expected) {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::File::create(dir.with_extension("lock")).unwrap();
    lock.lock().unwrap();
    // Another test binary may have finished while this one waited.
    if std::fs::read_to_string(&marker).is_ok_and(|installed| installed == expected) {
        return dir;
    }
    std::fs::write(dir.join("package.json"), PACKAGE).unwrap();
    std::fs::write(dir.join("package-lock.json"), LOCK).unwrap();
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("npm ci: cannot run ({error}); is npm installed?"));
    assert!(
        output.status.success(),
        "npm ci in target/node failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    prune_other_platforms(&dir.join("node_modules/@nomicfoundation"), &dir);
    std::fs::write(&marker, expected).unwrap();
    dir
}

/// The packages whose native binaries for other platforms `npm ci` installs too.
const NATIVE_PACKAGES: [&str; 2] = ["edr", "solidity-analyzer"];

/// Removes the native binaries of other platforms from `scope` (`@nomicfoundation`), about half
/// of the install: Hardhat's EDR and solidity-analyzer list one package per platform as plain
/// dependencies, so npm installs all of them. Which one this platform uses is asked of Node
/// itself (the packages loaded when each is required); if that fails, nothing is removed.
fn prune_other_platforms(scope: &Path, dir: &Path) {
    let probe = format!(
        "for (const name of {NATIVE_PACKAGES:?}) require(`@nomicfoundation/${{name}}`); \
         for (const path of Object.keys(require.cache)) console.log(path);"
    );
    let Ok(output) = Command::new("node")
        .args(["-e", &probe])
        .current_dir(dir)
        .output()
    else {
        return;
    };
    if !output.status.success() {
        return;
    }
    let loaded = String::from_utf8_lossy(&output.stdout).into_owned();
    for entry in std::fs::read_dir(scope).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let platform_specific = NATIVE_PACKAGES
            .iter()
            .any(|package| name.starts_with(&format!("{package}-")));
        let used = loaded.contains(&format!("/@nomicfoundation/{name}/"));
        if platform_specific && !used {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
}

/// The installed `node_modules`, installed on first use.
pub fn node_modules() -> PathBuf {
    dir().join("node_modules")
}

/// Copies `source` into [`dir`] under its own file name, where the installed packages resolve
/// from it, and returns the copy's path. The copy is written under a temporary name and renamed,
/// so that a test binary placing the same file at the same time never runs a half-written one.
pub fn place(source: &Path) -> PathBuf {
    static PLACED: AtomicU64 = AtomicU64::new(0);
    let contents = std::fs::read(source)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", source.display()));
    let name = source.file_name().expect("a file name");
    let target = dir().join(name);
    if std::fs::read(&target).is_ok_and(|placed| placed == contents) {
        return target;
    }
    let temporary = target.with_extension(format!(
        "placing-{}-{}",
        std::process::id(),
        PLACED.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&temporary, &contents).unwrap();
    std::fs::rename(&temporary, &target).unwrap();
    target
}

/// `tests/node/NAME`, a script or config file of this crate.
pub fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("node")
        .join(name)
}

/// Reads all of a child's pipe on a thread, so that a chatty child never blocks on a full pipe.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        // A pipe closed by a killed child ends the read; what came before is still reported.
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// Kills the process group led by `child` (the child and anything it started).
pub(crate) fn kill_group(child: &mut Child) {
    // Already reaped: nothing left to kill, and its pid may be reused.
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `node SCRIPT ARGS…` from a copy of `script` placed beside the installed packages (see
/// [`place`]); its standard output, after checking that it succeeded within
/// [`SCRIPT_TIME_LIMIT`]. Panics with its standard error otherwise. Only the script itself is
/// copied: it may import the installed packages, not files beside it in `tests/node`.
pub fn run_script(script: &Path, args: &[&str]) -> Vec<u8> {
    let placed = place(script);
    let mut command = Command::new("node");
    command
        .arg(&placed)
        .args(args)
        .current_dir(dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("node: cannot run ({error}); is node installed?"));
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + SCRIPT_TIME_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    let name = script.display();
    match status {
        None => panic!("node {name} {args:?} ran past {SCRIPT_TIME_LIMIT:?}:\n{stderr}"),
        Some(status) => assert!(
            status.success(),
            "node {name} {args:?} failed ({status}):\n{stderr}{}",
            String::from_utf8_lossy(&stdout)
        ),
    }
    stdout
}
