#!/usr/bin/env bash
# Runs, describes and terminates the nitro-signer enclave with nitro-cli.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/run-enclave.sh COMMAND [options]

Commands:
  run        start the enclave from an EIF
  describe   show the running enclaves (nitro-cli describe-enclaves)
  terminate  stop the nitro-signer enclave (or --all)
  console    attach to the enclave's console (debug mode only)

run options:
  --eif PATH          enclave image file (default: build/nitro-signer.eif)
  --cpus N            vCPUs for the enclave (default: 2; whole cores, so even on instances with
                      two threads per core; at most what the allocator reserved)
  --memory MIB        memory for the enclave in MiB (default: 1024; at most what the allocator
                      reserved)
  --cid CID           the enclave's vsock CID (default: 16, what nitro-signer-proxy dials)
  --name NAME         enclave name (default: nitro-signer)
  --foreground        stay in the foreground while the enclave runs and exit (non-zero) when it
                      stops, so that a supervisor (deploy/nitro-signer-enclave.service) restarts it;
                      terminates the enclave on SIGTERM
  --debug             DEBUG MODE: the console becomes readable from the parent and every PCR in
                      the attestation document is zero, so a production KMS key policy refuses
                      the enclave. Never with production keys.

terminate options:
  --name NAME         the enclave to stop (default: nitro-signer)
  --all               stop every enclave on this instance

console options:
  --name NAME         the enclave (default: nitro-signer)

  -h, --help          show this help

Needs nitro-cli and jq. The allocator (/etc/nitro_enclaves/allocator.yaml,
deploy/allocator.yaml) must reserve at least --cpus and --memory.
EOF
}

die() {
  echo "run-enclave.sh: $*" >&2
  exit 1
}

need() {
  command -v nitro-cli >/dev/null 2>&1 ||
    die "nitro-cli is not installed: dnf install -y aws-nitro-enclaves-cli"
  command -v jq >/dev/null 2>&1 || die "jq is not installed: dnf install -y jq"
}

is_number() {
  case "$1" in "" | *[!0-9]*) return 1 ;; *) return 0 ;; esac
}

# The id of the enclave called $1, if it runs.
enclave_id() {
  nitro-cli describe-enclaves | jq -r --arg name "$1" '.[] | select(.EnclaveName == $name) | .EnclaveID'
}

debug_banner() {
  cat >&2 <<'EOF'
run-enclave.sh: ################################################################
run-enclave.sh: #  DEBUG MODE. The parent can read the enclave's console, and   #
run-enclave.sh: #  the attestation document shows all-zero PCRs: no production #
run-enclave.sh: #  KMS key policy accepts it, and none should. Development only. #
run-enclave.sh: ################################################################
EOF
}

cmd_run() {
  local eif="build/nitro-signer.eif" cpus=2 memory=1024 cid=16 name="nitro-signer"
  local foreground=0 debug=0
  while [ $# -gt 0 ]; do
    case "$1" in
      -h | --help) usage; exit 0 ;;
      --eif) eif="${2:?--eif needs a value}"; shift 2 ;;
      --cpus) cpus="${2:?--cpus needs a value}"; shift 2 ;;
      --memory) memory="${2:?--memory needs a value}"; shift 2 ;;
      --cid) cid="${2:?--cid needs a value}"; shift 2 ;;
      --name) name="${2:?--name needs a value}"; shift 2 ;;
      --foreground) foreground=1; shift ;;
      --debug) debug=1; shift ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
  done
  if ! is_number "$cpus" || [ "$cpus" -lt 1 ]; then
    die "--cpus must be a positive number"
  fi
  if ! is_number "$memory" || [ "$memory" -lt 64 ]; then
    die "--memory must be a number of MiB (>= 64)"
  fi
  # CIDs 0-3 are reserved (3 is the parent instance as the enclave sees it).
  if ! is_number "$cid" || [ "${#cid}" -gt 10 ] || [ "$cid" -lt 4 ] || [ "$cid" -gt 4294967294 ]; then
    die "--cid must be 4..4294967294"
  fi
  [ -r "$eif" ] || die "cannot read $eif (build it with scripts/build-eif.sh)"
  need

  if [ -n "$(enclave_id "$name")" ]; then
    die "an enclave called $name is already running (scripts/run-enclave.sh terminate --name $name)"
  fi

  local args=(--eif-path "$eif" --cpu-count "$cpus" --memory "$memory" --enclave-cid "$cid" --enclave-name "$name")
  if [ "$debug" = 1 ]; then
    debug_banner
    args+=(--debug-mode)
  fi
  nitro-cli run-enclave "${args[@]}"
  [ "$debug" = 0 ] || debug_banner

  [ "$foreground" = 1 ] || return 0
  local id
  id="$(enclave_id "$name")"
  [ -n "$id" ] || die "the enclave $name stopped right after starting (see /var/log/nitro_enclaves/)"
  trap 'nitro-cli terminate-enclave --enclave-id "$id" >/dev/null 2>&1 || true; exit 0' TERM INT
  echo "run-enclave.sh: enclave $name ($id) running; watching it" >&2
  while [ "$(enclave_id "$name")" = "$id" ]; do
    sleep 5 &
    wait $! || true
  done
  die "the enclave $name ($id) stopped"
}

cmd_terminate() {
  local name="nitro-signer" all=0
  while [ $# -gt 0 ]; do
    case "$1" in
      -h | --help) usage; exit 0 ;;
      --name) name="${2:?--name needs a value}"; shift 2 ;;
      --all) all=1; shift ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
  done
  need
  if [ "$all" = 1 ]; then
    nitro-cli terminate-enclave --all
    return
  fi
  local id
  id="$(enclave_id "$name")"
  if [ -z "$id" ]; then
    echo "run-enclave.sh: no enclave called $name is running" >&2
    return 0
  fi
  nitro-cli terminate-enclave --enclave-id "$id"
}

cmd_console() {
  local name="nitro-signer"
  while [ $# -gt 0 ]; do
    case "$1" in
      -h | --help) usage; exit 0 ;;
      --name) name="${2:?--name needs a value}"; shift 2 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
  done
  need
  local id
  id="$(enclave_id "$name")"
  [ -n "$id" ] || die "no enclave called $name is running"
  # nitro-cli refuses unless the enclave runs in debug mode.
  nitro-cli console --enclave-id "$id"
}

[ $# -gt 0 ] || { usage >&2; exit 2; }
command="$1"
shift
case "$command" in
  -h | --help | help) usage ;;
  run) cmd_run "$@" ;;
  describe) need; nitro-cli describe-enclaves ;;
  terminate) cmd_terminate "$@" ;;
  console) cmd_console "$@" ;;
  *) usage >&2; die "unknown command: $command" ;;
esac
