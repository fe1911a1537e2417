#!/usr/bin/env bash
# Writes src/app/hot_functions.txt: the functions of the semrouter binary that proxied requests
# run (mangled names). The build links them side by side at the start of the code
# (CMakeLists.txt, SEMROUTER_FUNCTION_ORDER), so a request touches fewer code pages.
#   bench/function_order.sh [BINARY]        (default: build/bin/semrouter)
# It profiles three loads with callgrind (bench/instructions.sh): the keyword config, the keyword
# config streamed, and config/default.yaml. Rerun it after changes to the request path, then
# rebuild.
# Env: OUT (the list to write; default src/app/hot_functions.txt).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(realpath "${1:-$ROOT/build/bin/semrouter}")
OUT=${OUT:-$ROOT/src/app/hot_functions.txt}
[[ -x $BIN ]] || { echo "function_order.sh: $BIN is not an executable (make build first)" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

profile() { # NAME REQUESTS WARMUP [ENV...]: one callgrind profile, kept as $WORK/NAME.1
  local name=$1 n=$2 n0=$3
  shift 3
  echo "function_order.sh: profiling $name ($n requests)" >&2
  env "$@" N="$n" N0="$n0" KEEP="$WORK/$name" VALGRIND_ARGS=--demangle=no \
    "$ROOT/bench/instructions.sh" "$BIN" >/dev/null
}
profile keyword 1000 300 CONFIG=bench
profile stream 300 100 CONFIG=bench STREAM=1
profile default 300 100 CONFIG=default

# The binary's own function names, and each with the others at its address: callgrind names one
# of a constructor's or destructor's aliases (C1/C2, D1/D2), and the section carries the other's.
nm --defined-only "$BIN" | awk '$2 ~ /^[tTwW]$/ { print $1 "\t" $3 }' >"$WORK/symbols.txt"

# Tier by tier: the keyword path's functions first (every proxied request runs most of them),
# then what only streaming adds, then what only the default config's classifiers, cache and
# tools add; each tier hottest first. (One list by summed weight spread the keyword path over
# 150 pages instead of 100: the other loads' functions fell in between.)
for name in keyword stream default; do
  # "  1,234 ( 0.5%)  ???:_ZN9semrouter... [/path/to/semrouter]", or FILE:NAME with debug info,
  # where inlined code adds lines of its own without the [object]: costs are summed by name,
  # a recursion level's suffix ('2) dropped, and only the binary's own functions kept.
  callgrind_annotate --threshold=100 "$WORK/$name.1" 2>/dev/null |
    awk -F'\t' -v quote="'" 'NR == FNR { own[$2] = 1; next }
      $0 ~ /^ *[0-9,]+ \(/ {
        n = split($0, f, " +"); ir = ""; fn = ""
        for (i = 1; i <= n; i++) {
          if (f[i] == "") continue
          if (ir == "") { ir = f[i]; gsub(",", "", ir); continue }
          if (f[i] ~ /%\)$/ || f[i] == "(") continue
          fn = f[i]; break
        }
        sub(/.*:/, "", fn); sub(quote "[0-9]+$", "", fn)
        if (fn in own) cost[fn] += ir
      }
      END { for (fn in cost) print cost[fn] "\t" fn }' "$WORK/symbols.txt" - |
    sort -t$'\t' -k1,1gr | cut -f2
done | awk '!seen[$0]++' >"$WORK/profiled.txt"
awk -F'\t' 'NR == FNR { at[$2] = $1; names[$1] = names[$1] ? names[$1] "\n" $2 : $2; next }
     { print ($1 in at) ? names[at[$1]] : $1 }' "$WORK/symbols.txt" "$WORK/profiled.txt" |
  awk '!seen[$0]++' >"$WORK/order.txt"

count=$(wc -l <"$WORK/order.txt")
((count > 100)) || { echo "function_order.sh: only $count functions profiled; is $BIN built with symbols?" >&2; exit 1; }
{
  echo "# The semrouter binary's functions that proxied requests run (mangled names), which the linker"
  echo "# places side by side (CMakeLists.txt, SEMROUTER_FUNCTION_ORDER): the keyword config's, then"
  echo "# what streaming adds, then what config/default.yaml adds; each group hottest first."
  echo "# Written by bench/function_order.sh from callgrind profiles. $count functions."
  cat "$WORK/order.txt"
} >"$OUT"
echo "function_order.sh: wrote $count functions to $OUT" >&2
