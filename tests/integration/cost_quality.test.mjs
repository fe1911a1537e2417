// Cost-quality routing end to end: train a router from outcome data, evaluate it (PGR, APGR, CPT,
// JSON, SVG, the N-model frontier), calibrate a threshold, then serve with it and watch the
// load-aware shift move traffic to the cheap model while the strong one is slow, and back.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';

import { setup, request, waitFor, parseMetrics, metricValue } from './harness.mjs';

const BIN = process.env.SEMROUTER_BIN;
const SRC = process.env.SEMROUTER_SOURCE_DIR;
const OUTCOMES = path.join(SRC, 'tests/fixtures/router/outcomes.jsonl');
const run = (args) => spawnSync(BIN, args, { encoding: 'utf8' });

const h = setup('cost-quality');
let routerDir;

before(() => {
  routerDir = path.join(h.dir, 'router');
  const r = run(['train', 'router', '--data', OUTCOMES, '--out', routerDir, '--type', 'knn']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /216 prompts, 3 models; \d+ for training, \d+ held out \(20% by id\)/);
  assert.match(r.stderr, /knn k=\d+: validation loss/);
});

test('eval router prints and writes PGR, APGR, CPT with random and oracle, and the frontier', () => {
  const svg = path.join(h.dir, 'pgr.svg');
  const out = path.join(h.dir, 'report.json');
  const r = run(['eval', 'router', '--model', routerDir, '--data', OUTCOMES, '--split', 'all', '--strong', 'big', '--weak', 'small',
    '--pair', 'big:mid', '--frontier', 'big,mid,small', '--cost', 'big=10', '--cost', 'mid=3', '--cost', 'small=0.3',
    '--svg', svg, '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /APGR \d\.\d{3} \(random 0\.500, oracle \d\.\d{3}\)/);
  assert.match(r.stdout, /Cost–quality frontier over big, mid, small/);
  const j = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(j.pairs.length, 2);
  const main = j.pairs[0];
  assert.equal(main.strong, 'big');
  assert.equal(main.n, 216);
  assert.equal(main.quality_strong, 1);
  assert.equal(main.curve.length, 101);
  assert.equal(main.curve[0].pgr, 0);
  assert.equal(main.curve[100].pgr, 1);
  // The pattern is easy (technical prompts need big), so the router nearly matches the oracle
  // (APGR 0.75, CPT(50%) 25%: small is right on every everyday prompt) and beats random.
  assert.ok(Math.abs(main.oracle.apgr - 0.75) < 1e-9 && Math.abs(main.oracle.cpt50 - 0.25) < 0.01, JSON.stringify(main.oracle));
  assert.ok(main.apgr > 0.7 && main.apgr <= main.oracle.apgr + 1e-9, `APGR ${main.apgr}`);
  assert.ok(main.cpt50 < 0.3, `CPT(50%) ${main.cpt50}`);
  assert.deepEqual(main.random, { apgr: 0.5, cpt50: 0.5, cpt80: 0.8 });
  assert.equal(j.frontier.singles.length, 3);
  assert.ok(j.frontier.points.length > 10);
  // The frontier reaches big's quality for less than big's cost.
  const best = j.frontier.points.filter((p) => p.quality >= 0.999).map((p) => p.cost);
  assert.ok(best.length && Math.min(...best) < 10, JSON.stringify(j.frontier.points.slice(0, 5)));
  assert.match(readFileSync(svg, 'utf8'), /^<svg[\s\S]*APGR[\s\S]*<\/svg>\n$/);
  assert.ok(existsSync(svg.replace('.svg', '-frontier.svg')));

  const bad = run(['eval', 'router', '--model', routerDir, '--data', OUTCOMES, '--strong', 'gpt-9', '--weak', 'small']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /the router does not know "gpt-9" \(it predicts: big, mid, small\)/);
});

test('a router can use a transformer embedder instead of the embedded word vectors', () => {
  const dir = path.join(h.dir, 'router-bert');
  const r = run(['train', 'router', '--data', OUTCOMES, '--out', dir, '--type', 'mf',
    '--embeddings', path.join(SRC, 'tests/fixtures/encoders/bert-embed')]);
  assert.equal(r.status, 0, r.stderr);
  const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  assert.equal(cfg.embeddings.type, 'transformer');
  assert.equal(cfg.embeddings.dim, 64); // the fixture's width
  const e = run(['eval', 'router', '--model', dir, '--data', OUTCOMES, '--split', 'all', '--strong', 'big', '--weak', 'small', '--json']);
  assert.equal(e.status, 0, e.stderr);
  assert.equal(JSON.parse(e.stdout).pairs[0].n, 216);
});

test('calibrate finds the threshold for a target share of strong calls', () => {
  const r = run(['calibrate', '--router', routerDir, '--data', OUTCOMES, '--strong', 'big', '--weak', 'small',
    '--target-strong-share', '0.5', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.prompts, 216);
  assert.ok(Math.abs(j.strong_share_on_data - 0.5) < 0.05, JSON.stringify(j));
  assert.equal(typeof j.threshold, 'number');
});

test('under load the router shifts to the cheap model, visibly, and shifts back', async () => {
  const strong = await h.startMock({ name: 'S', firstByteDelayMs: 2000 });
  const weak = await h.startMock({ name: 'W' });
  const router = await h.startRouter({
    server: { workers: 1, reload_poll_ms: 0 },
    backends: [{ name: 's', url: strong.url }, { name: 'w', url: weak.url }],
    routers: { fixture: routerDir },
    models: [
      { name: 'big', backends: ['s'], pricing: { input_per_1m: 3, output_per_1m: 9 } },
      { name: 'small', backends: ['w'], pricing: { input_per_1m: 0.1, output_per_1m: 0.2 } },
    ],
    decisions: [{
      name: 'general',
      rules: 'always',
      models: ['big', 'small'],
      selection: { router: 'fixture', strong: 'big', weak: 'small', threshold: 0.3, load: { max_inflight: 1, shift: 1.0, hysteresis: 0.5 } },
    }],
  });
  const ask = (content) => request(`${router.url}/v1/chat/completions`, {
    method: 'POST', json: { model: 'auto', messages: [{ role: 'user', content }] }, timeoutMs: 10_000,
  });
  const HARD = 'prove that the integral of the moon';
  const easy = await ask('tell me a joke about the sea');
  assert.equal(easy.headers['x-semrouter-model'], 'small');
  assert.match(easy.headers['x-semrouter-selection'], /^weak;score=/);

  // Two slow strong calls in flight put the strong model over max_inflight (1).
  const slow = [ask(HARD), ask(HARD)];
  await waitFor(async () => metricValue(parseMetrics((await request(`${router.adminUrl}/metrics`)).text), 'semrouter_inflight_requests') >= 2, {
    what: 'two requests in flight',
  });
  const shifted = await ask(HARD);
  assert.equal(shifted.status, 200);
  assert.equal(shifted.headers['x-semrouter-load'], 'pressure');
  assert.equal(shifted.headers['x-semrouter-model'], 'small');
  assert.match(shifted.headers['x-semrouter-selection'], /^weak;score=[\d.]+;threshold=1\.3/);
  for (const r of await Promise.all(slow)) {
    assert.equal(r.headers['x-semrouter-model'], 'big');
    assert.equal(r.headers['x-semrouter-load'], 'normal');
  }
  // Nothing in flight: below max_inflight × (1 − hysteresis), the shift is off again.
  const back = await ask(HARD);
  assert.equal(back.headers['x-semrouter-load'], 'normal');
  assert.equal(back.headers['x-semrouter-model'], 'big');

  const m = parseMetrics((await request(`${router.adminUrl}/metrics`)).text);
  assert.equal(metricValue(m, 'semrouter_selection_total', { decision: 'general', choice: 'weak', load: 'pressure' }), 1);
  assert.equal(metricValue(m, 'semrouter_selection_total', { decision: 'general', choice: 'strong', load: 'normal' }), 3);
  assert.equal(metricValue(m, 'semrouter_load_pressure', { decision: 'general' }), 0);
  const share = metricValue(m, 'semrouter_strong_share', { decision: 'general' });
  assert.ok(Math.abs(share - 3 / 5) < 1e-9, `share ${share}`);
});
