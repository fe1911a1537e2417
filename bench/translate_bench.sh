#!/usr/bin/env bash
# Cost of the API translations (docs/benchmarks.md), in one run:
#   1. bench_translate (Google Benchmark): per-call cost of the Anthropic Messages and Responses
#      translations, small and large requests, whole answers and whole streams;
#   2. end to end through the gateway: the same question as POST /v1/chat/completions (no
#      translation), POST /v1/messages and POST /v1/responses (translated to chat for routing
#      and the backend, the answer translated back), to one mock-upstream, streamed and not,
#      in interleaved rounds (the API order rotating from round to round), at CONNECTIONS and
#      at LIGHT_CONNECTIONS, with the CPU time semrouter spent per request (/proc/PID/stat).
# Usage: bench/translate_bench.sh [DURATION_S] [CONNECTIONS]   (markdown on stdout; progress on stderr)
#   env: ROUNDS (3), LIGHT_CONNECTIONS (1), TOKENS (20: words per answer, chunks per stream)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/bin
DURATION=${1:-10}
CONNS=${2:-64}
ROUNDS=${ROUNDS:-3}
LIGHT_CONNS=${LIGHT_CONNECTIONS:-1}
TOKENS=${TOKENS:-20}
. "$ROOT/bench/lib.sh"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, all threads
CLK_TCK=$(getconf CLK_TCK)
[[ -x $BIN/bench_translate ]] || { echo "build/bin/bench_translate is missing: ninja -C build bench_translate" >&2; exit 1; }

echo "## API translation ($(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r))"
echo
echo "### Per call (bench_translate, one core, median of 3 repetitions)"
echo
"$BIN/bench_translate" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_format=json --benchmark_out="$WORK/translate.json" --benchmark_out_format=json >/dev/null
python3 - "$WORK/translate.json" <<'PY'
import json, sys
rows = [b for b in json.load(open(sys.argv[1]))["benchmarks"] if b.get("aggregate_name") == "median"]
print("| function | input | µs per call | MB/s in | µs per event |")
print("|---|---|---:|---:|---:|")
for b in rows:
    name = b["run_name"].removeprefix("BM_")
    us = b["real_time"]  # the benchmarks report in microseconds
    per_event = ""
    if "items_per_second" in b:
        per_event = f"{1e6 / b['items_per_second']:.2f}"
    print(f"| {name} | {b.get('label', '')} | {us:.2f} | {b['bytes_per_second'] / 1e6:.0f} | {per_event} |")
PY
echo

# ---- end to end: one mock, one router; chat vs messages vs responses ----
"$BIN/mock-upstream" --port 0 --ready-file "$WORK/mock.json" --name bench --tokens "$TOKENS" 2>/dev/null &
PIDS+=($!)
wait_file "$WORK/mock.json"
MOCK=$(port_of "$WORK/mock.json")
# provider vllm: /v1/responses is translated to chat for it (an openai backend would get it as is).
cat >"$WORK/router.yaml" <<YAML
server: {workers: 1, reload_poll_ms: 0, log_level: warn}
backends: [{name: mock, provider: vllm, url: "http://127.0.0.1:$MOCK/v1", max_idle_connections: 256}]
models: [{name: m, backends: [mock]}]
default_model: m
YAML
"$BIN/semrouter" serve --config "$WORK/router.yaml" --port 0 --admin-port 0 --ready-file "$WORK/router.json" 2>"$WORK/router.log" &
ROUTER_PID=$!
PIDS+=("$ROUTER_PID")
wait_file "$WORK/router.json"
ROUTER=http://127.0.0.1:$(port_of "$WORK/router.json")

# Sanity: each API answers 200 in its own shape, streamed and not, before we measure.
check() { # api stream expected-substring
  local path body out
  case $1 in
    chat) path=/v1/chat/completions body='{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":64' ;;
    messages) path=/v1/messages body='{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":64' ;;
    responses) path=/v1/responses body='{"model":"m","input":"hi","max_output_tokens":64' ;;
  esac
  [[ $2 == stream ]] && body+=',"stream":true'
  out=$(curl -s -w '\n%{http_code}' -H 'content-type: application/json' -d "$body}" "$ROUTER$path")
  [[ $(tail -n1 <<<"$out") == 200 && $out == *"$3"* ]] ||
    { echo "sanity check failed: $1 $2: $out" >&2; cat "$WORK/router.log" >&2; exit 1; }
}
check chat plain '"chat.completion"'
check chat stream '[DONE]'
check messages plain '"type":"message"'
check messages stream 'event: message_stop'
check responses plain '"object":"response"'
check responses stream 'event: response.completed'

to_ms() { # wrk prints 1.23ms / 456.00us / 1.02s
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); printf "%.3f", v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); printf "%.3f", v } else if (v ~ /s$/) { sub(/s$/,"",v); printf "%.3f", v*1000 } else print v }'
}
# One wrk run: prints "req/s p50_ms p99_ms errors router_cpu_us_per_req".
run_wrk() { # conns duration_s api mode
  local out r0 r1
  r0=$(cpu_ticks "$ROUTER_PID")
  out=$(wrk -t1 -c"$1" -d"$2s" --latency -s "$ROOT/bench/translate_post.lua" "$ROUTER" -- "$3" "$4")
  r1=$(cpu_ticks "$ROUTER_PID")
  local rps p50 p99 reqs errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  errs=$(awk '/Non-2xx/ {n += $5} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
  awk -v rps="$rps" -v p50="$p50" -v p99="$p99" -v e="$errs" -v n="$reqs" -v r=$((r1 - r0)) -v hz="$CLK_TCK" \
    'BEGIN { printf "%s %s %s %s %.1f\n", rps, p50, p99, e, r / hz * 1e6 / n }'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

APIS=(chat messages responses)
measure() { # conns mode(plain|stream)
  local conns=$1 mode=$2
  declare -A RPS P50 P99 ERR CPU
  for api in "${APIS[@]}"; do run_wrk "$conns" 1 "$api" "$mode" >/dev/null; done # warm-up
  for round in $(seq "$ROUNDS"); do
    # Rotate the order so that no API always runs first or last in a round.
    local order=() k
    for k in 0 1 2; do order+=("${APIS[$(((k + round - 1) % 3))]}"); done
    for api in "${order[@]}"; do
      echo "  c$conns $mode, round $round: $api" >&2
      read -r "RPS[$api,$round]" "P50[$api,$round]" "P99[$api,$round]" "ERR[$api,$round]" "CPU[$api,$round]" \
        < <(run_wrk "$conns" "$DURATION" "$api" "$mode")
    done
  done
  echo "| API | req/s | vs chat | p50 ms | added p50 ms | p99 ms | added p99 ms | semrouter CPU µs/req | added CPU µs/req | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for api in "${APIS[@]}"; do
    local r="" ratio="" p50="" d50="" p99="" d99="" cpu="" dcpu="" err=0
    for round in $(seq "$ROUNDS"); do
      r+=" ${RPS[$api,$round]}"; p50+=" ${P50[$api,$round]}"; p99+=" ${P99[$api,$round]}"; cpu+=" ${CPU[$api,$round]}"
      ratio+=" $(awk -v a="${RPS[$api,$round]}" -v b="${RPS[chat,$round]}" 'BEGIN{printf "%.3f", a/b}')"
      d50+=" $(awk -v a="${P50[$api,$round]}" -v b="${P50[chat,$round]}" 'BEGIN{printf "%.3f", a-b}')"
      d99+=" $(awk -v a="${P99[$api,$round]}" -v b="${P99[chat,$round]}" 'BEGIN{printf "%.3f", a-b}')"
      dcpu+=" $(awk -v a="${CPU[$api,$round]}" -v b="${CPU[chat,$round]}" 'BEGIN{printf "%.1f", a-b}')"
      err=$((err + ${ERR[$api,$round]}))
    done
    if [[ $api == chat ]]; then
      echo "| chat/completions | $(median <<<"$r") | 1 | $(median <<<"$p50") | — | $(median <<<"$p99") | — | $(median <<<"$cpu") | — | $err |"
    else
      echo "| $api | $(median <<<"$r") | **$(median <<<"$ratio")** ($(xargs <<<"$ratio")) | $(median <<<"$p50") | **$(median <<<"$d50")** | $(median <<<"$p99") | $(median <<<"$d99") | $(median <<<"$cpu") | **$(median <<<"$dcpu")** | $err |"
    fi
  done
  echo
}

echo "### End to end through the gateway (wrk -t1 -d${DURATION}s, $ROUNDS interleaved rounds, medians; mock answers $TOKENS words / $TOKENS chunks)"
echo
echo "semrouter 1 worker, mock-upstream and wrk share the machine. \"vs chat\", \"added\": taken inside each round against the chat/completions run of that round, then the median (per-round ratios in brackets)."
echo
for conns in "$CONNS" "$LIGHT_CONNS"; do
  for mode in plain stream; do
    echo "#### $conns connection(s), $([[ $mode == stream ]] && echo "streamed ($TOKENS chunks)" || echo "not streamed")"
    echo
    measure "$conns" "$mode"
  done
done
grep -v '^$' "$WORK/router.log" >&2 || true
