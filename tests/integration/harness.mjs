// Shared helpers for semrouter's integration tests (run with `node --test`).
//
// Every test file builds its own little world: one or more mock upstreams and a router, each on
// 127.0.0.1 with port 0, each announcing itself through a ready file in a private temp dir. The
// Harness keeps track of every child process and stops all of them in an `after` hook (and, as a
// last resort, when the Node process exits), so no test leaves anything running.
//
// Only Node built-ins are used here; the openai SDK is loaded on demand by loadOpenAI().
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { test, after, afterEach } from 'node:test';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.SEMROUTER_SOURCE_DIR || path.resolve(HERE, '..', '..');
export const SEMROUTER_BIN = process.env.SEMROUTER_BIN || path.join(SOURCE_DIR, 'build', 'bin', 'semrouter');
export const MOCK_UPSTREAM_BIN =
  process.env.MOCK_UPSTREAM_BIN || path.join(SOURCE_DIR, 'build', 'bin', 'mock-upstream');

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

// Last resort: whatever is still running when this Node process exits, or is interrupted or
// terminated (Ctrl-C, a ctest timeout), gets SIGKILL.
const liveChildren = new Set();
function killLiveChildren() {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.on('exit', killLiveChildren);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killLiveChildren();
    process.kill(process.pid, sig); // the default action, now that the listener is gone
  });
}

// ---------------------------------------------------------------------------------------------
// Small utilities

export function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Calls `fn` until it returns a truthy value (which is returned) or `timeoutMs` passes. This is a
// bounded poll for state that cannot be awaited directly (a ready file, a counter in /stats).
export async function waitFor(fn, { timeoutMs = 5_000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = performance.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (e) {
      lastError = e;
    }
    if (performance.now() > deadline) {
      const detail = lastError ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await delay(intervalMs);
  }
}

// Writes a file atomically (temp file + rename), so a polling reader never sees half of it.
export function writeFileAtomic(file, text) {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

// A config is either YAML text or a plain object. Objects are written as JSON, which is valid
// YAML (flow style), so tests can build configs as data.
export function configText(config) {
  if (typeof config === 'string') return config;
  return `# written by tests/integration/harness.mjs\n${JSON.stringify(config, null, 2)}\n`;
}

// The official openai SDK from tests/node/node_modules, found relative to this source tree so it
// works whatever the current directory is (ctest runs from the build directory).
export function loadOpenAI() {
  const nodeDir = path.join(SOURCE_DIR, 'tests', 'node');
  const require = createRequire(path.join(nodeDir, 'package.json'));
  let mod;
  try {
    mod = require('openai');
  } catch (e) {
    throw new Error(`the openai SDK is not installed: run \`npm ci\` in ${nodeDir} (${e.message})`);
  }
  return mod.OpenAI ?? mod.default ?? mod;
}

export function findPromtool() {
  const dirs = (process.env.PATH || '').split(path.delimiter).filter(Boolean);
  for (const dir of [...dirs, '/usr/bin', '/usr/local/bin']) {
    const candidate = path.join(dir, 'promtool');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

// `promtool check metrics` reads the exposition text on stdin; exit 0 means valid and lint-clean.
export function promtoolCheck(text) {
  const promtool = findPromtool();
  if (!promtool) return null;
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, error: r.error };
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers. Every request uses its own connection (agent: false), so no keep-alive socket
// outlives a test.

// Returns {status, headers, text, json}; json is the parsed body or undefined.
export function request(url, { method = 'GET', headers = {}, body, json, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    let payload = body;
    const h = { ...headers };
    if (json !== undefined) {
      payload = typeof json === 'string' ? json : JSON.stringify(json);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    }
    if (payload !== undefined) h['content-length'] = Buffer.byteLength(payload);
    const req = http.request(url, { method, headers: h, agent: false }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const raw = Buffer.concat(parts);
        const text = raw.toString('utf8');
        let parsed;
        try {
          parsed = text.length ? JSON.parse(text) : undefined;
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, raw, text, json: parsed });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

// Splits an SSE byte stream into events; returns the complete events and the unfinished rest.
function splitSse(buffer) {
  const events = [];
  let rest = buffer;
  for (;;) {
    const m = /\r?\n\r?\n/.exec(rest);
    if (!m) break;
    const block = rest.slice(0, m.index);
    rest = rest.slice(m.index + m[0].length);
    const data = block
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''));
    if (data.length) events.push(data.join('\n'));
  }
  return { events, rest };
}

// POSTs `json` and reads the answer as it arrives. Every network chunk and every SSE event is
// recorded with its arrival time (ms since the request was sent). Options:
//   abortAfterEvents: N  the client hangs up after the N-th event (a disconnecting client)
//   timeoutMs            the promise rejects if the response neither ends nor breaks by then,
//                        so a hanging stream fails the test instead of hanging it
// Resolves {status, headers, chunks, events, text, complete, error, abortedByClient}. complete is
// true only if the whole HTTP message arrived (final zero-length chunk); error holds the socket
// error when the server broke the connection off.
export function stream(url, json, { headers = {}, abortAfterEvents, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const payload = typeof json === 'string' ? json : JSON.stringify(json);
    const t0 = performance.now();
    const out = {
      status: undefined,
      headers: undefined,
      chunks: [],
      events: [],
      text: '',
      complete: false,
      error: null,
      abortedByClient: false,
    };
    let pending = '';
    let settled = false;
    const settle = (fn) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers },
      },
      (res) => {
        out.status = res.statusCode;
        out.headers = res.headers;
        out.headersAt = performance.now() - t0;
        res.setEncoding('utf8');
        res.on('data', (d) => {
          const t = performance.now() - t0;
          out.chunks.push({ t, text: d });
          out.text += d;
          const { events, rest } = splitSse(pending + d);
          pending = rest;
          for (const data of events) out.events.push({ t, data });
          if (abortAfterEvents !== undefined && out.events.length >= abortAfterEvents && !out.abortedByClient) {
            out.abortedByClient = true;
            req.destroy();
            settle(() => resolve(out));
          }
        });
        res.on('error', (e) => {
          out.error = out.error || e;
        });
        res.on('close', () => {
          out.complete = res.complete;
          out.closedAt = performance.now() - t0;
          settle(() => resolve(out));
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      settle(() =>
        reject(
          new Error(
            `stream from ${url} neither ended nor broke within ${timeoutMs} ms; got ${out.events.length} events: ` +
              JSON.stringify(out.text.slice(-500)),
          ),
        ),
      );
    }, timeoutMs);
    req.on('error', (e) => {
      if (out.abortedByClient) return;
      out.error = out.error || e;
      if (out.status === undefined) settle(() => reject(e));
    });
    req.write(payload);
    req.end();
  });
}

// Opens a raw TCP connection, writes `data` (a string/Buffer or a list sent one after the other),
// optionally half-closes, and collects what comes back until the peer closes or `timeoutMs`.
// `until(text)` may end the exchange early once what arrived is enough.
// Resolves {text, closedByPeer, timedOut, elapsedMs}.
export function rawExchange(port, data, { halfClose = true, timeoutMs = 3_000, until } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = net.connect({ host: '127.0.0.1', port });
    const parts = [];
    let done = false;
    const finish = (closedByPeer, timedOut) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({
        text: Buffer.concat(parts).toString('latin1'),
        closedByPeer,
        timedOut,
        elapsedMs: performance.now() - t0,
      });
    };
    const timer = setTimeout(() => finish(false, true), timeoutMs);
    socket.on('data', (d) => {
      parts.push(d);
      if (until && until(Buffer.concat(parts).toString('latin1'))) finish(false, false);
    });
    socket.on('end', () => finish(true, false));
    socket.on('close', () => finish(true, false));
    socket.on('error', (e) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') finish(true, false);
      else if (!done) {
        done = true;
        clearTimeout(timer);
        reject(e);
      }
    });
    socket.on('connect', () => {
      for (const piece of Array.isArray(data) ? data : [data]) socket.write(piece);
      if (halfClose) socket.end();
    });
  });
}

// Parses the complete HTTP/1.1 responses (with Content-Length) at the start of `text`, as read by
// rawExchange. Returns [{status, headers, body}]; an incomplete trailing response is left out.
export function parseHttpResponses(text) {
  const out = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const lines = rest.slice(0, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) break;
    const headers = {};
    for (const l of lines.slice(1)) {
      const colon = l.indexOf(':');
      headers[l.slice(0, colon).trim().toLowerCase()] = l.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? NaN);
    if (!Number.isFinite(length) || rest.length < end + 4 + length) break;
    out.push({ status: Number(m[1]), headers, body: rest.slice(end + 4, end + 4 + length) });
    rest = rest.slice(end + 4 + length);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Prometheus text parsing (enough for assertions; promtool does the real validation).

export function parseMetrics(text) {
  const samples = [];
  const types = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types[name] = type;
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`unparseable metrics line: ${line}`);
    const labels = {};
    if (m[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let lm;
      while ((lm = re.exec(m[2]))) labels[lm[1]] = lm[2].replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { samples, types };
}

// Sum of the samples named `name` whose labels include `labels`.
export function metricValue(metrics, name, labels = {}) {
  let sum = 0;
  let found = false;
  for (const s of metrics.samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) {
      sum += s.value;
      found = true;
    }
  }
  return found ? sum : undefined;
}

// ---------------------------------------------------------------------------------------------
// Processes

class Child {
  constructor(name, bin, args, logPath, env = {}) {
    this.name = name;
    this.logPath = logPath;
    const fd = fs.openSync(logPath, 'a');
    try {
      this.proc = spawn(bin, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
    } finally {
      fs.closeSync(fd);
    }
    this.pid = this.proc.pid;
    this.exit = null; // {code, signal} once it exited
    liveChildren.add(this.proc);
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        liveChildren.delete(this.proc);
        resolve(this.exit);
      });
      this.proc.on('error', (err) => {
        this.exit = { code: null, signal: null, error: err };
        liveChildren.delete(this.proc);
        resolve(this.exit);
      });
    });
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  signal(sig) {
    if (!this.exit) this.proc.kill(sig);
  }

  // SIGTERM, then SIGKILL if it is still there after `timeoutMs`. Resolves the exit status.
  async stop({ signal = 'SIGTERM', timeoutMs = STOP_TIMEOUT_MS } = {}) {
    if (this.exit) return this.exit;
    this.proc.kill(signal);
    let timer;
    const timedOut = new Promise((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const r = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.killedAfterTimeout = true;
      this.proc.kill('SIGKILL');
      await this.exited;
    }
    return this.exit;
  }

  // Waits for `file` to appear (the child writes it once listening) and returns its JSON.
  async waitReady(file, timeoutMs = READY_TIMEOUT_MS) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (fs.existsSync(file)) {
        try {
          return JSON.parse(fs.readFileSync(file, 'utf8'));
        } catch {
          // renamed into place atomically, so this should not happen; retry anyway
        }
      }
      if (this.exit) {
        throw new Error(
          `${this.name} exited (${JSON.stringify(this.exit)}) before it was ready; its log:\n${this.log()}`,
        );
      }
      if (performance.now() > deadline) {
        throw new Error(`${this.name} not ready within ${timeoutMs} ms; its log:\n${this.log()}`);
      }
      await delay(10);
    }
  }
}

export class Harness {
  constructor(name) {
    this.name = name;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `semrouter-it-${name}-`));
    this.children = [];
    this.failed = [];
    this.knownBugs = new Set();
    this.seq = 0;
  }

  // A test for a known router bug: it runs, but as a TODO, so its failure does not fail the suite
  // (node --test reports it as "# TODO"). Once the bug is fixed it simply passes.
  knownBug(name, reason, fn) {
    this.knownBugs.add(name);
    return test(name, { todo: `known router bug: ${reason}` }, fn);
  }

  _child(name, bin, args, env) {
    const child = new Child(name, bin, args, path.join(this.dir, `${name}.log`), env);
    this.children.push(child);
    return child;
  }

  // Starts a mock upstream. Resolves {name, port, url (base URL ending in /v1), stats(), stop()}.
  async startMock({ name, tokens, tokenDelayMs, firstByteDelayMs, failStatus } = {}) {
    const id = `mock-${name || 'mock'}-${++this.seq}`;
    const readyFile = path.join(this.dir, `${id}.ready.json`);
    const args = ['--host', '127.0.0.1', '--port', '0', '--ready-file', readyFile, '--name', name || 'mock'];
    if (tokens !== undefined) args.push('--tokens', String(tokens));
    if (tokenDelayMs !== undefined) args.push('--token-delay-ms', String(tokenDelayMs));
    if (firstByteDelayMs !== undefined) args.push('--first-byte-delay-ms', String(firstByteDelayMs));
    if (failStatus !== undefined) args.push('--fail-status', String(failStatus));
    const child = this._child(id, MOCK_UPSTREAM_BIN, args);
    const ready = await child.waitReady(readyFile);
    const origin = `http://127.0.0.1:${ready.port}`;
    return {
      name: name || 'mock',
      child,
      port: ready.port,
      origin,
      url: `${origin}/v1`,
      stats: async () => (await request(`${origin}/stats`)).json,
      stop: () => child.stop(),
    };
  }

  // Writes `config` (object or YAML text) to a file in the temp dir and starts the router on it
  // (or, with config null, starts it on an existing `configPath`). Resolves a router handle:
  // {port, adminPort, pid, url, adminUrl, configPath, writeConfig(), log(), stop(), child, ...}.
  // `env` adds environment variables for the router (e.g. for backends' api_key_env).
  async startRouter(config, { name = 'router', extraArgs = [], configPath: existing, env } = {}) {
    const id = `${name}-${++this.seq}`;
    const configPath = existing ?? path.join(this.dir, `${id}.yaml`);
    const readyFile = path.join(this.dir, `${id}.ready.json`);
    if (config !== null) writeFileAtomic(configPath, configText(config));
    const args = ['serve', '--config', configPath, '--port', '0', '--admin-port', '0', '--ready-file', readyFile];
    const child = this._child(id, SEMROUTER_BIN, [...args, ...extraArgs], env);
    const ready = await child.waitReady(readyFile);
    const url = `http://127.0.0.1:${ready.port}`;
    const adminUrl = `http://127.0.0.1:${ready.admin_port}`;
    return {
      child,
      port: ready.port,
      adminPort: ready.admin_port,
      extprocPort: ready.extproc_port,
      pid: ready.pid,
      url,
      adminUrl,
      configPath,
      writeConfig: (cfg) => writeFileAtomic(configPath, configText(cfg)),
      log: () => child.log(),
      stop: (opts) => child.stop(opts),
      chat: (json, opts) => request(`${url}/v1/chat/completions`, { method: 'POST', json, ...opts }),
      metrics: async () => {
        const r = await request(`${adminUrl}/metrics`);
        if (r.status !== 200) throw new Error(`GET /metrics: ${r.status} ${r.text}`);
        return r.text;
      },
      adminConfig: async () => (await request(`${adminUrl}/api/v1/config`)).json,
    };
  }

  // An in-process HTTP server on 127.0.0.1:0, for upstream behaviour the mock cannot show (e.g.
  // when exactly the router closes its upstream connection). Closed by cleanup().
  async startHttpServer(handler) {
    const server = http.createServer(handler);
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    this.servers = this.servers || [];
    this.servers.push(server);
    const { port } = server.address();
    return { server, port, origin: `http://127.0.0.1:${port}`, url: `http://127.0.0.1:${port}/v1` };
  }

  // A raw TCP server on 127.0.0.1:0 (an upstream that speaks broken HTTP on purpose). Closed,
  // with all its connections, by cleanup().
  async startTcpServer(onConnection) {
    const sockets = new Set();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      onConnection(socket);
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    server.closeAllConnections = () => {
      for (const socket of sockets) socket.destroy();
    };
    this.servers = this.servers || [];
    this.servers.push(server);
    const { port } = server.address();
    return { server, port, origin: `http://127.0.0.1:${port}`, url: `http://127.0.0.1:${port}/v1` };
  }

  // The children's logs; with onlyNew, only what was added since the last call with onlyNew.
  logs({ onlyNew = false } = {}) {
    return this.children
      .map((c) => {
        const all = c.log();
        const from = onlyNew ? c.printedUpTo || 0 : 0;
        if (onlyNew) c.printedUpTo = all.length;
        const text = all.slice(from);
        if (onlyNew && from > 0 && !text) return null;
        const note = from > 0 ? ' (continued)' : '';
        return `----- ${c.name}${note} (pid ${c.pid}, exit ${JSON.stringify(c.exit)}) ${c.logPath}\n${text}`;
      })
      .filter((x) => x !== null)
      .join('\n');
  }

  async cleanup() {
    await Promise.all(this.children.map((c) => c.stop()));
    for (const server of this.servers || []) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    // SEMROUTER_KEEP_LOGS=1 keeps every log (e.g. to grep a sanitizer build's output).
    if (this.failed.length === 0 && !process.env.SEMROUTER_KEEP_LOGS) {
      fs.rmSync(this.dir, { recursive: true, force: true });
    } else {
      process.stderr.write(`[harness] kept ${this.dir} for the failed test(s): ${this.failed.join(', ')}\n`);
    }
  }
}

// Creates a Harness for a test file and registers the hooks: after each failed test the logs of
// every child are printed; after all tests every child is stopped.
export function setup(name) {
  const h = new Harness(name);
  afterEach((t) => {
    if (t.passed === false && !h.knownBugs.has(t.name)) {
      h.failed.push(t.name);
      process.stderr.write(`\n[harness] test "${t.name}" failed; child logs (new lines):\n${h.logs({ onlyNew: true })}\n`);
    }
  });
  after(() => h.cleanup());
  return h;
}

// ---------------------------------------------------------------------------------------------
// Assertion helpers shared by the test files.

// The OpenAI error shape: {"error": {"message": string, "type": string, "param": string|null,
// "code": string|null}} and nothing else at the top level.
export function assertOpenAIError(assert, res, { status, type, code } = {}) {
  const where = `${res.status} ${res.text}`;
  if (status !== undefined) assert.equal(res.status, status, where);
  assert.match(String(res.headers['content-type'] || ''), /^application\/json/, where);
  assert.ok(res.json && typeof res.json === 'object', `body is not JSON: ${where}`);
  assert.deepEqual(Object.keys(res.json), ['error'], where);
  const e = res.json.error;
  assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'param', 'type'], where);
  assert.equal(typeof e.message, 'string', where);
  assert.ok(e.message.length > 0, where);
  assert.equal(typeof e.type, 'string', where);
  assert.ok(e.param === null || typeof e.param === 'string', where);
  assert.ok(e.code === null || typeof e.code === 'string', where);
  if (type !== undefined) assert.equal(e.type, type, where);
  if (code !== undefined) assert.equal(e.code, code, where);
  return e;
}

// The raw bytes of the request body the mock received: it appends them verbatim as the last
// field of its non-streaming answer (`,"mock_echo":<body>}`).
export function rawEcho(text) {
  const marker = ',"mock_echo":';
  const at = text.indexOf(marker); // the first one: anything before it was written by the mock
  if (at < 0 || !text.endsWith('}')) throw new Error(`no mock_echo in ${text}`);
  return text.slice(at + marker.length, -1);
}

// A closed port: bind port 0, note the port, close it.
// Resolves true once the server at `port` answers PING with +PONG.
export function redisPing(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}

// A port nothing listens on, and that stays so: it is taken below the kernel's ephemeral range,
// so no server a test starts later on port 0 is given it (one was, once, and a "dead" backend
// answered with another test's script).
export async function closedPort() {
  let low = 32768;
  try {
    low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {}
  const tryPort = (port) =>
    new Promise((resolve) => {
      const srv = net.createServer();
      srv.on('error', () => resolve(null));
      srv.listen(port, '127.0.0.1', () => {
        const got = srv.address().port;
        srv.close(() => resolve(got));
      });
    });
  if (low > 2048) {
    for (let i = 0; i < 64; i++) {
      const port = await tryPort(1024 + Math.floor(Math.random() * (low - 1024)));
      if (port) return port;
    }
  }
  const port = await tryPort(0); // the range is unusual: any free port
  if (!port) throw new Error('closedPort: no free port');
  return port;
}
