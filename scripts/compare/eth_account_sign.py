"""eth-account in process: Account.sign_transaction of an EIP-1559 transaction (the same fields
as `nitro-signer bench` sends), on one core. Prints the median of 5 runs of 500."""
import statistics
import time

import eth_account
from eth_account import Account

account = Account.from_key("0x" + "46" * 32)


def tx(nonce):
    return {"type": 2, "chainId": 1, "nonce": nonce, "maxFeePerGas": 2000000000,
            "maxPriorityFeePerGas": 1000000000, "gas": 21000,
            "to": "0x3535353535353535353535353535353535353535", "value": 1}


for i in range(100):
    account.sign_transaction(tx(i))
runs = []
for _ in range(5):
    n = 500
    start = time.perf_counter()
    for i in range(n):
        account.sign_transaction(tx(i))
    runs.append((time.perf_counter() - start) / n * 1e6)
median = statistics.median(runs)
print(f"eth-account {eth_account.__version__} sign_transaction: median {median:.1f} µs/tx "
      f"({1e6 / median:.0f} tx/s, one core); runs {', '.join(f'{x:.1f}' for x in sorted(runs))}")
