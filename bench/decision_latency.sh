#!/usr/bin/env bash
# Routing-decision latency of the embedded default config (classifiers included), p50 / p99:
#   1. in process: bench/decision_latency.cc, pipeline::route() on the 420 hand-written chat
#      prompts, at concurrency 1, 2 and 64 (threads);
#   2. through the gateway: wrk at 1 and 64 connections against semrouter on the default config,
#      a mock upstream answering at once, 16 prompts that take different decisions; the router's
#      own semrouter_routing_duration_seconds histogram gives the routing share.
# Usage: bench/decision_latency.sh [DURATION_S]   (results: markdown on stdout)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/bin
DURATION=${1:-10}
. "$ROOT/bench/lib.sh"
admin_of() { sed -E 's/.*"admin_port":([0-9]+).*/\1/' "$1"; }

echo "## Routing-decision latency, default config ($(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
echo "In process (\`build/bin/decision-latency\`, 30 passes over 420 chat prompts):"
echo
"$BIN/decision-latency" -c 1 -c 2 -c 64 -r 30
echo

"$BIN/mock-upstream" --port 0 --ready-file "$WORK/mock.json" --name bench --tokens 4 2>/dev/null &
PIDS+=($!)
wait_file "$WORK/mock.json"
MOCK=$(port_of "$WORK/mock.json")
SEMROUTER_MOCK_A_PORT=$MOCK SEMROUTER_MOCK_B_PORT=$MOCK \
  "$BIN/semrouter" serve --port 0 --admin-port 0 --ready-file "$WORK/router.json" --log-level warn 2>"$WORK/router.log" &
PIDS+=($!)
wait_file "$WORK/router.json"
GW=http://127.0.0.1:$(port_of "$WORK/router.json")
ADMIN=http://127.0.0.1:$(admin_of "$WORK/router.json")

hist() { # sum count le->cumulative of semrouter_routing_duration_seconds
  curl -sS "$ADMIN/metrics" | awk '/^semrouter_routing_duration_seconds_(sum|count)/ {print $1, $2}
    /^semrouter_routing_duration_seconds_bucket/ {print $1, $2}'
}
quantile_from() { # before-file after-file q -> upper bound (µs) of the bucket holding quantile q
  awk 'NR==FNR { b[$1]=$2; next } { d[$1]=$2-b[$1] }
    END { for (k in d) if (k ~ /_bucket/ && k !~ /Inf/) { le=k; sub(/.*le="/,"",le); sub(/".*/,"",le); print le, d[k] }
          print "count", d["semrouter_routing_duration_seconds_count"] }' "$1" "$2" >"$WORK/q"
  local n; n=$(awk '$1=="count" {print $2}' "$WORK/q")
  grep -v '^count' "$WORK/q" | sort -g | awk -v n="$n" -v q="$3" '$2 >= q*n { printf "≤ %g", $1*1e6; found=1; exit } END { if (!found) print "> 100000" }'
}
echo "Through the gateway (wrk, ${DURATION}s; end to end includes the proxying and the mock):"
echo
echo "| connections | req/s | end-to-end p50 ms | end-to-end p99 ms | routing mean µs | routing p50 µs | routing p99 µs |"
echo "|---|---|---|---|---|---|---|"
for c in 1 64; do
  hist >"$WORK/before"
  out=$(wrk -t1 -c"$c" -d"${DURATION}s" --latency -s "$ROOT/bench/chat_prompts.lua" "$GW")
  hist >"$WORK/after"
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  mean=$(awk 'NR==FNR { b[$1]=$2; next } { d[$1]=$2-b[$1] }
    END { printf "%.1f", 1e6*d["semrouter_routing_duration_seconds_sum"]/d["semrouter_routing_duration_seconds_count"] }' "$WORK/before" "$WORK/after")
  echo "| $c | $rps | $p50 | $p99 | $mean | $(quantile_from "$WORK/before" "$WORK/after" 0.5) | $(quantile_from "$WORK/before" "$WORK/after" 0.99) |"
done
