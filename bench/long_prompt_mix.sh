#!/usr/bin/env bash
# Short requests' latency while long prompts flow through the same gateway (issue 14), side by
# side in one run:
#   (a) short chat requests alone (wrk, bench/chat_prompts.lua);
#   (b) the same short load while a second wrk sends ~WORDS-word prompts with model "auto"
#       (bench/long_prompt.lua): every signal of the demo config is computed on them;
#   (c) the same with the long prompts naming a model (qwen3-8b): no signals, only the transfer
#       of the same bytes, so (b) - (c) is what the long prompts' routing costs the short ones.
# semrouter runs the demo config (config/default.yaml: the embedded default classifiers, one
# worker) with both of its backends on one mock-upstream. The rounds interleave (a), (b), (c).
# With BASELINE_BIN set (another semrouter binary, e.g. one built before a change), it runs the
# same config on its own port and every round measures both, one after the other.
# Usage: bench/long_prompt_mix.sh [DURATION_S] [SHORT_CONNECTIONS]   (markdown on stdout)
#   ROUNDS (3), WORDS (50000), LONG_CONNS (1), LONG_DELAY_MS (0: back to back), BASELINE_BIN,
#   ECHO (1: the mock echoes each request in its answer, doubling a long prompt's bytes; 0: answers
#   of a real server's size, mock-upstream --no-echo).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/bin
DURATION=${1:-10}
CONNS=${2:-4}
ROUNDS=${ROUNDS:-3}
WORDS=${WORDS:-50000}
LONG_CONNS=${LONG_CONNS:-1}
export LONG_DELAY_MS=${LONG_DELAY_MS:-0}
BASELINE_BIN=${BASELINE_BIN:-}
ECHO=${ECHO:-1}
MOCK_FLAGS=()
[[ $ECHO == 0 ]] && MOCK_FLAGS+=(--no-echo)
. "$ROOT/bench/lib.sh"

"$BIN/mock-upstream" --port 0 --ready-file "$WORK/mock.json" --name bench "${MOCK_FLAGS[@]}" 2>/dev/null &
PIDS+=($!)
wait_file "$WORK/mock.json"
MOCK=$(port_of "$WORK/mock.json")

declare -A URL # router name -> chat completions URL
start_router() { # name binary
  SEMROUTER_MOCK_A_PORT=$MOCK SEMROUTER_MOCK_B_PORT=$MOCK \
    "$2" serve --config "$ROOT/config/default.yaml" --port 0 --admin-port 0 \
    --ready-file "$WORK/$1.json" 2>"$WORK/$1.log" &
  PIDS+=($!)
  wait_file "$WORK/$1.json"
  URL[$1]="http://127.0.0.1:$(port_of "$WORK/$1.json")/v1/chat/completions"
}
ROUTERS=(semrouter)
start_router semrouter "$BIN/semrouter"
if [[ -n $BASELINE_BIN ]]; then
  ROUTERS=(baseline semrouter)
  start_router baseline "$BASELINE_BIN"
fi

# The long prompt: the evaluation set's chat prompts joined until about WORDS words, as
# decision-latency --words builds them.
LONG_BODY=$WORK/long.json
/usr/bin/python3 - "$ROOT/data/eval/domain_chat.jsonl" "$WORDS" "$LONG_BODY" <<'PY'
import json, sys
texts = [json.loads(l)["text"] for l in open(sys.argv[1]) if l.strip()]
words, parts, i = 0, [], 0
while words < int(sys.argv[2]):
    parts.append(texts[i % len(texts)])
    words += texts[i % len(texts)].count(" ") + 1
    i += 1
body = {"model": "auto", "max_tokens": 64,
        "messages": [{"role": "user", "content": "\n".join(parts) + "\n"}]}
open(sys.argv[3], "w").write(json.dumps(body))
body["model"] = "qwen3-8b"
open(sys.argv[3] + ".named", "w").write(json.dumps(body))
PY

# Sanity: every kind answers 200 on every router.
for r in "${ROUTERS[@]}"; do
  for body in '{"model":"auto","messages":[{"role":"user","content":"What is the derivative of x^3?"}]}' "@$LONG_BODY" "@$LONG_BODY.named"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' -d "$body" "${URL[$r]}")
    [[ $code == 200 ]] || { echo "sanity check failed on $r: HTTP $code" >&2; cat "$WORK/$r.log" >&2; exit 1; }
  done
done

to_ms() { # wrk prints 1.23ms / 456.00us / 1.02s
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); printf "%.3f", v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); printf "%.3f", v } else if (v ~ /s$/) { sub(/s$/,"",v); printf "%.3f", v*1000 } else print v }'
}
summary() { # wrk output -> "req/s p50 p99 non2xx"
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$1")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$1")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$1")")
  bad=$(awk '/Non-2xx/ {print $5}' <<<"$1")
  echo "$rps $p50 $p99 ${bad:-0}"
}
short_wrk() { wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$ROOT/bench/chat_prompts.lua" "$1"; }

declare -A R # R[router,load,field] = the rounds' values, space-separated
BAD=0
measure() { # router load [long body]: the short load, with long prompts alongside when given
  local url=${URL[$1]} long_pid="" rps p50 p99 bad
  if [[ -n ${3:-} ]]; then
    # The long wrk starts first and ends last, so every short request meets long ones.
    LONG_BODY=$3 wrk -t1 -c"$LONG_CONNS" -d"$((DURATION + 2))s" --latency \
      -s "$ROOT/bench/long_prompt.lua" "$url" >"$WORK/long.txt" &
    long_pid=$!
    sleep 1
  fi
  read -r rps p50 p99 bad < <(summary "$(short_wrk "$url")")
  R[$1,$2,rps]+="$rps "; R[$1,$2,p50]+="$p50 "; R[$1,$2,p99]+="$p99 "; BAD=$((BAD + bad))
  if [[ -n $long_pid ]]; then
    wait "$long_pid"
    read -r rps p50 p99 bad < <(summary "$(cat "$WORK/long.txt")")
    R[$1,$2,lrps]+="$rps "; R[$1,$2,lp50]+="$p50 "; R[$1,$2,lp99]+="$p99 "; BAD=$((BAD + bad))
  fi
}
for round in $(seq "$ROUNDS"); do
  for r in "${ROUTERS[@]}"; do
    measure "$r" short
    measure "$r" auto "$LONG_BODY"
    measure "$r" named "$LONG_BODY.named"
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
list() { local IFS=", "; echo "$*"; }

echo "## Short requests while long prompts flow ($(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
echo "semrouter on config/default.yaml (embedded classifiers, 1 worker) -> one mock-upstream."
echo "Short: wrk -t1 -c$CONNS -d${DURATION}s, bench/chat_prompts.lua. Long: wrk -t1 -c$LONG_CONNS, a $WORDS-word"
echo "prompt ($(stat -c %s "$LONG_BODY")-byte body; $([[ $ECHO == 0 ]] && echo 'answers without the echo' || echo 'the mock echoes it back')), delay ${LONG_DELAY_MS} ms. Medians of $ROUNDS"
echo "interleaved rounds (each round's p99 in brackets); non-2xx answers in all runs: $BAD."
echo
echo "| router | load | short req/s | short p50 ms | short p99 ms | long req/s | long p50 ms | long p99 ms |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for r in "${ROUTERS[@]}"; do
  for load in short auto named; do
    case $load in
      short) label="short only" ;;
      auto) label="short + long (model auto: routed)" ;;
      named) label="short + long (model qwen3-8b: no signals)" ;;
    esac
    # shellcheck disable=SC2086 # the rounds' values are space-separated on purpose
    row="| $r | $label | $(median ${R[$r,$load,rps]}) | $(median ${R[$r,$load,p50]}) | $(median ${R[$r,$load,p99]}) ($(list ${R[$r,$load,p99]}))"
    if [[ $load == short ]]; then
      echo "$row | | | |"
    else
      # shellcheck disable=SC2086
      echo "$row | $(median ${R[$r,$load,lrps]}) | $(median ${R[$r,$load,lp50]}) | $(median ${R[$r,$load,lp99]}) |"
    fi
  done
done
