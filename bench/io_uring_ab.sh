#!/usr/bin/env bash
# nginx against semrouter with `server.io_uring: false` and `true` (one binary, two processes),
# all up at once on one mock and measured in turn, round after round, so the three share every
# minute of a noisy VM (docs/benchmarks.md, "One system call for a pass's reads and writes").
#   bench/io_uring_ab.sh [ROUNDS] [SECONDS] [WORKERS]      (defaults 4 4 1)
# Env: CONNS (64), SEMROUTER_BIN. Prints per path and round: requests/s, then CPU µs per request
# of the proxy, the mock and wrk (user + system, from /proc and bash's `time`), and per round the
# ratios true/nginx, false/nginx and true/false. Keyword config of bench/gateway_bench.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/bin
ROUNDS=${1:-4}
SECS=${2:-4}
WORKERS=${3:-1}
CONNS=${CONNS:-64}
. "$ROOT/bench/lib.sh"

. "$ROOT/bench/nginx_conf.sh"
start_mock
start_nginx "$WORKERS"
sed -n '/cat > "$WORK\/router.yaml" <<YAML/,/^YAML/p' "$ROOT/bench/gateway_bench.sh" | sed '1d;$d' |
  sed "s/\$WORKERS/$WORKERS/; s/\$MOCK/$MOCK/" >"$WORK/true.yaml"
sed 's/^server: {/server: {io_uring: false, /' "$WORK/true.yaml" >"$WORK/false.yaml"
declare -A PORT PID
for v in true false; do
  "${SEMROUTER_BIN:-$BIN/semrouter}" serve --config "$WORK/$v.yaml" --port 0 --admin-port 0 \
    --ready-file "$WORK/$v.json" 2>"$WORK/$v.log" &
  PID[$v]=$!
  PIDS+=($!)
  wait_file "$WORK/$v.json"
  PORT[$v]=$(port_of "$WORK/$v.json")
done
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$NGINX_PORT/health" >/dev/null && break; sleep 0.05; done
grep -h 'io_uring' "$WORK"/true.log >&2 || true # says so when batching is unavailable here

ticks() { # pids -> "user system" clock ticks summed
  local u=0 s=0 pid st
  for pid in "$@"; do
    read -r -a st <<<"$(sed 's/.*) //' "/proc/$pid/stat")"
    u=$((u + st[11])); s=$((s + st[12]))
  done
  echo "$u $s"
}
nginx_pids() { local m; m=$(cat "$WORK/nginx/nginx.pid"); echo "$m $(pgrep -P "$m" | xargs)"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
run() { # name port script pids... -> "name rps proxy_cpu mock_cpu wrk_cpu"
  local name=$1 port=$2 script=$3 pu0 ps0 pu1 ps1 mu0 ms0 mu1 ms1 out n rps wu ws
  shift 3
  read -r pu0 ps0 < <(ticks "$@")
  read -r mu0 ms0 < <(ticks "$MOCK_PID")
  out=$( { TIMEFORMAT='WRKTIME %U %S'; time wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$script" \
           "http://127.0.0.1:$port/v1/chat/completions"; } 2>&1)
  read -r pu1 ps1 < <(ticks "$@")
  read -r mu1 ms1 < <(ticks "$MOCK_PID")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  read -r wu ws < <(awk '/WRKTIME/ {print $2, $3}' <<<"$out")
  awk -v name="$name" -v rps="$rps" -v n="$n" -v t="$TICK_US" -v pu=$((pu1 - pu0)) -v ps=$((ps1 - ps0)) \
      -v mu=$((mu1 - mu0)) -v ms=$((ms1 - ms0)) -v wu="$wu" -v ws="$ws" \
    'BEGIN { printf "%-6s %8.0f req/s  proxy %5.1f + %5.1f  mock %5.1f + %5.1f  wrk %5.1f + %5.1f\n",
             name, rps, pu*t/n, ps*t/n, mu*t/n, ms*t/n, wu*1e6/n, ws*1e6/n }'
}

echo "# io_uring batching A/B ($(date -u +%F), $(nproc) cores, $WORKERS worker(s), wrk -c$CONNS -d${SECS}s, $ROUNDS rounds)"
for round in $(seq "$ROUNDS"); do
  a=$(run nginx "$NGINX_PORT" "$ROOT/bench/post_direct.lua" $(nginx_pids))
  b=$(run false "${PORT[false]}" "$ROOT/bench/post.lua" "${PID[false]}")
  c=$(run true "${PORT[true]}" "$ROOT/bench/post.lua" "${PID[true]}")
  printf '%s\n%s\n%s\n' "$a" "$b" "$c"
  awk -v a="$(awk '{print $2}' <<<"$a")" -v b="$(awk '{print $2}' <<<"$b")" -v c="$(awk '{print $2}' <<<"$c")" \
    'BEGIN { printf "round %d: true/nginx %.3f  false/nginx %.3f  true/false %.3f\n", '"$round"', c/a, b/a, c/b }'
done
