#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz and runs each for FUZZ_SECONDS,
# FUZZ_JOBS at a time. Each starts from its seeds (fuzz/corpus/<target>/) and past crashes
# (fuzz/regressions/<target>/); what it adds to the corpus goes to a scratch directory, never into
# the repository. Fails if any target crashes, leaks, times out or runs out of memory, and prints
# the input that did it. See fuzz/README.md.
# Usage: scripts/fuzz.sh [TARGET...]   (default: every target built; e.g. `sse request`)
# Env: FUZZ_SECONDS (60), FUZZ_JOBS (2), FUZZ_WORK (scratch directory, default a new temp one).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build-fuzz
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
WORK=${FUZZ_WORK:-$(mktemp -d /tmp/semrouter-fuzz.XXXXXX)}
mkdir -p "$WORK"

start=$(date +%s)
if [[ ! -f $BUILD/build.ninja ]]; then
  echo "fuzz: configuring $BUILD (clang++, libFuzzer, ASan + UBSan)"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DSEMROUTER_FUZZ=ON -DSEMROUTER_BUILD_TESTS=OFF \
    -DSEMROUTER_BUILD_BENCH=OFF >"$WORK/configure.log" ||
    { cat "$WORK/configure.log" >&2; exit 1; }
fi
echo "fuzz: building the targets"
cmake --build "$BUILD" -j "$JOBS"
echo "fuzz: built in $(($(date +%s) - start)) s"

targets=("$@")
if ((${#targets[@]} == 0)); then
  for bin in "$BUILD"/bin/*_fuzz; do
    name=$(basename "$bin")
    targets+=("${name%_fuzz}")
  done
fi

dict_for() {
  case $1 in
    config) echo "$ROOT/fuzz/yaml.dict" ;;
    http_request | http_response) echo "$ROOT/fuzz/http.dict" ;;
    tokenizer | pii) ;;
    *) echo "$ROOT/fuzz/json.dict" ;;
  esac
}

# One target: its scratch corpus first (libFuzzer writes new inputs into the first directory),
# then the checked-in seeds and regressions, read only.
run_target() {
  local t=$1 dir=$WORK/$1 dict
  mkdir -p "$dir/corpus"
  local args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$dir/")
  dict=$(dict_for "$t")
  [[ -n $dict ]] && args+=(-dict="$dict")
  local seeds=("$ROOT/fuzz/corpus/$t")
  [[ -d $ROOT/fuzz/regressions/$t ]] && seeds+=("$ROOT/fuzz/regressions/$t")
  "$BUILD/bin/${t}_fuzz" "${args[@]}" "$dir/corpus" "${seeds[@]}" >"$dir/log" 2>&1
}

# What a finished target prints: its last status line, or its failure and the input.
report() {
  local t=$1 rc=$2 dir=$WORK/$1
  if ((rc == 0)); then
    local last
    last=$(grep -E '^#[0-9]+' "$dir/log" | tail -1 | cut -c1-100 || true)
    echo "fuzz: $t: ok  ${last}"
    return 0
  fi
  echo "fuzz: $t: FAILED (exit $rc); log $dir/log" >&2
  grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|fuzz check failed|uncaught exception|terminate called' \
    "$dir/log" | head -60 >&2 || tail -40 "$dir/log" >&2
  local found=0
  for f in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* "$dir"/slow-unit-*; do
    [[ -e $f ]] || continue
    echo "fuzz: $t: input: $f" >&2
    found=1
  done
  ((found)) || echo "fuzz: $t: no input saved (see the log)" >&2
  echo "fuzz: $t: to keep it as a test: cp <input> fuzz/regressions/$t/<what-it-does>" >&2
  return 1
}

echo "fuzz: ${#targets[@]} targets, ${SECONDS_EACH} s each, ${JOBS} at a time; scratch $WORK"
declare -A target_of
failed=0
finish_one() {
  local pid rc=0
  wait -n -p pid || rc=$?
  report "${target_of[$pid]}" "$rc" || failed=1
}
running=0
for t in "${targets[@]}"; do
  if [[ ! -x $BUILD/bin/${t}_fuzz ]]; then
    echo "fuzz: no target $t in $BUILD/bin" >&2
    exit 2
  fi
  if ((running >= JOBS)); then
    finish_one
    running=$((running - 1))
  fi
  echo "fuzz: $t: running for ${SECONDS_EACH} s"
  run_target "$t" &
  target_of[$!]=$t
  running=$((running + 1))
done
while ((running > 0)); do
  finish_one
  running=$((running - 1))
done

echo "fuzz: done in $(($(date +%s) - start)) s"
if ((failed)); then
  echo "fuzz: FAILED; inputs and logs in $WORK" >&2
  exit 1
fi
[[ -n ${FUZZ_WORK:-} ]] || rm -rf "$WORK"
