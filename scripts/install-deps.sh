#!/usr/bin/env bash
# Installs everything semrouter needs to build, test, demo and benchmark on
# Debian bookworm. Idempotent: packages already present are skipped, so a
# second run costs a few dpkg queries and no network.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config clang-format
  libboost-dev libboost-system-dev liburing-dev   # the gateway: Asio/Beast, io_uring sends
  libsimdjson-dev nlohmann-json3-dev libyaml-cpp-dev libre2-dev
  libspdlog-dev libfmt-dev libcli11-dev libexpected-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libdnnl-dev libopenblas-dev libutf8proc-dev   # transformer encoders: GEMM backends, Unicode
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler  # ext_proc (gRPC)
  libprotoc-dev       # the deployment test parses Envoy's protos at run time
  clang libclang-rt-14-dev  # make fuzz: clang, libFuzzer and the sanitizers' runtimes
  libomp-dev          # clang's OpenMP, which configuring the project with clang (make fuzz) needs
  zlib1g-dev          # gzip-compressed training data
  libmimalloc-dev     # the server's allocator (faster than glibc malloc on the request path)
  libfasttext-dev     # language identification with fastText's lid.176.ftz
  libhnswlib-dev      # semantic cache: approximate nearest neighbours
  libhiredis-dev redis-server  # semantic cache shared across replicas (tests start their own)
  libssl-dev openssl  # https:// upstreams; the TLS tests make their CA and certificates with openssl
  prometheus          # promtool validates our /metrics exposition in tests
  curl                # integration tests and the demo talk HTTP with it
  wrk nginx-light     # benchmark: load generator and the reference proxy
  valgrind            # bench/instructions.sh: instructions per request under callgrind
  nodejs npm          # the official openai and anthropic SDKs run in the test suite
  chromium            # the dashboard's browser test drives it headless (puppeteer-core)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm may come from outside Debian's package (the image ships one); accept it.
if command -v npm >/dev/null 2>&1; then
  tmp=()
  for p in "${missing[@]}"; do [[ "$p" == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: apt packages present"
fi

# Node packages for the test suite (the official OpenAI and Anthropic SDKs as real clients; gRPC
# for the ext_proc client that stands in for Envoy; puppeteer-core to drive Debian's chromium in
# the dashboard's browser test). PUPPETEER_SKIP_DOWNLOAD: puppeteer fetches no browser of its own.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODE_MODULES="$ROOT/tests/node/node_modules"
if [[ ! -d "$NODE_MODULES/openai" || ! -d "$NODE_MODULES/@grpc/grpc-js" ||
      ! -d "$NODE_MODULES/@grpc/proto-loader" || ! -d "$NODE_MODULES/@anthropic-ai/sdk" ||
      ! -d "$NODE_MODULES/puppeteer-core" ]]; then
  echo "install-deps: npm install in tests/node"
  (cd "$ROOT/tests/node" && PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error)
else
  echo "install-deps: npm packages present"
fi
