//! `nitro-signer dev`: the whole system on loopback, in simulated mode.
//!
//! Three processes, each this same binary running one component with the same code as
//! production: the KMS emulator, the enclave (with the NSM simulator) and the parent proxy. Only
//! what the hardware and AWS provide is swapped: the enclave listens on a Unix socket instead of
//! vsock, attests with the simulator, and reaches the emulator instead of AWS KMS. State (the
//! simulator's root of trust, the emulator's keys, the dev KMS key and credentials) lives in the
//! data directory, so a second start reuses it and earlier key blobs keep working.
//!
//! The proxy serves its API without authentication (`--no-auth`) unless `--auth` asks for a dev
//! tenant and API key, as production requires (`--tenants`).
//!
//! The enclave is restarted when it exits, as systemd does in production. Every component is
//! started with `--exit-with-parent`, so nothing outlives this process.

use nitro_signer_kms_emulator::{policy::attested_key_policy, service::KmsConfig};
use std::{
    collections::BTreeMap,
    ffi::OsString,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use aws_sdk_kms::config::{BehaviorVersion, Region};
use nitro_signer_common::{
    private_file::{create_private_dir, write_private},
    tenants::{ApiKey, Tenant, Tenants},
};
use nitro_signer_enclave::nsm::{Nsm, SimulatedNsm, SimulatorConfig};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, ChildStdin, Command},
};
use zeroize::Zeroizing;

/// The emulator's region in the dev stack.
pub(crate) const DEV_REGION: &str = "us-east-1";

/// Options of `nitro-signer dev`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DevArgs {
    /// Where the stack keeps its state: the simulated NSM's test root, the KMS emulator's keys,
    /// the dev KMS key and credentials. Reused on the next start.
    #[arg(long, env = "NITRO_SIGNER_DATA_DIR", default_value = ".nitro-signer")]
    pub(crate) data_dir: PathBuf,

    /// Address of the parent proxy's HTTP API.
    #[arg(long, env = "NITRO_SIGNER_HTTP", default_value = "127.0.0.1:8080")]
    pub(crate) http: String,

    /// Worker threads of the proxy and the KMS emulator. The three processes share this
    /// machine's cores; the enclave, which does the signing, runs one thread per core, and one
    /// thread serves the proxy's HTTP at the enclave's full speed with less switching.
    #[arg(long, default_value = "1", value_name = "N")]
    pub(crate) relay_worker_threads: std::num::NonZeroUsize,

    /// Refuse key blobs without a policy document, as the production image does.
    #[arg(long)]
    pub(crate) require_policy: bool,

    /// Run the enclave without receipts, only to measure what they cost with `bench` (back ends
    /// that verify receipts refuse its answers).
    #[arg(long)]
    pub(crate) bench_without_receipts: bool,

    /// Require API keys, as production does: write `tenants.json` in the data directory with a
    /// tenant `dev` (owner label `dev`) and a new API key, printed as `api-key nsk_…` (other
    /// tenants in that file are kept), and start the proxy with it. Without it the proxy runs
    /// with --no-auth.
    #[arg(long)]
    pub(crate) auth: bool,

    /// The proxy's audit log: every receipt, with its boot's attestation documents (check it
    /// with `nitro-signer audit check --dev`). Default: DATA_DIR/audit.jsonl.
    #[arg(long, value_name = "PATH", conflicts_with = "no_audit_log")]
    pub(crate) audit_log: Option<PathBuf>,

    /// Run the proxy without an audit log.
    #[arg(long)]
    pub(crate) no_audit_log: bool,

    /// An Ethereum node (http://…) for the JSON-RPC endpoint: `eth_sendTransaction` sends
    /// there, and every method the signer does not answer is passed to it (`docs/json-rpc.md`).
    #[arg(long, value_name = "URL")]
    pub(crate) upstream: Option<String>,

    /// The accounts the JSON-RPC endpoint serves (`nitro-signer accounts add` writes them).
    /// Default: DATA_DIR/accounts.
    #[arg(long, value_name = "DIR")]
    pub(crate) accounts_dir: Option<PathBuf>,
}

/// What a running dev stack records for other commands (`keys import --dev`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DevState {
    /// The KMS emulator's URL.
    pub(crate) kms_endpoint: String,
    /// The dev KMS key's ARN.
    pub(crate) kms_key_arn: String,
    /// The proxy's URL.
    pub(crate) proxy_url: String,
}

/// The credentials the emulator accepts (and the proxy forwards to the enclave).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DevCredentials {
    /// Access key id.
    pub(crate) access_key_id: String,
    /// Secret access key.
    pub(crate) secret_access_key: Zeroizing<String>,
}

impl DevCredentials {
    /// Reads the dev stack's credentials, creating them on first use.
    pub(crate) fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("dev-credentials.json");
        if let Ok(bytes) = std::fs::read(&path) {
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()));
        }
        let mut id = [0u8; 6];
        let mut secret = Zeroizing::new([0u8; 24]);
        aws_lc_rs::rand::fill(&mut id)
            .and_then(|()| aws_lc_rs::rand::fill(secret.as_mut_slice()))
            .map_err(|_| anyhow::anyhow!("no randomness"))?;
        let credentials = Self {
            access_key_id: format!("AKIADEV{}", hex::encode_upper(id)),
            secret_access_key: Zeroizing::new(hex::encode(secret.as_slice())),
        };
        let json = Zeroizing::new(serde_json::to_vec(&credentials)?);
        write_private(&path, &json).with_context(|| format!("writing {}", path.display()))?;
        Ok(credentials)
    }

    /// An aws-sdk-kms client for `endpoint` with these credentials.
    pub(crate) fn kms_client(&self, endpoint: &str) -> aws_sdk_kms::Client {
        let config = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(DEV_REGION))
            .endpoint_url(endpoint)
            .credentials_provider(aws_credential_types::Credentials::new(
                self.access_key_id.clone(),
                self.secret_access_key.as_str(),
                None,
                None,
                "nitro-signer-dev",
            ))
            .build();
        aws_sdk_kms::Client::from_conf(config)
    }
}

/// A component process.
struct Component {
    name: &'static str,
    args: Vec<OsString>,
    env: Vec<(&'static str, String)>,
    child: Child,
    // Held open: the component exits when it closes (`--exit-with-parent`).
    stdin: Option<ChildStdin>,
    address: String,
}

impl Component {
    async fn start(
        name: &'static str,
        args: Vec<OsString>,
        env: Vec<(&'static str, String)>,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the nitro-signer binary")?;
        let mut child = Command::new(exe)
            .args(&args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the {name}"))?;
        let stdin = child.stdin.take().context("no stdin pipe")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .with_context(|| format!("the {name} did not start within 60 s"))?
            .with_context(|| format!("reading the {name}'s output"))?
            .with_context(|| format!("the {name} exited during start-up (see its log above)"))?;
        let address = line
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line from the {name}: {line:?}"))?
            .to_owned();
        // Keep draining its standard output so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            name,
            args,
            env,
            child,
            stdin: Some(stdin),
            address,
        })
    }

    async fn restart(&mut self) -> anyhow::Result<()> {
        let fresh = Self::start(self.name, self.args.clone(), self.env.clone()).await?;
        *self = fresh;
        self.announce();
        Ok(())
    }

    /// Asks the component to stop (closes its standard input: it finishes what it is doing,
    /// the proxy writes its audit log out), and kills it if it has not within `grace`.
    async fn stop(&mut self, grace: Duration) {
        drop(self.stdin.take());
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }

    fn announce(&self) {
        println!(
            "{} pid={} address={}",
            self.name,
            self.child.id().unwrap_or_default(),
            self.address
        );
    }
}

/// The dev tenant's name and owner label under `--auth`.
const DEV_TENANT: &str = "dev";

/// Writes `data_dir/tenants.json` with the tenant `dev` and a new API key (replacing an earlier
/// `dev`, keeping other tenants): the file's path and the key.
fn dev_tenants(data_dir: &Path) -> anyhow::Result<(PathBuf, ApiKey)> {
    let path = data_dir.join("tenants.json");
    let key = ApiKey::generate()?;
    let dev = Tenant::new(DEV_TENANT, key.sha256(), vec![DEV_TENANT.to_owned()])?;
    let mut tenants = vec![dev];
    if let Some(existing) = crate::tenants::read(&path)? {
        tenants.extend(existing.iter().filter(|t| t.name() != DEV_TENANT).cloned());
    }
    write_private(&path, Tenants::new(tenants)?.to_json().as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((path, key))
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

async fn dev_key(
    data_dir: &Path,
    client: &aws_sdk_kms::Client,
    nsm: &SimulatedNsm,
) -> anyhow::Result<String> {
    let path = data_dir.join("dev-kms-key.txt");
    if let Ok(arn) = std::fs::read_to_string(&path) {
        let arn = arn.trim().to_owned();
        client
            .describe_key()
            .key_id(&arn)
            .send()
            .await
            .with_context(|| format!("the dev KMS key {arn} is gone from the emulator"))?;
        return Ok(arn);
    }
    let mut pcrs = BTreeMap::new();
    for n in 0..=2 {
        pcrs.insert(n, hex::encode(nsm.pcr(n)?));
    }
    let created = client
        .create_key()
        .description("nitro-signer dev key")
        .policy(attested_key_policy(&KmsConfig::default().account_id, &pcrs))
        .send()
        .await
        .context("creating the dev KMS key")?;
    let arn = created
        .key_metadata()
        .and_then(|m| m.arn())
        .context("CreateKey returned no ARN")?
        .to_owned();
    write_private(&path, arn.as_bytes())?;
    Ok(arn)
}

/// Runs the stack until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let data_dir = std::path::absolute(&args.data_dir).context("resolving --data-dir")?;
    create_private_dir(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let socket = data_dir.join("enclave.sock");
    if socket.as_os_str().len() > 100 {
        bail!(
            "{} is too long for a Unix socket path; use a shorter --data-dir",
            socket.display()
        );
    }
    let credentials = DevCredentials::load_or_create(&data_dir)?;
    // The simulator's identity: created on first start, then reused by the enclave process.
    let nsm_dir = data_dir.join("nsm");
    let nsm = SimulatedNsm::open(SimulatorConfig::new(&nsm_dir))?;
    let secret_env = vec![
        (
            "NITRO_SIGNER_KMS_ACCESS_KEY_ID",
            credentials.access_key_id.clone(),
        ),
        (
            "NITRO_SIGNER_KMS_SECRET_ACCESS_KEY",
            credentials.secret_access_key.to_string(),
        ),
    ];

    let relay_threads = args.relay_worker_threads.to_string();
    let root = hex::encode(nsm.root_fingerprint());
    let kms_dir = data_dir.join("kms");
    let mut emulator = Component::start(
        "kms-emulator",
        vec![
            "kms-emulator".into(),
            "--exit-with-parent".into(),
            "--worker-threads".into(),
            relay_threads.clone().into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--region".into(),
            DEV_REGION.into(),
            "--data-dir".into(),
            kms_dir.into_os_string(),
            "--dangerous-attestation-root-sha256".into(),
            root.into(),
        ],
        secret_env,
    )
    .await?;
    emulator.announce();
    let kms_endpoint = emulator.address.clone();
    let kms_key = dev_key(&data_dir, &credentials.kms_client(&kms_endpoint), &nsm).await?;

    let mut enclave = Component::start(
        "enclave",
        vec![
            "enclave".into(),
            "--exit-with-parent".into(),
            "--listen".into(),
            format!("unix://{}", socket.display()).into(),
            "--kms-region".into(),
            DEV_REGION.into(),
            "--kms-endpoint".into(),
            kms_endpoint.clone().into(),
            "--kms-key-id".into(),
            kms_key.clone().into(),
            // The dev stack takes blobs without a policy too, unless asked not to; the
            // production image refuses them.
            "--require-policy".into(),
            args.require_policy.to_string().into(),
            "--dangerous-simulated-nsm".into(),
            nsm_dir.into_os_string(),
        ]
        .into_iter()
        .chain(
            args.bench_without_receipts
                .then(|| "--dangerous-without-receipts".into()),
        )
        .collect(),
        Vec::new(),
    )
    .await?;
    enclave.announce();

    let mut proxy_args = os(&["proxy", "--exit-with-parent", "--listen", &args.http]);
    proxy_args.extend(os(&["--worker-threads", &relay_threads]));
    proxy_args.extend(os(&["--enclave", &enclave.address]));
    let api_key = if args.auth {
        let (path, key) = dev_tenants(&data_dir)?;
        proxy_args.extend(["--tenants".into(), path.into_os_string()]);
        Some(key)
    } else {
        proxy_args.push("--no-auth".into());
        None
    };
    if !args.no_audit_log {
        let audit_log = match &args.audit_log {
            Some(path) => std::path::absolute(path).context("resolving --audit-log")?,
            None => data_dir.join("audit.jsonl"),
        };
        proxy_args.push("--audit-log".into());
        proxy_args.push(audit_log.into_os_string());
    }
    let accounts_dir = match &args.accounts_dir {
        Some(dir) => std::path::absolute(dir).context("resolving --accounts-dir")?,
        None => data_dir.join("accounts"),
    };
    proxy_args.push("--accounts-dir".into());
    proxy_args.push(accounts_dir.into_os_string());
    if let Some(upstream) = &args.upstream {
        proxy_args.extend(os(&["--upstream", upstream]));
    }
    let mut proxy = Component::start(
        "proxy",
        proxy_args,
        vec![
            ("AWS_ACCESS_KEY_ID", credentials.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY",
                credentials.secret_access_key.to_string(),
            ),
            ("AWS_REGION", DEV_REGION.to_owned()),
            // The dev proxy must not look for an EC2 instance role.
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ],
    )
    .await?;
    proxy.announce();

    let state = DevState {
        kms_endpoint,
        kms_key_arn: kms_key,
        proxy_url: proxy.address.clone(),
    };
    write_private(
        &data_dir.join("dev-stack.json"),
        &serde_json::to_vec_pretty(&state)?,
    )?;
    println!("kms-key {}", state.kms_key_arn);
    println!("data-dir {}", data_dir.display());
    if let Some(key) = &api_key {
        // Shown once: the tenants file keeps only its digest.
        println!("api-key {}", key.as_str());
    }
    println!("ready {}", proxy.address);

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            status = enclave.child.wait() => {
                eprintln!("nitro-signer dev: the enclave exited ({status:?}); restarting it");
                tokio::time::sleep(Duration::from_millis(100)).await;
                enclave.restart().await?;
            }
            status = proxy.child.wait() => bail!("the proxy exited ({status:?})"),
            status = emulator.child.wait() => bail!("the KMS emulator exited ({status:?})"),
        }
    }
    println!("stopping");
    // The proxy first: its last requests still reach the enclave.
    for component in [&mut proxy, &mut enclave, &mut emulator] {
        component.stop(Duration::from_secs(5)).await;
    }
    Ok(())
}
