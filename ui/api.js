// Talking to the admin port: JSON calls and the decision stream, with the admin token (when one
// is set) as a bearer header. The stream is read with fetch() rather than EventSource, because
// EventSource cannot send an Authorization header.

const TOKEN_KEY = 'semrouter.adminToken';

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage unavailable (private mode): the token lives as long as the page
  }
  memoryToken = value || '';
}
let memoryToken = '';

function authHeaders() {
  const t = token() || memoryToken;
  return t ? { authorization: `Bearer ${t}` } : {};
}

// The router answered 401: the page asks for the token (app.js listens).
export class AuthError extends Error {}

function needAuth(message) {
  window.dispatchEvent(new CustomEvent('semrouter:auth', { detail: message }));
  return new AuthError(message);
}

// The message of an OpenAI-shaped error body, or the status line.
async function errorOf(res) {
  let text = '';
  try {
    text = await res.text();
    const body = JSON.parse(text);
    if (body?.error?.message) return body.error.message;
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`;
}

export async function getJson(path, { signal } = {}) {
  const res = await fetch(path, { headers: { accept: 'application/json', ...authHeaders() }, signal });
  if (res.status === 401) throw needAuth(await errorOf(res));
  if (!res.ok) throw new Error(await errorOf(res));
  return res.json();
}

// POSTs JSON; resolves {status, body} for any answer but 401 (the caller shows API errors).
export async function postJson(path, payload, { signal } = {}) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...authHeaders() },
    body: typeof payload === 'string' ? payload : JSON.stringify(payload),
    signal,
  });
  if (res.status === 401) throw needAuth(await errorOf(res));
  let body;
  const text = await res.text();
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, ok: res.ok, body };
}

// Reads a text/event-stream response body and calls onEvent({event, id, data}) per event.
async function readEvents(res, onEvent, signal) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (;;) {
        const m = /\r?\n\r?\n/.exec(buffer);
        if (!m) break;
        const block = buffer.slice(0, m.index);
        buffer = buffer.slice(m.index + m[0].length);
        const ev = { event: 'message', id: null, data: '', retry: null };
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (!line || line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'data') data.push(val);
          else if (field === 'event') ev.event = val;
          else if (field === 'id') ev.id = val;
          else if (field === 'retry') ev.retry = Number(val);
        }
        ev.data = data.join('\n');
        onEvent(ev);
      }
    }
  } finally {
    if (signal?.aborted) reader.cancel().catch(() => {});
  }
}

// Opens the decision stream and keeps it open: after a break it reconnects (after the server's
// `retry`) from the last event seen, so nothing is lost while the ring still holds it.
//   onDecision(record), onState('live' | 'reconnecting' | 'auth'), backlog: decisions to start with
// Returns {close()}.
export function openDecisionStream({ onDecision, onState, backlog = 200 }) {
  const controller = new AbortController();
  let last = 0;
  let retryMs = 3000;
  let closed = false;
  const run = async () => {
    while (!closed) {
      try {
        const query = last > 0 ? `since=${last + 1}` : `backlog=${backlog}`;
        const res = await fetch(`/api/v1/dashboard/events?${query}`, {
          headers: { accept: 'text/event-stream', ...authHeaders() },
          signal: controller.signal,
          cache: 'no-store',
        });
        if (res.status === 401) {
          onState('auth');
          needAuth(await errorOf(res));
          return; // app.js opens the stream again once a token is given
        }
        if (!res.ok || !res.body) throw new Error(await errorOf(res));
        onState('live');
        await readEvents(
          res,
          (ev) => {
            if (ev.retry) retryMs = ev.retry;
            if (ev.event === 'decision') {
              const record = JSON.parse(ev.data);
              last = Math.max(last, record.seq);
              onDecision(record);
            }
          },
          controller.signal,
        );
      } catch (e) {
        if (closed || controller.signal.aborted) return;
      }
      if (closed) return;
      onState('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  };
  run();
  return {
    close() {
      closed = true;
      controller.abort();
    },
  };
}
