#!/usr/bin/python3
"""Turns bench/encoder_bench.sh's JSON lines into the markdown table of docs/benchmarks.md."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peak = {(r["precision"], r["threads"]): r["gflops"] for r in rows if r["impl"] == "gemm" and r.get("backend") == "onednn"}
blas = {r["threads"]: r["gflops"] for r in rows if r["impl"] == "gemm" and r.get("backend") == "openblas"}
ours = {(r["arch"], r["seq"], r["batch"], r["threads"], r["precision"]): r for r in rows if r["impl"] == "semrouter"}
torch = {}
for r in rows:  # PyTorch's faster thread configuration per shape
    if r["impl"] == "pytorch":
        k = (r["arch"], r["seq"], r["batch"], r["threads"])
        if k not in torch or r["median_ms"] < torch[k]["median_ms"]:
            torch[k] = r
for r in rows:
    if r["impl"] == "machine":
        print(f"Machine: {r['cpu']}, {r['cores']} cores, {r['flags'] or 'no native bf16'}; PyTorch {r['torch']}\n")
print("GEMM peak (1024x768x3072, GFLOP/s): " + "; ".join(
    f"{t} thread(s): oneDNN f32 {peak.get(('f32', t), 0):.0f}, bf16 {peak.get(('bf16', t), 0):.0f}, "
    f"int8 {peak.get(('int8', t), 0):.0f}, OpenBLAS f32 {blas.get(t, 0):.0f}" for t in sorted(blas)) + "\n")
print("| model | tokens | batch | threads | PyTorch f32 ms | ours f32 ms | f32 vs PyTorch | f32 % of GEMM peak "
      "| ours bf16 ms | bf16 vs our f32 | ours int8 ms | int8 vs our f32 |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (arch, s, b, t), tr in sorted(torch.items(), key=lambda kv: (kv[0][0], kv[0][3], kv[0][1], kv[0][2])):
    f = ours.get((arch, s, b, t, "f32"))
    bf = ours.get((arch, s, b, t, "bf16"))
    i8 = ours.get((arch, s, b, t, "int8"))
    if not f:
        continue
    def cell(r):
        return f"{r['median_ms']:.1f}" if r else "–"
    def ratio(r):
        return f"{f['median_ms'] / r['median_ms']:.2f}×" if r else "–"
    share = 100 * f["gflops"] / peak[("f32", t)] if ("f32", t) in peak else 0
    print(f"| {arch} | {s} | {b} | {t} | {tr['median_ms']:.1f} | {f['median_ms']:.1f} | "
          f"{tr['median_ms'] / f['median_ms']:.2f}× | {share:.0f}% | {cell(bf)} | {ratio(bf)} | {cell(i8)} | {ratio(i8)} |")
