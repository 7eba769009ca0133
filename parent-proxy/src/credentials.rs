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

/// Fetches credentials and pushes them to the enclave, forever.
pub(crate) async fn refresh_forever(client: EnclaveClient) {
    let chain = DefaultCredentialsChain::builder().build().await;
    let mut found_before = None::<bool>;
    loop {
        let wait = match chain.provide_credentials().await {
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
                match client.set_credentials(forwarded).await {
                    Ok(()) => info!(?expires_in_s, "AWS credentials sent to the enclave"),
                    Err(error) => warn!(
                        ?expires_in_s,
                        %error,
                        "AWS credentials loaded; not every enclave connection took them yet \
                         (new connections get them when they open)"
                    ),
                }
                found_before = Some(true);
                next_refresh(expiry, SystemTime::now())
            }
            Err(error) => {
                if found_before != Some(false) {
                    warn!(
                        %error,
                        "no AWS credentials found; the proxy keeps running, and the enclave \
                         answers no_credentials to operations that need KMS"
                    );
                }
                found_before = Some(false);
                RETRY
            }
        };
        tokio::time::sleep(wait).await;
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
