// OpenAI's Responses API (POST /v1/responses) and embeddings through the router, with the official
// openai SDK as the client: a chat backend (the mock, an in-process recorder) gets the request
// translated to chat completions and its answer comes back as a Response object or a stream of
// Responses events; a backend that speaks the Responses API natively gets the client's request
// with only the routed model changed, and its answer comes back untouched. Features a chat
// translation cannot carry are refused with a 400 naming them.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';

import { setup, request, stream, assertOpenAIError, loadOpenAI } from './harness.mjs';

const h = setup('responses');
const NATIVE_KEY = 'sk-native-backend-key';
const NATIVE_MODEL = 'gpt-4.1-mini-2025-04-14';

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
// An OpenAI-shaped recorder: chat completions (a get_weather call while tools are given and no
// tool result came back yet, text otherwise; reasoning_content for the gpt-oss model) and
// embeddings. Records every request.

const recSeen = [];
const TOOL_ARGS = '{"city":"Paris"}';
const EMBEDDING = [0.25, -0.5, 0.125];

function chatAnswer(json) {
  const wantsTool = Array.isArray(json.tools) && json.tools.length > 0 && json.messages.at(-1)?.role !== 'tool';
  const base = { id: 'chatcmpl-rec-1', created: 1700000000, model: json.model };
  const usage = { prompt_tokens: 17, completion_tokens: 6, total_tokens: 23 };
  const reasoning = json.model === 'openai/gpt-oss-20b' ? 'The user wants a short answer.' : undefined;
  const content = json.response_format ? '{"city":"Paris","degrees":18}' : 'It is 18 degrees in Paris.';
  const finish = json.model === 'cut' ? 'length' : 'stop';
  if (!json.stream) {
    const message = wantsTool
      ? { role: 'assistant', content: null,
          tool_calls: [{ id: 'call_r1', type: 'function', function: { name: 'get_weather', arguments: TOOL_ARGS } }] }
      : { role: 'assistant', content, ...(reasoning ? { reasoning_content: reasoning } : {}) };
    return { json: { ...base, object: 'chat.completion',
      choices: [{ index: 0, message, finish_reason: wantsTool ? 'tool_calls' : finish }], usage } };
  }
  const chunk = (delta, finish = null) =>
    sseData({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] });
  let sse = chunk({ role: 'assistant', content: '' });
  if (wantsTool) {
    sse += chunk({ tool_calls: [{ index: 0, id: 'call_r2', type: 'function', function: { name: 'get_weather', arguments: '' } }] });
    for (const piece of ['{"city":', '"Paris"}']) sse += chunk({ tool_calls: [{ index: 0, function: { arguments: piece } }] });
    sse += chunk({}, 'tool_calls');
  } else {
    for (const piece of ['It is ', '18 degrees ', 'in Paris.']) sse += chunk({ content: piece });
    sse += chunk({}, finish);
  }
  if (json.stream_options?.include_usage) sse += sseData({ ...base, object: 'chat.completion.chunk', choices: [], usage });
  return { sse: sse + 'data: [DONE]\n\n' };
}

function embeddingsAnswer(json) {
  const base64 = json.encoding_format === 'base64';
  const embedding = base64 ? Buffer.from(new Float32Array(EMBEDDING).buffer).toString('base64') : EMBEDDING;
  return { object: 'list', model: json.model, data: [{ object: 'embedding', index: 0, embedding }],
    usage: { prompt_tokens: 1, total_tokens: 1 } };
}

// ---------------------------------------------------------------------------------------------
// A native Responses server: POST /v1/responses only.

const nativeSeen = [];
const NATIVE_RESPONSE = {
  id: 'resp_native_0001',
  object: 'response',
  created_at: 1700000123,
  status: 'completed',
  background: false,
  error: null,
  incomplete_details: null,
  instructions: 'Answer in one word.',
  max_output_tokens: null,
  model: NATIVE_MODEL,
  output: [
    { type: 'web_search_call', id: 'ws_native_1', status: 'completed', action: { type: 'search', query: 'capital of France' } },
    { type: 'message', id: 'msg_native_1', status: 'completed', role: 'assistant',
      content: [{ type: 'output_text', text: 'Paris', annotations: [], logprobs: [] }] },
  ],
  parallel_tool_calls: true,
  previous_response_id: null,
  reasoning: { effort: null, summary: null },
  store: true,
  temperature: 1,
  text: { format: { type: 'text' } },
  tool_choice: 'auto',
  tools: [{ type: 'web_search_preview', search_context_size: 'medium', user_location: null }],
  top_p: 1,
  truncation: 'disabled',
  usage: { input_tokens: 9, input_tokens_details: { cached_tokens: 0 }, output_tokens: 2,
    output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 11 },
  user: null,
  metadata: { from: 'native' },
};

function nativeEvents() {
  const inProgress = { ...NATIVE_RESPONSE, status: 'in_progress', output: [], usage: null };
  const item = { type: 'message', id: 'msg_native_1', status: 'in_progress', role: 'assistant', content: [] };
  const done = NATIVE_RESPONSE.output[1];
  const events = [
    { type: 'response.created', response: inProgress },
    { type: 'response.in_progress', response: inProgress },
    { type: 'response.output_item.added', output_index: 0, item },
    { type: 'response.content_part.added', item_id: item.id, output_index: 0, content_index: 0,
      part: { type: 'output_text', text: '', annotations: [] } },
    { type: 'response.output_text.delta', item_id: item.id, output_index: 0, content_index: 0, delta: 'Par', logprobs: [] },
    { type: 'response.output_text.delta', item_id: item.id, output_index: 0, content_index: 0, delta: 'is', logprobs: [] },
    { type: 'response.output_text.done', item_id: item.id, output_index: 0, content_index: 0, text: 'Paris', logprobs: [] },
    { type: 'response.content_part.done', item_id: item.id, output_index: 0, content_index: 0, part: done.content[0] },
    { type: 'response.output_item.done', output_index: 0, item: done },
    { type: 'response.completed', response: { ...NATIVE_RESPONSE, output: [done] } },
  ];
  return events.map((e, i) => ({ ...e, sequence_number: i }));
}

const SLOW_TOKENS = 5;
const SLOW_DELAY_MS = 250; // the spread asserted on it leaves 500 ms for stalls of a loaded machine
let mock, slowMock, rec, native, router, OpenAI, client;

before(async () => {
  OpenAI = loadOpenAI();
  mock = await h.startMock({ name: 'R', tokens: 4 });
  slowMock = await h.startMock({ name: 'S', tokens: SLOW_TOKENS, tokenDelayMs: SLOW_DELAY_MS });
  rec = await h.startHttpServer(async (req, res) => {
    const json = JSON.parse(await readBody(req));
    recSeen.push({ url: req.url, headers: req.headers, json });
    if (req.url === '/v1/embeddings') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(embeddingsAnswer(json)));
      return;
    }
    if (json.model === 'limited') {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '2' });
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
  native = await h.startHttpServer(async (req, res) => {
    const body = await readBody(req);
    const json = JSON.parse(body);
    nativeSeen.push({ method: req.method, url: req.url, headers: req.headers, json });
    if (req.url !== '/v1/responses') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"not here","type":"invalid_request_error","param":null,"code":null}}');
      return;
    }
    if (json.stream) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(nativeEvents().map(sseEvent).join(''));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(NATIVE_RESPONSE));
  });
  router = await h.startRouter(
    {
      server: { workers: 1, reload_poll_ms: 0 },
      backends: [
        { name: 'mock', provider: 'vllm', url: mock.url },
        { name: 'slow-mock', provider: 'vllm', url: slowMock.url },
        { name: 'rec', provider: 'generic', url: rec.url },
        // provider openai: responses_api native by default.
        { name: 'native', provider: 'openai', url: native.url, api_key_env: 'SEMROUTER_IT_NATIVE_KEY' },
      ],
      models: [
        { name: 'local', upstream_model: 'Qwen/Qwen3-8B', backends: ['mock'] },
        { name: 'slow', upstream_model: 'slow-model', backends: ['slow-mock'] },
        { name: 'tooler', upstream_model: 'tool-model', backends: ['rec'] },
        { name: 'gpt-oss', upstream_model: 'openai/gpt-oss-20b', reasoning_family: 'gpt-oss', backends: ['rec'] },
        { name: 'gpt-native', upstream_model: NATIVE_MODEL, backends: ['native'] },
        { name: 'emb', upstream_model: 'text-embedding-3-small', backends: ['rec'] },
        { name: 'rec-limited', upstream_model: 'limited', backends: ['rec'] },
        { name: 'rec-broken', upstream_model: 'broken', backends: ['rec'] },
        { name: 'rec-noindex', upstream_model: 'noindex', backends: ['rec'] },
        { name: 'rec-cut', upstream_model: 'cut', backends: ['rec'] },
      ],
      default_model: 'local',
    },
    { env: { SEMROUTER_IT_NATIVE_KEY: NATIVE_KEY } },
  );
  client = new OpenAI({ baseURL: `${router.url}/v1`, apiKey: 'sk-client', maxRetries: 0, timeout: 10_000 });
});

const MOCK_TEXT = /^\[R\] model=Qwen\/Qwen3-8B reasoning=none tok0 tok1 tok2 tok3$/;

// ---------------------------------------------------------------------------------------------
// Translated to chat completions

test('responses.create with model auto to a chat backend: a completed response with text and usage', async () => {
  const { data: resp, response } = await client.responses
    .create({ model: 'auto', input: 'Say hello to the router.' })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-semrouter-model'), 'local');
  assert.equal(resp.object, 'response');
  assert.match(resp.id, /^resp_/);
  assert.equal(resp.status, 'completed');
  assert.match(resp.output_text, MOCK_TEXT);
  const message = resp.output.find((o) => o.type === 'message');
  assert.equal(message.role, 'assistant');
  assert.equal(message.status, 'completed');
  assert.equal(message.content[0].type, 'output_text');
  assert.equal(message.content[0].text, resp.output_text);
  assert.equal(typeof resp.usage.input_tokens, 'number');
  assert.ok(resp.usage.input_tokens > 0, JSON.stringify(resp.usage));
  assert.equal(resp.usage.output_tokens, 4);
  assert.equal(resp.usage.total_tokens, resp.usage.input_tokens + 4);
});

test('a streamed response from a chat backend: created first, text deltas, completed last with usage', async () => {
  const s = await client.responses.create({ model: 'auto', input: 'Stream a hello.', stream: true });
  const events = [];
  for await (const e of s) events.push(e);
  const types = events.map((e) => e.type);
  assert.equal(types[0], 'response.created', types.join(' '));
  assert.equal(types.at(-1), 'response.completed', types.join(' '));
  for (let i = 1; i < events.length; i++)
    assert.ok(events[i].sequence_number > events[i - 1].sequence_number, `sequence_number at ${i}: ${types.join(' ')}`);
  const deltas = events.filter((e) => e.type === 'response.output_text.delta');
  assert.ok(deltas.length >= 4, types.join(' '));
  const text = deltas.map((e) => e.delta).join('');
  assert.match(text, MOCK_TEXT);
  assert.equal(events.find((e) => e.type === 'response.output_text.done')?.text, text);
  const done = events.at(-1).response;
  assert.equal(done.status, 'completed');
  assert.equal(done.id, events[0].response.id);
  const message = done.output.find((o) => o.type === 'message');
  assert.equal(message.content[0].text, text);
  assert.equal(done.usage.output_tokens, 4);
  assert.ok(done.usage.input_tokens > 0, JSON.stringify(done.usage));

  // The SDK's own accumulator (which checks that every delta has its item and part) agrees.
  const helper = client.responses.stream({ model: 'auto', input: 'Stream a hello.' });
  let helperDeltas = '';
  helper.on('response.output_text.delta', (e) => (helperDeltas += e.delta));
  const final = await helper.finalResponse();
  assert.equal(final.status, 'completed');
  const finalText = final.output.find((o) => o.type === 'message').content[0].text;
  assert.match(finalText, MOCK_TEXT);
  assert.equal(finalText, helperDeltas);
});

test('the raw stream names each event and uses text/event-stream, no chat chunks', async () => {
  const r = await stream(`${router.url}/v1/responses`, { model: 'local', input: 'raw', stream: true });
  assert.equal(r.status, 200);
  assert.ok(r.complete);
  assert.match(r.headers['content-type'], /^text\/event-stream/);
  const names = [...r.text.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
  assert.deepEqual(names, r.events.map((e) => JSON.parse(e.data).type));
  assert.doesNotMatch(r.text, /\[DONE\]|chat\.completion/);
});

test('the translated stream reaches the client as the tokens arrive, not in one burst at the end', async () => {
  const r = await stream(`${router.url}/v1/responses`, { model: 'slow', input: 'take your time', stream: true });
  assert.equal(r.status, 200);
  assert.ok(r.complete, r.text);
  const deltas = r.events.filter((e) => JSON.parse(e.data).type === 'response.output_text.delta');
  // The mock's first event carries its header text, then one token every SLOW_DELAY_MS.
  assert.equal(deltas.length, SLOW_TOKENS + 1, r.text);
  const times = deltas.map((e) => e.t);
  const spread = `arrival times (ms): ${times.map((t) => t.toFixed(0)).join(', ')}`;
  assert.ok(times.at(-1) - times[0] >= (SLOW_TOKENS - 2) * SLOW_DELAY_MS, spread);
  assert.ok(r.headersAt < times.at(-1) - 2 * SLOW_DELAY_MS, `headers after ${r.headersAt} ms; ${spread}`);
});

const WEATHER_PARAMS = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
const WEATHER_TOOL = { type: 'function', name: 'get_weather', description: 'Current weather in a city', parameters: WEATHER_PARAMS, strict: true };

test('instructions, message input, a function tool and its output round trip through chat', async () => {
  recSeen.length = 0;
  const input = [
    { role: 'user', content: 'I am planning a trip.' },
    { role: 'assistant', content: 'Where to?' },
    { role: 'user', content: [{ type: 'input_text', text: 'What is the weather in Paris?' }] },
  ];
  const first = await client.responses.create({
    model: 'tooler',
    instructions: 'You are a weather bot.',
    input,
    tools: [WEATHER_TOOL],
  });
  const sent = recSeen[0].json;
  assert.equal(recSeen[0].url, '/v1/chat/completions');
  assert.equal(sent.model, 'tool-model');
  assert.deepEqual(sent.messages, [
    { role: 'system', content: 'You are a weather bot.' },
    { role: 'user', content: 'I am planning a trip.' },
    { role: 'assistant', content: 'Where to?' },
    { role: 'user', content: 'What is the weather in Paris?' },
  ]);
  assert.deepEqual(sent.tools, [{ type: 'function',
    function: { name: 'get_weather', description: 'Current weather in a city', parameters: WEATHER_PARAMS, strict: true } }]);

  const call = first.output.find((o) => o.type === 'function_call');
  assert.ok(call, JSON.stringify(first.output));
  assert.equal(call.call_id, 'call_r1');
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.arguments), { city: 'Paris' });
  assert.equal(first.status, 'completed');

  const second = await client.responses.create({
    model: 'tooler',
    instructions: 'You are a weather bot.',
    input: [...input, ...first.output, { type: 'function_call_output', call_id: call.call_id, output: '18 degrees, sunny' }],
    tools: [WEATHER_TOOL],
  });
  assert.equal(second.output_text, 'It is 18 degrees in Paris.');
  const messages = recSeen[1].json.messages;
  assert.equal(messages[0].role, 'system');
  assert.deepEqual(messages.at(-1), { role: 'tool', tool_call_id: 'call_r1', content: '18 degrees, sunny' });
  const assistant = messages.at(-2);
  assert.equal(assistant.role, 'assistant');
  assert.deepEqual(assistant.tool_calls, [{ id: 'call_r1', type: 'function', function: { name: 'get_weather', arguments: TOOL_ARGS } }]);
});

test('a streamed function call: the arguments arrive as deltas and in the completed response', async () => {
  const s = await client.responses.create({
    model: 'tooler',
    input: 'What is the weather in Paris?',
    tools: [WEATHER_TOOL],
    stream: true,
  });
  const events = [];
  for await (const e of s) events.push(e);
  const types = events.map((e) => e.type);
  const deltas = events.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta).join('');
  assert.deepEqual(JSON.parse(deltas), { city: 'Paris' }, types.join(' '));
  assert.equal(types.at(-1), 'response.completed');
  const call = events.at(-1).response.output.find((o) => o.type === 'function_call');
  assert.equal(call.call_id, 'call_r2');
  assert.equal(call.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.arguments), { city: 'Paris' });
});

test('streamed tool calls without an index (one whole call per chunk) become separate function_call items', async () => {
  const s = await client.responses.create({ model: 'rec-noindex', input: 'Paris and Oslo?', tools: [WEATHER_TOOL], stream: true });
  const events = [];
  for await (const e of s) events.push(e);
  const calls = events.at(-1).response.output.filter((o) => o.type === 'function_call');
  assert.deepEqual(calls.map((c) => [c.call_id, c.name, JSON.parse(c.arguments)]), [
    ['call_n1', 'get_weather', { city: 'Paris' }],
    ['call_n2', 'get_weather', { city: 'Oslo' }],
  ]);
});

test('an answer cut at the token limit: status incomplete, reason max_output_tokens', async () => {
  recSeen.length = 0;
  const resp = await client.responses.create({ model: 'rec-cut', input: 'Tell me everything.', max_output_tokens: 16 });
  assert.equal(recSeen[0].json.max_tokens, 16);
  assert.equal(resp.status, 'incomplete');
  assert.deepEqual(resp.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(resp.output_text, 'It is 18 degrees in Paris.');

  const s = await client.responses.create({ model: 'rec-cut', input: 'Tell me everything.', stream: true });
  const events = [];
  for await (const e of s) events.push(e);
  assert.equal(events.at(-1).type, 'response.incomplete', events.map((e) => e.type).join(' '));
  assert.deepEqual(events.at(-1).response.incomplete_details, { reason: 'max_output_tokens' });
});

// OpenAI's Response object echoes the request's parameters. One translated from a chat answer
// echoes what the client sent (instructions, max_output_tokens, metadata, sampling, tools,
// tool_choice, parallel_tool_calls, reasoning, user, text, truncation) in every Response it
// sends: whole, and in response.created / response.in_progress / response.completed. store stays
// false: the router stores no response.
test('a response translated from chat echoes the request\'s instructions, max_output_tokens and metadata', async () => {
  const params = {
    model: 'local', instructions: 'Answer briefly.', max_output_tokens: 100, metadata: { k: 'v' },
    temperature: 0.5, top_p: 0.9, user: 'u-echo', truncation: 'auto', store: true,
  };
  const expectEcho = (r, where) => {
    assert.equal(r.instructions, 'Answer briefly.', where);
    assert.equal(r.max_output_tokens, 100, where);
    assert.deepEqual(r.metadata, { k: 'v' }, where);
    assert.equal(r.temperature, 0.5, where);
    assert.equal(r.top_p, 0.9, where);
    assert.equal(r.user, 'u-echo', where);
    assert.equal(r.truncation, 'auto', where);
    assert.equal(r.store, false, where);
    // Not sent: the defaults.
    assert.deepEqual(r.tools, [], where);
    assert.equal(r.tool_choice, 'auto', where);
    assert.equal(r.parallel_tool_calls, true, where);
    assert.deepEqual(r.reasoning, { effort: null, summary: null }, where);
    assert.deepEqual(r.text, { format: { type: 'text' } }, where);
  };
  const resp = await client.responses.create({ ...params, input: 'Echo my parameters.' });
  assert.match(resp.output_text, MOCK_TEXT);
  expectEcho(resp, 'whole');

  const s = await client.responses.create({ ...params, input: 'Echo my parameters, streamed.', stream: true });
  const events = [];
  for await (const e of s) events.push(e);
  const withResponse = events.filter((e) => e.response);
  assert.deepEqual(withResponse.map((e) => e.type), ['response.created', 'response.in_progress', 'response.completed']);
  for (const e of withResponse) expectEcho(e.response, e.type);

  // Tools, tool_choice, parallel_tool_calls, reasoning and text as sent, whole and streamed.
  const tools = [{ type: 'function', name: 'get_weather', description: 'Weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, strict: false }];
  const toolParams = { model: 'tooler', input: 'Weather in Paris?', tools, tool_choice: 'required',
    parallel_tool_calls: false, reasoning: { effort: 'low' }, text: { verbosity: 'low' } };
  const expectTools = (r, where) => {
    assert.deepEqual(r.tools, tools, where);
    assert.equal(r.tool_choice, 'required', where);
    assert.equal(r.parallel_tool_calls, false, where);
    assert.deepEqual(r.reasoning, { effort: 'low', summary: null }, where);
    assert.deepEqual(r.text, { format: { type: 'text' }, verbosity: 'low' }, where);
    assert.equal(r.instructions, null, where);
    assert.deepEqual(r.metadata, {}, where);
  };
  const called = await client.responses.create(toolParams);
  assert.equal(called.output.at(-1).type, 'function_call');
  expectTools(called, 'whole');
  const ts = await client.responses.create({ ...toolParams, stream: true });
  const toolEvents = [];
  for await (const e of ts) toolEvents.push(e);
  assert.equal(toolEvents.at(-1).type, 'response.completed');
  for (const e of toolEvents.filter((e) => e.response)) expectTools(e.response, e.type);
});

test('a chat backend\'s 429 reaches the Responses client as an OpenAI error with 429', async () => {
  await assert.rejects(client.responses.create({ model: 'rec-limited', input: 'x' }), (e) => {
    assert.ok(e instanceof OpenAI.RateLimitError, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 429);
    assert.equal(e.code, 'rate_limited');
    assert.match(e.message, /slow down/);
    return true;
  });
  const res = await request(`${router.url}/v1/responses`, { method: 'POST', json: { model: 'rec-limited', input: 'x', stream: true } });
  const e = assertOpenAIError(assert, res, { status: 429, code: 'rate_limited' });
  assert.match(e.message, /slow down/);
});

test('a chat stream broken off upstream ends the Responses stream with an error, never response.completed', async () => {
  const s = await client.responses.create({ model: 'rec-broken', input: 'x', stream: true });
  const events = [];
  let thrown = null;
  try {
    for await (const e of s) events.push(e);
  } catch (e) {
    thrown = e;
  }
  const types = events.map((e) => e.type);
  assert.equal(types[0], 'response.created', types.join(' '));
  assert.equal(events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join(''), 'Half an answer');
  assert.ok(!types.includes('response.completed'), types.join(' '));
  // The SDK hands Responses `error` events to the application as events; the stream ends there.
  assert.equal(thrown, null, String(thrown));
  assert.equal(types.at(-1), 'error', types.join(' '));
  assert.equal(events.at(-1).code, 'upstream_broken');
  assert.match(events.at(-1).message, /rec-broken.*broken off/);
});

test('text.format json_schema becomes response_format; the SDK parses the output', async () => {
  recSeen.length = 0;
  const schema = { type: 'object', properties: { city: { type: 'string' }, degrees: { type: 'number' } },
    required: ['city', 'degrees'], additionalProperties: false };
  const resp = await client.responses.parse({
    model: 'tooler',
    input: 'Weather in Paris as JSON.',
    text: { format: { type: 'json_schema', name: 'weather', schema, strict: true } },
  });
  assert.deepEqual(recSeen[0].json.response_format, { type: 'json_schema', json_schema: { name: 'weather', schema, strict: true } });
  assert.deepEqual(resp.output_parsed, { city: 'Paris', degrees: 18 });
});

// ---------------------------------------------------------------------------------------------
// A native Responses backend

const NATIVE_REQUEST = {
  model: 'gpt-native',
  instructions: 'Answer in one word.',
  input: [{ role: 'user', content: [{ type: 'input_text', text: 'What is the capital of France?' }] }],
  tools: [{ type: 'web_search_preview' }],
  metadata: { from: 'native' },
  store: true,
};

test('a native Responses backend gets the client request with the routed model; its answer comes back unchanged', async () => {
  nativeSeen.length = 0;
  const { data: resp, response } = await client.responses.create(NATIVE_REQUEST).withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-semrouter-model'), 'gpt-native');
  const { output_text: outputText, ...rest } = resp; // output_text is the SDK's own convenience
  assert.deepEqual(rest, NATIVE_RESPONSE);
  assert.equal(outputText, 'Paris');

  assert.equal(nativeSeen.length, 1);
  const seen = nativeSeen[0];
  assert.equal(seen.url, '/v1/responses');
  assert.equal(seen.headers.authorization, `Bearer ${NATIVE_KEY}`);
  assert.deepEqual(seen.json, { ...NATIVE_REQUEST, model: NATIVE_MODEL });

  // Byte for byte, without the SDK in between.
  const raw = await request(`${router.url}/v1/responses`, { method: 'POST', json: NATIVE_REQUEST });
  assert.equal(raw.status, 200);
  assert.equal(raw.text, JSON.stringify(NATIVE_RESPONSE));
});

test('a native Responses backend streams its own events to the SDK unchanged', async () => {
  nativeSeen.length = 0;
  const s = await client.responses.create({ ...NATIVE_REQUEST, stream: true });
  const events = [];
  for await (const e of s) events.push(e);
  assert.deepEqual(events, nativeEvents());
  assert.deepEqual(nativeSeen[0].json, { ...NATIVE_REQUEST, model: NATIVE_MODEL, stream: true });

  const raw = await stream(`${router.url}/v1/responses`, { ...NATIVE_REQUEST, stream: true });
  assert.equal(raw.status, 200);
  assert.ok(raw.complete);
  assert.equal(raw.text, nativeEvents().map(sseEvent).join(''));
});

// ---------------------------------------------------------------------------------------------
// What a chat translation cannot carry

test('a hosted tool to a translating backend: 400 naming the tool', async () => {
  await assert.rejects(
    client.responses.create({ model: 'local', input: 'Search the web for news.', tools: [{ type: 'web_search_preview' }] }),
    (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 400);
      assert.equal(e.type, 'invalid_request_error');
      assert.match(e.message, /web_search_preview/);
      return true;
    },
  );
  const res = await request(`${router.url}/v1/responses`, {
    method: 'POST',
    json: { model: 'auto', input: 'x', tools: [{ type: 'web_search_preview' }] },
  });
  const e = assertOpenAIError(assert, res, { status: 400, type: 'invalid_request_error' });
  assert.match(e.message, /web_search_preview/);
  assert.match(e.message, /hosted tool/);
});

test('previous_response_id to a translating backend: 400; the router keeps no conversation state', async () => {
  const res = await request(`${router.url}/v1/responses`, {
    method: 'POST',
    json: { model: 'local', input: 'and then?', previous_response_id: 'resp_abc' },
  });
  const e = assertOpenAIError(assert, res, { status: 400, type: 'invalid_request_error' });
  assert.match(e.message, /previous_response_id/);
});

test('a malformed Responses request: 400 in the OpenAI shape, naming the field', async () => {
  const res = await request(`${router.url}/v1/responses`, { method: 'POST', json: { model: 'local' } });
  const e = assertOpenAIError(assert, res, { status: 400, type: 'invalid_request_error' });
  assert.equal(e.param, 'input');
});

// ---------------------------------------------------------------------------------------------
// Reasoning and embeddings

test('reasoning.effort reaches a gpt-oss model as reasoning_effort; its reasoning comes back as an item', async () => {
  recSeen.length = 0;
  const resp = await client.responses.create({ model: 'gpt-oss', input: 'Briefly: why is the sky blue?', reasoning: { effort: 'low' } });
  assert.equal(recSeen.length, 1);
  assert.equal(recSeen[0].json.model, 'openai/gpt-oss-20b');
  assert.equal(recSeen[0].json.reasoning_effort, 'low');
  assert.equal(recSeen[0].json.reasoning, undefined);
  assert.equal(resp.output_text, 'It is 18 degrees in Paris.');
  const reasoning = resp.output.find((o) => o.type === 'reasoning');
  assert.ok(reasoning, JSON.stringify(resp.output));
  const reasoningText = [...(reasoning.content ?? []), ...(reasoning.summary ?? [])].map((p) => p.text).join('');
  assert.match(reasoningText, /short answer/);
  assert.ok(resp.output.indexOf(reasoning) < resp.output.findIndex((o) => o.type === 'message'));
});

// route_embeddings (src/pipeline/dialects.cc) keeps `name` as a reference into the request JSON's
// "model" string, overwrites that string with the upstream model, then copies `name` into
// requested_model: a dangling reference. The std::length_error it throws ends the connection
// without an answer (the SDK reports "Connection error.") and nothing reaches the backend.
test(
  'embeddings pass through by model name to the backend with its upstream model',
  async () => {
    recSeen.length = 0;
    const out = await client.embeddings.create({ model: 'emb', input: 'x' });
    assert.equal(recSeen.length, 1);
    assert.equal(recSeen[0].url, '/v1/embeddings');
    assert.equal(recSeen[0].json.model, 'text-embedding-3-small');
    assert.equal(recSeen[0].json.input, 'x');
    assert.equal(out.data.length, 1);
    assert.deepEqual(Array.from(out.data[0].embedding), EMBEDDING);
    assert.equal(out.model, 'text-embedding-3-small');
  },
);

test('embeddings for model auto or an unknown model are refused before any upstream call', async () => {
  recSeen.length = 0;
  await assert.rejects(client.embeddings.create({ model: 'auto', input: 'x' }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 400);
    assert.equal(e.param, 'model');
    assert.match(e.message, /not routed/);
    return true;
  });
  const res = await request(`${router.url}/v1/embeddings`, { method: 'POST', json: { model: 'auto', input: 'x' } });
  assertOpenAIError(assert, res, { status: 400, type: 'invalid_request_error' });
  await assert.rejects(client.embeddings.create({ model: 'no-such-embedder', input: 'x' }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
  assert.equal(recSeen.length, 0, 'refused requests never went upstream');
});
