//! The Ethereum JSON-RPC 2.0 endpoint, `POST /`: what ethers' `JsonRpcSigner`, viem's JSON-RPC
//! accounts, web3.py and `cast --unlocked` speak to a remote signer (as to web3signer's eth1
//! mode or geth's Clef), served for the accounts of the accounts directory
//! (`docs/json-rpc.md`).
//!
//! - `eth_accounts`, `eth_requestAccounts`: the accounts the caller may use.
//! - `eth_signTransaction`, `eth_sendTransaction`, `eth_sign`, `personal_sign`,
//!   `eth_signTypedData_v4` (also as `eth_signTypedData`, as web3.py and geth name it): signed in the enclave, which parses and checks every payload and
//!   the key's policy as for the REST API; this module only turns geth's request shapes into
//!   the enclave's (`transaction.rs`) and, for `eth_sendTransaction`, fills in what the caller
//!   left out from the upstream node and sends the result there.
//! - Every other method goes to the upstream node (`--upstream`) as it came, so that a client
//!   can use the signer as its only RPC URL; without one it is answered -32601.
//!
//! Approvals, which the standard methods have no place for, come in the
//! `X-Nitro-Signer-Approvals` header (a JSON array of approvals, as in the REST API) and go with
//! every signing call of the request.
//!
//! # Layout
//!
//! - `mod.rs`: the envelope (single and batch calls, errors), the handler and the dispatch.
//! - `accounts.rs`: the accounts directory, each account checked with the enclave at load.
//! - `transaction.rs`: geth's transaction object, the defaults `eth_sendTransaction` fills in,
//!   and the per-account nonce lock.
//! - `upstream.rs`: the upstream node's client.

mod accounts;
mod transaction;
mod upstream;

use std::sync::Arc;

use alloy_primitives::{Address, hex};
use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderMap, HeaderName, StatusCode},
    response::{IntoResponse, Response},
};
use nitro_signer_api::{
    ErrorCode,
    json_rpc::{self, Call, RpcError, answer, call_id, parse_body},
};
use nitro_signer_common::protocol::{self, SignPayload, Signed};
use serde_bytes::ByteBuf;
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

pub(crate) use self::{
    accounts::{Account, Accounts},
    transaction::Nonces,
    upstream::{Upstream, UpstreamUrlError},
};
use crate::{
    auth::Caller,
    error::Failure,
    extract::{read_body, take_caller},
    routes::{self, AppState},
};

/// The header that carries approvals for the signing calls of a request.
pub(crate) const APPROVALS_HEADER: HeaderName = HeaderName::from_static("x-nitro-signer-approvals");

/// Calls of one batch run at once.
const BATCH_PARALLELISM: usize = 8;

/// What the JSON-RPC endpoint shares between requests.
#[derive(Debug)]
pub(crate) struct Rpc {
    pub(crate) accounts: Accounts,
    pub(crate) upstream: Option<Upstream>,
    pub(crate) nonces: Nonces,
    /// The upstream node's `eth_chainId`, asked once.
    pub(crate) chain_id: tokio::sync::OnceCell<Value>,
    /// `--tx-fee-cap-wei` (0: none).
    pub(crate) fee_cap: u128,
    /// `--upstream-all-methods`: pass every method, not only `eth_`, `net_` and `web3_`.
    pub(crate) pass_all_methods: bool,
}

/// A failed enclave call (or a refusal before it): bad payloads are -32602, everything
/// else (policy, approvals, KMS, enclave down) -32000; `data.code` is the REST API's error
/// code.
fn from_failure(failure: Failure) -> RpcError {
    let code = if failure.code == ErrorCode::InvalidRequest {
        -32602
    } else {
        -32000
    };
    RpcError {
        code,
        message: failure.message,
        data: Some(json!({"code": failure.code.as_str()})),
    }
}

/// What a call runs with: the shared state, who is calling, and the request's approvals.
#[derive(Clone)]
struct Context {
    state: Arc<AppState>,
    caller: Caller,
    approvals: Arc<Vec<protocol::Approval>>,
}

/// `POST /`: one call or a batch. JSON-RPC errors are answered with HTTP 200, as nodes do;
/// what is refused before the body is read (authentication, size) keeps the API's HTTP errors.
pub(crate) async fn handle(
    State(state): State<Arc<AppState>>,
    mut request: Request,
) -> Result<Response, Failure> {
    let caller = take_caller(&mut request)?;
    let approvals = match approvals_header(request.headers()) {
        Ok(approvals) => approvals,
        Err(error) => return Ok(Json(answer(Value::Null, Err(error))).into_response()),
    };
    let body = read_body(request, &state).await?;
    let deadline = state.request_timeout;
    let context = Context {
        state,
        caller,
        approvals: Arc::new(approvals),
    };
    let parsed = parse_body(&body);
    // Whom a late answer goes to: the id of each call that has a valid one.
    let ids: Vec<Value> = match &parsed {
        Ok(Value::Array(calls)) => calls.iter().filter_map(call_id).collect(),
        Ok(single) => call_id(single).into_iter().collect(),
        Err(_) => Vec::new(),
    };
    let is_batch = matches!(parsed, Ok(Value::Array(_)));
    // The calls run in their own task: if the caller goes away, or the deadline passes, what
    // was started (a transaction sent, its nonce counted) still finishes.
    let work = tokio::spawn(async move {
        match parsed {
            Err(error) => Some(answer(Value::Null, Err(error))),
            Ok(Value::Array(calls)) => batch(&context, calls).await,
            Ok(single) => one(&context, single).await,
        }
    });
    let late = || {
        RpcError::server(format!(
            "the request did not complete within {} ms; it goes on, so a transaction may \
             still be sent: look for it before sending again",
            deadline.as_millis()
        ))
    };
    let reply = match tokio::time::timeout(deadline, work).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) => {
            tracing::warn!(%error, "a JSON-RPC request task failed");
            Some(answer(Value::Null, Err(RpcError::server("internal error"))))
        }
        Err(_) if is_batch => (!ids.is_empty())
            .then(|| Value::Array(ids.into_iter().map(|id| answer(id, Err(late()))).collect())),
        Err(_) => ids.into_iter().next().map(|id| answer(id, Err(late()))),
    };
    Ok(match reply {
        Some(reply) => Json(reply).into_response(),
        // Only notifications: nothing to answer.
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Runs the calls of a batch, [`BATCH_PARALLELISM`] at a time (a batch holds one of the
/// proxy's concurrency permits); the answers come in the calls' order.
async fn batch(context: &Context, calls: Vec<Value>) -> Option<Value> {
    let mut tasks = JoinSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(BATCH_PARALLELISM));
    for (index, call) in calls.into_iter().enumerate() {
        let context = context.clone();
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (index, one(&context, call).await)
        });
    }
    let mut answers = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, Some(reply))) => answers.push((index, reply)),
            Ok((_, None)) => {}
            Err(error) => {
                tracing::warn!(%error, "a JSON-RPC call task failed");
                answers.push((
                    usize::MAX,
                    answer(Value::Null, Err(RpcError::server("internal error"))),
                ));
            }
        }
    }
    answers.sort_by_key(|(index, _)| *index);
    let answers: Vec<Value> = answers.into_iter().map(|(_, reply)| reply).collect();
    (!answers.is_empty()).then_some(Value::Array(answers))
}

/// Runs one call; `None` for a notification.
async fn one(context: &Context, value: Value) -> Option<Value> {
    let call = match Call::parse(value) {
        Ok(call) => call,
        Err((id, error)) => return Some(answer(id, Err(error))),
    };
    let result = dispatch(context, &call).await;
    if let Err(error) = &result {
        tracing::debug!(method = %call.method, code = error.code, message = %error.message, "JSON-RPC call failed");
    }
    call.id.map(|id| answer(id, result))
}

async fn dispatch(context: &Context, call: &Call) -> Result<Value, RpcError> {
    match call.method.as_str() {
        "eth_accounts" | "eth_requestAccounts" => {
            call.positional(0, 0)?;
            Ok(Value::Array(
                context
                    .accounts()
                    .iter()
                    .map(|account| Value::String(account.address.to_checksum(None)))
                    .collect(),
            ))
        }
        "eth_signTransaction" => transaction::sign(context, one_param(call)?).await,
        "eth_sendTransaction" => transaction::send(context, one_param(call)?).await,
        "eth_sign" => match call.positional(2, 2)? {
            [address, data] => sign_message(context, address, data).await,
            _ => Err(wrong_count()),
        },
        // Reversed order; geth's third parameter, a password, means nothing here.
        "personal_sign" => match call.positional(2, 3)? {
            [data, address] | [data, address, _] => sign_message(context, address, data).await,
            _ => Err(wrong_count()),
        },
        // web3.py's `sign_typed_data` and geth call EIP-712 signing `eth_signTypedData`. (The
        // older v1 array form is not a JSON object, so the enclave refuses it.)
        "eth_signTypedData_v4" | "eth_signTypedData" => match call.positional(2, 2)? {
            [address, typed_data] => sign_typed_data(context, address, typed_data).await,
            _ => Err(wrong_count()),
        },
        method if is_signing_method(method) => Err(RpcError::method_not_found(format!(
            "{method} is not served by nitro-signer: use eth_signTransaction, \
             eth_sendTransaction, eth_sign, personal_sign or eth_signTypedData_v4"
        ))),
        _ => pass_through(context, call).await,
    }
}

/// The one parameter of a call that takes one.
fn one_param(call: &Call) -> Result<&Value, RpcError> {
    match call.positional(1, 1)? {
        [param] => Ok(param),
        _ => Err(wrong_count()),
    }
}

/// After [`Call::positional`] checked the count, another count cannot happen.
fn wrong_count() -> RpcError {
    RpcError::invalid_params("wrong number of parameters")
}

/// Methods that sign, unlock or manage keys in a node or wallet. Those this module does not
/// answer are refused rather than passed on, so that a node's own keys are never used through
/// the signer.
fn is_signing_method(method: &str) -> bool {
    method.starts_with("eth_sign")
        || method.starts_with("personal_")
        || method.starts_with("wallet_")
        || method == "eth_sendTransaction"
}

/// The methods of the standard Ethereum API, which clients read the chain with: passed to the
/// node by default. Others (`admin_`, `debug_`, `miner_`, `txpool_`, a dev node's `hardhat_`,
/// `anvil_`, `evm_`…) administer or load the node, and are not every caller's business.
fn is_public_method(method: &str) -> bool {
    ["eth_", "net_", "web3_"]
        .iter()
        .any(|prefix| method.starts_with(prefix))
}

/// Sends a call to the upstream node and answers with what it answered.
async fn pass_through(context: &Context, call: &Call) -> Result<Value, RpcError> {
    if !context.state.rpc.pass_all_methods && !is_public_method(&call.method) {
        return Err(RpcError::method_not_found(format!(
            "{} is not passed to the node: only eth_*, net_* and web3_* methods are \
             (--upstream-all-methods passes every method)",
            call.method
        )));
    }
    let Some(upstream) = &context.state.rpc.upstream else {
        return Err(RpcError::method_not_found(format!(
            "{} is not served here: nitro-signer signs, and passes other methods to a node only \
             when started with --upstream URL",
            call.method
        )));
    };
    let request = json!({
        "jsonrpc": "2.0",
        "id": call.id.clone().unwrap_or(Value::Null),
        "method": call.method,
        "params": call.params,
    });
    let mut response = upstream.forward(&request).await?;
    if let Some(error) = response.get_mut("error").map(Value::take) {
        return Err(RpcError::from_upstream(&call.method, error));
    }
    response.get_mut("result").map(Value::take).ok_or_else(|| {
        RpcError::server(format!(
            "upstream node answered {} with neither result nor error",
            call.method
        ))
    })
}

impl Context {
    /// The accounts the caller may use.
    fn accounts(&self) -> Vec<Arc<Account>> {
        self.state
            .rpc
            .accounts
            .all()
            .into_iter()
            .filter(|account| self.may_use(account))
            .collect()
    }

    fn may_use(&self, account: &Account) -> bool {
        match &self.caller {
            Caller::Anyone => true,
            Caller::Tenant(tenant) => account
                .owner
                .as_deref()
                .is_some_and(|owner| tenant.may_use(owner)),
        }
    }

    /// The account at `address`, if the caller may use it. One the caller may not use is
    /// answered as unknown, so that a tenant does not learn other tenants' addresses.
    fn account(&self, address: &Value) -> Result<Arc<Account>, RpcError> {
        let address = parse_address(address)?;
        self.state
            .rpc
            .accounts
            .get(&address)
            .filter(|account| self.may_use(account))
            .ok_or_else(|| {
                RpcError::server(format!(
                    "unknown account {}: this signer does not serve it (see eth_accounts)",
                    address.to_checksum(None)
                ))
            })
    }

    /// Signs `payload` with `account`'s key; checks that the enclave signed as that address.
    async fn sign(&self, account: &Account, payload: SignPayload) -> Result<Signed, RpcError> {
        let key = routes::key_ref(account.key_blob.clone(), account.user_id.clone());
        let (signed, _receipt, _took) =
            routes::sign(&self.state, key, payload, self.approvals.as_ref().clone())
                .await
                .map_err(from_failure)?;
        let from = match &signed {
            Signed::Transaction(signed) => signed.signature.from,
            Signed::Signature(signature) => signature.from,
            Signed::Authorization(signed) => signed.signature.from,
        };
        if Address::from(from.into_array()) != account.address {
            tracing::warn!(
                account = %account.address,
                file = %account.file,
                "the enclave signed as another address than the account's"
            );
            return Err(RpcError::server(
                "the key blob of this account signs as another address; the account is \
                 misconfigured",
            ));
        }
        Ok(signed)
    }
}

/// A `0x` address parameter (any case).
fn parse_address(value: &Value) -> Result<Address, RpcError> {
    value
        .as_str()
        .and_then(|text| text.parse::<Address>().ok())
        .ok_or_else(|| RpcError::invalid_params("expected an address (0x and 40 hex digits)"))
}

/// `eth_sign` and `personal_sign`: EIP-191 over `data` (`0x` hex), answered with
/// `r ‖ s ‖ v`, `v` 27 or 28, as geth does.
async fn sign_message(context: &Context, address: &Value, data: &Value) -> Result<Value, RpcError> {
    let account = context.account(address)?;
    let bytes = data
        .as_str()
        .and_then(|text| text.strip_prefix("0x"))
        .and_then(|digits| hex::decode(digits).ok())
        .ok_or_else(|| {
            RpcError::invalid_params("the message must be 0x hex (UTF-8 text hex-encoded)")
        })?;
    let signed = context
        .sign(&account, SignPayload::Message(ByteBuf::from(bytes)))
        .await?;
    signature_hex(&signed)
}

/// `eth_signTypedData_v4`: typed data as an object, or as the JSON text of one (as wallets
/// send it).
async fn sign_typed_data(
    context: &Context,
    address: &Value,
    typed_data: &Value,
) -> Result<Value, RpcError> {
    let account = context.account(address)?;
    let text = match typed_data {
        Value::String(text) => text.clone(),
        Value::Object(_) => typed_data.to_string(),
        _ => {
            return Err(RpcError::invalid_params(
                "typed data must be an object or its JSON text",
            ));
        }
    };
    let signed = context.sign(&account, SignPayload::TypedData(text)).await?;
    signature_hex(&signed)
}

fn signature_hex(signed: &Signed) -> Result<Value, RpcError> {
    let Signed::Signature(signature) = signed else {
        return Err(RpcError::server(
            "the enclave's answer does not fit the request",
        ));
    };
    Ok(Value::String(hex::encode_prefixed(routes::rsv(signature))))
}

/// The approvals of the `X-Nitro-Signer-Approvals` header (see
/// [`json_rpc::parse_approvals_header`]), given once.
fn approvals_header(headers: &HeaderMap) -> Result<Vec<protocol::Approval>, RpcError> {
    let mut values = headers.get_all(&APPROVALS_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(Vec::new());
    };
    if values.next().is_some() {
        return Err(RpcError::invalid_request(
            "give X-Nitro-Signer-Approvals once, with all the approvals in one JSON array",
        ));
    }
    json_rpc::parse_approvals_header(value.as_bytes()).map(routes::approvals)
}

/// `POST /reload`: reads the accounts directory again and answers what is served. A tenant
/// is shown only the accounts and files of its own owner labels.
pub(crate) async fn reload(
    State(state): State<Arc<AppState>>,
    mut request: Request,
) -> Result<Response, Failure> {
    let caller = take_caller(&mut request)?;
    let report = state.rpc.accounts.reload(&state).await;
    let view = match &caller {
        Caller::Anyone => report.view(|_| true),
        Caller::Tenant(tenant) => {
            report.view(|owner| owner.is_some_and(|owner| tenant.may_use(owner)))
        }
    };
    Ok(Json(view).into_response())
}

/// `GET /upcheck` (web3signer's liveness check): `OK`.
pub(crate) async fn upcheck() -> &'static str {
    "OK"
}

/// Keeps the accounts current: loads them at start, again on SIGHUP, and retries those whose
/// address could not be checked yet every few seconds.
pub(crate) async fn keep_accounts(
    state: Arc<AppState>,
    hangups: Option<tokio::signal::unix::Signal>,
) {
    state.rpc.accounts.keep(&state, hangups).await;
}

/// An object parameter's members.
fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, RpcError> {
    value
        .as_object()
        .ok_or_else(|| RpcError::invalid_params(format!("{what} must be a JSON object")))
}
