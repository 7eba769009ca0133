//! The accounts the JSON-RPC endpoint serves: one file per account in the accounts directory
//! (`--accounts-dir`), `{"address", "keyBlob", "userId"?, "label"?}`
//! ([`nitro_signer_api::AccountFile`]).
//!
//! At every load the proxy asks the enclave for the address of each file's key blob and user,
//! and serves the account only if it is the file's `address`: a file that names a blob and user
//! that do not give its address is refused, so that `eth_accounts` never lists an address the
//! signer would not sign for. (The enclave also checks `from` when it signs a transaction, and
//! the signer checks the address of every signature, so a file changed after loading cannot
//! make it sign as another account either.)
//!
//! Files are read at start, on SIGHUP and on `POST /reload`; a file whose address cannot be
//! checked because the enclave or KMS is unavailable is tried again every few seconds. Names
//! that do not end in `.json`, or that start with a dot, are ignored (editors' temporary
//! files).

use std::{
    collections::HashMap,
    io::Read as _,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use alloy_primitives::Address;
use nitro_signer_api::{AccountFile, ErrorCode, KeyBlob, RefusedAccount, ReloadResponse};
use nitro_signer_common::{
    UserId, key_blob,
    protocol::{RequestBody, ResponseBody},
};
use tokio::{sync::Notify, task::JoinSet};
use tracing::{info, warn};

use crate::routes::{self, AppState};

/// Largest account file read.
const MAX_FILE_LEN: u64 = 64 * 1024;

/// Most account files read from the directory.
const MAX_FILES: usize = 100_000;

/// Addresses checked with the enclave at once during a load.
const CHECKS_AT_ONCE: usize = 8;

/// How often files whose address could not be checked are tried again.
const RETRY_PENDING: Duration = Duration::from_secs(5);

/// A served account.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) address: Address,
    pub(crate) key_blob: KeyBlob,
    pub(crate) user_id: Option<UserId>,
    /// The key blob's owner label (bound to it at KMS), for tenants' access.
    pub(crate) owner: Option<String>,
    /// The file it was read from, for logs.
    pub(crate) file: String,
}

impl Account {
    /// Whether `file` names this account with the same key (so its address needs no new
    /// check).
    fn same_as(&self, file: &AccountFile) -> bool {
        self.address == file.address
            && self.key_blob == file.key_blob
            && self.user_id == file.user_id
    }
}

/// What one load gave.
#[derive(Debug, Default)]
struct Loaded {
    by_address: HashMap<Address, Arc<Account>>,
    /// The served addresses, in file-name order.
    order: Vec<Address>,
}

/// The served accounts, replaced as a whole by each load.
#[derive(Debug)]
pub(crate) struct Accounts {
    dir: Option<PathBuf>,
    current: RwLock<Arc<Loaded>>,
    /// One load at a time; holds when the last load started and what it found, so that
    /// reloads asked for while another ran share its result.
    loading: tokio::sync::Mutex<Option<(Instant, Arc<Report>)>>,
    /// Asks the keeper task to load again (`POST /reload` does it itself).
    wake: Notify,
}

impl Accounts {
    /// The accounts of `dir`, none until the first load; `None` serves none.
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir,
            current: RwLock::new(Arc::default()),
            loading: tokio::sync::Mutex::new(None),
            wake: Notify::new(),
        }
    }

    fn loaded(&self) -> Arc<Loaded> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Every served account, in file-name order.
    pub(crate) fn all(&self) -> Vec<Arc<Account>> {
        let loaded = self.loaded();
        loaded
            .order
            .iter()
            .filter_map(|address| loaded.by_address.get(address).cloned())
            .collect()
    }

    /// The account at `address`.
    pub(crate) fn get(&self, address: &Address) -> Option<Arc<Account>> {
        self.loaded().by_address.get(address).cloned()
    }

    /// Reads the directory again and serves what passed: files already served with the same
    /// address, key blob and user id are kept as they are; the others are checked with the
    /// enclave. A reload asked for while another runs waits for it and reads the directory
    /// again only if that one started before it was asked for.
    pub(crate) async fn reload(&self, state: &Arc<AppState>) -> Arc<Report> {
        let asked = Instant::now();
        let mut loading = self.loading.lock().await;
        if let Some((started, report)) = &*loading
            && *started >= asked
        {
            return Arc::clone(report);
        }
        let started = Instant::now();
        let report = Arc::new(self.load(state).await);
        *loading = Some((started, Arc::clone(&report)));
        report
    }

    async fn load(&self, state: &Arc<AppState>) -> Report {
        let Some(dir) = &self.dir else {
            return Report::default();
        };
        let previous = self.loaded();
        let (files, mut refused) = read_dir(dir).await;
        let mut checks = JoinSet::new();
        let mut results = Vec::with_capacity(files.len());
        for (index, (file, account)) in files.into_iter().enumerate() {
            if let Some(served) = previous.by_address.get(&account.address)
                && served.same_as(&account)
            {
                let account = Account {
                    file,
                    ..Account::clone(served)
                };
                results.push((index, Checked::Served(account)));
                continue;
            }
            if checks.len() >= CHECKS_AT_ONCE
                && let Some(Ok(result)) = checks.join_next().await
            {
                results.push(result);
            }
            let state = Arc::clone(state);
            checks.spawn(async move { (index, check(&state, file, account).await) });
        }
        while let Some(joined) = checks.join_next().await {
            if let Ok(result) = joined {
                results.push(result);
            }
        }
        results.sort_by_key(|(index, _)| *index);

        let mut loaded = Loaded::default();
        let mut pending = Vec::new();
        for (_, result) in results {
            match result {
                Checked::Served(account) => {
                    if let Some(first) = loaded.by_address.get(&account.address) {
                        refused.push(Refusal {
                            reason: format!(
                                "address {} is already served from {}",
                                account.address, first.file
                            ),
                            file: account.file.clone(),
                            owner: account.owner.clone(),
                        });
                        continue;
                    }
                    loaded.order.push(account.address);
                    loaded.by_address.insert(account.address, Arc::new(account));
                }
                Checked::Refused(refusal) => refused.push(refusal),
                Checked::Pending(refusal) => pending.push(refusal),
            }
        }
        refused.sort_by(|a, b| a.file.cmp(&b.file));
        for refusal in &refused {
            warn!(file = %refusal.file, reason = %refusal.reason, "account refused");
        }
        for refusal in &pending {
            info!(file = %refusal.file, reason = %refusal.reason, "account not checked yet; will retry");
        }
        info!(
            dir = %dir.display(),
            served = loaded.order.len(),
            refused = refused.len(),
            pending = pending.len(),
            "accounts loaded"
        );
        let loaded = Arc::new(loaded);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&loaded);
        if !pending.is_empty() {
            self.wake.notify_one();
        }
        Report {
            loaded,
            refused,
            pending,
        }
    }

    /// Loads at start, then again on SIGHUP, and every few seconds while some file is pending.
    pub(crate) async fn keep(
        &self,
        state: &Arc<AppState>,
        mut hangups: Option<tokio::signal::unix::Signal>,
    ) {
        if self.dir.is_none() {
            // SIGHUP still must not stop the proxy.
            if let Some(signals) = &mut hangups {
                while signals.recv().await.is_some() {
                    info!("SIGHUP: no accounts directory (--accounts-dir) to reload");
                }
            }
            return;
        }
        let mut pending = !self.load_now(state).await;
        loop {
            let hangup = async {
                match &mut hangups {
                    Some(signals) => {
                        signals.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let retry = async {
                if pending {
                    tokio::time::sleep(RETRY_PENDING).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = hangup => info!("SIGHUP: reloading the accounts"),
                () = retry => {}
                () = self.wake.notified() => {
                    // A reload left files pending: retry them later.
                    pending = true;
                    continue;
                }
            }
            pending = !self.load_now(state).await;
        }
    }

    /// A reload for the keeper task: whether every file could be checked.
    async fn load_now(&self, state: &Arc<AppState>) -> bool {
        self.reload(state).await.pending.is_empty()
    }
}

/// What a load found: the accounts served, and the files not served with why (and the owner
/// label of their key blob, when the file named a readable one, so that a tenant is shown only
/// its own).
#[derive(Debug, Default)]
pub(crate) struct Report {
    loaded: Arc<Loaded>,
    refused: Vec<Refusal>,
    pending: Vec<Refusal>,
}

/// A file not served.
#[derive(Debug, Clone)]
struct Refusal {
    file: String,
    reason: String,
    owner: Option<String>,
}

impl Report {
    /// The report as `may_see` is shown it: accounts and files whose key blob's owner label it
    /// may use (`None` for a file with no readable blob: only callers who see everything).
    pub(crate) fn view(&self, may_see: impl Fn(Option<&str>) -> bool) -> ReloadResponse {
        let files = |list: &[Refusal]| {
            list.iter()
                .filter(|refusal| may_see(refusal.owner.as_deref()))
                .map(|refusal| RefusedAccount {
                    file: refusal.file.clone(),
                    reason: refusal.reason.clone(),
                })
                .collect()
        };
        ReloadResponse {
            accounts: self
                .loaded
                .order
                .iter()
                .filter_map(|address| self.loaded.by_address.get(address))
                .filter(|account| may_see(account.owner.as_deref()))
                .map(|account| account.address.to_checksum(None))
                .collect(),
            refused: files(&self.refused),
            pending: files(&self.pending),
        }
    }
}

/// The outcome of one file.
enum Checked {
    Served(Account),
    Refused(Refusal),
    Pending(Refusal),
}

/// The account files of `dir`, in name order, and the files that could not be read.
async fn read_dir(dir: &Path) -> (Vec<(String, AccountFile)>, Vec<Refusal>) {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || read_dir_blocking(&dir))
        .await
        .unwrap_or_else(|_| {
            (
                Vec::new(),
                vec![Refusal {
                    file: String::new(),
                    reason: "the accounts directory could not be read".to_owned(),
                    owner: None,
                }],
            )
        })
}

fn read_dir_blocking(dir: &Path) -> (Vec<(String, AccountFile)>, Vec<Refusal>) {
    let mut refused = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            info!(dir = %dir.display(), "the accounts directory does not exist: no accounts");
            return (Vec::new(), refused);
        }
        Err(error) => {
            refused.push(Refusal {
                file: String::new(),
                reason: format!("the accounts directory cannot be read: {error}"),
                owner: None,
            });
            return (Vec::new(), refused);
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.ends_with(".json") && !name.starts_with('.'))
        .collect();
    names.sort();
    if names.len() > MAX_FILES {
        refused.push(Refusal {
            file: String::new(),
            reason: format!(
                "{} account files; only the first {MAX_FILES} are read",
                names.len()
            ),
            owner: None,
        });
        names.truncate(MAX_FILES);
    }
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        match read_file(&dir.join(&name)) {
            Ok(account) => files.push((name, account)),
            Err(reason) => refused.push(Refusal {
                file: name,
                reason,
                owner: None,
            }),
        }
    }
    (files, refused)
}

/// Reads and parses one account file (strictly: unknown fields and repeated keys refused).
fn read_file(path: &Path) -> Result<AccountFile, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut bytes = Vec::new();
    // Non-blocking: opening a FIFO must not hang the load. Then regular files only.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nonblock())
        .open(path)
        .map_err(|error| format!("cannot be read: {error}"))?;
    if !file.metadata().is_ok_and(|metadata| metadata.is_file()) {
        return Err("not a regular file".to_owned());
    }
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("cannot be read: {error}"))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(format!("larger than {MAX_FILE_LEN} bytes"));
    }
    parse_file(&bytes)
}

/// `O_NONBLOCK` on Linux (the proxy runs on Linux only).
const fn libc_o_nonblock() -> i32 {
    0o4000
}

/// Parses an account file's contents ([`AccountFile::parse`]).
pub(crate) fn parse_file(bytes: &[u8]) -> Result<AccountFile, String> {
    AccountFile::parse(bytes)
}

/// Asks the enclave for the file's address.
async fn check(state: &AppState, file: String, account: AccountFile) -> Checked {
    let owner = key_blob::KeyBlob::decode(account.key_blob.as_bytes())
        .ok()
        .and_then(|blob| blob.metadata().owner().map(str::to_owned));
    let refusal = |reason: String| Refusal {
        file: file.clone(),
        reason,
        owner: owner.clone(),
    };
    let key = routes::key_ref(account.key_blob.clone(), account.user_id.clone());
    match routes::receipted(state, RequestBody::Address(key)).await {
        Ok((ResponseBody::Address(info), _, _)) => {
            let address = Address::from(info.address.into_array());
            if address == account.address {
                Checked::Served(Account {
                    address,
                    key_blob: account.key_blob,
                    user_id: account.user_id,
                    owner,
                    file,
                })
            } else {
                Checked::Refused(refusal(format!(
                    "the key blob and user id give the address {}, not the file's {}",
                    address.to_checksum(None),
                    account.address.to_checksum(None)
                )))
            }
        }
        Ok((other, _, _)) => Checked::Refused(refusal(format!(
            "the enclave answered {} to an address request",
            other.kind()
        ))),
        Err(failure) => {
            let reason = format!("{}: {}", failure.code.as_str(), failure.message);
            match failure.code {
                // What says nothing about the file: tried again.
                ErrorCode::EnclaveUnavailable
                | ErrorCode::EnclaveTimeout
                | ErrorCode::EnclaveProtocolError
                | ErrorCode::KmsUnavailable
                | ErrorCode::NoCredentials
                | ErrorCode::Busy
                | ErrorCode::Overloaded
                | ErrorCode::RequestTimeout
                | ErrorCode::Internal => Checked::Pending(refusal(reason)),
                _ => Checked::Refused(refusal(reason)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_sees_only_its_own_accounts_and_files() {
        let account = |byte: u8, owner: Option<&str>| Account {
            address: Address::repeat_byte(byte),
            key_blob: KeyBlob::new(vec![byte]),
            user_id: None,
            owner: owner.map(str::to_owned),
            file: format!("{byte}.json"),
        };
        let mut loaded = Loaded::default();
        for account in [
            account(1, Some("a")),
            account(2, Some("b")),
            account(3, None),
        ] {
            loaded.order.push(account.address);
            loaded.by_address.insert(account.address, Arc::new(account));
        }
        let refusal = |file: &str, owner: Option<&str>| Refusal {
            file: file.to_owned(),
            reason: format!("reason of {file}"),
            owner: owner.map(str::to_owned),
        };
        let report = Report {
            loaded: Arc::new(loaded),
            refused: vec![
                refusal("x.json", Some("a")),
                refusal("y.json", Some("b")),
                refusal("", None),
            ],
            pending: vec![refusal("z.json", Some("b"))],
        };
        let a = report.view(|owner| owner == Some("a"));
        assert_eq!(a.accounts, [Address::repeat_byte(1).to_checksum(None)]);
        assert_eq!(a.refused.len(), 1);
        assert_eq!(a.refused[0].file, "x.json");
        assert!(a.pending.is_empty());
        let everyone = report.view(|_| true);
        assert_eq!(everyone.accounts.len(), 3);
        assert_eq!(everyone.refused.len(), 3);
        assert_eq!(everyone.pending.len(), 1);
    }

    #[test]
    fn account_files_are_strict() {
        let ok = r#"{"address":"0x3535353535353535353535353535353535353535","keyBlob":"AQI=","userId":"alice","label":"treasury"}"#;
        let account = parse_file(ok.as_bytes()).unwrap();
        assert_eq!(account.user_id.unwrap().as_str(), "alice");
        for (bad, says) in [
            (r#"{"address":"0x35","keyBlob":"AQI="}"#, "address"),
            (r#"{"keyBlob":"AQI="}"#, "address"),
            (
                r#"{"address":"0x3535353535353535353535353535353535353535","keyBlob":"AQI=","extra":1}"#,
                "unknown field",
            ),
            (
                r#"{"address":"0x3535353535353535353535353535353535353535","keyBlob":"AQI=","keyBlob":"AQI="}"#,
                "repeated key",
            ),
            (
                r#"{"address":"0x3535353535353535353535353535353535353535","keyBlob":"AQI=","label":"a\u0007"}"#,
                "label",
            ),
            (
                r#"{"address":"0x3535353535353535353535353535353535353535","keyBlob":"AQI=","userId":""}"#,
                "userId",
            ),
        ] {
            let error = parse_file(bad.as_bytes()).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
