#!/usr/bin/env bash
# Builds the nitro-signer enclave image file (EIF) and writes its measurements next to it.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/build-eif.sh --region REGION --kms-key-arn ARN [options]

Builds Dockerfile.enclave with docker, turns the image into an enclave image file with
`nitro-cli build-enclave`, and writes, in the output directory:

  NAME.eif                    the enclave image file
  NAME.measurements.json      PCR0, PCR1, PCR2 (and PCR8 when signed), as nitro-cli prints them:
                              the input of `nitro-signer policy --measurements`
  NAME.build.txt              what the measurements depend on: git commit, build arguments,
                              nitro-cli and docker versions, sha256 of the enclave binary

Run it on the kind of instance the enclave will run on (x86_64 or Graviton/aarch64): the
binary is built for the build machine's platform unless --target says otherwise.

Options:
  --region REGION              AWS region of the KMS key (measured into the image)
  --kms-key-arn ARN            KMS key ARN new keys are generated under (measured into the image)
  --allowed-kms-keys ARN[,ARN]  further KMS keys whose blobs the enclave uses (measured); the
                               generation key is always allowed, blobs under others are refused
  --output-dir DIR             where to write the files (default: build)
  --name NAME                  file name stem (default: nitro-signer)
  --tag TAG                    docker image tag (default: nitro-signer-enclave:latest)
  --target TRIPLE              Rust target, e.g. aarch64-unknown-linux-musl (default: the
                               build machine's *-unknown-linux-musl)
  --signing-key KEY.pem        sign the EIF (adds PCR8); needs --signing-certificate
  --signing-certificate CERT.pem
                               certificate of the signing key
  --no-cache                   build the docker image from scratch
  -h, --help                   show this help

Needs docker and nitro-cli (package aws-nitro-enclaves-cli and aws-nitro-enclaves-cli-devel on
Amazon Linux). Next step: `nitro-signer policy --measurements OUTPUT_DIR/NAME.measurements.json
--role-arn ... --account ... --admin-arn ...` (docs/deploy.md).
EOF
}

die() {
  echo "build-eif.sh: $*" >&2
  exit 1
}

region=""
key_arn=""
allowed_keys=""
out_dir="build"
name="nitro-signer"
tag="nitro-signer-enclave:latest"
target=""
signing_key=""
signing_cert=""
no_cache=()

while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --region) region="${2:?--region needs a value}"; shift 2 ;;
    --kms-key-arn) key_arn="${2:?--kms-key-arn needs a value}"; shift 2 ;;
    --allowed-kms-keys) allowed_keys="${2:?--allowed-kms-keys needs a value}"; shift 2 ;;
    --output-dir) out_dir="${2:?--output-dir needs a value}"; shift 2 ;;
    --name) name="${2:?--name needs a value}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a value}"; shift 2 ;;
    --target) target="${2:?--target needs a value}"; shift 2 ;;
    --signing-key) signing_key="${2:?--signing-key needs a value}"; shift 2 ;;
    --signing-certificate) signing_cert="${2:?--signing-certificate needs a value}"; shift 2 ;;
    --no-cache) no_cache=(--no-cache); shift ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

[ -n "$region" ] || die "--region is required (see --help)"
[ -n "$key_arn" ] || die "--kms-key-arn is required (see --help)"
case "$name" in
  "" | *[!A-Za-z0-9._-]*) die "--name may hold only letters, digits, '.', '_' and '-'" ;;
esac
if [ -n "$signing_key" ] || [ -n "$signing_cert" ]; then
  if [ -z "$signing_key" ] || [ -z "$signing_cert" ]; then
    die "--signing-key and --signing-certificate go together"
  fi
  [ -r "$signing_key" ] || die "cannot read $signing_key"
  [ -r "$signing_cert" ] || die "cannot read $signing_cert"
fi

command -v docker >/dev/null 2>&1 || die "docker is not installed (docs/deploy.md, step 2)"
command -v nitro-cli >/dev/null 2>&1 ||
  die "nitro-cli is not installed: dnf install -y aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dockerfile="$repo/Dockerfile.enclave"
[ -f "$dockerfile" ] || die "no $dockerfile"
# Every base image must be pinned by digest: a tag can move, and the measurements with it.
if grep -E '^(ARG RUST_IMAGE=|FROM )' "$dockerfile" | grep -v -E '@sha256:[0-9a-f]{64}|^FROM (scratch|\$\{RUST_IMAGE\})' |
  grep -q .; then
  die "a base image in $dockerfile is not pinned by digest (@sha256:...)"
fi

mkdir -p "$out_dir"
eif="$out_dir/$name.eif"
measurements="$out_dir/$name.measurements.json"
info="$out_dir/$name.build.txt"

build_args=(--build-arg "KMS_REGION=$region" --build-arg "KMS_KEY_ARN=$key_arn"
  --build-arg "ALLOWED_KMS_KEYS=$allowed_keys")
[ -z "$target" ] || build_args+=(--build-arg "TARGET=$target")

echo "build-eif.sh: building $tag from $dockerfile" >&2
DOCKER_BUILDKIT=1 docker build "${no_cache[@]}" -f "$dockerfile" "${build_args[@]}" -t "$tag" "$repo"

# The binary, for its checksum: the same sources and arguments must give the same one.
binary_dir="$(mktemp -d)"
container=""
cleanup() {
  [ -z "$container" ] || docker rm -f "$container" >/dev/null 2>&1 || true
  rm -rf "$binary_dir"
}
trap cleanup EXIT
container="$(docker create "$tag")"
docker cp "$container:/nitro-signer-enclave" "$binary_dir/nitro-signer-enclave" >/dev/null
binary_sha256="$(sha256sum "$binary_dir/nitro-signer-enclave" | cut -d' ' -f1)"

echo "build-eif.sh: nitro-cli build-enclave -> $eif" >&2
sign_args=()
[ -z "$signing_key" ] || sign_args=(--signing-certificate "$signing_cert" --private-key "$signing_key")
# nitro-cli prints the measurements JSON on standard output, progress on standard error.
nitro-cli build-enclave --docker-uri "$tag" --output-file "$eif" "${sign_args[@]}" >"$measurements.tmp"
grep -q '"PCR0"' "$measurements.tmp" || die "nitro-cli printed no measurements (see $measurements.tmp)"
if [ -n "$signing_key" ]; then
  grep -q '"PCR8"' "$measurements.tmp" || die "signed, but no PCR8 in the measurements"
fi
mv "$measurements.tmp" "$measurements"

{
  echo "git commit:        $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "git tree clean:    $(if git -C "$repo" diff --quiet HEAD 2>/dev/null; then echo yes; else echo no; fi)"
  echo "kms region:        $region"
  echo "kms key arn:       $key_arn"
  echo "target:            ${target:-$(uname -m)-unknown-linux-musl}"
  echo "binary sha256:     $binary_sha256"
  echo "signed (PCR8):     $([ -n "$signing_key" ] && echo yes || echo no)"
  echo "nitro-cli:         $(nitro-cli --version 2>&1 | head -n1)"
  echo "docker:            $(docker --version 2>&1 | head -n1)"
  echo "built at:          $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$info"

cat "$measurements"
echo "build-eif.sh: wrote $eif, $measurements and $info" >&2
