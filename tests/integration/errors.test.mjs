// Everything that can go wrong between a client and an upstream: oversized, malformed and
// incomplete requests, wrong methods and paths, unreachable and slow upstreams, and raw TCP
// garbage. Every HTTP error has the OpenAI shape, and the router keeps serving afterwards.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

import {
  setup,
  request,
  stream,
  rawExchange,
  parseHttpResponses,
  assertOpenAIError,
  closedPort,
  parseMetrics,
  SEMROUTER_BIN,
  metricValue,
  waitFor,
  delay,
} from './harness.mjs';

const h = setup('errors');
const MAX_BODY = 2048;
const HEADER_TIMEOUT_MS = 1000;
const FIRST_BYTE_MS = 300;
let mock;
let router;
let deadPort;

before(async () => {
  mock = await h.startMock({ name: 'A' });
  deadPort = await closedPort();
  router = await h.startRouter({
    server: { workers: 1, max_body_bytes: MAX_BODY, client_header_timeout_ms: HEADER_TIMEOUT_MS, reload_poll_ms: 0 },
    backends: [
      { name: 'good', url: mock.url },
      { name: 'dead', url: `http://127.0.0.1:${deadPort}/v1`, timeouts: { connect_ms: 500 } },
      { name: 'slow', url: mock.url, timeouts: { first_byte_ms: FIRST_BYTE_MS } },
    ],
    models: [
      { name: 'good-model', backends: ['good'] },
      { name: 'dead-model', backends: ['dead'] },
      { name: 'slow-model', backends: ['slow'] },
    ],
  });
});

const chatUrl = () => `${router.url}/v1/chat/completions`;
const user = (text) => [{ role: 'user', content: text }];

test('a body over server.max_body_bytes: 413 body_too_large', async () => {
  const body = JSON.stringify({ model: 'good-model', messages: user('x'.repeat(MAX_BODY * 2)) });
  const res = await request(chatUrl(), { method: 'POST', json: body });
  const e = assertOpenAIError(assert, res, { status: 413, type: 'invalid_request_error', code: 'body_too_large' });
  assert.match(e.message, new RegExp(String(MAX_BODY)));
  assert.equal(res.headers.connection, 'close');
});

test('a chunked body that grows over the limit: 413 as well', async () => {
  const res = await rawExchange(
    router.port,
    'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' +
      `${(MAX_BODY + 1024).toString(16)}\r\n${'a'.repeat(MAX_BODY + 1024)}\r\n`,
  );
  assert.match(res.text, /^HTTP\/1\.1 413 /, res.text);
  assert.match(res.text, /"code":"body_too_large"/);
});

test('a body just under the limit is accepted', async () => {
  const filler = 'y'.repeat(MAX_BODY - 200);
  const res = await request(chatUrl(), { method: 'POST', json: { model: 'good-model', messages: user(filler) } });
  assert.equal(res.status, 200, res.text);
});

test('with client keys configured, a caller without a valid key gets 401 before its body is judged', async () => {
  const keyed = await h.startRouter({
    server: { workers: 1, reload_poll_ms: 0 },
    backends: [{ name: 'good', url: mock.url }],
    models: [{ name: 'good-model', backends: ['good'] }],
    auth: { keys: [{ name: 'k', sha256: 'a'.repeat(64) }] },
  });
  const r = await request(`${keyed.url}/v1/chat/completions`, {
    method: 'POST', body: '{"model": "good-model", "messages": [', headers: { 'content-type': 'application/json' },
  });
  assertOpenAIError(assert, r, { status: 401 });
  await keyed.stop();
});

test('malformed JSON: 400 invalid_request_error', async () => {
  for (const body of ['{"model": "good-model", "messages": [', 'not json at all', '{"model":"good-model",}', '']) {
    const res = await request(chatUrl(), { method: 'POST', json: body });
    assertOpenAIError(assert, res, { status: 400, type: 'invalid_request_error' });
  }
});

test('JSON that is not an object: 400', async () => {
  for (const body of ['[]', '"a string"', '42', 'null']) {
    const res = await request(chatUrl(), { method: 'POST', json: body });
    assertOpenAIError(assert, res, { status: 400, type: 'invalid_request_error' });
  }
});

test('missing or empty messages: 400 naming the messages param', async () => {
  for (const json of [
    { model: 'good-model' },
    { model: 'good-model', messages: [] },
    { model: 'good-model', messages: 'hello' },
    { model: 'auto', messages: null },
  ]) {
    const res = await request(chatUrl(), { method: 'POST', json });
    const e = assertOpenAIError(assert, res, { status: 400, type: 'invalid_request_error' });
    assert.equal(e.param, 'messages', `${JSON.stringify(json)} -> ${res.text}`);
    assert.match(e.message, /messages/);
  }
});

test('a malformed message or model: 400 naming the param', async () => {
  const cases = [
    [{ model: 'good-model', messages: [{ content: 'no role' }] }, 'messages[0].role'],
    [{ model: 'good-model', messages: ['just a string'] }, 'messages[0]'],
    [{ messages: user('no model') }, 'model'],
    [{ model: 42, messages: user('numeric model') }, 'model'],
    [{ model: '', messages: user('empty model') }, 'model'],
    [{ model: 'good-model', stream: 'yes', messages: user('stream is not a boolean') }, 'stream'],
  ];
  for (const [json, param] of cases) {
    const res = await request(chatUrl(), { method: 'POST', json });
    const e = assertOpenAIError(assert, res, { status: 400, type: 'invalid_request_error' });
    assert.equal(e.param, param, `${JSON.stringify(json)} -> ${res.text}`);
  }
});

test('wrong method: 405 with an Allow header', async () => {
  const cases = [
    ['GET', `${router.url}/v1/chat/completions`, 'POST'],
    ['PUT', `${router.url}/v1/completions`, 'POST'],
    ['POST', `${router.url}/v1/models`, 'GET'],
    ['DELETE', `${router.url}/health`, 'GET'],
    ['POST', `${router.adminUrl}/metrics`, 'GET'],
    ['GET', `${router.adminUrl}/api/v1/route`, 'POST'],
  ];
  for (const [method, url, allow] of cases) {
    const res = await request(url, { method, ...(method === 'GET' || method === 'DELETE' ? {} : { json: '{}' }) });
    assertOpenAIError(assert, res, { status: 405, type: 'invalid_request_error', code: 'method_not_allowed' });
    assert.equal(res.headers.allow, allow, `${method} ${url}`);
  }
});

test('unknown path: 404 not_found on both ports', async () => {
  for (const url of [
    `${router.url}/v1/audio/speech`,
    `${router.url}/`,
    `${router.url}/v1/chat/completions/extra`,
    `${router.adminUrl}/nope`,
  ]) {
    const res = await request(url, { method: 'POST', json: '{}' });
    const e = assertOpenAIError(assert, res, { status: 404, type: 'invalid_request_error', code: 'not_found' });
    assert.match(e.message, /Unknown request URL/);
  }
});

test('upstream unreachable (closed port): 502 upstream_unreachable', async () => {
  const res = await request(chatUrl(), { method: 'POST', json: { model: 'dead-model', messages: user('hi') } });
  const e = assertOpenAIError(assert, res, { status: 502, type: 'upstream_error', code: 'upstream_unreachable' });
  assert.match(e.message, /dead-model/);
  assert.equal(res.headers['x-semrouter-model'], 'dead-model');
  // Streaming requests fail the same way: no stream was started.
  const streamed = await request(chatUrl(), {
    method: 'POST',
    json: { model: 'dead-model', stream: true, messages: user('hi') },
  });
  assertOpenAIError(assert, streamed, { status: 502, code: 'upstream_unreachable' });
});

test('upstream slower than timeouts.first_byte_ms: 504 upstream_timeout, on time', async () => {
  const t0 = performance.now();
  const res = await request(chatUrl(), {
    method: 'POST',
    json: { model: 'slow-model', messages: user('hi'), mock: { first_byte_delay_ms: FIRST_BYTE_MS + 2000 } },
  });
  const elapsed = performance.now() - t0;
  assertOpenAIError(assert, res, { status: 504, type: 'upstream_error', code: 'upstream_timeout' });
  assert.ok(elapsed >= FIRST_BYTE_MS - 20, `answered after ${elapsed} ms, before the timeout`);
  assert.ok(elapsed < FIRST_BYTE_MS + 1500, `answered after ${elapsed} ms; the timeout is ${FIRST_BYTE_MS} ms`);

  // The same backend answers a quick request normally.
  const quick = await request(chatUrl(), { method: 'POST', json: { model: 'slow-model', messages: user('hi') } });
  assert.equal(quick.status, 200, quick.text);
});

test('raw TCP garbage and truncated requests get a 400 or a closed connection, never a crash', async () => {
  const cases = {
    garbage: 'GARBAGE\r\n\r\n',
    binary: Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 13, 10, 13, 10]),
    'bad target': 'GET health HTTP/1.1\r\nHost: x\r\n\r\n',
    'bad version': 'GET /health HTTP/9.9\r\nHost: x\r\n\r\n',
    'truncated request line': 'GET /hea',
    'truncated headers': 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le',
    'truncated body': 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"model"',
    'bad chunk size': 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n',
    'bad content-length': 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
    'huge content-length': 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n',
    'header over 64 KiB': `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`,
    'only CRLFs': '\r\n\r\n\r\n\r\n',
    'TLS client hello': Buffer.from('160301002e010000', 'hex'),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    const res = await rawExchange(router.port, bytes, { timeoutMs: 3000 });
    assert.equal(res.timedOut, false, `${name}: the router neither answered nor closed`);
    if (res.text.length > 0) {
      // An HTTP version other than 1.x is 505, as RFC 9110 says; every other case is the client's 4xx.
      const status = name === 'bad version' ? /^HTTP\/1\.1 505 / : /^HTTP\/1\.1 4\d\d /;
      assert.match(res.text, status, `${name}: ${res.text.slice(0, 200)}`);
      const body = res.text.slice(res.text.indexOf('\r\n\r\n') + 4);
      const json = JSON.parse(body);
      assert.deepEqual(Object.keys(json.error).sort(), ['code', 'message', 'param', 'type'], name);
    }
    const health = await request(`${router.url}/health`);
    assert.equal(health.status, 200, `after ${name}`);
  }
  assert.equal(router.child.exit, null, 'the router is still running');
});

test('a client that stalls in its headers is dropped after client_header_timeout_ms', async () => {
  const res = await rawExchange(router.port, 'GET /health HTTP/1.1\r\nHo', { halfClose: false, timeoutMs: 5000 });
  assert.equal(res.timedOut, false, 'the router kept the stalled connection open');
  assert.ok(res.elapsedMs >= HEADER_TIMEOUT_MS - 50, `closed after ${res.elapsedMs} ms`);
  assert.ok(res.elapsedMs < HEADER_TIMEOUT_MS + 2000, `closed after ${res.elapsedMs} ms`);
});

test('pipelined requests on one connection are all answered, in order', async () => {
  const body = JSON.stringify({ model: 'good-model', messages: user('pipelined') });
  const post = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const get = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
  const res = await rawExchange(router.port, post + get + post, {
    halfClose: false,
    timeoutMs: 5000,
    until: (text) => parseHttpResponses(text).length >= 3,
  });
  const responses = parseHttpResponses(res.text);
  assert.deepEqual(
    responses.map((r) => r.status),
    [200, 200, 200],
    res.text,
  );
  assert.equal(JSON.parse(responses[0].body).mock_echo.messages[0].content, 'pipelined');
  assert.deepEqual(JSON.parse(responses[1].body), { status: 'ok' });
  assert.equal(JSON.parse(responses[2].body).mock_echo.messages[0].content, 'pipelined');
});

// A keep-alive client's second request arrives with its FIN in one segment, after the router has
// queued its read: the read that takes the request leaves the end of stream behind it, with no
// edge of its own on the socket. The router must still see it (src/gateway/ready_read.h) and
// close, not hold the connection until client_header_timeout_ms.
test("a request that arrives together with the client's FIN is answered, then the connection closes at once", async () => {
  const get = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
  const socket = net.connect({ host: '127.0.0.1', port: router.port });
  let text = '';
  socket.on('data', (d) => (text += d.toString('latin1')));
  const closed = new Promise((resolve) => socket.on('close', resolve));
  socket.on('error', () => {});
  await new Promise((resolve) => socket.on('connect', resolve));
  socket.write(get);
  await waitFor(() => parseHttpResponses(text).length === 1, { what: 'the first answer' });
  await delay(20); // the router is back in its read of the next request
  const t0 = performance.now();
  socket.end(get); // the second request and the FIN, one write
  const timer = setTimeout(() => socket.destroy(), 5000);
  await closed;
  clearTimeout(timer);
  const elapsed = performance.now() - t0;
  assert.equal(parseHttpResponses(text).length, 2, text);
  assert.ok(elapsed < HEADER_TIMEOUT_MS / 2, `closed ${elapsed} ms after the FIN`);
});

test('HEAD gets the head a GET would get and no body; HEAD where only POST is served gets a bodiless 405', async () => {
  const res = await rawExchange(
    router.port,
    'HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n' +
      'HEAD /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /health HTTP/1.1\r\nHost: x\r\n\r\n',
    { halfClose: false, timeoutMs: 5000, until: (text) => text.includes('{"status":"ok"}') },
  );
  const parts = res.text.split('\r\n\r\n');
  assert.match(parts[0], /^HTTP\/1\.1 200 OK\r\n/, res.text);
  assert.match(parts[0], /content-length: 15/i, parts[0]); // what the GET's body would be
  assert.match(parts[1], /^HTTP\/1\.1 405 /, res.text); // straight after the first head: no body
  assert.match(parts[1], /allow: POST/i, parts[1]);
  assert.match(parts[2], /^HTTP\/1\.1 200 OK\r\n/, res.text);
  assert.equal(parts[3], '{"status":"ok"}');
});

test('an absolute-form request target (a client set up for a forward proxy) is routed by its path', async () => {
  const body = JSON.stringify({ model: 'good-model', messages: user('absolute') });
  const res = await rawExchange(
    router.port,
    `POST http://router.example/v1/chat/completions HTTP/1.1\r\nHost: router.example\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}` +
      'GET http://router.example/health?probe=1 HTTP/1.1\r\nHost: router.example\r\n\r\n',
    { halfClose: false, timeoutMs: 5000, until: (text) => parseHttpResponses(text).length >= 2 },
  );
  const [chat, health] = parseHttpResponses(res.text);
  assert.equal(chat.status, 200, res.text);
  assert.equal(JSON.parse(chat.body).mock_echo.messages[0].content, 'absolute');
  assert.equal(health.status, 200, res.text);
});

test('Expect: 100-continue gets a 100 before the body, and a 413 instead when the body is too large', async () => {
  const body = JSON.stringify({ model: 'good-model', messages: user('continue') });
  const head = (length) =>
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${length}\r\n\r\n`;
  const got = await new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: router.port });
    let text = '';
    let sentBody = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer; got ${JSON.stringify(text)}`));
    }, 5000);
    socket.on('error', reject);
    socket.on('data', (d) => {
      text += d.toString('latin1');
      if (!sentBody && text.includes('\r\n\r\n')) {
        sentBody = true;
        socket.write(body); // only after the interim response
      }
      const rest = text.slice(text.indexOf('\r\n\r\n') + 4);
      if (sentBody && parseHttpResponses(rest).length === 1) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('connect', () => socket.write(head(Buffer.byteLength(body))));
  });
  assert.match(got, /^HTTP\/1\.1 100 Continue\r\n/, got);
  const [final] = parseHttpResponses(got.slice(got.indexOf('\r\n\r\n') + 4));
  assert.equal(final.status, 200, got);
  assert.equal(JSON.parse(final.body).mock_echo.messages[0].content, 'continue');

  const tooLarge = await rawExchange(router.port, head(MAX_BODY + 1), { halfClose: false, timeoutMs: 3000 });
  assert.match(tooLarge.text, /^HTTP\/1\.1 413 /, 'the 413 comes without waiting for the body');
  assert.doesNotMatch(tooLarge.text, /100 Continue/);
});

// ---------------------------------------------------------------------------------------------
// Upstreams that break HTTP: a raw TCP server plays a scripted answer chosen by the request's
// first message.

const FAULT_IDLE_MS = 300;
let faultRouter;

// Reads one request (Content-Length framed) and calls answer(socket, scenario).
function scriptedUpstream(socket) {
  let buf = '';
  socket.setEncoding('latin1');
  socket.on('data', (d) => {
    buf += d;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const length = Number(/content-length:\s*(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
    if (buf.length < end + 4 + length) return;
    const body = JSON.parse(buf.slice(end + 4, end + 4 + length));
    buf = '';
    socket.answered = (socket.answered || 0) + 1;
    SCENARIOS[body.messages[0].content](socket);
  });
}

// Writes `head`, then `line` over and over, one byte every 50 ms, until the socket closes.
function trickle(s, head, line) {
  s.write(head);
  let i = 0;
  const t = setInterval(() => {
    if (s.destroyed) return clearInterval(t);
    s.write(line[i++ % line.length]);
  }, 50);
  s.on('close', () => clearInterval(t));
}

const SCENARIOS = {
  'partial body': (s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"id":');
    setTimeout(() => s.destroy(), 20);
  },
  'stalled body': (s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"id":');
  },
  'not http': (s) => {
    s.write('HELLO THERE\r\n\r\n');
  },
  'header too large': (s) => {
    s.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\n{}`);
  },
  'closed before answering': (s) => {
    s.destroy();
  },
  'close-delimited json': (s) => {
    s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"ok":true,');
    setTimeout(() => s.end('"usage":{"prompt_tokens":2,"completion_tokens":3}}'), 20);
  },
  // The head arrives one byte every 50 ms, never ending: first_byte_ms bounds the whole head.
  'trickled head': (s) => trickle(s, 'HTTP/1.1 200 OK\r\n', 'X-Trickle: 1\r\n'),
  // A stream whose next chunk-size line grows a byte at a time: idle_ms bounds it.
  'trickled chunk line': (s) => {
    const event = 'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n';
    s.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n' +
      `${event.length.toString(16)}\r\n${event}\r\n`);
    trickle(s, '10;ext=', 'a');
  },
  // Answers the first request of a connection and keeps it alive; closes at the second, as a
  // server whose idle timeout ends just as the router reuses the connection.
  'closed on reuse': (s) => {
    if (s.answered > 1) return s.destroy();
    s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}');
  },
  'no content': (s) => {
    s.write('HTTP/1.1 204 No Content\r\nX-Kept: yes\r\n\r\n');
  },
  'connection-listed header': (s) => {
    s.write('HTTP/1.1 200 OK\r\nConnection: x-secret, keep-alive\r\nX-Secret: hop\r\nX-Kept: yes\r\n' +
      'Content-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}');
  },
  'split crlf sse': (s) => {
    const events =
      'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":9}}\r\n\r\ndata: [DONE]\r\n\r\n';
    const a = events.slice(0, 20);
    const b = events.slice(20);
    s.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
    s.write(`${a.length.toString(16)}\r\n${a}\r\n`);
    setTimeout(() => s.write(`${b.length.toString(16)}\r\n${b}\r\n0\r\n\r\n`), 20);
  },
};

async function fault(scenario, extra = {}) {
  return request(`${faultRouter.url}/v1/chat/completions`, {
    method: 'POST',
    json: { model: 'fault-model', messages: user(scenario), ...extra },
  });
}

test('upstreams that break HTTP: 502 or 504 in the OpenAI shape, and the router carries on', async () => {
  const upstream = await h.startTcpServer(scriptedUpstream);
  faultRouter = await h.startRouter(
    {
      server: { workers: 1, reload_poll_ms: 0 },
      backends: [{ name: 'fault', url: upstream.url, timeouts: { idle_ms: FAULT_IDLE_MS, first_byte_ms: 2000 } }],
      models: [{ name: 'fault-model', backends: ['fault'] }],
    },
    { name: 'router-faults' },
  );
  const expect = {
    'partial body': [502, 'upstream_broken'], // the response started, then broke off
    'not http': [502, 'upstream_unreachable'],
    'header too large': [502, 'upstream_unreachable'],
    'closed before answering': [502, 'upstream_unreachable'],
  };
  for (const [scenario, [status, code]] of Object.entries(expect)) {
    const res = await fault(scenario);
    assertOpenAIError(assert, res, { status, type: 'upstream_error', code });
    assert.equal(res.headers['x-semrouter-model'], 'fault-model', scenario);
  }
  const t0 = performance.now();
  const stalled = await fault('stalled body');
  const elapsed = performance.now() - t0;
  assertOpenAIError(assert, stalled, { status: 504, type: 'upstream_error', code: 'upstream_timeout' });
  assert.ok(elapsed < FAULT_IDLE_MS + 1500, `the stalled body took ${elapsed} ms with idle_ms ${FAULT_IDLE_MS}`);

  const m = parseMetrics(await faultRouter.metrics());
  assert.equal(metricValue(m, 'semrouter_upstream_errors_total', { backend: 'fault', kind: 'timeout' }), 1);
  assert.equal(metricValue(m, 'semrouter_requests_total', { model: 'fault-model', status: '502' }), 4);
  assert.equal(metricValue(m, 'semrouter_inflight_requests'), 0);
});

test('an upstream 204 reaches the client as a 204 with no body or framing; Connection-listed headers stay behind', async () => {
  const body = JSON.stringify({ model: 'fault-model', messages: user('no content') });
  const post = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const health = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
  // The 204 and the next answer on one connection: a body or a last chunk after the 204 would
  // be read as the start of the /health answer.
  const res = await rawExchange(faultRouter.port, post + health, {
    halfClose: false,
    timeoutMs: 5000,
    until: (text) => text.includes('{"status":"ok"}'),
  });
  const head = res.text.slice(0, res.text.indexOf('\r\n\r\n') + 4);
  assert.match(head, /^HTTP\/1\.1 204 /, res.text);
  assert.doesNotMatch(head, /content-length|transfer-encoding|content-type/i, head);
  assert.match(head, /x-kept: yes/i, head);
  assert.match(res.text.slice(head.length), /^HTTP\/1\.1 200 OK\r\n/, res.text);

  const listed = await fault('connection-listed header');
  assert.equal(listed.status, 200, listed.text);
  assert.deepEqual(listed.json, { ok: true });
  assert.equal(listed.headers['x-kept'], 'yes');
  assert.equal(listed.headers['x-secret'], undefined, JSON.stringify(listed.headers));
});

test('odd but valid upstream framing is relayed: close-delimited bodies, SSE split mid-event with CRLFs', async () => {
  const json = await fault('close-delimited json');
  assert.equal(json.status, 200, json.text);
  assert.deepEqual(json.json, { ok: true, usage: { prompt_tokens: 2, completion_tokens: 3 } });

  const sse = await stream(`${faultRouter.url}/v1/chat/completions`, {
    model: 'fault-model',
    stream: true,
    stream_options: { include_usage: true }, // the fake upstream always sends a usage chunk
    messages: user('split crlf sse'),
  });
  assert.equal(sse.status, 200);
  assert.equal(sse.complete, true);
  assert.equal(
    sse.text,
    'data: {"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":9}}\r\n\r\ndata: [DONE]\r\n\r\n',
  );
  const m = parseMetrics(await faultRouter.metrics());
  assert.equal(metricValue(m, 'semrouter_prompt_tokens_total', { model: 'fault-model' }), 2 + 4);
  assert.equal(metricValue(m, 'semrouter_completion_tokens_total', { model: 'fault-model' }), 3 + 9);
  assert.equal(metricValue(m, 'semrouter_time_to_first_token_seconds_count', { model: 'fault-model' }), 1);
});

test('an upstream that trickles bytes is held to first_byte_ms (the head) and idle_ms (each event), not per read', async () => {
  const t0 = performance.now();
  const head = await fault('trickled head');
  const elapsed = performance.now() - t0;
  assertOpenAIError(assert, head, { status: 504, type: 'upstream_error', code: 'upstream_timeout' });
  assert.ok(elapsed < 2000 + 1000, `the trickled head took ${elapsed} ms with first_byte_ms 2000`);

  const t1 = performance.now();
  const s = await stream(`${faultRouter.url}/v1/chat/completions`, {
    model: 'fault-model', stream: true, messages: user('trickled chunk line'),
  }, { timeoutMs: 5000 });
  const streamed = performance.now() - t1;
  assert.equal(s.status, 200);
  assert.ok(streamed < FAULT_IDLE_MS + 1000, `the trickled stream took ${streamed} ms with idle_ms ${FAULT_IDLE_MS}`);
  assert.match(s.events.at(-1).data, /upstream_timeout/, JSON.stringify(s.events));
});

test('a pooled connection closed as it is reused: resent when the client sent Idempotency-Key, else a 502', async () => {
  const ask = (headers) => request(`${faultRouter.url}/v1/chat/completions`, {
    method: 'POST', json: { model: 'fault-model', messages: user('closed on reuse') }, headers,
  });
  assert.equal((await ask({})).status, 200); // a new connection, now pooled
  const keyed = await ask({ 'idempotency-key': 'k-1' });
  assert.equal(keyed.status, 200, keyed.text); // resent on a new connection
  const unkeyed = await ask({});
  assertOpenAIError(assert, unkeyed, { status: 502, type: 'upstream_error', code: 'upstream_unreachable' });
});

test('after all of this the router still routes and answers', async () => {
  const res = await request(chatUrl(), { method: 'POST', json: { model: 'good-model', messages: user('still there?') } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.mock_echo.model, 'good-model');
  assert.equal((await request(`${router.adminUrl}/health`)).status, 200);
  const m = await router.metrics();
  assert.match(m, /semrouter_inflight_requests 0\n/);
  assert.equal(router.child.exit, null);
});

test('serve refuses a missing config file or a repeated key with one line and exit status 2', () => {
  const dup = path.join(h.dir, 'duplicate.yaml');
  fs.writeFileSync(dup, [
    `backends: [{name: a, url: "${mock.url}"}]`,
    'models: [{name: m, backends: [a]}]',
    'server: {workers: 1}',
    'server: {workers: 2}',
  ].join('\n'));
  for (const [file, message] of [
    [path.join(h.dir, 'nonexistent.yaml'), /cannot open config file .*nonexistent\.yaml/],
    [dup, /duplicate key "server"/],
  ]) {
    const r = spawnSync(SEMROUTER_BIN, ['serve', '--config', file, '--port', '0', '--admin-port', '0'],
      { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], message);
  }
});
