// Small DOM and formatting helpers. Elements are built with textContent, never innerHTML, so
// prompts, names and config text are shown as text whatever they contain.

// h('div', {class: 'x', onclick: fn, 'aria-label': '...'}, child, 'text', [more])
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function fmtTime(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || ms < 0) return '–';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 10000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

export function fmtUs(us) {
  if (us === null || us === undefined || us < 0) return '–';
  if (us < 1000) return `${us.toFixed(us < 10 ? 1 : 0)} µs`;
  return fmtMs(us / 1000);
}

export function fmtInt(n) {
  if (n === null || n === undefined) return '–';
  return Number(n).toLocaleString('en-US');
}

export function fmtCost(usd) {
  if (!usd) return '$0';
  // Two significant digits for small sums ($0.0000031), cents above a cent.
  if (usd < 0.01) return `$${usd.toFixed(Math.min(10, 1 - Math.floor(Math.log10(usd))))}`;
  return `$${usd.toFixed(2)}`;
}

export function fmtPct(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  return `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`;
}

// The status class for a badge: ok, warn (4xx), bad (5xx), gone (499).
export function statusClass(status) {
  if (status === 499) return 'gone';
  if (status >= 500) return 'bad';
  if (status >= 400) return 'warn';
  return 'ok';
}

// Reads a CSS custom property of the document (chart colours follow the light/dark theme).
export function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}
