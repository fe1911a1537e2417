#!/usr/bin/python3
"""PyTorch reference for bench/encoder_bench.sh: the same BERT / ModernBERT architecture, run on
the same weights (the folder encoder-bench `make` wrote) with the same thread count, written the
way Hugging Face transformers' eager implementations compute it (torch 1.13 has no SDPA).

Run with Debian's /usr/bin/python3 (python3-torch). Prints one JSON object per measurement.
"""
import argparse
import json
import math
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", name
        a, b = t["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=np.float32).reshape(t["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def bert_forward(w, cfg, ids):
    B, S = ids.shape
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    d = H // nh
    eps = cfg.get("layer_norm_eps", 1e-12)
    pos = torch.arange(S).unsqueeze(0)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos] + \
        w["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
    x = F.layer_norm(x, (H,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    mask = torch.zeros(B, 1, 1, S)  # all tokens real; added like transformers' extended mask
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        def heads(t):
            return t.view(B, S, nh, d).permute(0, 2, 1, 3)
        q = heads(F.linear(x, w[p + "attention.self.query.weight"], w[p + "attention.self.query.bias"]))
        k = heads(F.linear(x, w[p + "attention.self.key.weight"], w[p + "attention.self.key.bias"]))
        v = heads(F.linear(x, w[p + "attention.self.value.weight"], w[p + "attention.self.value.bias"]))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + mask
        ctx = torch.matmul(F.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).contiguous().view(B, S, H)
        a = F.linear(ctx, w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"])
        x = F.layer_norm(a + x, (H,), w[p + "attention.output.LayerNorm.weight"],
                         w[p + "attention.output.LayerNorm.bias"], eps)
        h = F.gelu(F.linear(x, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]))
        o = F.linear(h, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
        x = F.layer_norm(o + x, (H,), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    return x


def rope(d, S, theta):
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    freqs = torch.outer(torch.arange(S).float(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def modernbert_forward(w, cfg, ids):
    B, S = ids.shape
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    d = H // nh
    eps = cfg.get("norm_eps", 1e-5)
    every = cfg["global_attn_every_n_layers"]
    window = cfg["local_attention"] // 2
    x = F.layer_norm(w["embeddings.tok_embeddings.weight"][ids], (H,), w["embeddings.norm.weight"], None, eps)
    global_mask = torch.zeros(B, 1, S, S)
    idx = torch.arange(S)
    far = (idx.unsqueeze(0) - idx.unsqueeze(1)).abs() > window
    local_mask = global_mask.masked_fill(far.view(1, 1, S, S), torch.finfo(torch.float32).min)
    cg, sg = rope(d, S, cfg["global_rope_theta"])
    cl, sl = rope(d, S, cfg["local_rope_theta"])
    for l in range(cfg["num_hidden_layers"]):
        p = f"layers.{l}."
        is_global = l % every == 0
        a = x if l == 0 else F.layer_norm(x, (H,), w[p + "attn_norm.weight"], None, eps)
        qkv = F.linear(a, w[p + "attn.Wqkv.weight"]).view(B, S, 3, nh, d)
        q, k, v = qkv.transpose(3, 1).unbind(dim=2)  # [B, nh, S, d]
        cos, sin = (cg, sg) if is_global else (cl, sl)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        scores = torch.matmul(q, k.transpose(2, 3)) * (d ** -0.5) + (global_mask if is_global else local_mask)
        ctx = torch.matmul(F.softmax(scores, dim=-1), v).transpose(1, 2).contiguous().view(B, S, H)
        x = x + F.linear(ctx, w[p + "attn.Wo.weight"])
        m = F.layer_norm(x, (H,), w[p + "mlp_norm.weight"], None, eps)
        inp, gate = F.linear(m, w[p + "mlp.Wi.weight"]).chunk(2, dim=-1)
        x = x + F.linear(F.gelu(inp) * gate, w[p + "mlp.Wo.weight"])
    return F.layer_norm(x, (H,), w["final_norm.weight"], None, eps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--seq", type=int, nargs="+", default=[16, 64, 128, 512])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=1, help="threads given to the run (BLAS pinned by the caller)")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch.set_num_threads (default: --threads)")
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args()
    torch_threads = args.torch_threads or args.threads
    torch.set_num_threads(torch_threads)
    cfg = json.load(open(args.dir + "/config.json"))
    w = load_safetensors(args.dir + "/model.safetensors")
    fwd = bert_forward if cfg["model_type"] == "bert" else modernbert_forward
    gen = torch.Generator().manual_seed(7)
    for S in args.seq:
        for B in args.batch:
            ids = torch.randint(1000, cfg["vocab_size"], (B, S), generator=gen)
            with torch.inference_mode():
                fwd(w, cfg, ids)
                times = []
                start = time.perf_counter()
                while len(times) < 3 or (time.perf_counter() - start < args.min_time and len(times) < 200):
                    t0 = time.perf_counter()
                    fwd(w, cfg, ids)
                    times.append((time.perf_counter() - t0) * 1000)
                    if len(times) >= 2 and times[0] > 2000:
                        break
            times.sort()
            med = times[len(times) // 2]
            print(json.dumps({"impl": "pytorch", "arch": cfg["model_type"], "seq": S, "batch": B,
                              "threads": args.threads, "torch_threads": torch_threads, "precision": "f32", "median_ms": med,
                              "min_ms": times[0], "runs": len(times), "seq_per_s": 1000.0 * B / med}),
                  flush=True)


if __name__ == "__main__":
    main()
