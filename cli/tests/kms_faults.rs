//! KMS faults end to end: the real KMS emulator, enclave (NSM simulator) and parent proxy, each
//! its own `nitro-signer` process over real sockets, with a fault-injecting TCP relay (written
//! here) between the enclave and the emulator.
//!
//! The relay passes traffic through, or makes KMS unreachable (new connections closed at once,
//! open ones cut), slow (answers held longer than the enclave's per-attempt timeout), or failing
//! (every request answered by the relay itself with a KMS JSON 1.1 error), and counts the
//! attempts that meet a fault. Killing the emulator and restarting it on the same port with the
//! same data directory is the other outage.
//!
//! What must hold under every fault: keys already in the enclave's cache keep signing (no KMS
//! call); a key the enclave has not decrypted yet gets a clear `502 kms_unavailable` (`503 busy`
//! when KMS throttles) within a bound that follows from the configured timeouts and retries,
//! never a hang and never a 200;
//! the SDK retries with backoff and stops after its maximum attempts; once the fault is gone the
//! same key signs at once, without restarting the enclave or the proxy; and the enclave's KMS
//! counters in `/metrics` say what happened. The enclave runs with short KMS timeouts
//! (simulated-mode-only flags) to keep the tests fast, except in one test that checks that with
//! the production timeouts a slow KMS is still reported as `kms_unavailable`.
#![cfg(test)]

use std::{
    collections::BTreeMap,
    ffi::OsString,
    net::SocketAddr,
    time::{Duration, Instant},
};

use alloy_primitives::Address;
use nitro_signer_enclave::{
    cli::{KMS_ATTEMPT_TIMEOUT, KMS_OPERATION_TIMEOUT},
    nsm::{Nsm, SimulatedNsm, SimulatorConfig},
};
use nitro_signer_kms_emulator::{policy::attested_key_policy, service::KmsConfig};
use nitro_signer_tests::{
    answers, kms, libsecp, metrics,
    process::{Component, import_seed},
    reference_derivation,
    relay::{Fault, Mode, Relay},
};
use serde_json::{Value, json};

/// The `nitro-signer` binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_nitro-signer");

/// How the proxy answers when KMS fails: 502 `kms_unavailable`; when KMS throttles, 503 `busy`
/// (retry later), like the enclave's own KMS back-pressure.
const KMS_UNAVAILABLE: (u16, &str) = (502, "kms_unavailable");
const BUSY: (u16, &str) = (503, "busy");
const REGION: &str = "us-east-1";
const ACCESS_KEY_ID: &str = "AKIAFAULTTESTS000001";

/// The enclave's per-attempt KMS timeout in these tests (`--kms-attempt-timeout-ms`).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1_000);
/// The enclave's whole-operation KMS timeout in these tests (`--kms-operation-timeout-ms`).
const OPERATION_TIMEOUT: Duration = Duration::from_millis(4_000);
/// Attempts per KMS operation in the AWS SDK's standard retry mode (the enclave's setting).
const MAX_ATTEMPTS: usize = 3;
/// Backoff before the second and third attempts is at most 1 s and 2 s (standard mode: initial
/// backoff 1 s, doubled per attempt, with full jitter).
const MAX_BACKOFF_TOTAL: Duration = Duration::from_secs(3);
/// Scheduling, process and HTTP overhead on a busy 2-core machine.
const SLACK: Duration = Duration::from_secs(2);
/// How long KMS is slow for: longer than the attempt timeout, and than the whole operation, so
/// that no attempt can succeed.
const SLOW_DELAY: Duration = Duration::from_secs(6);

/// The credentials the emulator accepts and the proxy forwards to the enclave.
struct Credentials {
    secret: String,
}

impl Credentials {
    fn new() -> Self {
        let mut secret = [0u8; 20];
        aws_lc_rs::rand::fill(&mut secret).unwrap();
        Self {
            secret: hex::encode(secret),
        }
    }

    fn emulator_env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("NITRO_SIGNER_KMS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("NITRO_SIGNER_KMS_SECRET_ACCESS_KEY", &self.secret),
        ]
    }

    /// The standard AWS chain's environment, for the proxy and `keys import`.
    fn aws_env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", &self.secret),
            ("AWS_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
    }

    fn kms_client(&self, endpoint: &str) -> aws_sdk_kms::Client {
        kms::client(REGION, endpoint, ACCESS_KEY_ID, &self.secret)
    }
}

/// Emulator, relay, enclave and proxy, as `nitro-signer dev` wires them, with the relay between
/// the enclave and the emulator.
struct Stack {
    dir: tempfile::TempDir,
    credentials: Credentials,
    emulator: Option<Component>,
    emulator_args: Vec<OsString>,
    relay: Relay,
    _enclave: Component,
    _proxy: Component,
    url: String,
    key_arn: String,
    http: reqwest::Client,
    /// The longest a request for a key that needs KMS may take while KMS is faulty: the enclave
    /// gives up at its operation timeout at the latest (its KMS queue is empty in these tests).
    failure_bound: Duration,
}

/// The enclave's KMS timeouts.
#[derive(Debug, Clone, Copy)]
enum Timeouts {
    /// [`ATTEMPT_TIMEOUT`] and [`OPERATION_TIMEOUT`], through the simulated-mode-only flags.
    Short,
    /// What production runs with.
    Production,
}

impl Stack {
    async fn start(timeouts: Timeouts) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let credentials = Credentials::new();
        let nsm_dir = dir.path().join("nsm");
        let nsm = SimulatedNsm::open(SimulatorConfig::new(&nsm_dir)).unwrap();

        let mut emulator_args: Vec<OsString> = vec![
            "kms-emulator".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--region".into(),
            REGION.into(),
            "--data-dir".into(),
            dir.path().join("kms").into(),
            "--dangerous-attestation-root-sha256".into(),
            hex::encode(nsm.root_fingerprint()).into(),
        ];
        let emulator = Component::start(
            BIN,
            "kms-emulator",
            &emulator_args,
            &credentials.emulator_env(),
            &dir.path().join("kms-emulator.log"),
        )
        .await;
        // A restart must come back on the same port.
        let emulator_address: SocketAddr = emulator
            .address
            .strip_prefix("http://")
            .unwrap()
            .parse()
            .unwrap();
        emulator_args[2] = emulator_address.to_string().into();
        let key_arn = create_key(&credentials.kms_client(&emulator.address), &nsm).await;

        let relay = Relay::start(emulator_address).await;
        let socket = dir.path().join("enclave.sock");
        let (timeout_args, operation_timeout): (Vec<OsString>, _) = match timeouts {
            Timeouts::Short => (
                vec![
                    "--kms-attempt-timeout-ms".into(),
                    ATTEMPT_TIMEOUT.as_millis().to_string().into(),
                    "--kms-operation-timeout-ms".into(),
                    OPERATION_TIMEOUT.as_millis().to_string().into(),
                ],
                OPERATION_TIMEOUT,
            ),
            Timeouts::Production => (Vec::new(), KMS_OPERATION_TIMEOUT),
        };
        let enclave = Component::start(
            BIN,
            "enclave",
            &[
                "enclave".into(),
                "--listen".into(),
                format!("unix://{}", socket.display()).into(),
                "--kms-region".into(),
                REGION.into(),
                "--kms-endpoint".into(),
                relay.url().into(),
                "--kms-key-id".into(),
                key_arn.clone().into(),
                "--require-policy".into(),
                "false".into(),
                "--dangerous-simulated-nsm".into(),
                nsm_dir.into(),
            ]
            .into_iter()
            .chain(timeout_args)
            .collect::<Vec<OsString>>(),
            &[],
            &dir.path().join("enclave.log"),
        )
        .await;
        let proxy = Component::start(
            BIN,
            "proxy",
            &[
                "proxy".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--enclave".into(),
                enclave.address.clone().into(),
                "--no-auth".into(),
            ],
            &credentials.aws_env(),
            &dir.path().join("proxy.log"),
        )
        .await;
        let url = proxy.address.clone();
        Self {
            dir,
            credentials,
            emulator: Some(emulator),
            emulator_args,
            relay,
            _enclave: enclave,
            _proxy: proxy,
            url,
            key_arn,
            // Far above every bound asserted here: a hang fails the test with a clear message.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            failure_bound: operation_timeout + SLACK,
        }
    }

    fn emulator_url(&self) -> &str {
        &self.emulator.as_ref().unwrap().address
    }

    async fn kill_emulator(&mut self) {
        self.emulator.take().unwrap().kill().await;
    }

    async fn restart_emulator(&mut self) {
        assert!(self.emulator.is_none());
        let emulator = Component::start(
            BIN,
            "kms-emulator",
            &self.emulator_args,
            &self.credentials.emulator_env(),
            &self.dir.path().join("kms-emulator.log"),
        )
        .await;
        assert_eq!(
            emulator.address,
            format!("http://{}", self.emulator_args[2].to_str().unwrap())
        );
        self.emulator = Some(emulator);
    }

    /// A key blob for `seed`, encrypted with `nitro-signer keys import` straight at the
    /// emulator: the enclave has never decrypted it, so its first use needs KMS.
    fn import(&self, seed: [u8; 32]) -> String {
        let (blob, _) = import_seed(
            BIN,
            &[
                "--kind",
                "seed",
                "--kms-key-id",
                &self.key_arn,
                "--kms-endpoint",
                self.emulator_url(),
                "--kms-region",
                REGION,
            ],
            &self.credentials.aws_env(),
            &seed,
        );
        blob
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value, Duration) {
        let started = Instant::now();
        let (status, answer) = answers::post(&self.http, &self.url, path, body).await;
        (status, answer, started.elapsed())
    }

    /// Signs an EIP-1559 transaction for `user` and checks the answer independently.
    async fn sign(&self, blob: &str, user: &str, expected: Address, nonce: u64) -> Duration {
        let (status, answer, elapsed) = self
            .post(
                "/v1/sign/transaction",
                &json!({"keyBlob": blob, "userId": user, "transaction": transaction(nonce)}),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        check_transaction(&answer, expected, nonce);
        elapsed
    }

    /// A signing request that needs KMS while KMS is faulty: a clear 502 within the bound.
    /// Returns the time it took and the error message.
    async fn sign_fails(&self, blob: &str, nonce: u64) -> (Duration, String) {
        self.sign_fails_with(blob, nonce, KMS_UNAVAILABLE).await
    }

    /// Like [`Self::sign_fails`], with the expected HTTP status and error code.
    async fn sign_fails_with(
        &self,
        blob: &str,
        nonce: u64,
        expected: (u16, &str),
    ) -> (Duration, String) {
        let (status, answer, elapsed) = self
            .post(
                "/v1/sign/transaction",
                &json!({"keyBlob": blob, "userId": "alice", "transaction": transaction(nonce)}),
            )
            .await;
        self.assert_kms_failure(status, &answer, elapsed, expected);
        (
            elapsed,
            answer["error"]["message"].as_str().unwrap().to_owned(),
        )
    }

    /// A clear KMS error: `expected` status and code, a plain sentence about KMS that repeats no
    /// identifier from KMS's own message, no secret, within the bound.
    fn assert_kms_failure(
        &self,
        status: u16,
        answer: &Value,
        elapsed: Duration,
        (expected_status, expected_code): (u16, &str),
    ) {
        assert_eq!(status, expected_status, "{answer}");
        assert_eq!(answer["error"]["code"], expected_code, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("KMS "), "{message}");
        assert!(!message.contains("arn:"), "{message}");
        assert!(
            !message.contains(&self.credentials.secret),
            "the error carries the AWS secret key: {message}"
        );
        assert!(
            elapsed < self.failure_bound,
            "the error took {elapsed:?} (bound {:?})",
            self.failure_bound
        );
    }

    /// The enclave's counters, from the proxy's `/metrics`.
    async fn counters(&self) -> Counters {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| -> u64 { metrics::sample(&text, name) };
        assert_eq!(value("nitro_signer_enclave_up"), 1);
        Counters {
            kms_calls: value("nitro_signer_enclave_kms_calls_total"),
            kms_errors: value("nitro_signer_enclave_kms_errors_total"),
            cache_hits: value("nitro_signer_enclave_cache_hits_total"),
        }
    }

    /// Signs with `blob` until it works; returns the time it took and the attempts made. The
    /// first attempt is expected to work: nothing about the failure was kept.
    async fn recover(&self, blob: &str, expected: Address, nonce: u64) -> (Duration, u32) {
        let started = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let (status, answer, _) = self
                .post(
                    "/v1/sign/transaction",
                    &json!({"keyBlob": blob, "userId": "alice", "transaction": transaction(nonce)}),
                )
                .await;
            if status == 200 {
                check_transaction(&answer, expected, nonce);
                return (started.elapsed(), tries);
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "not recovered after 5 s: {status} {answer}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Stack {
    /// No component logged the AWS secret key, whatever the faults.
    fn assert_logs_clean(&self) {
        for name in ["kms-emulator", "enclave", "proxy"] {
            let log = std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap();
            assert!(!log.is_empty(), "the {name} logged nothing");
            assert!(
                !log.contains(&self.credentials.secret),
                "the {name}'s log contains the AWS secret key"
            );
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // On failure, show what the components logged before the directory goes away.
        if std::thread::panicking() {
            for name in ["kms-emulator", "enclave", "proxy"] {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- {name} log (last lines) ----");
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    kms_calls: u64,
    kms_errors: u64,
    cache_hits: u64,
}

impl Counters {
    /// How far the counters moved since `before`: (KMS calls, KMS errors, cache hits).
    fn since(self, before: Self) -> (u64, u64, u64) {
        (
            self.kms_calls - before.kms_calls,
            self.kms_errors - before.kms_errors,
            self.cache_hits - before.cache_hits,
        )
    }
}

/// A KMS key with the dev stack's policy: `Decrypt`/`GenerateDataKey` only for an enclave
/// attesting the simulated PCR0/1/2.
async fn create_key(client: &aws_sdk_kms::Client, nsm: &SimulatedNsm) -> String {
    let mut pcrs = BTreeMap::new();
    for n in 0..=2u8 {
        pcrs.insert(n, hex::encode(nsm.pcr(n).unwrap()));
    }
    let policy = attested_key_policy(&KmsConfig::default().account_id, &pcrs);
    let created = client
        .create_key()
        .description("kms fault tests")
        .policy(policy)
        .send()
        .await
        .unwrap();
    created.key_metadata().unwrap().arn().unwrap().to_owned()
}

fn transaction(nonce: u64) -> Value {
    json!({"type": "0x2", "chainId": "0x1", "nonce": format!("{nonce:#x}"),
           "maxFeePerGas": "0x77359400", "maxPriorityFeePerGas": "0x3b9aca00", "gas": "0x5208",
           "to": "0x3535353535353535353535353535353535353535", "value": "0x1"})
}

/// The signed transaction checked independently (see [`answers::check_transaction`]), and its
/// nonce.
fn check_transaction(answer: &Value, expected: Address, nonce: u64) {
    let tx = answers::check_transaction(answer, expected);
    assert_eq!(alloy_consensus::Transaction::nonce(&tx), nonce);
}

/// Alice's address under `seed`, from the reference derivation and libsecp256k1.
fn alice(seed: [u8; 32]) -> Address {
    libsecp::address(&reference_derivation::derive(&seed, "alice"))
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

#[tokio::test(flavor = "multi_thread")]
async fn kms_down_slow_or_failing_gives_bounded_errors_and_recovers() {
    let stack = Stack::start(Timeouts::Short).await;

    // A warm key: imported, then used once, so the enclave holds its seed.
    let warm_seed = [0x11; 32];
    let warm = Warm {
        blob: stack.import(warm_seed),
        user: "alice",
        address: alice(warm_seed),
    };
    stack.sign(&warm.blob, warm.user, warm.address, 0).await;
    let generated = a_generated_key(&stack).await;
    let mut nonce = 1;
    let mut report = Vec::new();

    for (name, mode) in [
        ("down", Mode::Down),
        ("slow", Mode::Slow(SLOW_DELAY)),
        ("500 KMSInternalException", Mode::Errors(Fault::Internal)),
        ("400 ThrottlingException", Mode::Errors(Fault::Throttling)),
    ] {
        // Cold: never decrypted by this enclave.
        let cold_seed = [0x20 + u8::try_from(report.len()).unwrap(); 32];
        let cold = stack.import(cold_seed);
        stack.relay.set(mode);
        // Throttling says "retry later".
        let expected = match mode {
            Mode::Errors(Fault::Throttling) => BUSY,
            _ => KMS_UNAVAILABLE,
        };

        // 1. Warm keys keep signing: cache hits, no KMS call.
        let warm_in = warm_keys_keep_signing(&stack, name, [&warm, &generated], &mut nonce).await;
        // 2, 3 and 5: a cold key fails clearly, within the bound, after retries; one KMS call.
        let (failed_in, attempts, message) =
            a_cold_key_fails_after_retries(&stack, name, mode, &cold, nonce, expected).await;
        let concurrent =
            concurrent_first_requests_share_one_failure(&stack, name, &cold, expected).await;
        let (generate_in, generate_attempts) =
            key_generation_fails_too(&stack, name, expected).await;
        // 4. The fault is gone: the same cold key signs at once, same enclave, same proxy.
        stack.relay.set(Mode::Pass);
        let recovered_in = the_cold_key_signs_at_once_and_stays_warm(
            &stack,
            name,
            &cold,
            alice(cold_seed),
            &mut nonce,
        )
        .await;

        let Concurrent {
            took: concurrent_in,
            calls,
            attempts: concurrent_attempts,
        } = concurrent;
        report.push(format!(
            "{name}: cold key 502 in {failed_in:.2?} after {attempts} attempts ({message}); \
             4 concurrent: {concurrent_in:.2?}, {calls} KMS call(s), {concurrent_attempts} \
             attempts; key generation 502 in {generate_in:.2?} after {generate_attempts} \
             attempts; warm key signed in {warm_in:.2?}; recovered in {recovered_in:.2?}"
        ));
    }
    eprintln!("{}", report.join("\n"));
    stack.assert_logs_clean();
}

/// A key the enclave holds: its blob, and the user it signs for with that user's address.
struct Warm {
    blob: String,
    user: &'static str,
    address: Address,
}

/// A key generated inside the enclave: cached at generation, never decrypted. Bob's.
async fn a_generated_key(stack: &Stack) -> Warm {
    let (status, generated, _) = stack.post("/v1/keys", &json!({"label": "t"})).await;
    assert_eq!(status, 201, "{generated}");
    let blob = generated["keyBlob"].as_str().unwrap().to_owned();
    let (status, answer, _) = stack
        .post("/v1/address", &json!({"keyBlob": blob, "userId": "bob"}))
        .await;
    assert_eq!(status, 200, "{answer}");
    Warm {
        blob,
        user: "bob",
        address: answers::address(&answer["address"]),
    }
}

/// Keys the enclave holds keep signing while KMS is faulty: cache hits, no KMS call, nothing
/// reaching the relay, promptly. How long the first one took.
async fn warm_keys_keep_signing(
    stack: &Stack,
    name: &str,
    keys: [&Warm; 2],
    nonce: &mut u64,
) -> Duration {
    let before = stack.counters().await;
    let mut took = Vec::new();
    for key in keys {
        took.push(stack.sign(&key.blob, key.user, key.address, *nonce).await);
        *nonce += 1;
    }
    assert_eq!(stack.counters().await.since(before), (0, 0, 2), "{name}");
    assert_eq!(
        stack.relay.take_faulted(),
        0,
        "{name}: warm keys reached KMS"
    );
    let warm_in = took[0];
    assert!(warm_in < Duration::from_secs(1), "{name}: {warm_in:?}");
    warm_in
}

/// A cold key gets a clear error within the bound, after the SDK retried with backoff and gave
/// up; the enclave counts one KMS call, which failed. The time it took, the attempts the relay
/// saw, and the error message.
async fn a_cold_key_fails_after_retries(
    stack: &Stack,
    name: &str,
    mode: Mode,
    cold: &str,
    nonce: u64,
    expected: (u16, &str),
) -> (Duration, usize, String) {
    let before = stack.counters().await;
    let (failed_in, message) = stack.sign_fails_with(cold, nonce, expected).await;
    // Retried with backoff, then given up.
    let attempts = stack.relay.take_faulted();
    assert!(
        (2..=MAX_ATTEMPTS).contains(&attempts),
        "{name}: the relay saw {attempts} attempts for one request"
    );
    // One KMS call for the enclave, which failed.
    assert_eq!(stack.counters().await.since(before), (1, 1, 0), "{name}");
    match mode {
        Mode::Slow(_) => {
            assert!(
                message.starts_with("KMS did not answer within"),
                "{name}: {message}"
            );
            // At least one attempt waited for its timeout.
            assert!(failed_in >= ATTEMPT_TIMEOUT, "{name}: {failed_in:?}");
        }
        Mode::Errors(fault) => {
            let expected = match fault {
                Fault::Internal => "KMSInternalException",
                Fault::Throttling => "ThrottlingException",
            };
            assert!(message.contains(expected), "{name}: {message}");
            // Ended by the retry limit, not by a timeout.
            assert!(
                failed_in < MAX_BACKOFF_TOTAL + SLACK,
                "{name}: {failed_in:?}"
            );
        }
        Mode::Down => {
            assert!(
                message.starts_with("KMS is unreachable"),
                "{name}: {message}"
            );
            assert!(
                failed_in < MAX_BACKOFF_TOTAL + SLACK,
                "{name}: {failed_in:?}"
            );
        }
        Mode::Pass => unreachable!(),
    }
    (failed_in, attempts, message)
}

/// What four concurrent first requests for one cold key cost.
struct Concurrent {
    took: Duration,
    calls: u64,
    attempts: usize,
}

/// Concurrent first requests for the same cold key share one KMS operation and its failure.
async fn concurrent_first_requests_share_one_failure(
    stack: &Stack,
    name: &str,
    cold: &str,
    expected: (u16, &str),
) -> Concurrent {
    let before = stack.counters().await;
    let started = Instant::now();
    let body = json!({"keyBlob": cold, "userId": "alice"});
    let request = || stack.post("/v1/address", &body);
    let (a, b, c, d) = tokio::join!(request(), request(), request(), request());
    for (status, answer, elapsed) in [a, b, c, d] {
        stack.assert_kms_failure(status, &answer, elapsed, expected);
    }
    let took = started.elapsed();
    let attempts = stack.relay.take_faulted();
    let (calls, errors, _) = stack.counters().await.since(before);
    assert_eq!(calls, errors, "{name}");
    // One, unless a request arrived after the shared failure (it then loads again).
    assert!(
        (1..=2).contains(&calls),
        "{name}: {calls} KMS calls for 4 concurrent requests"
    );
    assert!(
        attempts <= MAX_ATTEMPTS * usize::try_from(calls).unwrap(),
        "{name}: {attempts} attempts"
    );
    Concurrent {
        took,
        calls,
        attempts,
    }
}

/// Key generation needs KMS too: the same clear error, after retries, one failed KMS call. The
/// time it took and the attempts the relay saw.
async fn key_generation_fails_too(
    stack: &Stack,
    name: &str,
    expected: (u16, &str),
) -> (Duration, usize) {
    let before = stack.counters().await;
    let (status, answer, generate_in) = stack.post("/v1/keys", &json!({})).await;
    stack.assert_kms_failure(status, &answer, generate_in, expected);
    let generate_attempts = stack.relay.take_faulted();
    assert!(
        (2..=MAX_ATTEMPTS).contains(&generate_attempts),
        "{name}: {generate_attempts} attempts"
    );
    assert_eq!(stack.counters().await.since(before), (1, 1, 0), "{name}");
    (generate_in, generate_attempts)
}

/// Once the fault is gone, the cold key signs on the first request (one KMS call), and is warm
/// after that (a cache hit). How long the recovery took.
async fn the_cold_key_signs_at_once_and_stays_warm(
    stack: &Stack,
    name: &str,
    cold: &str,
    expected: Address,
    nonce: &mut u64,
) -> Duration {
    let before = stack.counters().await;
    let (recovered_in, tries) = stack.recover(cold, expected, *nonce).await;
    *nonce += 1;
    assert_eq!(tries, 1, "{name}: the first request after the fault failed");
    assert_eq!(stack.counters().await.since(before), (1, 0, 0), "{name}");
    // ... and it is warm now.
    let before = stack.counters().await;
    stack.sign(cold, "alice", expected, *nonce).await;
    *nonce += 1;
    assert_eq!(stack.counters().await.since(before), (0, 0, 1), "{name}");
    recovered_in
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_kms_emulator_restarted_on_the_same_port_and_data_serves_the_same_keys() {
    let mut stack = Stack::start(Timeouts::Short).await;
    let warm_seed = [0x31; 32];
    let warm = stack.import(warm_seed);
    stack.sign(&warm, "alice", alice(warm_seed), 0).await;
    let cold_seed = [0x32; 32];
    let cold = stack.import(cold_seed);

    stack.kill_emulator().await;
    let before = stack.counters().await;
    stack.sign(&warm, "alice", alice(warm_seed), 1).await;
    assert_eq!(stack.counters().await.since(before), (0, 0, 1));

    // Each request tries KMS again (a failure is not cached), and each fails in time.
    let before = stack.counters().await;
    let (failed_in, message) = stack.sign_fails(&cold, 2).await;
    let (failed_again_in, _) = stack.sign_fails(&cold, 2).await;
    assert_eq!(stack.counters().await.since(before), (2, 2, 0));
    for elapsed in [failed_in, failed_again_in] {
        assert!(elapsed < MAX_BACKOFF_TOTAL + SLACK, "{elapsed:?}");
    }

    // Same port, same data directory: the KMS key is still there.
    let restarted = Instant::now();
    stack.restart_emulator().await;
    let restart_in = restarted.elapsed();
    let before = stack.counters().await;
    let (recovered_in, tries) = stack.recover(&cold, alice(cold_seed), 2).await;
    assert_eq!(tries, 1, "the first request after the restart failed");
    assert_eq!(stack.counters().await.since(before), (1, 0, 0));
    // Key generation works again too.
    let (status, answer, _) = stack.post("/v1/keys", &json!({})).await;
    assert_eq!(status, 201, "{answer}");
    eprintln!(
        "emulator killed: cold key 502 in {failed_in:.2?}, then {failed_again_in:.2?} \
         ({message}); emulator restarted in {restart_in:.2?}; recovered in {recovered_in:.2?}"
    );
    stack.assert_logs_clean();
}

/// With the timeouts production runs with, a slow KMS must be reported by the enclave (502
/// `kms_unavailable`) before the proxy stops waiting for the enclave (504 `enclave_timeout`,
/// which would blame a healthy enclave).
#[tokio::test(flavor = "multi_thread")]
async fn with_production_timeouts_a_slow_kms_is_kms_unavailable_not_an_enclave_timeout() {
    let proxy_defaults = nitro_signer_proxy::Args::new("vsock://16:5000".parse().unwrap());
    let proxy_timeout = Duration::from_millis(proxy_defaults.request_timeout_ms.get());
    assert!(
        KMS_OPERATION_TIMEOUT + Duration::from_secs(1) < proxy_timeout,
        "the enclave's KMS operation timeout ({KMS_OPERATION_TIMEOUT:?}) must end well before \
         the proxy's request timeout ({proxy_timeout:?})"
    );

    let stack = Stack::start(Timeouts::Production).await;
    let cold_seed = [0x41; 32];
    let cold = stack.import(cold_seed);
    stack.relay.set(Mode::Slow(proxy_timeout * 2));
    let (failed_in, message) = stack.sign_fails(&cold, 0).await;
    let attempts = stack.relay.take_faulted();
    assert!(failed_in >= KMS_ATTEMPT_TIMEOUT, "{failed_in:?}");
    assert!(failed_in < proxy_timeout, "{failed_in:?}");
    assert!(
        (2..=MAX_ATTEMPTS).contains(&attempts),
        "{attempts} attempts"
    );
    stack.relay.set(Mode::Pass);
    let (recovered_in, _) = stack.recover(&cold, alice(cold_seed), 0).await;
    eprintln!(
        "production timeouts, slow KMS: 502 in {failed_in:.2?} after {attempts} attempts \
         ({message}); recovered in {recovered_in:.2?}"
    );
    stack.assert_logs_clean();
}

/// How soon requests sign again after a stray peer replaced the enclave's credentials: the
/// proxy pushes its own again as soon as an answer says `no_credentials`, instead of at its next
/// refresh (15 minutes for credentials without an expiry, as here).
const RECOVERY_BOUND: Duration = Duration::from_secs(2);
/// The proxy pushes on `no_credentials` at most once per 2 s (`KICK_MIN_INTERVAL`): when the
/// stray peer strikes again right after a push, recovery waits for that, plus slack.
const RATE_LIMITED_RECOVERY_BOUND: Duration = Duration::from_secs(3);

/// Any process on the parent can connect to the enclave and send `SetCredentials`; the enclave
/// keeps the last credentials sent. A stray peer sends junk: the next request that needs KMS
/// fails with `no_credentials`, and requests sign again within [`RECOVERY_BOUND`] (within
/// [`RATE_LIMITED_RECOVERY_BOUND`] when it strikes again at once).
#[tokio::test(flavor = "multi_thread")]
async fn a_stray_set_credentials_is_undone_by_the_proxy_within_the_bound() {
    let stack = Stack::start(Timeouts::Short).await;
    // Cold keys (never decrypted by this enclave): each use needs KMS, so the credentials.
    let seeds: Vec<[u8; 32]> = (0..5u8).map(|i| [0x60 + i; 32]).collect();
    let blobs: Vec<String> = seeds.iter().map(|seed| stack.import(*seed)).collect();
    stack.sign(&blobs[0], "alice", alice(seeds[0]), 0).await;
    // Past the rate limit of the proxy's start-up push.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    for (round, bound) in [RECOVERY_BOUND, RATE_LIMITED_RECOVERY_BOUND]
        .into_iter()
        .enumerate()
    {
        let stray_at = stray_set_credentials(&stack).await;
        let (failing, recovering) = (1 + 2 * round, 2 + 2 * round);
        let (status, answer, _) = stack
            .post(
                "/v1/sign/transaction",
                &json!({"keyBlob": blobs[failing], "userId": "alice", "transaction": transaction(1)}),
            )
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (503, Some("no_credentials")),
            "{answer}"
        );
        let recovered_in = loop {
            let (status, answer, _) = stack
                .post(
                    "/v1/sign/transaction",
                    &json!({"keyBlob": blobs[recovering], "userId": "alice", "transaction": transaction(2)}),
                )
                .await;
            if status == 200 {
                check_transaction(&answer, alice(seeds[recovering]), 2);
                break stray_at.elapsed();
            }
            assert_eq!(answer["error"]["code"], "no_credentials", "{answer}");
            assert!(
                stray_at.elapsed() < bound,
                "round {round}: still no_credentials {:?} after the stray SetCredentials",
                stray_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        eprintln!("round {round}: signing again {recovered_in:?} after the stray SetCredentials");
        assert!(recovered_in < bound, "round {round}: {recovered_in:?}");
    }
}

/// Connects to the enclave as a stray peer would, replaces its credentials with junk the
/// emulator does not know, and disconnects; returns when it was done.
async fn stray_set_credentials(stack: &Stack) -> Instant {
    let address: nitro_signer_common::transport::Address = stack._enclave.address.parse().unwrap();
    let mut config = nitro_signer_client::EnclaveConfig::new(address);
    config.connections = 1;
    let stray = nitro_signer_client::EnclaveClient::new(config);
    assert!(stray.wait_until_live(Duration::from_secs(5)).await);
    let expires_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3_600;
    stray
        .set_credentials(nitro_signer_common::protocol::AwsCredentials {
            access_key_id: "AKIASTRAYPEER0000001".into(),
            secret_access_key: "junk".to_owned().into(),
            session_token: None,
            expires_at: Some(expires_at),
        })
        .await
        .unwrap();
    drop(stray);
    Instant::now()
}
