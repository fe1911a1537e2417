#!/usr/bin/env bash
# Gateway benchmark on loopback, side by side in one run:
#   (a) wrk -> mock-upstream directly
#   (b) wrk -> nginx proxy_pass (keep-alive upstream) -> mock-upstream
#   (c) wrk -> semrouter (keyword routing + body rewrite) -> mock-upstream
# then 500 concurrent streams of 100 chunks through semrouter, with its memory.
# Usage: bench/gateway_bench.sh [DURATION_S] [CONNECTIONS]   (results: markdown on stdout)
# Env: ROUNDS, WORKERS, SEMROUTER_BIN (another build to measure), CONFIG=bench (the keyword config below, one body) or CONFIG=default
#      (config/default.yaml: every classifier, the semantic cache and its verifier, tool
#      filtering; each request a new question, bench/post_varied.lua, on all three paths).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/bin
DURATION=${1:-10}
CONNS=${2:-64}
ROUNDS=${ROUNDS:-2}
WORKERS=${WORKERS:-1} # nginx worker_processes and semrouter server.workers
. "$ROOT/bench/lib.sh"

. "$ROOT/bench/nginx_conf.sh"
start_mock
# nginx: WORKERS workers, keep-alive to the upstream, no access log (semrouter logs nothing per request either).
start_nginx "$WORKERS"

CONFIG=${CONFIG:-bench}
SCRIPT_DIRECT=$ROOT/bench/post_direct.lua
SCRIPT_ROUTER=$ROOT/bench/post.lua
if [[ $CONFIG == default ]]; then
  SCRIPT_DIRECT=$ROOT/bench/post_varied.lua
  SCRIPT_ROUTER=$ROOT/bench/post_varied.lua
  export SEMROUTER_MOCK_A_PORT=$MOCK SEMROUTER_MOCK_B_PORT=$MOCK
  sed "s/^  workers: 1$/  workers: $WORKERS/" "$ROOT/config/default.yaml" >"$WORK/router.yaml"
else
cat > "$WORK/router.yaml" <<YAML
server: {workers: $WORKERS, reload_poll_ms: 0, log_level: warn}
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
fi
"${SEMROUTER_BIN:-$BIN/semrouter}" serve --config "$WORK/router.yaml" --port 0 --admin-port 0 --ready-file "$WORK/router.json" 2>"$WORK/router.log" &
ROUTER_PID=$!
PIDS+=($ROUTER_PID)
wait_file "$WORK/router.json"
ROUTER=$(port_of "$WORK/router.json")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$NGINX_PORT/health" >/dev/null && break; sleep 0.05; done

# Sanity: each path answers 200 before we measure.
for url in "http://127.0.0.1:$MOCK" "http://127.0.0.1:$NGINX_PORT" "http://127.0.0.1:$ROUTER"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -d '{"model":"auto","messages":[{"role":"user","content":"python"}]}' "$url/v1/chat/completions")
  [[ $code == 200 ]] || { echo "sanity check failed for $url: HTTP $code" >&2; cat "$WORK/router.log" >&2; exit 1; }
done

to_ms() { # wrk prints 1.23ms / 456.00us / 1.02s
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); printf "%.3f", v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); printf "%.3f", v } else if (v ~ /s$/) { sub(/s$/,"",v); printf "%.3f", v*1000 } else print v }'
}
# CPU ticks (user, system) of a proxy: semrouter's one process, or every nginx process.
proxy_pids() { if [[ $1 == semrouter ]]; then echo "$ROUTER_PID"; elif [[ $1 == nginx ]]; then
  local m; m=$(cat "$WORK/nginx/nginx.pid"); echo "$m"; pgrep -P "$m" || true; fi; }
cpu_ticks() { # name -> "user system" summed over the proxy's processes (0 0 for direct)
  local u=0 s=0 pid f
  for pid in $(proxy_pids "$1"); do
    f=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    read -r -a st <<<"$f"
    u=$((u + st[11])); s=$((s + st[12]))
  done
  echo "$u $s"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))
run_wrk() { # name url script -> name rps p50 p99 non2xx user_us_per_req sys_us_per_req
  local out u0 s0 u1 s1
  read -r u0 s0 < <(cpu_ticks "$1")
  out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$3" "$2/v1/chat/completions")
  read -r u1 s1 < <(cpu_ticks "$1")
  local rps p50 p99 non2xx total
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  local cpu
  cpu=$(awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="$total" -v t="$TICK_US" 'BEGIN{printf "%.1f %.1f", u*t/n, s*t/n}')
  echo "$1 $rps $p50 $p99 ${non2xx:-0} $cpu"
}

echo "## Gateway throughput ($(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
echo "Config: $CONFIG. wrk -t1 -c$CONNS -d${DURATION}s, best of $ROUNDS interleaved rounds; mock-upstream, nginx ($WORKERS worker(s)) and semrouter ($WORKERS worker(s)) share the machine with wrk."
echo
declare -A RPS P50 P99 ERR USR SYS
RATIOS=() # semrouter / nginx within each round: steadier than the ratio of bests on a busy VM
for round in $(seq "$ROUNDS"); do
  declare -A ROUND_RPS=()
  for spec in "direct http://127.0.0.1:$MOCK $SCRIPT_DIRECT" \
              "nginx http://127.0.0.1:$NGINX_PORT $SCRIPT_DIRECT" \
              "semrouter http://127.0.0.1:$ROUTER $SCRIPT_ROUTER"; do
    read -r name url script <<<"$spec"
    read -r n rps p50 p99 err usr sys < <(run_wrk "$name" "$url" "$script")
    ROUND_RPS[$n]=$rps
    if [[ -z ${RPS[$n]:-} ]] || awk -v a="$rps" -v b="${RPS[$n]}" 'BEGIN{exit !(a>b)}'; then
      RPS[$n]=$rps; P50[$n]=$p50; P99[$n]=$p99; ERR[$n]=$err; USR[$n]=$usr; SYS[$n]=$sys
    fi
  done
  RATIOS+=("$(awk -v a="${ROUND_RPS[semrouter]}" -v b="${ROUND_RPS[nginx]}" 'BEGIN{printf "%.3f", a/b}')")
done
echo "| path | req/s | p50 ms | p99 ms | non-2xx | req/s vs nginx | p99 over direct (ms) | proxy CPU µs/request (user + system) |"
echo "|---|---|---|---|---|---|---|---|"
for n in direct nginx semrouter; do
  ratio=$(awk -v a="${RPS[$n]}" -v b="${RPS[nginx]}" 'BEGIN{printf "%.2f", a/b}')
  added=$(awk -v a="${P99[$n]}" -v b="${P99[direct]}" 'BEGIN{printf "%+.3f", a-b}')
  cpu="${USR[$n]} + ${SYS[$n]}"; [[ $n == direct ]] && cpu="–"
  echo "| $n | ${RPS[$n]} | ${P50[$n]} | ${P99[$n]} | ${ERR[$n]} | $ratio | $added | $cpu |"
done
echo
sorted=$(printf '%s\n' "${RATIOS[@]}" | sort -g | xargs)
median=$(printf '%s\n' "${RATIOS[@]}" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}')
echo "semrouter / nginx within each round: $sorted (median $median)"
echo

# Latency at a light load that every path sustains (closed loop, 4 connections).
echo "Light load (wrk -c4, ${DURATION}s):"
echo
echo "| path | req/s | p50 ms | p99 ms | p99 over direct (ms) |"
echo "|---|---|---|---|---|"
CONNS_SAVE=$CONNS; CONNS=4
declare -A LP99
for spec in "direct http://127.0.0.1:$MOCK $SCRIPT_DIRECT" \
            "nginx http://127.0.0.1:$NGINX_PORT $SCRIPT_DIRECT" \
            "semrouter http://127.0.0.1:$ROUTER $SCRIPT_ROUTER"; do
  read -r name url script <<<"$spec"
  read -r n rps p50 p99 err _ _ < <(run_wrk "$name" "$url" "$script")
  LP99[$n]=$p99
  added=$(awk -v a="$p99" -v b="${LP99[direct]}" 'BEGIN{printf "%+.3f", a-b}')
  echo "| $n | $rps | $p50 | $p99 | $added |"
done
CONNS=$CONNS_SAVE
echo

rss() { awk '/VmRSS/ {print $2}' "/proc/$ROUTER_PID/status"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$ROUTER_PID/status"; }
before=$(rss)
STREAMS=${STREAMS:-500}
CHUNKS=${CHUNKS:-100}
result=$(node "$ROOT/bench/stream_load.mjs" "$ROUTER" "$STREAMS" "$CHUNKS") || { echo "stream load FAILED: $result"; exit 1; }
echo "Streaming: $STREAMS concurrent streams x $CHUNKS content chunks (10 ms apart) through semrouter:"
echo
echo '```'
echo "$result"
echo "router RSS before: ${before} KiB, after: $(rss) KiB, peak (VmHWM): $(hwm) KiB"
echo '```'
