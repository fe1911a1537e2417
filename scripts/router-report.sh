#!/usr/bin/env bash
# The cost-quality report of docs/cost-quality.md: the shipped router on the held-out 20% of the
# MMLU-Pro outcomes, three strong/weak pairs and the open-model frontier (cost = active
# parameters, billions). Writes docs/reports/router-mmlu-pro-holdout.json and the two SVG plots.
#   scripts/router-report.sh             # needs build/bin/semrouter (make build)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${SEMROUTER_BIN:-build/bin/semrouter}
mkdir -p docs/img docs/reports
"$B" eval router --model models/router-mmlu-pro --data data/mmlu_pro/questions.jsonl.gz --split holdout \
  --strong gpt4o --weak Meta-Llama-3_1-8B-Instruct \
  --pair Mixtral-8x7B-Instruct-v0.1:Mistral-7B-Instruct-v0.2 \
  --pair Meta-Llama-3_1-70B-Instruct:Meta-Llama-3_1-8B-Instruct \
  --frontier Meta-Llama-3_1-70B-Instruct,Qwen1.5-72B-Chat,Mixtral-8x7B-Instruct-v0.1,Meta-Llama-3_1-8B-Instruct,Mistral-7B-Instruct-v0.2,Phi-3-mini-4k-instruct \
  --cost Meta-Llama-3_1-70B-Instruct=70 --cost Qwen1.5-72B-Chat=72 --cost Mixtral-8x7B-Instruct-v0.1=12.9 \
  --cost Meta-Llama-3_1-8B-Instruct=8 --cost Mistral-7B-Instruct-v0.2=7.3 --cost Phi-3-mini-4k-instruct=3.8 \
  --svg docs/img/router-gpt4o-vs-llama-3.1-8b.svg --out docs/reports/router-mmlu-pro-holdout.json
