// https:// upstreams: the router verifies the server's certificate (a per-backend CA file here,
// the system store by default) and its host name, sends SNI, presents a client certificate for
// mutual TLS, keeps connections alive and streams exactly as over plain HTTP. The CA and every
// certificate are made by this test with the openssl command-line tool; the upstreams are
// Node https servers on 127.0.0.1.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

import { setup, request, stream, assertOpenAIError } from './harness.mjs';

const h = setup('tls');
const dir = path.join(h.dir, 'pki');
fs.mkdirSync(dir);
const f = (name) => path.join(dir, name);

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

// A P-256 key and a certificate signed by `caName` (or self-signed without one).
function makeCert(name, { cn, san, caName, clientAuth = false }) {
  const ext = [`subjectAltName=${san}`, 'basicConstraints=CA:FALSE'];
  if (clientAuth) ext.push('extendedKeyUsage=clientAuth');
  fs.writeFileSync(f(`${name}.ext`), ext.join('\n') + '\n');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
  if (caName) {
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${caName}.pem`), '-CAkey',
      f(`${caName}.key`), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '2',
      '-extfile', f(`${name}.ext`));
  } else {
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-signkey', f(`${name}.key`), '-out',
      f(`${name}.pem`), '-days', '2', '-extfile', f(`${name}.ext`));
  }
}

function makeCa(name) {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`), '-days', '2', '-subj',
    `/CN=semrouter test ${name}`);
}

const read = (name) => fs.readFileSync(f(name));

// An OpenAI-shaped upstream over TLS. Records requests, TLS connections and the SNI it saw.
async function startTlsUpstream({ cert, key, requestCert = false }) {
  const state = { requests: [], connections: 0, sni: [], clientCerts: [] };
  const server = https.createServer(
    { cert: read(cert), key: read(key), ca: read('ca.pem'), requestCert, rejectUnauthorized: requestCert },
    (req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const json = JSON.parse(body || '{}');
        state.requests.push({ url: req.url, headers: req.headers, json });
        const peer = req.socket.getPeerCertificate?.();
        if (peer && peer.subject) state.clientCerts.push(peer.subject.CN);
        const model = json.model || 'm';
        if (json.stream) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          for (const piece of ['over', ' ', 'TLS']) {
            res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model,
              choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] })}\n\n`);
          }
          res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model,
            choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
            usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 } })}\n\n`);
          res.end('data: [DONE]\n\n');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'c1', object: 'chat.completion', created: 1, model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'secure hello' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } }));
      });
    },
  );
  server.on('secureConnection', (socket) => {
    state.connections++;
    state.sni.push(socket.servername);
  });
  server.on('tlsClientError', () => {});
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  h.servers = h.servers || [];
  h.servers.push(server);
  return { server, port: server.address().port, state };
}

let good, wrongHost, untrusted, mtls, router;

before(async () => {
  makeCa('ca');
  makeCert('server', { cn: 'localhost', san: 'DNS:localhost,IP:127.0.0.1', caName: 'ca' });
  makeCert('other', { cn: 'other.example', san: 'DNS:other.example', caName: 'ca' });
  makeCert('selfsigned', { cn: 'localhost', san: 'DNS:localhost,IP:127.0.0.1' });
  makeCert('client', { cn: 'semrouter-client', san: 'DNS:semrouter-client', caName: 'ca', clientAuth: true });

  good = await startTlsUpstream({ cert: 'server.pem', key: 'server.key' });
  wrongHost = await startTlsUpstream({ cert: 'other.pem', key: 'other.key' });
  untrusted = await startTlsUpstream({ cert: 'selfsigned.pem', key: 'selfsigned.key' });
  mtls = await startTlsUpstream({ cert: 'server.pem', key: 'server.key', requestCert: true });

  const tls = { ca_file: f('ca.pem') };
  const timeouts = { connect_ms: 3000 };
  router = await h.startRouter({
    server: { workers: 1, reload_poll_ms: 0 },
    backends: [
      // "localhost": resolved asynchronously; it may have ::1 first, which refuses, then 127.0.0.1.
      { name: 'good', url: `https://localhost:${good.port}/v1`, tls, timeouts },
      { name: 'by-ip', url: `https://127.0.0.1:${good.port}/v1`, tls, timeouts },
      { name: 'wrong-host', url: `https://localhost:${wrongHost.port}/v1`, tls, timeouts },
      { name: 'untrusted', url: `https://localhost:${untrusted.port}/v1`, tls, timeouts },
      { name: 'system-store', url: `https://localhost:${good.port}/v1`, timeouts },
      { name: 'mtls', url: `https://localhost:${mtls.port}/v1`, timeouts,
        tls: { ...tls, client_cert: f('client.pem'), client_key: f('client.key') } },
      { name: 'mtls-no-cert', url: `https://localhost:${mtls.port}/v1`, tls, timeouts },
      { name: 'insecure', url: `https://localhost:${untrusted.port}/v1`, timeouts,
        tls: { insecure_skip_verify: true } },
    ],
    models: [
      { name: 'good', backends: ['good'] },
      { name: 'by-ip', backends: ['by-ip'] },
      { name: 'wrong-host', backends: ['wrong-host'] },
      { name: 'untrusted', backends: ['untrusted'] },
      { name: 'system-store', backends: ['system-store'] },
      { name: 'mtls', backends: ['mtls'] },
      { name: 'mtls-no-cert', backends: ['mtls-no-cert'] },
      { name: 'insecure', backends: ['insecure'] },
    ],
  });
});

const ask = (model, extra = {}) =>
  router.chat({ model, messages: [{ role: 'user', content: 'hello over TLS' }], ...extra });

test('a certificate signed by the configured CA for the host name is accepted; SNI is sent', async () => {
  const res = await ask('good');
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.choices[0].message.content, 'secure hello');
  assert.ok(good.state.sni.includes('localhost'), `SNI seen: ${JSON.stringify(good.state.sni)}`);
});

test('an IP address in the URL is verified against the certificate IP SAN (no SNI)', async () => {
  const res = await ask('by-ip');
  assert.equal(res.status, 200, res.text);
});

test('keep-alive: consecutive requests reuse one TLS connection', async () => {
  await ask('good');
  const before = good.state.connections;
  for (let i = 0; i < 5; i++) assert.equal((await ask('good')).status, 200);
  assert.equal(good.state.connections, before, 'no new TLS handshakes for pooled requests');
});

test('a pooled TLS connection the server has since closed (close_notify, then FIN) is not reused', async () => {
  const closing = await startTlsUpstream({ cert: 'server.pem', key: 'server.key' });
  // Each answer's connection is closed 100 ms later, as a server's idle timeout does.
  closing.server.on('request', (req, res) => {
    const socket = req.socket;
    res.on('finish', () => setTimeout(() => {
      socket.end();
      setTimeout(() => socket.destroy(), 20);
    }, 100));
  });
  const r = await h.startRouter({
    server: { workers: 1, reload_poll_ms: 0 },
    backends: [{ name: 'closing', url: `https://127.0.0.1:${closing.port}/v1`, tls: { ca_file: f('ca.pem') } }],
    models: [{ name: 'closing', backends: ['closing'] }],
  });
  for (let i = 0; i < 3; i++) {
    const res = await r.chat({ model: 'closing', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.status, 200, res.text);
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
  assert.equal(closing.state.requests.length, 3);
});

test('a certificate for another host name is refused', async () => {
  const res = await ask('wrong-host');
  assertOpenAIError(assert, res, { status: 502 });
  assert.match(res.json.error.message, /certificate verification failed|hostname mismatch/i);
  assert.equal(wrongHost.state.requests.length, 0, 'nothing was sent to it');
});

test('a certificate no trusted CA signed is refused', async () => {
  const res = await ask('untrusted');
  assertOpenAIError(assert, res, { status: 502 });
  assert.match(res.json.error.message, /certificate verification failed/i);
  assert.equal(untrusted.state.requests.length, 0);
});

test('without a CA file the system store is used, which does not trust the test CA', async () => {
  const res = await ask('system-store');
  assertOpenAIError(assert, res, { status: 502 });
  assert.match(res.json.error.message, /certificate verification failed/i);
});

test('mutual TLS: the client certificate is presented; without one the server refuses', async () => {
  const ok = await ask('mtls');
  assert.equal(ok.status, 200, ok.text);
  assert.ok(mtls.state.clientCerts.includes('semrouter-client'));
  const refused = await ask('mtls-no-cert');
  assertOpenAIError(assert, refused, { status: 502 });
});

test('insecure_skip_verify connects to an untrusted server, and says so loudly in the log', async () => {
  const res = await ask('insecure');
  assert.equal(res.status, 200, res.text);
  assert.match(router.log(), /verification is OFF/);
});

test('streaming over TLS relays every event and the usage', async () => {
  const s = await stream(`${router.url}/v1/chat/completions`, {
    model: 'good', stream: true, messages: [{ role: 'user', content: 'stream it' }],
  });
  assert.equal(s.status, 200);
  const text = s.events
    .filter((e) => e.data && e.data !== '[DONE]')
    .map((e) => JSON.parse(e.data).choices?.[0]?.delta?.content || '')
    .join('');
  assert.equal(text, 'over TLS');
  assert.equal(s.events.at(-1).data, '[DONE]');
  const metrics = await router.metrics();
  assert.match(metrics, /semrouter_completion_tokens_total\{model="good"\} [1-9]/);
});

test('failures are counted by kind: tls for a refused certificate', async () => {
  const metrics = await router.metrics();
  assert.match(metrics, /semrouter_upstream_errors_total\{backend="untrusted",kind="tls"\} [1-9]/);
});
