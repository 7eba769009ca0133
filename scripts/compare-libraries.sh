#!/usr/bin/env bash
# What a team would otherwise use: in-process signing with ethers v6 (Node.js) and eth-account
# (Python), timed on this machine, for comparison with `nitro-signer bench`.
set -euo pipefail

ETHERS_VERSION=6.17.0
ETH_ACCOUNT_VERSION=0.14.0

usage() {
  cat <<USAGE
Usage: scripts/compare-libraries.sh

Installs ethers ${ETHERS_VERSION} (npm) and eth-account ${ETH_ACCOUNT_VERSION} (pip) into a
temporary directory, then times each one's in-process signing of the EIP-1559 transaction that
\`nitro-signer bench\` sends (scripts/compare/): median of 5 runs, one core. Needs node, npm,
python3 and pip, and the npm and PyPI registries.
USAGE
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

here="$(cd "$(dirname "$0")" && pwd)/compare"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cp "$here/ethers_sign.mjs" "$here/eth_account_sign.py" "$work/"
(cd "$work" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund \
  "ethers@${ETHERS_VERSION}" >/dev/null)
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$work/py" "eth-account==${ETH_ACCOUNT_VERSION}"

(cd "$work" && node ethers_sign.mjs)
PYTHONPATH="$work/py" python3 "$work/eth_account_sign.py"
