// Reasoning by need through the real gateway on the demo config: the fast path for simple
// questions and thinking (with the effort the need calls for) for proofs and multi-step work in
// any domain, the keyword fixes, short follow-ups that keep the route of the turn they lean on,
// and the reasoning-token and per-decision reasoning metrics.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { setup, request, SOURCE_DIR, parseMetrics, metricValue, waitFor } from './harness.mjs';

const h = setup('reasoning');
let router;

before(async () => {
  const mockA = await h.startMock({ name: 'A', tokens: 3 });
  const mockB = await h.startMock({ name: 'B', tokens: 3 });
  const text = fs
    .readFileSync(path.join(SOURCE_DIR, 'config/default.yaml'), 'utf8')
    .replace('server:\n', 'server:\n  random_seed: 3\n  reload_poll_ms: 0\n')
    // Repeated questions must reach the mock: its usage is what these tests count.
    .replace('cache:\n  enabled: true\n', 'cache:\n  enabled: false\n');
  router = await h.startRouter(text, {
    env: { SEMROUTER_MOCK_A_PORT: String(mockA.port), SEMROUTER_MOCK_B_PORT: String(mockB.port) },
  });
});

const user = (content) => [{ role: 'user', content }];
const chat = (messages, extra = {}) =>
  request(`${router.url}/v1/chat/completions`, { method: 'POST', json: { model: 'auto', messages, ...extra } });

test('simple questions take the fast path; proofs and multi-step calculations think, in any domain', async () => {
  for (const q of ['Why is the sky blue?', 'How many moons does Mars have?', 'What is the boiling point of ethanol?']) {
    const r = await chat(user(q));
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['x-semrouter-reasoning'], /^off/, `${q}: ${JSON.stringify(r.headers)}`);
    assert.ok(Number(r.headers['x-semrouter-reasoning-need']) < 0.5, q);
    assert.equal(r.json.mock_echo.chat_template_kwargs?.enable_thinking ?? r.json.mock_echo.chat_template_kwargs?.thinking, false, q);
  }
  for (const q of [
    'Prove that the square root of 2 is irrational.',
    'A farmer has chickens and cows, 30 heads and 74 legs. How many of each?',
  ]) {
    const r = await chat(user(q));
    assert.match(r.headers['x-semrouter-reasoning'], /^on/, `${q}: ${JSON.stringify(r.headers)}`);
    assert.ok(Number(r.headers['x-semrouter-reasoning-need']) >= 0.5, q);
  }
  // A finance calculation in the business domain: gpt-oss with an effort set by the need.
  const bond = await chat(user('Price a 5-year bond with a 4% coupon when market yields are 5%, and compute its duration'));
  assert.equal(bond.headers['x-semrouter-model'], 'gpt-oss-20b');
  assert.match(bond.headers['x-semrouter-reasoning'], /^on;effort=(medium|high)$/);
  assert.match(bond.json.mock_echo.reasoning_effort, /^(medium|high)$/);
});

test('keywords no longer misfire: the spleen is not code, a greeting is small talk', async () => {
  const spleen = await chat(user('What is the function of the spleen?'));
  assert.notEqual(spleen.headers['x-semrouter-decision'], 'code');
  assert.match(spleen.headers['x-semrouter-decision'], /^(biology|health)$/);
  const hello = await chat(user('Good morning! How is your day going?'));
  assert.equal(hello.headers['x-semrouter-decision'], 'small_talk');
  assert.equal(hello.headers['x-semrouter-model'], 'llama-3.1-8b');
  // Real code still goes to the code decision.
  const code = await chat(user('Write a python function that reverses a list.'));
  assert.equal(code.headers['x-semrouter-decision'], 'code');
});

test('a short follow-up keeps the route of the turn it leans on; a new question does not', async () => {
  const convo = (last) => [
    { role: 'user', content: 'Prove that there are infinitely many prime numbers.' },
    { role: 'assistant', content: 'Suppose there were only finitely many primes p1, ..., pn.' },
    { role: 'user', content: last },
  ];
  const first = await chat(user('Prove that there are infinitely many prime numbers.'));
  const follow = await chat(convo('yes, go on'));
  assert.equal(follow.headers['x-semrouter-model'], first.headers['x-semrouter-model']);
  assert.equal(follow.headers['x-semrouter-decision'], first.headers['x-semrouter-decision']);
  assert.match(follow.headers['x-semrouter-reasoning'], /^on/);
  // The same words alone would not think.
  const alone = await chat(user('yes, go on'));
  assert.doesNotMatch(alone.headers['x-semrouter-reasoning'], /^on/);
  const bye = await chat(convo('Good night!'));
  assert.notEqual(bye.headers['x-semrouter-decision'], first.headers['x-semrouter-decision']);
});

test('reasoning tokens and the per-decision reasoning share are counted', async () => {
  const before = parseMetrics(await router.metrics());
  const r = await chat(user('Prove that the square root of 2 is irrational.'), { mock: { reasoning_tokens: 40, tokens: 5 } });
  assert.equal(r.json.usage.completion_tokens_details.reasoning_tokens, 40);
  await chat(user('Why is the sky blue?'));
  const after = parseMetrics(await router.metrics());
  const delta = (name, labels) => (metricValue(after, name, labels) ?? 0) - (metricValue(before, name, labels) ?? 0);
  const model = r.headers['x-semrouter-model'];
  assert.equal(delta('semrouter_reasoning_tokens_total', { model }), 40);
  assert.equal(delta('semrouter_reasoning_requests_total', { decision: r.headers['x-semrouter-decision'], reasoning: 'on' }), 1);
  assert.equal(delta('semrouter_reasoning_requests_total', { reasoning: 'off' }), 1);
});

test('classify reports the reasoning need and its effort', async () => {
  const r = await request(`${router.adminUrl}/api/v1/classify`, {
    method: 'POST',
    json: { text: 'Design a 3-day itinerary for Rome, Florence and Venice under 600 euros, with train times.' },
  });
  const s = r.json.signals.reasoning;
  assert.ok(s.p_reason >= 0 && s.p_reason <= 1);
  assert.match(s.effort, /^(low|medium|high)$/);
  assert.equal(s.value, s.p_reason >= 0.5 ? 'reason' : 'direct');
});

test('under load the effort steps down a level, with hysteresis, and comes back when the load eases', async () => {
  const mock = await h.startMock({ name: 'L', tokens: 2 });
  const r2 = await h.startRouter(
    {
      server: { reload_poll_ms: 0, workers: 2 },
      backends: [{ name: 'm', url: mock.url }],
      models: [{ name: 'oss', upstream_model: 'openai/gpt-oss-20b', backends: ['m'], reasoning_family: 'gpt-oss' }],
      decisions: [
        {
          name: 'work',
          rules: 'always',
          models: [{ model: 'oss', reasoning: 'auto' }],
          reasoning_load: { max_inflight: 1, hysteresis: 0.5 },
        },
      ],
    },
    { name: 'load' },
  );
  const hard = 'Compute the present value of an annuity paying 500 dollars per month for 10 years at 6% annual interest, compounded monthly.';
  const send = (extra = {}) =>
    request(`${r2.url}/v1/chat/completions`, { method: 'POST', json: { model: 'auto', messages: user(hard), ...extra } });
  const calm = await send();
  assert.equal(calm.headers['x-semrouter-reasoning'], 'on;effort=high');
  assert.equal(calm.headers['x-semrouter-reasoning-load'], undefined);
  // Two slow requests in flight put the model over max_inflight 1. They are slow enough (as in
  // cost_quality) to outlast the metrics polling below and the next request on a loaded machine.
  const slow = [send({ mock: { first_byte_delay_ms: 2000 } }), send({ mock: { first_byte_delay_ms: 2000 } })];
  await waitFor(async () => metricValue(parseMetrics(await r2.metrics()), 'semrouter_inflight_requests') >= 2, {
    what: 'two requests in flight',
  });
  const pressed = await send();
  assert.equal(pressed.headers['x-semrouter-reasoning-load'], 'pressure');
  assert.equal(pressed.headers['x-semrouter-reasoning'], 'on;effort=medium');
  assert.equal(pressed.json.mock_echo.reasoning_effort, 'medium');
  await Promise.all(slow);
  const eased = await send();
  assert.equal(eased.headers['x-semrouter-reasoning'], 'on;effort=high');
  const m = parseMetrics(await r2.metrics());
  assert.equal(metricValue(m, 'semrouter_reasoning_stepdowns_total', { decision: 'work' }), 1);
});
