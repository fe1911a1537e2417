// Hot reload: the config file is polled (server.reload_poll_ms) and re-read on SIGHUP. A good new
// config takes over, a broken one is rejected with an error naming where it is broken while the
// old one keeps serving, and requests in flight finish on the config they started with.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { setup, request, stream, waitFor, parseMetrics, metricValue, closedPort, configText } from './harness.mjs';

const h = setup('reload');
let mock;
let router;
let deadPort;

// The config under test; `extra` adds models, `decisionModel` picks the math decision's model.
function config({ pollMs = 100, extraModels = [], decisionModel = 'base-model', baseBackend = 'main' } = {}) {
  return {
    server: { workers: 1, reload_poll_ms: pollMs },
    backends: [
      { name: 'main', url: mock.url },
      { name: 'dead', url: `http://127.0.0.1:${deadPort}/v1`, timeouts: { connect_ms: 500 } },
    ],
    models: [
      { name: 'base-model', upstream_model: 'org/base', backends: [baseBackend], reasoning_family: 'qwen3' },
      ...extraModels,
    ],
    signals: { keywords: [{ name: 'math', keywords: ['integral'] }] },
    decisions: [{ name: 'math', rules: { keyword: 'math' }, models: [{ model: decisionModel, reasoning: true }] }],
  };
}

const ADDED = { name: 'added-model', upstream_model: 'org/added', backends: ['main'] };

async function modelIds(r) {
  const res = await request(`${r.url}/v1/models`);
  assert.equal(res.status, 200);
  return res.json.data.map((m) => m.id);
}

async function waitForReload(r, before, field, what) {
  return waitFor(
    async () => {
      const c = await r.adminConfig();
      return c[field] > before[field] ? c : null;
    },
    { timeoutMs: 5000, what },
  );
}

before(async () => {
  mock = await h.startMock({ name: 'R' });
  deadPort = await closedPort();
  router = await h.startRouter(config());
});

test('the admin config endpoint starts at generation 1 with no error', async () => {
  assert.deepEqual(await router.adminConfig(), { generation: 1, reloads_ok: 0, reloads_failed: 0, last_error: null });
});

test('a model added to the file appears in /v1/models without a restart', async () => {
  assert.ok(!(await modelIds(router)).includes('added-model'));
  router.writeConfig(config({ extraModels: [ADDED] }));
  await waitFor(async () => (await modelIds(router)).includes('added-model'), {
    timeoutMs: 5000,
    what: 'added-model in /v1/models',
  });
  const c = await router.adminConfig();
  assert.equal(c.generation, 2);
  assert.equal(c.reloads_ok, 1);
  assert.equal(c.last_error, null);

  const res = await router.chat({ model: 'added-model', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.mock_echo.model, 'org/added');
});

test('a decision naming an unknown model is rejected; the old config keeps serving', async () => {
  const before = await router.adminConfig();
  const modelsBefore = await modelIds(router);
  router.writeConfig(config({ extraModels: [ADDED], decisionModel: 'ghost-model' }));
  const c = await waitForReload(router, before, 'reloads_failed', 'the broken reload to be reported');
  assert.equal(c.generation, before.generation, 'generation unchanged');
  assert.equal(c.reloads_ok, before.reloads_ok);
  assert.match(c.last_error, /decisions\[0\]\.models\[0\]\.model: unknown model "ghost-model"/);
  assert.match(c.last_error, /known: base-model, added-model/);

  assert.deepEqual(await modelIds(router), modelsBefore);
  const res = await router.chat({ model: 'auto', messages: [{ role: 'user', content: 'an integral' }] });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers['x-semrouter-model'], 'base-model');
  assert.equal(res.headers['x-semrouter-decision'], 'math');

  const m = parseMetrics(await router.metrics());
  assert.equal(metricValue(m, 'semrouter_config_reloads_total', { result: 'error' }), 1);
  assert.equal(metricValue(m, 'semrouter_config_reloads_total', { result: 'ok' }), 1);
  assert.equal(metricValue(m, 'semrouter_config_generation'), 2);
});

test('invalid YAML is rejected with its line and column; the old config keeps serving', async () => {
  const before = await router.adminConfig();
  // An unterminated flow sequence.
  router.writeConfig(`server: {reload_poll_ms: 100}\nmodels: [\n  {name: x, backends: [main]\n`);
  const c = await waitForReload(router, before, 'reloads_failed', 'the YAML error to be reported');
  assert.equal(c.generation, before.generation);
  assert.match(c.last_error, /YAML syntax error at line \d+, column \d+/);
  assert.ok(c.last_error.includes(path.basename(router.configPath)), `names the file: ${c.last_error}`);
  assert.deepEqual(await modelIds(router), ['auto', 'MoM', 'base-model', 'added-model']);
});

test('an unknown key is rejected with its key path', async () => {
  const before = await router.adminConfig();
  const cfg = config({ extraModels: [ADDED] });
  cfg.backends[0].timeouts = { conect_ms: 100 };
  router.writeConfig(cfg);
  const c = await waitForReload(router, before, 'reloads_failed', 'the unknown key to be reported');
  assert.match(c.last_error, /backends\[0\]\.timeouts: unknown key "conect_ms"/);
  assert.equal(c.generation, before.generation);
});

test('a good config after bad ones is taken and clears last_error', async () => {
  const before = await router.adminConfig();
  router.writeConfig(config({ extraModels: [ADDED, { name: 'third-model', backends: ['main'] }] }));
  const c = await waitForReload(router, before, 'reloads_ok', 'the good reload');
  assert.equal(c.generation, before.generation + 1);
  assert.equal(c.last_error, null);
  assert.deepEqual(await modelIds(router), ['auto', 'MoM', 'base-model', 'added-model', 'third-model']);
});

test('requests in flight during a reload finish on the config they started with', async () => {
  const statsBefore = await mock.stats();
  const slow = router.chat(
    { model: 'base-model', messages: [{ role: 'user', content: 'slow one' }], mock: { first_byte_delay_ms: 2500 } },
    { timeoutMs: 10_000 },
  );
  const streamed = stream(
    `${router.url}/v1/chat/completions`,
    {
      model: 'base-model',
      stream: true,
      messages: [{ role: 'user', content: 'slow stream' }],
      mock: { tokens: 10, token_delay_ms: 200 },
    },
    { timeoutMs: 10_000 },
  );
  let settledEarly = false;
  slow.then(() => {
    settledEarly = true;
  });
  await waitFor(async () => (await mock.stats()).requests >= statsBefore.requests + 2, {
    what: 'both requests to reach the mock',
  });

  // The new config sends base-model to a dead backend and drops added-model.
  const before = await router.adminConfig();
  router.writeConfig(config({ baseBackend: 'dead' }));
  const c = await waitForReload(router, before, 'reloads_ok', 'the reload while requests are in flight');
  assert.equal(c.last_error, null);
  assert.equal(settledEarly, false, 'the slow request finished before the reload; the test proves nothing');

  // New requests see the new config...
  const fresh = await router.chat({ model: 'base-model', messages: [{ role: 'user', content: 'new' }] });
  assert.equal(fresh.status, 502, fresh.text);
  const gone = await router.chat({ model: 'added-model', messages: [{ role: 'user', content: 'new' }] });
  assert.equal(gone.status, 404, gone.text);

  // ...while the ones in flight complete normally on the old one.
  const slowRes = await slow;
  assert.equal(slowRes.status, 200, slowRes.text);
  assert.equal(slowRes.json.mock_echo.messages[0].content, 'slow one');
  const streamRes = await streamed;
  assert.equal(streamRes.status, 200);
  assert.equal(streamRes.complete, true);
  assert.equal(streamRes.events.at(-1).data, '[DONE]');
  assert.equal(streamRes.events.filter((e) => / tok\d/.test(e.data)).length, 10);
});

test('SIGHUP reloads the config when polling is off', async () => {
  const r = await h.startRouter(config({ pollMs: 0 }), { name: 'router-hup' });
  // A first answer proves the event loop (and its signal handler) runs.
  assert.equal((await request(`${r.url}/health`)).status, 200);
  r.writeConfig(config({ pollMs: 0, extraModels: [ADDED] }));
  assert.ok(!(await modelIds(r)).includes('added-model'), 'no polling: nothing happens without the signal');
  const before = await r.adminConfig();
  r.child.signal('SIGHUP');
  const c = await waitForReload(r, before, 'reloads_ok', 'the SIGHUP reload');
  assert.equal(c.generation, 2);
  assert.ok((await modelIds(r)).includes('added-model'));
  assert.equal(r.child.exit, null, 'SIGHUP did not stop the router');

  // A broken file on SIGHUP is rejected like a polled one.
  const before2 = await r.adminConfig();
  r.writeConfig('models: {');
  r.child.signal('SIGHUP');
  const c2 = await waitForReload(r, before2, 'reloads_failed', 'the failed SIGHUP reload');
  assert.equal(c2.generation, 2);
  assert.match(c2.last_error, /YAML syntax error/);
  assert.ok((await modelIds(r)).includes('added-model'));
  await r.stop();
});

test('a symlink swap (as Kubernetes does for ConfigMaps) is picked up', async () => {
  const base = fs.mkdtempSync(path.join(h.dir, 'cm-'));
  const v1 = path.join(base, '..v1');
  const v2 = path.join(base, '..v2');
  fs.mkdirSync(v1);
  fs.mkdirSync(v2);
  fs.writeFileSync(path.join(v1, 'config.yaml'), configText(config()));
  fs.writeFileSync(path.join(v2, 'config.yaml'), configText(config({ extraModels: [ADDED] })));
  fs.symlinkSync('..v1', path.join(base, '..data'));
  fs.symlinkSync(path.join('..data', 'config.yaml'), path.join(base, 'config.yaml'));
  const r = await h.startRouter(null, { name: 'router-cm', configPath: path.join(base, 'config.yaml') });
  assert.ok(!(await modelIds(r)).includes('added-model'));
  // Atomic flip of ..data to the new version.
  fs.symlinkSync('..v2', path.join(base, '..data.tmp'));
  fs.renameSync(path.join(base, '..data.tmp'), path.join(base, '..data'));
  await waitFor(async () => (await modelIds(r)).includes('added-model'), {
    timeoutMs: 5000,
    what: 'the swapped config',
  });
  await r.stop();
});
