//! `eth_signTransaction` and `eth_sendTransaction`: geth's transaction object turned into the
//! enclave's, and for `eth_sendTransaction` the values the caller left out filled in from the
//! upstream node, as geth fills them.
//!
//! What the proxy changes is only ever an *addition* the caller asked for by leaving a field
//! out; the enclave then parses the whole object strictly (unknown fields, a `gasPrice` on an
//! EIP-1559 transaction, a wrong `from`… are refused with its message) and checks the key's
//! policy, as for `POST /v1/sign/transaction`.
//!
//! - `to` left out means a contract creation, as in geth (the REST API needs an explicit
//!   `null`, so the proxy writes it).
//! - `chainId` left out is the upstream node's `eth_chainId` (without an upstream node it must
//!   be given).
//! - `eth_sendTransaction` only:
//!   - fees: a `gasPrice` or EIP-1559 fee given is kept. Otherwise, type 0x0 and 0x1 get
//!     `eth_gasPrice`; every other transaction gets EIP-1559 fees from `eth_feeHistory` over
//!     the last [`FEE_HISTORY_BLOCKS`] blocks: `maxPriorityFeePerGas` the median of the
//!     blocks' 60th-percentile tips (1 gwei when every block is empty), `maxFeePerGas` twice
//!     the next block's base fee plus the tip. A chain without base fees (before London) gets
//!     a legacy `gasPrice`;
//!   - `gas` left out is `eth_estimateGas` of the transaction;
//!   - `nonce` left out is assigned under the account's nonce lock (one assignment per account
//!     at a time, held until the node has taken or refused the transaction): the larger of the
//!     node's pending count and the one after the last this proxy sent, so that concurrent
//!     calls never reuse a nonce;
//!   - blob transactions (type 0x3) are refused: the node needs their blobs, which a JSON-RPC
//!     call does not carry. Sign them with `eth_signTransaction` and send the network form.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use alloy_primitives::{Address, hex};
use nitro_signer_common::protocol::{SignPayload, Signed};
use serde_json::{Map, Value, json};

use super::{Context, RpcError, object};
use crate::rpc::{Account, Upstream};

/// Blocks of fee history read for EIP-1559 fees.
const FEE_HISTORY_BLOCKS: u64 = 10;

/// The priority fee when the recent blocks paid none: 1 gwei, as ethers and viem assume.
const DEFAULT_TIP: u128 = 1_000_000_000;

/// The per-account nonce locks, each holding the nonce after the last one this proxy sent.
#[derive(Debug, Default)]
pub(crate) struct Nonces {
    next: Mutex<HashMap<Address, Arc<tokio::sync::Mutex<Option<u64>>>>>,
}

impl Nonces {
    fn of(&self, address: Address) -> Arc<tokio::sync::Mutex<Option<u64>>> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(next.entry(address).or_default())
    }
}

/// `eth_signTransaction`: the signed raw transaction, `0x` hex.
pub(super) async fn sign(context: &Context, tx: &Value) -> Result<Value, RpcError> {
    let (account, mut tx) = prepare(context, tx).await?;
    check_fee(context.state.rpc.fee_cap, &tx)?;
    let (raw, _hash) = sign_tx(context, &account, &tx_text(&mut tx)).await?;
    Ok(Value::String(hex::encode_prefixed(raw)))
}

/// `eth_sendTransaction`: fills in, signs, sends with `eth_sendRawTransaction`; answers the
/// transaction hash.
pub(super) async fn send(context: &Context, tx: &Value) -> Result<Value, RpcError> {
    let Some(upstream) = &context.state.rpc.upstream else {
        return Err(RpcError::server(
            "eth_sendTransaction needs an upstream node: start the signer with --upstream URL, \
             or sign with eth_signTransaction and send the result yourself",
        ));
    };
    let (account, mut tx) = prepare(context, tx).await?;
    if tx
        .get("type")
        .is_some_and(|value| quantity(value, "type") == Ok(3))
        || tx.contains_key("blobVersionedHashes")
        || tx.contains_key("maxFeePerBlobGas")
    {
        return Err(RpcError::invalid_params(
            "blob transactions cannot be sent with eth_sendTransaction (the node needs the \
             blobs): sign with eth_signTransaction and send the network form",
        ));
    }
    fill_fees(context, &mut tx).await?;
    if !tx.contains_key("gas") && !tx.contains_key("gasLimit") {
        let gas = upstream
            .call("eth_estimateGas", json!([estimate_request(&tx)]))
            .await?;
        tx.insert("gas".to_owned(), gas);
    }
    check_fee(context.state.rpc.fee_cap, &tx)?;
    // One nonce assignment per account at a time, from reading the count to the node's answer.
    // A nonce the caller gave goes through the lock too, so that the node has its answer
    // before the next count is read; it moves the proxy's own count only when it is the next
    // one (a caller cannot push the count far ahead).
    let slot = context.state.rpc.nonces.of(account.address);
    let mut next = slot.lock().await;
    let given = tx.contains_key("nonce");
    let nonce = match tx.get("nonce") {
        Some(given) => u64::try_from(quantity(given, "nonce")?)
            .map_err(|_| RpcError::invalid_params("`nonce` must fit in 64 bits"))?,
        None => {
            let pending = quantity(
                &upstream
                    .call(
                        "eth_getTransactionCount",
                        json!([account.address.to_checksum(None), "pending"]),
                    )
                    .await?,
                "eth_getTransactionCount",
            )?;
            let pending = u64::try_from(pending)
                .map_err(|_| RpcError::server("upstream node answered an impossible nonce"))?;
            let nonce = pending.max(next.unwrap_or(0));
            tx.insert("nonce".to_owned(), Value::String(format!("{nonce:#x}")));
            nonce
        }
    };
    let text = tx_text(&mut tx);
    let (raw, hash) = sign_tx(context, &account, &text).await?;
    let sent = send_raw(upstream, &raw, &hash).await;
    // Counted unless the node said no: a send whose outcome is unknown may have gone out.
    let counts = !given || *next == Some(nonce);
    if counts && !matches!(sent, Err(Sent::Refused(_))) {
        *next = Some(nonce.saturating_add(1));
    }
    sent.map_err(Sent::into_error)
}

/// The account of `from` and the transaction object with `to` and `chainId` written out.
async fn prepare(
    context: &Context,
    tx: &Value,
) -> Result<(Arc<Account>, Map<String, Value>), RpcError> {
    let mut tx = object(tx, "the transaction")?.clone();
    let from = tx
        .get("from")
        .ok_or_else(|| RpcError::invalid_params("the transaction's `from` is required"))?;
    let account = context.account(from)?;
    // geth: no `to` is a contract creation, and one without init code is refused (a payment
    // whose `to` was lost, as JSON.stringify drops an undefined one). The enclave wants `null`.
    if !tx.contains_key("to") {
        let code = tx.get("input").or_else(|| tx.get("data"));
        if code.is_none_or(|code| matches!(code.as_str(), Some("" | "0x"))) {
            return Err(RpcError::invalid_params(
                "contract creation without any data provided: give `to` for a payment, or \
                 the init code in `input`",
            ));
        }
        tx.insert("to".to_owned(), Value::Null);
    }
    if !tx.contains_key("chainId")
        && let Some(upstream) = &context.state.rpc.upstream
    {
        let chain_id = context
            .state
            .rpc
            .chain_id
            .get_or_try_init(|| async {
                let chain_id = upstream.call("eth_chainId", json!([])).await?;
                match quantity(&chain_id, "eth_chainId") {
                    Ok(id) if id > 0 => Ok(chain_id),
                    _ => Err(RpcError::server(
                        "upstream node answered eth_chainId with no valid chain id",
                    )),
                }
            })
            .await?;
        tx.insert("chainId".to_owned(), chain_id.clone());
    }
    Ok((account, tx))
}

fn tx_text(tx: &mut Map<String, Value>) -> String {
    Value::Object(std::mem::take(tx)).to_string()
}

/// Signs the transaction in the enclave: the raw signed transaction and its hash.
async fn sign_tx(
    context: &Context,
    account: &Account,
    text: &str,
) -> Result<(Vec<u8>, [u8; 32]), RpcError> {
    match context
        .sign(account, SignPayload::Transaction(text.to_owned()))
        .await?
    {
        Signed::Transaction(signed) => Ok((signed.raw.into_vec(), signed.hash.into_array())),
        _ => Err(RpcError::server(
            "the enclave's answer does not fit the request",
        )),
    }
}

/// Why a sent transaction has no hash to answer.
enum Sent {
    /// The node refused it (its JSON-RPC error): not sent.
    Refused(RpcError),
    /// No clear answer: it may have gone out.
    Unknown(RpcError),
}

impl Sent {
    fn into_error(self) -> RpcError {
        match self {
            Self::Refused(error) | Self::Unknown(error) => error,
        }
    }
}

/// Sends a signed transaction; answers its hash, after checking it is the one the node took.
async fn send_raw(upstream: &Upstream, raw: &[u8], hash: &[u8; 32]) -> Result<Value, Sent> {
    let ours = hex::encode_prefixed(hash);
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction",
        "params": [hex::encode_prefixed(raw)]});
    let unknown = |error: RpcError| {
        // The caller is told which transaction may be out there, to look for it rather than
        // send again.
        Sent::Unknown(RpcError {
            message: format!(
                "{}; the transaction {ours} may have been sent: look for it before sending \
                 again",
                error.message
            ),
            data: Some(json!({"hash": ours})),
            ..error
        })
    };
    let mut response = upstream.forward(&request).await.map_err(unknown)?;
    if let Some(error) = response.get_mut("error").map(Value::take) {
        return Err(Sent::Refused(RpcError::from_upstream(
            "eth_sendRawTransaction",
            error,
        )));
    }
    match response.get("result").and_then(Value::as_str) {
        Some(theirs) if theirs.eq_ignore_ascii_case(&ours) => Ok(Value::String(ours)),
        _ => Err(unknown(RpcError::server(
            "upstream node answered eth_sendRawTransaction without the transaction's hash",
        ))),
    }
}

/// Fills in the fees the caller left out (see the module docs).
async fn fill_fees(context: &Context, tx: &mut Map<String, Value>) -> Result<(), RpcError> {
    let Some(upstream) = &context.state.rpc.upstream else {
        return Ok(());
    };
    let has = |key: &str| tx.contains_key(key);
    if has("gasPrice") {
        return Ok(());
    }
    let tx_type = match tx.get("type") {
        None => None,
        Some(value) => Some(quantity(value, "type")?),
    };
    let legacy_type = matches!(tx_type, Some(0 | 1));
    let eip1559_given = has("maxFeePerGas") || has("maxPriorityFeePerGas");
    if legacy_type && !eip1559_given {
        let price = upstream.call("eth_gasPrice", json!([])).await?;
        tx.insert("gasPrice".to_owned(), price);
        return Ok(());
    }
    let history = upstream
        .call(
            "eth_feeHistory",
            json!([format!("{FEE_HISTORY_BLOCKS:#x}"), "latest", [60]]),
        )
        .await?;
    let base_fee = history
        .get("baseFeePerGas")
        .and_then(Value::as_array)
        .and_then(|fees| fees.last())
        .map(|fee| quantity(fee, "eth_feeHistory"))
        .transpose()?
        .unwrap_or(0);
    if base_fee == 0 && tx_type.is_none() && !eip1559_given {
        // No base fee: a chain before London.
        let price = upstream.call("eth_gasPrice", json!([])).await?;
        tx.insert("gasPrice".to_owned(), price);
        return Ok(());
    }
    let mut tips: Vec<u128> = history
        .get("reward")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|block| block.get(0))
                .filter_map(|tip| quantity(tip, "eth_feeHistory").ok())
                .filter(|tip| *tip > 0)
                .collect()
        })
        .unwrap_or_default();
    tips.sort_unstable();
    let suggested_tip = tips.get(tips.len() / 2).copied().unwrap_or(DEFAULT_TIP);
    let tip = match tx.get("maxPriorityFeePerGas") {
        Some(value) => quantity(value, "maxPriorityFeePerGas")?,
        None => suggested_tip,
    };
    let max_fee = match tx.get("maxFeePerGas") {
        Some(value) => quantity(value, "maxFeePerGas")?,
        None => base_fee.saturating_mul(2).saturating_add(tip),
    };
    if !tx.contains_key("maxPriorityFeePerGas") {
        tx.insert(
            "maxPriorityFeePerGas".to_owned(),
            Value::String(format!("{:#x}", tip.min(max_fee))),
        );
    }
    if !tx.contains_key("maxFeePerGas") {
        tx.insert(
            "maxFeePerGas".to_owned(),
            Value::String(format!("{max_fee:#x}")),
        );
    }
    Ok(())
}

/// Refuses a transaction whose fee could exceed `cap` wei (0: no cap): `gas` × the fee cap or
/// gas price, as geth's `--rpc.txfeecap`. Fields that are missing or malformed are left to the
/// enclave to refuse.
fn check_fee(cap: u128, tx: &Map<String, Value>) -> Result<(), RpcError> {
    let field = |key: &str| tx.get(key).and_then(|value| quantity(value, key).ok());
    let (Some(gas), Some(price)) = (
        field("gas").or_else(|| field("gasLimit")),
        field("maxFeePerGas").or_else(|| field("gasPrice")),
    ) else {
        return Ok(());
    };
    let fee = gas.saturating_mul(price);
    if cap == 0 || fee <= cap {
        return Ok(());
    }
    Err(RpcError::server(format!(
        "the transaction's fee ({fee} wei = gas × fee cap) exceeds the configured cap ({cap} \
         wei, --tx-fee-cap-wei)"
    )))
}

/// The call object `eth_estimateGas` takes: what decides the gas, without the fields some
/// nodes do not accept there.
fn estimate_request(tx: &Map<String, Value>) -> Value {
    let mut request = Map::new();
    for key in [
        "from",
        "to",
        "value",
        "gasPrice",
        "maxFeePerGas",
        "maxPriorityFeePerGas",
        "accessList",
        "authorizationList",
    ] {
        if let Some(value) = tx.get(key).filter(|value| !value.is_null() || key != "to") {
            request.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(data) = tx.get("input").or_else(|| tx.get("data")) {
        request.insert("data".to_owned(), data.clone());
    }
    Value::Object(request)
}

/// A `0x` hex quantity.
fn quantity(value: &Value, what: &str) -> Result<u128, RpcError> {
    value
        .as_str()
        .and_then(|text| text.strip_prefix("0x"))
        .filter(|digits| !digits.is_empty() && digits.len() <= 32)
        .and_then(|digits| u128::from_str_radix(digits, 16).ok())
        .ok_or_else(|| RpcError::invalid_params(format!("`{what}` must be a 0x hex quantity")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity(&json!("0x0"), "x"), Ok(0));
        assert_eq!(quantity(&json!("0x5208"), "x"), Ok(21000));
        for bad in [
            json!("5208"),
            json!("0x"),
            json!(21000),
            json!("0xg"),
            json!(format!("0x1{}", "0".repeat(32))),
        ] {
            let error = quantity(&bad, "gas").unwrap_err();
            assert_eq!(error.code, -32602, "{bad}");
            assert!(error.message.contains("`gas`"), "{bad}");
        }
    }

    #[test]
    fn fees_over_the_cap_are_refused() {
        let tx = |gas: &str, fee: &str| {
            json!({"gas": gas, "maxFeePerGas": fee})
                .as_object()
                .unwrap()
                .clone()
        };
        assert!(check_fee(1_000, &tx("0xa", "0x64")).is_ok());
        let error = check_fee(999, &tx("0xa", "0x64")).unwrap_err();
        assert_eq!(error.code, -32000);
        assert!(error.message.contains("1000 wei"), "{}", error.message);
        assert!(
            check_fee(0, &tx("0xffffffff", "0xffffffffffff")).is_ok(),
            "no cap"
        );
        let legacy = json!({"gasLimit": "0xa", "gasPrice": "0x64"});
        assert!(check_fee(999, legacy.as_object().unwrap()).is_err());
        assert!(check_fee(1, json!({"gas": "0x1"}).as_object().unwrap()).is_ok());
    }

    #[test]
    fn estimates_leave_out_what_nodes_refuse() {
        let tx = json!({"from": "0x01", "to": null, "input": "0xab", "nonce": "0x1",
            "chainId": "0x1", "type": "0x2", "maxFeePerGas": "0x2"});
        let request = estimate_request(tx.as_object().unwrap());
        assert_eq!(
            request,
            json!({"from": "0x01", "data": "0xab", "maxFeePerGas": "0x2"})
        );
    }
}
