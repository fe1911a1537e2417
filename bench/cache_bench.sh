#!/usr/bin/env bash
# Semantic cache benchmark (docs/benchmarks.md), in one run:
#   1. cache-bench: lookup latency (embedding included) and memory per entry at 10k, 100k and
#      1M entries in memory, and at 100k in Redis (a redis-server started here on loopback);
#   2. the HNSW graph under churn: recall and store cost of a full 5,000-entry cache taking
#      20,000 more stores (cache-bench --churn);
#   3. end to end through the gateway: a cache hit against a miss (a new question each time,
#      which goes to the mock upstream and fills the cache), one connection, wrk --latency.
# Usage: bench/cache_bench.sh [SIZES] [DURATION_S]   (markdown on stdout; progress on stderr)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/bin
SIZES=${1:-10000,100000,1000000}
DURATION=${2:-10}
. "$ROOT/bench/lib.sh"

echo "## Cache lookup (one core, $(nproc) cores on the machine, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
"$BIN/cache-bench" --entries "$SIZES" --queries 5000

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >/dev/null &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
"$BIN/cache-bench" --entries 100000 --queries 5000 --redis "127.0.0.1:$REDIS_PORT" | tail -n 1
echo
echo "### The graph under churn"
echo
"$BIN/cache-bench" --churn 5000 --stores 20000

"$BIN/mock-upstream" --port 0 --ready-file "$WORK/mock.json" --name bench 2>/dev/null &
PIDS+=($!)
wait_file "$WORK/mock.json"
MOCK=$(sed -E 's/.*"port":([0-9]+).*/\1/' "$WORK/mock.json")
cat > "$WORK/router.yaml" <<YAML
server: {workers: 1, reload_poll_ms: 0, log_level: warn}
backends: [{name: mock, url: "http://127.0.0.1:$MOCK/v1"}]
models: [{name: small, backends: [mock]}]
default_model: small
cache: {enabled: true, max_entries: 1000000, max_bytes: 2147483648}
YAML
"$BIN/semrouter" serve --config "$WORK/router.yaml" --port 0 --admin-port 0 --ready-file "$WORK/router.json" &
PIDS+=($!)
wait_file "$WORK/router.json"
PORT=$(sed -E 's/.*"port":([0-9]+).*/\1/' "$WORK/router.json")
URL=http://127.0.0.1:$PORT/v1/chat/completions
echo
echo "## End to end through the gateway (1 connection, ${DURATION}s each)"
echo
echo "| request | req/s | p50 ms | p90 ms | p99 ms |"
echo "|---|---:|---:|---:|---:|"
for kind in hit miss; do
  out=$(wrk -t1 -c1 -d"${DURATION}s" --latency -s "$ROOT/bench/cache_$kind.lua" "$URL")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  ms() { awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.3f", v}' <<<"$out"; }
  echo "| cache $kind | $rps | $(ms 50%) | $(ms 90%) | $(ms 99%) |"
done
curl -s "http://127.0.0.1:$(sed -E 's/.*"admin_port":([0-9]+).*/\1/' "$WORK/router.json")/metrics" |
  grep -E '^semrouter_cache_(lookups_total|entries|stores_total)' >&2
