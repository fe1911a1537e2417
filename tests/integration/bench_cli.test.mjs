// `semrouter bench` end to end against mock upstreams with known answers: the fixtures' prompts
// carry [[mock ...]] markers, so the mock answers each question with a known letter (another one
// with thinking on) and known usage, and every accuracy, token count and cost below is exact.
// Also: the router's picks from its headers, the comparisons, the progress lines (and the bar on
// a terminal), the JSON and SVG files, any OpenAI-compatible endpoint without a router, the
// request the bench sends, and its errors.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

import { setup, SEMROUTER_BIN, SOURCE_DIR, closedPort } from './harness.mjs';

const h = setup('bench_cli');
const FIXTURES = path.join(SOURCE_DIR, 'tests', 'fixtures', 'bench');
const MC = path.join(FIXTURES, 'mc.jsonl');
const PROMPTS = path.join(FIXTURES, 'prompts.jsonl');
let mockA;
let mockB;
let router;

before(async () => {
  mockA = await h.startMock({ name: 'A' });
  mockB = await h.startMock({ name: 'B' });
  router = await h.startRouter({
    server: { reload_poll_ms: 0 },
    backends: [
      { name: 'a', url: mockA.url },
      { name: 'b', url: mockB.url },
    ],
    models: [
      {
        name: 'qwen3-8b',
        upstream_model: 'Qwen/Qwen3-8B',
        backends: ['a'],
        reasoning_family: 'qwen3',
        pricing: { input_per_1m: 0.05, output_per_1m: 0.2 },
      },
      { name: 'llama-3.1-8b', backends: ['b'], pricing: { input_per_1m: 0.02, output_per_1m: 0.05 } },
    ],
    signals: { keywords: [{ name: 'proof', keywords: ['prove'] }] },
    // "Prove ..." questions think; everything else is answered directly.
    decisions: [{ name: 'think', rules: { keyword: 'proof' }, models: [{ model: 'qwen3-8b', reasoning: true }] }],
    default_decision: { name: 'fast', models: [{ model: 'qwen3-8b', reasoning: false }] },
    // The bench asks the cache to stay out of it (cache-control: no-store); prove it does.
    cache: { enabled: true },
  });
});

// Runs the bench; resolves {code, stdout, stderr}.
function bench(args, { env = {}, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(SEMROUTER_BIN, ['bench', ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`bench did not finish within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// Every element opened is closed, in order (the writer escapes text, so no < or & in it).
function assertWellFormedSvg(text, what) {
  assert.match(text, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, what);
  assert.doesNotMatch(text, /<script|javascript:|<foreignObject/i, what);
  const open = [];
  for (const m of text.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    if (m[3] === '/') continue;
    if (m[1] === '/') {
      assert.equal(open.pop(), m[2], `${what}: </${m[2]}> closes the wrong element`);
    } else {
      open.push(m[2]);
    }
  }
  assert.deepEqual(open, [], `${what}: unclosed elements`);
}

const byLabel = (report) => Object.fromEntries(report.configurations.map((c) => [c.label, c]));

// Known answers (tests/fixtures/bench/README.md): prompt tokens 40+30+20+50+60+70 = 270; content
// tokens 3+4+5+6+7+8 = 33; reasoning tokens 30+20+10+50+60+80 = 250, of which the three "Prove"
// questions (the ones routing thinks on) have 190.
const EXPECTED = {
  auto: { correct: 5, completion: 33 + 190, reasoning: 190, cost: (270 * 0.05 + 223 * 0.2) / 1e6 },
  'qwen3-8b/on': { correct: 5, completion: 33 + 250, reasoning: 250, cost: (270 * 0.05 + 283 * 0.2) / 1e6 },
  'qwen3-8b/off': { correct: 3, completion: 33, reasoning: 0, cost: (270 * 0.05 + 33 * 0.2) / 1e6 },
  'qwen3-8b': { correct: 3, completion: 33, reasoning: 0, cost: (270 * 0.05 + 33 * 0.2) / 1e6 },
  'llama-3.1-8b': { correct: 3, completion: 33, reasoning: 0, cost: (270 * 0.02 + 33 * 0.05) / 1e6 },
};

test('routing against fixed models and always-reasoning: exact accuracy, tokens and cost', async () => {
  const out = path.join(h.dir, 'run1'); // --out-json makes the folder
  const before = { a: await mockA.stats(), b: await mockB.stats() };
  const ok = await bench([
    '--data', MC,
    '--target', router.url,
    '--models', 'auto,qwen3-8b,llama-3.1-8b',
    '--reasoning', 'on,off,unset',
    '--config', router.configPath,
    '--concurrency', '3',
    '--out-json', path.join(out, 'report.json'),
    '--out-svg', path.join(out, 'svg'),
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  const c = byLabel(report);
  assert.deepEqual(Object.keys(c), ['auto', 'qwen3-8b/on', 'qwen3-8b/off', 'qwen3-8b', 'llama-3.1-8b']);
  assert.equal(report.records, 6);
  assert.equal(report.streamed, true);
  assert.deepEqual(report.warnings, [
    'llama-3.1-8b: no reasoning family in the config, so reasoning on cannot be set: skipped',
    'llama-3.1-8b: no reasoning family in the config, so reasoning off cannot be set: skipped',
  ]);
  for (const [label, want] of Object.entries(EXPECTED)) {
    const t = c[label].totals;
    assert.equal(t.requests, 6, label);
    assert.equal(t.errors, 0, label);
    assert.equal(t.gradable, 6, label);
    assert.equal(t.correct, want.correct, label);
    assert.equal(t.accuracy, want.correct / 6, label);
    assert.equal(t.with_usage, 6, label);
    assert.equal(t.prompt_tokens, 270, label);
    assert.equal(t.completion_tokens, want.completion, label);
    assert.equal(t.reasoning_tokens, want.reasoning, label);
    assert.ok(Math.abs(t.cost_usd - want.cost) < 1e-12, `${label}: cost ${t.cost_usd} != ${want.cost}`);
    assert.equal(c[label].latency_ms.n, 6, label);
    assert.equal(c[label].ttft_ms.n, 6, `${label}: every streamed answer has a first token`);
    assert.ok(c[label].ttft_ms.p50 <= c[label].latency_ms.p50, label);
    assert.ok(c[label].latency_ms.p50 <= c[label].latency_ms.p95 && c[label].latency_ms.p95 <= c[label].latency_ms.p99);
  }
  // What the router picked, from its headers.
  assert.deepEqual(c.auto.router.routes, { 'qwen3-8b/off': 3, 'qwen3-8b/on': 3 });
  assert.deepEqual(c.auto.router.decisions, { fast: 3, think: 3 });
  assert.equal(c.auto.router.reasoning_on, 3);
  assert.equal(c.auto.router.cache_hits, 0);
  // The fields each fixed configuration sent: the router's own plan for the model's family.
  assert.deepEqual(c['qwen3-8b/on'].request_fields, { chat_template_kwargs: { enable_thinking: true } });
  assert.deepEqual(c['qwen3-8b/off'].request_fields, { chat_template_kwargs: { enable_thinking: false } });
  assert.deepEqual(c['qwen3-8b'].request_fields, {});
  // Per category and per request.
  assert.equal(c.auto.categories.math.correct, 2);
  assert.equal(c['qwen3-8b/off'].categories.math.correct, 0);
  assert.equal(c['qwen3-8b/off'].categories.history.correct, 1);
  const row = (label, id) => c[label].results.find((x) => x.id === id);
  assert.deepEqual(
    { route: row('auto', 'mc-4').route, extracted: row('auto', 'mc-4').extracted, correct: row('auto', 'mc-4').correct },
    { route: 'qwen3-8b/on', extracted: 'C', correct: true },
  );
  assert.equal(row('qwen3-8b/off', 'mc-4').extracted, 'B');
  assert.equal(row('qwen3-8b/on', 'mc-6').extracted, 'E');
  assert.deepEqual(row('auto', 'mc-1').tokens, { prompt: 40, completion: 3, reasoning: 0 });
  assert.deepEqual(row('qwen3-8b/on', 'mc-1').tokens, { prompt: 40, completion: 33, reasoning: 30 });
  // The seed question: routing keeps always-reasoning's accuracy for fewer tokens.
  const vsOn = report.comparisons.find((x) => x.against === 'qwen3-8b/on');
  assert.equal(vsOn.routed, 'auto');
  assert.equal(vsOn.against_always_reasoning, true);
  assert.equal(vsOn.accuracy.routed, vsOn.accuracy.against);
  assert.equal(vsOn.completion_tokens_per_request.routed, 223 / 6);
  assert.equal(vsOn.completion_tokens_per_request.against, 283 / 6);
  assert.equal(report.comparisons.length, 4);

  // The table on stdout.
  assert.match(ok.stdout, /^semrouter bench: 6 records from .*mc\.jsonl against http:\/\/127\.0\.0\.1:\d+ \(streamed, concurrency 3,/);
  assert.match(ok.stdout, /^configuration +requests +errors +accuracy +p50 ms +p95 ms +p99 ms +ttft p50 ms +prompt\/req +completion\/req +reasoning\/req +cost USD$/m);
  assert.match(ok.stdout, /^auto +6 +0 +0\.833 \(5\/6\) .* 45\.0 +37\.2 +31\.7 +0\.000058$/m);
  assert.match(ok.stdout, /^qwen3-8b\/off +6 +0 +0\.500 \(3\/6\) .* 45\.0 +5\.5 +0\.0 +0\.000020$/m);
  assert.match(ok.stdout, /^auto picked: qwen3-8b\/off 3, qwen3-8b\/on 3; decisions: fast 3, think 3; reasoning on for 3\/6$/m);
  assert.match(ok.stdout, /^math +0\.667 \(2\/3\) +0\.667 \(2\/3\) +0\.000 \(0\/3\)/m);
  assert.ok(
    ok.stdout.includes(
      "auto: 100% of qwen3-8b/on's accuracy (0.833 vs 0.833) for 79% of its completion tokens " +
        '(37.2 vs 47.2 per request; reasoning 31.7 vs 41.7), 83% of its cost',
    ),
    ok.stdout,
  );
  // Progress: plain lines (stderr is a pipe here), one per configuration at least.
  assert.doesNotMatch(ok.stderr, /\r|\x1b\[/);
  for (const [i, label] of Object.keys(EXPECTED).entries()) {
    const re = new RegExp(`^bench \\[${i + 1}/5\\] ${label.replace('.', '\\.')}: 6/6 \\(100%\\) [\\d.]+ req/s, done in [\\d.]+s$`, 'm');
    assert.match(ok.stderr, re);
  }
  // Charts.
  for (const name of ['accuracy-vs-tokens.svg', 'category-accuracy.svg']) {
    const svg = fs.readFileSync(path.join(out, 'svg', name), 'utf8');
    assertWellFormedSvg(svg, name);
    assert.match(svg, />auto</, name);
  }
  // Each configuration sent each record once: 6 x 4 to qwen3-8b's mock, 6 to llama's. None came
  // from the router's cache.
  const after = { a: await mockA.stats(), b: await mockB.stats() };
  assert.equal(after.a.requests - before.a.requests, 24);
  assert.equal(after.b.requests - before.b.requests, 6);
});

test('any OpenAI-compatible endpoint: plain prompts and message arrays, whole answers, a price file', async () => {
  const json = path.join(h.dir, 'prompts.json');
  const r = await bench([
    '--data', PROMPTS,
    '--target', mockA.url, // the /v1 form
    '--models', 'mock-model',
    '--no-stream',
    '--quiet',
    '--pricing', path.join(FIXTURES, 'pricing.json'),
    '--out-json', json,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /req\/s/, 'no progress with --quiet');
  const report = JSON.parse(fs.readFileSync(json, 'utf8'));
  assert.equal(report.streamed, false);
  assert.equal(report.configurations.length, 1);
  const c = report.configurations[0];
  assert.equal(c.label, 'mock-model');
  assert.equal(c.reasoning, 'unset');
  assert.deepEqual(
    { requests: c.totals.requests, gradable: c.totals.gradable, correct: c.totals.correct },
    { requests: 5, gradable: 4, correct: 3 },
  );
  assert.equal(c.totals.prompt_tokens, 12 + 10 + 14 + 5 + 9);
  assert.equal(c.totals.completion_tokens, 2 + 2 + 2 + 1 + 1);
  assert.ok(Math.abs(c.totals.cost_usd - (50 * 1 + 8 * 2) / 1e6) < 1e-12);
  assert.equal(c.ttft_ms, null, 'no time to first token without streaming');
  assert.equal(c.router, undefined, 'no router: no picks');
  const rows = Object.fromEntries(c.results.map((x) => [x.id, x]));
  assert.equal(rows['p-1'].correct, true);
  assert.equal(rows['p-2'].extracted, 'B');
  assert.equal(rows['p-3'].extracted, 'saturn');
  assert.equal(rows['p-3'].correct, false);
  assert.equal(rows['p-4'].gradable, false);
  assert.equal(rows['p-5'].correct, true);
  assert.equal(c.categories.astronomy.correct, 0);
  assert.equal(c.categories['(none)'].correct, 1);
  assert.match(r.stdout, /^mock-model +5 +0 +0\.750 \(3\/4\) .* 0\.000066$/m);
});

test('the request: model, stream options, reasoning fields by family, key, headers, no-store', async () => {
  const seen = [];
  const server = await h.startHttpServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ url: req.url, headers: req.headers, body: JSON.parse(body) });
      const answer = 'The answer is (A).';
      if (JSON.parse(body).stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { role: 'assistant', content: answer } }] })}\n\n`);
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
        res.write(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 5 } })}\n\n`);
        res.end('data: [DONE]\n\n');
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }] }));
      }
    });
  });
  const r = await bench(
    [
      '--data', MC,
      '--limit', '2',
      '--target', `${server.origin}/prefix/v1/chat/completions`,
      '--models', 'oss',
      '--reasoning', 'on,off',
      '--reasoning-family', 'gpt-oss',
      '--api-key-env', 'BENCH_TEST_KEY',
      '--header', 'x-tenant-id: bench',
      '--max-tokens', '256',
      '--temperature', '0',
      '--concurrency', '1',
    ],
    { env: { BENCH_TEST_KEY: 'sk-test-123' } },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(seen.length, 4);
  for (const s of seen) {
    assert.equal(s.url, '/prefix/v1/chat/completions');
    assert.equal(s.headers.authorization, 'Bearer sk-test-123');
    assert.equal(s.headers['x-tenant-id'], 'bench');
    assert.equal(s.headers['cache-control'], 'no-store');
    assert.equal(s.headers['content-type'], 'application/json');
    assert.equal(s.body.model, 'oss');
    assert.equal(s.body.stream, true);
    assert.deepEqual(s.body.stream_options, { include_usage: true });
    assert.equal(s.body.max_tokens, 256);
    assert.equal(s.body.temperature, 0);
    assert.equal(s.body.messages.length, 1);
    assert.match(s.body.messages[0].content, /\n\nA\. .*\nB\. .*\nC\. .*\nD\. .*\n\nAnswer with the letter of the correct option, as "The answer is \(X\)"\.$/);
  }
  assert.equal(
    seen[0].body.messages[0].content,
    'In which century did printing with movable metal type spread across Europe? ' +
      '[[mock answer=C tokens=3 reasoning_tokens=30 prompt_tokens=40]]\n\nA. 13th\nB. 14th\nC. 15th\nD. 16th\n\n' +
      'Answer with the letter of the correct option, as "The answer is (X)".',
  );
  assert.deepEqual(seen.map((s) => s.body.reasoning_effort), ['medium', 'medium', 'low', 'low']);
  // One kept-alive connection carried every request (concurrency 1).
  assert.equal(new Set(seen.map((s) => s.headers.host)).size, 1);
  // Usage without reasoning tokens, and no pricing: tokens shown, cost not.
  assert.match(r.stdout, /^oss\/on +2 +0 +0\.000 \(0\/2\) .* 7\.0 +5\.0 +0\.0 +-$/m); // always "(A)"
  assert.match(r.stdout, /oss\/on: no price for oss \(give --pricing or --config\): cost not shown/);
});

test('on a terminal the progress is a bar redrawn in place', { skip: !fs.existsSync('/usr/bin/script') && 'needs script(1) for a pty' }, async () => {
  // script(1) gives the bench a pseudo-terminal; what the bench wrote comes back on stdout.
  const cmd = [SEMROUTER_BIN, 'bench', '--data', PROMPTS, '--target', mockA.url, '--models', 'm', '--concurrency', '1']
    .map((a) => `'${a}'`)
    .join(' ');
  const r = spawnSync('script', ['-q', '-e', '-c', `${cmd} >/dev/null`, '/dev/null'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /\r\x1b\[Kbench \[1\/1\] m \[#{24}\] 5\/5 \(100%\) [\d.]+ req\/s, done in [\d.]+s\r?\n/);
});

test('failures: an upstream answering 503, a closed port, bad data, a missing key, an unknown family', async () => {
  const failing = await h.startMock({ name: 'F', failStatus: 503 });
  const r = await bench(['--data', PROMPTS, '--target', failing.url, '--models', 'm']);
  assert.equal(r.code, 1, 'no request got an answer');
  assert.match(r.stdout, /^m +5 +5 +0\.000 \(0\/4\)/m);
  assert.match(r.stdout, /^m: error: HTTP 503: mock: injected error 503$/m);
  assert.match(r.stderr, /bench \[1\/1\] m: 5\/5 \(100%\) .*, 5 errors$/m);
  assert.match(r.stderr, /bench: no request got an answer/);

  const port = await closedPort();
  const closed = await bench(['--data', PROMPTS, '--target', `http://127.0.0.1:${port}`, '--models', 'm', '--limit', '1']);
  assert.equal(closed.code, 1);
  assert.match(closed.stdout, new RegExp(`m: error: cannot connect to 127\\.0\\.0\\.1:${port}: Connection refused`));

  const bad = path.join(h.dir, 'bad.jsonl');
  fs.writeFileSync(bad, '{"prompt": "ok"}\n{"question": "q", "options": "abc"}\n');
  const badRun = await bench(['--data', bad, '--target', mockA.url]);
  assert.equal(badRun.code, 2);
  assert.equal(badRun.stderr, `bench: --data: ${bad}:2: options: expected a non-empty array of strings\n`);

  const noKey = await bench(['--data', PROMPTS, '--target', mockA.url, '--api-key-env', 'BENCH_NO_SUCH_VAR']);
  assert.equal(noKey.code, 2);
  assert.match(noKey.stderr, /--api-key-env: environment variable BENCH_NO_SUCH_VAR is not set or empty/);

  const family = await bench(['--data', PROMPTS, '--target', mockA.url, '--models', 'm', '--reasoning', 'on', '--reasoning-family', 'llama']);
  assert.equal(family.code, 2);
  assert.match(family.stderr, /--reasoning-family: unknown family "llama" \(known: anthropic, deepseek, gpt-oss, qwen3, none\)/);

  const target = await bench(['--data', PROMPTS, '--target', 'ftp://example']);
  assert.equal(target.code, 2);
  assert.match(target.stderr, /--target: expected an http:\/\/ or https:\/\/ URL, got "ftp:\/\/example"/);
});

test('https: the server is verified against --ca-file (name included), SNI is sent; a wrong name fails', async () => {
  const dir = path.join(h.dir, 'pki');
  fs.mkdirSync(dir, { recursive: true });
  const f = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=bench test ca');
  for (const [name, san] of [['server', 'DNS:localhost,IP:127.0.0.1'], ['other', 'DNS:other.example']]) {
    fs.writeFileSync(f(`${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n`);
    openssl('req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f(`${name}.pem`), '-days', '2', '-extfile', f(`${name}.ext`));
  }
  const start = async (name) => {
    const sni = [];
    const server = https.createServer({ cert: fs.readFileSync(f(`${name}.pem`)), key: fs.readFileSync(f(`${name}.key`)) }, (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({
          choices: [{ index: 0, message: { role: 'assistant', content: 'The answer is (C).' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 4, completion_tokens: 2 },
        }));
      });
    });
    server.on('secureConnection', (socket) => sni.push(socket.servername));
    server.on('tlsClientError', () => {});
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    h.servers = h.servers || [];
    h.servers.push(server);
    return { port: server.address().port, sni };
  };
  const good = await start('server');
  const r = await bench(['--data', MC, '--limit', '1', '--target', `https://localhost:${good.port}/v1`,
    '--models', 'm', '--ca-file', f('ca.pem'), '--no-stream']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /^m +1 +0 +1\.000 \(1\/1\)/m);
  assert.deepEqual(good.sni, ['localhost']);

  // Not trusted without the CA; a certificate for another name is refused even with it.
  const untrusted = await bench(['--data', MC, '--limit', '1', '--target', `https://localhost:${good.port}`, '--models', 'm']);
  assert.equal(untrusted.code, 1);
  assert.match(untrusted.stdout, new RegExp(`m: error: cannot connect to localhost:${good.port} \\(TLS\\): .*certificate verify failed`));
  const other = await start('other');
  const wrong = await bench(['--data', MC, '--limit', '1', '--target', `https://localhost:${other.port}`, '--models', 'm',
    '--ca-file', f('ca.pem')]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stdout, /m: error: cannot connect to localhost:\d+ \(TLS\): .*certificate verify failed/);
});
