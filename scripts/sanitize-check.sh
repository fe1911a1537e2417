#!/usr/bin/env bash
# Runs the test suite of a sanitizer build and fails on any sanitizer report, including reports
# that servers started by the integration tests print at exit (their logs are kept for this).
# Usage: scripts/sanitize-check.sh BUILD_DIR
set -euo pipefail
BUILD_DIR=${1:-build-asan}
LOGS=$(mktemp -d /tmp/semrouter-sanitize.XXXXXX)
export TMPDIR=$LOGS SEMROUTER_KEEP_LOGS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
status=0
(cd "$BUILD_DIR" && ctest --output-on-failure -j 2) || status=$?
reports=$(grep -rlE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$LOGS" 2>/dev/null || true)
if [[ -n $reports ]]; then
  echo "sanitize-check: sanitizer reports in:" >&2
  for f in $reports; do
    echo "== $f" >&2
    grep -E -A25 "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$f" | head -60 >&2
  done
  status=1
fi
if [[ $status -eq 0 ]]; then
  echo "sanitize-check: no sanitizer reports ($(find "$LOGS" -name '*.log' | wc -l) process logs searched)"
  rm -rf "$LOGS"
else
  echo "sanitize-check: FAILED; logs kept in $LOGS" >&2
fi
exit $status
