#!/usr/bin/env python3
"""Evaluates reasoning by need on the hand-written evaluation set (never trained on).

Starts build/bin/semrouter on a config (default: the embedded demo config), then for every
prompt of data/eval/reasoning_chat.jsonl asks
  - POST /api/v1/classify: the reasoning classifier's P(reason) and its answer, and
  - POST /api/v1/route:    what the config does with it (decision, model, thinking on or off),
and for every conversation of data/eval/followups.jsonl asks /api/v1/route whether the final,
short turn kept the reasoning of the turn it follows.

Prints a markdown report (classifier: balanced accuracy, per-domain figures, confusion matrix,
the fast-path share of simple STEM questions; routing: the share of requests that think under the
config against always-on, and the implied token saving under stated tokens-per-answer
assumptions; follow-ups). With --json FILE, also writes the figures as JSON.

Usage: /usr/bin/python3 scripts/reasoning-report.py [--config FILE] [--json FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Tokens per answer assumed for the estimate: a direct answer vs an answer with a thinking trace
# (the thinking models' traces on multi-step problems run to thousands of tokens; these are
# round, stated assumptions, not measurements).
TOKENS_DIRECT = 300
TOKENS_THINKING = 1500
STEM = {"math", "physics", "chemistry", "biology", "engineering", "computer science", "health"}


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read())


def start_router(binary, config):
    tmp = tempfile.mkdtemp(prefix="semrouter-reasoning-")
    ready = os.path.join(tmp, "ready.json")
    args = [binary, "serve", "--port", "0", "--admin-port", "0", "--ready-file", ready,
            "--log-level", "warn"]
    if config:
        args += ["--config", config]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):
        if os.path.exists(ready):
            with open(ready) as f:
                return proc, json.load(f)["admin_port"]
        if proc.poll() is not None:
            sys.exit(f"semrouter exited: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    proc.kill()
    sys.exit("semrouter did not start")


def thinks(route):
    return str(route.get("reasoning", "")).startswith("on")


def pct(a, b):
    return f"{100.0 * a / b:.1f}%" if b else "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="", help="router config (default: the embedded one)")
    ap.add_argument("--binary", default=str(ROOT / "build/bin/semrouter"))
    ap.add_argument("--data", default=str(ROOT / "data/eval/reasoning_chat.jsonl"))
    ap.add_argument("--followups", default=str(ROOT / "data/eval/followups.jsonl"))
    ap.add_argument("--json", default="", help="also write the figures here")
    a = ap.parse_args()

    proc, admin = start_router(a.binary, a.config)
    base = f"http://127.0.0.1:{admin}"
    try:
        rows = [json.loads(l) for l in open(a.data, encoding="utf-8") if l.strip()]
        for i, r in enumerate(rows):
            c = post(f"{base}/api/v1/classify", {"text": r["text"]})
            rs = c["signals"]["reasoning"]
            r["p"] = rs["p_reason"]
            r["pred"] = rs["value"]
            r["route"] = post(f"{base}/api/v1/route",
                              {"model": "auto", "messages": [{"role": "user", "content": r["text"]}]})
            if i % 50 == 0:
                print(f"  {i}/{len(rows)} prompts", file=sys.stderr)
        follow = [json.loads(l) for l in open(a.followups, encoding="utf-8") if l.strip()] \
            if os.path.exists(a.followups) else []
        for f in follow:
            user_turns = [m["content"] for m in f["messages"] if m["role"] == "user"]
            f["route"] = post(f"{base}/api/v1/route", {"model": "auto", "messages": f["messages"]})
            f["first"] = post(f"{base}/api/v1/route", {"model": "auto", "messages": [
                {"role": "user", "content": user_turns[0]}]})
            f["alone"] = post(f"{base}/api/v1/route", {"model": "auto", "messages": [
                {"role": "user", "content": user_turns[-1]}]})
    finally:
        proc.terminate()
        proc.wait()

    out = {}
    # ---- the classifier ----
    labels = ["direct", "reason"]
    conf = {t: {p: 0 for p in labels} for t in labels}
    by_domain = defaultdict(lambda: {t: {p: 0 for p in labels} for t in labels})
    by_kind = defaultdict(lambda: [0, 0])
    for r in rows:
        conf[r["label"]][r["pred"]] += 1
        by_domain[r["domain"]][r["label"]][r["pred"]] += 1
        k = by_kind[(r["label"], r.get("kind", "?"))]
        k[0] += r["pred"] == r["label"]
        k[1] += 1

    def bal(cm):
        recs = [cm[t][t] / sum(cm[t].values()) for t in labels if sum(cm[t].values())]
        return sum(recs) / len(recs) if recs else 0.0

    n = len(rows)
    acc = sum(conf[t][t] for t in labels) / n
    print(f"## Reasoning need on data/eval/reasoning_chat.jsonl ({n} prompts, never trained on)\n")
    print("### The classifier (`models/reasoning`, threshold P(reason) ≥ 0.5)\n")
    print(f"Balanced accuracy **{bal(conf):.3f}**, accuracy {acc:.3f}; recall: direct "
          f"{pct(conf['direct']['direct'], sum(conf['direct'].values()))}, reason "
          f"{pct(conf['reason']['reason'], sum(conf['reason'].values()))}.\n")
    print("| truth \\ predicted | direct | reason |\n|---|---|---|")
    for t in labels:
        print(f"| {t} | {conf[t]['direct']} | {conf[t]['reason']} |")
    stem_fast = [r for r in rows if r["domain"] in STEM and r["label"] == "direct"
                 and r.get("kind") in ("factual", "definitional")]
    fast = sum(1 for r in stem_fast if r["pred"] == "direct")
    print(f"\nSimple factual/definitional STEM questions on the fast path (classifier): "
          f"**{pct(fast, len(stem_fast))}** ({fast} of {len(stem_fast)}).\n")
    print("| domain | n | balanced accuracy | direct recall | reason recall |\n|---|---|---|---|---|")
    for d in sorted(by_domain):
        cm = by_domain[d]
        nd = sum(cm["direct"].values())
        nr = sum(cm["reason"].values())
        print(f"| {d} | {nd + nr} | {bal(cm):.3f} | {pct(cm['direct']['direct'], nd)} | "
              f"{pct(cm['reason']['reason'], nr)} |")
    print("\n| truth | kind | n | correct |\n|---|---|---|---|")
    for (label, kind), (ok, tot) in sorted(by_kind.items()):
        print(f"| {label} | {kind} | {tot} | {pct(ok, tot)} |")
    out["classifier"] = {"n": n, "balanced_accuracy": bal(conf), "accuracy": acc,
                         "confusion": conf, "stem_fast_path": fast / max(1, len(stem_fast)),
                         "per_domain": {d: bal(cm) for d, cm in by_domain.items()}}

    # ---- the routing under the config ----
    think = sum(1 for r in rows if thinks(r["route"]))
    blocked = sum(1 for r in rows if r["route"].get("blocked"))
    rconf = {t: {"off": 0, "on": 0} for t in labels}
    for r in rows:
        rconf[r["label"]]["on" if thinks(r["route"]) else "off"] += 1
    routed_bal = (rconf["direct"]["off"] / max(1, sum(rconf["direct"].values())) +
                  rconf["reason"]["on"] / max(1, sum(rconf["reason"].values()))) / 2
    stem_route_fast = sum(1 for r in stem_fast if not thinks(r["route"]))
    tokens_routed = think * TOKENS_THINKING + (n - think) * TOKENS_DIRECT
    tokens_always = n * TOKENS_THINKING
    print(f"\n### Routing under {'the embedded demo config' if not a.config else a.config}\n")
    print(f"Requests that think: **{pct(think, n)}** ({think} of {n}; {blocked} blocked by a "
          f"guard) against 100% with reasoning always on. Thinking agrees with the label "
          f"(reason ⇒ on, direct ⇒ off) at balanced accuracy {routed_bal:.3f}; simple STEM "
          f"factual/definitional questions on the fast path: {pct(stem_route_fast, len(stem_fast))}.\n")
    print("| truth \\ thinking | off | on |\n|---|---|---|")
    for t in labels:
        print(f"| {t} | {rconf[t]['off']} | {rconf[t]['on']} |")
    print(f"\nImplied completion tokens, assuming {TOKENS_DIRECT} tokens for a direct answer and "
          f"{TOKENS_THINKING} for an answer with thinking: {tokens_routed:,} routed against "
          f"{tokens_always:,} always-on, a saving of **{pct(tokens_always - tokens_routed, tokens_always)}**.\n")
    decisions = defaultdict(lambda: [0, 0])
    for r in rows:
        d = decisions[r["route"].get("decision", "?")]
        d[0] += 1
        d[1] += thinks(r["route"])
    print("| decision | requests | thinking |\n|---|---|---|")
    for d, (tot, on) in sorted(decisions.items(), key=lambda x: -x[1][0]):
        print(f"| {d} | {tot} | {on} |")
    gen = [r for r in rows if r["domain"] == "general"]
    general_ok = sum(1 for r in gen if r["route"].get("decision") in ("default", "small_talk",
                                                                        "general_reasoning"))
    print(f"\nEveryday chat (domain `general`, {len(gen)} prompts) kept off the 14 domain decisions "
          f"(default, small_talk or general_reasoning): {pct(general_ok, len(gen))}.")
    out["routing"] = {"thinking_share": think / n, "balanced_accuracy": routed_bal,
                      "stem_fast_path": stem_route_fast / max(1, len(stem_fast)),
                      "general_off_domains": general_ok / max(1, len(gen)),
                      "tokens_routed": tokens_routed, "tokens_always_on": tokens_always,
                      "assumed_tokens": {"direct": TOKENS_DIRECT, "thinking": TOKENS_THINKING}}

    # ---- follow-ups ----
    if follow:
        ok = 0
        print("\n### Follow-ups (data/eval/followups.jsonl)\n")
        print("A case passes when an `inherit` follow-up gets the first turn's model and thinking, "
              "and an `own` one the model and thinking its own words alone would get.\n")
        fails = []

        def same(x, y):
            return x.get("model") == y.get("model") and thinks(x) == thinks(y)
        for f in follow:
            passed = same(f["route"], f["first"] if f["expect"] == "inherit" else f["alone"])
            ok += passed
            if not passed:
                fails.append(f["id"])
        print(f"Passed {ok} of {len(follow)}" + (f"; failed: {', '.join(fails)}" if fails else "")
              + ".")
        out["followups"] = {"passed": ok, "n": len(follow), "failed": fails}
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
