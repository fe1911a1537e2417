// Anthropic's Messages API through the router, with the official SDKs as clients: an Anthropic
// client routed to OpenAI-shaped backends (the mock, an in-process tool-calling server), answers
// translated back into Anthropic's shapes, streamed or whole; an Anthropic backend that gets
// Messages requests with its own key; and the reverse, OpenAI chat clients routed to that
// Anthropic backend. Errors reach each client in its own API's shape.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createRequire } from 'node:module';

import { setup, request, stream, assertOpenAIError, loadOpenAI, SOURCE_DIR } from './harness.mjs';

const h = setup('anthropic');
const BACKEND_KEY = 'sk-ant-backend-secret';
const CLIENT_KEY = 'sk-ant-client-key';
const CLAUDE = 'claude-sonnet-4-5';

// The official Anthropic SDK from tests/node/node_modules, found like harness.mjs's loadOpenAI.
function loadAnthropic() {
  const nodeDir = path.join(SOURCE_DIR, 'tests', 'node');
  const require = createRequire(path.join(nodeDir, 'package.json'));
  let mod;
  try {
    mod = require('@anthropic-ai/sdk');
  } catch (e) {
    throw new Error(`the Anthropic SDK is not installed: run \`npm ci\` in ${nodeDir} (${e.message})`);
  }
  return mod.Anthropic ?? mod.default ?? mod;
}

function readBody(req) {
  return new Promise((resolve) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', () => resolve(body));
  });
}

const sseData = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
const sseEvent = (obj) => `event: ${obj.type}\ndata: ${JSON.stringify(obj)}\n\n`;

// ---------------------------------------------------------------------------------------------
// An OpenAI-shaped chat server: with tools (and no tool result yet) it asks for get_weather;
// otherwise it answers text. Records every request.

const chatSeen = [];
const TOOL_ARGS = '{"city":"Paris","unit":"celsius"}';

function chatAnswer(json) {
  const wantsTool = Array.isArray(json.tools) && json.tools.length > 0 && json.messages.at(-1)?.role !== 'tool';
  const base = { id: 'chatcmpl-tools-1', created: 1700000000, model: json.model };
  const usage = { prompt_tokens: 21, completion_tokens: 9, total_tokens: 30 };
  const finish = json.model === 'cut' ? 'length' : 'stop';
  if (!json.stream) {
    const message = wantsTool
      ? { role: 'assistant', content: null,
          tool_calls: [{ id: 'call_w1', type: 'function', function: { name: 'get_weather', arguments: TOOL_ARGS } }] }
      : { role: 'assistant', content: 'It is 18 degrees in Paris.' };
    return { json: { ...base, object: 'chat.completion',
      choices: [{ index: 0, message, finish_reason: wantsTool ? 'tool_calls' : finish }], usage } };
  }
  const chunk = (delta, finish = null) =>
    sseData({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] });
  let sse = chunk({ role: 'assistant', content: '' });
  if (wantsTool) {
    sse += chunk({ content: 'Let me check.' });
    sse += chunk({ tool_calls: [{ index: 0, id: 'call_w2', type: 'function', function: { name: 'get_weather', arguments: '' } }] });
    for (const piece of ['{"city":', '"Paris",', '"unit":"celsius"}'])
      sse += chunk({ tool_calls: [{ index: 0, function: { arguments: piece } }] });
    sse += chunk({}, 'tool_calls');
  } else {
    for (const piece of ['It is ', '18 degrees ', 'in Paris.']) sse += chunk({ content: piece });
    sse += chunk({}, finish);
  }
  if (json.stream_options?.include_usage)
    sse += sseData({ ...base, object: 'chat.completion.chunk', choices: [], usage });
  return { sse: sse + 'data: [DONE]\n\n' };
}

// ---------------------------------------------------------------------------------------------
// An Anthropic-shaped Messages server. Model claude-429 answers Anthropic's rate-limit error.

const anthSeen = [];
const CLAUDE_TEXT = 'Hello from Claude';
const CLAUDE_MESSAGE = {
  id: 'msg_01TestPlain',
  type: 'message',
  role: 'assistant',
  model: CLAUDE,
  content: [{ type: 'text', text: CLAUDE_TEXT }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage: { input_tokens: 12, output_tokens: 4 },
};
const CLAUDE_TOOL_MESSAGE = {
  ...CLAUDE_MESSAGE,
  id: 'msg_01TestTool',
  content: [
    { type: 'text', text: 'Let me look that up.' },
    { type: 'tool_use', id: 'toolu_01A', name: 'get_weather', input: { city: 'Paris', unit: 'celsius' } },
  ],
  stop_reason: 'tool_use',
  usage: { input_tokens: 30, output_tokens: 20 },
};
const RATE_LIMIT = {
  type: 'error',
  error: { type: 'rate_limit_error', message: 'Number of request tokens has exceeded your per-minute rate limit' },
};

function anthropicStream(tool) {
  let sse = sseEvent({ type: 'message_start', message: { ...CLAUDE_MESSAGE, id: 'msg_01TestStream', content: [],
    stop_reason: null, usage: { input_tokens: 12, output_tokens: 1 } } });
  sse += sseEvent({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
  sse += sseEvent({ type: 'ping' });
  for (const piece of tool ? ['Let me ', 'look that up.'] : ['Hello', ' from', ' Claude'])
    sse += sseEvent({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: piece } });
  sse += sseEvent({ type: 'content_block_stop', index: 0 });
  if (tool) {
    sse += sseEvent({ type: 'content_block_start', index: 1,
      content_block: { type: 'tool_use', id: 'toolu_01S', name: 'get_weather', input: {} } });
    for (const piece of ['{"city": "Pa', 'ris", "unit"', ': "celsius"}'])
      sse += sseEvent({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: piece } });
    sse += sseEvent({ type: 'content_block_stop', index: 1 });
  }
  sse += sseEvent({ type: 'message_delta', delta: { stop_reason: tool ? 'tool_use' : 'end_turn', stop_sequence: null },
    usage: { output_tokens: tool ? 20 : 4 } });
  sse += sseEvent({ type: 'message_stop' });
  return sse;
}

const lastUserHasToolResult = (json) => {
  const last = json.messages?.at(-1);
  return Array.isArray(last?.content) && last.content.some((b) => b.type === 'tool_result');
};

const SLOW_TOKENS = 5;
const SLOW_DELAY_MS = 250; // the spread asserted on it leaves 500 ms for stalls of a loaded machine
let mock, slowMock, chatServer, anthServer, router, Anthropic, OpenAI, anthropic, openai;

before(async () => {
  Anthropic = loadAnthropic();
  OpenAI = loadOpenAI();
  mock = await h.startMock({ name: 'A', tokens: 4 });
  slowMock = await h.startMock({ name: 'S', tokens: SLOW_TOKENS, tokenDelayMs: SLOW_DELAY_MS });
  chatServer = await h.startHttpServer(async (req, res) => {
    const body = await readBody(req);
    const json = JSON.parse(body);
    chatSeen.push({ url: req.url, headers: req.headers, json });
    if (json.model === 'limited') {
      res.writeHead(429, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"slow down, please","type":"rate_limit_error","param":null,"code":"rate_limited"}}');
      return;
    }
    if (json.model === 'noindex') {
      // Ollama before 0.4.7 and some Gemini proxies: tool calls streamed whole, without an index.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (delta, finish = null) => sseData({ id: 'chatcmpl-noindex', object: 'chat.completion.chunk',
        created: 1700000000, model: 'noindex', choices: [{ index: 0, delta, finish_reason: finish }] });
      res.end(chunk({ role: 'assistant', content: '' }) +
        chunk({ tool_calls: [{ id: 'call_n1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] }) +
        chunk({ tool_calls: [{ id: 'call_n2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] }) +
        chunk({}, 'tool_calls') + 'data: [DONE]\n\n');
      return;
    }
    if (json.model === 'broken') {
      // Two chunks, then the connection breaks off.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (delta) => sseData({ id: 'chatcmpl-broken', object: 'chat.completion.chunk', created: 1700000000,
        model: 'broken', choices: [{ index: 0, delta, finish_reason: null }] });
      res.write(chunk({ role: 'assistant', content: 'Half ' }));
      res.write(chunk({ content: 'an answer' }), () => res.socket.destroy());
      return;
    }
    const answer = chatAnswer(json);
    if (answer.sse) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(answer.sse);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer.json));
  });
  anthServer = await h.startHttpServer(async (req, res) => {
    const body = await readBody(req);
    const json = JSON.parse(body);
    anthSeen.push({ method: req.method, url: req.url, headers: req.headers, json });
    if (json.model === 'claude-429') {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '3' });
      res.end(JSON.stringify(RATE_LIMIT));
      return;
    }
    const tool = Array.isArray(json.tools) && json.tools.length > 0 && !lastUserHasToolResult(json);
    if (json.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(anthropicStream(tool));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(tool ? CLAUDE_TOOL_MESSAGE : CLAUDE_MESSAGE));
  });
  router = await h.startRouter(
    {
      server: { workers: 1, reload_poll_ms: 0 },
      backends: [
        { name: 'mock', provider: 'vllm', url: mock.url },
        { name: 'tools', provider: 'vllm', url: chatServer.url },
        { name: 'slow-mock', provider: 'vllm', url: slowMock.url },
        // No path: the default prefix /v1, so the calls go to /v1/messages.
        { name: 'claude', provider: 'anthropic', url: anthServer.origin, api_key_env: 'SEMROUTER_IT_ANTHROPIC_KEY' },
      ],
      models: [
        { name: 'local', upstream_model: 'Qwen/Qwen3-8B', backends: ['mock'] },
        { name: 'slow', upstream_model: 'slow-model', backends: ['slow-mock'] },
        { name: 'tooler', upstream_model: 'tool-model', backends: ['tools'] },
        { name: 'tools-limited', upstream_model: 'limited', backends: ['tools'] },
        { name: 'tools-broken', upstream_model: 'broken', backends: ['tools'] },
        { name: 'tools-noindex', upstream_model: 'noindex', backends: ['tools'] },
        { name: 'tools-cut', upstream_model: 'cut', backends: ['tools'] },
        { name: 'claude', upstream_model: CLAUDE, backends: ['claude'] },
        { name: 'claude-limited', upstream_model: 'claude-429', backends: ['claude'] },
      ],
      default_model: 'local',
    },
    { env: { SEMROUTER_IT_ANTHROPIC_KEY: BACKEND_KEY } },
  );
  anthropic = new Anthropic({ baseURL: router.url, apiKey: CLIENT_KEY, maxRetries: 0, timeout: 10_000 });
  openai = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: 'sk-openai-client', maxRetries: 0, timeout: 10_000 });
});

const WEATHER_SCHEMA = {
  type: 'object',
  properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
  required: ['city'],
};
const WEATHER_TOOL = { name: 'get_weather', description: 'Current weather in a city', input_schema: WEATHER_SCHEMA };
const ask = (text) => [{ role: 'user', content: text }];

// ---------------------------------------------------------------------------------------------
// An Anthropic client, OpenAI-shaped backends

test('messages.create with model auto to an OpenAI-shaped backend: a text message, end_turn, usage', async () => {
  const { data: msg, response } = await anthropic.messages
    .create({ model: 'auto', max_tokens: 256, system: 'Be brief.', messages: ask('Hello there, who are you?') })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-semrouter-model'), 'local');
  assert.match(response.headers.get('content-type'), /^application\/json/);
  assert.equal(msg.type, 'message');
  assert.equal(msg.role, 'assistant');
  assert.match(msg.id, /^msg_/);
  assert.equal(msg.content.length, 1);
  assert.equal(msg.content[0].type, 'text');
  assert.match(msg.content[0].text, /^\[A\] model=Qwen\/Qwen3-8B reasoning=none tok0 tok1 tok2 tok3$/);
  assert.equal(msg.stop_reason, 'end_turn');
  assert.equal(msg.stop_sequence ?? null, null);
  assert.equal(typeof msg.usage.input_tokens, 'number');
  assert.ok(msg.usage.input_tokens > 0, JSON.stringify(msg.usage));
  assert.equal(msg.usage.output_tokens, 4);
});

test('messages.stream to an OpenAI-shaped backend: Anthropic events, final text = the deltas', async () => {
  const types = [];
  let deltas = '';
  const s = anthropic.messages.stream({ model: 'auto', max_tokens: 256, messages: ask('stream me a greeting') });
  s.on('streamEvent', (event) => types.push(event.type));
  s.on('text', (delta) => (deltas += delta));
  const msg = await s.finalMessage();
  assert.equal(msg.content.length, 1);
  assert.equal(msg.content[0].type, 'text');
  assert.equal(msg.content[0].text, deltas);
  assert.match(deltas, /^\[A\] model=Qwen\/Qwen3-8B reasoning=none tok0 tok1 tok2 tok3$/);
  assert.equal(msg.stop_reason, 'end_turn');
  assert.equal(msg.usage.output_tokens, 4);
  assert.ok(msg.usage.input_tokens > 0, JSON.stringify(msg.usage));
  // Order: message_start, then the block, then message_delta and message_stop last.
  assert.equal(types[0], 'message_start', types.join(' '));
  assert.equal(types.at(-1), 'message_stop', types.join(' '));
  assert.equal(types.at(-2), 'message_delta', types.join(' '));
  const firstDelta = types.indexOf('content_block_delta');
  assert.ok(firstDelta > types.indexOf('content_block_start'), types.join(' '));
  assert.ok(firstDelta < types.indexOf('content_block_stop'), types.join(' '));
  assert.ok(types.lastIndexOf('content_block_delta') < types.indexOf('message_delta'), types.join(' '));
  assert.ok(types.filter((t) => t === 'content_block_delta').length >= 4, types.join(' '));
});

test('the raw stream carries Anthropic event names and text/event-stream', async () => {
  const r = await stream(`${router.url}/v1/messages`, { model: 'auto', max_tokens: 64, stream: true, messages: ask('raw please') },
    { headers: { 'x-api-key': CLIENT_KEY, 'anthropic-version': '2023-06-01' } });
  assert.equal(r.status, 200);
  assert.ok(r.complete, r.text);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  const names = [...r.text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
  const dataTypes = r.events.map((e) => JSON.parse(e.data).type);
  assert.deepEqual(names, dataTypes, 'each event: line names its data type');
  assert.doesNotMatch(r.text, /\[DONE\]|chat\.completion/);
});

test('the translated stream reaches the client as the tokens arrive, not in one burst at the end', async () => {
  const r = await stream(`${router.url}/v1/messages`, { model: 'slow', max_tokens: 64, stream: true, messages: ask('take your time') },
    { headers: { 'x-api-key': CLIENT_KEY } });
  assert.equal(r.status, 200);
  assert.ok(r.complete, r.text);
  const deltas = r.events.filter((e) => JSON.parse(e.data).type === 'content_block_delta');
  // The mock's first event carries its header text, then one token every SLOW_DELAY_MS.
  assert.equal(deltas.length, SLOW_TOKENS + 1, r.text);
  const times = deltas.map((e) => e.t);
  const spread = `arrival times (ms): ${times.map((t) => t.toFixed(0)).join(', ')}`;
  assert.ok(times.at(-1) - times[0] >= (SLOW_TOKENS - 2) * SLOW_DELAY_MS, spread);
  assert.ok(r.headersAt < times.at(-1) - 2 * SLOW_DELAY_MS, `headers after ${r.headersAt} ms; ${spread}`);
});

test('a tool call (whole): tool_use with a parsed input, tool_use stop; tools and results reach chat in its shape', async () => {
  chatSeen.length = 0;
  const first = await anthropic.messages.create({
    model: 'tooler',
    max_tokens: 512,
    tools: [WEATHER_TOOL],
    messages: ask('What is the weather in Paris?'),
  });
  assert.equal(first.stop_reason, 'tool_use');
  const use = first.content.find((b) => b.type === 'tool_use');
  assert.ok(use, JSON.stringify(first.content));
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Paris', unit: 'celsius' });
  assert.match(use.id, /^[a-zA-Z0-9_-]+$/);
  assert.equal(first.usage.input_tokens, 21);
  assert.equal(first.usage.output_tokens, 9);

  assert.equal(chatSeen.length, 1);
  assert.equal(chatSeen[0].url, '/v1/chat/completions');
  assert.equal(chatSeen[0].json.model, 'tool-model');
  assert.equal(chatSeen[0].json.max_tokens, 512);
  assert.deepEqual(chatSeen[0].json.tools, [
    { type: 'function', function: { name: 'get_weather', description: 'Current weather in a city', parameters: WEATHER_SCHEMA } },
  ]);

  // The second turn: the assistant's tool_use and the user's tool_result.
  const second = await anthropic.messages.create({
    model: 'tooler',
    max_tokens: 512,
    tools: [WEATHER_TOOL],
    messages: [
      ...ask('What is the weather in Paris?'),
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18 degrees, sunny' }] },
    ],
  });
  assert.equal(second.stop_reason, 'end_turn');
  assert.deepEqual(second.content, [{ type: 'text', text: 'It is 18 degrees in Paris.' }]);
  const upstream = chatSeen[1].json.messages;
  assert.deepEqual(upstream.at(-1), { role: 'tool', tool_call_id: use.id, content: '18 degrees, sunny' });
  const assistant = upstream.at(-2);
  assert.equal(assistant.role, 'assistant');
  assert.equal(assistant.tool_calls.length, 1);
  assert.equal(assistant.tool_calls[0].id, use.id);
  assert.equal(assistant.tool_calls[0].type, 'function');
  assert.equal(assistant.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(assistant.tool_calls[0].function.arguments), { city: 'Paris', unit: 'celsius' });
});

test('a tool call (streamed): text then tool_use blocks, the input assembled from the argument pieces', async () => {
  chatSeen.length = 0;
  const types = [];
  const s = anthropic.messages.stream({
    model: 'tooler',
    max_tokens: 512,
    tools: [WEATHER_TOOL],
    messages: ask('What is the weather in Paris? Stream it.'),
  });
  s.on('streamEvent', (event) => types.push(event.type));
  const msg = await s.finalMessage();
  assert.equal(msg.stop_reason, 'tool_use');
  assert.equal(msg.content.length, 2, JSON.stringify(msg.content));
  assert.deepEqual(msg.content[0], { type: 'text', text: 'Let me check.' });
  assert.equal(msg.content[1].type, 'tool_use');
  assert.equal(msg.content[1].id, 'call_w2');
  assert.equal(msg.content[1].name, 'get_weather');
  assert.deepEqual(msg.content[1].input, { city: 'Paris', unit: 'celsius' });
  assert.equal(msg.usage.output_tokens, 9);
  assert.equal(types[0], 'message_start');
  assert.equal(types.at(-1), 'message_stop');
  assert.equal(chatSeen.length, 1);
  assert.equal(chatSeen[0].json.stream, true);
  assert.deepEqual(chatSeen[0].json.tools[0].function.parameters, WEATHER_SCHEMA);
  assert.equal(chatSeen[0].json.tools[0].type, 'function');
});

test('streamed tool calls without an index (one whole call per chunk) become separate tool_use blocks', async () => {
  const msg = await anthropic.messages
    .stream({ model: 'tools-noindex', max_tokens: 64, tools: [WEATHER_TOOL], messages: ask('Paris and Oslo?') })
    .finalMessage();
  assert.equal(msg.stop_reason, 'tool_use');
  assert.deepEqual(msg.content, [
    { type: 'tool_use', id: 'call_n1', name: 'get_weather', input: { city: 'Paris' } },
    { type: 'tool_use', id: 'call_n2', name: 'get_weather', input: { city: 'Oslo' } },
  ]);
});

test('tool_choice and stop_sequences become their chat counterparts; length becomes max_tokens', async () => {
  chatSeen.length = 0;
  const msg = await anthropic.messages.create({
    model: 'tools-cut',
    max_tokens: 16,
    stop_sequences: ['\n\nHuman:'],
    temperature: 0.2,
    tools: [WEATHER_TOOL],
    tool_choice: { type: 'any' },
    messages: ask('Use the tool.'),
  });
  const sent = chatSeen[0].json;
  assert.equal(sent.tool_choice, 'required');
  assert.deepEqual(sent.stop, ['\n\nHuman:']);
  assert.equal(sent.temperature, 0.2);
  assert.equal(msg.stop_reason, 'tool_use');

  const cut = await anthropic.messages.create({ model: 'tools-cut', max_tokens: 16, messages: ask('Tell me everything.') });
  assert.equal(cut.stop_reason, 'max_tokens');
  const s = anthropic.messages.stream({ model: 'tools-cut', max_tokens: 16, messages: ask('Tell me everything.') });
  assert.equal((await s.finalMessage()).stop_reason, 'max_tokens');
});

test('an OpenAI-shaped backend\'s 429 reaches the Anthropic client as an Anthropic rate_limit_error', async () => {
  await assert.rejects(
    anthropic.messages.create({ model: 'tools-limited', max_tokens: 10, messages: ask('x') }),
    (e) => {
      assert.ok(e instanceof Anthropic.RateLimitError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 429);
      assert.deepEqual(e.error, { type: 'error', error: { type: 'rate_limit_error', message: 'slow down, please' } });
      return true;
    },
  );
  // Asked for a stream, answered with an error before it began: a plain Anthropic error body.
  const res = await request(`${router.url}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': CLIENT_KEY },
    json: { model: 'tools-limited', max_tokens: 10, stream: true, messages: ask('x') },
  });
  assert.equal(res.status, 429);
  assert.equal(res.json?.type, 'error', res.text);
  assert.equal(res.json.error.type, 'rate_limit_error');
});

test('a chat stream broken off upstream ends the Anthropic stream with an error event the SDK raises', async () => {
  const types = [];
  const s = anthropic.messages.stream({ model: 'tools-broken', max_tokens: 64, messages: ask('x') });
  s.on('streamEvent', (event) => types.push(event.type));
  s.on('error', () => {}); // finalMessage() below reports it
  await assert.rejects(s.finalMessage(), (e) => {
    assert.ok(e instanceof Anthropic.APIError, `${e.constructor.name}: ${e.message}`);
    assert.match(e.message, /broken off/);
    return true;
  });
  assert.equal(types[0], 'message_start', types.join(' '));
  assert.ok(!types.includes('message_stop'), types.join(' '));

  const raw = await stream(`${router.url}/v1/messages`, { model: 'tools-broken', max_tokens: 64, stream: true, messages: ask('x') },
    { headers: { 'x-api-key': CLIENT_KEY } });
  assert.equal(raw.status, 200);
  const last = JSON.parse(raw.events.at(-1).data);
  assert.equal(last.type, 'error', raw.text);
  assert.equal(last.error.type, 'api_error');
  assert.match(raw.text, /event: error\n/);
});

// ---------------------------------------------------------------------------------------------
// An Anthropic client, an Anthropic backend

test('messages.create to an Anthropic backend: /v1/messages with the backend key; the answer as it came', async () => {
  anthSeen.length = 0;
  const { data: msg, response } = await anthropic.messages
    .create({ model: 'claude', max_tokens: 300, system: 'Be brief.', messages: ask('Say hello') },
      { headers: { 'anthropic-beta': 'token-efficient-tools-2025-02-19' } })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-semrouter-model'), 'claude');
  assert.deepEqual(msg, CLAUDE_MESSAGE);
  assert.equal(anthSeen.length, 1);
  const seen = anthSeen[0];
  assert.equal(seen.method, 'POST');
  assert.equal(seen.url, '/v1/messages');
  assert.equal(seen.headers['x-api-key'], BACKEND_KEY);
  assert.equal(seen.headers['anthropic-version'], '2023-06-01'); // one header: the backend's
  assert.equal(seen.headers['anthropic-beta'], 'token-efficient-tools-2025-02-19');
  assert.equal(seen.headers.authorization, undefined);
  assert.doesNotMatch(JSON.stringify(seen.headers), new RegExp(CLIENT_KEY));
  assert.equal(seen.json.model, CLAUDE);
  assert.equal(seen.json.max_tokens, 300);
  assert.equal(seen.json.system, 'Be brief.');
  assert.deepEqual(seen.json.messages.map((m) => m.role), ['user']);
  const content = seen.json.messages[0].content;
  assert.equal(typeof content === 'string' ? content : content.map((b) => b.text).join(''), 'Say hello');

  // Byte for byte, without the SDK; the client's anthropic-version is not the one sent upstream.
  const raw = await request(`${router.url}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': CLIENT_KEY, 'anthropic-version': '2099-01-01' },
    json: { model: 'claude', max_tokens: 30, messages: ask('raw') },
  });
  assert.equal(raw.status, 200);
  assert.equal(raw.text, JSON.stringify(CLAUDE_MESSAGE));
  assert.equal(anthSeen[1].headers['anthropic-version'], '2023-06-01');
  assert.equal(anthSeen[1].headers['x-api-key'], BACKEND_KEY);
});

test('messages.stream to an Anthropic backend: the events relayed byte for byte', async () => {
  anthSeen.length = 0;
  const types = [];
  const s = anthropic.messages.stream({ model: 'claude', max_tokens: 300, messages: ask('Stream a hello') });
  s.on('streamEvent', (event) => types.push(event.type));
  const msg = await s.finalMessage();
  assert.equal(msg.content[0].text, CLAUDE_TEXT);
  assert.equal(msg.stop_reason, 'end_turn');
  assert.equal(msg.usage.output_tokens, 4);
  // (The SDK drops ping events; the raw relay below shows them.)
  assert.deepEqual(types, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta',
    'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  assert.equal(anthSeen[0].url, '/v1/messages');
  assert.equal(anthSeen[0].headers['x-api-key'], BACKEND_KEY);
  assert.equal(anthSeen[0].json.stream, true);
  assert.equal(anthSeen[0].json.model, CLAUDE);

  const raw = await stream(`${router.url}/v1/messages`, { model: 'claude', max_tokens: 30, stream: true, messages: ask('raw') },
    { headers: { 'x-api-key': CLIENT_KEY, 'anthropic-version': '2023-06-01' } });
  assert.equal(raw.status, 200);
  assert.ok(raw.complete);
  assert.equal(raw.text, anthropicStream(false));
});

test('an Anthropic tool call to an Anthropic backend (whole): tool_use with its input, tool_use stop, usage; the result back', async () => {
  anthSeen.length = 0;
  const first = await anthropic.messages.create({
    model: 'claude',
    max_tokens: 512,
    tools: [WEATHER_TOOL],
    messages: ask('What is the weather in Paris?'),
  });
  // The backend got a Messages request with the tool in its own shape, under the backend's key.
  assert.equal(anthSeen.length, 1);
  assert.equal(anthSeen[0].url, '/v1/messages');
  assert.equal(anthSeen[0].headers['x-api-key'], BACKEND_KEY);
  assert.equal(anthSeen[0].json.model, CLAUDE);
  assert.equal(anthSeen[0].json.max_tokens, 512);
  assert.deepEqual(anthSeen[0].json.tools, [WEATHER_TOOL]);
  assert.notEqual(anthSeen[0].json.stream, true);

  assert.equal(first.type, 'message');
  assert.equal(first.id, 'msg_01TestTool');
  assert.equal(first.stop_reason, 'tool_use');
  assert.deepEqual(first.usage, { input_tokens: 30, output_tokens: 20 });
  assert.equal(first.content.length, 2, JSON.stringify(first.content));
  assert.deepEqual(first.content[0], { type: 'text', text: 'Let me look that up.' });
  const use = first.content[1];
  assert.equal(use.type, 'tool_use');
  assert.equal(use.id, 'toolu_01A');
  assert.equal(use.name, 'get_weather');
  assert.deepEqual(use.input, { city: 'Paris', unit: 'celsius' });

  // The second turn: the assistant's tool_use and the user's tool_result reach the backend as
  // Anthropic blocks, and the text answer comes back.
  const second = await anthropic.messages.create({
    model: 'claude',
    max_tokens: 512,
    tools: [WEATHER_TOOL],
    messages: [
      ...ask('What is the weather in Paris?'),
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '18 degrees, sunny' }] },
    ],
  });
  assert.equal(second.stop_reason, 'end_turn');
  assert.deepEqual(second.content, [{ type: 'text', text: CLAUDE_TEXT }]);
  const sent = anthSeen[1].json.messages;
  assert.deepEqual(sent.map((m) => m.role), ['user', 'assistant', 'user']);
  assert.deepEqual(sent[1].content.find((b) => b.type === 'tool_use'),
    { type: 'tool_use', id: 'toolu_01A', name: 'get_weather', input: { city: 'Paris', unit: 'celsius' } });
  const result = sent[2].content.find((b) => b.type === 'tool_result');
  assert.equal(result?.tool_use_id, 'toolu_01A', JSON.stringify(sent[2]));
  const resultText = typeof result.content === 'string' ? result.content : result.content.map((b) => b.text).join('');
  assert.equal(resultText, '18 degrees, sunny');
});

test('an Anthropic tool call to an Anthropic backend (streamed): a tool_use block, input_json_delta pieces, tool_use stop', async () => {
  anthSeen.length = 0;
  const events = [];
  const s = anthropic.messages.stream({
    model: 'claude',
    max_tokens: 512,
    tools: [WEATHER_TOOL],
    messages: ask('What is the weather in Paris? Stream it.'),
  });
  s.on('streamEvent', (event) => events.push(event));
  const msg = await s.finalMessage();
  assert.equal(anthSeen.length, 1);
  assert.equal(anthSeen[0].json.stream, true);
  assert.deepEqual(anthSeen[0].json.tools, [WEATHER_TOOL]);

  const types = events.map((e) => e.type);
  assert.equal(types[0], 'message_start', types.join(' '));
  assert.equal(types.at(-1), 'message_stop', types.join(' '));
  const start = events.find((e) => e.type === 'content_block_start' && e.content_block.type === 'tool_use');
  assert.ok(start, types.join(' '));
  assert.equal(start.index, 1);
  assert.equal(start.content_block.id, 'toolu_01S');
  assert.equal(start.content_block.name, 'get_weather');
  const pieces = events
    .filter((e) => e.type === 'content_block_delta' && e.delta.type === 'input_json_delta')
    .map((e) => {
      assert.equal(e.index, 1);
      return e.delta.partial_json;
    });
  assert.deepEqual(pieces, ['{"city": "Pa', 'ris", "unit"', ': "celsius"}']);
  assert.deepEqual(JSON.parse(pieces.join('')), { city: 'Paris', unit: 'celsius' });
  const delta = events.find((e) => e.type === 'message_delta');
  assert.equal(delta?.delta.stop_reason, 'tool_use');
  assert.equal(delta.usage.output_tokens, 20);

  // The SDK's accumulated message.
  assert.equal(msg.stop_reason, 'tool_use');
  assert.equal(msg.usage.input_tokens, 12);
  assert.equal(msg.usage.output_tokens, 20);
  assert.equal(msg.content.length, 2, JSON.stringify(msg.content));
  assert.deepEqual(msg.content[0], { type: 'text', text: 'Let me look that up.' });
  assert.deepEqual(msg.content[1], { type: 'tool_use', id: 'toolu_01S', name: 'get_weather', input: { city: 'Paris', unit: 'celsius' } });

  // Without the SDK: the relay is byte for byte.
  const raw = await stream(`${router.url}/v1/messages`,
    { model: 'claude', max_tokens: 64, stream: true, tools: [WEATHER_TOOL], messages: ask('raw tool') },
    { headers: { 'x-api-key': CLIENT_KEY, 'anthropic-version': '2023-06-01' } });
  assert.equal(raw.status, 200);
  assert.ok(raw.complete);
  assert.equal(raw.text, anthropicStream(true));
});

// A Messages request to an Anthropic backend is rebuilt from the chat pivot
// (build_upstream_call in src/pipeline/dialects.cc calls anthropic::request_from_chat on the
// routed chat body) instead of being passed on with the routed model. What chat has no place for
// is lost on the way: cache_control breakpoints (prompt caching silently stops, at full price),
// and the thinking blocks of earlier assistant turns, which Anthropic requires back unchanged
// when extended thinking is used with tools (it answers 400 without them).
const CACHED_SYSTEM = [{ type: 'text', text: 'A long, cacheable system prompt.', cache_control: { type: 'ephemeral' } }];
const THINKING_TURN = [
  { type: 'thinking', thinking: 'The user wants the weather; call the tool.', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3h' },
  { type: 'tool_use', id: 'toolu_01T', name: 'get_weather', input: { city: 'Paris' } },
];

test(
  'a Messages request reaches an Anthropic backend with its cache_control breakpoints',
  async () => {
    anthSeen.length = 0;
    await anthropic.messages.create({
      model: 'claude',
      max_tokens: 100,
      system: CACHED_SYSTEM,
      tools: [{ ...WEATHER_TOOL, cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello', cache_control: { type: 'ephemeral' } }] }],
    });
    const sent = anthSeen[0].json;
    assert.deepEqual(sent.system, CACHED_SYSTEM);
    assert.deepEqual(sent.tools[0].cache_control, { type: 'ephemeral' });
    assert.deepEqual(sent.messages[0].content[0].cache_control, { type: 'ephemeral' });
  },
);

test(
  'extended thinking with tools: the earlier thinking block reaches the Anthropic backend unchanged',
  async () => {
    anthSeen.length = 0;
    await anthropic.messages.create({
      model: 'claude',
      max_tokens: 4096,
      thinking: { type: 'enabled', budget_tokens: 2048 },
      tools: [WEATHER_TOOL],
      messages: [
        ...ask('What is the weather in Paris?'),
        { role: 'assistant', content: THINKING_TURN },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01T', content: '18 degrees' }] },
      ],
    });
    const sent = anthSeen[0].json;
    assert.deepEqual(sent.thinking, { type: 'enabled', budget_tokens: 2048 });
    assert.deepEqual(sent.messages[1].content, THINKING_TURN);
  },
);

test('a thinking object from an Anthropic client reaches the Anthropic backend', async () => {
  anthSeen.length = 0;
  await anthropic.messages.create({
    model: 'claude',
    max_tokens: 4096,
    thinking: { type: 'enabled', budget_tokens: 2048 },
    messages: ask('Think about it.'),
  });
  assert.deepEqual(anthSeen[0].json.thinking, { type: 'enabled', budget_tokens: 2048 });
  assert.equal(anthSeen[0].json.max_tokens, 4096);
});

// ---------------------------------------------------------------------------------------------
// An OpenAI client, an Anthropic backend

test('chat.completions.create to an Anthropic backend: a Messages request; a chat.completion back', async () => {
  anthSeen.length = 0;
  const completion = await openai.chat.completions.create({
    model: 'claude',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Say hello' },
    ],
    max_tokens: 200,
  });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.equal(completion.choices[0].message.content, CLAUDE_TEXT);
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.equal(completion.usage.prompt_tokens, 12);
  assert.equal(completion.usage.completion_tokens, 4);
  assert.equal(completion.usage.total_tokens, 16);
  const seen = anthSeen[0];
  assert.equal(seen.url, '/v1/messages');
  assert.equal(seen.headers['x-api-key'], BACKEND_KEY);
  assert.equal(seen.headers['anthropic-version'], '2023-06-01');
  assert.equal(seen.headers.authorization, undefined);
  assert.equal(seen.json.model, CLAUDE);
  assert.equal(seen.json.system, 'Be brief.');
  assert.equal(seen.json.max_tokens, 200);
  assert.deepEqual(seen.json.messages, [{ role: 'user', content: [{ type: 'text', text: 'Say hello' }] }]);
});

test('chat.completions streaming from an Anthropic backend: chunks, stop, usage', async () => {
  anthSeen.length = 0;
  const s = await openai.chat.completions.create({
    model: 'claude',
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: 'Stream a hello' }],
  });
  const chunks = [];
  for await (const c of s) chunks.push(c);
  for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
  assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), CLAUDE_TEXT);
  assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason, 'stop');
  assert.equal(chunks.at(-1).usage?.prompt_tokens, 12);
  assert.equal(chunks.at(-1).usage?.completion_tokens, 4);
  assert.equal(anthSeen[0].json.stream, true);
  assert.equal(typeof anthSeen[0].json.max_tokens, 'number');
});

// The Anthropic -> chat stream translator is always built with include_usage on (AnswerCodec in
// src/pipeline/dialects.cc: the router's accounting needs the usage), and the gateway sends that
// pivot to a chat client unchanged, so a client that did not ask for stream_options.include_usage
// gets a usage-only chunk with "choices": [] anyway. OpenAI sends that chunk only on request, and
// clients that read chunk.choices[0] unguarded break on it.
test(
  'without stream_options.include_usage a chat stream from an Anthropic backend has no usage-only chunk',
  async () => {
    const s = await openai.chat.completions.create({
      model: 'claude',
      stream: true,
      messages: [{ role: 'user', content: 'Stream a hello' }],
    });
    const chunks = [];
    for await (const c of s) chunks.push(c);
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), CLAUDE_TEXT);
    for (const c of chunks) assert.equal(c.choices.length, 1, JSON.stringify(c));
  },
);

const CHAT_TOOL = {
  type: 'function',
  function: { name: 'get_weather', description: 'Current weather in a city', parameters: WEATHER_SCHEMA },
};

test('an OpenAI tool call to an Anthropic backend, whole and streamed, and the tool result back', async () => {
  anthSeen.length = 0;
  const first = await openai.chat.completions.create({
    model: 'claude',
    tools: [CHAT_TOOL],
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
  });
  assert.deepEqual(anthSeen[0].json.tools, [WEATHER_TOOL]);
  const choice = first.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.content, 'Let me look that up.');
  assert.equal(choice.message.tool_calls.length, 1);
  const call = choice.message.tool_calls[0];
  assert.equal(call.id, 'toolu_01A');
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris', unit: 'celsius' });

  // The result goes back as a tool_result block in a user message.
  const second = await openai.chat.completions.create({
    model: 'claude',
    tools: [CHAT_TOOL],
    messages: [
      { role: 'user', content: 'What is the weather in Paris?' },
      choice.message,
      { role: 'tool', tool_call_id: call.id, content: '18 degrees, sunny' },
    ],
  });
  assert.equal(second.choices[0].message.content, CLAUDE_TEXT);
  const sent = anthSeen[1].json.messages;
  assert.deepEqual(sent.map((m) => m.role), ['user', 'assistant', 'user']);
  assert.deepEqual(sent[1].content.find((b) => b.type === 'tool_use'),
    { type: 'tool_use', id: 'toolu_01A', name: 'get_weather', input: { city: 'Paris', unit: 'celsius' } });
  assert.deepEqual(sent[2].content, [{ type: 'tool_result', tool_use_id: 'toolu_01A', content: '18 degrees, sunny' }]);

  // Streamed: the tool call's arguments arrive in pieces the SDK joins.
  const s = await openai.chat.completions.create({
    model: 'claude',
    stream: true,
    tools: [CHAT_TOOL],
    messages: [{ role: 'user', content: 'What is the weather in Paris? Stream it.' }],
  });
  const chunks = [];
  for await (const c of s) chunks.push(c);
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, 'Let me look that up.');
  const calls = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
  assert.ok(calls.length >= 2, JSON.stringify(calls));
  assert.equal(calls[0].id, 'toolu_01S');
  assert.equal(calls[0].function.name, 'get_weather');
  assert.ok(calls.every((c) => c.index === 0), JSON.stringify(calls));
  const args = calls.map((c) => c.function?.arguments ?? '').join('');
  assert.deepEqual(JSON.parse(args), { city: 'Paris', unit: 'celsius' });
  assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason, 'tool_calls');

  // The SDK's own accumulator builds the same message from the chunks.
  const helper = openai.chat.completions.stream({
    model: 'claude',
    tools: [CHAT_TOOL],
    messages: [{ role: 'user', content: 'What is the weather in Paris? Stream it.' }],
  });
  const final = await helper.finalChatCompletion();
  const message = final.choices[0].message;
  assert.equal(message.content, 'Let me look that up.');
  assert.equal(message.tool_calls.length, 1);
  assert.equal(message.tool_calls[0].id, 'toolu_01S');
  assert.equal(message.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(message.tool_calls[0].function.arguments), { city: 'Paris', unit: 'celsius' });
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
});

test('reasoning_effort high reaches an Anthropic backend as a thinking budget of 16384', async () => {
  anthSeen.length = 0;
  const completion = await openai.chat.completions.create({
    model: 'claude',
    reasoning_effort: 'high',
    messages: [{ role: 'user', content: 'Think hard about this.' }],
  });
  assert.equal(completion.choices[0].message.content, CLAUDE_TEXT);
  const sent = anthSeen[0].json;
  assert.deepEqual(sent.thinking, { type: 'enabled', budget_tokens: 16384 });
  assert.ok(sent.max_tokens > 16384, `max_tokens ${sent.max_tokens} leaves no room past the budget`);
  assert.equal(sent.reasoning_effort, undefined);
});

// ---------------------------------------------------------------------------------------------
// Errors

test('a Messages request without max_tokens: 400 in the Anthropic error shape', async () => {
  await assert.rejects(
    anthropic.messages.create({ model: 'auto', messages: ask('no max_tokens') }),
    (e) => {
      assert.ok(e instanceof Anthropic.BadRequestError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 400);
      assert.equal(e.error?.type, 'error', JSON.stringify(e.error));
      assert.equal(e.error.error.type, 'invalid_request_error');
      assert.match(e.error.error.message, /max_tokens/);
      return true;
    },
  );
  const res = await request(`${router.url}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': CLIENT_KEY, 'anthropic-version': '2023-06-01' },
    json: { model: 'auto', messages: ask('no max_tokens') },
  });
  assert.equal(res.status, 400);
  assert.match(res.headers['content-type'], /^application\/json/);
  assert.deepEqual(Object.keys(res.json).sort(), ['error', 'type']);
  assert.equal(res.json.type, 'error');
  assert.deepEqual(Object.keys(res.json.error).sort(), ['message', 'type']);
  assert.equal(res.json.error.type, 'invalid_request_error');
});

test('router errors to Anthropic clients are Anthropic-shaped (unknown model: 404)', async () => {
  await assert.rejects(
    anthropic.messages.create({ model: 'no-such-model', max_tokens: 10, messages: ask('x') }),
    (e) => {
      assert.ok(e instanceof Anthropic.NotFoundError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.error?.type, 'error', JSON.stringify(e.error));
      assert.equal(e.error.error.type, 'not_found_error');
      assert.match(e.error.error.message, /no-such-model/);
      return true;
    },
  );
});

test('an Anthropic 429 reaches an OpenAI client as an OpenAI error with 429 (and an Anthropic client as it was)', async () => {
  await assert.rejects(
    openai.chat.completions.create({ model: 'claude-limited', messages: [{ role: 'user', content: 'x' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.RateLimitError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 429);
      assert.equal(e.type, 'rate_limit_error');
      assert.match(e.message, /per-minute rate limit/);
      return true;
    },
  );
  const res = await router.chat({ model: 'claude-limited', messages: [{ role: 'user', content: 'x' }] });
  const e = assertOpenAIError(assert, res, { status: 429, type: 'rate_limit_error' });
  assert.match(e.message, /per-minute rate limit/);

  await assert.rejects(
    anthropic.messages.create({ model: 'claude-limited', max_tokens: 10, messages: ask('x') }),
    (err) => {
      assert.ok(err instanceof Anthropic.RateLimitError, `${err.constructor.name}: ${err.message}`);
      assert.deepEqual(err.error, RATE_LIMIT);
      return true;
    },
  );
});
