#!/usr/bin/env python3
"""Derives reasoning-need labels from the MMLU-Pro pack (data/mmlu_pro/questions.jsonl.gz) for
training the `reasoning` classifier: data/train/reasoning_mmlu.jsonl.gz.

The pack's `src` field says where each question came from. Sources that are computation sets
(theoremQA, SciBench, the STEM parts of stemez, MMLU's mathematics / statistics / physics /
chemistry / accounting / formal logic subjects) are labelled "reason" when the question itself
looks like a computation or a proof (numbers, math symbols, or verbs such as compute / prove /
solve); knowledge subjects (history, geography, anatomy, nutrition, marketing, psychology, ...)
are labelled "direct" when the question does not. Everything else, and every question whose text
disagrees with its source, is left out rather than guessed. Mixed subjects (professional law and
medicine, macro/microeconomics, moral scenarios) are left out too.

Each record: {"id", "text", "label", "kind": "mmlu", "src"}. `kind` lets `semrouter train`
weigh this file against the hand-written chat prompts (each kind weighs the same in its class).

Usage: /usr/bin/python3 scripts/build-reasoning-data.py [REPO_ROOT]
"""
import gzip
import json
import re
import sys
from collections import Counter
from pathlib import Path

REASON_SOURCES = (
    "theoremQA-", "scibench-",
    "stemez-Physics", "stemez-Chemistry", "stemez-PhysicalChemistry", "stemez-Thermodynamics",
    "stemez-Optics", "stemez-ElectricCircuits", "stemez-ElectricalMachines",
    "stemez-Electromagnetics", "stemez-ElectronicCommunications", "stemez-FluidMechanics",
    "stemez-HeatTransfer", "stemez-MachineDesign", "stemez-Mechanics", "stemez-TransportPhenomena",
    "stemez-Business", "stemez-ComputerScience",
    "ori_mmlu-abstract_algebra", "ori_mmlu-college_mathematics", "ori_mmlu-elementary_mathematics",
    "ori_mmlu-high_school_mathematics", "ori_mmlu-high_school_statistics",
    "ori_mmlu-college_physics", "ori_mmlu-high_school_physics", "ori_mmlu-college_chemistry",
    "ori_mmlu-high_school_chemistry", "ori_mmlu-econometrics", "ori_mmlu-formal_logic",
    "ori_mmlu-professional_accounting",
)
DIRECT_SOURCES = (
    "ori_mmlu-anatomy", "ori_mmlu-business_ethics", "ori_mmlu-clinical_knowledge",
    "ori_mmlu-conceptual_physics", "ori_mmlu-global_facts", "ori_mmlu-high_school_biology",
    "ori_mmlu-high_school_european_history", "ori_mmlu-high_school_geography",
    "ori_mmlu-high_school_government_and_politics", "ori_mmlu-high_school_psychology",
    "ori_mmlu-high_school_us_history", "ori_mmlu-high_school_world_history",
    "ori_mmlu-human_aging", "ori_mmlu-human_sexuality", "ori_mmlu-jurisprudence",
    "ori_mmlu-management", "ori_mmlu-marketing", "ori_mmlu-medical_genetics",
    "ori_mmlu-miscellaneous", "ori_mmlu-nutrition", "ori_mmlu-philosophy", "ori_mmlu-prehistory",
    "ori_mmlu-professional_psychology", "ori_mmlu-public_relations", "ori_mmlu-security_studies",
    "ori_mmlu-sociology", "ori_mmlu-us_foreign_policy", "ori_mmlu-virology",
    "ori_mmlu-world_religions", "ori_mmlu-computer_security", "ori_mmlu-astronomy",
    "stemez-Psychology",
)
NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:\.\d+)?")
MATHY = re.compile(r"[=^+*/√∫∑≤≥<>]|\b(?:compute|calculate|determine|evaluate|solve|prove|show that|"
                   r"find the|how many|how much|what is the value|estimate)\b", re.I)


def looks_computational(text):
    return len(NUMBER.findall(text)) >= 2 or bool(MATHY.search(text))


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    src = root / "data/mmlu_pro/questions.jsonl.gz"
    out = root / "data/train/reasoning_mmlu.jsonl.gz"
    counts = Counter()
    records = []
    with gzip.open(src, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            s, text = r.get("src", ""), r["question"].strip()
            comp = looks_computational(text)
            if s.startswith(REASON_SOURCES) and comp:
                label = "reason"
            elif s.startswith(DIRECT_SOURCES) and not comp and len(NUMBER.findall(text)) <= 1:
                label = "direct"
            else:
                counts["left out"] += 1
                continue
            counts[label] += 1
            records.append({"id": f"mmlu-{r['id']}", "text": text, "label": label, "kind": "mmlu",
                            "src": s})
    # mtime 0: the same input gives a byte-identical file.
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as g:
        for rec in records:
            g.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
    print(f"{out}: {dict(counts)}", file=sys.stderr)


if __name__ == "__main__":
    main()
