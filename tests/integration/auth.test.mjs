// Who may use the router: client API keys (hashed in the config or a hot-reloaded file), the
// models and decisions each key may reach, rate limits on requests and tokens (429 with
// retry-after, then recovery), per-key usage (labelled by key and tenant) and budgets that first
// degrade routing to cheaper models and only then refuse, spend that survives a restart (state
// file; or Redis, shared by two routers, through a Redis outage and a restart of both), the admin
// port's bearer token, and no secret in any log line, metrics page or admin answer.
//
// The Redis tests need a real redis-server (/usr/bin/redis-server, as cache_redis.test.mjs);
// it is started on a free loopback port and killed in an `after` hook.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import {
  setup, request, stream, assertOpenAIError, waitFor, writeFileAtomic, SEMROUTER_BIN,
  parseMetrics, metricValue, closedPort, redisPing,
} from './harness.mjs';

const h = setup('auth');
const sha = (k) => createHash('sha256').update(k).digest('hex');

const SECRETS = {
  alpha: 'sk-alpha-0f9e8d7c6b5a',
  small: 'sk-small-only-1a2b3c4d',
  revoked: 'sk-revoked-9z8y7x',
  limited: 'sk-limited-5u6v7w',
  tokens: 'sk-tokens-8h9i0j',
  shared: 'sk-shared-spend-4w5x6y',
  spender: 'sk-spender-3m4n5o',
  broke: 'sk-broke-7p8q9r',
  later: 'sk-later-from-file-2k3l',
  backend: 'sk-backend-upstream-6t7u8v',
  admin: 'admin-token-4d5e6f7a8b9c',
};

const today = new Date().toISOString().slice(0, 10);
const month = today.slice(0, 7);

let mock, router, keysFile, stateFile, configBase;

function config() {
  return configBase;
}

before(async () => {
  mock = await h.startMock({ name: 'M', tokens: 3 });
  keysFile = path.join(h.dir, 'keys.yaml');
  stateFile = path.join(h.dir, 'spend.json');
  fs.writeFileSync(keysFile, 'keys: []\n');
  // Spend already on the books today: 60% of spender's budget, all of broke's.
  fs.writeFileSync(stateFile, JSON.stringify({
    version: 1,
    keys: {
      spender: { day: today, day_usd: 0.6, month, month_usd: 0.6 },
      broke: { day: today, day_usd: 1.0, month, month_usd: 1.0 },
    },
  }));
  configBase = {
    server: { workers: 1, reload_poll_ms: 0, random_seed: 7 },
    backends: [{ name: 'mock', provider: 'vllm', url: mock.url, api_key_env: 'AUTH_IT_BACKEND_KEY' }],
    models: [
      { name: 'big', backends: ['mock'], pricing: { input_per_1m: 5, output_per_1m: 20 } },
      { name: 'small', backends: ['mock'], pricing: { input_per_1m: 0.1, output_per_1m: 0.2 } },
    ],
    default_model: 'small',
    decisions: [
      // "big" unless a budget degrades the request to the cheapest candidate.
      { name: 'everything', rules: 'always', models: [{ model: 'big', weight: 1000000 }, { model: 'small', weight: 1 }] },
    ],
    auth: {
      keys: [
        { name: 'alpha', sha256: sha(SECRETS.alpha) },
        { name: 'small-only', sha256: sha(SECRETS.small), models: ['small'] },
        { name: 'gone', sha256: sha(SECRETS.revoked), revoked: true },
        { name: 'limited', sha256: sha(SECRETS.limited), requests_per_minute: 60, burst: 2, tenant: 'acme' },
        { name: 'tokens', sha256: sha(SECRETS.tokens), tokens_per_minute: 3000 },
        { name: 'spender', sha256: sha(SECRETS.spender), daily_budget_usd: 1.0 },
        { name: 'broke', sha256: sha(SECRETS.broke), daily_budget_usd: 1.0 },
      ],
      keys_file: keysFile,
      state_file: stateFile,
      degrade: [{ spent: 0.5, pressure: 1.0 }],
      admin_token_env: 'AUTH_IT_ADMIN_TOKEN',
    },
  };
  router = await h.startRouter(config(), {
    env: { AUTH_IT_BACKEND_KEY: SECRETS.backend, AUTH_IT_ADMIN_TOKEN: SECRETS.admin },
  });
});

const chat = (key, extra = {}, headers = {}) =>
  request(`${router.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
    json: { model: 'auto', messages: [{ role: 'user', content: 'Say hello' }], ...extra },
  });
const admin = (p, token = SECRETS.admin) =>
  request(`${router.adminUrl}${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

test('a valid key is served; the backend gets its own key, never the client\'s', async () => {
  const res = await chat(SECRETS.alpha);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers['x-semrouter-model'], 'big');
  assert.equal(res.json.mock_headers?.authorization, `Bearer ${SECRETS.backend}`);
});

test('the key may also come as x-api-key or api-key', async () => {
  assert.equal((await chat(null, {}, { 'x-api-key': SECRETS.alpha })).status, 200);
  assert.equal((await chat(null, {}, { 'api-key': SECRETS.alpha })).status, 200);
});

test('missing, wrong and revoked keys get 401 in the OpenAI shape', async () => {
  const missing = await chat(null);
  assertOpenAIError(assert, missing, { status: 401, type: 'authentication_error', code: 'missing_api_key' });
  assert.equal(missing.headers['www-authenticate'], 'Bearer');
  assertOpenAIError(assert, await chat('sk-not-a-key'), { status: 401, code: 'invalid_api_key' });
  assertOpenAIError(assert, await chat(SECRETS.revoked), { status: 401, code: 'revoked_api_key' });
  // GET /v1/models wants a key too.
  assert.equal((await request(`${router.url}/v1/models`)).status, 401);
  assert.equal((await request(`${router.url}/v1/models`, { headers: { authorization: `Bearer ${SECRETS.alpha}` } })).status, 200);
});

test('Anthropic clients get 401 in the Anthropic shape', async () => {
  const res = await request(`${router.url}/v1/messages`, {
    method: 'POST',
    json: { model: 'auto', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] },
  });
  assert.equal(res.status, 401);
  assert.equal(res.json.type, 'error');
  assert.equal(res.json.error.type, 'authentication_error');
});

test('a model the key may not use: 403, whether named or routed to', async () => {
  assert.equal((await chat(SECRETS.small, { model: 'small' })).status, 200);
  const named = await chat(SECRETS.small, { model: 'big' });
  assertOpenAIError(assert, named, { status: 403, type: 'permission_error', code: 'not_allowed' });
  const routed = await chat(SECRETS.small); // auto routes to big
  assertOpenAIError(assert, routed, { status: 403, code: 'not_allowed' });
  assert.match(routed.json.error.message, /model big \(routed from "auto"\)/);
});

test('rate limit: the burst passes, the next request gets 429 with retry-after, then it recovers', async () => {
  assert.equal((await chat(SECRETS.limited)).status, 200);
  assert.equal((await chat(SECRETS.limited)).status, 200);
  const limited = await chat(SECRETS.limited);
  assertOpenAIError(assert, limited, { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' });
  assert.equal(limited.headers['retry-after'], '1');
  assert.equal(limited.headers['x-semrouter-limit'], 'requests');
  // 60 per minute refills one request a second (so the third request has a second to arrive).
  await waitFor(async () => (await chat(SECRETS.limited)).status === 200, {
    timeoutMs: 5000, intervalMs: 100, what: 'the rate limit to recover',
  });
});

test('token limit: an answer that uses up the bucket gets the next request 429 with retry-after, then it recovers', async () => {
  // The first request is admitted on its estimate (body bytes / 4); its answer reports ~3000
  // tokens, which empties the 3000-per-minute bucket (50 tokens a second refill it).
  const first = await chat(SECRETS.tokens, { model: 'small', mock: { tokens: 3000 } });
  assert.equal(first.status, 200, first.text);
  assert.ok(first.json.usage.completion_tokens >= 3000, JSON.stringify(first.json.usage));
  const limited = await chat(SECRETS.tokens, { model: 'small' });
  assertOpenAIError(assert, limited, { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' });
  assert.equal(limited.headers['x-semrouter-limit'], 'tokens');
  assert.match(limited.json.error.message, /API key "tokens" is limited to 3000 tokens per minute/);
  const retry = Number(limited.headers['retry-after']);
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 2, `retry-after ${limited.headers['retry-after']}`);
  // Well within the retry-after: polled, not slept.
  const start = performance.now();
  await waitFor(async () => (await chat(SECRETS.tokens, { model: 'small' })).status === 200, {
    timeoutMs: retry * 1000 + 2000, intervalMs: 100, what: 'the token limit to recover',
  });
  assert.ok(performance.now() - start <= retry * 1000 + 500, 'recovered within retry-after');
  const metrics = (await admin('/metrics')).text;
  assert.match(metrics, /semrouter_key_rejections_total\{key="tokens",tenant="tokens",reason="tokens"\} [1-9]/);
});

test('a budget past its degrade point sends requests to the cheapest candidate, and says so', async () => {
  const res = await chat(SECRETS.spender);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers['x-semrouter-model'], 'small');
  assert.match(res.headers['x-semrouter-budget'], /^spent=0\.6\d*;pressure=1\.00;degraded$/);
  // Without budget pressure the same request goes to big.
  assert.equal((await chat(SECRETS.alpha)).headers['x-semrouter-model'], 'big');
});

test('an exhausted budget answers 429 insufficient_quota with a retry-after to the period end', async () => {
  const res = await chat(SECRETS.broke);
  assertOpenAIError(assert, res, { status: 429, type: 'insufficient_quota', code: 'budget_exhausted' });
  assert.equal(res.headers['x-semrouter-limit'], 'budget');
  const retry = Number(res.headers['retry-after']);
  assert.ok(retry > 0 && retry <= 86400, `retry-after ${retry}`);
});

test('usage per key in the admin API and the metrics', async () => {
  const before = (await admin('/api/v1/keys')).json;
  const find = (j, name) => (Array.isArray(j) ? j : j.keys).find((k) => k.name === name);
  const n0 = find(before, 'alpha').requests;
  assert.equal((await chat(SECRETS.alpha)).status, 200);
  const after = (await admin('/api/v1/keys')).json;
  const alpha = find(after, 'alpha');
  assert.equal(alpha.requests, n0 + 1);
  assert.ok(alpha.prompt_tokens > 0 && alpha.cost_usd > 0, JSON.stringify(alpha));
  const metrics = (await admin('/metrics')).text;
  // Labelled by key and tenant (the name unless the key names one).
  assert.match(metrics, /semrouter_key_requests_total\{key="alpha",tenant="alpha"\} \d+/);
  assert.match(metrics, /semrouter_key_rejections_total\{key="limited",tenant="acme",reason="requests"\} [1-9]/);
  assert.match(metrics, /semrouter_key_tokens_total\{key="alpha",tenant="alpha",kind="prompt"\} [1-9]/);
  assert.match(metrics, /semrouter_key_budget_remaining_usd\{key="spender",tenant="spender",period="day"\} /);
});

test('keys file: a key added is accepted, and revoking it takes effect without a restart', async () => {
  assertOpenAIError(assert, await chat(SECRETS.later), { status: 401 });
  writeFileAtomic(keysFile, `keys:\n  - {name: later, sha256: ${sha(SECRETS.later)}}\n`);
  await waitFor(async () => (await chat(SECRETS.later)).status === 200, {
    timeoutMs: 5000, intervalMs: 50, what: 'the new key from the keys file',
  });
  writeFileAtomic(keysFile, `keys:\n  - {name: later, sha256: ${sha(SECRETS.later)}, revoked: true}\n`);
  await waitFor(async () => (await chat(SECRETS.later)).status === 401, {
    timeoutMs: 5000, intervalMs: 50, what: 'the revocation',
  });
});

test('the admin port asks for its bearer token; the probes stay open', async () => {
  assertOpenAIError(assert, await admin('/metrics', null), { status: 401, code: 'invalid_admin_token' });
  assertOpenAIError(assert, await admin('/api/v1/config', 'wrong-token'), { status: 401 });
  assert.equal((await admin('/metrics')).status, 200);
  assert.equal((await admin('/health', null)).status, 200);
  assert.equal((await admin('/ready', null)).status, 200);
});

test('the router refuses to start with the admin port beyond loopback and no token', () => {
  const cfg = path.join(h.dir, 'open-admin.yaml');
  fs.writeFileSync(cfg, [
    'listeners: {admin: {address: 0.0.0.0, port: 0}}',
    `backends: [{name: m, url: "${mock.url}"}]`,
    'models: [{name: m, backends: [m]}]',
    'default_model: m',
  ].join('\n'));
  const r = spawnSync(SEMROUTER_BIN, ['serve', '--config', cfg, '--port', '0'], { encoding: 'utf8', timeout: 20000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr + r.stdout, /listeners\.admin: listens on 0\.0\.0\.0, beyond loopback/);
});

test('spend survives a restart (state file)', async () => {
  const find = (j, name) => (Array.isArray(j) ? j : j.keys).find((k) => k.name === name);
  const spent = find((await admin('/api/v1/keys')).json, 'spender').budget.day.spent_usd;
  assert.ok(spent >= 0.6, `spent ${spent}`);
  await router.stop();
  router = await h.startRouter(config(), {
    env: { AUTH_IT_BACKEND_KEY: SECRETS.backend, AUTH_IT_ADMIN_TOKEN: SECRETS.admin },
  });
  const again = find((await admin('/api/v1/keys')).json, 'spender').budget.day.spent_usd;
  assert.ok(Math.abs(again - spent) < 1e-9, `before ${spent}, after restart ${again}`);
});

// ---------------------------------------------------------------------------------------------
// Spend in Redis (auth.state_redis): two routers, one redis-server.

const REDIS_SERVER = process.env.REDIS_SERVER || '/usr/bin/redis-server';
const redisProcs = new Set();
process.on('exit', () => {
  for (const p of redisProcs) p.kill('SIGKILL');
});
after(() => {
  for (const p of redisProcs) p.kill('SIGKILL');
});


async function startRedis() {
  if (!fs.existsSync(REDIS_SERVER)) {
    throw new Error(`${REDIS_SERVER} is missing: the spend-in-Redis tests need a real redis-server ` +
      '(Debian package redis-server, installed by scripts/install-deps.sh), or set REDIS_SERVER');
  }
  const port = await closedPort();
  const log = fs.openSync(path.join(h.dir, `redis-${port}.log`), 'a');
  const proc = spawn(REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', h.dir],
    { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  redisProcs.add(proc);
  proc.on('exit', () => redisProcs.delete(proc));
  await waitFor(() => redisPing(port), { timeoutMs: 10_000, intervalMs: 25, what: `redis-server on port ${port}` });
  return { port, proc };
}

let redis;

// Budget 1.0 a day; "big" costs 0.1 per completion token (the mock answers 3), "small" nearly
// nothing; past half the budget every request is degraded to "small".
function redisConfig() {
  return {
    server: { workers: 1, reload_poll_ms: 0, random_seed: 7 },
    backends: [{ name: 'mock', url: mock.url }],
    models: [
      { name: 'big', backends: ['mock'], pricing: { input_per_1m: 0, output_per_1m: 100000 } },
      { name: 'small', backends: ['mock'], pricing: { input_per_1m: 0.1, output_per_1m: 0.2 } },
    ],
    default_model: 'small',
    decisions: [
      { name: 'everything', rules: 'always', models: [{ model: 'big', weight: 1000000 }, { model: 'small', weight: 1 }] },
    ],
    auth: {
      keys: [{ name: 'shared', sha256: sha(SECRETS.shared), daily_budget_usd: 1.0 }],
      degrade: [{ spent: 0.5, pressure: 1.0 }],
      state_redis: {
        url: `redis://127.0.0.1:${redis.port}`,
        prefix: `semrouter-it:${process.pid}:spend:`,
        timeout_ms: 200,
        reconnect_ms: 100,
        flush_ms: 50,
      },
    },
  };
}

const sharedChat = (r) => request(`${r.url}/v1/chat/completions`, {
  method: 'POST',
  headers: { authorization: `Bearer ${SECRETS.shared}` },
  json: { model: 'auto', messages: [{ role: 'user', content: 'Say hello' }] },
});
const spentOn = async (r) => {
  const res = await request(`${r.adminUrl}/api/v1/keys`);
  assert.equal(res.status, 200, res.text);
  return res.json.keys.find((k) => k.name === 'shared').budget.day.spent_usd;
};
const near = (a, b) => Math.abs(a - b) < 1e-9;
// Polls until router r reports `want` spent today (or, with a function, until it holds).
async function waitForSpent(r, want, what) {
  let last;
  await waitFor(async () => {
    last = await spentOn(r);
    return typeof want === 'function' ? want(last) : near(last, want);
  }, { timeoutMs: 5000, intervalMs: 25, what: `${what} (last seen ${last})` });
  return last;
}

let r1;
let r2;
let sharedTotal;

test('spend in Redis: what one router spends degrades the other\'s routing', async () => {
  redis = await startRedis();
  [r1, r2] = await Promise.all([h.startRouter(redisConfig(), { name: 'spend-r1' }), h.startRouter(redisConfig(), { name: 'spend-r2' })]);
  for (let i = 0; i < 2; i++) {
    const res = await sharedChat(r1);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers['x-semrouter-model'], 'big', JSON.stringify(res.headers));
  }
  const spent = await spentOn(r1);
  assert.ok(spent >= 0.6 - 1e-9 && spent < 0.7, `r1 spent ${spent}`);
  // r2 served nothing yet: it sees r1's spend through Redis, and degrades on it.
  await waitForSpent(r2, spent, 'r2 to see r1\'s spend');
  const res = await sharedChat(r2);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers['x-semrouter-model'], 'small');
  assert.match(res.headers['x-semrouter-budget'], /^spent=0\.6\d*;pressure=1\.00;degraded$/);
  // And back: r2's (small) spend reaches r1; both agree on one total.
  sharedTotal = await waitForSpent(r2, (v) => v > spent, 'r2 to count its own spend');
  await waitForSpent(r1, sharedTotal, 'r1 to see r2\'s spend');
  const metrics = parseMetrics(await r1.metrics());
  assert.equal(metricValue(metrics, 'semrouter_auth_spend_store_up'), 1);
});

test('spend in Redis: a Redis that stops answering fails no request; the spend arrives once it is back', async () => {
  assert.ok(r1 && r2 && sharedTotal, 'needs the previous test');
  redis.proc.kill('SIGSTOP'); // connections hang: every exchange times out
  let local;
  try {
    const start = performance.now();
    const res = await sharedChat(r1);
    assert.equal(res.status, 200, res.text);
    assert.ok(performance.now() - start < 2000, 'the request did not wait on Redis');
    local = await waitForSpent(r1, (v) => v > sharedTotal, 'r1 to count spend while Redis is away');
    await waitFor(async () => {
      const m = parseMetrics(await r1.metrics());
      return metricValue(m, 'semrouter_auth_spend_store_errors_total') >= 1 &&
        metricValue(m, 'semrouter_auth_spend_store_up') === 0;
    }, { timeoutMs: 5000, intervalMs: 50, what: 'r1 to report the spend store down' });
    assert.ok(near(await spentOn(r1), local), 'the local count holds while Redis is away');
  } finally {
    redis.proc.kill('SIGCONT');
  }
  // Sent again once Redis answers: exactly once (a batch that reached Redis while it was paused,
  // its reply lost, is not counted again when resent).
  await waitForSpent(r2, local, 'r2 to see the spend made during the outage');
  await waitForSpent(r1, local, 'r1 to agree');
  sharedTotal = local;
  await waitFor(async () => metricValue(parseMetrics(await r1.metrics()), 'semrouter_auth_spend_store_up') === 1, {
    timeoutMs: 5000, intervalMs: 50, what: 'r1 to report the spend store up again',
  });
  assert.ok(near(await spentOn(r2), local), 'counted once');
  assert.match(r1.log(), /auth: the spend store failed/);
  assert.match(r1.log(), /auth: the spend store answers again/);
});

test('spend in Redis survives a restart of both routers', async () => {
  assert.ok(r1 && r2 && sharedTotal, 'needs the previous tests');
  await Promise.all([r1.stop(), r2.stop()]);
  [r1, r2] = await Promise.all([h.startRouter(redisConfig(), { name: 'spend-r1' }), h.startRouter(redisConfig(), { name: 'spend-r2' })]);
  await waitForSpent(r1, sharedTotal, 'the restarted r1 to read the shared spend');
  await waitForSpent(r2, sharedTotal, 'the restarted r2 to read the shared spend');
  const res = await sharedChat(r1);
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers['x-semrouter-model'], 'small');
  assert.match(res.headers['x-semrouter-budget'], /;pressure=1\.00;degraded$/);
});

test('state_file and state_redis together are refused, naming both keys', () => {
  const cfg = path.join(h.dir, 'both-states.yaml');
  fs.writeFileSync(cfg, [
    `backends: [{name: m, url: "${mock.url}"}]`,
    'models: [{name: m, backends: [m]}]',
    'default_model: m',
    `auth: {state_file: ${path.join(h.dir, 'x.json')}, state_redis: {url: "redis://127.0.0.1:6379"}}`,
  ].join('\n'));
  const r = spawnSync(SEMROUTER_BIN, ['config', 'check', cfg], { encoding: 'utf8', timeout: 20000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr + r.stdout, /auth\.state_redis: give state_file or state_redis, not both/);
});

test('no secret appears in any log line, metrics page or admin answer', async () => {
  // A streamed request and a failing one too, so every code path logs what it logs.
  await stream(`${router.url}/v1/chat/completions`, { model: 'auto', stream: true, messages: [{ role: 'user', content: 'hi' }] },
    { headers: { authorization: `Bearer ${SECRETS.alpha}` } });
  await chat('sk-wrong-key-for-the-log');
  const pages = [
    h.logs(),
    (await admin('/metrics')).text,
    (await admin('/api/v1/keys')).text,
    (await admin('/api/v1/config')).text,
    fs.readFileSync(stateFile, 'utf8'),
  ].join('\n');
  for (const [what, secret] of Object.entries(SECRETS)) {
    assert.ok(!pages.includes(secret), `the ${what} secret leaked`);
    assert.ok(!pages.includes(sha(secret)), `the ${what} key's hash leaked`);
  }
});
