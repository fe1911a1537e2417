#!/usr/bin/env bash
# The memory cache under ThreadSanitizer: tests/tsan/cache_race.cc with the cache's sources, built
# with -fsanitize=thread into build-tsan/ (about a minute) and run; any report fails it.
# hnswlib takes its per-element link locks in varying order inside an insert; inserts into one
# graph never overlap (the scope's lock), so TSan's lock-order check is off (detect_deadlocks=0).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/build-tsan
mkdir -p "$OUT"
# The kernels' target_clones resolvers run before TSan's runtime is up: plain builds here.
sed 's/!defined(__SANITIZE_ADDRESS__)/!defined(__SANITIZE_ADDRESS__) \&\& !defined(__SANITIZE_THREAD__)/' \
  "$ROOT/src/nn/kernels.cc" >"$OUT/kernels.cc"
SOURCES=(tests/tsan/cache_race.cc src/cache/memory.cc src/cache/verifier.cc src/models/features.cc
         src/models/word_vectors.cc src/nn/safetensors.cc src/text/unicode.cc src/text/tokenizer.cc)
echo "tsan-cache: building $OUT/cache_race"
g++ -std=c++20 -O1 -g -fsanitize=thread -I"$ROOT/src" "${SOURCES[@]/#/$ROOT/}" "$OUT/kernels.cc" \
  -lfmt -lspdlog -lutf8proc -o "$OUT/cache_race"
# TSan needs the address layout it expects: without ASLR (setarch -R) on kernels whose mmap
# randomisation it does not know.
TSAN_OPTIONS="detect_deadlocks=0 halt_on_error=1 exitcode=66" setarch "$(uname -m)" -R "$OUT/cache_race"
echo "tsan-cache: no reports"
