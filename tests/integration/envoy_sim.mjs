// A stand-in for Envoy's ext_proc filter, built from Envoy's own protos (third_party/envoy-protos)
// with @grpc/grpc-js: it drives semrouter's ExternalProcessor service over loopback the way
// Envoy does — one bidirectional stream per HTTP request, request headers, the BUFFERED body,
// the mutations applied, an upstream call to the cluster the mutated headers select, then the
// response headers and the response body (STREAMED when the service asks for it with
// mode_override) — and reports what the upstream received and what the client would get.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';

import { SOURCE_DIR } from './harness.mjs';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTOS = path.join(SOURCE_DIR, 'third_party', 'envoy-protos');

let cached;
let statusCodes; // envoy.type.v3.StatusCode: name -> number
// The generated-at-runtime ExternalProcessor client constructor.
export function extProcClient() {
  if (!cached) {
    const def = protoLoader.loadSync('envoy/service/ext_proc/v3/external_processor.proto', {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: false,
      oneofs: true,
      includeDirs: ['envoy-api', 'xds', 'protoc-gen-validate'].map((d) => path.join(PROTOS, d)),
    });
    const pkg = grpc.loadPackageDefinition(def);
    statusCodes = {};
    for (const v of def['envoy.type.v3.StatusCode'].type.value) statusCodes[v.name] = v.number;
    cached = pkg.envoy.service.ext_proc.v3.ExternalProcessor;
  }
  return cached;
}

export function connect(port, { credentials } = {}) {
  const Client = extProcClient();
  return new Client(`127.0.0.1:${port}`, credentials || grpc.credentials.createInsecure());
}

export { grpc };

// One ext_proc stream with a promise per answer. `next()` resolves the next ProcessingResponse,
// or rejects when the stream ends (with the gRPC status) before one comes.
export class ExtProcStream {
  constructor(client, { deadlineMs = 10_000 } = {}) {
    this.call = client.Process({ deadline: Date.now() + deadlineMs });
    this.queue = [];
    this.waiters = [];
    this.ended = null; // {code, details} once the call ended
    this.call.on('data', (msg) => {
      const w = this.waiters.shift();
      if (w) w.resolve(msg);
      else this.queue.push(msg);
    });
    this.done = new Promise((resolve) => {
      this.call.on('status', (status) => {
        this.ended = { code: status.code, details: status.details };
        for (const w of this.waiters.splice(0)) {
          w.reject(Object.assign(new Error(`stream ended: ${status.code} ${status.details}`), { status }));
        }
        resolve(this.ended);
      });
    });
    this.call.on('error', () => {}); // reported through 'status'
  }
  send(msg) {
    this.call.write(msg);
  }
  next({ timeoutMs = 10_000 } = {}) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.ended) return Promise.reject(new Error(`stream ended: ${this.ended.code} ${this.ended.details}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ext_proc answer within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }
  async exchange(msg) {
    this.send(msg);
    return this.next();
  }
  end() {
    this.call.end();
    return this.done;
  }
  cancel() {
    this.call.cancel();
    return this.done;
  }
}

export function headerMap(headers) {
  return { headers: Object.entries(headers).map(([key, value]) => ({ key, raw_value: Buffer.from(String(value)) })) };
}

function valueOf(h) {
  if (h.raw_value && h.raw_value.length) return Buffer.from(h.raw_value).toString('utf8');
  return h.value || '';
}

// Applies a HeaderMutation to a plain {name: value} object (names lower case).
export function applyHeaderMutation(headers, mutation) {
  if (!mutation) return headers;
  for (const name of mutation.remove_headers || []) delete headers[name.toLowerCase()];
  for (const o of mutation.set_headers || []) headers[o.header.key.toLowerCase()] = valueOf(o.header);
  return headers;
}

export function immediateResponse(resp) {
  const ir = resp.immediate_response;
  const headers = applyHeaderMutation({}, ir.headers);
  const body = ir.body ? Buffer.from(ir.body).toString('utf8') : '';
  let json;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  const code = ir.status?.code;
  const status = typeof code === 'string' && code in statusCodes ? statusCodes[code] : Number(code);
  return { status, headers, body, json };
}

const STATUS_CODE = (code) => (typeof code === 'number' ? code : Number(code));

// Sends `request` to `origin` as Envoy's router would after the mutations and returns
// {status, headers, chunks (Buffers as they arrived)}.
function callUpstream(origin, { method, path: p, headers, body }) {
  return new Promise((resolve, reject) => {
    const url = new URL(p, origin);
    const out = {};
    for (const [k, v] of Object.entries(headers)) {
      if (!k.startsWith(':') && k !== 'host' && k !== 'transfer-encoding') out[k] = v;
    }
    out['content-length'] = String(Buffer.byteLength(body));
    const req = http.request(url, { method, headers: out }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, chunks }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// Runs one HTTP request through the processor as Envoy would. `clusters` maps a backend name
// (the x-semrouter-backend header the service sets) to an origin URL. Returns
//   {immediate: {status, headers, body, json}}                       when the router answered, or
//   {upstreamRequest: {path, headers, body}, response: {status, headers, body, chunks},
//    streamed, passthrough, messages: [ProcessingResponse...]}
export async function envoyExchange(client, { method = 'POST', path: p = '/v1/chat/completions', headers = {}, body, json, clusters, backendHeader = 'x-semrouter-backend', observe = false }) {
  const s = new ExtProcStream(client);
  const messages = [];
  const requestHeaders = { ':method': method, ':path': p, ':authority': 'router.test', ':scheme': 'http' };
  for (const [k, v] of Object.entries(headers)) requestHeaders[k.toLowerCase()] = v;
  const bodyText = json !== undefined ? JSON.stringify(json) : body ?? '';
  if (bodyText) {
    requestHeaders['content-type'] ??= 'application/json';
    requestHeaders['content-length'] = String(Buffer.byteLength(bodyText));
  }
  const obs = observe ? { observability_mode: true } : {};
  try {
    let r = await s.exchange({ request_headers: { headers: headerMap(requestHeaders), end_of_stream: !bodyText }, ...obs });
    messages.push(r);
    if (r.immediate_response) return { immediate: immediateResponse(r), messages };
    const afterHeaders = r.request_headers?.response;
    applyHeaderMutation(requestHeaders, afterHeaders?.header_mutation);
    // Zero-valued enums are left out of the decoded message: an absent body mode is NONE.
    const passthrough = Boolean(r.mode_override && (r.mode_override.request_body_mode ?? 'NONE') === 'NONE');
    let upstreamBody = bodyText;
    if (!passthrough && bodyText) {
      r = await s.exchange({ request_body: { body: Buffer.from(bodyText), end_of_stream: true } });
      messages.push(r);
      if (r.immediate_response) return { immediate: immediateResponse(r), messages };
      const common = r.request_body?.response || {};
      applyHeaderMutation(requestHeaders, common.header_mutation);
      if (common.body_mutation?.body !== undefined) upstreamBody = Buffer.from(common.body_mutation.body).toString('utf8');
    }
    const backend = requestHeaders[backendHeader];
    const origin = clusters?.[backend];
    if (!origin) {
      await s.end();
      return { passthrough, upstreamRequest: { path: requestHeaders[':path'], headers: requestHeaders, body: upstreamBody }, messages };
    }
    const up = await callUpstream(origin, { method, path: requestHeaders[':path'], headers: requestHeaders, body: upstreamBody });
    const responseHeaders = { ':status': String(up.status) };
    for (const [k, v] of Object.entries(up.headers)) responseHeaders[k] = Array.isArray(v) ? v.join(', ') : v;
    const upBody = Buffer.concat(up.chunks);
    r = await s.exchange({ response_headers: { headers: headerMap(responseHeaders), end_of_stream: upBody.length === 0 } });
    messages.push(r);
    applyHeaderMutation(responseHeaders, r.response_headers?.response?.header_mutation);
    const streamed = r.mode_override?.response_body_mode === 'STREAMED';
    if (upBody.length) {
      if (streamed) {
        for (const c of up.chunks) {
          messages.push(await s.exchange({ response_body: { body: c, end_of_stream: false } }));
        }
        messages.push(await s.exchange({ response_body: { body: Buffer.alloc(0), end_of_stream: true } }));
      } else {
        messages.push(await s.exchange({ response_body: { body: upBody, end_of_stream: true } }));
      }
    }
    const status = await s.end();
    const text = upBody.toString('utf8');
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return {
      upstreamRequest: { path: requestHeaders[':path'], headers: requestHeaders, body: upstreamBody },
      response: { status: STATUS_CODE(responseHeaders[':status']), headers: responseHeaders, body: text, json: parsed, chunks: up.chunks },
      streamed,
      passthrough,
      grpcStatus: status,
      messages,
    };
  } finally {
    if (!s.ended) s.cancel();
  }
}

// grpc.health.v1.Health/Check, encoded by hand (a string field and an enum field): no proto
// file needed. Resolves the status name.
export function healthCheck(port, service = '') {
  const Client = grpc.makeGenericClientConstructor({
    Check: {
      path: '/grpc.health.v1.Health/Check',
      requestStream: false,
      responseStream: false,
      requestSerialize: (s) => {
        const b = Buffer.from(s, 'utf8');
        return b.length ? Buffer.concat([Buffer.from([0x0a, b.length]), b]) : Buffer.alloc(0);
      },
      requestDeserialize: (b) => b,
      responseSerialize: (b) => b,
      responseDeserialize: (b) => (b.length >= 2 && b[0] === 0x08 ? b[1] : 0),
    },
  });
  const c = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const names = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
  return new Promise((resolve, reject) => {
    c.Check(service, { deadline: Date.now() + 5000 }, (err, status) => {
      c.close();
      if (err) reject(err);
      else resolve(names[status] || String(status));
    });
  });
}

export function readProtoFile(rel) {
  return fs.readFileSync(path.join(PROTOS, rel), 'utf8');
}
