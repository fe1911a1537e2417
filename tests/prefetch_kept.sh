#!/bin/sh
# The hot loops that fetch scattered rows ahead of their use still do, in the built binary.
# GCC 12 silently dropped every prefetch made from a lambda (it found the call free of side
# effects and removed it before inlining); nothing else would notice, as only speed changes.
#   tests/prefetch_kept.sh BINARY
set -eu
bin=$1
command -v objdump >/dev/null || { echo "prefetch_kept: objdump is missing (binutils)" >&2; exit 1; }
objdump -d --no-show-raw-insn -C "$bin" | awk '
  /^[0-9a-f]+ <.*>:$/ { fn = $0; next }
  /prefetch/ { seen[fn] = 1 }
  END {
    split("nn::kernels::dot_rows_at(|nn::kernels::dot_rows_at_s8(|WordVectors::sentence_vector_rows(|LinearModel::logits(|WordVectors::lookup_all(", want, "|")
    bad = 0
    for (i in want) {
      ok = 0
      for (f in seen) if (index(f, want[i])) ok = 1
      if (!ok) { print "prefetch_kept: no prefetch left in " want[i] ")"; bad = 1 }
      else print "prefetch_kept: ok " want[i] ")"
    }
    exit bad
  }'
