// Server-sent events through the router: every event is relayed as it arrives, broken and stalled
// upstream streams end for the client instead of hanging, a client that hangs up makes the router
// hang up on the upstream, and streaming shows up in the metrics — with the usage the router asks
// for when the client did not (counted, and cut from that client's stream, on both front doors).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';

import { setup, stream, request, waitFor, parseMetrics, metricValue } from './harness.mjs';

const h = setup('streaming');
const IDLE_MS = 300;
let mock;
let router;
let hold; // an upstream that never answers and records when the router hangs up on it
const held = [];
let oai; // an OpenAI-shaped upstream that writes its stream in pieces cut mid-event
const oaiBodies = []; // the request bodies it received

before(async () => {
  mock = await h.startMock({ name: 'S' });
  hold = await h.startHttpServer((req, res) => {
    const entry = { arrivedAt: performance.now(), closedAt: undefined };
    held.push(entry);
    req.resume();
    res.on('close', () => {
      entry.closedAt = performance.now();
    });
    // No answer: the router has to give up or hang up.
  });
  oai = await h.startHttpServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (text += d));
    req.on('end', async () => {
      const body = JSON.parse(text);
      oaiBodies.push(body);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const sse = openAiStream(body.stream_options?.include_usage === true);
      // 37-byte writes, apart in time: events (the usage chunk too) arrive split across reads.
      for (let at = 0; at < sse.length; at += 37) {
        res.write(sse.slice(at, at + 37));
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      res.end();
    });
  });
  router = await h.startRouter({
    server: { workers: 2, reload_poll_ms: 0 },
    backends: [
      { name: 'main', url: mock.url },
      { name: 'stall', url: mock.url, timeouts: { idle_ms: IDLE_MS } },
      { name: 'hold', url: hold.url },
      { name: 'oai', url: oai.url, provider: 'openai' },
    ],
    models: [
      { name: 'qwen3-8b', upstream_model: 'Qwen/Qwen3-8B', backends: ['main'], reasoning_family: 'qwen3' },
      { name: 'plain', backends: ['main'] },
      { name: 'stall-model', backends: ['stall'] },
      { name: 'hold-model', backends: ['hold'] },
      { name: 'oai-model', upstream_model: 'gpt-x', backends: ['oai'] },
    ],
    default_model: 'plain',
    signals: { keywords: [{ name: 'math', keywords: ['integral'] }] },
    decisions: [{ name: 'math', rules: { keyword: 'math' }, models: [{ model: 'qwen3-8b', reasoning: true }] }],
  });
});

// A stream as OpenAI sends it: asked for usage, every chunk has "usage":null and a usage-only
// chunk comes before [DONE]; not asked, neither.
function openAiStream(asked) {
  const base = '"id":"chatcmpl-oai","object":"chat.completion.chunk","created":1700000000,"model":"gpt-x"';
  const u = asked ? ',"usage":null' : '';
  const chunk = (delta, finish) =>
    `data: {${base},"choices":[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":${finish}}]${u}}\n\n`;
  let sse =
    chunk('{"role":"assistant","content":""}', 'null') +
    chunk('{"content":"Cats purr"}', 'null') +
    chunk('{"content":" (\\"usage\\":null stays in text)"}', 'null') +
    chunk('{}', '"stop"');
  if (asked) sse += `data: {${base},"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}\n\n`;
  return sse + 'data: [DONE]\n\n';
}

const chatUrl = () => `${router.url}/v1/chat/completions`;
const user = (text) => [{ role: 'user', content: text }];

function parseEvents(events) {
  return events.map((e) => (e.data === '[DONE]' ? '[DONE]' : JSON.parse(e.data)));
}

test('each SSE event reaches the client as soon as the upstream sends it', async () => {
  const TOKENS = 5;
  const DELAY = 250; // a 100-300 ms stall (a loaded sanitizer build) then merges two reads at most
  const res = await stream(chatUrl(), {
    model: 'auto',
    stream: true,
    messages: user('the integral of sin x'),
    mock: { tokens: TOKENS, token_delay_ms: DELAY },
  });
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^text\/event-stream/);
  assert.equal(res.headers['x-semrouter-model'], 'qwen3-8b');
  assert.equal(res.headers['x-semrouter-decision'], 'math');
  assert.equal(res.headers['x-semrouter-reasoning'], 'on');
  assert.equal(res.complete, true, 'the response ended normally');
  assert.equal(res.error, null);

  // role + TOKENS content events + the finish event + [DONE]
  assert.equal(res.events.length, TOKENS + 3, res.text);
  const parsed = parseEvents(res.events);
  assert.equal(parsed.at(-1), '[DONE]');
  assert.equal(parsed[0].choices[0].delta.role, 'assistant');
  assert.match(parsed[0].choices[0].delta.content, /model=Qwen\/Qwen3-8B reasoning=chat_template_kwargs=\{"enable_thinking":true\}/);
  for (let i = 0; i < TOKENS; ++i) {
    assert.equal(parsed[1 + i].choices[0].delta.content, ` tok${i}`);
    assert.equal(parsed[1 + i].model, 'Qwen/Qwen3-8B');
  }
  assert.equal(parsed[TOKENS + 1].choices[0].finish_reason, 'stop');

  // Timing: the events are spread over the stream's lifetime (about TOKENS * DELAY ms), not
  // delivered in one burst at the end. The bounds leave room for a loaded machine.
  const times = res.events.map((e) => e.t);
  const first = times[0];
  const last = times.at(-1);
  const spread = `arrival times (ms): ${times.map((t) => t.toFixed(0)).join(', ')}`;
  assert.ok(last - first >= (TOKENS - 2) * DELAY, `events spread over ${last - first} ms only; ${spread}`);
  assert.ok(times[1] < last - 2 * DELAY, `the first token came only near the end; ${spread}`);
  assert.ok(res.headersAt < last - 2 * DELAY, `the headers came only after ${res.headersAt} ms; ${spread}`);
  // The tokens arrive in separate network reads, not in one buffered burst (allowing two
  // coalesced pairs under load).
  const tokenReads = new Set(res.events.slice(1, TOKENS + 1).map((e) => e.t));
  assert.ok(tokenReads.size >= TOKENS - 2, `${TOKENS} tokens arrived in ${tokenReads.size} reads; ${spread}`);
});

test('a stream the upstream drops mid-way ends with an error event, not a hang', async () => {
  const t0 = performance.now();
  const res = await stream(
    chatUrl(),
    { model: 'plain', stream: true, messages: user('go'), mock: { tokens: 10, token_delay_ms: 20, drop_after: 3 } },
    { timeoutMs: 5000 },
  );
  const elapsed = performance.now() - t0;
  assert.equal(res.status, 200);
  assert.ok(elapsed < 2000, `took ${elapsed} ms`);
  const parsed = parseEvents(res.events);
  assert.ok(!parsed.includes('[DONE]'), 'a broken stream must not look finished');
  const contents = parsed.filter((p) => p !== '[DONE]' && p.choices?.[0]?.delta?.content?.startsWith(' tok'));
  assert.equal(contents.length, 3, res.text);
  const last = parsed.at(-1);
  assert.ok(last.error, `the last event is an error event: ${res.text}`);
  assert.deepEqual(Object.keys(last.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(last.error.code, 'upstream_broken');
  assert.equal(last.error.type, 'upstream_error');
  assert.ok(res.closedAt !== undefined, 'the connection was closed');
});

test('a stream that stalls longer than timeouts.idle_ms ends with a timeout error event', async () => {
  const t0 = performance.now();
  const res = await stream(
    chatUrl(),
    { model: 'stall-model', stream: true, messages: user('go'), mock: { tokens: 3, token_delay_ms: IDLE_MS + 1500 } },
    { timeoutMs: 5000 },
  );
  const elapsed = performance.now() - t0;
  assert.equal(res.status, 200);
  assert.ok(elapsed < IDLE_MS + 1200, `took ${elapsed} ms with idle_ms ${IDLE_MS}`);
  const parsed = parseEvents(res.events);
  assert.ok(!parsed.includes('[DONE]'));
  assert.equal(parsed.at(-1).error?.code, 'upstream_timeout', res.text);
});

test('a client that disconnects mid-stream makes the router close the upstream connection', async () => {
  const before = await mock.stats();
  const metricsBefore = parseMetrics(await router.metrics());
  const res = await stream(
    chatUrl(),
    { model: 'plain', stream: true, messages: user('a long answer'), mock: { tokens: 200, token_delay_ms: 20 } },
    { abortAfterEvents: 3 },
  );
  assert.equal(res.abortedByClient, true);
  assert.equal(res.events.length, 3);
  const t0 = performance.now();
  const after = await waitFor(
    async () => {
      const s = await mock.stats();
      return s.streams_aborted > before.streams_aborted ? s : null;
    },
    { timeoutMs: 3000, what: 'the mock to see its stream aborted' },
  );
  assert.equal(after.streams_aborted, before.streams_aborted + 1);
  assert.equal(after.streams_completed, before.streams_completed, 'the stream did not run to its end');
  assert.ok(performance.now() - t0 < 2000);

  // The router accounts the request as a client disconnect and has nothing left in flight.
  const m = parseMetrics(
    await waitFor(async () => {
      const text = await router.metrics();
      return /semrouter_inflight_requests 0\n/.test(text) ? text : null;
    }, { what: 'inflight back to 0' }),
  );
  const aborted = (mm) => metricValue(mm, 'semrouter_requests_total', { model: 'plain', status: '499' }) ?? 0;
  assert.equal(aborted(m), aborted(metricsBefore) + 1);

  // And it still streams normally.
  const again = await stream(chatUrl(), { model: 'plain', stream: true, messages: user('again') });
  assert.equal(again.events.at(-1).data, '[DONE]');
});

test('a client that leaves before the upstream answered makes the router hang up at once', async () => {
  for (const streamFlag of [true, false]) {
    const before = parseMetrics(await router.metrics());
    const n = held.length;
    const body = JSON.stringify({ model: 'hold-model', stream: streamFlag, messages: user('wait for it') });
    // Raw socket: send the request, wait until the upstream has it, then close.
    const socket = net.connect({ host: '127.0.0.1', port: router.port });
    await new Promise((resolve) => socket.on('connect', resolve));
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    const entry = await waitFor(() => held[n], { what: 'the request to reach the upstream' });
    const leftAt = performance.now();
    socket.destroy();
    await waitFor(() => entry.closedAt !== undefined, { timeoutMs: 3000, what: 'the router to close the upstream connection' });
    assert.ok(entry.closedAt - leftAt < 1000, `upstream closed ${entry.closedAt - leftAt} ms after the client left`);
    const after = parseMetrics(
      await waitFor(async () => {
        const text = await router.metrics();
        return /semrouter_inflight_requests 0\n/.test(text) ? text : null;
      }, { what: 'inflight back to 0' }),
    );
    const count = (m) => metricValue(m, 'semrouter_requests_total', { model: 'hold-model', status: '499' }) ?? 0;
    assert.equal(count(after), count(before) + 1, `stream=${streamFlag}`);
  }
});

test('include_usage: the usage event is relayed and counted in the metrics with time to first token', async () => {
  const before = parseMetrics(await router.metrics());
  const res = await stream(chatUrl(), {
    model: 'plain',
    stream: true,
    stream_options: { include_usage: true },
    messages: user('three word prompt'),
    mock: { tokens: 7 },
  });
  assert.equal(res.status, 200);
  const parsed = parseEvents(res.events);
  assert.equal(parsed.at(-1), '[DONE]');
  const usage = parsed.at(-2).usage;
  assert.deepEqual(usage, { prompt_tokens: 3, completion_tokens: 7, total_tokens: 10 });

  const after = parseMetrics(await router.metrics());
  assert.equal(after.types.semrouter_time_to_first_token_seconds, 'histogram');
  const count = (m) => metricValue(m, 'semrouter_time_to_first_token_seconds_count', { model: 'plain' }) ?? 0;
  assert.equal(count(after), count(before) + 1);
  const inf = metricValue(after, 'semrouter_time_to_first_token_seconds_bucket', { model: 'plain', le: '+Inf' });
  assert.equal(inf, count(after));
  const tokens = (m, name) => metricValue(m, name, { model: 'plain' }) ?? 0;
  assert.equal(
    tokens(after, 'semrouter_completion_tokens_total'),
    tokens(before, 'semrouter_completion_tokens_total') + 7,
  );
  assert.equal(tokens(after, 'semrouter_prompt_tokens_total'), tokens(before, 'semrouter_prompt_tokens_total') + 3);
});

test('without include_usage the router asks for usage itself: the client gets no usage chunk, the metrics count the tokens', async () => {
  const before = parseMetrics(await router.metrics());
  const res = await stream(chatUrl(), {
    model: 'plain',
    stream: true,
    messages: user('three word prompt'),
    mock: { tokens: 7 },
  });
  assert.equal(res.status, 200);
  const parsed = parseEvents(res.events);
  // role + 7 content events + the finish event + [DONE]: no usage-only chunk, no usage anywhere
  assert.equal(parsed.length, 10, res.text);
  assert.equal(parsed.at(-1), '[DONE]');
  for (const p of parsed.slice(0, -1)) {
    assert.equal(p.choices.length, 1, res.text);
    assert.equal('usage' in p, false, res.text);
  }
  const after = parseMetrics(await router.metrics());
  const tokens = (m, name) => metricValue(m, name, { model: 'plain' }) ?? 0;
  assert.equal(
    tokens(after, 'semrouter_completion_tokens_total'),
    tokens(before, 'semrouter_completion_tokens_total') + 7,
  );
  assert.equal(tokens(after, 'semrouter_prompt_tokens_total'), tokens(before, 'semrouter_prompt_tokens_total') + 3);
});

test('an OpenAI stream split mid-event: the client that did not ask gets it byte for byte as if unasked; one that asked, as sent', async () => {
  const tokens = (m, name) => metricValue(m, name, { model: 'oai-model' }) ?? 0;
  const before = parseMetrics(await router.metrics());
  oaiBodies.length = 0;
  const unasked = await stream(chatUrl(), { model: 'oai-model', stream: true, messages: user('how do cats purr?') });
  assert.equal(unasked.status, 200);
  assert.equal(unasked.complete, true);
  assert.deepEqual(oaiBodies[0].stream_options, { include_usage: true });
  assert.equal(unasked.text, openAiStream(false));

  const asked = await stream(chatUrl(), {
    model: 'oai-model',
    stream: true,
    stream_options: { include_usage: true },
    messages: user('how do cats purr?'),
  });
  assert.equal(asked.status, 200);
  assert.deepEqual(oaiBodies[1].stream_options, { include_usage: true });
  assert.equal(asked.text, openAiStream(true));

  const after = parseMetrics(await router.metrics());
  assert.equal(tokens(after, 'semrouter_completion_tokens_total'), tokens(before, 'semrouter_completion_tokens_total') + 10);
  assert.equal(tokens(after, 'semrouter_prompt_tokens_total'), tokens(before, 'semrouter_prompt_tokens_total') + 22);
});

test("a key that streams without include_usage is charged the answer's completion tokens", async () => {
  const secret = 'sk-streaming-usage-5f6e7d';
  const keyed = await h.startRouter({
    server: { workers: 1, reload_poll_ms: 0 },
    backends: [{ name: 'main', url: mock.url }],
    models: [{ name: 'plain', backends: ['main'], pricing: { input_per_1m: 1, output_per_1m: 1000 } }],
    default_model: 'plain',
    auth: { keys: [{ name: 'streamer', sha256: createHash('sha256').update(secret).digest('hex') }] },
  });
  const res = await stream(
    `${keyed.url}/v1/chat/completions`,
    { model: 'plain', stream: true, messages: user('three word prompt'), mock: { tokens: 7 } },
    { headers: { authorization: `Bearer ${secret}` } },
  );
  assert.equal(res.status, 200);
  assert.equal(res.events.length, 10, res.text);
  assert.equal(res.text.includes('"usage"'), false, res.text);
  const m = await waitFor(async () => {
    const parsed = parseMetrics(await keyed.metrics());
    return metricValue(parsed, 'semrouter_key_requests_total', { key: 'streamer' }) === 1 ? parsed : null;
  }, { what: 'the request settled' });
  assert.equal(metricValue(m, 'semrouter_key_tokens_total', { key: 'streamer', kind: 'completion' }), 7);
  assert.equal(metricValue(m, 'semrouter_key_tokens_total', { key: 'streamer', kind: 'prompt' }), 3);
  const cost = metricValue(m, 'semrouter_key_cost_usd_total', { key: 'streamer' });
  assert.ok(Math.abs(cost - (3 * 1 + 7 * 1000) / 1e6) < 1e-9, String(cost));
});

test('ext_proc: the usage chunk the router asked for is cut from the streamed pieces Envoy relays', async () => {
  // Imported here: only this test needs gRPC (NODE_PATH=tests/node/node_modules, as ctest sets).
  const { connect, envoyExchange } = await import('./envoy_sim.mjs');
  const ep = await h.startRouter({
    server: { workers: 1, reload_poll_ms: 0 },
    listeners: {
      gateway: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      extproc: { address: '127.0.0.1', port: 0 },
    },
    backends: [{ name: 'main', url: mock.url }],
    models: [{ name: 'plain', backends: ['main'] }],
    default_model: 'plain',
  });
  const client = connect(ep.extprocPort);
  for (const asked of [false, true]) {
    const before = parseMetrics(await ep.metrics());
    const json = { model: 'plain', stream: true, messages: user('three word prompt'), mock: { tokens: 4 } };
    if (asked) json.stream_options = { include_usage: true };
    const r = await envoyExchange(client, { json, clusters: { main: mock.origin } });
    assert.equal(r.streamed, true);
    assert.deepEqual(JSON.parse(r.upstreamRequest.body).stream_options, { include_usage: true });
    assert.match(r.response.body, /"choices":\[\],"usage":\{/, 'the upstream sent the usage chunk');
    // What Envoy relays: each piece as the router answered it (a body mutation, or unchanged).
    const pieces = [...r.response.chunks, Buffer.alloc(0)];
    const answers = r.messages.filter((m) => m.response_body);
    assert.equal(answers.length, pieces.length);
    const relayed = answers
      .map((m, i) => {
        const mutation = m.response_body.response?.body_mutation;
        return mutation?.body !== undefined ? Buffer.from(mutation.body).toString('utf8') : pieces[i].toString('utf8');
      })
      .join('');
    const removed = r.messages.find((m) => m.response_headers)?.response_headers.response?.header_mutation?.remove_headers ?? [];
    if (asked) {
      assert.equal(relayed, r.response.body, 'a client that asked gets the stream as sent');
      assert.equal(removed.includes('content-length'), false);
    } else {
      assert.equal(relayed, r.response.body.replace(/data: \{[^\n]*"choices":\[\],"usage":\{[^\n]*\n\n/, ''));
      assert.equal(relayed.includes('"usage"'), false, relayed);
      assert.match(relayed, /data: \[DONE\]\n\n$/);
      assert.ok(removed.includes('content-length'), 'the relayed body is shorter than the upstream\'s');
    }
    const after = parseMetrics(await ep.metrics());
    const delta = (name) => (metricValue(after, name, { model: 'plain' }) ?? 0) - (metricValue(before, name, { model: 'plain' }) ?? 0);
    assert.equal(delta('semrouter_completion_tokens_total'), 4, `asked=${asked}`);
  }
  client.close();
});

test('streaming /v1/completions is relayed too, its usage asked for and counted but not shown', async () => {
  const before = parseMetrics(await router.metrics());
  const res = await stream(`${router.url}/v1/completions`, {
    model: 'auto',
    stream: true,
    prompt: 'an integral',
    mock: { tokens: 4, token_delay_ms: 10 },
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-semrouter-decision'], 'math');
  const parsed = parseEvents(res.events);
  assert.equal(parsed.at(-1), '[DONE]');
  assert.equal(parsed[0].object, 'text_completion.chunk');
  assert.equal(parsed.filter((p) => p !== '[DONE]' && /^ tok\d$/.test(p.choices[0].text)).length, 4);
  assert.equal(res.text.includes('"usage"'), false, res.text);
  const after = parseMetrics(await router.metrics());
  const model = res.headers['x-semrouter-model'];
  const tokens = (m) => metricValue(m, 'semrouter_completion_tokens_total', { model }) ?? 0;
  assert.equal(tokens(after), tokens(before) + 4, `completion tokens of ${model}`);
});

test('several concurrent streams are relayed independently', async () => {
  const results = await Promise.all(
    [0, 1, 2, 3].map((i) =>
      stream(chatUrl(), {
        model: 'plain',
        stream: true,
        messages: user(`stream ${i}`),
        mock: { tokens: 5, token_delay_ms: 40 },
      }),
    ),
  );
  for (const res of results) {
    assert.equal(res.status, 200);
    assert.equal(res.events.length, 8);
    assert.equal(res.events.at(-1).data, '[DONE]');
    assert.equal(res.complete, true);
  }
  // A stream's exchange finishes after its last byte has gone out, maybe on another worker.
  await waitFor(async () => metricValue(parseMetrics(await router.metrics()), 'semrouter_inflight_requests') === 0, {
    what: 'semrouter_inflight_requests to drop to 0',
  });
});

test('a non-streaming request after all of this still works', async () => {
  const res = await request(chatUrl(), { method: 'POST', json: { model: 'plain', messages: user('done') } });
  assert.equal(res.status, 200, res.text);
});
