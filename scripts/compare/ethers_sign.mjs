// ethers v6 in process: Wallet.signTransaction of an EIP-1559 transaction (the same fields as
// `nitro-signer bench` sends), on one core. Prints the median of 5 runs of 2,000.
import { Wallet, version } from "ethers";

const wallet = new Wallet("0x" + "46".repeat(32));
const tx = (nonce) => ({
  type: 2, chainId: 1, nonce, maxFeePerGas: 2000000000n, maxPriorityFeePerGas: 1000000000n,
  gasLimit: 21000n, to: "0x3535353535353535353535353535353535353535", value: 1n,
});
for (let i = 0; i < 200; i++) await wallet.signTransaction(tx(i));
const runs = [];
for (let r = 0; r < 5; r++) {
  const n = 2000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await wallet.signTransaction(tx(i));
  runs.push(Number(process.hrtime.bigint() - start) / 1e3 / n);
}
runs.sort((a, b) => a - b);
console.log(`ethers ${version} Wallet.signTransaction: median ${runs[2].toFixed(1)} µs/tx ` +
  `(${(1e6 / runs[2]).toFixed(0)} tx/s, one core); runs ${runs.map((x) => x.toFixed(1)).join(", ")}`);
