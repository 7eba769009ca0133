//! Simulated mode's options, compiled only with the `simulated` feature (`nitro-signer dev` and
//! the tests turn it on; `Dockerfile.enclave` does not, so the production binary refuses these
//! options as unknown).
//!
//! Simulated mode swaps two things and nothing else: the NSM (the simulator instead of
//! `/dev/nsm`) and, optionally, the KMS endpoint (the emulator's plain-HTTP URL instead of AWS KMS
//! through the vsock-proxy). Both come out as a [`Platform`], from which [`crate::cli::run`]
//! builds the same enclave as in production.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tracing::warn;

use crate::{
    cli::{KmsRoute, KmsTimeouts, Platform, StartError},
    nsm::{SimulatedNsm, SimulatorConfig},
};

/// The options of simulated mode. Each can also be set through the environment variable shown
/// by `--help`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SimulatedArgs {
    /// Use the NSM simulator with its state (test root of trust, PCRs) in DIR instead of
    /// `/dev/nsm`. Development and tests only: attestation documents are then signed by a local
    /// test root that production verifiers and KMS key policies do not trust.
    #[arg(long, env = "NITRO_SIGNER_DANGEROUS_SIMULATED_NSM", value_name = "DIR")]
    pub dangerous_simulated_nsm: Option<PathBuf>,

    /// KMS endpoint URL, e.g. the KMS emulator's `http://127.0.0.1:4000`; only with
    /// --dangerous-simulated-nsm. Without it, the enclave reaches `kms.REGION.amazonaws.com` over
    /// TLS that ends inside the enclave (embedded Amazon roots), through the parent's vsock-proxy
    /// at `vsock://3:8000`, relayed by a forwarder on `127.0.0.1:443`.
    #[arg(long, env = "NITRO_SIGNER_KMS_ENDPOINT")]
    pub kms_endpoint: Option<String>,

    /// Milliseconds one KMS attempt may take before the SDK abandons it and retries with
    /// backoff (default: `KMS_ATTEMPT_TIMEOUT`, 3000). Tests only, with
    /// --dangerous-simulated-nsm, so that fault tests can make a slow KMS fail fast.
    #[arg(
        long,
        env = "NITRO_SIGNER_KMS_ATTEMPT_TIMEOUT_MS",
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub kms_attempt_timeout_ms: Option<u64>,

    /// Milliseconds a whole KMS operation, retries and backoff included, may take (default:
    /// `KMS_OPERATION_TIMEOUT`, 8000). Tests only, with --dangerous-simulated-nsm, like
    /// --kms-attempt-timeout-ms.
    #[arg(
        long,
        env = "NITRO_SIGNER_KMS_OPERATION_TIMEOUT_MS",
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub kms_operation_timeout_ms: Option<u64>,
}

impl SimulatedArgs {
    /// The simulated platform when `--dangerous-simulated-nsm` asks for it; `None` (production
    /// mode) otherwise, which the other options of this struct refuse.
    pub(crate) async fn platform(&self, region: &str) -> Result<Option<Platform>, StartError> {
        let Some(dir) = &self.dangerous_simulated_nsm else {
            if self.kms_endpoint.is_some() {
                // Without the pinned TLS of the vsock-proxy transport, the parent could answer
                // for KMS and choose the seeds this enclave uses.
                return Err(StartError::Config(
                    "--kms-endpoint is for simulated mode only (with --dangerous-simulated-nsm)",
                ));
            }
            if self.kms_attempt_timeout_ms.is_some() || self.kms_operation_timeout_ms.is_some() {
                // Tests shorten them to exercise a slow KMS quickly; production keeps the
                // defaults.
                return Err(StartError::Config(
                    "--kms-attempt-timeout-ms and --kms-operation-timeout-ms are for tests in \
                     simulated mode only (with --dangerous-simulated-nsm)",
                ));
            }
            return Ok(None);
        };
        warn!(
            dir = %dir.display(),
            "SIMULATED NSM: attestation documents are signed by a local test root; not for production"
        );
        let nsm = Arc::new(SimulatedNsm::open(SimulatorConfig::new(dir))?);
        let kms = match &self.kms_endpoint {
            Some(endpoint) => KmsRoute {
                endpoint: endpoint.clone(),
                http_client: None,
                _transport: None,
            },
            None => KmsRoute::through_vsock_proxy(region).await?,
        };
        let defaults = KmsTimeouts::default();
        Ok(Some(Platform {
            nsm,
            kms,
            kms_timeouts: KmsTimeouts {
                attempt: self
                    .kms_attempt_timeout_ms
                    .map_or(defaults.attempt, Duration::from_millis),
                operation: self
                    .kms_operation_timeout_ms
                    .map_or(defaults.operation, Duration::from_millis),
            },
            simulated: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn its_other_options_need_the_simulated_nsm() {
        let region = "us-east-1";
        assert!(matches!(
            SimulatedArgs::default().platform(region).await,
            Ok(None)
        ));
        for args in [
            SimulatedArgs {
                kms_endpoint: Some("http://127.0.0.1:4000".into()),
                ..SimulatedArgs::default()
            },
            SimulatedArgs {
                kms_attempt_timeout_ms: Some(100),
                ..SimulatedArgs::default()
            },
            SimulatedArgs {
                kms_operation_timeout_ms: Some(100),
                ..SimulatedArgs::default()
            },
        ] {
            assert!(
                matches!(args.platform(region).await, Err(StartError::Config(_))),
                "{args:?}"
            );
        }
    }
}
