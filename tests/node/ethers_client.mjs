// ethers v6, unmodified, as a dapp or a backend would use a node that holds its accounts: it
// checks the account is served (eth_accounts), sends a transaction (eth_sendTransaction) and
// waits for it to be mined, and signs EIP-712 typed data (eth_signTypedData_v4) and a personal
// message (personal_sign), verifying both signatures itself.
//
// Usage: node ethers_client.mjs URL ADDRESS [API_KEY]
// Prints one JSON object of results; exits non-zero if a check fails.

import {
  FetchRequest,
  JsonRpcProvider,
  Wallet,
  getAddress,
  parseEther,
  verifyMessage,
  verifyTypedData,
} from "ethers";

const [url, addressArg, apiKey] = process.argv.slice(2);
if (!url || !addressArg) {
  console.error("usage: node ethers_client.mjs URL ADDRESS [API_KEY]");
  process.exit(2);
}
const address = getAddress(addressArg);

// ethers retries a provider that cannot reach its node forever: bound the whole run.
setTimeout(() => {
  console.error("ethers_client: timed out");
  process.exit(3);
}, 90_000).unref();

function check(condition, what) {
  if (!condition) {
    throw new Error(`check failed: ${what}`);
  }
}

const request = new FetchRequest(url);
if (apiKey) {
  request.setHeader("Authorization", `Bearer ${apiKey}`);
}
const provider = new JsonRpcProvider(request, undefined, { polling: true, pollingInterval: 200 });
const results = {};
try {
  const network = await provider.getNetwork();
  results.chainId = Number(network.chainId);

  // getSigner(address) asks eth_accounts and refuses an address the node does not serve.
  const signer = await provider.getSigner(address);
  check(getAddress(await signer.getAddress()) === address, "signer address");

  const recipient = Wallet.createRandom().address;
  const value = parseEther("0.001");
  const tx = await signer.sendTransaction({ to: recipient, value });
  const receipt = await tx.wait(1, 60_000);
  check(receipt !== null && receipt.status === 1, `receipt status ${receipt?.status}`);
  check(getAddress(receipt.from) === address, `receipt from ${receipt.from}`);
  const balance = await provider.getBalance(recipient);
  check(balance === value, `recipient balance ${balance}`);
  results.transaction = { hash: tx.hash, type: tx.type, block: receipt.blockNumber };

  const domain = {
    name: "Ether Mail",
    version: "1",
    chainId: 31337,
    verifyingContract: "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
  };
  const types = {
    Person: [
      { name: "name", type: "string" },
      { name: "wallet", type: "address" },
    ],
    Mail: [
      { name: "from", type: "Person" },
      { name: "to", type: "Person" },
      { name: "contents", type: "string" },
    ],
  };
  const mail = {
    from: { name: "Cow", wallet: "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" },
    to: { name: "Bob", wallet: "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB" },
    contents: "Hello, Bob!",
  };
  const typedSignature = await signer.signTypedData(domain, types, mail);
  const typedSigner = verifyTypedData(domain, types, mail, typedSignature);
  check(typedSigner === address, `typed data recovers ${typedSigner}`);
  results.typedDataSignature = typedSignature;

  const messageSignature = await signer.signMessage("hello");
  const messageSigner = verifyMessage("hello", messageSignature);
  check(messageSigner === address, `message recovers ${messageSigner}`);
  results.messageSignature = messageSignature;
} catch (error) {
  console.error(error);
  process.exit(1);
} finally {
  provider.destroy();
}
console.log(JSON.stringify(results));
