//! Prometheus metrics (OpenMetrics text at `GET /metrics`).
//!
//! Kept by the proxy: requests by endpoint and status, latency by endpoint, and latency by stage
//! (`proxy`: everything but the enclave round trip; `enclave`: the round trip). Read at scrape
//! time: the enclave connection pool's counters, and the enclave's own counters from a `Status`
//! call (`nitro_signer_enclave_up` says whether that call succeeded).

use std::time::Duration;

use nitro_signer_client::ConnectionStats;
use nitro_signer_common::{protocol::Status, resources};
use prometheus_client::{
    encoding::text::{encode_eof, encode_registry},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

type EndpointLabel = [(&'static str, &'static str); 1];
type StatusLabel = [(&'static str, u16); 1];
type StageLabels = [(&'static str, &'static str); 2];

fn latency_histogram() -> Histogram {
    // 100 µs to ~13 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 18))
}

/// The proxy's own metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<(EndpointLabel, StatusLabel), Counter>,
    latency: Family<EndpointLabel, Histogram, fn() -> Histogram>,
    stages: Family<StageLabels, Histogram, fn() -> Histogram>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("nitro_signer_proxy");
        let requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by endpoint and status",
            requests.clone(),
        );
        let latency: Family<EndpointLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency, by endpoint",
            Unit::Seconds,
            latency.clone(),
        );
        let stages: Family<StageLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "stage_duration",
            "Time per request spent in the proxy (stage=proxy) and waiting for the enclave \
             (stage=enclave), by endpoint",
            Unit::Seconds,
            stages.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            stages,
        }
    }

    /// Records one answered request.
    pub(crate) fn observe(
        &self,
        endpoint: &'static str,
        status: u16,
        total: Duration,
        enclave: Option<Duration>,
    ) {
        self.requests
            .get_or_create(&([("endpoint", endpoint)], [("status", status)]))
            .inc();
        self.latency
            .get_or_create(&[("endpoint", endpoint)])
            .observe(total.as_secs_f64());
        let enclave_time = enclave.unwrap_or_default();
        self.stages
            .get_or_create(&[("endpoint", endpoint), ("stage", "proxy")])
            .observe(total.saturating_sub(enclave_time).as_secs_f64());
        if let Some(enclave) = enclave {
            self.stages
                .get_or_create(&[("endpoint", endpoint), ("stage", "enclave")])
                .observe(enclave.as_secs_f64());
        }
    }

    /// The OpenMetrics text: the proxy's metrics, the connection pool's, and the enclave's
    /// counters when `status` is known.
    pub(crate) fn encode(
        &self,
        connections: ConnectionStats,
        status: Option<&Status>,
    ) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode_registry(&mut text, &self.registry)?;

        let mut pool = Registry::with_prefix("nitro_signer_proxy_enclave");
        pool.register(
            "connections",
            "Open connections to the enclave",
            ConstGauge::new(i64::try_from(connections.live).unwrap_or(i64::MAX)),
        );
        pool.register(
            "connections_configured",
            "Connections to the enclave the proxy keeps open when it can",
            ConstGauge::new(i64::try_from(connections.configured).unwrap_or(i64::MAX)),
        );
        pool.register(
            "reconnects",
            "Connections to the enclave re-established after one was lost",
            ConstCounter::new(connections.reconnects),
        );
        pool.register(
            "disconnects",
            "Connections to the enclave lost",
            ConstCounter::new(connections.disconnects),
        );
        encode_registry(&mut text, &pool)?;

        let mut enclave = Registry::with_prefix("nitro_signer_enclave");
        enclave.register(
            "up",
            "Whether the enclave answered the status call of this scrape",
            ConstGauge::new(i64::from(status.is_some())),
        );
        if let Some(status) = status {
            enclave.register(
                "kms_calls",
                "Calls the enclave made to KMS",
                ConstCounter::new(status.kms_calls),
            );
            enclave.register(
                "kms_errors",
                "KMS calls that failed",
                ConstCounter::new(status.kms_errors),
            );
            enclave.register(
                "cache_hits",
                "Key lookups answered from the enclave's cache",
                ConstCounter::new(status.cache_hits),
            );
            enclave.register(
                "cached_keys",
                "Decrypted keys cached in the enclave",
                ConstGauge::new(i64::try_from(status.cached_keys).unwrap_or(i64::MAX)),
            );
            enclave.register(
                "signatures",
                "Signatures made by the enclave",
                ConstCounter::new(status.signatures),
            );
            enclave.register(
                "has_credentials",
                "Whether the enclave holds unexpired AWS credentials",
                ConstGauge::new(i64::from(status.has_credentials)),
            );
            if status.cpu_micros > 0 {
                enclave.register(
                    "cpu_seconds",
                    "CPU time used by the enclave process, user and system",
                    ConstCounter::new(status.cpu_micros as f64 / 1e6),
                );
            }
            if status.resident_bytes > 0 {
                enclave.register(
                    "resident_memory_bytes",
                    "Resident memory of the enclave process",
                    ConstGauge::new(i64::try_from(status.resident_bytes).unwrap_or(i64::MAX)),
                );
            }
        }
        encode_registry(&mut text, &enclave)?;

        // The proxy's own, under the names Prometheus client libraries use for them.
        let mut process = Registry::with_prefix("process");
        if let Some(cpu) = resources::cpu_time() {
            process.register(
                "cpu_seconds",
                "Total user and system CPU time spent in seconds",
                ConstCounter::new(cpu.as_secs_f64()),
            );
        }
        if let Some(resident) = resources::resident_bytes() {
            process.register(
                "resident_memory_bytes",
                "Resident memory size in bytes",
                ConstGauge::new(i64::try_from(resident).unwrap_or(i64::MAX)),
            );
        }
        encode_registry(&mut text, &process)?;
        encode_eof(&mut text)?;
        Ok(text)
    }
}
