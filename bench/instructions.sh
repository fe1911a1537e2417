#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: unlike requests per second on a shared
# 2-core VM, the count repeats to within 0.1% from run to run, so two builds compare exactly.
#   bench/instructions.sh [BINARY...]        (default: build/bin/semrouter)
# Env: CONFIG=bench (gateway_bench.sh's keyword config, the same body every time) or
#      CONFIG=default (config/default.yaml: classifiers, semantic cache, tools; a new question
#      each time), N (2000 measured requests), N0 (500 warm-up requests), ANNOTATE=1 to print the
#      top functions (inclusive), KEEP=PATH to keep each profile as PATH.1, PATH.2, ... (for
#      callgrind_annotate --tree=calling), STREAM=1 (bench config: streamed answers of 50 chunks,
#      per request), TOKEN_DELAY_MS (with STREAM=1: the mock waits this long before each chunk),
#      VALGRIND_ARGS (more callgrind options for the semrouter runs, e.g. --demangle=no),
#      CACHE_SIM=1 (callgrind's cache simulation: also the first-level data cache's misses and the
#      last level's per request, reads and writes together, on a model of this machine's caches; a
#      change that moves fewer cache lines shows there when the instruction count barely moves),
#      NGINX=1 to count nginx too (gateway_bench.sh's nginx
#      config, one process: master_process off), proxying the same requests to the same mock.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFIG=${CONFIG:-bench}
N=${N:-2000}
N0=${N0:-500}
BINS=("$@")
((${#BINS[@]})) || BINS=("$ROOT/build/bin/semrouter")
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
. "$ROOT/bench/lib.sh"

MOCK_FLAGS=()
[[ ${STREAM:-0} == 1 ]] && MOCK_FLAGS+=(--tokens 50)
# A paced server: each chunk then reaches the router alone, as a model's tokens do (without it the
# mock's chunks pile up while callgrind slows the router, and one read brings several).
[[ -n ${TOKEN_DELAY_MS:-} ]] && MOCK_FLAGS+=(--token-delay-ms "$TOKEN_DELAY_MS")
"$ROOT/build/bin/mock-upstream" --port 0 --ready-file "$WORK/mock.json" --name bench "${MOCK_FLAGS[@]}" 2>/dev/null &
PIDS+=($!)
wait_file "$WORK/mock.json" 120
MOCK=$(port_of "$WORK/mock.json")
case $CONFIG in
  bench)
    sed -n '/cat > "$WORK\/router.yaml" <<YAML/,/^YAML/p' "$ROOT/bench/gateway_bench.sh" | sed '1d;$d' |
      sed "s/\$WORKERS/1/; s/\$MOCK/$MOCK/" >"$WORK/router.yaml"
    KIND=same
    [[ ${STREAM:-0} == 1 ]] && KIND=stream ;;
  default)
    cp "$ROOT/config/default.yaml" "$WORK/router.yaml"
    export SEMROUTER_MOCK_A_PORT=$MOCK SEMROUTER_MOCK_B_PORT=$MOCK
    KIND=varied ;;
  *) echo "instructions.sh: CONFIG must be bench or default" >&2; exit 2 ;;
esac

# measure LABEL PID PORT OUT KEEP_SUFFIX: warms the process under callgrind up with N0 requests,
# counts N, prints the table row and stops it.
measure() {
  local label=$1 pid=$2 port=$3 out=$4 res f total
  node "$ROOT/bench/fixed_requests.mjs" "$port" "$N0" 8 0 "$KIND" >/dev/null
  callgrind_control -i on "$pid" >/dev/null
  res=$(node "$ROOT/bench/fixed_requests.mjs" "$port" "$N" 8 100000 "$KIND")
  callgrind_control -i off "$pid" >/dev/null
  callgrind_control -d "$pid" >/dev/null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  [[ $res == "done=$N bad=0" ]] || { echo "instructions.sh: $label: $res" >&2; exit 1; }
  f=$(ls "$out".* | head -1)
  if [[ ${CACHE_SIM:-0} == 1 ]]; then
    # "Events shown:" names the PROGRAM TOTALS line's counts, in order.
    callgrind_annotate "$f" 2>/dev/null | awk -v n="$N" -v label="$label" -v config="$CONFIG" '
      /^Events shown:/ { for (i = 3; i <= NF; ++i) col[$i] = i - 2 }
      /PROGRAM TOTALS/ { k = 0  # each count may be followed by its share, "(100.0%)"
        for (i = 1; i <= NF; ++i) if ($i ~ /^[0-9,]+$/) { v = $i; gsub(",", "", v); t[++k] = v }
        printf "| %s | %s | %d | %d | %.0f | %.0f |\n", label, config, n, t[col["Ir"]] / n,
          (t[col["D1mr"]] + t[col["D1mw"]]) / n, (t[col["DLmr"]] + t[col["DLmw"]]) / n }'
  else
    total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    echo "| $label | $CONFIG | $N | $((total / N)) |"
  fi
  [[ -n ${KEEP:-} ]] && cp "$f" "$KEEP.$5"
  if [[ ${ANNOTATE:-0} == 1 ]]; then
    callgrind_annotate --inclusive=yes "$f" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | grep -v boost::asio |
      head -40 | cut -c1-160 >&2
  fi
}

read -ra EXTRA_VALGRIND <<<"${VALGRIND_ARGS:-}"
SIM=()
if [[ ${CACHE_SIM:-0} == 1 ]]; then
  SIM=(--cache-sim=yes)
  echo "| binary | config | requests | instructions per request | D1 misses per request | LL misses per request |"
  echo "|---|---|---|---|---:|---:|"
else
  echo "| binary | config | requests | instructions per request |"
  echo "|---|---|---|---|"
fi
i=0
for bin in "${BINS[@]}"; do
  i=$((i + 1))
  out=$WORK/cg$i
  valgrind --tool=callgrind --instr-atstart=no "${SIM[@]}" "${EXTRA_VALGRIND[@]}" --callgrind-out-file="$out" "$bin" serve \
    --config "$WORK/router.yaml" --port 0 --admin-port 0 --ready-file "$WORK/r$i.json" 2>"$WORK/r$i.log" &
  pid=$!
  PIDS+=($pid)
  wait_file "$WORK/r$i.json" 120
  measure "$bin" "$pid" "$(port_of "$WORK/r$i.json")" "$out" "$i"
done

if [[ ${NGINX:-0} == 1 ]]; then
  command -v nginx >/dev/null || { echo "instructions.sh: nginx is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
  NPORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  # gateway_bench.sh's nginx, in one process so that callgrind sees the worker.
  . "$ROOT/bench/nginx_conf.sh"
  nginx_conf "$WORK/nginx" "$NPORT" "$MOCK" "master_process off; daemon off;"
  out=$WORK/cgnginx
  valgrind --tool=callgrind --instr-atstart=no "${SIM[@]}" --callgrind-out-file="$out" nginx -c "$WORK/nginx/nginx.conf" \
    2>"$WORK/nginx.log" &
  pid=$!
  PIDS+=($pid)
  for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$NPORT/health" >/dev/null 2>&1 && break; sleep 0.1; done
  measure "nginx $(nginx -v 2>&1 | sed 's/.*\///') (proxy_pass, no routing)" "$pid" "$NPORT" "$out" nginx
fi
