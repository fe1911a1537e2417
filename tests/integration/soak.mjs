// The soak: steady load through the real router for a while, with an upstream that changes its
// fault every few seconds (hangs, resets, 503 and 429 storms, garbage, trickles, streams that
// die) next to a healthy one, and the config rewritten (and hot-reloaded) every reloadS seconds.
// It checks that nothing is lost (every request gets a complete answer or a clear error in its
// API's shape, within its deadline), that the router never crashes, and samples its RSS and open
// file descriptors every second.
//
// CI runs a 60-second version (soak.test.mjs); `make soak` runs 10 minutes and prints the curve:
//   node tests/integration/soak.mjs [--duration-s 600] [--reload-s 30] [--clients 8]
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

import { Harness } from './harness.mjs';

const FAULTS = ['ok', 'status_503', 'status_429', 'hang', 'reset', 'garbage', 'trickle', 'die_midstream'];

function completion(model) {
  return JSON.stringify({
    id: 'soak', object: 'chat.completion', created: 1, model,
    choices: [{ index: 0, message: { role: 'assistant', content: 'fine' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
  });
}

// The faulty upstream: its behaviour is whatever `state.fault` says when a request arrives.
async function startFaultyUpstream(h, state) {
  return h.startHttpServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
      if (req.url.startsWith('/health')) return res.writeHead(state.fault === 'hang' ? 503 : 200).end();
      let body = {};
      try {
        body = JSON.parse(Buffer.concat(parts).toString());
      } catch {}
      state.seen[state.fault] = (state.seen[state.fault] || 0) + 1;
      switch (state.fault) {
        case 'status_503':
          return res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"busy"}}');
        case 'status_429':
          return res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '0' })
            .end('{"error":{"message":"slow down"}}');
        case 'hang':
          return; // never answers; the router's first_byte_ms ends it
        case 'reset':
          return req.socket.resetAndDestroy();
        case 'garbage':
          req.socket.end('HTTP/1.1 2OO NOPE\r\n\r\n');
          return;
        case 'trickle': {
          // The whole answer, a few bytes at a time.
          const text = body.stream
            ? `data: ${JSON.stringify({ id: 's', object: 'chat.completion.chunk', model: body.model, choices: [{ index: 0, delta: { content: 'slow' }, finish_reason: 'stop' }] })}\n\ndata: [DONE]\n\n`
            : completion(body.model);
          res.writeHead(200, { 'content-type': body.stream ? 'text/event-stream' : 'application/json',
            'content-length': Buffer.byteLength(text) });
          let i = 0;
          const tick = setInterval(() => {
            if (res.destroyed) return clearInterval(tick);
            res.write(text.slice(i, i + 32));
            i += 32;
            if (i >= text.length) {
              clearInterval(tick);
              res.end();
            }
          }, 10);
          return;
        }
        case 'die_midstream':
          if (body.stream) {
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            res.write(`data: ${JSON.stringify({ id: 's', object: 'chat.completion.chunk', model: body.model, choices: [{ index: 0, delta: { content: 'half' } }] })}\n\n`);
            setTimeout(() => req.socket.resetAndDestroy(), 5);
            return;
          }
          return req.socket.resetAndDestroy();
        default:
          if (body.stream) {
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            res.write(`data: ${JSON.stringify({ id: 's', object: 'chat.completion.chunk', model: body.model, choices: [{ index: 0, delta: { content: 'ok' }, finish_reason: 'stop' }] })}\n\n`);
            return res.end('data: [DONE]\n\n');
          }
          return res.writeHead(200, { 'content-type': 'application/json' }).end(completion(body.model));
      }
    });
  });
}

function routerConfig(stable, faulty, generation) {
  return {
    server: { workers: 2, reload_poll_ms: 200, random_seed: 11 },
    backends: [
      { name: 'stable', url: stable.url, timeouts: { first_byte_ms: 2000, idle_ms: 2000, total_ms: 8000 } },
      // The weight changes with every reload, so each reload is a real change.
      { name: 'faulty', url: faulty.url, weight: 1 + (generation % 3),
        timeouts: { connect_ms: 500, first_byte_ms: 400, idle_ms: 500, total_ms: 4000 } },
    ],
    models: [
      { name: 'mixed', backends: ['faulty', 'stable'] },
      { name: 'only-faulty', backends: ['faulty'] },
      { name: 'steady', backends: ['stable'] },
    ],
    decisions: [{ name: 'all', rules: 'always', models: ['only-faulty'], fallback: ['steady'] }],
    resilience: {
      retries: { max_retries: 2, backoff_ms: 5, max_backoff_ms: 50, budget_percent: 50 },
      outlier_detection: { consecutive_failures: 3, base_ejection_ms: 1500, max_ejection_ms: 3000, max_ejected_percent: 50 },
      health_checks: { interval_ms: 500, timeout_ms: 300, unhealthy_threshold: 2, healthy_threshold: 1 },
      limits: { max_concurrent: 64, max_queue: 64, queue_timeout_ms: 2000 },
    },
  };
}

// One client request and what came of it: 'ok', 'error:<status>' (a clear error in the API's
// shape), 'stream_error' (a stream that ended with an error event), or 'lost:<why>'.
function one(url, body, deadlineMs) {
  return new Promise((resolve) => {
    const payload = JSON.stringify(body);
    const t0 = performance.now();
    let settled = false;
    const done = (outcome) => {
      if (settled) return;
      settled = true;
      resolve({ outcome, ms: performance.now() - t0 });
    };
    const req = http.request(url, {
      method: 'POST', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('error', (e) => done(`lost:response ${e.code || e.message}`));
      res.on('aborted', () => {
        const text = Buffer.concat(parts).toString();
        // A stream the router ended because the upstream broke: an error event, then the close.
        if (body.stream && res.statusCode === 200 && /data: \{"error"/.test(text)) done('stream_error');
        else done(`lost:aborted ${res.statusCode}`);
      });
      res.on('end', () => {
        const text = Buffer.concat(parts).toString();
        if (res.statusCode === 200) {
          if (body.stream) {
            if (/data: \[DONE\]/.test(text)) return done('ok');
            if (/data: \{"error"/.test(text)) return done('stream_error');
            return done('lost:stream without [DONE] or error');
          }
          try {
            const j = JSON.parse(text);
            return done(j.choices && j.choices.length ? 'ok' : 'lost:200 without choices');
          } catch {
            return done('lost:200 with a body that is not JSON');
          }
        }
        try {
          const j = JSON.parse(text);
          if (j.error && typeof j.error.message === 'string') return done(`error:${res.statusCode}`);
        } catch {}
        return done(`lost:${res.statusCode} without an error body`);
      });
    });
    req.setTimeout(deadlineMs, () => {
      done('lost:client deadline passed');
      req.destroy();
    });
    req.on('error', (e) => done(`lost:request ${e.code || e.message}`));
    req.end(payload);
  });
}

function procStats(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)[1]); // KiB
  const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
  return { rssKiB: rss, fds };
}

export async function runSoak({ durationS = 60, reloadS = 10, faultEveryS = 3, clients = 6, log = () => {} } = {}) {
  const h = new Harness('soak');
  const state = { fault: 'ok', seen: {} };
  try {
    const stable = await h.startMock({ name: 'stable', tokens: 3 });
    const faulty = await startFaultyUpstream(h, state);
    let generation = 0;
    const router = await h.startRouter(routerConfig(stable, faulty, generation));
    const url = `${router.url}/v1/chat/completions`;
    const outcomes = {};
    const lost = [];
    let total = 0;
    let slowest = 0;
    const samples = [];
    const t0 = performance.now();
    const end = t0 + durationS * 1000;
    let crashed = null;

    const faultTimer = setInterval(() => {
      state.fault = FAULTS[(FAULTS.indexOf(state.fault) + 1) % FAULTS.length];
    }, faultEveryS * 1000);
    const reloadTimer = setInterval(() => {
      router.writeConfig(routerConfig(stable, faulty, ++generation));
    }, reloadS * 1000);
    const sampleTimer = setInterval(() => {
      if (router.child.exit) {
        crashed = router.child.exit;
        return;
      }
      const s = { t: Math.round((performance.now() - t0) / 1000), ...procStats(router.pid), requests: total };
      samples.push(s);
      log(`t=${s.t}s rss=${(s.rssKiB / 1024).toFixed(1)} MiB fds=${s.fds} requests=${total} fault=${state.fault}`);
    }, 1000);

    const models = ['mixed', 'only-faulty', 'steady', 'auto'];
    async function client(i) {
      let n = 0;
      while (performance.now() < end && !crashed) {
        const body = {
          model: models[(i + n) % models.length],
          stream: (i + n) % 3 === 0,
          messages: [{ role: 'user', content: `soak ${i} ${n}` }],
        };
        n++;
        const r = await one(url, body, 15_000);
        total++;
        slowest = Math.max(slowest, r.ms);
        outcomes[r.outcome] = (outcomes[r.outcome] || 0) + 1;
        if (r.outcome.startsWith('lost')) lost.push({ body, ...r });
      }
    }
    await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
    clearInterval(faultTimer);
    clearInterval(reloadTimer);
    clearInterval(sampleTimer);
    if (router.child.exit) crashed = router.child.exit;
    const config = crashed ? null : await router.adminConfig();
    const final = crashed ? null : procStats(router.pid);
    const stop = await router.stop();
    return {
      durationS, total, outcomes, lost, slowestMs: Math.round(slowest), samples, final, crashed,
      reloads: config ? config.reloads_ok : 0, reloadsFailed: config ? config.reloads_failed : 0,
      faultsSeen: state.seen, exit: stop,
    };
  } finally {
    await h.cleanup();
  }
}

// RSS and descriptors after warm-up: the first sample after `warmupShare` of the run against the
// last; the figures the soak reports and checks.
export function summarize(result, warmupShare = 0.25) {
  const s = result.samples;
  const warm = s.find((x) => x.t >= result.durationS * warmupShare) || s[0];
  const last = s.at(-1);
  return {
    warmRssMiB: warm.rssKiB / 1024, lastRssMiB: last.rssKiB / 1024,
    maxRssMiB: Math.max(...s.slice(s.indexOf(warm)).map((x) => x.rssKiB)) / 1024,
    warmFds: warm.fds, lastFds: last.fds, maxFds: Math.max(...s.map((x) => x.fds)),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, def) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : def;
  };
  const durationS = arg('--duration-s', 600);
  const result = await runSoak({
    durationS, reloadS: arg('--reload-s', 30), clients: arg('--clients', 8), log: (l) => console.log(l),
  });
  const sum = summarize(result);
  console.log(JSON.stringify({ ...result, samples: undefined, lost: result.lost.slice(0, 20), summary: sum }, null, 2));
  const curve = path.join(process.cwd(), 'soak-rss.csv');
  fs.writeFileSync(curve, 't_s,rss_kib,fds,requests\n' + result.samples.map((x) => `${x.t},${x.rssKiB},${x.fds},${x.requests}`).join('\n') + '\n');
  console.log(`the RSS and fd curve: ${curve}`);
  const ok = !result.crashed && result.lost.length === 0 && result.exit.code === 0;
  process.exit(ok ? 0 : 1);
}
