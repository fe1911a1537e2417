// The semantic cache on Redis: two routers share one cache (an answer one of them stored is a hit
// on the other, deletions and flushes reach both), a router restart loses nothing, and a Redis
// that dies while traffic flows costs the cache but never a request: the routers serve from the
// upstream (x-semrouter-cache: bypass, reason unavailable), report the backend down, and cache
// again once Redis is back on its port.
//
// Needs a real redis-server (/usr/bin/redis-server, the Debian package that
// scripts/install-deps.sh installs); it is started here on a free loopback port and killed in
// an `after` hook.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { setup, request, parseMetrics, metricValue, waitFor, closedPort, delay, redisPing } from './harness.mjs';

const REDIS_SERVER = process.env.REDIS_SERVER || '/usr/bin/redis-server';
const HEX16 = /^[0-9a-f]{16}$/;

const h = setup('cache-redis');

// ---------------------------------------------------------------------------------------------
// redis-server, managed here (the harness manages only semrouter and the mock)

const redisProcs = new Set();
process.on('exit', () => {
  for (const p of redisProcs) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});


class Redis {
  constructor(port) {
    this.port = port;
    this.logPath = path.join(h.dir, `redis-${port}.log`);
    this.starts = 0;
  }

  async start() {
    if (!fs.existsSync(REDIS_SERVER)) {
      throw new Error(
        `${REDIS_SERVER} is missing: these tests need a real redis-server (the Debian package redis-server, ` +
          'installed by scripts/install-deps.sh), or set REDIS_SERVER to its path',
      );
    }
    this.starts += 1;
    const fd = fs.openSync(this.logPath, 'a');
    try {
      this.proc = spawn(
        REDIS_SERVER,
        ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', h.dir],
        { stdio: ['ignore', fd, fd] },
      );
    } finally {
      fs.closeSync(fd);
    }
    const proc = this.proc;
    redisProcs.add(proc);
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        redisProcs.delete(proc);
        resolve({ code, signal });
      });
      proc.on('error', (error) => {
        redisProcs.delete(proc);
        resolve({ error });
      });
    });
    let exit;
    this.exited.then((e) => (exit = e));
    await waitFor(
      async () => {
        if (exit) throw new Error(`redis-server exited ${JSON.stringify(exit)}: ${this.log()}`);
        return redisPing(this.port);
      },
      { timeoutMs: 10_000, intervalMs: 25, what: `redis-server on port ${this.port} to answer PING` },
    );
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  async kill(signal = 'SIGKILL') {
    if (!this.proc || !redisProcs.has(this.proc)) return;
    this.proc.kill(signal);
    await this.exited;
  }
}

// ---------------------------------------------------------------------------------------------

let redis;
let mock; // the upstream the tests count calls of
let bgMock; // the upstream of the background traffic during the outage
let r1;
let r2;
let r3; // started while Redis is down
let configText;

before(async () => {
  redis = new Redis(await closedPort());
  await redis.start();
  [mock, bgMock] = await Promise.all([h.startMock({ name: 'M', tokens: 3 }), h.startMock({ name: 'BG', tokens: 2 })]);
  configText = `server: {workers: 1, reload_poll_ms: 0}
backends:
  - {name: m, url: "${mock.url}"}
  - {name: bg, url: "${bgMock.url}"}
models:
  - {name: small, backends: [m]}
  - {name: background, backends: [bg]}
default_model: small
cache:
  enabled: true
  backend: redis
  similarity: 0.6
  ttl_s: 3600
  redis: {url: "redis://127.0.0.1:${redis.port}", prefix: "semrouter-it:${process.pid}:", timeout_ms: 500, reconnect_ms: 200}
`;
  [r1, r2] = await Promise.all([h.startRouter(configText, { name: 'r1' }), h.startRouter(configText, { name: 'r2' })]);
});

after(async () => {
  if (redis) await redis.kill();
});

const user = (content) => [{ role: 'user', content }];
const upstreamCalls = async () => (await mock.stats()).requests;
const list = async (r, query = '') => {
  const res = await request(`${r.adminUrl}/api/v1/cache${query}`);
  assert.equal(res.status, 200, res.text);
  return res.json;
};
// An answer is stored once its last byte has gone to the client, so the client can ask another
// router (or the admin API) before the store has landed: wait until `r` lists the entry.
async function storedOn(r, text, tenant) {
  const query = tenant === undefined ? '' : `?tenant=hdr:${tenant}`;
  await waitFor(async () => (await list(r, query)).entries.some((e) => e.text === text), {
    what: `"${text}" to be stored and listed on ${r.name ?? 'the router'}`,
  });
}
const backendUp = async (r) => metricValue(parseMetrics(await r.metrics()), 'semrouter_cache_backend_up', { backend: 'redis' });

// Sends a chat completion through router `r` and checks the cache outcome and the upstream calls.
async function ask(r, { text, tenant, expect, headers = {}, ...extra }) {
  const hd = { ...headers };
  if (tenant !== undefined) hd['x-tenant-id'] = tenant;
  const before = await upstreamCalls();
  const res = await r.chat({ model: 'small', messages: user(text), ...extra }, { headers: hd });
  const called = (await upstreamCalls()) - before;
  const where = `${text} (${JSON.stringify(hd)}) -> ${res.status} ${JSON.stringify(
    Object.fromEntries(Object.entries(res.headers).filter(([k]) => k.startsWith('x-semrouter'))),
  )}`;
  assert.equal(res.status, 200, `${where} ${res.text}`);
  if (expect !== undefined) {
    assert.equal(res.headers['x-semrouter-cache'], expect, where);
    if (expect === 'hit') {
      assert.equal(called, 0, `a hit called the upstream: ${where}`);
      assert.match(res.headers['x-semrouter-cache-entry'] ?? '', HEX16, where);
    } else {
      assert.equal(called, 1, `a ${expect} must reach the upstream once: ${where}`);
    }
  }
  return Object.assign(res, { called, where });
}
const content = (res) => res.json.choices[0].message.content;

test('an answer stored through one router is a hit on the other; deletions and flushes reach both', async () => {
  // Exact repeat, across routers.
  const first = await ask(r1, { text: 'What is the capital of France?', expect: 'miss', mock: { tokens: 4 } });
  await storedOn(r2, 'What is the capital of France?');
  const other = await ask(r2, { text: 'What is the capital of France?', expect: 'hit', mock: { tokens: 9 } });
  assert.equal(other.headers['x-semrouter-cache-similarity'], '1.0000');
  assert.equal(content(other), content(first));
  const id = other.headers['x-semrouter-cache-entry'];
  // A paraphrase, on both routers.
  const p2 = await ask(r2, { text: 'Which city is the capital of France?', expect: 'hit' });
  assert.equal(p2.headers['x-semrouter-cache-entry'], id);
  assert.ok(Number(p2.headers['x-semrouter-cache-similarity']) < 1);
  assert.equal(content(p2), content(first));
  await ask(r1, { text: 'Which city is the capital of France?', expect: 'hit' });
  // A paraphrase that fills through r2 and hits through r1, by meaning.
  const code = await ask(r2, { text: 'How do I reverse a linked list in Python?', expect: 'miss', mock: { tokens: 5 } });
  await storedOn(r1, 'How do I reverse a linked list in Python?');
  const codeHit = await ask(r1, { text: 'How can I reverse a linked list using Python?', expect: 'hit' });
  assert.equal(content(codeHit), content(code));
  // The verifier still refuses across routers.
  await ask(r2, { text: 'What is the capital of Germany?', expect: 'miss' });
  await storedOn(r2, 'What is the capital of Germany?');

  // The admin list on r2 shows what r1 stored.
  const l2 = await list(r2);
  assert.equal(l2.backend, 'redis');
  assert.equal(l2.total, 3, JSON.stringify(l2));
  const entry = l2.entries.find((e) => e.id === id);
  assert.ok(entry, JSON.stringify(l2));
  assert.equal(entry.text, 'What is the capital of France?');
  const got = await request(`${r2.adminUrl}/api/v1/cache/entries/${id}`);
  assert.equal(got.status, 200, got.text);
  assert.equal(got.json.answer.content, content(first));
  assert.deepEqual((await list(r1)).entries.map((e) => e.id).sort(), l2.entries.map((e) => e.id).sort());

  // DELETE on r1 reaches r2.
  const del = await request(`${r1.adminUrl}/api/v1/cache/entries/${id}`, { method: 'DELETE' });
  assert.equal(del.status, 200, del.text);
  assert.equal(del.json.deleted, 1);
  assert.equal((await request(`${r2.adminUrl}/api/v1/cache/entries/${id}`)).status, 404);
  await ask(r2, { text: 'What is the capital of France?', expect: 'miss' });
  await storedOn(r1, 'What is the capital of France?');
  await ask(r1, { text: 'What is the capital of France?', expect: 'hit' }); // what r2 just stored

  // A tenant's entries, deleted on r2, are gone on r1.
  await ask(r1, { text: 'How many moons does Jupiter have?', tenant: 'acme', expect: 'miss' });
  await storedOn(r2, 'How many moons does Jupiter have?', 'acme');
  await ask(r2, { text: 'How many moons does Jupiter have?', tenant: 'acme', expect: 'hit' });
  const dt = await request(`${r2.adminUrl}/api/v1/cache?tenant=hdr:acme`, { method: 'DELETE' });
  assert.equal(dt.status, 200, dt.text);
  assert.equal(dt.json.deleted, 1);
  assert.equal((await list(r1, '?tenant=hdr:acme')).total, 0);
  await ask(r1, { text: 'How many moons does Jupiter have?', tenant: 'acme', expect: 'miss' });
  await storedOn(r2, 'How many moons does Jupiter have?', 'acme');

  // Flush on r1 empties both.
  const before = (await list(r2)).total;
  assert.ok(before >= 4, `${before} entries`);
  const fl = await request(`${r1.adminUrl}/api/v1/cache/flush`, { method: 'POST' });
  assert.equal(fl.status, 200, fl.text);
  assert.equal(fl.json.deleted, before);
  assert.equal((await list(r1)).total, 0);
  assert.equal((await list(r2)).total, 0);
  await ask(r2, { text: 'How can I reverse a linked list using Python?', expect: 'miss' });
  await ask(r1, { text: 'How many moons does Jupiter have?', tenant: 'acme', expect: 'miss' });
});

test('a router restart loses nothing', async () => {
  await ask(r1, { text: 'Who wrote Pride and Prejudice?', tenant: 'restart', expect: 'miss', mock: { tokens: 6 } });
  await ask(r2, { text: 'What is the speed of sound in air?', tenant: 'restart', expect: 'miss' });
  await storedOn(r1, 'Who wrote Pride and Prejudice?', 'restart');
  await storedOn(r1, 'What is the speed of sound in air?', 'restart');
  const beforeList = await list(r1, '?tenant=hdr:restart');
  assert.equal(beforeList.total, 2, JSON.stringify(beforeList));

  const exit = await r1.stop();
  assert.equal(exit.code, 0, `r1 stopped: ${JSON.stringify(exit)}`);
  r1 = await h.startRouter(null, { name: 'r1-again', configPath: r1.configPath });

  const afterList = await list(r1, '?tenant=hdr:restart');
  assert.equal(afterList.backend, 'redis');
  assert.deepEqual(afterList.entries, beforeList.entries.map((e) => ({ ...e })));
  const again = await ask(r1, { text: 'Who wrote Pride and Prejudice?', tenant: 'restart', expect: 'hit' });
  assert.match(content(again), / tok5$/);
  await ask(r1, { text: 'what is the speed of sound in air', tenant: 'restart', expect: 'hit' });
  // And the entries r1 stores after its restart reach r2.
  await ask(r1, { text: 'How far away is the Moon?', tenant: 'restart', expect: 'miss' });
  await storedOn(r2, 'How far away is the Moon?', 'restart');
  await ask(r2, { text: 'How far away is the Moon?', tenant: 'restart', expect: 'hit' });
});

test('Redis dying while traffic flows costs the cache, never a request; it caches again once Redis is back', async () => {
  // Background traffic through both routers (to another upstream) for the whole test.
  const background = [];
  let running = true;
  const traffic = (async () => {
    for (let i = 0; running; ++i) {
      const r = i % 2 ? r1 : r2;
      try {
        const res = await r.chat({ model: 'background', messages: user(`background question number ${i % 7}`) });
        background.push({ i, status: res.status, cache: res.headers['x-semrouter-cache'], body: res.text.slice(0, 200) });
      } catch (e) {
        background.push({ i, status: 'error', body: e.message });
      }
      await delay(10);
    }
  })();

  try {
    await ask(r1, { text: 'What is the melting point of iron?', tenant: 'outage', expect: 'miss' });
    await storedOn(r2, 'What is the melting point of iron?', 'outage');
    await ask(r2, { text: 'What is the melting point of iron?', tenant: 'outage', expect: 'hit' });
    assert.equal(await backendUp(r1), 1);
    assert.equal(await backendUp(r2), 1);

    await redis.kill('SIGKILL');
    assert.equal(await redisPing(redis.port), false, 'redis is down');

    // Every request is answered by the upstream; the cache is bypassed as unavailable.
    for (let i = 0; i < 6; ++i) {
      for (const r of [r1, r2]) {
        const res = await ask(r, { text: 'What is the melting point of iron?', tenant: 'outage' });
        assert.equal(res.called, 1, `the upstream answered during the outage: ${res.where}`);
        assert.equal(res.headers['x-semrouter-cache'], 'bypass', res.where);
        assert.equal(res.headers['x-semrouter-cache-reason'], 'unavailable', res.where);
        assert.equal(res.headers['x-semrouter-cache-entry'], undefined, res.where);
      }
      await delay(60); // spans more than one reconnect_ms (200 ms) with failed reconnects
    }
    await waitFor(async () => (await backendUp(r1)) === 0, { what: 'r1 to report redis down' });
    await waitFor(async () => (await backendUp(r2)) === 0, { what: 'r2 to report redis down' });
    for (const r of [r1, r2]) assert.match(r.log(), /redis 127\.0\.0\.1:\d+ (failed|unreachable)/i, 'the log says redis failed');
    const during = parseMetrics(await r1.metrics());
    assert.ok(
      (metricValue(during, 'semrouter_cache_lookups_total', { decision: 'passthrough', outcome: 'bypass' }) ?? 0) >= 6,
      'the bypasses are counted',
    );
    // A router that starts while Redis is down starts and serves all the same.
    r3 = await h.startRouter(configText, { name: 'r3' });
    const fresh = await ask(r3, { text: 'What is the melting point of iron?', tenant: 'outage' });
    assert.equal(fresh.called, 1, fresh.where);
    assert.equal(fresh.headers['x-semrouter-cache'], 'bypass', fresh.where);
    assert.equal(fresh.headers['x-semrouter-cache-reason'], 'unavailable', fresh.where);
    assert.equal(await backendUp(r3), 0);

    // Redis comes back on the same port (empty: it kept nothing).
    await redis.start();
    let n = 0;
    await waitFor(
      async () => {
        const res = await ask(r1, { text: `Is the cache back yet? Probe number ${++n}`, tenant: 'outage' });
        return res.headers['x-semrouter-cache'] === 'miss';
      },
      { timeoutMs: 5000, intervalMs: 50, what: 'r1 to cache again after redis came back' },
    );
    await ask(r1, { text: 'What is the boiling point of mercury?', tenant: 'outage', expect: 'miss' });
    await ask(r1, { text: 'What is the boiling point of mercury?', tenant: 'outage', expect: 'hit' });
    await waitFor(
      async () => (await r2.chat({ model: 'small', messages: user('Is r2 back yet?') })).headers['x-semrouter-cache'] !== 'bypass',
      { timeoutMs: 5000, intervalMs: 50, what: 'r2 to use the cache again' },
    );
    await ask(r2, { text: 'What is the boiling point of mercury?', tenant: 'outage', expect: 'hit' });
    await waitFor(
      async () => (await r3.chat({ model: 'small', messages: user('Is r3 up yet?') })).headers['x-semrouter-cache'] !== 'bypass',
      { timeoutMs: 5000, intervalMs: 50, what: 'r3 to connect to redis' },
    );
    await ask(r3, { text: 'What is the boiling point of mercury?', tenant: 'outage', expect: 'hit' });
    assert.equal(await backendUp(r1), 1);
    assert.equal(await backendUp(r2), 1);
    assert.equal(await backendUp(r3), 1);
    assert.match(r1.log(), /redis 127\.0\.0\.1:\d+ connected/);
  } finally {
    running = false;
    await traffic;
  }
  const failed = background.filter((b) => b.status !== 200);
  assert.deepEqual(failed, [], `background requests failed: ${JSON.stringify(failed.slice(0, 5))}`);
  assert.ok(background.length >= 10, `only ${background.length} background requests went through`);
  assert.ok(background.some((b) => b.cache === 'bypass'), 'background traffic flowed during the outage');
});

test('a Redis that stops answering counts as down after timeout_ms; requests do not wait on it', async () => {
  await ask(r1, { text: 'How many strings does a violin have?', tenant: 'hung', expect: 'miss' });
  await storedOn(r2, 'How many strings does a violin have?', 'hung');
  await ask(r2, { text: 'How many strings does a violin have?', tenant: 'hung', expect: 'hit' });
  redis.proc.kill('SIGSTOP'); // the port stays open, nothing answers
  let resumed = false;
  try {
    for (let i = 0; i < 5; ++i) {
      for (const r of [r1, r2]) {
        const t0 = performance.now();
        const res = await ask(r, { text: 'How many strings does a violin have?', tenant: 'hung' });
        const ms = performance.now() - t0;
        assert.equal(res.called, 1, res.where);
        assert.equal(res.headers['x-semrouter-cache'], 'bypass', res.where);
        assert.equal(res.headers['x-semrouter-cache-reason'], 'unavailable', res.where);
        // timeout_ms is 500: a request waits on Redis about that long at most (generous bound,
        // for a loaded machine; a wait without the timeout would last until SIGCONT).
        assert.ok(ms < 3000, `a request took ${ms.toFixed(0)} ms while redis hung`);
      }
      await delay(50);
    }
    assert.equal(await backendUp(r1), 0);
    assert.equal(await backendUp(r2), 0);
    redis.proc.kill('SIGCONT');
    resumed = true;
    await waitFor(
      async () => (await ask(r1, { text: 'How many strings does a violin have?', tenant: 'hung' })).headers['x-semrouter-cache'] === 'hit',
      { timeoutMs: 5000, intervalMs: 50, what: 'r1 to hit again once redis answers' },
    );
    await waitFor(
      async () => (await ask(r2, { text: 'How many strings does a violin have?', tenant: 'hung' })).headers['x-semrouter-cache'] === 'hit',
      { timeoutMs: 5000, intervalMs: 50, what: 'r2 to hit again once redis answers' },
    );
    assert.equal(await backendUp(r1), 1);
    assert.equal(await backendUp(r2), 1);
  } finally {
    if (!resumed) redis.proc.kill('SIGCONT');
  }
});
