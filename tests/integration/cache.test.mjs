// The semantic cache (memory backend) and the tool pre-filter through the real gateway: exact and
// semantic hits served without an upstream call, the verifier's refusals, the scope (tenant,
// decision, model, conversation, answer-changing parameters), max_tokens, the client's opt-outs,
// what is stored (only complete successful answers, streamed ones included), hits as JSON, as SSE
// and through the official openai SDK, per-decision overrides, TTL, eviction, the admin API, the
// metrics, and tool filtering with byte-identical kept tools.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import {
  setup,
  request,
  stream,
  rawEcho,
  parseMetrics,
  metricValue,
  waitFor,
  loadOpenAI,
  SOURCE_DIR,
} from './harness.mjs';

const h = setup('cache');
let mock; // the upstream of every model but `trunc`
let trunc; // an upstream that answers with finish_reason "length"
let truncCalls = 0;
let router; // the main router: memory cache, decisions with cache plugins, the tool filter

const HEX16 = /^[0-9a-f]{16}$/;

function baseConfig(upstream, cache, extra = '') {
  return `server: {workers: 1, reload_poll_ms: 0}
backends: [{name: m, url: "${upstream}"}]
models: [{name: small, backends: [m]}]
default_model: small
cache: ${JSON.stringify(cache)}
${extra}`;
}

before(async () => {
  mock = await h.startMock({ name: 'M', tokens: 3 });
  trunc = await h.startHttpServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      truncCalls += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: `chatcmpl-trunc-${truncCalls}`,
          object: 'chat.completion',
          created: 1700000000,
          model: 'trunc',
          choices: [{ index: 0, message: { role: 'assistant', content: 'cut off in the mid' }, finish_reason: 'length' }],
          usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
        }),
      );
    });
  });
  router = await h.startRouter(`server: {workers: 1, reload_poll_ms: 0}
backends:
  - {name: m, url: "${mock.url}"}
  - {name: len, url: "${trunc.url}"}
models:
  - {name: small, backends: [m]}
  - {name: other, backends: [m]}
  - {name: trunc, backends: [len]}
default_model: small
signals:
  keywords:
    - {name: strict_kw, keywords: [penguin]}
    - {name: off_kw, keywords: [giraffe]}
    - {name: brief_kw, keywords: [zebra]}
    - {name: agent_kw, keywords: [umbrella]}
decisions:
  - {name: strict, rules: {keyword: strict_kw}, models: [{model: small}], plugins: {cache: {similarity: 0.95}}}
  - {name: uncached, rules: {keyword: off_kw}, models: [{model: small}], plugins: {cache: {enabled: false}}}
  - {name: brief, rules: {keyword: brief_kw}, models: [{model: small}], plugins: {cache: {ttl_s: 3}}}
  - {name: agent, rules: {keyword: agent_kw}, models: [{model: small}], plugins: {tools: {max_tools: 3, top_k: 2}}}
cache:
  enabled: true
  backend: memory
  similarity: 0.6
  ttl_s: 3600
  max_entries: 10000
  eviction: lru
  tenant: [header:x-tenant-id, api_key, user]
tools: {max_tools: 8, top_k: 5}
`);
});

const user = (content) => [{ role: 'user', content }];
const upstreamCalls = async () => (await mock.stats()).requests;
const metrics = async (r = router) => parseMetrics(await r.metrics());
const deltaOf = (before, after) => (name, labels) =>
  (metricValue(after, name, labels) ?? 0) - (metricValue(before, name, labels) ?? 0);

// Sends a chat completion and checks the cache outcome and whether the upstream was called.
// `tenant` becomes x-tenant-id, so each test lives in its own scope.
async function ask(r, { text, messages, tenant, headers = {}, model = 'small', expect, ...extra }) {
  const h2 = { ...headers };
  if (tenant !== undefined) h2['x-tenant-id'] = tenant;
  const before = await upstreamCalls();
  const res = await r.chat({ model, messages: messages ?? user(text), ...extra }, { headers: h2 });
  const called = (await upstreamCalls()) - before;
  const where = `${text ?? JSON.stringify(messages)} ${JSON.stringify(extra)} ${JSON.stringify(h2)} -> ${res.status} ${JSON.stringify(
    Object.fromEntries(Object.entries(res.headers).filter(([k]) => k.startsWith('x-semrouter'))),
  )}`;
  if (expect !== undefined) {
    assert.equal(res.status, 200, `${where} ${res.text}`);
    assert.equal(res.headers['x-semrouter-cache'], expect, where);
    if (expect === 'hit') {
      assert.equal(called, 0, `a hit called the upstream: ${where}`);
      assert.match(res.headers['x-semrouter-cache-entry'] ?? '', HEX16, where);
      assert.match(res.headers['x-semrouter-cache-similarity'] ?? '', /^[01]\.\d{4}$/, where);
    } else {
      assert.equal(called, 1, `a ${expect} must reach the upstream once: ${where}`);
      assert.equal(res.headers['x-semrouter-cache-entry'], undefined, where);
    }
  }
  return Object.assign(res, { called, where });
}
const content = (res) => res.json.choices[0].message.content;

test('an exact repeat and a surface variant hit without an upstream call and return the first answer', async () => {
  const t = 'exact';
  const first = await ask(router, { text: 'How tall is Mount Everest?', tenant: t, expect: 'miss', mock: { tokens: 4 } });
  assert.match(content(first), / tok3$/);
  // The mock would answer with 7 tokens now: a hit must still give the stored 4-token answer.
  const again = await ask(router, { text: 'How tall is Mount Everest?', tenant: t, expect: 'hit', mock: { tokens: 7 } });
  assert.equal(again.headers['x-semrouter-cache-similarity'], '1.0000');
  assert.match(again.headers['content-type'], /^application\/json/);
  assert.equal(again.json.object, 'chat.completion');
  assert.equal(again.json.choices.length, 1);
  assert.equal(again.json.choices[0].message.role, 'assistant');
  assert.equal(content(again), content(first));
  assert.equal(again.json.choices[0].finish_reason, 'stop');
  assert.equal(again.json.usage.completion_tokens, first.json.usage.completion_tokens);
  assert.equal(again.headers['x-semrouter-model'], 'small');
  assert.equal(again.headers['x-semrouter-decision'], 'passthrough');
  assert.equal(again.json.mock_echo, undefined, 'a hit does not come from the mock');
  // Case, white space and trailing punctuation do not matter for the exact tier.
  for (const variant of ['how tall is mount everest', '  HOW   tall is Mount Everest?!  ', 'How tall is Mount Everest.']) {
    const v = await ask(router, { text: variant, tenant: t, expect: 'hit' });
    assert.equal(v.headers['x-semrouter-cache-similarity'], '1.0000', v.where);
    assert.equal(v.headers['x-semrouter-cache-entry'], again.headers['x-semrouter-cache-entry'], v.where);
    assert.equal(content(v), content(first));
  }
});

test('a paraphrase hits by meaning; another country, number, negation or direction does not', async () => {
  const t = 'semantic';
  const m0 = await metrics();
  const france = await ask(router, { text: 'What is the capital of France?', tenant: t, expect: 'miss', mock: { tokens: 2 } });
  const para = await ask(router, { text: 'Which city is the capital of France?', tenant: t, expect: 'hit' });
  const sim = Number(para.headers['x-semrouter-cache-similarity']);
  assert.ok(sim >= 0.6 && sim < 1, `similarity ${sim}`);
  assert.equal(content(para), content(france));
  const lower = await ask(router, { text: 'what is the capital of france', tenant: t, expect: 'hit' });
  assert.equal(lower.headers['x-semrouter-cache-similarity'], '1.0000');

  const germany = await ask(router, { text: 'What is the capital of Germany?', tenant: t, expect: 'miss' });
  const gr = germany.headers['x-semrouter-cache-rejected'];
  if (gr !== undefined) assert.match(gr, /^(anchors|substitution|wording)/, germany.where);

  await ask(router, { text: 'convert 5 miles to km', tenant: t, expect: 'miss' });
  const eight = await ask(router, { text: 'convert 8 miles to km', tenant: t, expect: 'miss' });
  assert.equal(eight.headers['x-semrouter-cache-rejected'], 'numbers', eight.where);

  // Near duplicates that mean the opposite: a negation, a reversed direction.
  await ask(router, { text: 'Is coffee good for your health?', tenant: t, expect: 'miss' });
  const not = await ask(router, { text: 'Is coffee not good for your health?', tenant: t, expect: 'miss' });
  assert.equal(not.headers['x-semrouter-cache-rejected'], 'negation', not.where);
  await ask(router, { text: 'convert dollars to euros', tenant: t, expect: 'miss' });
  const back = await ask(router, { text: 'convert euros to dollars', tenant: t, expect: 'miss' });
  assert.equal(back.headers['x-semrouter-cache-rejected'], 'direction', back.where);
  await ask(router, { text: 'How do I get from Paris to London by train?', tenant: t, expect: 'miss' });
  const trip = await ask(router, { text: 'How do I get from London to Paris by train?', tenant: t, expect: 'miss' });
  assert.equal(trip.headers['x-semrouter-cache-rejected'], 'direction', trip.where);

  const d = deltaOf(m0, await metrics());
  assert.equal(d('semrouter_cache_hits_total', { tier: 'semantic' }), 1);
  assert.equal(d('semrouter_cache_hits_total', { tier: 'exact' }), 1);
  assert.equal(d('semrouter_cache_verifier_rejections_total', { reason: 'numbers' }), 1);
  assert.equal(d('semrouter_cache_verifier_rejections_total', { reason: 'negation' }), 1);
  assert.equal(d('semrouter_cache_verifier_rejections_total', { reason: 'direction' }), 2);
});

test('the scope: tenant from x-tenant-id, then the API key, then the body user', async () => {
  const q = 'How many bones are in the adult human body?';
  // x-tenant-id
  const a = await ask(router, { text: q, tenant: 'alpha', expect: 'miss', mock: { tokens: 1 } });
  await ask(router, { text: q, tenant: 'beta', expect: 'miss', mock: { tokens: 2 } });
  const a2 = await ask(router, { text: q, tenant: 'alpha', expect: 'hit' });
  assert.equal(content(a2), content(a));
  // The header wins over the API key.
  await ask(router, { text: q, tenant: 'alpha', headers: { authorization: 'Bearer sk-other' }, expect: 'hit' });
  // The API key (a hash of the Authorization header).
  await ask(router, { text: q, headers: { authorization: 'Bearer sk-key-one' }, expect: 'miss' });
  await ask(router, { text: q, headers: { authorization: 'Bearer sk-key-two' }, expect: 'miss' });
  await ask(router, { text: q, headers: { authorization: 'Bearer sk-key-one' }, expect: 'hit' });
  // The API key wins over the body's user.
  await ask(router, { text: q, headers: { authorization: 'Bearer sk-key-one' }, user: 'zed', expect: 'hit' });
  // The body's user.
  await ask(router, { text: q, user: 'u1', expect: 'miss' });
  await ask(router, { text: q, user: 'u2', expect: 'miss' });
  await ask(router, { text: q, user: 'u1', expect: 'hit' });
  // No tenant at all is a scope of its own.
  await ask(router, { text: q, expect: 'miss' });
  await ask(router, { text: q, expect: 'hit' });

  const list = await request(`${router.adminUrl}/api/v1/cache?limit=1000`);
  assert.equal(list.status, 200, list.text);
  const mine = list.json.entries.filter((e) => e.text === q);
  const tenants = mine.map((e) => e.tenant).sort();
  assert.equal(mine.length, 7, JSON.stringify(mine));
  assert.deepEqual(tenants.filter((x) => !x.startsWith('key:')), ['', 'hdr:alpha', 'hdr:beta', 'user:u1', 'user:u2']);
  const keys = tenants.filter((x) => x.startsWith('key:'));
  assert.equal(keys.length, 2);
  assert.notEqual(keys[0], keys[1]);
  for (const k of keys) assert.doesNotMatch(k, /sk-key/, 'the API key itself is not shown');
});

test('the scope: earlier messages byte for byte, model, decision and answer-changing parameters', async () => {
  const t = 'scope';
  const q = 'Summarise the plot of Hamlet in one sentence.';
  const sys = (s) => [{ role: 'system', content: s }, ...user(q)];
  await ask(router, { text: q, tenant: t, expect: 'miss' });
  await ask(router, { messages: sys('You are terse.'), tenant: t, expect: 'miss' });
  await ask(router, { messages: sys('You are verbose.'), tenant: t, expect: 'miss' });
  await ask(router, { messages: sys('You are terse. '), tenant: t, expect: 'miss' }); // one byte more
  await ask(router, { messages: sys('You are terse.'), tenant: t, expect: 'hit' });
  // Earlier turns are part of the scope too.
  const history = (reply) => [...user('Hello'), { role: 'assistant', content: reply }, ...user(q)];
  await ask(router, { messages: history('Hi!'), tenant: t, expect: 'miss' });
  await ask(router, { messages: history('Hello there!'), tenant: t, expect: 'miss' });
  await ask(router, { messages: history('Hi!'), tenant: t, expect: 'hit' });
  // The model, and the decision (the same model through model "auto" lands in decision default).
  await ask(router, { text: q, tenant: t, model: 'other', expect: 'miss' });
  const viaAuto = await ask(router, { text: q, tenant: t, model: 'auto', expect: 'miss' });
  assert.equal(viaAuto.headers['x-semrouter-decision'], 'default');
  assert.equal(viaAuto.headers['x-semrouter-model'], 'small');
  await ask(router, { text: q, tenant: t, model: 'auto', expect: 'hit' });
  await ask(router, { text: q, tenant: t, expect: 'hit' });
  // Answer-changing parameters: each value its own scope.
  const tool = { type: 'function', function: { name: 'lookup', description: 'Look a thing up', parameters: { type: 'object', properties: {} } } };
  const variants = [
    { tools: [tool] },
    { tools: [tool], tool_choice: 'none' },
    { response_format: { type: 'json_object' } },
    { n: 1 },
    { logprobs: false },
    { stop: ['\n\n'] },
    { seed: 7 },
    { seed: 8 },
    { top_p: 0.5 },
  ];
  for (const v of variants) await ask(router, { text: q, tenant: t, ...v, expect: 'miss' });
  for (const v of variants) await ask(router, { text: q, tenant: t, ...v, expect: 'hit' });
  // The unscoped original still hits.
  await ask(router, { text: q, tenant: t, expect: 'hit' });
  // Log-probabilities and audio are parts the cache does not keep: such requests skip it.
  for (const v of [{ logprobs: true }, { logprobs: true, top_logprobs: 2 }, { audio: { voice: 'alloy', format: 'wav' } }]) {
    const r = await ask(router, { text: q, tenant: t, ...v, expect: 'bypass' });
    assert.equal(r.headers['x-semrouter-cache-reason'], 'unsupported');
  }
});

// The latest user turn's image, file and audio parts are part of the scope: "What is in this
// image?" about a dog must not get the answer about a cat.
test(
  'the scope: the non-text parts of the latest user turn (images, files, audio) are part of the key',
  async () => {
    const t = 'parts';
    const img = (url) => [
      { type: 'text', text: 'What is in this image?' },
      { type: 'image_url', image_url: { url } },
    ];
    const user1 = (content) => [{ role: 'user', content }];
    await ask(router, { messages: user1(img('https://example.com/cat.png')), tenant: t, expect: 'miss' });
    await ask(router, { messages: user1(img('https://example.com/cat.png')), tenant: t, expect: 'hit' });
    await ask(router, { messages: user1(img('https://example.com/dog.png')), tenant: t, expect: 'miss' });
    await ask(router, { text: 'What is in this image?', tenant: t, expect: 'miss' });
    const audio = (data) => [
      { type: 'text', text: 'Transcribe this recording' },
      { type: 'input_audio', input_audio: { data, format: 'wav' } },
    ];
    await ask(router, { messages: user1(audio('UklGRiQAAABXQVZF')), tenant: t, expect: 'miss' });
    await ask(router, { messages: user1(audio('UklGRiQBBBBXQVZF')), tenant: t, expect: 'miss' });
  },
);

test('max_tokens: a cached answer longer than the request allows does not hit', async () => {
  const t = 'maxtok';
  const q = 'Name the planets of the solar system.';
  const first = await ask(router, { text: q, tenant: t, expect: 'miss', mock: { tokens: 6 } });
  assert.equal(first.json.usage.completion_tokens, 6);
  // (The mock ignores max_tokens: the answers these misses store are 6 tokens long again.)
  await ask(router, { text: q, tenant: t, max_tokens: 3, expect: 'miss', mock: { tokens: 6 } });
  await ask(router, { text: q, tenant: t, max_completion_tokens: 5, expect: 'miss', mock: { tokens: 6 } });
  const fits = await ask(router, { text: q, tenant: t, max_tokens: 6, expect: 'hit' });
  assert.equal(fits.json.usage.completion_tokens, 6);
  const big = await ask(router, { text: q, tenant: t, max_tokens: 500, expect: 'hit' });
  assert.ok(big.json.usage.completion_tokens <= 500);
  await ask(router, { text: q, tenant: t, expect: 'hit' });
});

test('client opt-outs: no-store, no-cache, the bypass header and a high temperature', async () => {
  const t = 'optout';
  const m0 = await metrics();
  // no-store: no lookup and nothing stored.
  const ns = await ask(router, { text: 'Who painted the Mona Lisa?', tenant: t, headers: { 'cache-control': 'no-store' }, expect: 'bypass' });
  assert.equal(ns.headers['x-semrouter-cache-reason'], 'no-store');
  await ask(router, { text: 'Who painted the Mona Lisa?', tenant: t, expect: 'miss' });
  // Once stored, no-cache still skips the lookup.
  const nc = await ask(router, { text: 'Who painted the Mona Lisa?', tenant: t, headers: { 'cache-control': 'no-cache' }, expect: 'bypass' });
  assert.equal(nc.headers['x-semrouter-cache-reason'], 'no-cache');
  // no-cache stores the fresh answer: a later normal request hits it.
  const fresh = await ask(router, {
    text: 'What is the speed of light in a vacuum?',
    tenant: t,
    headers: { 'cache-control': 'no-cache' },
    expect: 'bypass',
    mock: { tokens: 5 },
  });
  const later = await ask(router, { text: 'What is the speed of light in a vacuum?', tenant: t, expect: 'hit' });
  assert.equal(content(later), content(fresh));
  // The bypass header: neither read nor written; "0" is not a bypass.
  const bh = await ask(router, {
    text: 'How deep is the Mariana Trench?',
    tenant: t,
    headers: { 'x-semrouter-cache-bypass': '1' },
    expect: 'bypass',
  });
  assert.equal(bh.headers['x-semrouter-cache-reason'], 'header');
  await ask(router, { text: 'How deep is the Mariana Trench?', tenant: t, expect: 'miss' });
  await ask(router, { text: 'How deep is the Mariana Trench?', tenant: t, headers: { 'x-semrouter-cache-bypass': '1' }, expect: 'bypass' });
  await ask(router, { text: 'How deep is the Mariana Trench?', tenant: t, headers: { 'x-semrouter-cache-bypass': '0' }, expect: 'hit' });
  // Temperature above cache.max_temperature (1.0): neither read nor written.
  const hot = await ask(router, { text: 'Write a haiku about autumn leaves.', tenant: t, temperature: 1.5, expect: 'bypass' });
  assert.equal(hot.headers['x-semrouter-cache-reason'], 'temperature');
  await ask(router, { text: 'Write a haiku about autumn leaves.', tenant: t, expect: 'miss' });
  await ask(router, { text: 'Write a haiku about autumn leaves.', tenant: t, temperature: 1.5, expect: 'bypass' });
  await ask(router, { text: 'Write a haiku about autumn leaves.', tenant: t, temperature: 1.0, expect: 'hit' });

  const d = deltaOf(m0, await metrics());
  assert.equal(d('semrouter_cache_lookups_total', { decision: 'passthrough', outcome: 'bypass' }), 7);
  assert.equal(d('semrouter_cache_lookups_total', { decision: 'passthrough', outcome: 'hit' }), 3);
  assert.equal(d('semrouter_cache_lookups_total', { decision: 'passthrough', outcome: 'miss' }), 3);
  // Stored: the three misses and the no-cache answers (2); not no-store, header or temperature.
  assert.equal(d('semrouter_cache_stores_total', { result: 'stored' }), 5);
});

test('decision plugins: caching off, and a stricter similarity', async () => {
  const t = 'plugins';
  // plugins.cache.enabled false: no cache header, every repeat reaches the upstream.
  for (let i = 0; i < 2; ++i) {
    const r = await ask(router, { text: 'How long does a giraffe sleep?', tenant: t, model: 'auto' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-semrouter-decision'], 'uncached');
    assert.equal(r.headers['x-semrouter-cache'], undefined, r.where);
    assert.equal(r.called, 1, r.where);
  }
  // plugins.cache.similarity 0.95: a paraphrase that hits at the global 0.6 misses in `strict`.
  const a = 'How fast can an emperor penguin swim?';
  const b = 'What is the swimming speed of an emperor penguin?';
  const s1 = await ask(router, { text: a, tenant: t, model: 'auto', expect: 'miss' });
  assert.equal(s1.headers['x-semrouter-decision'], 'strict');
  await ask(router, { text: b, tenant: t, model: 'auto', expect: 'miss' });
  await ask(router, { text: a, tenant: t, model: 'auto', expect: 'hit' });
  await ask(router, { text: a, tenant: `${t}-loose`, expect: 'miss' });
  const loose = await ask(router, { text: b, tenant: `${t}-loose`, expect: 'hit' });
  assert.ok(Number(loose.headers['x-semrouter-cache-similarity']) < 0.95, loose.where);
});

test('decision plugins: with the cache section off, a decision can turn caching on for itself', async () => {
  const r = await h.startRouter(
    baseConfig(
      mock.url,
      { enabled: false },
      `signals: {keywords: [{name: kw, keywords: [cheetah]}]}
decisions:
  - {name: cached, rules: {keyword: kw}, models: [{model: small}], plugins: {cache: {enabled: true}}}
`,
    ),
    { name: 'optin' },
  );
  await ask(r, { text: 'How fast is a cheetah?', model: 'auto', expect: 'miss' });
  const hit = await ask(r, { text: 'How fast is a cheetah?', model: 'auto', expect: 'hit' });
  assert.equal(hit.headers['x-semrouter-decision'], 'cached');
  for (const [text, model] of [
    ['How fast is a horse?', 'auto'], // decision default
    ['How fast is a horse?', 'small'], // passthrough
  ]) {
    for (let i = 0; i < 2; ++i) {
      const res = await ask(r, { text, model });
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-semrouter-cache'], undefined, res.where);
      assert.equal(res.called, 1, res.where);
    }
  }
});

test('ttl: an entry expires after ttl_s (globally and per decision)', async () => {
  const ttlRouter = await h.startRouter(baseConfig(mock.url, { enabled: true, backend: 'memory', ttl_s: 3 }), { name: 'ttl' });
  // ttl_s 3, not 1: the hit must come before the entry expires, on a loaded machine too.
  const check = async (r, text, model) => {
    const t0 = performance.now();
    const first = await ask(r, { text, tenant: 'ttl', model, expect: 'miss' });
    const hit = await ask(r, { text, tenant: 'ttl', model, expect: 'hit' });
    const entry = await request(`${r.adminUrl}/api/v1/cache/entries/${hit.headers['x-semrouter-cache-entry']}`);
    assert.equal(entry.status, 200, entry.text);
    assert.equal(entry.json.expires_ms - entry.json.created_ms, 3000);
    assert.equal(entry.json.decision, first.headers['x-semrouter-decision']);
    await waitFor(
      async () => {
        const r2 = await r.chat({ model, messages: user(text) }, { headers: { 'x-tenant-id': 'ttl' } });
        assert.equal(r2.status, 200);
        return r2.headers['x-semrouter-cache'] === 'miss';
      },
      { timeoutMs: 8000, intervalMs: 100, what: `the entry for "${text}" to expire` },
    );
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 3000, `expired after ${elapsed.toFixed(0)} ms, before ttl_s 3`);
    assert.ok((metricValue(await metrics(r), 'semrouter_cache_evictions_total', { reason: 'ttl' }) ?? 0) >= 1);
  };
  await check(ttlRouter, 'What is the population of Tokyo?', 'small');
  await check(router, 'How fast can a zebra run?', 'auto'); // decision brief: plugins.cache.ttl_s 3
  // Outside decision brief the main router's entries live for cache.ttl_s, an hour.
  await ask(router, { text: 'What is the population of Tokyo?', tenant: 'ttl', expect: 'miss' });
  const hit = await ask(router, { text: 'What is the population of Tokyo?', tenant: 'ttl', expect: 'hit' });
  const e = await request(`${router.adminUrl}/api/v1/cache/entries/${hit.headers['x-semrouter-cache-entry']}`);
  assert.equal(e.json.expires_ms - e.json.created_ms, 3600_000);
});

test('only complete, successful answers are stored', async () => {
  const t = 'complete';
  const m0 = await metrics();
  // An upstream error is not stored; the next good answer is.
  const err = await ask(router, { text: 'What is the tallest tree species?', tenant: t, mock: { status: 503 } });
  assert.ok(err.status >= 500, err.where);
  await ask(router, { text: 'What is the tallest tree species?', tenant: t, expect: 'miss' });
  await ask(router, { text: 'What is the tallest tree species?', tenant: t, expect: 'hit' });
  // finish_reason "length": a cut-off answer is not stored.
  for (let i = 0; i < 2; ++i) {
    const before = truncCalls;
    const r = await router.chat({ model: 'trunc', messages: user('Tell me a long story about dragons.') }, { headers: { 'x-tenant-id': t } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.choices[0].finish_reason, 'length');
    assert.equal(r.headers['x-semrouter-cache'], 'miss');
    assert.equal(truncCalls, before + 1);
  }
  // A client that hangs up mid-stream stores nothing.
  const aborted0 = (await mock.stats()).streams_aborted;
  const body = {
    model: 'small',
    stream: true,
    messages: user('Explain how a rainbow forms.'),
    mock: { tokens: 20, token_delay_ms: 50 },
  };
  const cut = await stream(`${router.url}/v1/chat/completions`, body, { headers: { 'x-tenant-id': t }, abortAfterEvents: 2 });
  assert.equal(cut.status, 200);
  assert.equal(cut.headers['x-semrouter-cache'], 'miss');
  assert.ok(cut.abortedByClient);
  await waitFor(async () => (await mock.stats()).streams_aborted > aborted0, { what: 'the router to hang up on the upstream' });
  await ask(router, { text: 'Explain how a rainbow forms.', tenant: t, expect: 'miss' });
  // A stream the upstream breaks off is not stored either.
  const broken = await stream(
    `${router.url}/v1/chat/completions`,
    { model: 'small', stream: true, messages: user('Why do cats purr?'), mock: { tokens: 6, drop_after: 2 } },
    { headers: { 'x-tenant-id': t } },
  );
  assert.equal(broken.status, 200);
  assert.ok(!broken.text.includes('[DONE]'), broken.text);
  await ask(router, { text: 'Why do cats purr?', tenant: t, expect: 'miss' });
  // A complete stream is captured while relayed and stored when it ends.
  const s0 = metricValue(await metrics(), 'semrouter_cache_stores_total', { result: 'stored' }) ?? 0;
  const full = await stream(
    `${router.url}/v1/chat/completions`,
    { model: 'small', stream: true, messages: user('How do bees make honey?'), mock: { tokens: 4, token_delay_ms: 5 } },
    { headers: { 'x-tenant-id': t } },
  );
  assert.equal(full.status, 200);
  assert.equal(full.headers['x-semrouter-cache'], 'miss');
  assert.ok(full.complete);
  const streamed = full.events
    .filter((e) => e.data !== '[DONE]')
    .map((e) => JSON.parse(e.data).choices[0]?.delta?.content ?? '')
    .join('');
  await waitFor(async () => (metricValue(await metrics(), 'semrouter_cache_stores_total', { result: 'stored' }) ?? 0) > s0, {
    what: 'the streamed answer to be stored',
  });
  const hit = await ask(router, { text: 'How do bees make honey?', tenant: t, expect: 'hit' });
  assert.equal(content(hit), streamed);
  assert.match(streamed, / tok3$/);

  const d = deltaOf(m0, await metrics());
  assert.equal(d('semrouter_cache_stores_total', { result: 'length' }), 2);
  assert.ok(d('semrouter_cache_stores_total', { result: 'stored' }) === 4, 'stored: tree, rainbow, cats, bees');
});

function parseSse(res) {
  return res.events.map((e) => (e.data === '[DONE]' ? '[DONE]' : JSON.parse(e.data)));
}

function checkHitStream(res, { text, usage }) {
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^text\/event-stream/);
  assert.equal(res.headers['x-semrouter-cache'], 'hit');
  assert.ok(res.complete, 'the response ended normally');
  const events = parseSse(res);
  assert.equal(events.at(-1), '[DONE]', res.text);
  assert.equal(events.filter((e) => e === '[DONE]').length, 1);
  const chunks = events.slice(0, -1);
  for (const c of chunks) {
    assert.equal(c.object, 'chat.completion.chunk', JSON.stringify(c));
    assert.equal(c.id, chunks[0].id);
  }
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const finishAt = chunks.findIndex((c) => c.choices[0]?.finish_reason);
  assert.ok(finishAt > 0, res.text);
  assert.equal(chunks[finishAt].choices[0].finish_reason, 'stop');
  const joined = chunks.slice(0, finishAt + 1).map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(joined, text);
  const usageChunks = chunks.filter((c) => c.usage);
  if (usage) {
    assert.equal(usageChunks.length, 1, res.text);
    assert.equal(chunks.at(-1), usageChunks[0], 'the usage chunk comes last');
    assert.deepEqual(usageChunks[0].choices, []);
    assert.equal(usageChunks[0].usage.completion_tokens, usage.completion_tokens);
    assert.equal(usageChunks[0].usage.prompt_tokens, usage.prompt_tokens);
  } else {
    assert.equal(usageChunks.length, 0, `no usage chunk unless asked: ${res.text}`);
    assert.equal(finishAt, chunks.length - 1);
  }
}

test('a streaming request hits an entry a non-streaming one filled, as valid SSE', async () => {
  const t = 'sse';
  const q = 'What causes the seasons on Earth?';
  const first = await ask(router, { text: q, tenant: t, expect: 'miss', mock: { tokens: 5 } });
  const calls = await upstreamCalls();
  const url = `${router.url}/v1/chat/completions`;
  const plain = await stream(url, { model: 'small', stream: true, messages: user(q) }, { headers: { 'x-tenant-id': t } });
  checkHitStream(plain, { text: content(first) });
  const withUsage = await stream(
    url,
    { model: 'small', stream: true, stream_options: { include_usage: true }, messages: user('what causes the seasons on earth') },
    { headers: { 'x-tenant-id': t } },
  );
  checkHitStream(withUsage, { text: content(first), usage: first.json.usage });
  assert.equal(await upstreamCalls(), calls, 'hits do not reach the upstream');
});

test("an entry stored from a stream that did not ask for usage keeps the answer's usage for every later hit", async () => {
  // The router asks the upstream for the usage the client did not ask for (and hides it from that
  // client), so the entry has it: plain, streamed-with-usage and Messages hits all report it.
  const t = 'stream-usage';
  const q = 'Tell me quickly: how do cats purr?';
  const url = `${router.url}/v1/chat/completions`;
  const s0 = metricValue(await metrics(), 'semrouter_cache_stores_total', { result: 'stored' }) ?? 0;
  const first = await stream(url, { model: 'small', stream: true, messages: user(q), mock: { tokens: 5 } }, { headers: { 'x-tenant-id': t } });
  assert.equal(first.status, 200);
  assert.equal(first.headers['x-semrouter-cache'], 'miss');
  assert.equal(first.text.includes('"usage"'), false, `no usage chunk unless asked: ${first.text}`);
  const text = parseSse(first)
    .filter((e) => e !== '[DONE]')
    .map((e) => e.choices[0]?.delta?.content ?? '')
    .join('');
  await waitFor(async () => (metricValue(await metrics(), 'semrouter_cache_stores_total', { result: 'stored' }) ?? 0) > s0, {
    what: 'the streamed answer to be stored',
  });
  const plain = await ask(router, { text: q, tenant: t, expect: 'hit' });
  assert.equal(content(plain), text);
  assert.equal(plain.json.usage.completion_tokens, 5, plain.text);
  assert.ok(plain.json.usage.prompt_tokens > 0, plain.text);
  const withUsage = await stream(
    url,
    { model: 'small', stream: true, stream_options: { include_usage: true }, messages: user(q) },
    { headers: { 'x-tenant-id': t } },
  );
  checkHitStream(withUsage, { text, usage: plain.json.usage });
  const msg = await request(`${router.url}/v1/messages`, {
    method: 'POST',
    json: { model: 'small', max_tokens: 300, messages: user(q) },
    headers: { 'x-tenant-id': t },
  });
  assert.equal(msg.status, 200, msg.text);
  assert.equal(msg.headers['x-semrouter-cache'], 'hit', msg.text);
  assert.equal(msg.json.usage.output_tokens, 5, msg.text);
  assert.equal(msg.json.usage.input_tokens, plain.json.usage.prompt_tokens, msg.text);
  // A Responses client's hit echoes its own request's parameters, as a forwarded answer does.
  const resp = await request(`${router.url}/v1/responses`, {
    method: 'POST',
    json: { model: 'small', input: q, max_output_tokens: 300, metadata: { run: 'c1' }, user: 'u-c1' },
    headers: { 'x-tenant-id': t },
  });
  assert.equal(resp.status, 200, resp.text);
  assert.equal(resp.headers['x-semrouter-cache'], 'hit', resp.text);
  assert.equal(resp.json.output_text ?? resp.json.output[0].content[0].text, text, resp.text);
  assert.equal(resp.json.max_output_tokens, 300, resp.text);
  assert.deepEqual(resp.json.metadata, { run: 'c1' }, resp.text);
  assert.equal(resp.json.user, 'u-c1', resp.text);
  assert.equal(resp.json.usage.output_tokens, 5, resp.text);
});

test('the openai SDK reassembles a streamed hit', async () => {
  const OpenAI = loadOpenAI();
  const client = new OpenAI({
    baseURL: `${router.url}/v1`,
    apiKey: 'sk-sdk',
    maxRetries: 0,
    timeout: 10_000,
    defaultHeaders: { 'x-tenant-id': 'sdk' },
  });
  const messages = user('Why is the ocean salty?');
  const { data: first, response: r1 } = await client.chat.completions
    .create({ model: 'small', messages, mock: { tokens: 6 } })
    .withResponse();
  assert.equal(r1.headers.get('x-semrouter-cache'), 'miss');
  const calls = await upstreamCalls();
  const { data: s, response: r2 } = await client.chat.completions
    .create({ model: 'small', messages, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  assert.equal(r2.headers.get('x-semrouter-cache'), 'hit');
  const chunks = [];
  for await (const chunk of s) chunks.push(chunk);
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, first.choices[0].message.content);
  assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason, 'stop');
  assert.equal(chunks.at(-1).usage?.completion_tokens, first.usage.completion_tokens);
  for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
  // And the non-streaming hit through the SDK.
  const again = await client.chat.completions.create({ model: 'small', messages });
  assert.equal(again.choices[0].message.content, first.choices[0].message.content);
  assert.equal(await upstreamCalls(), calls, 'hits do not reach the upstream');
});

test('eviction: max_entries with lru evicts the least recently used, with fifo the oldest', async () => {
  const A = 'What is the boiling point of water at sea level?';
  const B = 'Who wrote the novel Moby Dick?';
  const C = 'How many legs does a spider have?';
  const [lru, fifo] = await Promise.all([
    h.startRouter(baseConfig(mock.url, { enabled: true, backend: 'memory', max_entries: 2, eviction: 'lru' }), { name: 'lru' }),
    h.startRouter(baseConfig(mock.url, { enabled: true, backend: 'memory', max_entries: 2, eviction: 'fifo' }), { name: 'fifo' }),
  ]);
  for (const r of [lru, fifo]) {
    await ask(r, { text: A, expect: 'miss' });
    await ask(r, { text: B, expect: 'miss' });
    await ask(r, { text: A, expect: 'hit' });
    await ask(r, { text: C, expect: 'miss' });
    const list = await request(`${r.adminUrl}/api/v1/cache`);
    assert.equal(list.json.total, 2, list.text);
    const m = await metrics(r);
    assert.equal(metricValue(m, 'semrouter_cache_evictions_total', { reason: 'capacity' }), 1);
    assert.equal(metricValue(m, 'semrouter_cache_entries'), 2);
  }
  // lru: A was used after B, so B went.
  assert.deepEqual(
    (await request(`${lru.adminUrl}/api/v1/cache`)).json.entries.map((e) => e.text).sort(),
    [A, C].sort(),
  );
  await ask(lru, { text: A, expect: 'hit' });
  await ask(lru, { text: C, expect: 'hit' });
  await ask(lru, { text: B, expect: 'miss' });
  // fifo: A was stored first, so A went, its hit notwithstanding.
  assert.deepEqual(
    (await request(`${fifo.adminUrl}/api/v1/cache`)).json.entries.map((e) => e.text).sort(),
    [B, C].sort(),
  );
  await ask(fifo, { text: B, expect: 'hit' });
  await ask(fifo, { text: C, expect: 'hit' });
  await ask(fifo, { text: A, expect: 'miss' });
});

// With eviction lfu a full cache evicts the least frequently used resident entry, never the
// answer being stored (a new entry has 0 hits and would otherwise be its own victim).
test(
  'eviction: lfu evicts the least frequently used resident entry, not the answer being stored',
  async () => {
    const A = 'What is the boiling point of water at sea level?';
    const B = 'Who wrote the novel Moby Dick?';
    const C = 'How many legs does a spider have?';
    const lfu = await h.startRouter(baseConfig(mock.url, { enabled: true, backend: 'memory', max_entries: 2, eviction: 'lfu' }), {
      name: 'lfu',
    });
    await ask(lfu, { text: A, expect: 'miss' });
    await ask(lfu, { text: B, expect: 'miss' });
    await ask(lfu, { text: A, expect: 'hit' });
    await ask(lfu, { text: A, expect: 'hit' });
    await ask(lfu, { text: B, expect: 'hit' });
    await ask(lfu, { text: C, expect: 'miss' }); // stored: B (1 hit) goes, A (2 hits) stays
    const texts = (await request(`${lfu.adminUrl}/api/v1/cache`)).json.entries.map((e) => e.text).sort();
    assert.deepEqual(texts, [A, C].sort(), 'the entries after storing C');
    await ask(lfu, { text: C, expect: 'hit' });
    await ask(lfu, { text: A, expect: 'hit' });
  },
);

test('the admin API lists, shows, looks up, deletes and flushes entries', async () => {
  const r = await h.startRouter(baseConfig(mock.url, { enabled: true, backend: 'memory' }), { name: 'admin' });
  const api = `${r.adminUrl}/api/v1/cache`;
  const a1 = await ask(r, { text: 'What is the capital of France?', tenant: 'alpha', expect: 'miss', mock: { tokens: 2 } });
  await ask(r, { text: 'How do vaccines work?', tenant: 'alpha', expect: 'miss' });
  await ask(r, { text: 'Who discovered penicillin?', tenant: 'beta', expect: 'miss' });
  await ask(r, { text: 'What is photosynthesis?', expect: 'miss' });
  const id = (await ask(r, { text: 'What is the capital of France?', tenant: 'alpha', expect: 'hit' })).headers[
    'x-semrouter-cache-entry'
  ];

  const all = await request(api);
  assert.equal(all.status, 200, all.text);
  assert.equal(all.json.backend, 'memory');
  assert.equal(all.json.total, 4);
  assert.equal(all.json.offset, 0);
  assert.ok(all.json.limit >= 4);
  assert.equal(all.json.entries.length, 4);
  assert.deepEqual(all.json.entries.map((e) => e.text), [
    'What is photosynthesis?',
    'Who discovered penicillin?',
    'How do vaccines work?',
    'What is the capital of France?',
  ], 'newest first');
  for (const e of all.json.entries) {
    assert.deepEqual(Object.keys(e).sort(), ['bytes', 'created_ms', 'decision', 'expires_ms', 'hits', 'id', 'model', 'tenant', 'text']);
    assert.match(e.id, HEX16);
    assert.equal(e.decision, 'passthrough');
    assert.equal(e.model, 'small');
    assert.ok(e.bytes > 0);
    assert.ok(Math.abs(e.created_ms - Date.now()) < 60_000, `created_ms ${e.created_ms} is a Unix time in ms`);
    assert.equal(e.expires_ms - e.created_ms, 3600_000);
  }
  const france = all.json.entries.find((e) => e.text === 'What is the capital of France?');
  assert.equal(france.id, id);
  assert.equal(france.tenant, 'hdr:alpha');
  assert.equal(france.hits, 1);
  // Paging and the tenant filter.
  const p1 = await request(`${api}?offset=0&limit=2`);
  const p2 = await request(`${api}?offset=2&limit=2`);
  assert.equal(p1.json.total, 4);
  assert.equal(p1.json.limit, 2);
  assert.equal(p2.json.offset, 2);
  assert.deepEqual([...p1.json.entries, ...p2.json.entries].map((e) => e.id), all.json.entries.map((e) => e.id));
  const alpha = await request(`${api}?tenant=hdr:alpha`);
  assert.equal(alpha.json.total, 2);
  assert.ok(alpha.json.entries.every((e) => e.tenant === 'hdr:alpha'));
  // One entry, with its answer.
  const one = await request(`${api}/entries/${id}`);
  assert.equal(one.status, 200, one.text);
  assert.equal(one.json.id, id);
  assert.equal(one.json.text, 'What is the capital of France?');
  assert.equal(one.json.answer.content, content(a1));
  assert.equal((await request(`${api}/entries/0123456789abcdef`)).status, 404);
  // Lookup: the nearest entries with their similarity and the verifier's verdict.
  const near = await request(`${api}/lookup`, { method: 'POST', json: { text: 'Which city is the capital of France?', tenant: 'hdr:alpha', k: 2 } });
  assert.equal(near.status, 200, near.text);
  assert.ok(near.json.nearest.length >= 1 && near.json.nearest.length <= 2, near.text);
  assert.equal(near.json.nearest[0].id, id);
  assert.ok(near.json.nearest[0].similarity > 0.6 && near.json.nearest[0].similarity < 1, near.text);
  assert.equal(near.json.nearest[0].verifier, 'pass');
  assert.ok(near.json.nearest.every((e) => e.tenant === 'hdr:alpha'), near.text);
  const germany = await request(`${api}/lookup`, { method: 'POST', json: { text: 'What is the capital of Germany?', tenant: 'hdr:alpha' } });
  const g = germany.json.nearest.find((e) => e.id === id);
  assert.ok(g, germany.text);
  assert.notEqual(g.verifier, 'pass');
  assert.equal((await request(`${api}/lookup`, { method: 'POST', json: { k: 2 } })).status, 400);
  // Delete one entry: the next request misses.
  const del = await request(`${api}/entries/${id}`, { method: 'DELETE' });
  assert.equal(del.status, 200, del.text);
  assert.equal(del.json.deleted, 1);
  assert.equal((await request(`${api}/entries/${id}`, { method: 'DELETE' })).status, 404);
  assert.equal((await request(`${api}/entries/${id}`)).status, 404);
  await ask(r, { text: 'What is the capital of France?', tenant: 'alpha', expect: 'miss' });
  // Delete a tenant's entries: needs ?tenant=.
  assert.equal((await request(api, { method: 'DELETE' })).status, 400);
  const dt = await request(`${api}?tenant=hdr:beta`, { method: 'DELETE' });
  assert.equal(dt.status, 200, dt.text);
  assert.equal(dt.json.deleted, 1);
  await ask(r, { text: 'Who discovered penicillin?', tenant: 'beta', expect: 'miss' });
  await ask(r, { text: 'How do vaccines work?', tenant: 'alpha', expect: 'hit' });
  // Flush everything.
  const total = (await request(api)).json.total;
  assert.equal(total, 4);
  const fl = await request(`${api}/flush`, { method: 'POST' });
  assert.equal(fl.status, 200, fl.text);
  assert.equal(fl.json.deleted, total);
  assert.equal((await request(api)).json.total, 0);
  assert.equal(metricValue(await metrics(r), 'semrouter_cache_entries'), 0);
  await ask(r, { text: 'What is photosynthesis?', expect: 'miss' });
  await ask(r, { text: 'How do vaccines work?', tenant: 'alpha', expect: 'miss' });
});

test('without a cache section the admin endpoints answer 404 and responses carry no cache header', async () => {
  const r = await h.startRouter(
    `server: {workers: 1, reload_poll_ms: 0}
backends: [{name: m, url: "${mock.url}"}]
models: [{name: small, backends: [m]}]
default_model: small
`,
    { name: 'nocache' },
  );
  const api = `${r.adminUrl}/api/v1/cache`;
  for (const [method, url, json] of [
    ['GET', api],
    ['DELETE', `${api}?tenant=x`],
    ['GET', `${api}/entries/0123456789abcdef`],
    ['DELETE', `${api}/entries/0123456789abcdef`],
    ['POST', `${api}/flush`],
    ['POST', `${api}/lookup`, { text: 'x' }],
  ]) {
    const res = await request(url, { method, json });
    assert.equal(res.status, 404, `${method} ${url}: ${res.status} ${res.text}`);
  }
  for (let i = 0; i < 2; ++i) {
    const res = await ask(r, { text: 'What is the capital of France?' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-semrouter-cache'], undefined);
    assert.equal(res.called, 1);
  }
});

test('cache metrics: lookups, hits by tier, rejections, duration, stores, size, health, saved tokens', async () => {
  const t = 'metrics';
  const m0 = await metrics();
  await ask(router, { text: 'How do I reverse a linked list in Python?', tenant: t, expect: 'miss', mock: { tokens: 4 } });
  await ask(router, { text: 'How do I reverse a linked list in Python?', tenant: t, expect: 'hit' });
  await ask(router, { text: 'How can I reverse a linked list using Python?', tenant: t, expect: 'hit' });
  await ask(router, { text: 'convert 5 kg to pounds', tenant: t, expect: 'miss' });
  await ask(router, { text: 'convert 9 kg to pounds', tenant: t, expect: 'miss' });
  await ask(router, { text: 'convert 9 kg to pounds', tenant: t, headers: { 'cache-control': 'no-store' }, expect: 'bypass' });
  const text = await router.metrics();
  const m1 = parseMetrics(text);
  const d = deltaOf(m0, m1);
  assert.equal(d('semrouter_cache_lookups_total', { decision: 'passthrough', outcome: 'miss' }), 3);
  assert.equal(d('semrouter_cache_lookups_total', { decision: 'passthrough', outcome: 'hit' }), 2);
  assert.equal(d('semrouter_cache_lookups_total', { decision: 'passthrough', outcome: 'bypass' }), 1);
  assert.equal(d('semrouter_cache_hits_total', { tier: 'exact' }), 1);
  assert.equal(d('semrouter_cache_hits_total', { tier: 'semantic' }), 1);
  assert.equal(d('semrouter_cache_verifier_rejections_total', { reason: 'numbers' }), 1);
  assert.equal(d('semrouter_cache_lookup_duration_seconds_count'), 5, 'every lookup that read the cache');
  assert.equal(d('semrouter_cache_stores_total', { result: 'stored' }), 3);
  assert.equal(d('semrouter_cache_saved_tokens_total', { model: 'small' }), 8, 'two hits of a 4-token answer');
  assert.equal(d('semrouter_requests_total', { model: 'small', decision: 'passthrough', status: '200' }), 6);
  assert.equal(d('semrouter_cache_entries'), 3);
  assert.ok(d('semrouter_cache_bytes') > 0);
  assert.equal(metricValue(m1, 'semrouter_cache_backend_up', { backend: 'memory' }), 1);
  const list = await request(`${router.adminUrl}/api/v1/cache?limit=1`);
  assert.equal(metricValue(m1, 'semrouter_cache_entries'), list.json.total);
  for (const [name, type] of [
    ['semrouter_cache_lookups_total', 'counter'],
    ['semrouter_cache_hits_total', 'counter'],
    ['semrouter_cache_verifier_rejections_total', 'counter'],
    ['semrouter_cache_lookup_duration_seconds', 'histogram'],
    ['semrouter_cache_stores_total', 'counter'],
    ['semrouter_cache_entries', 'gauge'],
    ['semrouter_cache_bytes', 'gauge'],
    ['semrouter_cache_evictions_total', 'counter'],
    ['semrouter_cache_backend_up', 'gauge'],
    ['semrouter_cache_saved_tokens_total', 'counter'],
  ]) {
    assert.equal(m1.types[name], type, `# TYPE ${name}`);
  }
});

// ---------------------------------------------------------------------------------------------
// The tool pre-filter

const catalog = JSON.parse(fs.readFileSync(path.join(SOURCE_DIR, 'data/eval/tools_catalog.json'), 'utf8'));
const byName = new Map(catalog.map((t) => [t.function.name, t]));
const pick = (...names) => names.map((n) => {
  const t = byName.get(n);
  assert.ok(t, `no tool ${n} in tools_catalog.json`);
  return t;
});
const TWELVE = pick(
  'search_web',
  'send_email',
  'get_weather',
  'list_files',
  'search_flights',
  'convert_currency',
  'git_status',
  'translate_text',
  'get_weather_forecast',
  'play_music',
  'set_timer',
  'transfer_money',
);

async function withTools(body) {
  const res = await router.chat(
    { model: 'small', ...body },
    { headers: { 'x-tenant-id': 'tools', 'cache-control': 'no-store' } },
  );
  assert.equal(res.status, 200, res.text);
  assert.ok(res.json.mock_echo, `the upstream answered: ${res.text}`);
  return res;
}

// Every tool sent upstream is the client's element byte for byte, in the client's order.
function checkKept(res, sent) {
  const kept = res.json.mock_echo.tools;
  const raw = rawEcho(res.text);
  const names = kept.map((t) => t.function.name);
  const order = names.map((n) => sent.findIndex((t) => t.function.name === n));
  assert.ok(order.every((i) => i >= 0), `kept a tool the client did not send: ${names}`);
  assert.deepEqual(order, [...order].sort((a, b) => a - b), `kept in the client's order: ${names}`);
  for (const t of kept) {
    const mine = sent.find((s) => s.function.name === t.function.name);
    assert.equal(JSON.stringify(t), JSON.stringify(mine));
    assert.ok(raw.includes(JSON.stringify(mine)), `${t.function.name} is not byte-identical upstream`);
  }
  return names;
}

test('tools: more than max_tools keeps the top_k relevant ones, byte for byte', async () => {
  const m0 = await metrics();
  const res = await withTools({ messages: user('will it rain in Paris tomorrow?'), tools: TWELVE });
  assert.equal(res.headers['x-semrouter-tools'], 'kept=5;total=12');
  const names = checkKept(res, TWELVE);
  assert.equal(names.length, 5, names.join(','));
  assert.ok(names.includes('get_weather_forecast'), names.join(','));
  assert.ok(names.includes('get_weather'), names.join(','));
  // A different question keeps different tools.
  const money = await withTools({ messages: user('Send 200 euros from my account to Anna'), tools: TWELVE });
  const moneyNames = checkKept(money, TWELVE);
  assert.equal(moneyNames.length, 5);
  assert.ok(moneyNames.includes('transfer_money'), moneyNames.join(','));
  const d = deltaOf(m0, await metrics());
  assert.equal(d('semrouter_tools_filtered_total', { decision: 'passthrough' }), 2);
  assert.equal(d('semrouter_tools_removed_total', { decision: 'passthrough' }), 14);
});

test('tools: the tool_choice tool and tools already called stay', async () => {
  const choice = await withTools({
    messages: user('will it rain in Paris tomorrow?'),
    tools: TWELVE,
    tool_choice: { type: 'function', function: { name: 'git_status' } },
  });
  const names = checkKept(choice, TWELVE);
  assert.ok(names.includes('git_status'), names.join(','));
  assert.ok(names.includes('get_weather_forecast'), names.join(','));
  assert.equal(choice.headers['x-semrouter-tools'], `kept=${names.length};total=12`);
  assert.ok(names.length === 6, names.join(','));
  assert.deepEqual(choice.json.mock_echo.tool_choice, { type: 'function', function: { name: 'git_status' } });

  const messages = [
    ...user('play something relaxing'),
    {
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'play_music', arguments: '{"query":"relaxing"}' } }],
    },
    { role: 'tool', tool_call_id: 'call_1', content: 'playing' },
    ...user('will it rain in Paris tomorrow?'),
  ];
  const called = await withTools({ messages, tools: TWELVE });
  const calledNames = checkKept(called, TWELVE);
  assert.ok(calledNames.includes('play_music'), calledNames.join(','));
  assert.ok(calledNames.includes('get_weather_forecast'), calledNames.join(','));
  assert.equal(calledNames.length, 6, calledNames.join(','));
  assert.deepEqual(called.json.mock_echo.messages, messages, 'the conversation is untouched');
});

test('tools: at or below max_tools nothing changes', async () => {
  const m0 = await metrics();
  const eight = TWELVE.slice(0, 8);
  const res = await withTools({ messages: user('will it rain in Paris tomorrow?'), tools: eight });
  assert.deepEqual(res.json.mock_echo.tools, eight);
  assert.ok(rawEcho(res.text).includes(JSON.stringify(eight)), 'the tools array is the client bytes');
  const tools = res.headers['x-semrouter-tools'];
  if (tools !== undefined) assert.equal(tools, 'kept=8;total=8');
  const d = deltaOf(m0, await metrics());
  assert.equal(d('semrouter_tools_filtered_total', { decision: 'passthrough' }), 0);
  assert.equal(d('semrouter_tools_removed_total', { decision: 'passthrough' }), 0);
});

test("tools: a decision's plugins.tools overrides the tools section", async () => {
  const m0 = await metrics();
  const res = await withTools({ model: 'auto', messages: user('Do I need an umbrella in Paris tomorrow?'), tools: TWELVE });
  assert.equal(res.headers['x-semrouter-decision'], 'agent');
  assert.equal(res.headers['x-semrouter-tools'], 'kept=2;total=12');
  const names = checkKept(res, TWELVE);
  assert.equal(names.length, 2, names.join(','));
  assert.ok(names.includes('get_weather_forecast') || names.includes('get_weather'), names.join(','));
  // Four tools are more than this decision's max_tools 3 (the section's 8 would keep them all).
  const four = TWELVE.slice(0, 4);
  const small = await withTools({ model: 'auto', messages: user('Do I need an umbrella today?'), tools: four });
  assert.equal(small.headers['x-semrouter-tools'], 'kept=2;total=4');
  assert.equal(checkKept(small, four).length, 2);
  const d = deltaOf(m0, await metrics());
  assert.equal(d('semrouter_tools_filtered_total', { decision: 'agent' }), 2);
  assert.equal(d('semrouter_tools_removed_total', { decision: 'agent' }), 12);
});
