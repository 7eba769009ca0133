//! The load generator's HTTP client: bare keep-alive HTTP/1.1 connections, and request bodies
//! serialized once per run.

use std::sync::Arc;

use alloy_primitives::{Address, hex};
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
use serde::Deserialize;
use serde_json::value::RawValue;

/// Appends the JSON of the benchmark's EIP-1559 transaction with nonce `nonce` to `out`.
pub(super) fn write_transaction(out: &mut Vec<u8>, nonce: u64) {
    out.push(b'{');
    write_fields(out, nonce);
    out.push(b'}');
}

/// Appends the members of the benchmark's transaction with nonce `nonce` (no braces) to `out`.
fn write_fields(out: &mut Vec<u8>, nonce: u64) {
    use std::io::Write as _;
    // Writing to a vector cannot fail.
    let _ = write!(
        out,
        r#""type":"0x2","chainId":"0x1","nonce":"{nonce:#x}","maxFeePerGas":"0x77359400","maxPriorityFeePerGas":"0x3b9aca00","gas":"0x5208","to":"0x3535353535353535353535353535353535353535","value":"0x1""#
    );
}

/// Which API a run's requests go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Api {
    /// `POST /v1/sign/transaction` (or the batch endpoint).
    Rest,
    /// `eth_signTransaction` at the JSON-RPC endpoint, `POST /`.
    JsonRpc,
}

impl Api {
    /// The endpoint's label in the proxy's `/metrics`.
    pub(super) fn metrics_label(self, batch: usize) -> &'static str {
        match self {
            Self::JsonRpc => "json_rpc",
            Self::Rest if batch <= 1 => "sign_transaction",
            Self::Rest => "sign_transactions",
        }
    }

    /// The endpoint, for people.
    pub(super) fn describe(self, batch: usize) -> &'static str {
        match self {
            Self::JsonRpc => "POST / (JSON-RPC eth_signTransaction)",
            Self::Rest if batch <= 1 => "POST /v1/sign/transaction",
            Self::Rest => "POST /v1/sign/transactions",
        }
    }

    /// A short name, for the rounds of `--compare-json-rpc`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Rest => "REST",
            Self::JsonRpc => "JSON-RPC",
        }
    }
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
    /// The API the requests go to.
    pub(super) api: Api,
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
            api: Api::Rest,
            approvals: approvals.into(),
        })
    }

    /// The bodies of `eth_signTransaction` calls (one transaction each, no approvals) for the
    /// account at `from`: the same transaction as the REST bodies', with `from`.
    pub(super) fn json_rpc(from: Address) -> Self {
        let head = format!(
            r#"{{"jsonrpc":"2.0","method":"eth_signTransaction","params":[{{"from":"{}","#,
            from.to_checksum(None)
        );
        Self {
            head: head.into_bytes().into(),
            batch: 1,
            api: Api::JsonRpc,
            approvals: Vec::new().into(),
        }
    }

    fn path(&self) -> &'static str {
        match self.api {
            Api::JsonRpc => "/",
            Api::Rest if self.batch == 1 => "/v1/sign/transaction",
            Api::Rest => "/v1/sign/transactions",
        }
    }

    /// The body of request number `n`: its transactions have nonces from `n * batch` on.
    fn body(&self, n: u64) -> Vec<u8> {
        if self.api == Api::JsonRpc {
            use std::io::Write as _;
            let mut body = Vec::with_capacity(self.head.len() + 256);
            body.extend_from_slice(&self.head);
            write_fields(&mut body, n);
            // Writing to a vector cannot fail.
            let _ = write!(body, r#"}}],"id":{n}}}"#);
            return body;
        }
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
    if bodies.api == Api::JsonRpc {
        return json_rpc_answer(status, &answer).map(|raw| vec![raw]);
    }
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

/// A JSON-RPC answer: `result` or `error`.
#[derive(Deserialize)]
struct RpcAnswer<'a> {
    #[serde(borrow)]
    result: Option<&'a str>,
    error: Option<RpcError>,
}

#[derive(Deserialize)]
struct RpcError {
    code: i64,
    message: String,
}

/// The raw transaction of an `eth_signTransaction` answer; an `error` object is an error.
fn json_rpc_answer(status: u16, answer: &[u8]) -> Result<Vec<u8>, String> {
    if status != 200 {
        let text = String::from_utf8_lossy(answer);
        return Err(format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    let answer: RpcAnswer<'_> = serde_json::from_slice(answer)
        .map_err(|e| format!("the JSON-RPC answer does not decode: {e}"))?;
    match (answer.result, answer.error) {
        (_, Some(error)) => Err(format!("JSON-RPC error {}: {}", error.code, error.message)),
        (Some(raw), None) => {
            hex::decode(raw).map_err(|e| format!("the JSON-RPC result is not 0x hex: {e}"))
        }
        (None, None) => Err("the JSON-RPC answer has neither result nor error".to_owned()),
    }
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
