//! AWS credentials for the enclave's KMS calls: read through the standard AWS credential chain
//! (environment, profile, web identity, container, IMDSv2 on EC2) and pushed to the enclave,
//! again before they expire. They are never logged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::ProvideCredentials;
use nitro_signer_client::EnclaveClient;
use nitro_signer_common::protocol::AwsCredentials;
use tracing::{info, warn};
use zeroize::Zeroizing;

/// Refresh this long before the credentials expire.
const BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Refresh period for credentials without an expiry.
const WITHOUT_EXPIRY: Duration = Duration::from_secs(15 * 60);
/// Retry period when the chain finds nothing or fails.
const RETRY: Duration = Duration::from_secs(30);
/// Shortest wait between two refreshes.
const MIN_WAIT: Duration = Duration::from_secs(10);

/// Fetches credentials through the standard chain and pushes them to the enclave.
pub(crate) struct Refresher {
    chain: DefaultCredentialsChain,
    client: EnclaveClient,
    found_before: Option<bool>,
}

impl std::fmt::Debug for Refresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresher").finish_non_exhaustive()
    }
}

impl Refresher {
    /// A refresher pushing to `client`'s connections.
    pub(crate) async fn new(client: EnclaveClient) -> Self {
        Self {
            chain: DefaultCredentialsChain::builder().build().await,
            client,
            found_before: None,
        }
    }

    /// Fetches and pushes credentials once; returns how long to wait before the next time.
    pub(crate) async fn refresh_once(&mut self) -> Duration {
        match self.chain.provide_credentials().await {
            Ok(credentials) => {
                let expiry = credentials.expiry();
                let forwarded = AwsCredentials {
                    access_key_id: credentials.access_key_id().to_owned(),
                    secret_access_key: Zeroizing::new(credentials.secret_access_key().to_owned()),
                    session_token: credentials
                        .session_token()
                        .map(|token| Zeroizing::new(token.to_owned())),
                    expires_at: expiry
                        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
                        .map(|since| since.as_secs()),
                };
                drop(credentials);
                let expires_in_s = expiry
                    .and_then(|at| at.duration_since(SystemTime::now()).ok())
                    .map(|left| left.as_secs());
                match self.client.set_credentials(forwarded).await {
                    Ok(()) => info!(?expires_in_s, "AWS credentials sent to the enclave"),
                    Err(error) => warn!(
                        ?expires_in_s,
                        %error,
                        "AWS credentials loaded; not every enclave connection took them yet \
                         (new connections get them when they open)"
                    ),
                }
                self.found_before = Some(true);
                next_refresh(expiry, SystemTime::now())
            }
            Err(error) => {
                if self.found_before != Some(false) {
                    warn!(
                        %error,
                        "no AWS credentials found; the proxy keeps running, and the enclave \
                         answers no_credentials to operations that need KMS"
                    );
                }
                self.found_before = Some(false);
                RETRY
            }
        }
    }

    /// Waits `first_wait`, then refreshes forever.
    pub(crate) async fn run(mut self, first_wait: Duration) {
        let mut wait = first_wait;
        loop {
            tokio::time::sleep(wait).await;
            wait = self.refresh_once().await;
        }
    }
}

/// When to fetch credentials again.
fn next_refresh(expiry: Option<SystemTime>, now: SystemTime) -> Duration {
    match expiry {
        None => WITHOUT_EXPIRY,
        Some(expiry) => expiry
            .duration_since(now)
            .unwrap_or_default()
            .saturating_sub(BEFORE_EXPIRY)
            .max(MIN_WAIT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_before_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(next_refresh(None, now), Duration::from_secs(900));
        assert_eq!(
            next_refresh(Some(now + Duration::from_secs(3600)), now),
            Duration::from_secs(3300)
        );
        assert_eq!(
            next_refresh(Some(now + Duration::from_secs(60)), now),
            MIN_WAIT
        );
        assert_eq!(
            next_refresh(Some(now - Duration::from_secs(60)), now),
            MIN_WAIT
        );
    }
}
