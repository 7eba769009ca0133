//! The load generator's HTTP client: bare keep-alive HTTP/1.1 connections, and request bodies
//! serialized once per run.

use std::sync::Arc;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, client::conn::http1::SendRequest, header};
use hyper_util::rt::TokioIo;
use nitro_signer_client::{
    api::{
        BatchResult, KeyBlob, SignTransactionRequest, SignTransactionsRequest,
        SignTransactionsResponse, SignedTransaction,
    },
    http::decode_answer,
};
use nitro_signer_common::UserId;
use serde_json::value::RawValue;

/// Appends the JSON of the benchmark's EIP-1559 transaction with nonce `nonce` to `out`.
pub(super) fn write_transaction(out: &mut Vec<u8>, nonce: u64) {
    use std::io::Write as _;
    // Writing to a vector cannot fail.
    let _ = write!(
        out,
        r#"{{"type":"0x2","chainId":"0x1","nonce":"{nonce:#x}","maxFeePerGas":"0x77359400","maxPriorityFeePerGas":"0x3b9aca00","gas":"0x5208","to":"0x3535353535353535353535353535353535353535","value":"0x1"}}"#
    );
}

/// Where the load generator's connections go, and the API key they send.
pub(super) struct Authority {
    /// `host:port`.
    address: String,
    /// `Bearer <API key>`, marked sensitive, when one is given.
    authorization: Option<header::HeaderValue>,
}

impl Authority {
    pub(super) fn new(address: &str, api_key: Option<&str>) -> anyhow::Result<Self> {
        let authorization = api_key
            .map(|key| {
                let mut value = header::HeaderValue::try_from(format!("Bearer {key}"))
                    .context("--api-key is not valid in an HTTP header")?;
                value.set_sensitive(true);
                anyhow::Ok(value)
            })
            .transpose()?;
        Ok(Self {
            address: address.to_owned(),
            authorization,
        })
    }
}

/// One keep-alive HTTP/1.1 connection of the load generator: hyper's client connection with none
/// of a pooled client's bookkeeping, so that the load generator takes as little as it can of the
/// machine it measures. Reopened after a failure.
pub(super) struct Connection {
    authority: String,
    /// `authority` as the `Host` header.
    host: header::HeaderValue,
    authorization: Option<header::HeaderValue>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Connection {
    pub(super) fn new(authority: &Authority) -> anyhow::Result<Self> {
        Ok(Self {
            authority: authority.address.clone(),
            host: header::HeaderValue::from_str(&authority.address)
                .context("the URL's host is not a header value")?,
            authorization: authority.authorization.clone(),
            sender: None,
        })
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// POSTs `body` (JSON) to `path`; the answer's status and body.
    async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<(u16, Bytes), String> {
        let sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.open().await?,
        };
        let mut sender = sender;
        sender.ready().await.map_err(|e| e.to_string())?;
        let mut request = hyper::Request::post(path)
            .header(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let headers = request.headers_mut();
        headers.insert(header::HOST, self.host.clone());
        if let Some(authorization) = &self.authorization {
            headers.insert(header::AUTHORIZATION, authorization.clone());
        }
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP request failed: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("HTTP answer not read: {e}"))?
            .to_bytes();
        self.sender = Some(sender);
        Ok((status, bytes))
    }
}

/// The body of every request of a run, serialized once up to its transactions; each request
/// only formats its own transactions (the load generator should take as little as it can of
/// the machine it measures).
#[derive(Clone)]
pub(super) struct Bodies {
    /// The body up to the first transaction.
    head: Arc<[u8]>,
    /// Transactions per request: 1 is `/v1/sign/transaction`, more the batch endpoint.
    pub(super) batch: usize,
    /// The `"approvals"` member of request number `n` (`,"approvals":[…]`), made beforehand;
    /// empty for a key without a policy.
    approvals: Arc<[String]>,
}

impl Bodies {
    pub(super) fn new(
        blob: &KeyBlob,
        user: &UserId,
        batch: usize,
        approvals: Vec<String>,
    ) -> anyhow::Result<Self> {
        let (json, end) = if batch <= 1 {
            let request = SignTransactionRequest {
                key_blob: blob.clone(),
                user_id: Some(user.clone()),
                transaction: RawValue::from_string("null".to_owned())?,
                approvals: Vec::new(),
            };
            (serde_json::to_vec(&request)?, &b"null}"[..])
        } else {
            let request = SignTransactionsRequest {
                key_blob: blob.clone(),
                user_id: Some(user.clone()),
                transactions: Vec::new(),
                approvals: Vec::new(),
            };
            (serde_json::to_vec(&request)?, &b"]}"[..])
        };
        let head = json
            .strip_suffix(end)
            .context("a request body does not end with its transactions")?;
        Ok(Self {
            head: head.into(),
            batch: batch.max(1),
            approvals: approvals.into(),
        })
    }

    fn path(&self) -> &'static str {
        if self.batch == 1 {
            "/v1/sign/transaction"
        } else {
            "/v1/sign/transactions"
        }
    }

    /// The body of request number `n`: its transactions have nonces from `n * batch` on.
    fn body(&self, n: u64) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.head.len() + self.batch * 256);
        body.extend_from_slice(&self.head);
        for i in 0..self.batch as u64 {
            if i > 0 {
                body.push(b',');
            }
            write_transaction(&mut body, n * self.batch as u64 + i);
        }
        if self.batch > 1 {
            body.push(b']');
        }
        let index = usize::try_from(n).unwrap_or(usize::MAX);
        if let Some(approvals) = self.approvals.get(index) {
            body.extend_from_slice(approvals.as_bytes());
        }
        body.push(b'}');
        body
    }
}

/// Sends request number `n` (a transaction, or a batch); the signed raw transactions.
pub(super) async fn one(
    connection: &mut Connection,
    bodies: &Bodies,
    n: u64,
) -> Result<Vec<Vec<u8>>, String> {
    let (status, answer) = connection.post(bodies.path(), bodies.body(n)).await?;
    if bodies.batch == 1 {
        let signed: SignedTransaction =
            decode_answer(status, &answer).map_err(|e| e.to_string())?;
        return Ok(vec![signed.raw]);
    }
    let answer: SignTransactionsResponse =
        decode_answer(status, &answer).map_err(|e| e.to_string())?;
    answer
        .results
        .into_iter()
        .map(|item| match item {
            BatchResult::Signed(signed) => Ok(signed.raw),
            BatchResult::Error(error) => Err(error.error.message),
        })
        .collect()
}

/// `host:port` of an `http://` URL (the load generator speaks plain HTTP/1.1, as the proxy does).
pub(super) fn plain_http_authority(url: &str) -> anyhow::Result<String> {
    let uri: hyper::Uri = url.parse().context("--url is not a URL")?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must be an http:// URL (the proxy speaks plain HTTP)");
    }
    let host = uri.host().context("--url has no host")?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80)))
}
