"""web3.py, unmodified, as a backend would use a node that holds its accounts.

It checks the account is served (eth_accounts), sends a transaction (eth_sendTransaction) and
waits for it to be mined, signs EIP-712 typed data (web3.py's own `sign_typed_data`, which asks
for `eth_signTypedData`) and a message (eth_sign), and has a transaction signed without sending
it (eth_signTransaction, whose answer is the raw transaction as web3signer gives it, so it is
asked through the provider: web3.py's `sign_transaction` reads only geth's `{raw, tx}`),
verifying every signature with eth-account.

Usage: python web3_client.py URL ADDRESS [API_KEY] [--hardhat]
(`--hardhat` for Hardhat's own node, which has neither eth_signTransaction nor
eth_signTypedData: the typed data then goes to eth_signTypedData_v4 through the provider.)
Prints one JSON object of results; exits non-zero if a check fails.
"""

import json
import sys

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from web3 import HTTPProvider, Web3

MAIL = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Person": [
            {"name": "name", "type": "string"},
            {"name": "wallet", "type": "address"},
        ],
        "Mail": [
            {"name": "from", "type": "Person"},
            {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "primaryType": "Mail",
    "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}


def check(condition, what):
    if not condition:
        raise AssertionError(f"check failed: {what}")


def main(argv):
    hardhat = "--hardhat" in argv
    args = [arg for arg in argv if arg != "--hardhat"]
    if len(args) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    url, address = args[0], Web3.to_checksum_address(args[1])
    headers = {"Content-Type": "application/json"}
    if len(args) == 3:
        headers["Authorization"] = f"Bearer {args[2]}"
    w3 = Web3(HTTPProvider(url, request_kwargs={"headers": headers, "timeout": 30}))
    results = {"chainId": w3.eth.chain_id}

    accounts = w3.eth.accounts
    check(address in accounts, f"eth_accounts {accounts} lacks {address}")

    recipient = Account.create().address
    value = Web3.to_wei(1, "milliether")
    tx_hash = w3.eth.send_transaction({"from": address, "to": recipient, "value": value})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.2)
    check(receipt["status"] == 1, f"receipt status {receipt['status']}")
    check(receipt["from"] == address, f"receipt from {receipt['from']}")
    balance = w3.eth.get_balance(recipient)
    check(balance == value, f"recipient balance {balance}")
    results["transaction"] = {
        "hash": tx_hash.to_0x_hex(),
        "type": receipt["type"],
        "block": receipt["blockNumber"],
    }

    if hardhat:
        response = w3.provider.make_request(
            "eth_signTypedData_v4", [address, json.dumps(MAIL)]
        )
        check("error" not in response, f"eth_signTypedData_v4: {response.get('error')}")
        typed_signature = response["result"]
    else:
        typed_signature = w3.eth.sign_typed_data(address, MAIL).to_0x_hex()
    typed_signer = Account.recover_message(
        encode_typed_data(full_message=MAIL), signature=typed_signature
    )
    check(typed_signer == address, f"typed data recovers {typed_signer}")
    results["typedDataSignature"] = typed_signature

    message_signature = w3.eth.sign(address, text="hello")
    message_signer = Account.recover_message(
        encode_defunct(text="hello"), signature=message_signature
    )
    check(message_signer == address, f"message recovers {message_signer}")
    results["messageSignature"] = message_signature.to_0x_hex()

    if hardhat:
        results["signTransaction"] = "skipped"
    else:
        nonce = w3.eth.get_transaction_count(address)
        to = Account.create().address
        tx = {
            "from": address,
            "to": to,
            "value": Web3.to_hex(1),
            "nonce": Web3.to_hex(nonce),
            "gas": Web3.to_hex(21000),
            "maxFeePerGas": Web3.to_hex(2 * 10**9),
            "maxPriorityFeePerGas": Web3.to_hex(10**9),
            "chainId": Web3.to_hex(results["chainId"]),
        }
        response = w3.provider.make_request("eth_signTransaction", [tx])
        check("error" not in response, f"eth_signTransaction: {response.get('error')}")
        raw = response["result"]
        sender = Account.recover_transaction(raw)
        check(sender == address, f"signed transaction recovers {sender}")
        # Signed, not sent; then sent by the caller, and executed.
        check(w3.eth.get_transaction_count(address) == nonce, "eth_signTransaction sent it")
        sent = w3.eth.send_raw_transaction(raw)
        receipt = w3.eth.wait_for_transaction_receipt(sent, timeout=60, poll_latency=0.2)
        check(receipt["status"] == 1, f"signed transaction receipt {receipt['status']}")
        check(w3.eth.get_balance(to) == 1, "signed transaction did not pay")
        results["signTransaction"] = raw

    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
