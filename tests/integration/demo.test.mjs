// scripts/demo.sh (what `make demo` runs): it starts two mock model servers and the router on the
// embedded default config, runs its own tour once (DEMO_SELFTEST=1), answers routed requests, and
// on SIGTERM stops everything it started. All ports are free ones, so this runs beside other tests.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { SOURCE_DIR, request, waitFor, closedPort } from './harness.mjs';

const SCRIPT = path.join(SOURCE_DIR, 'scripts', 'demo.sh');
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

let demo; // {proc, pgid, exited, exit, output()}
let mockA;
let mockB;
let ports; // {gateway, admin}
let failed = false;

// Last resort if a test breaks off, or the script leaves a child behind: the script and everything
// it started share one process group (created for this test), so SIGKILL to the group ends them all.
function killGroup() {
  if (!demo) return;
  try {
    process.kill(-demo.pgid, 'SIGKILL');
  } catch {
    // already gone
  }
}
process.on('exit', killGroup);

function startDemo(env) {
  const proc = spawn('bash', [SCRIPT], {
    cwd: SOURCE_DIR,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so a leftover child can be found (and killed)
  });
  let text = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => (text += d));
  proc.stderr.on('data', (d) => (text += d));
  const d = { proc, pgid: proc.pid, exit: null, output: () => text };
  d.exited = new Promise((resolve) => {
    proc.on('close', (code, signal) => {
      d.exit = { code, signal };
      resolve(d.exit);
    });
  });
  return d;
}

// Waits until the script's output matches `re`, failing early if the script has exited.
async function waitForOutput(re, timeoutMs, what) {
  return waitFor(
    () => {
      const m = re.exec(demo.output());
      if (m) return m;
      if (demo.exit) throw new Error(`demo.sh exited (${JSON.stringify(demo.exit)}) before ${what}`);
      return null;
    },
    { timeoutMs, intervalMs: 50, what },
  );
}

// Resolves true if nothing accepts connections on 127.0.0.1:port.
function refuses(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(2_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', (e) => resolve(e.code === 'ECONNREFUSED'));
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

before(async () => {
  mockA = await closedPort();
  do mockB = await closedPort();
  while (mockB === mockA);
  demo = startDemo({
    PORT: '0',
    ADMIN_PORT: '0',
    SEMROUTER_MOCK_A_PORT: String(mockA),
    SEMROUTER_MOCK_B_PORT: String(mockB),
    DEMO_SECONDS: '20',
    DEMO_SELFTEST: '1',
  });
  const m = await waitForOutput(
    /gateway http:\/\/127\.0\.0\.1:(\d+)\s+admin http:\/\/127\.0\.0\.1:(\d+)/,
    START_TIMEOUT_MS,
    "the router's ports",
  );
  ports = { gateway: Number(m[1]), admin: Number(m[2]) };
  // The tour is printed right after the ports line, but may arrive in a later chunk.
  await waitForOutput(/Any OpenAI client works too/, START_TIMEOUT_MS, 'the printed tour');
});

afterEach((t) => {
  if (t.passed === false) {
    failed = true;
    process.stderr.write(`\n[demo.test] "${t.name}" failed; demo.sh output so far:\n${demo?.output() ?? ''}\n`);
  }
});

after(async () => {
  if (demo && !demo.exit) {
    try {
      process.kill(demo.proc.pid, 'SIGTERM');
    } catch {
      // gone
    }
    const timer = setTimeout(killGroup, STOP_TIMEOUT_MS);
    await demo.exited;
    clearTimeout(timer);
  }
  if (demo && alive(-demo.pgid)) killGroup(); // a child the script failed to stop
  // The script keeps its logs in a temp dir for the user; remove it unless a test failed.
  const logs = /logs in (\S+)/.exec(demo?.output() ?? '')?.[1];
  if (logs && !failed && path.basename(logs).startsWith('semrouter-demo.')) {
    fs.rmSync(logs, { recursive: true, force: true });
  }
});

test('the demo reports real ports for the router and the mocks it was given', () => {
  assert.ok(ports.gateway > 0 && ports.admin > 0, JSON.stringify(ports));
  assert.notEqual(ports.gateway, ports.admin);
  assert.match(demo.output(), new RegExp(`A on 127\\.0\\.0\\.1:${mockA}\\b`));
  assert.match(demo.output(), new RegExp(`B on 127\\.0\\.0\\.1:${mockB}\\b`));
  // The tour printed for the user names the actual ports.
  assert.match(demo.output(), new RegExp(`curl -sS -i http://127\\.0\\.0\\.1:${ports.gateway}/v1/chat/completions`));
  assert.match(demo.output(), new RegExp(`curl -sS http://127\\.0\\.0\\.1:${ports.admin}/metrics`));
});

test('a math question with model auto goes to qwen3-8b with thinking on', async () => {
  const res = await request(`http://127.0.0.1:${ports.gateway}/v1/chat/completions`, {
    method: 'POST',
    json: { model: 'auto', messages: [{ role: 'user', content: 'What is the integral of x^2 from 0 to 1?' }] },
  });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers['x-semrouter-model'], 'qwen3-8b');
  assert.equal(res.headers['x-semrouter-decision'], 'math');
  // A definite integral needs working out: thinking on, with the effort's budget.
  assert.match(res.headers['x-semrouter-reasoning'], /^on;budget=\d+$/);
  assert.equal(res.json.mock_server, 'A', res.text); // qwen3-8b is served by mock-a
  const content = res.json.choices[0].message.content;
  assert.match(content, /^\[A\] model=Qwen\/Qwen3-8B reasoning=chat_template_kwargs=\{"enable_thinking":true,"thinking_budget":\d+\}/);
  // The math decision's system prompt plugin ran.
  assert.equal(res.json.mock_echo.messages[0].role, 'system');
  assert.match(res.json.mock_echo.messages[0].content, /careful mathematician/);
});

test('the selftest ran the whole tour and every request was answered', async () => {
  await waitForOutput(/selftest: all \d+ requests answered/, START_TIMEOUT_MS, 'the selftest');
  // The line after it can come in a later chunk of output.
  await waitForOutput(/running for 20 s/, START_TIMEOUT_MS, 'the line after the selftest');
  const out = demo.output();
  assert.doesNotMatch(out, /FAILED/);
  assert.match(out, /x-semrouter-decision: code/);
  assert.match(out, /x-semrouter-reasoning-need: 0\.\d+/); // reasoning by need
  assert.match(out, /x-semrouter-decision: physics\r?\nx-semrouter-reasoning: off/); // why is the sky blue?
  assert.match(out, /x-semrouter-decision: law/);
  assert.match(out, /x-semrouter-decision: history/);
  assert.match(out, /x-semrouter-decision: jailbreak_guard/);
  assert.match(out, /"finish_reason":"content_filter"/);
  assert.match(out, /x-semrouter-pii: redacted;types=credit_card/);
  assert.match(out, /My card \[CREDIT_CARD\] was charged twice/);
  assert.match(out, /x-semrouter-session: sticky/);
  assert.match(out, /"pii":\{"entities":\[\{"begin"/);
  assert.match(out, /x-semrouter-decision: passthrough/);
  assert.match(out, /"enable_thinking\\":false\}/); // the streamed answer of the quick decision
  assert.match(out, /data: \[DONE\]/);
  assert.match(out, /"decision":"math"/); // the admin dry run
  // The embedded classifiers loaded offline and answered the classify step.
  assert.match(out, /semrouter demo: model domain: linear .*\(14 labels\)/);
  assert.match(out, /semrouter demo: model language: fasttext .*lid\.176\.ftz/);
  assert.match(out, /"domain":\{"confidence":[0-9.e-]+,"latency_us":[0-9.e-]+,"probabilities":\{[^}]*\},"value":"law"\}/);
  assert.match(out, /semrouter_requests_total\{model="qwen3-8b",decision="math",status="200"\}/);
  assert.match(out, /running for 20 s/);
});

test('SIGTERM stops the script, the router and both mocks', async () => {
  const routerPid = Number(/router \(pid (\d+)\)/.exec(demo.output())?.[1]);
  const mockPids = [...demo.output().matchAll(/127\.0\.0\.1:\d+ \(pid (\d+)\)/g)].map((m) => Number(m[1]));
  assert.ok(routerPid > 0, 'no router pid in the output');
  assert.equal(mockPids.length, 2, 'no mock pids in the output');

  process.kill(demo.proc.pid, 'SIGTERM');
  let timer;
  const exit = await Promise.race([
    demo.exited,
    new Promise((resolve) => {
      timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  assert.notEqual(exit, 'timeout', `demo.sh still running ${STOP_TIMEOUT_MS} ms after SIGTERM`);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.match(demo.output(), /SIGTERM received, stopping/);
  assert.match(demo.output(), /stopped the router and the mock servers/);

  for (const [what, port] of [
    ['router gateway', ports.gateway],
    ['router admin', ports.admin],
    ['mock A', mockA],
    ['mock B', mockB],
  ]) {
    assert.ok(await refuses(port), `${what} port ${port} still accepts connections`);
  }
  for (const pid of [routerPid, ...mockPids]) assert.equal(alive(pid), false, `pid ${pid} is still alive`);
  // Nothing at all is left in the script's process group.
  await waitFor(() => !alive(-demo.pgid), { timeoutMs: 5_000, what: "the demo's process group to be empty" });
});
