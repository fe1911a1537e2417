// Live: the decisions as they happen (from the shared stream), filterable, newest first.
import { getJson } from '../api.js';
import { decisions } from '../store.js';
import { h, clear, fmtTime, fmtMs, fmtInt, fmtCost, fmtPct, statusClass } from '../dom.js';

const MAX_ROWS = 300;
const COLUMNS = ['Time', 'Tenant', 'Decision', 'Model', 'Reasoning', 'Conf.', 'Cache', 'Guard', 'PII', 'Status', 'Latency', 'TTFT', 'Tokens', 'Cost'];

function option(value, label = value) {
  return h('option', { value }, label);
}

function field(id, label, control) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), control);
}

function badge(text, cls, title) {
  return text ? h('span', { class: `badge ${cls || ''}`, title }, text) : '';
}

export function mount(root) {
  const filters = { q: '', decision: '', model: '', status: '', only: '' };
  let paused = false;
  let showPrompts = false;
  let alive = true;

  const q = h('input', { id: 'f-q', type: 'search', placeholder: 'decision, model, tenant, signal…', autocomplete: 'off' });
  const decisionSel = h('select', { id: 'f-decision' }, option('', 'All'));
  const modelSel = h('select', { id: 'f-model' }, option('', 'All'));
  const statusSel = h(
    'select',
    { id: 'f-status' },
    option('', 'All'),
    option('2xx', '2xx answered'),
    option('4xx', '4xx refused'),
    option('5xx', '5xx failed'),
    option('499', '499 client left'),
  );
  const onlySel = h(
    'select',
    { id: 'f-only' },
    option('', 'Everything'),
    option('cache', 'Cache hits'),
    option('blocked', 'Guard blocks'),
    option('pii', 'PII handled'),
    option('fallback', 'Fallbacks'),
    option('stream', 'Streamed'),
  );
  const pause = h('button', { type: 'button', 'aria-pressed': 'false', id: 'live-pause' }, 'Pause');
  const count = h('p', { class: 'muted', id: 'live-count', 'aria-live': 'polite' });
  const stats = h('div', { class: 'tiles', id: 'live-tiles' });
  const head = h('tr', {}, COLUMNS.map((c) => h('th', { scope: 'col' }, c)));
  const promptHead = h('th', { scope: 'col', hidden: true }, 'Prompt');
  head.append(promptHead);
  const body = h('tbody', { id: 'live-rows' });
  const table = h(
    'table',
    { class: 'grid live', id: 'live-table' },
    h('caption', { class: 'sr-only' }, 'Recent routing decisions, newest first'),
    h('thead', {}, head),
    body,
  );

  root.append(
    h('h1', {}, 'Live decisions'),
    stats,
    h(
      'form',
      { class: 'filters', role: 'search', 'aria-label': 'Filter decisions', onsubmit: (e) => e.preventDefault() },
      field('f-q', 'Search', q),
      field('f-decision', 'Decision', decisionSel),
      field('f-model', 'Model', modelSel),
      field('f-status', 'Status', statusSel),
      field('f-only', 'Show', onlySel),
      h('div', { class: 'field end' }, pause),
    ),
    count,
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Decisions table' }, table),
  );

  const known = { decision: new Set(), model: new Set() };
  function learn(kind, sel, name) {
    if (!name || known[kind].has(name)) return;
    known[kind].add(name);
    sel.append(option(name));
  }

  function matches(r) {
    if (filters.decision && r.decision !== filters.decision) return false;
    if (filters.model && r.model !== filters.model && r.fallback !== filters.model) return false;
    if (filters.status) {
      const s = r.status;
      if (filters.status === '499' ? s !== 499 : filters.status === '2xx' ? s >= 300 : filters.status === '4xx' ? s < 400 || s >= 499 : s < 500)
        return false;
    }
    switch (filters.only) {
      case 'cache':
        if (r.cache !== 'hit') return false;
        break;
      case 'blocked':
        if (!r.blocked) return false;
        break;
      case 'pii':
        if (!r.pii) return false;
        break;
      case 'fallback':
        if (!r.fallback) return false;
        break;
      case 'stream':
        if (!r.stream) return false;
        break;
    }
    if (filters.q) {
      const hay = [r.decision, r.model, r.fallback, r.tenant, r.reasoning, r.error, r.prompt, ...(r.signals || [])]
        .filter(Boolean)
        .join(' ')
        .toLowerCase();
      if (!hay.includes(filters.q)) return false;
    }
    return true;
  }

  function row(r) {
    const tokens = (r.prompt_tokens || 0) + (r.completion_tokens || 0);
    const cells = [
      h('td', { class: 'nowrap' }, h('time', { datetime: new Date(r.time).toISOString() }, fmtTime(r.time))),
      h('td', {}, r.tenant || '–'),
      h('td', { title: (r.signals || []).join(', ') || undefined }, h('strong', {}, r.decision || '–'),
        r.session ? h('span', { class: 'muted small' }, ` ${r.session}`) : ''),
      h('td', {}, r.model || '–', r.fallback ? h('span', { class: 'badge warn', title: 'answered by a fallback model' }, `→ ${r.fallback}`) : ''),
      h('td', { class: 'nowrap' }, r.reasoning || '–'),
      h('td', { class: 'num' }, r.decision && r.decision !== 'passthrough' ? r.confidence.toFixed(2) : '–'),
      h('td', {}, badge(r.cache, r.cache === 'hit' ? 'ok' : '')),
      h('td', {}, r.blocked ? badge('blocked', 'bad') : ''),
      h('td', {}, badge(r.pii, 'info')),
      h('td', {}, badge(String(r.status), statusClass(r.status), r.error || undefined)),
      h('td', { class: 'num nowrap' }, fmtMs(r.latency_ms)),
      h('td', { class: 'num nowrap' }, fmtMs(r.ttft_ms)),
      h('td', { class: 'num', title: `prompt ${r.prompt_tokens}, completion ${r.completion_tokens}, reasoning ${r.reasoning_tokens}` }, tokens ? fmtInt(tokens) : '–'),
      h('td', { class: 'num' }, r.cost ? fmtCost(r.cost) : '–'),
    ];
    if (showPrompts) cells.push(h('td', { class: 'prompt' }, r.prompt || ''));
    return h('tr', { dataset: { seq: r.seq, decision: r.decision || '', model: r.model || '' } }, cells);
  }

  function updateCount() {
    const shown = body.querySelectorAll('tr[data-seq]').length;
    count.textContent = `${shown} shown of ${decisions.records.length} received${paused ? ' (paused)' : ''}`;
  }

  function emptyRow() {
    return h('tr', { class: 'empty-row' }, h('td', { colspan: COLUMNS.length + (showPrompts ? 1 : 0) },
      decisions.records.length ? 'No decision matches the filters.' : 'No decisions yet: send a request to the gateway.'));
  }

  function renderAll() {
    clear(body);
    let n = 0;
    for (let i = decisions.records.length - 1; i >= 0 && n < MAX_ROWS; --i) {
      const r = decisions.records[i];
      if (!matches(r)) continue;
      body.append(row(r));
      ++n;
    }
    if (n === 0) body.append(emptyRow());
    updateCount();
  }

  function onRecord(r) {
    learn('decision', decisionSel, r.decision);
    learn('model', modelSel, r.model);
    if (paused || !matches(r)) return updateCount();
    body.querySelector('tr.empty-row')?.remove();
    const tr = row(r);
    tr.classList.add('fresh');
    body.prepend(tr);
    while (body.children.length > MAX_ROWS) body.lastElementChild.remove();
    updateCount();
  }

  // The last minute, from what the stream brought.
  function renderStats() {
    const since = Date.now() - 60_000;
    const recent = decisions.records.filter((r) => r.time >= since);
    const lat = recent.map((r) => r.latency_ms).sort((a, b) => a - b);
    const p = (x) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(x * lat.length))] : null);
    const errors = recent.filter((r) => r.status >= 500).length;
    const hits = recent.filter((r) => r.cache === 'hit').length;
    const tiles = [
      ['Requests, last minute', fmtInt(recent.length)],
      ['Per second', (recent.length / Math.min(60, Math.max(1, recent.length ? (Date.now() - recent[0].time) / 1000 : 60))).toFixed(2)],
      ['p50 / p95 latency', `${fmtMs(p(0.5))} / ${fmtMs(p(0.95))}`],
      ['Errors (5xx)', recent.length ? fmtPct(errors / recent.length) : '–'],
      ['Cache hits', recent.length ? fmtPct(hits / recent.length) : '–'],
    ];
    clear(stats);
    for (const [label, value] of tiles) stats.append(h('div', { class: 'tile' }, h('div', { class: 'tile-label' }, label), h('div', { class: 'tile-value' }, value)));
  }

  const onFilter = () => {
    filters.q = q.value.trim().toLowerCase();
    filters.decision = decisionSel.value;
    filters.model = modelSel.value;
    filters.status = statusSel.value;
    filters.only = onlySel.value;
    renderAll();
  };
  q.addEventListener('input', onFilter);
  for (const s of [decisionSel, modelSel, statusSel, onlySel]) s.addEventListener('change', onFilter);
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.setAttribute('aria-pressed', String(paused));
    pause.textContent = paused ? 'Resume' : 'Pause';
    if (!paused) renderAll();
    else updateCount();
  });

  getJson('/api/v1/dashboard/info')
    .then((info) => {
      if (!alive) return;
      showPrompts = !!info.show_prompts;
      promptHead.hidden = !showPrompts;
      for (const d of info.decisions) learn('decision', decisionSel, d);
      for (const m of info.models) learn('model', modelSel, m);
      renderAll();
    })
    .catch(() => {});
  for (const r of decisions.records) {
    learn('decision', decisionSel, r.decision);
    learn('model', modelSel, r.model);
  }
  renderAll();
  renderStats();
  const unsubscribe = decisions.subscribe(onRecord);
  const timer = setInterval(renderStats, 1000);
  return () => {
    alive = false;
    unsubscribe();
    clearInterval(timer);
  };
}
