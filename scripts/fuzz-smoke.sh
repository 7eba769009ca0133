#!/usr/bin/env bash
# Runs every cargo-fuzz target for a short time on its committed corpus (stable toolchain, no
# sanitizer). New inputs go to a temporary directory, so the repository's corpus is not changed.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/fuzz-smoke.sh [SECONDS]

Builds the fuzz targets in fuzz/ with cargo-fuzz (installing cargo-fuzz if missing) and runs
each one for SECONDS (default 10) on its corpus in fuzz/corpus/<target>. Fails if any target
finds a crash. Grow the corpus with:
  cd fuzz && cargo fuzz run -s none --release <target> corpus/<target> -- -max_total_time=600
USAGE
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
esac
seconds="${1:-10}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  usage >&2
  exit 2
fi

cd "$(dirname "$0")/../fuzz"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz build -s none --release
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
  mkdir -p "$scratch/$target"
  echo "fuzzing $target for ${seconds}s"
  log="$scratch/$target.log"
  if ! cargo fuzz run -s none --release "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed; the crashing input is in fuzz/artifacts/$target" >&2
    exit 1
  fi
  grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$log" || true
done
