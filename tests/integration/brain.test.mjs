// The routing brain through the gateway: signals on request metadata, the headers / params / pii
// plugins as the upstream sees them, session stickiness, debug headers, streaming through a
// plugin, and the admin classify / route APIs.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';

import { setup, loadOpenAI, request, stream } from './harness.mjs';

const h = setup('brain');
let router;
let mock;
let client;

before(async () => {
  const OpenAI = loadOpenAI();
  mock = await h.startMock({ name: 'B', tokens: 3 });
  router = await h.startRouter({
    server: { workers: 2, reload_poll_ms: 0 },
    backends: [{ name: 'main', url: mock.url }],
    models: [
      { name: 'local', upstream_model: 'Qwen/Qwen3-8B', backends: ['main'], reasoning_family: 'qwen3', allowed_pii: ['*'] },
      { name: 'hosted', upstream_model: 'deepseek-ai/DeepSeek-V3.1', backends: ['main'], reasoning_family: 'deepseek' },
      { name: 'small', upstream_model: 'meta-llama/Llama-3.1-8B-Instruct', backends: ['main'] },
    ],
    default_model: 'small',
    routing: { sessions: { enabled: true }, debug_headers: true },
    signals: {
      keywords: [{ name: 'code', keywords: ['python', 'sql'] }],
      metadata: [
        { name: 'gold', header: 'X-Tier', values: ['gold'] },
        { name: 'streaming', stream: true },
      ],
      pii: [{ name: 'contact', types: ['email', 'phone'] }],
    },
    decisions: [
      {
        name: 'gold',
        priority: 300,
        rules: { metadata: 'gold' },
        models: [{ model: 'hosted', reasoning: true }],
        plugins: {
          headers: { set: { 'x-priority': 'high', 'idempotency-key': 'router-key' }, remove: ['openai-organization'], response: { 'x-served-tier': 'gold' } },
          params: { max: { max_tokens: 64 }, fill: ['max_tokens'], set: { temperature: 0.1 } },
        },
      },
      { name: 'private', priority: 200, rules: { pii: 'contact' }, models: [{ model: 'hosted' }], plugins: { pii: { action: 'redact' } } },
      { name: 'code', priority: 100, rules: { keyword: 'code' }, models: [{ model: 'local', reasoning: true }] },
      { name: 'streamers', priority: 50, rules: { metadata: 'streaming' }, models: [{ model: 'small' }] },
    ],
  });
  client = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: 'test', maxRetries: 0, timeout: 10_000 });
});

const user = (content) => [{ role: 'user', content }];

test('a header signal routes; the headers and params plugins reach the upstream', async () => {
  const res = await request(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'x-tier': 'gold', 'openai-organization': 'org-1', 'idempotency-key': 'client-key' },
    json: { model: 'auto', messages: user('hello'), temperature: 1.5 },
  });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers['x-semrouter-decision'], 'gold');
  assert.equal(res.headers['x-semrouter-model'], 'hosted');
  assert.equal(res.headers['x-served-tier'], 'gold');
  assert.equal(res.headers['x-semrouter-confidence'], '1.000');
  assert.match(res.headers["x-semrouter-signals"], /^metadata:gold\(1\.00; gold\)$/);
  const sent = res.json.mock_headers;
  assert.equal(sent['x-priority'], 'high');
  assert.equal(sent['idempotency-key'], 'router-key', 'the plugin replaces the client header');
  assert.equal(sent['openai-organization'], undefined, 'removed');
  const body = res.json.mock_echo;
  assert.equal(body.max_tokens, 64);
  assert.equal(body.temperature, 0.1);
  assert.equal(body.chat_template_kwargs.thinking, true);
});

test('PII is redacted before the upstream sees it, streamed responses included', async () => {
  const res = await request(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    json: { model: 'auto', messages: user('mail jane@example.com or call 555-123-4567') },
  });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers['x-semrouter-decision'], 'private');
  assert.equal(res.headers['x-semrouter-pii'], 'redacted;types=email,phone');
  assert.equal(res.json.mock_echo.messages[0].content, 'mail [EMAIL] or call [PHONE]');

  const s = await stream(`${router.url}/v1/chat/completions`, {
    model: 'auto',
    stream: true,
    messages: user('mail jane@example.com please'),
  });
  assert.equal(s.status, 200);
  assert.equal(s.headers['x-semrouter-pii'], 'redacted;types=email');
  assert.equal(s.events.at(-1).data, '[DONE]');
  assert.match(s.events[0].data, /"role":"assistant"/);
  const metrics = await request(`${router.adminUrl}/metrics`);
  assert.match(metrics.text, /semrouter_pii_actions_total\{action="redacted"\} [1-9]/);
  assert.match(metrics.text, /semrouter_routing_duration_seconds_count [1-9]/);
});

test('a session stays on its model until a higher-priority decision fires', async () => {
  const ask = async (content, extra = {}) => {
    const { data, response } = await client.chat.completions
      .create({ model: 'auto', messages: user(content), ...extra }, { headers: { 'x-session-id': 'chat-42' } })
      .withResponse();
    assert.ok(data.choices[0].message.content.length > 0);
    return [response.headers.get('x-semrouter-decision'), response.headers.get('x-semrouter-model'), response.headers.get('x-semrouter-session')];
  };
  assert.deepEqual(await ask('why is my python loop slow?'), ['code', 'local', 'new']);
  assert.deepEqual(await ask('tell me a story'), ['code', 'local', 'sticky']);
  const s = await stream(`${router.url}/v1/chat/completions`, { model: 'auto', stream: true, messages: user('hi') }, { headers: { 'x-session-id': 'chat-42' } });
  assert.equal(s.headers['x-semrouter-session'], 'sticky', 'streamers (50) does not move a code (100) session');
  assert.equal(s.headers['x-semrouter-model'], 'local');
  const gold = await request(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'x-session-id': 'chat-42', 'x-tier': 'gold' },
    json: { model: 'auto', messages: user('hello') },
  });
  assert.equal(gold.headers['x-semrouter-session'], 'escalated');
  assert.equal(gold.headers['x-semrouter-model'], 'hosted');
  assert.deepEqual(await ask('and now?'), ['gold', 'hosted', 'sticky']);
  // Another id starts afresh.
  const other = await request(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'x-session-id': 'chat-43' },
    json: { model: 'auto', messages: user('hello') },
  });
  assert.equal(other.headers['x-semrouter-session'], 'new');
  assert.equal(other.headers['x-semrouter-decision'], 'default');
});

test('the admin APIs classify messages and dry-run a route with request headers', async () => {
  const c = await request(`${router.adminUrl}/api/v1/classify`, {
    method: 'POST',
    headers: { 'x-tier': 'gold' },
    json: { messages: user('my sql query is slow, mail me at a@b.co') },
  });
  assert.equal(c.status, 200, c.text);
  assert.equal(c.json.rules['keyword:code'].matched, true);
  assert.equal(c.json.rules['metadata:gold'].matched, true);
  assert.equal(c.json.rules['pii:contact'].matched, true);
  assert.deepEqual(c.json.signals.pii.entities.map((e) => [e.type, e.text]), [['email', 'a@b.co']]);
  assert.ok(c.json.signals.domain.value);

  const dry = await request(`${router.adminUrl}/api/v1/route`, {
    method: 'POST',
    headers: { 'x-tier': 'gold' },
    json: { model: 'auto', messages: user('hello'), max_tokens: 1000 },
  });
  assert.equal(dry.status, 200, dry.text);
  assert.equal(dry.json.decision, 'gold');
  assert.equal(dry.json.body.max_tokens, 64);
  const bad = await request(`${router.adminUrl}/api/v1/classify`, { method: 'POST', body: 'nope' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.type, 'invalid_request_error');
});
