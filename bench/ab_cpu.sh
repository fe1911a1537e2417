#!/usr/bin/env bash
# Two semrouter builds against nginx, interleaved round by round under the same keyword load
# (gateway_bench.sh's config, one mock upstream): per round, each proxy's requests per second
# and CPU per request (user + system, from /proc/PID/stat). On a noisy VM the ratio of two
# builds within a round, and their CPU per request, say more than one build's best round. A and
# B take turns going first; the last line gives the median per-round CPU difference, B - A.
#   bench/ab_cpu.sh BUILD_A BUILD_B [WORKERS] [ROUNDS] [SECONDS]
# Env: CONNS (64), ENV_A / ENV_B (an environment assignment for that build, e.g. X=1),
#      CONFIG=default (config/default.yaml and bench/post_varied.lua, as gateway_bench.sh's; each
#      router first takes 3 s of the load unmeasured, which fills its semantic cache).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
(($# >= 2)) || { echo "usage: bench/ab_cpu.sh BUILD_A BUILD_B [WORKERS] [ROUNDS] [SECONDS]" >&2; exit 2; }
BIN_A=$1; BIN_B=$2; W=${3:-1}; ROUNDS=${4:-6}; DUR=${5:-3}; CONNS=${CONNS:-64}
for b in "$BIN_A" "$BIN_B"; do [[ -x $b ]] || { echo "ab_cpu.sh: $b is not an executable" >&2; exit 2; }; done
. "$ROOT/bench/lib.sh"

. "$ROOT/bench/nginx_conf.sh"
start_mock
SCRIPT_DIRECT=$ROOT/bench/post_direct.lua SCRIPT_ROUTER=$ROOT/bench/post.lua
if [[ ${CONFIG:-bench} == default ]]; then
  export SEMROUTER_MOCK_A_PORT=$MOCK SEMROUTER_MOCK_B_PORT=$MOCK
  sed "s/^  workers: 1$/  workers: $W/" "$ROOT/config/default.yaml" >"$WORK/router.yaml"
  SCRIPT_DIRECT=$ROOT/bench/post_varied.lua SCRIPT_ROUTER=$ROOT/bench/post_varied.lua
else
  sed -n '/cat > "$WORK\/router.yaml" <<YAML/,/^YAML/p' "$ROOT/bench/gateway_bench.sh" | sed '1d;$d' |
    sed "s/\$WORKERS/$W/; s/\$MOCK/$MOCK/" >"$WORK/router.yaml"
fi
env ${ENV_A:-AB_BUILD=A} "$BIN_A" serve --config "$WORK/router.yaml" --port 0 --admin-port 0 --ready-file "$WORK/a.json" 2>"$WORK/a.log" &
PA=$!; PIDS+=($PA)
env ${ENV_B:-AB_BUILD=B} "$BIN_B" serve --config "$WORK/router.yaml" --port 0 --admin-port 0 --ready-file "$WORK/b.json" 2>"$WORK/b.log" &
PB=$!; PIDS+=($PB)
wait_file "$WORK/a.json"; wait_file "$WORK/b.json"
A=$(port_of "$WORK/a.json"); B=$(port_of "$WORK/b.json")
start_nginx "$W"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$NGINX_PORT/health" >/dev/null && break; sleep 0.05; done

ticks() { local t=0 p; for p in $1; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
run() { # port script pids -> "req/s cpu_us_per_request"
  local t0 t1 out
  t0=$(ticks "$3")
  out=$(wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$2" "http://127.0.0.1:$1/v1/chat/completions")
  t1=$(ticks "$3")
  awk -v d=$((t1 - t0)) -v t="$TICK_US" '/requests in/ {n=$1} /Requests\/sec/ {r=$2} END {printf "%s %.1f\n", r, d*t/n}' <<<"$out"
}
if [[ ${CONFIG:-bench} == default ]]; then
  for p in "$A" "$B"; do
    wrk -t1 -c"$CONNS" -d3s -s "$SCRIPT_ROUTER" "http://127.0.0.1:$p/v1/chat/completions" >/dev/null
  done
fi
echo "| round | nginx req/s (CPU µs/req) | A req/s (CPU µs/req) | B req/s (CPU µs/req) | B / A req/s |"
echo "|---:|---|---|---|---:|"
for i in $(seq "$ROUNDS"); do
  NP="$(cat "$WORK/nginx/nginx.pid") $(pgrep -P "$(cat "$WORK/nginx/nginx.pid")" | xargs)"
  read -r n nc < <(run "$NGINX_PORT" "$SCRIPT_DIRECT" "$NP")
  # A and B take turns going first: the second of two back-to-back runs did up to 1 µs of CPU
  # per request worse, whichever build it was.
  if ((i % 2)); then
    read -r a ac < <(run "$A" "$SCRIPT_ROUTER" "$PA")
    read -r b bc < <(run "$B" "$SCRIPT_ROUTER" "$PB")
  else
    read -r b bc < <(run "$B" "$SCRIPT_ROUTER" "$PB")
    read -r a ac < <(run "$A" "$SCRIPT_ROUTER" "$PA")
  fi
  echo "$ac $bc" >>"$WORK/cpu.txt"
  awk -v i="$i" -v n="$n" -v a="$a" -v b="$b" -v nc="$nc" -v ac="$ac" -v bc="$bc" \
    'BEGIN {printf "| %d | %.0f (%s) | %.0f (%s) | %.0f (%s) | %.3f |\n", i, n, nc, a, ac, b, bc, b/a}'
done
# The per-round CPU difference, B - A: its median, and in how many rounds B used less.
awk '{print $2 - $1}' "$WORK/cpu.txt" | sort -g |
  awk '{d[NR] = $1; if ($1 < 0) lower++}
    END {m = NR % 2 ? d[(NR + 1) / 2] : (d[NR / 2] + d[NR / 2 + 1]) / 2
         printf "\nCPU per request, B - A: median %+.2f µs; B lower in %d of %d rounds (A first in odd rounds)\n", m, lower, NR}'
