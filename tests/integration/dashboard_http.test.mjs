// The dashboard's endpoints over plain HTTP (dashboard.test.mjs drives them in a browser): the
// page and its embedded assets with their content types and cache headers, the JSON APIs, the
// event stream (a decision arrives after a request), the dry run's decision path, the config
// page's masking, generation and diff across a reload, prompts only when the config allows them
// (PII-redacted), the dashboard switched off, and the admin token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { performance } from 'node:perf_hooks';

import { setup, request, waitFor } from './harness.mjs';

const h = setup('dashboard_http');
const TOKEN = 'dash-admin-token-4711';
let mock;
let router; // no admin token
let guarded; // with an admin token
const streams = new Set();

function config(extra = {}) {
  return {
    server: { workers: 2, reload_poll_ms: 0 },
    backends: [{ name: 'main', url: mock.url }],
    models: [
      { name: 'qwen3-8b', upstream_model: 'Qwen/Qwen3-8B', backends: ['main'], pricing: { input_per_1m: 1, output_per_1m: 2 } },
      { name: 'llama', backends: ['main'] },
    ],
    default_model: 'llama',
    signals: { keywords: [{ name: 'math', keywords: ['integral'] }, { name: 'bad', keywords: ['jailbreak'] }] },
    decisions: [
      { name: 'guard', priority: 100, rules: { keyword: 'bad' }, models: [{ model: 'llama' }], plugins: { block: { enabled: true } } },
      {
        name: 'math',
        priority: 10,
        rules: { and: [{ keyword: 'math' }, { not: { keyword: 'bad' } }] },
        models: [{ model: 'qwen3-8b' }],
        plugins: { headers: { set: { 'x-vendor-token': 'upstream-secret-xyz' } } },
      },
    ],
    ...extra,
  };
}

// An open event stream: GET with headers, events parsed as they arrive.
function openEvents(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const events = [];
    let buffer = '';
    const waiters = new Set();
    const req = http.get(url, { headers, agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buffer += d;
        for (;;) {
          const end = buffer.indexOf('\n\n');
          if (end < 0) break;
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const ev = { event: 'message', id: null, data: '', at: performance.now() };
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) ev.event = line.slice(7);
            else if (line.startsWith('id: ')) ev.id = line.slice(4);
            else if (line.startsWith('data: ')) ev.data += line.slice(6);
            else if (line.startsWith('retry: ')) ev.retry = Number(line.slice(7));
          }
          events.push(ev);
          for (const w of waiters) w();
        }
      });
      res.on('error', () => {});
      const s = {
        status: res.statusCode,
        headers: res.headers,
        events,
        close: () => {
          req.destroy();
          streams.delete(s);
        },
        // Resolves the first event (from `from` on) matching `pred`, or rejects after timeoutMs.
        next(pred, { timeoutMs = 2000, from = 0 } = {}) {
          return new Promise((ok, fail) => {
            const check = () => {
              const hit = events.slice(from).find(pred);
              if (hit) {
                waiters.delete(check);
                clearTimeout(timer);
                ok(hit);
              }
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(events.map((e) => e.event))}`));
            }, timeoutMs);
            waiters.add(check);
            check();
          });
        },
      };
      streams.add(s);
      resolve(s);
    });
    req.on('error', reject);
  });
}

before(async () => {
  mock = await h.startMock({ name: 'M', tokens: 4 });
  router = await h.startRouter(config());
  guarded = await h.startRouter(
    config({ auth: { admin_token_env: 'DASH_ADMIN_TOKEN' } }),
    { name: 'guarded', env: { DASH_ADMIN_TOKEN: TOKEN } },
  );
});

after(() => {
  for (const s of streams) s.close();
});

test('the page and every asset it names are served, with content types and cache headers', async () => {
  for (const path of ['/', '/ui']) {
    const page = await request(`${router.adminUrl}${path}`);
    assert.equal(page.status, 200, page.text);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(page.headers['cache-control'], 'no-cache');
    assert.match(page.headers['content-security-policy'], /script-src 'self'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.match(page.text, /data-token-required="false"/);
  }
  const page = await request(`${router.adminUrl}/`);
  const urls = [...page.text.matchAll(/(?:href|src)="(\/ui\/[0-9a-f]{12}\/[^"]+)"/g)].map((m) => m[1]);
  assert.ok(urls.length >= 4, `asset URLs in the page: ${urls}`);
  const types = { js: /^text\/javascript/, css: /^text\/css/, svg: /^image\/svg\+xml/ };
  const base = urls[0].slice(0, urls[0].indexOf('/', 4) + 1);
  for (const file of ['pages/live.js', 'pages/traffic.js', 'pages/playground.js', 'pages/config.js', 'api.js', 'dom.js', 'store.js', 'vendor/uPlot.LICENSE.txt'])
    urls.push(base + file);
  for (const url of new Set(urls)) {
    const res = await request(`${router.adminUrl}${url}`);
    assert.equal(res.status, 200, url);
    const ext = url.split('.').pop();
    if (types[ext]) assert.match(res.headers['content-type'], types[ext], url);
    assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable', url);
    assert.ok(res.raw.length > 0, url);
  }
  const uplot = await request(`${router.adminUrl}${base}vendor/uPlot.iife.min.js`);
  assert.match(uplot.text, /uPlot/);
  const missing = await request(`${router.adminUrl}${base}nope.js`);
  assert.equal(missing.status, 404);
  const post = await request(`${router.adminUrl}/api/v1/dashboard/info`, { method: 'POST', json: {} });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET');
  // The gateway's own admin endpoints are untouched.
  assert.equal((await request(`${router.adminUrl}/metrics`)).status, 200);
  assert.equal((await request(`${router.adminUrl}/api/v1/config`)).json.generation, 1);
  // ...and the gateway port serves no dashboard.
  assert.equal((await request(`${router.url}/`)).status, 404);
});

test('a decision reaches the event stream within seconds of its answer', async () => {
  const s = await openEvents(`${router.adminUrl}/api/v1/dashboard/events?backlog=0`);
  assert.equal(s.status, 200);
  assert.match(s.headers['content-type'], /^text\/event-stream/);
  await s.next((e) => e.event === 'hello');
  const res = await router.chat(
    { model: 'auto', messages: [{ role: 'user', content: 'an integral, please' }] },
    { headers: { 'x-tenant-id': 'team-sse' } },
  );
  assert.equal(res.status, 200, res.text);
  const answered = performance.now();
  // The server polls for decisions every 250 ms; the bound leaves room for a loaded machine.
  const ev = await s.next((e) => e.event === 'decision' && JSON.parse(e.data).tenant === 'team-sse', { timeoutMs: 3000 });
  assert.ok(ev.at - answered < 3000, `${ev.at - answered} ms`);
  const d = JSON.parse(ev.data);
  assert.equal(d.decision, 'math');
  assert.equal(d.model, 'qwen3-8b');
  assert.equal(d.status, 200);
  assert.deepEqual(d.signals, ['keyword:math']);
  assert.equal(d.prompt_tokens + d.completion_tokens > 0, true);
  assert.ok(d.latency_ms > 0);
  assert.ok(!('prompt' in d), 'no prompt text unless dashboard.show_prompts');
  assert.equal(String(d.seq), ev.id);
  // A guard's answer is a decision too.
  await router.chat({ model: 'auto', messages: [{ role: 'user', content: 'a jailbreak' }] });
  const blocked = JSON.parse((await s.next((e) => e.event === 'decision' && JSON.parse(e.data).blocked)).data);
  assert.equal(blocked.decision, 'guard');
  assert.equal(blocked.model, null);
  s.close();
  // A new stream starts with the backlog asked for.
  const again = await openEvents(`${router.adminUrl}/api/v1/dashboard/events?backlog=2`);
  const first = await again.next((e) => e.event === 'decision');
  assert.equal(JSON.parse(first.data).tenant, 'team-sse');
  again.close();
});

test('decisions, traffic and info', async () => {
  const streamed = await router.chat({ model: 'llama', stream: true, messages: [{ role: 'user', content: 'hello' }] });
  assert.equal(streamed.status, 200);
  // The decision is recorded when the exchange finishes, which may be after the client has the
  // stream's last byte (another worker may take the admin request first): poll for it.
  const d = await waitFor(async () => {
    const j = (await request(`${router.adminUrl}/api/v1/dashboard/decisions?limit=50`)).json;
    return j.decisions.at(-1)?.stream === true && j;
  }, { what: 'the streamed request in the decisions' });
  assert.ok(d.decisions.length >= 3);
  const last = d.decisions.at(-1);
  assert.equal(last.decision, 'passthrough');
  assert.equal(last.stream, true);
  assert.ok(last.ttft_ms > 0);
  assert.equal(d.next, last.seq + 1);
  const info = (await request(`${router.adminUrl}/api/v1/dashboard/info`)).json;
  assert.deepEqual(info.models, ['qwen3-8b', 'llama']);
  assert.ok(info.decisions.includes('math'));
  assert.equal(info.show_prompts, false);
  const t = (await request(`${router.adminUrl}/api/v1/dashboard/traffic?seconds=60`)).json;
  assert.equal(t.bucket_s, 10);
  assert.equal(t.t.length, t.requests.length);
  assert.ok(t.totals.requests >= 3);
  assert.ok(t.totals.latency_p50_ms > 0);
  assert.ok(t.totals.ttft_p50_ms > 0);
  assert.ok(t.models['qwen3-8b'].tokens.some((x) => x > 0));
  assert.ok(t.decisions.math.requests.some((x) => x > 0));
  assert.ok(t.signals.keyword.mean_us.some((x) => x !== null));
  const bad = await request(`${router.adminUrl}/api/v1/dashboard/traffic?seconds=abc`);
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'seconds');
});

test('the dry run shows every signal and the decision path', async () => {
  const res = await request(`${router.adminUrl}/api/v1/route`, {
    method: 'POST',
    json: { model: 'auto', messages: [{ role: 'user', content: 'an integral' }] },
  });
  assert.equal(res.status, 200, res.text);
  const j = res.json;
  assert.equal(j.decision, 'math'); // the existing fields stay
  assert.equal(j.model, 'qwen3-8b');
  assert.equal(j.signals['keyword:math'].matched, true);
  assert.equal(j.signals['keyword:bad'].matched, false);
  assert.equal(j.decision_path.winner, 'math');
  const [guard, math] = j.decision_path.decisions;
  assert.equal(guard.name, 'guard');
  assert.equal(guard.matched, false);
  assert.equal(math.chosen, true);
  assert.equal(math.rule.kind, 'and');
  assert.deepEqual(math.rule.children.map((c) => c.result), [true, true]);
  assert.equal(math.rule.children[1].kind, 'not');
});

test('config: secrets masked, generation, last reload error, diff against the previous generation', async () => {
  let c = (await request(`${router.adminUrl}/api/v1/dashboard/config`)).json;
  assert.equal(c.generation, 1);
  assert.equal(c.previous, null);
  assert.doesNotMatch(c.config, /upstream-secret-xyz/);
  assert.match(c.config, /"x-vendor-token": "\*{8}"/);
  // A good reload: generation 2 and its diff; then a bad one: the error, still generation 2.
  router.writeConfig(config({ dashboard: { show_prompts: true } }));
  router.child.signal('SIGHUP');
  await waitFor(async () => (await router.adminConfig()).generation === 2, { what: 'generation 2' });
  router.writeConfig('models: [');
  router.child.signal('SIGHUP');
  await waitFor(async () => (await router.adminConfig()).last_error, { what: 'a rejected reload' });
  c = (await request(`${router.adminUrl}/api/v1/dashboard/config`)).json;
  assert.equal(c.generation, 2);
  assert.equal(c.reloads_failed, 1);
  assert.match(c.last_error, /YAML syntax error/);
  assert.equal(c.previous.generation, 1);
  assert.ok(c.previous.added > 0);
  const added = c.diff.filter(([op]) => op === '+').map(([, text]) => text).join('\n');
  assert.match(added, /show_prompts/);
  assert.doesNotMatch(JSON.stringify(c), /upstream-secret-xyz/);
});

test('prompts are shown once the config allows it, with personal data redacted', async () => {
  // The reload above turned dashboard.show_prompts on.
  const s = await openEvents(`${router.adminUrl}/api/v1/dashboard/events?backlog=0`);
  await s.next((e) => e.event === 'hello');
  await router.chat({
    model: 'auto',
    messages: [{ role: 'user', content: 'an integral for jo@example.com, card 4111 1111 1111 1111' }],
  });
  const d = JSON.parse((await s.next((e) => e.event === 'decision')).data);
  assert.equal(d.prompt, 'an integral for [EMAIL], card [CREDIT_CARD]');
  s.close();
  assert.equal((await request(`${router.adminUrl}/api/v1/dashboard/info`)).json.show_prompts, true);
});

test('the dashboard switched off: its paths are 404 and nothing is recorded', async () => {
  const before = (await request(`${router.adminUrl}/api/v1/dashboard/info`)).json.next_seq;
  router.writeConfig(config({ dashboard: { enabled: false } }));
  router.child.signal('SIGHUP');
  await waitFor(async () => (await router.adminConfig()).generation === 3, { what: 'generation 3' });
  for (const path of ['/', '/api/v1/dashboard/info', '/api/v1/dashboard/events'])
    assert.equal((await request(`${router.adminUrl}${path}`)).status, 404, path);
  assert.equal((await request(`${router.adminUrl}/metrics`)).status, 200);
  assert.equal((await router.chat({ model: 'auto', messages: [{ role: 'user', content: 'an integral' }] })).status, 200);
  router.writeConfig(config());
  router.child.signal('SIGHUP');
  await waitFor(async () => (await router.adminConfig()).generation === 4, { what: 'generation 4' });
  const info = await request(`${router.adminUrl}/api/v1/dashboard/info`);
  assert.equal(info.status, 200);
  assert.equal(info.json.next_seq, before);
});

test('with an admin token, the APIs and the stream need it', async () => {
  const bearer = { authorization: `Bearer ${TOKEN}` };
  for (const path of ['/api/v1/dashboard/info', '/api/v1/dashboard/decisions', '/api/v1/dashboard/traffic', '/api/v1/dashboard/config']) {
    const no = await request(`${guarded.adminUrl}${path}`);
    assert.equal(no.status, 401, path);
    assert.equal(no.json.error.code, 'invalid_admin_token');
    const wrong = await request(`${guarded.adminUrl}${path}`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401, path);
    const yes = await request(`${guarded.adminUrl}${path}`, { headers: bearer });
    assert.equal(yes.status, 200, path);
  }
  const refused = await openEvents(`${guarded.adminUrl}/api/v1/dashboard/events`);
  assert.equal(refused.status, 401);
  refused.close();
  const s = await openEvents(`${guarded.adminUrl}/api/v1/dashboard/events?backlog=0`, bearer);
  assert.equal(s.status, 200);
  await s.next((e) => e.event === 'hello');
  await guarded.chat({ model: 'auto', messages: [{ role: 'user', content: 'an integral' }] });
  await s.next((e) => e.event === 'decision', { timeoutMs: 3000 });
  s.close();
  // The page tells the script to ask for the token. (A browser cannot put a bearer header on a
  // page load: until the gateway serves the static page without the token, it is 401 without.)
  const page = await request(`${guarded.adminUrl}/`, { headers: bearer });
  assert.equal(page.status, 200);
  assert.match(page.text, /data-token-required="true"/);
  const bare = await request(`${guarded.adminUrl}/`);
  assert.ok([200, 401].includes(bare.status), String(bare.status));
  if (bare.status === 200) assert.match(bare.text, /data-token-required="true"/);
});
