// viem 2, unmodified, with a JSON-RPC account (one the node holds, named by its address): it
// sends a transaction (eth_sendTransaction) and waits for it to be mined, and signs EIP-712
// typed data (eth_signTypedData_v4) and a personal message (personal_sign), verifying both
// signatures itself.
//
// Usage: node viem_client.mjs URL ADDRESS [API_KEY]
// Prints one JSON object of results; exits non-zero if a check fails.

import {
  createPublicClient,
  createWalletClient,
  defineChain,
  getAddress,
  http,
  parseEther,
  recoverMessageAddress,
  recoverTypedDataAddress,
  verifyMessage,
  verifyTypedData,
} from "viem";
import { generatePrivateKey, privateKeyToAddress } from "viem/accounts";

const [url, addressArg, apiKey] = process.argv.slice(2);
if (!url || !addressArg) {
  console.error("usage: node viem_client.mjs URL ADDRESS [API_KEY]");
  process.exit(2);
}
const address = getAddress(addressArg);

setTimeout(() => {
  console.error("viem_client: timed out");
  process.exit(3);
}, 90_000).unref();

function check(condition, what) {
  if (!condition) {
    throw new Error(`check failed: ${what}`);
  }
}

// A chain like Hardhat's and the dev stack's: id 31337.
const chain = defineChain({
  id: 31337,
  name: "nitro-signer test chain",
  nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
  rpcUrls: { default: { http: [url] } },
});
const headers = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
const transport = http(url, { fetchOptions: { headers }, retryCount: 0, timeout: 30_000 });
const wallet = createWalletClient({ account: address, chain, transport });
const client = createPublicClient({ chain, transport, pollingInterval: 200 });

const results = {};
try {
  results.chainId = await client.getChainId();
  const accounts = await wallet.getAddresses();
  check(
    accounts.some((served) => getAddress(served) === address),
    `eth_accounts ${JSON.stringify(accounts)} lacks ${address}`,
  );

  const recipient = privateKeyToAddress(generatePrivateKey());
  const value = parseEther("0.001");
  const hash = await wallet.sendTransaction({ to: recipient, value });
  const receipt = await client.waitForTransactionReceipt({ hash, timeout: 60_000 });
  check(receipt.status === "success", `receipt status ${receipt.status}`);
  check(getAddress(receipt.from) === address, `receipt from ${receipt.from}`);
  const balance = await client.getBalance({ address: recipient });
  check(balance === value, `recipient balance ${balance}`);
  results.transaction = { hash, type: receipt.type, block: Number(receipt.blockNumber) };

  const typedData = {
    domain: {
      name: "Ether Mail",
      version: "1",
      chainId: 31337,
      verifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    types: {
      Person: [
        { name: "name", type: "string" },
        { name: "wallet", type: "address" },
      ],
      Mail: [
        { name: "from", type: "Person" },
        { name: "to", type: "Person" },
        { name: "contents", type: "string" },
      ],
    },
    primaryType: "Mail",
    message: {
      from: { name: "Cow", wallet: "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" },
      to: { name: "Bob", wallet: "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB" },
      contents: "Hello, Bob!",
    },
  };
  const typedSignature = await wallet.signTypedData(typedData);
  const typedSigner = await recoverTypedDataAddress({ ...typedData, signature: typedSignature });
  check(typedSigner === address, `typed data recovers ${typedSigner}`);
  check(
    await verifyTypedData({ ...typedData, address, signature: typedSignature }),
    "verifyTypedData",
  );
  results.typedDataSignature = typedSignature;

  const messageSignature = await wallet.signMessage({ message: "hello" });
  const messageSigner = await recoverMessageAddress({
    message: "hello",
    signature: messageSignature,
  });
  check(messageSigner === address, `message recovers ${messageSigner}`);
  check(
    await verifyMessage({ address, message: "hello", signature: messageSignature }),
    "verifyMessage",
  );
  results.messageSignature = messageSignature;
} catch (error) {
  console.error(error);
  process.exit(1);
}
console.log(JSON.stringify(results));
