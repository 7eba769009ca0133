//! Who may call the API, and with which key blobs.
//!
//! With `--tenants FILE`, every request outside `/healthz`, `/readyz` and `/metrics` must carry
//! one of the file's API keys (`Authorization: Bearer <key>`; 401 `unauthorized` otherwise), and
//! [`authenticate`] puts the caller's tenant in the request's extensions. The body extractor
//! ([`crate::extract::ApiJson`]) then hands the parsed body to [`Scoped::scope`]: a key blob
//! whose `owner` label is not one of the tenant's owners, or that has none, is refused with 403
//! `forbidden`, and so is a new key's `label` (which defaults to the tenant's first owner). A
//! blob's owner label is bound to it at KMS, so the parent cannot move a blob to another tenant.
//!
//! With `--no-auth`, every caller is [`Caller::Anyone`] and nothing is checked.
//!
//! API keys are never logged; only the tenant's name is (at `debug`).

use std::sync::Arc;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use nitro_signer_api::{
    AddressRequest, AttestationRequest, ErrorCode, FlowPublicKeyRequest, GenerateKeyRequest,
    KeyBlob, SignAuthorizationRequest, SignDigestRequest, SignFlowTransactionRequest,
    SignMessageRequest, SignTransactionRequest, SignTransactionsRequest, SignTypedDataRequest,
    UpdatePolicyRequest,
};
use nitro_signer_common::{
    key_blob,
    tenants::{Tenant, Tenants},
};
use tracing::debug;

use crate::{error::Failure, routes::AppState};

/// How the proxy authenticates its callers.
#[derive(Debug)]
pub(crate) enum Auth {
    /// `--no-auth`: anyone who reaches the port may use any blob.
    Off,
    /// `--tenants FILE`: per-tenant API keys.
    Tenants(Tenants),
}

/// Who is calling: put in each request's extensions by [`authenticate`], read by the body
/// extractor. A request without one is refused.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// Authentication is off.
    Anyone,
    /// A tenant of the tenants file.
    Tenant(Arc<Tenant>),
}

/// Whether a route is open without an API key: liveness (`/healthz`, `/upcheck`), readiness and metrics, which load
/// balancers and scrapers call. Everything else, unknown paths included, needs a key.
fn is_open(path: Option<&MatchedPath>) -> bool {
    matches!(
        path.map(MatchedPath::as_str),
        Some("/healthz" | "/upcheck" | "/readyz" | "/metrics")
    )
}

/// Middleware: identifies the caller (see the module docs), or answers 401.
pub(crate) async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match &state.auth {
        Auth::Off => Caller::Anyone,
        Auth::Tenants(_) if is_open(request.extensions().get::<MatchedPath>()) => {
            return next.run(request).await;
        }
        Auth::Tenants(tenants) => match identify(tenants, request.headers()) {
            Ok(tenant) => {
                debug!(tenant = tenant.name(), "caller authenticated");
                Caller::Tenant(tenant)
            }
            Err(failure) => return failure.into_response(),
        },
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The tenant whose API key the request's `Authorization: Bearer` header carries.
fn identify(tenants: &Tenants, headers: &HeaderMap) -> Result<Arc<Tenant>, Failure> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Failure::unauthorized(
            "this endpoint needs an API key: send one `Authorization: Bearer <API key>` header",
        ));
    };
    let malformed = || Failure::unauthorized("the Authorization header must be `Bearer <API key>`");
    let value = value.as_bytes().trim_ascii();
    let space = value
        .iter()
        .position(|b| *b == b' ')
        .ok_or_else(malformed)?;
    let (scheme, token) = value.split_at(space);
    let token = token.trim_ascii_start();
    if !scheme.eq_ignore_ascii_case(b"bearer")
        || token.is_empty()
        || token.iter().any(u8::is_ascii_whitespace)
    {
        return Err(malformed());
    }
    tenants
        .authenticate(token)
        .cloned()
        .ok_or_else(|| Failure::unauthorized("the API key is not valid"))
}

/// What a request body asks of the caller's tenant: which key blob it uses, or which owner label
/// a new key gets. Every body the API takes implements it, so a new endpoint cannot forget the
/// check (the body extractor requires it).
pub(crate) trait Scoped {
    /// Refuses the request if `tenant` may not make it, and fills in the tenant's defaults.
    fn scope(&mut self, tenant: &Tenant) -> Result<(), Failure>;
}

/// Refuses a blob unless its owner label is one of `tenant`'s owners.
pub(crate) fn check_blob(blob: &KeyBlob, tenant: &Tenant) -> Result<(), Failure> {
    let decoded = key_blob::KeyBlob::decode(blob.as_bytes()).map_err(|error| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidKeyBlob,
            error.to_string(),
        )
    })?;
    match decoded.metadata().owner() {
        Some(owner) if tenant.may_use(owner) => Ok(()),
        Some(_) => Err(Failure::forbidden(
            "the key blob's owner label is not one of this API key's owners",
        )),
        None => Err(Failure::forbidden(
            "the key blob has no owner label; an API key may only use blobs of its owners",
        )),
    }
}

impl Scoped for GenerateKeyRequest {
    fn scope(&mut self, tenant: &Tenant) -> Result<(), Failure> {
        match &self.label {
            None => {
                self.label = Some(tenant.default_owner().to_owned());
                Ok(())
            }
            Some(label) if tenant.may_use(label) => Ok(()),
            Some(_) => Err(Failure::forbidden(
                "invalid field `label`: not one of this API key's owners",
            )),
        }
    }
}

impl Scoped for AttestationRequest {
    fn scope(&mut self, _tenant: &Tenant) -> Result<(), Failure> {
        Ok(())
    }
}

/// Bodies that carry a key blob in `key_blob`.
macro_rules! scoped_by_blob {
    ($($request:ty),* $(,)?) => {
        $(impl Scoped for $request {
            fn scope(&mut self, tenant: &Tenant) -> Result<(), Failure> {
                check_blob(&self.key_blob, tenant)
            }
        })*
    };
}

scoped_by_blob!(
    UpdatePolicyRequest,
    AddressRequest,
    SignTransactionRequest,
    SignTransactionsRequest,
    SignMessageRequest,
    SignTypedDataRequest,
    SignDigestRequest,
    SignAuthorizationRequest,
    FlowPublicKeyRequest,
    SignFlowTransactionRequest,
);

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use nitro_signer_common::{
        key_blob::{KeyKind, KeyMetadata},
        tenants::Tenant,
    };

    use super::*;

    fn tenants() -> Tenants {
        use sha2::Digest as _;
        let digest = |key: &str| sha2::Sha256::digest(key.as_bytes()).into();
        Tenants::new(vec![
            Tenant::new("a", digest("key-a"), vec!["a".into(), "shared".into()]).unwrap(),
            Tenant::new("b", digest("key-b"), vec!["b".into()]).unwrap(),
        ])
        .unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn bearer_headers() {
        let tenants = tenants();
        let who = |values: &[&str]| {
            identify(&tenants, &headers(values))
                .map(|tenant| tenant.name().to_owned())
                .map_err(|failure| (failure.status.as_u16(), failure.message))
        };
        assert_eq!(who(&["Bearer key-a"]), Ok("a".into()));
        assert_eq!(who(&["bearer  key-b"]), Ok("b".into()));
        assert_eq!(who(&["BEARER key-b "]), Ok("b".into()));
        for (values, says) in [
            (&[][..], "needs an API key"),
            (&["Bearer key-a", "Bearer key-a"][..], "needs an API key"),
            (&["key-a"][..], "must be `Bearer"),
            (&["Basic a2V5LWE="][..], "must be `Bearer"),
            (&["Bearer "][..], "must be `Bearer"),
            (&["Bearer key-a x"][..], "must be `Bearer"),
            (&["Bearer key-c"][..], "not valid"),
            (&["Bearer key-A"][..], "not valid"),
        ] {
            let (status, message) = who(values).unwrap_err();
            assert_eq!(status, 401, "{values:?}");
            assert!(message.contains(says), "{values:?}: {message}");
            assert!(
                !message.contains("key-"),
                "the key is not echoed: {message}"
            );
        }
    }

    fn blob(owner: Option<&str>) -> KeyBlob {
        let metadata =
            KeyMetadata::new(KeyKind::Seed, "arn:k", owner.map(str::to_owned), Vec::new()).unwrap();
        KeyBlob::new(
            key_blob::KeyBlob::new(metadata, vec![1, 2, 3])
                .unwrap()
                .encode(),
        )
    }

    #[test]
    fn blobs_are_checked_against_the_owners() {
        let tenants = tenants();
        let a = tenants.get("a").unwrap();
        let b = tenants.get("b").unwrap();
        let mut request = AddressRequest {
            key_blob: blob(Some("shared")),
            user_id: None,
        };
        assert!(request.scope(a).is_ok());
        let failure = request.scope(b).unwrap_err();
        assert_eq!(
            (failure.status.as_u16(), failure.code),
            (403, ErrorCode::Forbidden)
        );
        request.key_blob = blob(None);
        let failure = request.scope(a).unwrap_err();
        assert_eq!(failure.status.as_u16(), 403);
        assert!(failure.message.contains("no owner label"));
        request.key_blob = KeyBlob::new(b"not a blob".to_vec());
        let failure = request.scope(a).unwrap_err();
        assert_eq!(
            (failure.status.as_u16(), failure.code),
            (400, ErrorCode::InvalidKeyBlob)
        );
    }

    #[test]
    fn new_keys_get_an_allowed_label() {
        let tenants = tenants();
        let a = tenants.get("a").unwrap();
        let mut request = GenerateKeyRequest::default();
        request.scope(a).unwrap();
        assert_eq!(request.label.as_deref(), Some("a"));
        request.label = Some("shared".into());
        request.scope(a).unwrap();
        assert_eq!(request.label.as_deref(), Some("shared"));
        request.label = Some("b".into());
        let failure = request.scope(a).unwrap_err();
        assert_eq!(failure.status.as_u16(), 403);
        assert!(failure.message.contains("`label`"));
    }
}
