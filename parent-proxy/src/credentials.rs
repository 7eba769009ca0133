//! AWS credentials for the enclave's KMS calls: read through the standard AWS credential chain
//! (environment, profile, web identity, container, IMDSv2 on EC2) and pushed to the enclave,
//! again before they expire, and again at once when the enclave says its credentials do not work.
//! They are never logged.
//!
//! The enclave keeps the last credentials any peer sent, and any process on the parent can open a
//! connection to it, so a stray peer can replace them with junk. The proxy does not wait for its
//! refresh period to undo that: an answer `no_credentials` (the enclave has none, or KMS refused
//! them) [kicks](Kick) the refresher, which pushes again at once, at most once per
//! [`KICK_MIN_INTERVAL`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::time::Instant;

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

/// Shortest time between two pushes caused by [`Kick`]s: a peer that keeps replacing the
/// credentials cannot make the proxy fetch and push in a loop.
pub(crate) const KICK_MIN_INTERVAL: Duration = Duration::from_secs(2);

/// Fetches credentials through the standard chain and pushes them to the enclave.
pub(crate) struct Refresher {
    chain: DefaultCredentialsChain,
    client: EnclaveClient,
    found_before: Option<bool>,
    kick: Kick,
    last_push: Option<Instant>,
}

/// Asks the refresher to push credentials again now (rate-limited), because an answer said the
/// enclave's credentials do not work. Cheap and never waits.
#[derive(Debug, Clone, Default)]
pub(crate) struct Kick(Arc<Notify>);

impl Kick {
    /// Requests a push; requests made before the refresher gets to it count as one.
    pub(crate) fn kick(&self) {
        self.0.notify_one();
    }
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
            kick: Kick::default(),
            last_push: None,
        }
    }

    /// The handle that asks this refresher to push again now.
    pub(crate) fn kick_handle(&self) -> Kick {
        self.kick.clone()
    }

    /// Fetches and pushes credentials once; returns how long to wait before the next time.
    pub(crate) async fn refresh_once(&mut self) -> Duration {
        self.last_push = Some(Instant::now());
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

    /// Waits `first_wait`, then refreshes forever: on schedule, and when kicked (at most once
    /// per [`KICK_MIN_INTERVAL`]).
    pub(crate) async fn run(mut self, first_wait: Duration) {
        let mut wait = first_wait;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.kick.0.notified() => {
                    if let Some(last) = self.last_push {
                        tokio::time::sleep_until(last + KICK_MIN_INTERVAL).await;
                    }
                    info!("the enclave answered no_credentials; sending AWS credentials again");
                }
            }
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
