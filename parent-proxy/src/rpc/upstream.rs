//! The upstream Ethereum node (`--upstream URL`): where `eth_sendTransaction` sends what the
//! enclave signed, where the values a caller left out come from, and where every method the
//! signer does not answer itself is passed.
//!
//! Every call has a time limit (`--upstream-timeout-ms`), and every failure is an [`RpcError`]
//! with code -32000 and a message that says the node was at fault. The URL is never logged or
//! repeated in an answer: node providers put API keys in it.

use std::time::Duration;

use serde_json::{Value, json};

use super::RpcError;

/// Largest answer read from the node.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Calls to the node in flight at once, across all callers.
const MAX_IN_FLIGHT: usize = 64;

/// A JSON-RPC client of the upstream node.
#[derive(Debug)]
pub(crate) struct Upstream {
    http: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    in_flight: tokio::sync::Semaphore,
}

/// An `--upstream` value the proxy cannot use.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamUrlError {
    /// Not a URL.
    #[error("invalid --upstream URL: {0}")]
    Invalid(String),
    /// Not `http://`.
    #[error(
        "--upstream must be an http:// URL (a node on the host or in the VPC, or a local \
         TLS-terminating proxy in front of a remote one); this build does not speak TLS to the node"
    )]
    Scheme,
}

impl Upstream {
    /// A client of `url`, each call bounded by `timeout`.
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, UpstreamUrlError> {
        let url = reqwest::Url::parse(url)
            .map_err(|error| UpstreamUrlError::Invalid(error.to_string()))?;
        if url.scheme() != "http" || url.host_str().is_none() {
            return Err(UpstreamUrlError::Scheme);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A node does not redirect; following one would send the request elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| UpstreamUrlError::Invalid(error.to_string()))?;
        Ok(Self {
            http,
            url,
            timeout,
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
        })
    }

    /// Where the node is, for logs: scheme, host and port only.
    pub(crate) fn display(&self) -> String {
        format!(
            "{}://{}:{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or_default(),
            self.url.port_or_known_default().unwrap_or_default()
        )
    }

    /// Sends one JSON-RPC request object and returns the node's response object (its `result`
    /// or `error`, with whatever `id` the node echoed).
    /// At most [`MAX_IN_FLIGHT`] calls are in flight at once (the others wait, within the
    /// time limit), and an answer over [`MAX_ANSWER_BYTES`] is an error.
    pub(crate) async fn forward(&self, request: &Value) -> Result<Value, RpcError> {
        let exchange = async {
            let _permit = self.in_flight.acquire().await;
            let mut response = self
                .http
                .post(self.url.clone())
                .json(request)
                .send()
                .await
                .map_err(|error| self.failed(&error))?;
            let too_large = || {
                RpcError::server(format!(
                    "upstream node's answer exceeds {MAX_ANSWER_BYTES} bytes"
                ))
            };
            if response
                .content_length()
                .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
            {
                return Err(too_large());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|error| self.failed(&error))?
            {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok((response.status(), body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                RpcError::server(format!(
                    "upstream node did not answer within {} ms",
                    self.timeout.as_millis()
                ))
            })??;
        match serde_json::from_slice::<Value>(&body) {
            Ok(value @ Value::Object(_)) => Ok(value),
            _ => Err(RpcError::server(format!(
                "upstream node answered HTTP {} without a JSON-RPC response",
                status.as_u16()
            ))),
        }
    }

    /// Calls `method` with `params` and returns its `result`; a JSON-RPC error from the node is
    /// returned as the node gave it.
    pub(crate) async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut response = self.forward(&request).await?;
        if let Some(error) = response.get_mut("error").map(Value::take) {
            return Err(RpcError::from_upstream(method, error));
        }
        response.get_mut("result").map(Value::take).ok_or_else(|| {
            RpcError::server(format!(
                "upstream node answered {method} with neither result nor error"
            ))
        })
    }

    fn failed(&self, error: &reqwest::Error) -> RpcError {
        let what = if error.is_timeout() {
            format!(
                "upstream node did not answer within {} ms",
                self.timeout.as_millis()
            )
        } else if error.is_connect() {
            "upstream node is not reachable".to_owned()
        } else {
            "upstream node request failed".to_owned()
        };
        // The error's text can carry the URL (and so an API key in it): log only its kind.
        tracing::info!(
            upstream = %self.display(),
            timeout = error.is_timeout(),
            connect = error.is_connect(),
            "{what}"
        );
        RpcError::server(what)
    }
}
