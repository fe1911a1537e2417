// The official openai SDK (tests/node/node_modules) as the client: what real applications use
// must work through the router unchanged, streaming included.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';

import { setup, loadOpenAI } from './harness.mjs';

const h = setup('openai-sdk');
let router;
let client;
let OpenAI;

before(async () => {
  OpenAI = loadOpenAI();
  const mock = await h.startMock({ name: 'SDK' });
  router = await h.startRouter({
    server: { workers: 1, reload_poll_ms: 0 },
    backends: [{ name: 'main', url: mock.url }],
    models: [
      { name: 'qwen3-8b', upstream_model: 'Qwen/Qwen3-8B', backends: ['main'], reasoning_family: 'qwen3' },
      { name: 'llama', upstream_model: 'meta-llama/Llama-3.1-8B-Instruct', backends: ['main'] },
    ],
    default_model: 'llama',
    signals: { keywords: [{ name: 'math', keywords: ['integral'] }] },
    decisions: [{ name: 'math', rules: { keyword: 'math' }, models: [{ model: 'qwen3-8b', reasoning: true }] }],
  });
  client = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: 'test', maxRetries: 0, timeout: 10_000 });
});

test('non-streaming chat completion with model auto', async () => {
  const { data: completion, response } = await client.chat.completions
    .create({ model: 'auto', messages: [{ role: 'user', content: 'What is the integral of 2x?' }] })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-semrouter-model'), 'qwen3-8b');
  assert.equal(response.headers.get('x-semrouter-decision'), 'math');
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.model, 'Qwen/Qwen3-8B');
  assert.equal(completion.choices.length, 1);
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.match(
    completion.choices[0].message.content,
    /^\[SDK\] model=Qwen\/Qwen3-8B reasoning=chat_template_kwargs=\{"enable_thinking":true\} tok0 tok1 tok2 tok3 tok4$/,
  );
  assert.equal(completion.usage.completion_tokens, 5);
});

test('streaming chat completion with model auto yields several chunks', async () => {
  const s = await client.chat.completions.create({
    model: 'auto',
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'hello, stream please' }],
    mock: { tokens: 6, token_delay_ms: 20 }, // a vendor field: passed through to the mock
  });
  const chunks = [];
  for await (const chunk of s) chunks.push(chunk);
  const withContent = chunks.filter((c) => c.choices[0]?.delta?.content);
  assert.ok(withContent.length >= 6, `only ${withContent.length} content chunks`);
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.match(text, /^\[SDK\] model=meta-llama\/Llama-3\.1-8B-Instruct reasoning=none tok0 tok1 tok2 tok3 tok4 tok5$/);
  assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason, 'stop');
  assert.equal(chunks.at(-1).usage?.completion_tokens, 6);
  for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
});

test('the SDK lists the models', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, ['auto', 'MoM', 'qwen3-8b', 'llama']);
});

test('legacy completions through the SDK', async () => {
  const c = await client.completions.create({ model: 'auto', prompt: 'solve the integral' });
  assert.equal(c.object, 'text_completion');
  assert.match(c.choices[0].text, /model=Qwen\/Qwen3-8B/);
});

test('router errors become the SDK error classes', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 404);
      assert.equal(e.code, 'model_not_found');
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, 'model');
      return true;
    },
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'llama', messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'messages',
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'x' }], mock: { status: 429 } }),
    (e) => e instanceof OpenAI.RateLimitError && e.status === 429 && e.code === 'injected',
  );
});

test('a stream the upstream breaks off raises an error in the SDK instead of ending quietly', async () => {
  const s = await client.chat.completions.create({
    model: 'llama',
    stream: true,
    messages: [{ role: 'user', content: 'x' }],
    mock: { tokens: 10, token_delay_ms: 10, drop_after: 2 },
  });
  const seen = [];
  await assert.rejects(
    (async () => {
      for await (const chunk of s) seen.push(chunk);
    })(),
    (e) => e instanceof OpenAI.APIError && /broken off|upstream/i.test(e.message),
  );
  assert.ok(seen.length >= 2, `${seen.length} chunks before the error`);
});
