//! Requests a web browser could make are refused, so that a page on a machine that can reach the
//! proxy cannot drive it (cross-site requests) or read its answers (DNS rebinding).
//!
//! Three checks, in this order, on every request, before authentication ([`guard`]):
//!
//! 1. `Host` (and an absolute request target's authority) must name the proxy: an IP address
//!    literal, `localhost`, or one of `--allowed-hosts` (`host` matches any port, `host:port`
//!    that port only); otherwise 421 `host_not_allowed`. IP literals and `localhost` are always
//!    accepted because DNS rebinding needs a name the attacker's DNS answers for: a page whose
//!    origin is an IP literal or `localhost` was served by that address itself. A request
//!    without `Host` (not HTTP/1.1, never a browser) is refused the same way.
//! 2. A request with an `Origin` header (browsers send one on every cross-origin request and
//!    every `POST`) is refused with 403 `origin_not_allowed` unless the origin is one of
//!    `--allowed-origins` (exact, case-insensitive match of `scheme://host[:port]`; none by
//!    default). Back ends are not browsers and send no `Origin`.
//! 3. A `POST` must say `Content-Type: application/json` (optionally `; charset=utf-8`);
//!    otherwise 415 `unsupported_media_type`. Only a `POST` with no body at all and no
//!    `Content-Type` is exempt (`POST /v1/keys` reads an empty body as `{}`). The form and `text/plain` bodies a page may send
//!    without a CORS preflight are refused. `GET` endpoints (`/healthz`, `/readyz`, `/metrics`)
//!    take no body and are exempt from this check only.

use std::{net::IpAddr, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use nitro_signer_api::ErrorCode;

use crate::{error::Failure, routes::AppState};

/// The names and origins the proxy accepts (`--allowed-hosts`, `--allowed-origins`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Guard {
    /// Lowercase host names, with the port they must come with if one was given.
    hosts: Vec<(String, Option<u16>)>,
    /// Lowercase origins, `scheme://host[:port]`.
    origins: Vec<String>,
}

/// An `--allowed-hosts` entry that is not `host` or `host:port`.
#[derive(Debug)]
pub(crate) struct InvalidHost(pub(crate) String);

impl Guard {
    /// The guard for these `--allowed-hosts` and `--allowed-origins` values.
    pub(crate) fn new(hosts: &[String], origins: &[String]) -> Result<Self, InvalidHost> {
        let hosts = hosts
            .iter()
            .map(|entry| split_host(entry).ok_or_else(|| InvalidHost(entry.clone())))
            .collect::<Result<_, _>>()?;
        let origins = origins
            .iter()
            .map(|origin| origin.trim().trim_end_matches('/').to_ascii_lowercase())
            .collect();
        Ok(Self { hosts, origins })
    }

    /// Whether `authority` (a `Host` value) names this proxy.
    fn host_allowed(&self, authority: &str) -> bool {
        let Some((host, port)) = split_host(authority) else {
            return false;
        };
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if host == "localhost" || literal.parse::<IpAddr>().is_ok() {
            return true;
        }
        self.hosts
            .iter()
            .any(|(name, want)| *name == host && want.is_none_or(|want| Some(want) == port))
    }

    /// Whether a request may carry this `Origin`.
    fn origin_allowed(&self, origin: &[u8]) -> bool {
        let origin = String::from_utf8_lossy(origin).to_ascii_lowercase();
        self.origins.contains(&origin)
    }

    /// The first check a request fails, if any.
    fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Failure> {
        // Exactly one `Host`, and an absolute target's authority too if there is one.
        let mut hosts = headers.get_all(header::HOST).iter();
        let host = match (hosts.next(), hosts.next()) {
            (Some(host), None) => host.to_str().ok(),
            _ => None,
        };
        let named = [host, uri.authority().map(|a| a.as_str())];
        if host.is_none() || named.into_iter().flatten().any(|h| !self.host_allowed(h)) {
            return Err(Failure::new(
                StatusCode::MISDIRECTED_REQUEST,
                ErrorCode::HostNotAllowed,
                "the Host header does not name this proxy; add the name to --allowed-hosts",
            ));
        }
        if headers
            .get_all(header::ORIGIN)
            .iter()
            .any(|origin| !self.origin_allowed(origin.as_bytes()))
        {
            return Err(Failure::new(
                StatusCode::FORBIDDEN,
                ErrorCode::OriginNotAllowed,
                "requests from web pages (with an Origin header) are refused unless the origin \
                 is in --allowed-origins",
            ));
        }
        if method == Method::POST && !is_json(headers) && !bodyless(headers) {
            return Err(Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the request body with `Content-Type: application/json`",
            ));
        }
        Ok(())
    }
}

/// Splits `host[:port]` (`[v6]:port` for IPv6) into a lowercase host and its port.
fn split_host(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim();
    let (host, port) = match authority.rfind(':') {
        // A bare IPv6 literal has colons but no port.
        Some(colon) if !authority.ends_with(']') && authority[..colon].find(':').is_none() => (
            &authority[..colon],
            Some(authority[colon + 1..].parse().ok()?),
        ),
        Some(colon) if authority.starts_with('[') && authority[..colon].ends_with(']') => (
            &authority[..colon],
            Some(authority[colon + 1..].parse().ok()?),
        ),
        _ => (authority, None),
    };
    let valid = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        });
    valid.then(|| (host.to_ascii_lowercase(), port))
}

/// Whether a request has no body at all and says nothing about one: no `Content-Type`, no
/// `Transfer-Encoding`, and no `Content-Length` or `Content-Length: 0` (`POST /v1/keys` takes an
/// empty body as `{}`). A page's `fetch` can send such a request, but always with an `Origin`.
fn bodyless(headers: &HeaderMap) -> bool {
    let length = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .all(|v| v.as_bytes() == b"0");
    length
        && !headers.contains_key(header::CONTENT_TYPE)
        && !headers.contains_key(header::TRANSFER_ENCODING)
}

/// Whether the request's one `Content-Type` is `application/json`, with at most a UTF-8
/// charset parameter.
fn is_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|parameter| {
        let parameter: String = parameter.chars().filter(|c| !c.is_whitespace()).collect();
        let parameter = parameter.to_ascii_lowercase();
        matches!(
            parameter.as_str(),
            "charset=utf-8" | "charset=\"utf-8\"" | "charset=utf8"
        )
    })
}

/// Middleware: answers a request that fails a check (see the module docs) before it reaches
/// authentication or a handler.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match state
        .guard
        .check(request.method(), request.uri(), request.headers())
    {
        Ok(()) => next.run(request).await,
        Err(failure) => failure.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn guard() -> Guard {
        Guard::new(
            &["signer.internal".into(), "Proxy.Example:8443".into()],
            &["https://ops.example".into()],
        )
        .unwrap_or_default()
    }

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn hosts() {
        let guard = guard();
        for ok in [
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "[::1]",
            "localhost:8080",
            "LOCALHOST",
            "signer.internal",
            "signer.internal:1234",
            "proxy.example:8443",
        ] {
            assert!(guard.host_allowed(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "proxy.example:8080",
            "proxy.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "",
            "a b",
            "host:notaport",
        ] {
            assert!(!guard.host_allowed(refused), "{refused}");
        }
        assert!(Guard::new(&["bad host".into()], &[]).is_err());
    }

    #[test]
    fn content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
        ] {
            assert!(is_json(&headers(&[(header::CONTENT_TYPE, ok)])), "{ok}");
        }
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin1",
            "application/jsonx",
        ] {
            assert!(
                !is_json(&headers(&[(header::CONTENT_TYPE, refused)])),
                "{refused}"
            );
        }
        assert!(!is_json(&HeaderMap::new()));
        assert!(!is_json(&headers(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_TYPE, "text/plain"),
        ])));
    }

    #[test]
    fn checks_in_order() {
        let guard = guard();
        let uri: Uri = "/v1/sign/message".parse().unwrap_or_default();
        let code = |pairs: &[(header::HeaderName, &'static str)]| {
            guard
                .check(&Method::POST, &uri, &headers(pairs))
                .err()
                .map(|failure| failure.code)
        };
        let json = (header::CONTENT_TYPE, "application/json");
        assert_eq!(code(&[(header::HOST, "127.0.0.1:1"), json.clone()]), None);
        assert_eq!(
            code(std::slice::from_ref(&json)),
            Some(ErrorCode::HostNotAllowed)
        );
        assert_eq!(
            code(&[(header::HOST, "evil.example"), json.clone()]),
            Some(ErrorCode::HostNotAllowed)
        );
        assert_eq!(
            code(&[
                (header::HOST, "localhost"),
                (header::ORIGIN, "http://evil.example"),
                json.clone()
            ]),
            Some(ErrorCode::OriginNotAllowed)
        );
        assert_eq!(
            code(&[
                (header::HOST, "localhost"),
                (header::ORIGIN, "https://ops.example"),
                json
            ]),
            None
        );
        assert_eq!(
            code(&[
                (header::HOST, "localhost"),
                (header::CONTENT_TYPE, "text/plain")
            ]),
            Some(ErrorCode::UnsupportedMediaType)
        );
        let absolute: Uri = "http://evil.example/v1/sign/message"
            .parse()
            .unwrap_or_default();
        assert!(
            guard
                .check(
                    &Method::POST,
                    &absolute,
                    &headers(&[(header::HOST, "localhost")])
                )
                .is_err()
        );
        assert!(
            guard
                .check(&Method::GET, &uri, &headers(&[(header::HOST, "localhost")]))
                .is_ok()
        );
    }
}
