"""web3.py, unmodified, as a backend would use a node that holds its accounts.

It checks the account is served (eth_accounts), sends a transaction (eth_sendTransaction) and
waits for it to be mined, signs EIP-712 typed data (eth_signTypedData_v4: web3.py's own
`sign_typed_data` asks for the older `eth_signTypedData`, so the request is made through the
provider) and a message (eth_sign), and has a transaction signed without sending it
(eth_signTransaction), verifying every signature with eth-account.

Usage: python web3_client.py URL ADDRESS [API_KEY] [--skip-sign-transaction]
(`--skip-sign-transaction` for a node without eth_signTransaction, such as Hardhat's.)
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
    skip_sign_transaction = "--skip-sign-transaction" in argv
    args = [arg for arg in argv if arg != "--skip-sign-transaction"]
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

    response = w3.provider.make_request(
        "eth_signTypedData_v4", [address, json.dumps(MAIL)]
    )
    check("error" not in response, f"eth_signTypedData_v4: {response.get('error')}")
    typed_signature = response["result"]
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

    if skip_sign_transaction:
        results["signTransaction"] = "skipped"
    else:
        nonce = w3.eth.get_transaction_count(address)
        to = Account.create().address
        signed = w3.eth.sign_transaction(
            {
                "from": address,
                "to": to,
                "value": 1,
                "nonce": nonce,
                "gas": 21000,
                "maxFeePerGas": 2 * 10**9,
                "maxPriorityFeePerGas": 10**9,
                "chainId": results["chainId"],
            }
        )
        # web3.py takes geth's answer, {"raw": …, "tx": …}; it cannot read a bare raw string.
        raw = signed["raw"]
        sender = Account.recover_transaction(raw)
        check(sender == address, f"signed transaction recovers {sender}")
        check(signed["tx"]["to"] == to, f"signed transaction to {signed['tx']['to']}")
        check(signed["tx"]["nonce"] == nonce, f"signed transaction nonce {signed['tx']['nonce']}")
        # Signed, not sent.
        check(w3.eth.get_transaction_count(address) == nonce, "eth_signTransaction sent it")
        results["signTransaction"] = raw.to_0x_hex()

    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
