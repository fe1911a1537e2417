#!/usr/bin/env bash
# Encoder latency, semrouter vs PyTorch, side by side in one run: random weights in BERT-base and
# ModernBERT-base shape, 16/64/128/512 tokens, batch 1 and 8, 1 and 2 threads; semrouter in f32,
# bf16 and int8, PyTorch (Debian python3-torch, eager, f32) on the same weights and thread count.
# Also measures this machine's GEMM peak. Writes JSON lines to $OUT (default
# build/encoder-bench.jsonl) and prints a markdown table.
#
#   bench/encoder_bench.sh                      # everything (about 10 minutes on 2 cores)
#   ARCHS=bert THREADS="1" SEQS="16 128" bench/encoder_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin/encoder-bench}
OUT=${OUT:-build/encoder-bench.jsonl}
WORK=${WORK:-/tmp/semrouter-encoder-bench}
ARCHS=${ARCHS:-"bert modernbert"}
THREADS=${THREADS:-"1 2"}
SEQS=${SEQS:-"16 64 128 512"}
BATCHES=${BATCHES:-"1 8"}
PRECISIONS=${PRECISIONS:-"f32 bf16 int8"}
MIN_TIME=${MIN_TIME:-1.0}

if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "encoder_bench: installing python3-torch for the PyTorch side" >&2
  apt-get install -y -qq --no-install-recommends python3-torch python3-numpy >/dev/null
fi
[[ -x $BIN ]] || { echo "encoder_bench: build first (make build)" >&2; exit 1; }

mkdir -p "$WORK" "$(dirname "$OUT")"
: >"$OUT"
{
  echo "{\"impl\":\"machine\",\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\",\"cores\":$(nproc),\"flags\":\"$(grep -m1 -o -w 'avx512_bf16\|amx_bf16' /proc/cpuinfo | sort -u | xargs)\",\"torch\":\"$(/usr/bin/python3 -c 'import torch;print(torch.__version__)')\"}"
} >>"$OUT"
for t in $THREADS; do
  "$BIN" peak --threads "$t" | tee -a "$OUT"
done
for arch in $ARCHS; do
  [[ -f $WORK/$arch/model.safetensors ]] || "$BIN" make --arch "$arch" --dir "$WORK/$arch"
  for t in $THREADS; do
    for s in $SEQS; do
      for b in $BATCHES; do
        for p in $PRECISIONS; do
          OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t "$BIN" run --dir "$WORK/$arch" --seq "$s" --batch "$b" \
            --threads "$t" --precision "$p" --min-time "$MIN_TIME" | tee -a "$OUT"
        done
        # PyTorch's BLAS (OpenBLAS through libblas.so.3) ignores torch.set_num_threads: pin it too,
        # or "1 thread" silently uses every core. With t > 1, torch's own OpenMP threads and
        # OpenBLAS's spin-waiting threads fight over the cores, so PyTorch also runs with one
        # intra-op thread and t BLAS threads; the table keeps its faster configuration.
        OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t /usr/bin/python3 bench/torch_encoder.py --dir "$WORK/$arch" \
          --seq "$s" --batch "$b" --threads "$t" --min-time "$MIN_TIME" | tee -a "$OUT"
        if ((t > 1)); then
          OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=$t /usr/bin/python3 bench/torch_encoder.py --dir "$WORK/$arch" \
            --seq "$s" --batch "$b" --threads "$t" --torch-threads 1 --min-time "$MIN_TIME" | tee -a "$OUT"
        fi
      done
    done
  done
done
/usr/bin/python3 bench/encoder_table.py "$OUT"
