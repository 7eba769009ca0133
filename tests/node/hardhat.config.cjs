// The Ethereum node the tests run nitro-signer against (nitro_signer_tests::hardhat): Hardhat
// Network on the Prague hardfork, chain id 31337, with Hardhat's default dev accounts (which it
// holds unlocked and funded) and automine, so that a transaction is mined as soon as it is sent.
// Nothing is compiled: the tests send transactions, they deploy no contract.
module.exports = {
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: "prague",
      mining: { auto: true },
      accounts: {
        mnemonic: "test test test test test test test test test test test junk",
      },
    },
  },
};
