// The Prometheus endpoint on the admin port: after a known mix of requests, the expected families
// are there with the expected values, histograms are consistent, and `promtool check metrics`
// accepts the text.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';

import {
  setup,
  request,
  stream,
  parseMetrics,
  metricValue,
  closedPort,
  promtoolCheck,
  findPromtool,
} from './harness.mjs';

const h = setup('metrics');
let mock;
let router;
let text;
let metrics;
const usage = {}; // model -> {prompt, completion} summed from the usage the client saw

function addUsage(model, u) {
  usage[model] = usage[model] || { prompt: 0, completion: 0 };
  usage[model].prompt += u.prompt_tokens;
  usage[model].completion += u.completion_tokens;
}

before(async () => {
  mock = await h.startMock({ name: 'M' });
  const deadPort = await closedPort();
  router = await h.startRouter({
    server: { workers: 1, reload_poll_ms: 0 },
    backends: [
      { name: 'main', url: mock.url },
      { name: 'dead', url: `http://127.0.0.1:${deadPort}/v1`, timeouts: { connect_ms: 500 } },
    ],
    models: [
      { name: 'qwen3-8b', upstream_model: 'Qwen/Qwen3-8B', backends: ['main'], reasoning_family: 'qwen3' },
      { name: 'llama', backends: ['main'] },
      { name: 'dead-model', backends: ['dead'] },
    ],
    default_model: 'llama',
    signals: { keywords: [{ name: 'math', keywords: ['integral'] }] },
    decisions: [
      {
        name: 'math',
        rules: { keyword: 'math' },
        models: [{ model: 'qwen3-8b', reasoning: true }],
        plugins: { system_prompt: { content: 'Think hard.' } },
      },
    ],
  });

  const chat = (json) => router.chat(json);
  // 3 routed by the math decision
  for (const q of ['an integral', 'another integral here', 'integral']) {
    const r = await chat({ model: 'auto', messages: [{ role: 'user', content: q }], mock: { tokens: 4 } });
    assert.equal(r.status, 200, r.text);
    addUsage('qwen3-8b', r.json.usage);
  }
  // 2 to the default model, 1 passthrough
  for (const q of ['hello', 'hi there']) {
    const r = await chat({ model: 'auto', messages: [{ role: 'user', content: q }] });
    assert.equal(r.status, 200, r.text);
    addUsage('llama', r.json.usage);
  }
  const p = await chat({ model: 'llama', messages: [{ role: 'user', content: 'direct' }], mock: { tokens: 2 } });
  assert.equal(p.status, 200, p.text);
  addUsage('llama', p.json.usage);
  // errors: unknown model, unreachable upstream, upstream 429, a bad request
  assert.equal((await chat({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] })).status, 404);
  assert.equal((await chat({ model: 'dead-model', messages: [{ role: 'user', content: 'x' }] })).status, 502);
  assert.equal(
    (await chat({ model: 'llama', messages: [{ role: 'user', content: 'x' }], mock: { status: 429 } })).status,
    429,
  );
  assert.equal((await chat({ model: 'llama' })).status, 400);
  assert.equal((await request(`${router.url}/v1/nope`)).status, 404);
  // a stream with usage
  const s = await stream(`${router.url}/v1/chat/completions`, {
    model: 'auto',
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'stream an integral' }],
    mock: { tokens: 6 },
  });
  assert.equal(s.events.at(-1).data, '[DONE]');
  addUsage('qwen3-8b', JSON.parse(s.events.at(-2).data).usage);

  const res = await request(`${router.adminUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  text = res.text;
  metrics = parseMetrics(text);
});

test('the expected families are exposed with their types', () => {
  const expected = {
    semrouter_requests_total: 'counter',
    semrouter_request_duration_seconds: 'histogram',
    semrouter_time_to_first_token_seconds: 'histogram',
    semrouter_inflight_requests: 'gauge',
    semrouter_upstream_errors_total: 'counter',
    semrouter_prompt_tokens_total: 'counter',
    semrouter_completion_tokens_total: 'counter',
    semrouter_client_errors_total: 'counter',
    semrouter_client_connections: 'gauge',
    semrouter_config_generation: 'gauge',
    semrouter_config_reloads_total: 'counter',
  };
  for (const [name, type] of Object.entries(expected)) assert.equal(metrics.types[name], type, name);
  assert.match(text, /^# HELP semrouter_requests_total \S/m);
});

test('semrouter_requests_total counts by model, decision and status', () => {
  const v = (labels) => metricValue(metrics, 'semrouter_requests_total', labels);
  assert.equal(v({ model: 'qwen3-8b', decision: 'math', status: '200' }), 4); // 3 + the stream
  assert.equal(v({ model: 'llama', decision: 'default', status: '200' }), 2);
  assert.equal(v({ model: 'llama', decision: 'passthrough', status: '200' }), 1);
  assert.equal(v({ model: 'llama', decision: 'passthrough', status: '429' }), 1);
  assert.equal(v({ model: 'dead-model', decision: 'passthrough', status: '502' }), 1);
  assert.equal(v({ status: '404' }), 1);
  assert.equal(v({ status: '400' }), 1);
  for (const s of metrics.samples.filter((x) => x.name === 'semrouter_requests_total')) {
    assert.deepEqual(Object.keys(s.labels).sort(), ['decision', 'model', 'status']);
  }
});

test('semrouter_request_duration_seconds is a consistent histogram per model', () => {
  const byModel = {};
  for (const s of metrics.samples) {
    if (s.name !== 'semrouter_request_duration_seconds_bucket') continue;
    (byModel[s.labels.model] = byModel[s.labels.model] || []).push(s);
  }
  // Every request that reached routing is timed, errors included.
  const expectedCounts = { 'qwen3-8b': 4, llama: 4, 'dead-model': 1 };
  assert.deepEqual(Object.keys(byModel).sort(), Object.keys(expectedCounts).sort());
  for (const [model, buckets] of Object.entries(byModel)) {
    assert.equal(buckets.at(-1).labels.le, '+Inf', model);
    let prevLe = -Infinity;
    let prevCount = 0;
    for (const b of buckets) {
      const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
      assert.ok(le > prevLe, `${model}: le values increase (${b.labels.le})`);
      assert.ok(b.value >= prevCount, `${model}: buckets are cumulative`);
      prevLe = le;
      prevCount = b.value;
    }
    const count = metricValue(metrics, 'semrouter_request_duration_seconds_count', { model });
    const sum = metricValue(metrics, 'semrouter_request_duration_seconds_sum', { model });
    assert.equal(count, expectedCounts[model], model);
    assert.equal(buckets.at(-1).value, count, `${model}: +Inf bucket equals _count`);
    assert.ok(sum > 0 && sum < 10, `${model}: sum ${sum}`);
  }
});

test('inflight is back to zero, upstream errors are counted by backend and kind', () => {
  assert.equal(metricValue(metrics, 'semrouter_inflight_requests'), 0);
  // The first attempt and the two retries of resilience.retries' default.
  assert.equal(metricValue(metrics, 'semrouter_upstream_errors_total', { backend: 'dead', kind: 'connect' }), 3);
  assert.equal(metricValue(metrics, 'semrouter_retries_total', { reason: 'connect' }), 2);
  // The upstream's 429 was retried twice (then relayed): each retried answer is an error of its kind.
  assert.equal(metricValue(metrics, 'semrouter_upstream_errors_total', { backend: 'main' }), 2);
  assert.equal(metricValue(metrics, 'semrouter_upstream_errors_total', { backend: 'main', kind: 'status_429' }), 2);
  assert.equal(metricValue(metrics, 'semrouter_retries_total', { reason: 'status_429' }), 2);
});

test('token counters match the usage the upstream reported', () => {
  for (const [model, u] of Object.entries(usage)) {
    assert.equal(metricValue(metrics, 'semrouter_prompt_tokens_total', { model }), u.prompt, `${model} prompt`);
    assert.equal(
      metricValue(metrics, 'semrouter_completion_tokens_total', { model }),
      u.completion,
      `${model} completion`,
    );
  }
  assert.equal(usage['qwen3-8b'].completion, 3 * 4 + 6);
});

test('time to first token is recorded for the stream', () => {
  assert.equal(metricValue(metrics, 'semrouter_time_to_first_token_seconds_count', { model: 'qwen3-8b' }), 1);
  assert.equal(metricValue(metrics, 'semrouter_time_to_first_token_seconds_count', { model: 'llama' }), undefined);
});

test('client errors are counted by reason', () => {
  assert.equal(metricValue(metrics, 'semrouter_client_errors_total', { reason: 'model_not_found' }), 1);
  assert.equal(metricValue(metrics, 'semrouter_client_errors_total', { reason: 'unknown_path' }), 1);
  assert.ok(metricValue(metrics, 'semrouter_client_errors_total', { reason: 'invalid_request_error' }) >= 1);
});

test('promtool check metrics accepts the exposition', (t) => {
  if (!findPromtool()) {
    t.skip('promtool is not installed (Debian: apt-get install prometheus)');
    return;
  }
  const r = promtoolCheck(text);
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.status, 0, `promtool check metrics failed:\n${r.stdout}\n${r.stderr}\n--- metrics ---\n${text}`);
});
