// Faults through the real binary: upstreams that refuse, hang, reset, send garbage, trickle,
// answer 429/503 storms, die mid-stream or fail their health checks. Every request gets a
// complete answer or a clear error in time; retries stay within their count and budget and never
// resend a request the upstream may have read; dead backends are ejected, fallbacks fire and say
// so; circuit breakers and admission limits shed load fast; SIGTERM lets streams finish.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';

import {
  setup, request, stream, assertOpenAIError, waitFor, closedPort, metricValue, parseMetrics,
} from './harness.mjs';

const h = setup('resilience');

// A chat.completion an OpenAI-compatible server would send.
function completion(model, text = 'ok') {
  return JSON.stringify({
    id: 'c1', object: 'chat.completion', created: 1, model,
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
  });
}

// An HTTP upstream whose answers follow a script: each entry is a status, or a function
// (req, res, body) that answers however it likes. Past the script's end: 200. Counts requests.
async function scripted(script = []) {
  const up = { requests: 0, bodies: [], health: 200, healthChecks: 0 };
  const server = await h.startHttpServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      if (req.url.startsWith('/health')) {
        up.healthChecks++;
        res.writeHead(up.health).end();
        return;
      }
      const body = Buffer.concat(parts).toString();
      const step = script[up.requests++];
      up.bodies.push(body);
      let model = 'x';
      try {
        model = JSON.parse(body).model;
      } catch {}
      if (typeof step === 'function') return step(req, res, body);
      if (step && step.status) {
        res.writeHead(step.status, { 'content-type': 'application/json', ...(step.headers || {}) });
        res.end(JSON.stringify({ error: { message: `scripted ${step.status}`, type: 'x' } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(completion(model));
    });
  });
  return Object.assign(up, server);
}

// A hold the test ends itself: step (for scripted()) answers 200 only once release() is called.
// Load made with it outlasts the test's own steps however slow the machine, and ends at once.
function held() {
  let release;
  const released = new Promise((resolve) => (release = resolve));
  const step = (req, res) =>
    released.then(() => res.writeHead(200, { 'content-type': 'application/json' }).end(completion('x')));
  return { step, release, released };
}

const ask = (router, model, extra = {}, headers = {}) =>
  request(`${router.url}/v1/chat/completions`, {
    method: 'POST', json: { model, messages: [{ role: 'user', content: 'hello' }], ...extra }, headers,
  });

const metricsOf = async (router) => parseMetrics(await router.metrics());
const upstreams = async (router) => (await request(`${router.adminUrl}/api/v1/upstreams`)).json;

const base = { server: { workers: 1, reload_poll_ms: 0, random_seed: 3 } };

let deadPort;
before(async () => {
  deadPort = await closedPort();
});

test('a dead backend with the higher weight is ejected after its failures, not tried on every request', async () => {
  const live = await scripted();
  const router = await h.startRouter({
    ...base,
    backends: [
      { name: 'dead', url: `http://127.0.0.1:${deadPort}/v1`, weight: 100 },
      { name: 'live', url: live.url, weight: 1 },
    ],
    models: [{ name: 'm', backends: ['dead', 'live'] }],
    resilience: { outlier_detection: { consecutive_failures: 2, base_ejection_ms: 60000 } },
  });
  for (let i = 0; i < 12; i++) {
    const r = await ask(router, 'm');
    assert.equal(r.status, 200, r.text);
  }
  const m = await metricsOf(router);
  assert.equal(metricValue(m, 'semrouter_upstream_errors_total', { backend: 'dead' }), 2);
  assert.equal(metricValue(m, 'semrouter_upstream_ejections_total', { backend: 'dead' }), 1);
  assert.equal(metricValue(m, 'semrouter_upstream_ejected', { backend: 'dead' }), 1);
  assert.equal(live.requests, 12);
  const page = await upstreams(router);
  const dead = page.backends.find((b) => b.name === 'dead');
  assert.equal(dead.state, 'ejected');
  assert.ok(dead.ejected_ms_left > 50000, JSON.stringify(dead));
  assert.equal(dead.last_failure, 'connect');
  assert.equal(page.backends.find((b) => b.name === 'live').state, 'available');
});

test('503 and 502 are retried with backoff on the same backend; the client sees only the answer', async () => {
  const up = await scripted([{ status: 503 }, { status: 502 }]);
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'b', url: up.url }],
    models: [{ name: 'm', backends: ['b'] }],
    resilience: { retries: { max_retries: 2, backoff_ms: 5, max_backoff_ms: 20 } },
  });
  const r = await ask(router, 'm');
  assert.equal(r.status, 200, r.text);
  assert.equal(up.requests, 3);
  const m = await metricsOf(router);
  assert.equal(metricValue(m, 'semrouter_retries_total', { reason: 'status_503' }), 1);
  assert.equal(metricValue(m, 'semrouter_retries_total', { reason: 'status_502' }), 1);
  assert.equal(metricValue(m, 'semrouter_requests_total', { model: 'm', status: '200' }), 1);
});

test('a 429 storm: retry-after is honoured when short, relayed as is when too long, and retries stop at max_retries', async () => {
  const up = await scripted([
    { status: 429, headers: { 'retry-after': '1' } },
    { status: 429, headers: { 'retry-after': '120' } },
    { status: 429 }, { status: 429 }, { status: 429 },
  ]);
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'b', url: up.url }],
    models: [{ name: 'm', backends: ['b'] }],
    resilience: { retries: { max_retries: 2, backoff_ms: 1, max_backoff_ms: 5, max_retry_after_ms: 5000 } },
  });
  const t0 = performance.now();
  const r = await ask(router, 'm');
  const waited = performance.now() - t0;
  // The first 429 asked for 1 s: waited, retried; the second asked for 120 s: relayed at once.
  assert.equal(r.status, 429, r.text);
  assert.equal(r.headers['retry-after'], '120');
  assert.ok(waited >= 950 && waited < 5000, `waited ${waited} ms`);
  assert.equal(up.requests, 2);
  // Three plain 429s: the first and two retries, then the last 429 goes to the client.
  const r2 = await ask(router, 'm');
  assert.equal(r2.status, 429);
  assert.equal(up.requests, 5);
});

test('the retry budget keeps retries from multiplying an outage', async () => {
  const up = await scripted([{ status: 503 }, { status: 503 }]);
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'b', url: up.url }],
    models: [{ name: 'm', backends: ['b'] }],
    resilience: { retries: { max_retries: 3, budget_percent: 0, min_retry_concurrency: 0 } },
  });
  const r = await ask(router, 'm');
  assert.equal(r.status, 503, r.text); // relayed: no budget for a retry
  assert.equal(up.requests, 1);
  const m = await metricsOf(router);
  assert.equal(metricValue(m, 'semrouter_retry_budget_exhausted_total'), 1);
  assert.equal(metricValue(m, 'semrouter_retries_total'), undefined);
});

test('fallback chain: the next model answers when the chosen one cannot, and the answer says so', async () => {
  const backup = await scripted();
  const router = await h.startRouter({
    ...base,
    backends: [
      { name: 'gone', url: `http://127.0.0.1:${deadPort}/v1` },
      { name: 'backup-b', url: backup.url },
    ],
    models: [
      { name: 'primary', backends: ['gone'], reasoning_family: 'qwen3' },
      { name: 'backup', upstream_model: 'org/backup-7b', backends: ['backup-b'], reasoning_family: 'deepseek' },
    ],
    decisions: [{
      name: 'all', rules: 'always', models: [{ model: 'primary', reasoning: 'on' }], fallback: ['backup'],
    }],
    resilience: { retries: { max_retries: 1 } },
  });
  const r = await ask(router, 'auto');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers['x-semrouter-fallback'], 'backup');
  assert.equal(r.headers['x-semrouter-model'], 'primary');
  // The backup got its own model id and its own family's reasoning switch.
  const sent = JSON.parse(backup.bodies[0]);
  assert.equal(sent.model, 'org/backup-7b');
  assert.equal(sent.chat_template_kwargs.thinking, true);
  assert.equal(sent.chat_template_kwargs.enable_thinking, undefined);
  const m = await metricsOf(router);
  assert.equal(metricValue(m, 'semrouter_fallbacks_total', { decision: 'all', from: 'primary', to: 'backup' }), 1);
  // Usage and the request count go to the model that answered.
  assert.equal(metricValue(m, 'semrouter_requests_total', { model: 'backup', status: '200' }), 1);
  assert.equal(metricValue(m, 'semrouter_prompt_tokens_total', { model: 'backup' }), 3);
  // With max_retries 0 the fallback is still used once the primary is ejected.
});

test('a request the upstream may have read is never sent again: reset after the request, hang, garbage', async () => {
  let seen = 0;
  const reset = await h.startTcpServer((socket) => {
    socket.once('data', () => {
      seen++;
      socket.resetAndDestroy();
    });
  });
  let hung = 0;
  const hang = await h.startTcpServer((socket) => socket.once('data', () => hung++));
  let garbled = 0;
  const garbage = await h.startTcpServer((socket) => {
    socket.once('data', () => {
      garbled++;
      socket.end('NOT HTTP AT ALL\r\n\r\n');
    });
  });
  const router = await h.startRouter({
    ...base,
    backends: [
      { name: 'reset', url: reset.url },
      { name: 'hang', url: hang.url, timeouts: { first_byte_ms: 300 } },
      { name: 'garbage', url: garbage.url },
    ],
    models: [
      { name: 'm-reset', backends: ['reset'] },
      { name: 'm-hang', backends: ['hang'] },
      { name: 'm-garbage', backends: ['garbage'] },
    ],
    resilience: { retries: { max_retries: 3 } },
  });
  const r = await ask(router, 'm-reset');
  assertOpenAIError(assert, r, { status: 502 });
  assert.equal(seen, 1);
  const t0 = performance.now();
  const hr = await ask(router, 'm-hang');
  assertOpenAIError(assert, hr, { status: 504 });
  assert.ok(performance.now() - t0 < 2000);
  assert.equal(hung, 1);
  const g = await ask(router, 'm-garbage');
  assertOpenAIError(assert, g, { status: 502 });
  assert.equal(garbled, 1);
  // The router is fine afterwards.
  assert.equal((await request(`${router.url}/health`)).status, 200);
});

test('a trickling upstream is relayed whole; a stream that dies midway ends with an error event, not a retry', async () => {
  const trickle = await scripted([(req, res) => {
    const text = completion('m');
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    let i = 0;
    const tick = setInterval(() => {
      res.write(text.slice(i, i + 16));
      i += 16;
      if (i >= text.length) {
        clearInterval(tick);
        res.end();
      }
    }, 5);
  }]);
  const mock = await h.startMock({ name: 'M', tokens: 10 });
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 't', url: trickle.url }, { name: 'mock', url: mock.url }],
    models: [{ name: 'slow', backends: ['t'] }, { name: 'm', backends: ['mock'] }],
  });
  const r = await ask(router, 'slow');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.choices[0].message.content, 'ok');
  const s = await stream(`${router.url}/v1/chat/completions`, {
    model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }], mock: { drop_after: 3 },
  });
  assert.equal(s.status, 200);
  assert.ok(s.events.some((e) => e.data.includes('"error"')), JSON.stringify(s.events));
  const stats = await mock.stats();
  assert.equal(stats.requests, 1, JSON.stringify(stats)); // not retried: bytes had reached the client
});

test('circuit breaker: a backend at max_requests sheds the excess fast with 503 and retry-after', async () => {
  const hold = held();
  const up = await scripted([hold.step]);
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'narrow', url: up.url, circuit_breaker: { max_requests: 1 } }],
    models: [{ name: 'm', backends: ['narrow'] }],
  });
  const slow = ask(router, 'm');
  await waitFor(async () => (await upstreams(router)).backends[0].requests === 1, { what: 'one request in flight' });
  const t0 = performance.now();
  const shed = await ask(router, 'm');
  const took = performance.now() - t0;
  hold.release();
  assert.ok(took < 1000, `shed after ${took} ms: it waited for the slot`);
  assertOpenAIError(assert, shed, { status: 503, code: 'overloaded' });
  assert.equal(shed.headers['retry-after'], '1');
  assert.equal((await slow).status, 200);
  const m = await metricsOf(router);
  assert.equal(metricValue(m, 'semrouter_upstream_breaker_trips_total', { backend: 'narrow', limit: 'requests' }), 1);
  assert.equal((await upstreams(router)).backends[0].requests, 0);
});

test('admission: a bounded queue, then fast refusals; a client deadline bounds the wait; a model limit answers 429', async () => {
  const [one, two] = [held(), held()];
  // Upstream requests: the first (held), the queued one (answered at once), the busy one (held).
  const up = await scripted([one.step, null, two.step]);
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'b', url: up.url }],
    models: [{ name: 'm', backends: ['b'] }, { name: 'one', backends: ['b'], max_concurrent: 1 }],
    resilience: { limits: { max_concurrent: 1, max_queue: 1, queue_timeout_ms: 5000 } },
  });
  const first = ask(router, 'm');
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_admission_in_flight') === 1, { what: 'first admitted' });
  const queued = ask(router, 'm');
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_admission_queued') === 1, { what: 'second queued' });
  const refused = await ask(router, 'm');
  assertOpenAIError(assert, refused, { status: 503, code: 'overloaded' });
  assert.equal(refused.headers['retry-after'], '1');
  one.release();
  assert.equal((await first).status, 200);
  assert.equal((await queued).status, 200); // it waited for the first one's slot
  const m = await metricsOf(router);
  assert.equal(metricValue(m, 'semrouter_admission_rejected_total', { limit: 'global', reason: 'queue_full' }), 1);
  assert.equal(metricValue(m, 'semrouter_admission_wait_seconds_count'), 1);

  // A client's deadline header cuts the wait short.
  const busy = ask(router, 'm');
  await waitFor(() => up.requests === 3, { what: 'busy upstream, holding the slot' });
  const t0 = performance.now();
  const late = await ask(router, 'm', {}, { 'x-semrouter-deadline-ms': '50' });
  const waited = performance.now() - t0;
  two.release();
  assertOpenAIError(assert, late, { status: 503, code: 'overloaded' });
  assert.ok(waited >= 40 && waited < 1000, `waited ${waited} ms`);
  assert.match(late.json.error.message, /waited 50 ms/);
  assert.equal((await busy).status, 200);
});

test('a client that leaves while queued for admission gives its place up at once', async () => {
  const hold = held();
  const up = await scripted([hold.step]);
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'b', url: up.url }],
    models: [{ name: 'm', backends: ['b'] }],
    resilience: { limits: { max_concurrent: 1, max_queue: 1, queue_timeout_ms: 20000 } },
  });
  const first = ask(router, 'm');
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_admission_in_flight') === 1, { what: 'first admitted' });
  // The second client sends its request, is queued behind the first, then hangs up.
  const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }] });
  const sock = net.connect(router.port, '127.0.0.1');
  await new Promise((resolve) => sock.on('connect', resolve));
  sock.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_admission_queued') === 1, { what: 'second queued' });
  sock.destroy();
  // Noticed while the first request is still upstream (held): the queue is empty again and a new
  // request takes the freed place instead of being refused as queue_full.
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_admission_rejected_total',
    { limit: 'global', reason: 'client_gone' }) === 1, { what: 'client_gone counted', timeoutMs: 2000 });
  assert.equal(metricValue(await metricsOf(router), 'semrouter_admission_queued'), 0);
  assert.equal(metricValue(await metricsOf(router), 'semrouter_admission_in_flight'), 1);
  const third = ask(router, 'm');
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_admission_queued') === 1, { what: 'third queued' });
  hold.release();
  assert.equal((await first).status, 200);
  assert.equal((await third).status, 200);
});

test('a model\'s own concurrency limit answers 429 in the client\'s API shape', async () => {
  const hold = held();
  const up = await scripted([hold.step]);
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'b', url: up.url }],
    models: [{ name: 'one', backends: ['b'], max_concurrent: 1 }],
    resilience: { limits: { max_queue: 0 } },
  });
  const first = ask(router, 'one');
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_admission_in_flight') === 1, { what: 'first' });
  const r = await ask(router, 'one');
  assertOpenAIError(assert, r, { status: 429, code: 'model_overloaded' });
  const a = await request(`${router.url}/v1/messages`, {
    method: 'POST', json: { model: 'one', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] },
  });
  hold.release();
  assert.equal(a.status, 429);
  assert.equal(a.json.type, 'error');
  assert.equal(a.json.error.type, 'rate_limit_error');
  assert.equal((await first).status, 200);
});

test('active health checks take a failing backend out and bring it back', async () => {
  const a = await scripted();
  const b = await scripted();
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'a', url: a.url }, { name: 'b', url: b.url }],
    models: [{ name: 'm', backends: ['a', 'b'] }],
    resilience: { health_checks: { interval_ms: 100, timeout_ms: 200, path: '/health', unhealthy_threshold: 2, healthy_threshold: 2 } },
  });
  a.health = 500;
  await waitFor(async () => (await upstreams(router)).backends[0].state === 'unhealthy', { what: 'a unhealthy' });
  const before = a.requests;
  for (let i = 0; i < 6; i++) assert.equal((await ask(router, 'm')).status, 200);
  assert.equal(a.requests, before, 'no request to the unhealthy backend');
  a.health = 200;
  await waitFor(async () => (await upstreams(router)).backends[0].state === 'available', { what: 'a healthy again' });
  const m = await metricsOf(router);
  assert.ok(metricValue(m, 'semrouter_upstream_health_checks_total', { backend: 'a', result: 'failed' }) >= 2);
  assert.equal(metricValue(m, 'semrouter_upstream_healthy', { backend: 'a' }), 1);
});

test('SIGTERM drains: /ready turns 503 first, a stream in flight finishes, then connections are refused, exit 0', async () => {
  // A stream held open after its first event until the test lets it end: it outlasts the listener.
  const rest = held();
  const chunk = (delta, finish = null) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk',
    created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const up = await scripted([(req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(chunk({ role: 'assistant', content: 'still' }));
    rest.released.then(() => res.end(chunk({ content: ' here' }) + chunk({}, 'stop') + 'data: [DONE]\n\n'));
  }]);
  const router = await h.startRouter({
    ...base,
    server: { ...base.server, drain_timeout_ms: 10000, drain_delay_ms: 1000 },
    backends: [{ name: 'b', url: up.url }],
    models: [{ name: 'm', backends: ['b'] }],
  });
  const s = stream(`${router.url}/v1/chat/completions`, { model: 'm', stream: true, messages: [{ role: 'user', content: 'x' }] });
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_inflight_requests') === 1, { what: 'stream in flight' });
  router.child.signal('SIGTERM');
  // During the delay the listener still accepts, and /ready says not to send more.
  await waitFor(async () => (await request(`${router.url}/ready`)).status === 503, { what: '/ready 503' });
  await waitFor(async () => {
    try {
      await request(`${router.url}/health`, { timeoutMs: 500 });
      return false;
    } catch (e) {
      return /ECONNREFUSED/.test(String(e));
    }
  }, { what: 'listener closed' });
  rest.release();
  const done = await s;
  assert.equal(done.status, 200);
  assert.ok(done.complete, 'the stream finished');
  assert.equal(done.events.at(-1).data, '[DONE]');
  await waitFor(() => router.child.exit !== null, { what: 'exit', timeoutMs: 5000 });
  assert.equal(router.child.exit.code, 0);
});

// ---------------------------------------------------------------------------------------------
// Retries that cannot go ahead, slots and fallbacks (found in review).

const always = (status, headers = {}) =>
  Array.from({ length: 50 }, () => (req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ error: { message: `scripted ${status}`, type: 'x' } }));
  });

test('a 429 whose retry-after outlasts total_ms is relayed as it is, not turned into a 502', async () => {
  const up = await scripted([{ status: 429, headers: { 'retry-after': '3' } }]);
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'b', url: up.url, timeouts: { total_ms: 1500 } }],
    models: [{ name: 'm', backends: ['b'] }],
    resilience: { retries: { max_retries: 2, max_retry_after_ms: 5000 } },
  });
  const r = await ask(router, 'm');
  assert.equal(r.status, 429, r.text);
  assert.equal(r.headers['retry-after'], '3');
  assert.equal(up.requests, 1);
  assert.equal(metricValue(await metricsOf(router), 'semrouter_retries_total', { reason: 'status_429' }) ?? 0, 0);
});

test('a retry-after as an HTTP-date an hour ahead is relayed at once; one that is not a date is not read as 0', async () => {
  const date = new Date(Date.now() + 3600e3).toUTCString();
  const far = 'Fri, 31 Dec 9999 23:59:59 GMT';
  const up = await scripted([
    { status: 429, headers: { 'retry-after': date } },
    { status: 503, headers: { 'retry-after': 'soon' } },
    { status: 429, headers: { 'retry-after': far } },
  ]);
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'b', url: up.url }],
    models: [{ name: 'm', backends: ['b'] }],
    resilience: { retries: { max_retries: 2, backoff_ms: 1, max_backoff_ms: 2, max_retry_after_ms: 5000 } },
  });
  const dated = await ask(router, 'm');
  assert.equal(dated.status, 429, dated.text);
  assert.equal(dated.headers['retry-after'], date);
  const unreadable = await ask(router, 'm');
  assert.equal(unreadable.status, 503, unreadable.text);
  const distant = await ask(router, 'm');
  assert.equal(distant.status, 429, distant.text);
  assert.equal(up.requests, 3); // none was retried
});

test('a retry on the same backend may take the slot its failed attempt held (max_requests 1)', async () => {
  const up = await scripted([{ status: 503 }]);
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'b', url: up.url, circuit_breaker: { max_requests: 1 } }],
    models: [{ name: 'm', backends: ['b'] }],
    resilience: { retries: { max_retries: 2, backoff_ms: 1, max_backoff_ms: 2 } },
  });
  const r = await ask(router, 'm');
  assert.equal(r.status, 200, r.text);
  assert.equal(up.requests, 2);
});

test("each backend's retry-after holds for that backend when the retries come back to it", async () => {
  const t0 = performance.now();
  const calls = [];
  const limited = (name) => Array.from({ length: 10 }, () => (req, res) => {
    calls.push([name, performance.now() - t0]);
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
    res.end(JSON.stringify({ error: { message: 'slow down', type: 'x' } }));
  });
  const a = await scripted(limited('a'));
  const b = await scripted(limited('b'));
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'a', url: a.url, weight: 1000 }, { name: 'b', url: b.url, weight: 1 }],
    models: [{ name: 'm', backends: ['a', 'b'] }],
    resilience: { retries: { max_retries: 2, max_retry_after_ms: 5000 } },
  });
  const r = await ask(router, 'm');
  assert.equal(r.status, 429, r.text);
  assert.deepEqual(calls.map((c) => c[0]), ['a', 'b', 'a']);
  assert.ok(calls[2][1] - calls[0][1] >= 900, `a was asked again ${calls[2][1] - calls[0][1]} ms after its retry-after: 1`);
});

test("one backend's retry-after does not delay the retry on another", async () => {
  const a = await scripted(always(429, { 'retry-after': '2' }));
  const b = await scripted();
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'a', url: a.url, weight: 1000 }, { name: 'b', url: b.url, weight: 1 }],
    models: [{ name: 'm', backends: ['a', 'b'] }],
  });
  const t0 = performance.now();
  const r = await ask(router, 'm');
  assert.equal(r.status, 200, r.text);
  assert.ok(performance.now() - t0 < 1000, `took ${performance.now() - t0} ms`);
  assert.equal(a.requests, 1);
  assert.equal(b.requests, 1);
});

test('with every own backend ejected and the fallback failing, the own backends are tried after it', async () => {
  const primary = await scripted([{ status: 500 }]);
  const backup = await scripted(always(503));
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'pb', url: primary.url }, { name: 'fb', url: backup.url }],
    models: [{ name: 'primary', backends: ['pb'] }, { name: 'backup', backends: ['fb'] }],
    decisions: [{ name: 'all', rules: 'always', models: [{ model: 'primary' }], fallback: ['backup'] }],
    resilience: {
      retries: { max_retries: 2, backoff_ms: 1, max_backoff_ms: 2 },
      outlier_detection: { consecutive_failures: 1, base_ejection_ms: 60000 },
    },
  });
  assert.equal((await ask(router, 'auto')).status, 500); // not retried; ejects pb
  assert.equal((await upstreams(router)).backends.find((b) => b.name === 'pb').state, 'ejected');
  const r = await ask(router, 'auto');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers['x-semrouter-fallback'], undefined);
  assert.equal(primary.requests, 2);
  assert.ok(backup.requests >= 1);
});

test('a backend whose own health check is turned off by a reload is healthy again', async () => {
  const a = await scripted();
  const b = await scripted();
  a.health = 500;
  const cfg = (checkA) => ({
    ...base,
    backends: [{ name: 'a', url: a.url, ...(checkA ? {} : { health_check: { enabled: false } }) }, { name: 'b', url: b.url }],
    models: [{ name: 'm', backends: ['a', 'b'] }],
    resilience: { health_checks: { interval_ms: 100, unhealthy_threshold: 2, healthy_threshold: 1 } },
  });
  const router = await h.startRouter(cfg(true));
  const stateOf = async (name) => (await upstreams(router)).backends.find((x) => x.name === name).state;
  await waitFor(async () => (await stateOf('a')) === 'unhealthy', { what: 'a unhealthy' });
  router.writeConfig(cfg(false));
  process.kill(router.pid, 'SIGHUP');
  await waitFor(async () => (await stateOf('a')) === 'available', { what: 'a available after the reload' });
});

test('idle pooled connections hold no connection slot: other workers are not shut out (max_connections 1)', async () => {
  const up = await scripted();
  const router = await h.startRouter({
    server: { workers: 2, reload_poll_ms: 0, random_seed: 3 },
    backends: [{ name: 'b', url: up.url, circuit_breaker: { max_connections: 1 } }],
    models: [{ name: 'm', backends: ['b'] }],
  });
  const statuses = [];
  for (let i = 0; i < 6; i++) statuses.push((await ask(router, 'm')).status); // a new client connection each
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200]);
  assert.equal((await upstreams(router)).backends[0].connections, 0);
});

test("a fallback model's max_concurrent holds for the requests it takes over", async () => {
  let inflight = 0;
  let peak = 0;
  const slow = await scripted(Array.from({ length: 10 }, () => (req, res) => {
    inflight++;
    peak = Math.max(peak, inflight);
    setTimeout(() => {
      inflight--;
      res.writeHead(200, { 'content-type': 'application/json' }).end(completion('backup'));
    }, 300);
  }));
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'pb', url: `http://127.0.0.1:${deadPort}/v1` }, { name: 'fb', url: slow.url }],
    models: [{ name: 'primary', backends: ['pb'] }, { name: 'backup', backends: ['fb'], max_concurrent: 1 }],
    decisions: [{ name: 'all', rules: 'always', models: [{ model: 'primary' }], fallback: ['backup'] }],
    resilience: { retries: { max_retries: 1, min_retry_concurrency: 100 }, outlier_detection: { consecutive_failures: 0 } },
  });
  const rs = await Promise.all(Array.from({ length: 4 }, () => ask(router, 'auto')));
  assert.equal(peak, 1);
  const served = rs.filter((r) => r.status === 200);
  assert.ok(served.length >= 1, rs.map((r) => r.status).join(' '));
  for (const r of served) assert.equal(r.headers['x-semrouter-fallback'], 'backup');
  // The rest were refused with a clear error, not counted against the fallback.
  for (const r of rs.filter((x) => x.status !== 200)) assertOpenAIError(assert, r, { status: 502, code: 'upstream_unreachable' });
});

test('when the fallback fails too, the error is the routed model\'s: no fallback header, counted under it', async () => {
  const other = await closedPort();
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'pb', url: `http://127.0.0.1:${deadPort}/v1` }, { name: 'fb', url: `http://127.0.0.1:${other}/v1` }],
    models: [{ name: 'primary', backends: ['pb'] }, { name: 'backup', backends: ['fb'] }],
    decisions: [{ name: 'all', rules: 'always', models: [{ model: 'primary' }], fallback: ['backup'] }],
    resilience: { retries: { max_retries: 1 } },
  });
  const r = await ask(router, 'auto');
  assertOpenAIError(assert, r, { status: 502, code: 'upstream_unreachable' });
  assert.equal(r.headers['x-semrouter-fallback'], undefined);
  assert.equal(r.headers['x-semrouter-model'], 'primary');
  const m = await metricsOf(router);
  assert.equal(metricValue(m, 'semrouter_requests_total', { model: 'primary', status: '502' }), 1);
  assert.equal(metricValue(m, 'semrouter_requests_total', { model: 'backup', status: '502' }) ?? 0, 0);
});

test('SIGTERM drain waits for a queued request and a half-uploaded one; answers in drain say Connection: close', async () => {
  const hold = held();
  const up = await scripted([hold.step]);
  const router = await h.startRouter({
    ...base,
    server: { ...base.server, drain_timeout_ms: 10000, drain_delay_ms: 0 },
    backends: [{ name: 'b', url: up.url }],
    models: [{ name: 'm', backends: ['b'] }],
    resilience: { limits: { max_concurrent: 1, max_queue: 4, queue_timeout_ms: 8000 } },
  });
  const first = ask(router, 'm');
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_admission_in_flight') === 1, { what: 'first admitted' });
  const queued = ask(router, 'm');
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_admission_queued') === 1, { what: 'second queued' });
  // A third client has sent its head and part of its body. It asks for "100 Continue", which
  // the router sends once it has read the head: so the request is known to be under way (no
  // fixed wait) when the drain begins.
  const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }] });
  const sock = net.connect(router.port, '127.0.0.1');
  await new Promise((resolve) => sock.on('connect', resolve));
  let reply = '';
  sock.on('data', (d) => (reply += d));
  const closed = new Promise((resolve) => sock.on('close', resolve));
  sock.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nexpect: 100-continue\r\n\r\n`);
  await waitFor(() => reply.includes('\r\n\r\n'), { what: '100 Continue' });
  assert.equal(reply, 'HTTP/1.1 100 Continue\r\n\r\n');
  sock.write(body.slice(0, 10));
  router.child.signal('SIGTERM');
  await waitFor(() => router.log().includes('signal 15: shutting down'), { what: 'the drain begun' });
  sock.write(body.slice(10));
  hold.release();
  const [a, b] = await Promise.all([first, queued]);
  assert.equal(a.status, 200, a.text);
  assert.equal(b.status, 200, b.text);
  assert.equal(b.headers.connection, 'close');
  await closed;
  assert.match(reply, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/, reply);
  assert.match(reply, /\r\nConnection: close\r\n/i, reply);
  await waitFor(() => router.child.exit !== null, { what: 'exit', timeoutMs: 5000 });
  assert.equal(router.child.exit.code, 0);
});

for (const raised of [10, 0]) test(`a reload that ${raised ? 'raises' : 'lifts'} max_concurrent admits the queued requests at once`, async () => {
  const slow = await h.startMock({ name: 'S', tokens: 2, firstByteDelayMs: 3000 });
  const fast = await h.startMock({ name: 'F', tokens: 2 });
  const cfg = (limit) => ({
    ...base,
    backends: [{ name: 's', url: slow.url }, { name: 'f', url: fast.url }],
    models: [{ name: 'slow', backends: ['s'] }, { name: 'fast', backends: ['f'] }],
    resilience: { limits: { max_concurrent: limit, max_queue: 4, queue_timeout_ms: 8000 } },
  });
  const router = await h.startRouter(cfg(1));
  const hog = ask(router, 'slow');
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_admission_in_flight') === 1, { what: 'hog admitted' });
  const t0 = performance.now();
  const waiting = ask(router, 'fast');
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_admission_queued') === 1, { what: 'queued' });
  router.writeConfig(cfg(raised));
  process.kill(router.pid, 'SIGHUP');
  await waitFor(async () => (await request(`${router.adminUrl}/api/v1/config`)).json?.generation >= 2, { what: 'reloaded' });
  const after = await ask(router, 'fast'); // the first request under the new limits
  assert.equal(after.status, 200, after.text);
  const w = await waiting;
  assert.equal(w.status, 200, w.text);
  assert.ok(performance.now() - t0 < 2500, `the queued request waited ${performance.now() - t0} ms`);
  assert.equal((await hog).status, 200);
});

// The upstream's open connections: each socket the router opened, and whether it is closed yet.
function trackConnections(up) {
  up.sockets = [];
  up.server.keepAliveTimeout = 0; // the upstream never closes an idle connection itself
  up.server.on('connection', (socket) => {
    const entry = { closed: false };
    up.sockets.push(entry);
    socket.on('close', () => (entry.closed = true));
  });
  up.open = () => up.sockets.filter((s) => !s.closed).length;
  return up;
}

test('a pooled upstream connection idle longer than idle_connection_timeout_ms is closed', async () => {
  const up = trackConnections(await scripted());
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'b', url: up.url, idle_connection_timeout_ms: 200 }],
    models: [{ name: 'm', backends: ['b'] }],
  });
  assert.equal((await ask(router, 'm')).status, 200);
  assert.equal(up.sockets.length, 1);
  await waitFor(() => up.open() === 0, { timeoutMs: 5000, what: 'the idle connection closed by the router' });
  // The next request opens a new connection and is answered.
  const r = await ask(router, 'm');
  assert.equal(r.status, 200, r.text);
  assert.equal(up.sockets.length, 2);
});

test('a reload that removes a backend closes the idle connections pooled for it', async () => {
  const up = trackConnections(await scripted());
  const other = await scripted();
  const config = (backend) => ({
    server: { workers: 2, reload_poll_ms: 50, random_seed: 3 },
    backends: [backend],
    models: [{ name: 'm', backends: [backend.name] }],
  });
  const router = await h.startRouter(config({ name: 'old', url: up.url }));
  for (let i = 0; i < 4; i++) assert.equal((await ask(router, 'm')).status, 200);
  assert.ok(up.open() >= 1);
  router.writeConfig(config({ name: 'new', url: other.url }));
  await waitFor(async () => (await router.adminConfig()).generation === 2, { timeoutMs: 5000, what: 'the reload' });
  assert.equal((await ask(router, 'm')).status, 200);
  assert.equal(other.requests, 1);
  await waitFor(() => up.open() === 0, { timeoutMs: 5000, what: "the removed backend's idle connections closed" });
});

test('when the breakers are full and the fallback model is at its max_concurrent, the 503 says both', async () => {
  const [p, f] = [held(), held()];
  const pb = await scripted([p.step]);
  const fb = await scripted([f.step]);
  const router = await h.startRouter({
    ...base,
    backends: [{ name: 'pb', url: pb.url, circuit_breaker: { max_requests: 1 } }, { name: 'fb', url: fb.url }],
    models: [{ name: 'primary', backends: ['pb'] }, { name: 'backup', backends: ['fb'], max_concurrent: 1 }],
    decisions: [{ name: 'all', rules: 'always', models: [{ model: 'primary' }], fallback: ['backup'] }],
  });
  const first = ask(router, 'auto'); // holds the primary's one request slot
  await waitFor(() => pb.requests === 1, { what: 'the primary busy' });
  const second = ask(router, 'auto'); // goes to the fallback and holds its one slot
  await waitFor(() => fb.requests === 1, { what: 'the fallback busy' });
  const third = await ask(router, 'auto');
  p.release();
  f.release();
  assertOpenAIError(assert, third, { status: 503, code: 'overloaded' });
  assert.match(third.json.error.message,
    /Every backend of model `primary` is at its circuit breaker's limit, and its fallback models are at their max_concurrent limit/);
  assert.equal(third.headers['retry-after'], '1');
  assert.equal((await first).status, 200);
  const s = await second;
  assert.equal(s.status, 200, s.text);
  assert.equal(s.headers['x-semrouter-fallback'], 'backup');
});

test('a health check in flight when a reload turns checks off does not leave its backend unhealthy', async () => {
  let asked = 0;
  const check = held();
  const up = await h.startHttpServer((req, res) => {
    if (req.url.startsWith('/health')) {
      asked++;
      // A failure held until the reload has landed: the router waits for it meanwhile.
      check.released.then(() => res.writeHead(503).end());
      return;
    }
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(completion('m')));
  });
  const config = (interval) => ({
    server: { workers: 1, reload_poll_ms: 50, random_seed: 3 },
    backends: [{ name: 'b', url: up.url }],
    models: [{ name: 'm', backends: ['b'] }],
    resilience: { health_checks: { interval_ms: interval, timeout_ms: 10000, unhealthy_threshold: 1 } },
  });
  const router = await h.startRouter(config(60000)); // one check, at start
  await waitFor(() => asked === 1, { what: 'the first health check' });
  router.writeConfig(config(0)); // checks off
  await waitFor(async () => (await router.adminConfig()).generation === 2, { timeoutMs: 5000, what: 'the reload' });
  assert.equal((await ask(router, 'm')).status, 200); // the request path takes the new config
  check.release(); // the check in flight since before the reload fails now
  await waitFor(async () => metricValue(await metricsOf(router), 'semrouter_upstream_health_checks_total', { backend: 'b', result: 'failed' }) === 1,
    { timeoutMs: 5000, what: 'the check in flight to fail' });
  const b = (await upstreams(router)).backends[0];
  assert.equal(b.state, 'available', JSON.stringify(b));
  assert.equal(b.healthy, true);
  assert.equal((await ask(router, 'm')).status, 200);
});
