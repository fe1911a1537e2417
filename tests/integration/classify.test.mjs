// `semrouter classify` on every encoder fixture folder: the JSON it prints must carry the
// reference's predictions (tests/fixtures/encoders/*/cases.json, produced by transformers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const BIN = process.env.SEMROUTER_BIN;
const FIX = path.join(process.env.SEMROUTER_SOURCE_DIR, 'tests/fixtures/encoders');

function classify(folder, args, texts) {
  const out = execFileSync(BIN, ['classify', '-m', path.join(FIX, folder), ...args, ...texts], { encoding: 'utf8' });
  return JSON.parse(out);
}

function cases(folder) {
  return JSON.parse(readFileSync(path.join(FIX, folder, 'cases.json'), 'utf8')).cases;
}

test('sequence classifiers print the reference label and probabilities', () => {
  for (const folder of ['bert-seqcls', 'modernbert-seqcls']) {
    const cs = cases(folder).filter((c) => c.text.length > 0).slice(0, 6);
    const out = classify(folder, ['--precision', 'f32'], cs.map((c) => c.text));
    assert.equal(out.task, 'seq');
    assert.equal(out.precision, 'f32');
    assert.equal(out.results.length, cs.length);
    cs.forEach((c, i) => {
      const r = out.results[i];
      assert.equal(r.label, c.predicted_label, `${folder} ${c.name}`);
      assert.ok(Math.abs(r.confidence - Math.max(...c.probabilities)) < 1e-4);
      assert.equal(Object.keys(r.probabilities).length, c.probabilities.length);
      assert.equal(r.tokens, c.input_ids.length);
    });
  }
});

test('token classifiers print entities with character spans of the input', () => {
  for (const folder of ['bert-tokcls', 'modernbert-tokcls']) {
    const text = 'Contact Zoë Müller at zoe.mueller@example.com or 415-555-0100.';
    const out = classify(folder, ['--precision', 'f32'], [text]);
    assert.equal(out.task, 'token');
    const ents = out.results[0].entities;
    assert.ok(ents.length > 0, folder);
    for (const e of ents) {
      // spans are code-point offsets, as Python would index the string
      assert.equal([...text].slice(e.start, e.end).join(''), e.text, `${folder} ${JSON.stringify(e)}`);
      assert.ok(!/^\s|\s$/.test(e.text), `span carries no surrounding whitespace: ${JSON.stringify(e.text)}`);
      assert.ok(e.score > 0 && e.score <= 1);
    }
  }
});

test('the embedder prints L2-normalised sentence embeddings equal to the reference', () => {
  const cs = cases('bert-embed').slice(0, 3);
  const out = classify('bert-embed', ['--precision', 'f32'], cs.map((c) => c.text));
  assert.equal(out.task, 'embed');
  assert.equal(out.dim, 64);
  assert.equal(out.pooling, 'mean');
  assert.equal(out.normalized, true);
  cs.forEach((c, i) => {
    const v = out.results[i].embedding;
    const maxDiff = Math.max(...v.map((x, k) => Math.abs(x - c.sentence_embedding[k])));
    assert.ok(maxDiff < 1e-4, `max diff ${maxDiff}`);
  });
  // any folder can embed, classifiers included
  const e = classify('modernbert-seqcls', ['--task', 'embed', '--precision', 'bf16'], ['hello']);
  assert.equal(e.results[0].embedding.length, 64);
  assert.equal(e.precision, 'bf16');
});

test('texts come from stdin one per line when none are given', () => {
  const out = execFileSync(BIN, ['classify', '-m', path.join(FIX, 'bert-seqcls'), '--backend', 'openblas'], {
    input: 'first line\nsecond line\n',
    encoding: 'utf8',
  });
  const j = JSON.parse(out);
  assert.equal(j.backend, 'openblas');
  assert.deepEqual(j.results.map((r) => r.text), ['first line', 'second line']);
});

test('bad usage is a clear error, not a crash', () => {
  let r = spawnSync(BIN, ['classify', '-m', path.join(FIX, 'bert-seqcls'), '--task', 'token', 'x'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /cannot do task "token"/);
  r = spawnSync(BIN, ['classify', '-m', path.join(process.env.SEMROUTER_SOURCE_DIR, 'tests/fixtures/tokenizers/gpt2'), 'x'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /config\.json/);
  r = spawnSync(BIN, ['classify', '-m', path.join(FIX, 'bert-seqcls'), '--backend', 'openblas', '--precision', 'int8', 'x'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /f32 only/);
  r = spawnSync(BIN, ['classify', '-m', path.join(FIX, 'bert-seqcls'), '--precision', 'fp4', 'x'], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /precision/);
});
