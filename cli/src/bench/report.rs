//! The report's lines, and what they are computed from: latency percentiles, errors, and the
//! server's counters in `/metrics` before and after a run.

use std::{collections::BTreeMap, time::Duration};

/// The latency line of a report, from latencies sorted ascending.
pub(super) fn print_latency(sorted: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "latency             p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(sorted, 0.50)),
        ms(percentile(sorted, 0.90)),
        ms(percentile(sorted, 0.99)),
        ms(sorted.last().copied().unwrap_or_default()),
    );
}

/// The error count of a report and each distinct error.
pub(super) fn print_errors(errors: &BTreeMap<String, u64>) {
    println!("errors              {}", errors.values().sum::<u64>());
    for (error, count) in errors {
        println!("  {count} × {error}");
    }
}

/// The `p` quantile of latencies sorted ascending.
pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Sums of `nitro_signer_proxy_stage_duration_seconds` by stage for one endpoint.
pub(super) fn stage_sums(metrics: &str, endpoint: &str) -> Vec<(String, f64, f64)> {
    let mut stages = Vec::new();
    for stage in ["proxy", "enclave"] {
        let find = |suffix: &str| {
            metrics
                .lines()
                .find(|line| {
                    line.starts_with(&format!(
                        "nitro_signer_proxy_stage_duration_seconds_{suffix}{{"
                    )) && line.contains(&format!("endpoint=\"{endpoint}\""))
                        && line.contains(&format!("stage=\"{stage}\""))
                })
                .and_then(|line| line.rsplit(' ').next())
                .and_then(|value| value.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        stages.push((stage.to_owned(), find("sum"), find("count")));
    }
    stages
}

/// The value of an unlabelled sample `name` in a `/metrics` text.
pub(super) fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// CPU time per request of each process, in µs, from the counters before and after the run.
pub(super) fn cpu_per_request(
    before: &str,
    after: &str,
    own: Option<Duration>,
    requests: usize,
) -> Vec<(&'static str, Option<f64>)> {
    let per_request = |seconds: f64| seconds * 1e6 / requests.max(1) as f64;
    let delta = |name: &str| Some(sample(after, name)? - sample(before, name)?);
    vec![
        (
            "enclave",
            delta("nitro_signer_enclave_cpu_seconds_total").map(per_request),
        ),
        ("proxy", delta("process_cpu_seconds_total").map(per_request)),
        (
            "load generator",
            own.map(|own| per_request(own.as_secs_f64())),
        ),
    ]
}
