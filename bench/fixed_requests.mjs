// Sends exactly N chat requests over C keep-alive connections, for bench/instructions.sh.
// Usage: node bench/fixed_requests.mjs PORT N [C=8] [FIRST=0] [same|varied=varied]
// varied: request n asks "Question n: ..." (a semantic cache misses and stores, as under real
// traffic); same: every request is the body of bench/post.lua; stream: that body with
// "stream": true (the answer is read to its end).
import http from 'node:http';
const [port, N, C, start] = [Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4] || 8), Number(process.argv[5] || 0)];
const same = process.argv[6] === 'same' || process.argv[6] === 'stream';
const streamed = process.argv[6] === 'stream';
const SAME = '{"model":"auto","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Can you explain why this Python function returns None instead of the list I expect?"}],"temperature":0.7,"max_tokens":64}';
const agent = new http.Agent({ keepAlive: true, maxSockets: C });
const topics = ['Python function', 'derivative of x^3', 'French revolution', 'tax law', 'protein folding'];
let next = start, done = 0, bad = 0;
function one() {
  if (next >= start + N) return Promise.resolve();
  const n = ++next;
  const body = streamed ? SAME.replace('{', '{"stream":true,') : same ? SAME : JSON.stringify({ model: 'auto', messages: [{ role: 'system', content: 'You are helpful.' }, { role: 'user', content: `Question ${n}: can you explain the ${topics[n % 5]} part ${n} in a few sentences?` }], temperature: 0.7, max_tokens: 64 });
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume(); res.on('end', () => { done++; if (res.statusCode !== 200) bad++; resolve(); });
    });
    req.on('error', () => { bad++; resolve(); });
    req.end(body);
  }).then(one);
}
await Promise.all(Array.from({ length: C }, one));
console.log(`done=${done} bad=${bad}`);
agent.destroy();
