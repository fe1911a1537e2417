// Tracing and access logs: a mock OTLP/HTTP collector written here receives the router's spans
// (the client's traceparent continued, parent ids, attributes); the upstream sees a traceparent
// whose parent is the router's upstream span; a request without one (or with an invalid one)
// starts a trace; with the collector down or hanging, requests still succeed fast and the dropped
// counter rises; the access log's lines are JSON with the expected fields.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { setup, request, waitFor, parseMetrics, metricValue, closedPort } from './harness.mjs';

const h = setup('tracing');

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_PARENT = '00f067aa0ba902b7';
const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

let collector; // { spans: [], requests: [] }
let upstream; // { seen: [{traceparent, tracestate}] }
let router;
let accessLogPath;

// An OTLP/HTTP JSON collector: every span of every POST /v1/traces, flattened.
async function startCollector() {
  const state = { spans: [], requests: 0, contentTypes: [] };
  const srv = await h.startHttpServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      state.requests++;
      state.contentTypes.push(req.headers['content-type']);
      const doc = JSON.parse(body);
      for (const rs of doc.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
        for (const ss of rs.scopeSpans) for (const s of ss.spans) state.spans.push({ ...s, service });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return { ...srv, state };
}

// An OpenAI-compatible upstream that remembers the trace headers it was sent.
async function startUpstream() {
  const seen = [];
  const srv = await h.startHttpServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ traceparent: req.headers.traceparent, tracestate: req.headers.tracestate });
      const model = JSON.parse(body).model;
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id: 'x',
          object: 'chat.completion',
          model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 },
        }),
      );
    });
  });
  return { ...srv, seen };
}

function config({ endpoint, extra = {}, accessLog }) {
  return {
    server: { workers: 1, reload_poll_ms: 0 },
    backends: [{ name: 'up', url: upstream.url }],
    models: [
      { name: 'qwen3-8b', upstream_model: 'Qwen/Qwen3-8B', backends: ['up'] },
      { name: 'small', backends: ['up'] },
    ],
    default_model: 'small',
    signals: { keywords: [{ name: 'math', keywords: ['integral'] }] },
    decisions: [{ name: 'math', rules: { keyword: 'math' }, models: [{ model: 'qwen3-8b' }] }],
    tracing: { endpoint, service_name: 'semrouter-test', flush_interval_ms: 50, batch_size: 64, ...extra },
    ...(accessLog ? { access_log: { path: accessLog } } : {}),
  };
}

const attr = (span, key) => {
  const a = span.attributes.find((x) => x.key === key);
  if (!a) return undefined;
  const v = a.value;
  return v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue ?? v.boolValue);
};

const spansOf = (traceId) => collector.state.spans.filter((s) => s.traceId === traceId);

// Waits until the trace's server span arrived (it is handed over last, with the others).
async function traceSpans(traceId) {
  return waitFor(
    () => {
      const spans = spansOf(traceId);
      return spans.some((s) => s.kind === 2) ? spans : null;
    },
    { timeoutMs: 5000, what: `the spans of trace ${traceId}` },
  );
}

function chat(r, content, headers = {}) {
  return request(`${r.url}/v1/chat/completions`, {
    method: 'POST',
    headers,
    json: { model: 'auto', messages: [{ role: 'user', content }] },
  });
}

before(async () => {
  collector = await startCollector();
  upstream = await startUpstream();
  accessLogPath = path.join(h.dir, 'access.log');
  router = await h.startRouter(config({ endpoint: collector.origin, accessLog: accessLogPath }));
});

test("a client's traceparent is continued: spans, parent ids and attributes", async () => {
  const before = upstream.seen.length;
  const res = await chat(router, 'solve this integral', {
    traceparent: `00-${CLIENT_TRACE}-${CLIENT_PARENT}-01`,
    tracestate: 'vendor=abc,other=1',
    'x-request-id': 'req-42',
  });
  assert.equal(res.status, 200, res.text);
  // The upstream's traceparent: same trace, a new parent (the router's upstream span), sampled.
  const sent = upstream.seen[before];
  const m = TRACEPARENT_RE.exec(sent.traceparent || '');
  assert.ok(m, `upstream traceparent ${sent.traceparent}`);
  assert.equal(m[1], CLIENT_TRACE);
  assert.notEqual(m[2], CLIENT_PARENT);
  assert.equal(m[3], '01');
  assert.equal(sent.tracestate, 'vendor=abc,other=1');

  const spans = await traceSpans(CLIENT_TRACE);
  assert.ok(collector.state.contentTypes.every((t) => /^application\/json/.test(t)));
  const server = spans.find((s) => s.kind === 2);
  assert.equal(server.parentSpanId, CLIENT_PARENT);
  assert.equal(server.service, 'semrouter-test');
  assert.equal(server.traceState, 'vendor=abc,other=1');
  assert.equal(attr(server, 'http.request.method'), 'POST');
  assert.equal(attr(server, 'url.path'), '/v1/chat/completions');
  assert.equal(attr(server, 'http.response.status_code'), 200);
  assert.equal(attr(server, 'gen_ai.request.model'), 'auto');
  assert.equal(attr(server, 'semrouter.decision'), 'math');
  assert.equal(attr(server, 'semrouter.model'), 'qwen3-8b');
  assert.equal(attr(server, 'semrouter.request_id'), 'req-42');
  assert.equal(attr(server, 'gen_ai.usage.input_tokens'), 7);
  assert.equal(attr(server, 'gen_ai.usage.output_tokens'), 3);
  assert.ok(BigInt(server.endTimeUnixNano) >= BigInt(server.startTimeUnixNano));

  const upstreamSpan = spans.find((s) => s.kind === 3);
  assert.ok(upstreamSpan, 'an upstream (client) span');
  assert.equal(upstreamSpan.spanId, m[2], 'the upstream saw the upstream span as its parent');
  assert.equal(upstreamSpan.parentSpanId, server.spanId);
  assert.equal(upstreamSpan.name, 'chat Qwen/Qwen3-8B');
  assert.equal(attr(upstreamSpan, 'gen_ai.request.model'), 'Qwen/Qwen3-8B');
  assert.equal(attr(upstreamSpan, 'semrouter.backend'), 'up');
  assert.equal(attr(upstreamSpan, 'server.address'), '127.0.0.1');
  assert.equal(attr(upstreamSpan, 'http.response.status_code'), 200);
  assert.equal(attr(upstreamSpan, 'gen_ai.usage.output_tokens'), 3);

  const route = spans.find((s) => s.name === 'semrouter.route');
  assert.equal(route.parentSpanId, server.spanId);
  const decision = spans.find((s) => s.name === 'semrouter.decision');
  assert.equal(decision.parentSpanId, route.spanId);
  assert.equal(attr(decision, 'semrouter.decision'), 'math');
  assert.equal(attr(decision, 'gen_ai.request.model'), 'qwen3-8b');
  assert.equal(typeof attr(decision, 'semrouter.confidence'), 'number');
  const signal = spans.find((s) => s.name === 'semrouter.signal keyword:math');
  assert.ok(signal, `a keyword signal span among ${spans.map((s) => s.name)}`);
  assert.equal(signal.parentSpanId, route.spanId);
  assert.equal(attr(signal, 'semrouter.signal.type'), 'keyword');
  assert.equal(attr(signal, 'semrouter.signal.matched'), true);
  assert.equal(typeof attr(signal, 'semrouter.signal.latency_us'), 'number');
});

test('a request without traceparent (or with an invalid one) starts a new trace', async () => {
  for (const headers of [{}, { traceparent: `00-${'0'.repeat(32)}-${CLIENT_PARENT}-01`, tracestate: 'a=b' }]) {
    const before = upstream.seen.length;
    const res = await chat(router, 'hello there', headers);
    assert.equal(res.status, 200, res.text);
    const sent = upstream.seen[before];
    const m = TRACEPARENT_RE.exec(sent.traceparent || '');
    assert.ok(m, `upstream traceparent ${sent.traceparent}`);
    assert.notEqual(m[1], '0'.repeat(32));
    assert.equal(sent.tracestate, undefined, 'no tracestate without a valid traceparent');
    const spans = await traceSpans(m[1]);
    const server = spans.find((s) => s.kind === 2);
    assert.equal(server.parentSpanId ?? '', '', 'a root span');
    assert.equal(spans.find((s) => s.kind === 3).spanId, m[2]);
  }
});

test("an unsampled client trace is propagated but not exported", async () => {
  const unsampledTrace = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
  const before = upstream.seen.length;
  const res = await chat(router, 'hello', { traceparent: `00-${unsampledTrace}-${CLIENT_PARENT}-00` });
  assert.equal(res.status, 200);
  const m = TRACEPARENT_RE.exec(upstream.seen[before].traceparent);
  assert.equal(m[1], unsampledTrace);
  assert.equal(m[3], '00');
  // A sampled request after it: once its spans are in, the unsampled one's would have been too.
  const sampledTrace = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
  await chat(router, 'hello', { traceparent: `00-${sampledTrace}-${CLIENT_PARENT}-01` });
  await traceSpans(sampledTrace);
  assert.equal(spansOf(unsampledTrace).length, 0);
});

test('the access log has one JSON line per request with the expected fields', async () => {
  const res = await chat(router, 'another integral please', { 'x-request-id': 'log-me' });
  assert.equal(res.status, 200);
  const bad = await request(`${router.url}/v1/chat/completions`, { method: 'POST', body: '{not json' });
  assert.equal(bad.status, 400);
  const lines = await waitFor(
    () => {
      if (!fs.existsSync(accessLogPath)) return null;
      const all = fs.readFileSync(accessLogPath, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      return all.some((l) => l.request_id === 'log-me') && all.some((l) => l.status === 400) ? all : null;
    },
    { timeoutMs: 5000, what: 'the access log lines' },
  );
  const line = lines.find((l) => l.request_id === 'log-me');
  assert.match(line.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.match(line.trace_id, /^[0-9a-f]{32}$/);
  assert.equal(line.client, '127.0.0.1');
  assert.equal(line.method, 'POST');
  assert.equal(line.path, '/v1/chat/completions');
  assert.equal(line.api, 'chat');
  assert.equal(line.status, 200);
  assert.equal(line.decision, 'math');
  assert.equal(line.model, 'qwen3-8b');
  assert.equal(line.backend, 'up');
  assert.equal(line.stream, false);
  assert.equal(line.retries, 0);
  assert.equal(line.prompt_tokens, 7);
  assert.equal(line.completion_tokens, 3);
  for (const k of ['latency_ms', 'routing_ms', 'upstream_ms']) assert.equal(typeof line[k], 'number', k);
  assert.ok(line.latency_ms >= line.upstream_ms);
  const refused = lines.find((l) => l.status === 400);
  assert.match(refused.error, /^invalid_request/);
  // The first test's request, by its trace.
  assert.ok(lines.some((l) => l.trace_id === CLIENT_TRACE && l.request_id === 'req-42'));
});

async function droppedTotal(r) {
  return metricValue(parseMetrics(await r.metrics()), 'semrouter_trace_spans_dropped_total') ?? 0;
}

for (const kind of ['down', 'hanging']) {
  test(`with the collector ${kind}, requests succeed fast and dropped spans are counted`, async () => {
    let endpoint;
    if (kind === 'down') {
      endpoint = `http://127.0.0.1:${await closedPort()}`;
    } else {
      const tcp = await h.startTcpServer(() => {}); // accepts, reads nothing, never answers
      endpoint = tcp.origin;
    }
    const r = await h.startRouter(
      config({ endpoint, extra: { batch_size: 4, queue_size: 8, timeout_ms: 1000 } }),
      { name: `router-${kind}` },
    );
    for (let i = 0; i < 12; i++) {
      const t0 = performance.now();
      const res = await chat(r, `an integral ${i}`);
      assert.equal(res.status, 200);
      assert.ok(performance.now() - t0 < 1000, `request ${i} took ${performance.now() - t0} ms`);
    }
    await waitFor(async () => (await droppedTotal(r)) > 0, {
      timeoutMs: 6000,
      what: 'semrouter_trace_spans_dropped_total > 0',
    });
  });
}
