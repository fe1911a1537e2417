#!/usr/bin/env bash
# Retrains the embedded default classifiers in models/ from the data in data/ (deterministic: the
# same data, seed and binary give the same weights). The reports each run prints are the
# held-out scores recorded in models/README.md.
#   scripts/train-defaults.sh            # needs build/bin/semrouter (make build)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${SEMROUTER_BIN:-build/bin/semrouter}
V=models/glove-100d-sif

"$B" train domain --data data/mmlu_pro/questions.jsonl.gz --data data/train/domain_chat_train.jsonl \
  --vectors "$V" --vector-scale 2 --buckets-log2 17 --out models/domain
"$B" train complexity --data data/mmlu_pro/questions.jsonl.gz --vectors "$V" --buckets-log2 17 \
  --out models/complexity
"$B" train reasoning --data data/train/reasoning_mmlu.jsonl.gz --data data/train/reasoning_chat_train.jsonl \
  --vectors "$V" --buckets-log2 17 --out models/reasoning
"$B" train jailbreak --data data/jailbreak/jailbreak.jsonl.gz --vectors "$V" --buckets-log2 17 \
  --out models/jailbreak

# The cost-quality router (docs/cost-quality.md): 8 MMLU-Pro models, held-out 20% never seen.
"$B" train router --data data/mmlu_pro/questions.jsonl.gz --type linear --epochs 12 \
  --models gpt4o,gemini-1.5-pro-002,Meta-Llama-3_1-70B-Instruct,Meta-Llama-3_1-8B-Instruct,Mixtral-8x7B-Instruct-v0.1,Mistral-7B-Instruct-v0.2,Qwen1.5-72B-Chat,Phi-3-mini-4k-instruct \
  --out models/router-mmlu-pro
