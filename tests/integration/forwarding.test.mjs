// What crosses the router besides the body: request headers and the query string going up,
// upstream response headers coming back, backend URL paths, and HTTP/1.0 streaming clients.
// An in-process upstream records exactly what it received.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';

import { setup, request, rawExchange } from './harness.mjs';

const h = setup('forwarding');
let seen = []; // {url, headers} per upstream request
let upstream;
let mock;
let router;

before(async () => {
  upstream = await h.startHttpServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ url: req.url, headers: req.headers, body });
      res.writeHead(429, {
        'content-type': 'application/json',
        'retry-after': '7',
        'x-ratelimit-remaining-requests': '0',
        'x-semrouter-model': 'not-the-router', // must not reach the client
      });
      res.end('{"error":{"message":"slow down","type":"rate_limit","param":null,"code":null}}');
    });
  });
  mock = await h.startMock({ name: 'M', tokens: 3 });
  router = await h.startRouter({
    server: { workers: 1, reload_poll_ms: 0 },
    backends: [
      { name: 'root', url: `${upstream.origin}/` }, // explicit "/": the server's root
      { name: 'bare', url: upstream.origin }, // no path: the OpenAI convention, /v1
      { name: 'mock', url: mock.url },
    ],
    models: [
      { name: 'at-root', backends: ['root'] },
      { name: 'at-v1', backends: ['bare'] },
      { name: 'streamer', upstream_model: 'org/streamer', backends: ['mock'] },
    ],
  });
});

test('query string and tracing/OpenAI headers go upstream; other client headers do not', async () => {
  seen = [];
  await request(`${router.url}/v1/chat/completions?api-version=2024-10-01`, {
    method: 'POST',
    headers: { 'openai-beta': 'assistants=v2', 'x-request-id': 'req-42', 'x-private': 'secret' },
    json: { model: 'at-v1', messages: [{ role: 'user', content: 'hi' }] },
  });
  assert.equal(seen.length, 1);
  assert.equal(seen[0].url, '/v1/chat/completions?api-version=2024-10-01');
  assert.equal(seen[0].headers['openai-beta'], 'assistants=v2');
  assert.equal(seen[0].headers['x-request-id'], 'req-42');
  assert.equal(seen[0].headers['x-private'], undefined);
});

test('a backend URL ending in "/" is served from the root', async () => {
  seen = [];
  await request(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    json: { model: 'at-root', messages: [{ role: 'user', content: 'hi' }] },
  });
  assert.equal(seen.length, 1);
  assert.equal(seen[0].url, '/chat/completions');
});

test('upstream response headers reach the client, but never the upstream\'s own x-semrouter-*', async () => {
  const res = await request(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    json: { model: 'at-v1', messages: [{ role: 'user', content: 'hi' }] },
  });
  assert.equal(res.status, 429, res.text);
  assert.equal(res.headers['retry-after'], '7');
  assert.equal(res.headers['x-ratelimit-remaining-requests'], '0');
  assert.equal(res.headers['x-semrouter-model'], 'at-v1'); // ours only, not joined with theirs
  assert.equal(res.json.error.message, 'slow down');
});

test('an HTTP/1.0 client gets the stream without chunked encoding, ended by the close', async () => {
  const body = JSON.stringify({ model: 'streamer', stream: true, messages: [{ role: 'user', content: 'hi' }] });
  const r = await rawExchange(
    router.port,
    `POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    { halfClose: false, timeoutMs: 5_000 },
  );
  assert.ok(r.closedByPeer, 'the router closes the connection to end the stream');
  const [head, ...rest] = r.text.split('\r\n\r\n');
  assert.match(head, /^HTTP\/1\.0 200 /);
  assert.doesNotMatch(head, /transfer-encoding/i);
  assert.match(head, /content-type: text\/event-stream/i);
  const payload = rest.join('\r\n\r\n');
  assert.match(payload, /^data: \{/, 'no chunk-size lines before the events');
  assert.ok(payload.trimEnd().endsWith('data: [DONE]'), payload.slice(-200));
});
