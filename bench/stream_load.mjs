// Opens N concurrent streaming chat completions through the router and checks that every
// stream delivers every chunk. Usage: node stream_load.mjs PORT STREAMS CHUNKS
import http from 'node:http';

const [port, streams, chunks] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: streams });
const body = JSON.stringify({
  model: 'auto',
  stream: true,
  messages: [{ role: 'user', content: 'write python code quickly' }],
  mock: { tokens: chunks, token_delay_ms: 10 },
});

function one() {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let buf = '', events = 0, done = false;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i); buf = buf.slice(i + 2);
          if (ev.startsWith('data: [DONE]')) done = true; else if (ev.startsWith('data: ')) events++;
        }
      });
      res.on('end', () => resolve({ status: res.statusCode, events, done }));
    });
    req.on('error', (e) => resolve({ status: 0, events: 0, done: false, error: e.message }));
    req.end(body);
  });
}

const t0 = Date.now();
const results = await Promise.all(Array.from({ length: streams }, one));
const ms = Date.now() - t0;
// Each stream: 1 role event + `chunks` content events + 1 finish event, then [DONE].
const expected = chunks + 2;
const complete = results.filter((r) => r.status === 200 && r.done && r.events === expected).length;
const delivered = results.reduce((a, r) => a + r.events, 0);
console.log(JSON.stringify({ streams, chunks_per_stream: expected, complete, delivered, expected_total: expected * streams, wall_ms: ms }));
process.exit(complete === streams ? 0 : 1);
