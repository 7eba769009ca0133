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

/// The AWS credentials the parent sent, for the SDK.
#[derive(Debug, Default)]
pub struct CredentialStore(RwLock<Option<aws_credential_types::Credentials>>);

impl CredentialStore {
    /// Stores `credentials`, unless they expire before the ones already stored, which are still
    /// valid (an older refresh arriving late must not replace a newer one). Refuses an expiry
    /// that is not a representable time.
    pub fn set(&self, credentials: &AwsCredentials) -> Result<(), KmsError> {
        let expiry = match credentials.expires_at {
            None => None,
            Some(secs) => Some(
                UNIX_EPOCH
                    .checked_add(Duration::from_secs(secs))
                    .filter(|_| i64::try_from(secs).is_ok())
                    .ok_or_else(|| {
                        KmsError::InvalidCredentials(format!("expiry {secs} is out of range"))
                    })?,
            ),
        };
        let sdk = aws_credential_types::Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.as_str(),
            credentials.session_token.as_ref().map(|t| t.to_string()),
            expiry,
            "nitro-signer-parent",
        );
        let mut slot = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = SystemTime::now();
        let keep_current = match (slot.as_ref().and_then(|c| c.expiry()), expiry) {
            (Some(current), Some(new)) => new < current && current > now,
            _ => false,
        };
        if !keep_current {
            *slot = Some(sdk);
        }
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

    #[test]
    fn credentials_from_a_late_refresh_do_not_replace_newer_ones() {
        let store = CredentialStore::default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let credentials = |id: &str, expires_at| AwsCredentials {
            access_key_id: id.into(),
            secret_access_key: Zeroizing::new("secret".into()),
            session_token: None,
            expires_at,
        };
        store.set(&credentials("newer", Some(now + 3600))).unwrap();
        store.set(&credentials("older", Some(now + 600))).unwrap();
        assert_eq!(store.current().unwrap().access_key_id(), "newer");
        store.set(&credentials("newest", Some(now + 7200))).unwrap();
        assert_eq!(store.current().unwrap().access_key_id(), "newest");
        assert!(store.set(&credentials("bad", Some(u64::MAX))).is_err());
        assert_eq!(store.current().unwrap().access_key_id(), "newest");
    }
}
