#!/usr/bin/env bash
# ext_proc benchmark on loopback, side by side with the HTTP gateway in the same run.
#
# semrouter runs in `--mode both` pinned to one core (taskset -c 0, server.workers 1); the load
# generators run on the other core. For each config (keyword routing; the embedded demo config
# with its classifiers):
#   ext_proc:  build/bin/extproc-bench does what Envoy's ext_proc filter does per HTTP request
#              (request headers, the BUFFERED body, response headers, a response body with usage:
#              four round trips on one stream) at 1 and 64 streams in flight;
#   gateway:   wrk -> semrouter -> mock-upstream, and wrk -> mock-upstream directly, at 1 and 64
#              connections (the gateway's added latency is the difference);
#   routing:   the mean routing time of the ext_proc run at concurrency 1, from the router's own
#              semrouter_routing_duration_seconds, so the exchange's own cost can be read off.
# Usage: bench/extproc_bench.sh [DURATION_S]   (results: markdown on stdout)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/bin
DURATION=${1:-8}
. "$ROOT/bench/lib.sh"

json_field() { sed -E "s/.*\"$2\":([0-9.]+).*/\1/" <<<"$1"; }
ROUTER_CORE=0
CLIENT_CORE=$(( $(nproc) > 1 ? 1 : 0 ))

PROMPT='Can you explain why this Python function returns None instead of the list I expect?'
echo "$PROMPT" > "$WORK/prompts.txt"
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"auto","messages":[{"role":"user","content":"$PROMPT"}]}'
LUA

taskset -c "$CLIENT_CORE" "$BIN/mock-upstream" --port 0 --ready-file "$WORK/mock.json" --name bench 2>/dev/null &
PIDS+=($!)
wait_file "$WORK/mock.json"
MOCK=$(json_field "$(cat "$WORK/mock.json")" port)

keyword_config() {
  cat <<YAML
listeners: {extproc: {address: 127.0.0.1, port: 0}}
server: {workers: 1, reload_poll_ms: 0, log_level: warn}
backends: [{name: mock, url: "http://127.0.0.1:$MOCK/v1", max_idle_connections: 256}]
models:
  - {name: gpt-oss-20b, upstream_model: openai/gpt-oss-20b, backends: [mock], reasoning_family: gpt-oss}
  - {name: qwen3-8b, upstream_model: Qwen/Qwen3-8B, backends: [mock], reasoning_family: qwen3}
default_model: qwen3-8b
signals:
  keywords:
    - {name: code, keywords: [python, javascript, rust, sql, function]}
    - {name: math, keywords: [integral, derivative, theorem, prove]}
decisions:
  - {name: code, priority: 10, rules: {keyword: code}, models: [{model: gpt-oss-20b, reasoning: true, effort: medium}]}
  - {name: math, priority: 20, rules: {keyword: math}, models: [{model: qwen3-8b, reasoning: true}]}
YAML
}
demo_config() {
  "$BIN/semrouter" config default |
    sed -E "s#^  admin: \{address: 127.0.0.1, port: 8802\}#  admin: {address: 127.0.0.1, port: 8802}\n  extproc: {address: 127.0.0.1, port: 0}#" |
    sed -E "s#^  workers: 1#  workers: 1\n  log_level: warn\n  reload_poll_ms: 0#" |
    sed -E "s#http://127.0.0.1:\\\$\{SEMROUTER_MOCK_[AB]_PORT:-881[12]\}/v1#http://127.0.0.1:$MOCK/v1#"
}

to_us() { # wrk prints 1.23ms / 456.00us / 1.02s
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); printf "%.1f", v } else if (v ~ /ms$/) { sub(/ms$/,"",v); printf "%.1f", v*1000 } else if (v ~ /s$/) { sub(/s$/,"",v); printf "%.1f", v*1e6 } else print v }'
}
wrk_run() { # url connections -> "rps p50_us p99_us"
  local out
  out=$(taskset -c "$CLIENT_CORE" wrk -t1 -c"$2" -d"${DURATION}s" --latency -s "$WORK/post.lua" "$1/v1/chat/completions")
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(to_us "$(awk '$1=="50%" {print $2}' <<<"$out")") $(to_us "$(awk '$1=="99%" {print $2}' <<<"$out")")"
}
routing_sum_count() { # admin port -> "sum count" of semrouter_routing_duration_seconds
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^semrouter_routing_duration_seconds_sum/ {s=$2} /^semrouter_routing_duration_seconds_count/ {c=$2} END {print s, c}'
}

echo "## ext_proc vs the HTTP gateway ($(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
echo "semrouter (\`--mode both\`, server.workers 1) pinned to core $ROUTER_CORE with taskset; extproc-bench, wrk and the mock upstream on core $CLIENT_CORE."
echo "One prompt: \"$PROMPT\". ext_proc exchange = request headers + body + response headers + response body (four round trips on one stream), as Envoy drives it."
echo
for cfg in keyword demo; do
  "${cfg}_config" > "$WORK/$cfg.yaml"
  rm -f "$WORK/$cfg.ready"
  taskset -c "$ROUTER_CORE" "$BIN/semrouter" serve --config "$WORK/$cfg.yaml" --port 0 --admin-port 0 \
    --ready-file "$WORK/$cfg.ready" 2>"$WORK/$cfg.log" &
  RPID=$!
  PIDS+=($RPID)
  wait_file "$WORK/$cfg.ready"
  READY=$(cat "$WORK/$cfg.ready")
  GW=$(json_field "$READY" port)
  ADMIN=$(json_field "$READY" admin_port)
  XP=$(json_field "$READY" extproc_port)
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -d "{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"$PROMPT\"}]}" "http://127.0.0.1:$GW/v1/chat/completions")
  [[ $code == 200 ]] || { echo "sanity check failed: HTTP $code" >&2; cat "$WORK/$cfg.log" >&2; exit 1; }

  read -r s0 c0 < <(routing_sum_count "$ADMIN")
  # Concurrency 1 on the blocking client (no client-side thread hops, closer to Envoy's own
  # client); 64 on the callback client.
  x1=$(taskset -c "$CLIENT_CORE" "$BIN/extproc-bench" --target "127.0.0.1:$XP" --prompts "$WORK/prompts.txt" -c 1 -n 5000 --warmup 500 --sync)
  read -r s1 c1 < <(routing_sum_count "$ADMIN")
  route_us=$(awk -v s0="$s0" -v s1="$s1" -v c0="$c0" -v c1="$c1" 'BEGIN{printf "%.1f", (s1-s0)/(c1-c0)*1e6}')
  x64=$(taskset -c "$CLIENT_CORE" "$BIN/extproc-bench" --target "127.0.0.1:$XP" --prompts "$WORK/prompts.txt" -c 64 -d "$DURATION")
  read -r d1_rps d1_p50 d1_p99 < <(wrk_run "http://127.0.0.1:$MOCK" 1)
  read -r g1_rps g1_p50 g1_p99 < <(wrk_run "http://127.0.0.1:$GW" 1)
  read -r d64_rps d64_p50 d64_p99 < <(wrk_run "http://127.0.0.1:$MOCK" 64)
  read -r g64_rps g64_p50 g64_p99 < <(wrk_run "http://127.0.0.1:$GW" 64)
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$RPID/status")
  kill "$RPID"; wait "$RPID" 2>/dev/null || true

  echo "### Config: $cfg (routing took $route_us µs on average in the ext_proc c=1 run; router RSS $((rss / 1024)) MiB after the run)"
  echo
  echo "| path | concurrency | req/s | p50 µs | p99 µs | added p50 µs |"
  echo "|---|---|---|---|---|---|"
  for row in "ext_proc exchange|1|$x1" "ext_proc exchange|64|$x64"; do
    IFS='|' read -r name conc js <<<"$row"
    p50=$(json_field "$js" p50_us); p99=$(json_field "$js" p99_us); rps=$(json_field "$js" per_second)
    errs=$(json_field "$js" errors)
    [[ $errs == 0 ]] || echo "(ext_proc errors: $errs)"
    extra=$(awk -v a="$p50" -v r="$route_us" 'BEGIN{printf "%.1f (%.1f without routing)", a, a-r}')
    echo "| $name | $conc | $rps | $p50 | $p99 | $extra |"
  done
  echo "| gateway -> mock | 1 | $g1_rps | $g1_p50 | $g1_p99 | $(awk -v a="$g1_p50" -v b="$d1_p50" 'BEGIN{printf "%.1f", a-b}') |"
  echo "| mock directly | 1 | $d1_rps | $d1_p50 | $d1_p99 | |"
  echo "| gateway -> mock | 64 | $g64_rps | $g64_p50 | $g64_p99 | $(awk -v a="$g64_p50" -v b="$d64_p50" 'BEGIN{printf "%.1f", a-b}') |"
  echo "| mock directly | 64 | $d64_rps | $d64_p50 | $d64_p99 | |"
  echo
done
