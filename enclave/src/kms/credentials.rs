//! The AWS credentials the parent forwards, as the SDK's credentials provider sees them.
//!
//! They are the instance role's, not enclave secrets, but they are still zeroized and never
//! logged.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_credential_types::provider::{
    ProvideCredentials, error::CredentialsError, future::ProvideCredentials as CredentialsFuture,
};
use nitro_signer_common::protocol::AwsCredentials;

use super::KmsError;

/// The longest the enclave trusts credentials for, counted from their arrival. Instance-role
/// credentials from IMDS last about 6 hours, and no role session lasts more than 12; a later
/// expiry from the parent, or none, is cut to this. The proxy sends fresh ones well before.
pub const MAX_CREDENTIALS_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The AWS credentials the parent sent, for the SDK.
#[derive(Debug, Default)]
pub struct CredentialStore(RwLock<Option<aws_credential_types::Credentials>>);

impl CredentialStore {
    /// Stores `credentials` in place of the current ones: the last credentials sent win. Their
    /// expiry is capped at [`MAX_CREDENTIALS_LIFETIME`] from now, and a missing expiry counts as
    /// that cap. Refuses credentials that have already expired (keeping the current ones) and
    /// an expiry that is not a representable time.
    pub fn set(&self, credentials: &AwsCredentials) -> Result<(), KmsError> {
        self.set_at(credentials, SystemTime::now())
    }

    fn set_at(&self, credentials: &AwsCredentials, now: SystemTime) -> Result<(), KmsError> {
        let cap = now
            .checked_add(MAX_CREDENTIALS_LIFETIME)
            .ok_or_else(|| KmsError::InvalidCredentials("the clock is out of range".into()))?;
        let expiry = match credentials.expires_at {
            None => cap,
            Some(secs) => {
                let at = UNIX_EPOCH
                    .checked_add(Duration::from_secs(secs))
                    .filter(|_| i64::try_from(secs).is_ok())
                    .ok_or_else(|| {
                        KmsError::InvalidCredentials(format!("expiry {secs} is out of range"))
                    })?;
                if at <= now {
                    return Err(KmsError::InvalidCredentials(format!(
                        "they expired at {secs} (Unix time), before they arrived"
                    )));
                }
                at.min(cap)
            }
        };
        let sdk = aws_credential_types::Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.as_str(),
            credentials.session_token.as_ref().map(|t| t.to_string()),
            Some(expiry),
            "nitro-signer-parent",
        );
        // Last wins, whatever the expiries. The enclave cannot tell the real proxy from any
        // other process on the parent that opens a connection, so an ordering rule such as
        // "keep the current credentials while they expire later" only lets whoever claims the
        // latest expiry (year 2100, say) shut every later refresh out. With last-wins, junk
        // credentials last until the proxy's next refresh (minutes to a few hours), which the
        // cap above bounds too; a parent that keeps sending junk is a denial of service, out of
        // scope. The cost: a refresh that arrives after a newer one (two connections racing)
        // replaces it, with credentials that are still valid (the proxy sends no expired ones)
        // until the next refresh.
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(sdk);
        Ok(())
    }

    /// Whether unexpired credentials are stored.
    pub fn is_valid(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> Option<aws_credential_types::Credentials> {
        let slot = self.0.read().ok()?;
        let credentials = slot.as_ref()?;
        match credentials.expiry() {
            Some(expiry) if expiry <= SystemTime::now() => None,
            _ => Some(credentials.clone()),
        }
    }
}

#[derive(Debug)]
pub(super) struct SharedStore(pub(super) Arc<CredentialStore>);

impl ProvideCredentials for SharedStore {
    fn provide_credentials<'a>(&'a self) -> CredentialsFuture<'a>
    where
        Self: 'a,
    {
        CredentialsFuture::ready(
            self.0.current().ok_or_else(|| {
                CredentialsError::not_loaded("no valid credentials from the parent")
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::*;

    fn credentials(id: &str, expires_at: Option<u64>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: id.into(),
            secret_access_key: Zeroizing::new("secret".into()),
            session_token: None,
            expires_at,
        }
    }

    fn unix(at: SystemTime) -> u64 {
        at.duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    fn stored(store: &CredentialStore) -> (String, SystemTime) {
        let current = store.current().unwrap();
        (
            current.access_key_id().to_owned(),
            current.expiry().unwrap(),
        )
    }

    #[test]
    fn a_far_future_or_missing_expiry_is_capped() {
        let store = CredentialStore::default();
        let now = SystemTime::now();
        let cap = now + MAX_CREDENTIALS_LIFETIME;
        // Year 2100.
        store
            .set_at(&credentials("junk", Some(4_102_444_800)), now)
            .unwrap();
        assert_eq!(stored(&store), ("junk".to_owned(), cap));
        store.set_at(&credentials("static", None), now).unwrap();
        assert_eq!(stored(&store), ("static".to_owned(), cap));
        // Under the cap, the expiry is kept (to the second the protocol carries).
        let hour = unix(now) + 3600;
        store.set_at(&credentials("imds", Some(hour)), now).unwrap();
        assert_eq!(
            stored(&store),
            ("imds".to_owned(), UNIX_EPOCH + Duration::from_secs(hour))
        );
        // Capped credentials expire with the cap.
        let store = CredentialStore::default();
        let long_ago = now - MAX_CREDENTIALS_LIFETIME - Duration::from_secs(1);
        store.set_at(&credentials("old", None), long_ago).unwrap();
        assert!(!store.is_valid());
    }

    #[test]
    fn the_last_credentials_sent_win() {
        let store = CredentialStore::default();
        let now = unix(SystemTime::now());
        // A stray peer's far-future junk does not shut the proxy's refreshes out.
        store
            .set(&credentials("junk", Some(4_102_444_800)))
            .unwrap();
        store.set(&credentials("proxy", Some(now + 3600))).unwrap();
        assert_eq!(stored(&store).0, "proxy");
        // Nor does a longer expiry than the next credentials'.
        store.set(&credentials("longer", Some(now + 7200))).unwrap();
        store.set(&credentials("shorter", Some(now + 600))).unwrap();
        assert_eq!(stored(&store).0, "shorter");
        store.set(&credentials("none", None)).unwrap();
        assert_eq!(stored(&store).0, "none");
    }

    #[test]
    fn expired_or_malformed_credentials_are_refused_and_change_nothing() {
        let store = CredentialStore::default();
        let now = unix(SystemTime::now());
        assert!(store.set(&credentials("expired", Some(now - 1))).is_err());
        assert!(!store.is_valid());
        store.set(&credentials("good", Some(now + 3600))).unwrap();
        for bad in [Some(now - 1), Some(0), Some(u64::MAX), Some(1 << 63)] {
            assert!(store.set(&credentials("bad", bad)).is_err(), "{bad:?}");
            assert_eq!(stored(&store).0, "good");
        }
    }
}
