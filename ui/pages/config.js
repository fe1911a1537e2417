// Config: the active config as written (secrets masked), its generation, the reload counters and
// the last reload error, and a diff against the previous generation.
import { getJson } from '../api.js';
import { h, clear } from '../dom.js';

const CONTEXT = 3; // unchanged lines shown around a change

function numbered(text) {
  const lines = text.replace(/\n$/, '').split('\n');
  return h('ol', { class: 'code lines', id: 'cfg-text', tabindex: '0', 'aria-label': 'Active config' }, lines.map((l) => h('li', {}, l || ' ')));
}

function diffView(diff) {
  const out = h('div', { class: 'code diff', id: 'cfg-diff', tabindex: '0', role: 'region', 'aria-label': 'Changes from the previous generation' });
  const keep = diff.map(([op], i) => op !== ' ' || diff.slice(Math.max(0, i - CONTEXT), i + CONTEXT + 1).some(([o]) => o !== ' '));
  let skipped = 0;
  const flush = () => {
    if (skipped) out.append(h('div', { class: 'skip' }, `… ${skipped} unchanged line${skipped === 1 ? '' : 's'}`));
    skipped = 0;
  };
  diff.forEach(([op, text], i) => {
    if (!keep[i]) return void ++skipped;
    flush();
    const cls = op === '+' ? 'add' : op === '-' ? 'del' : 'same';
    const label = op === '+' ? 'added' : op === '-' ? 'removed' : 'unchanged';
    out.append(h('div', { class: `line ${cls}` }, h('span', { class: 'op', 'aria-label': label }, op), text || ' '));
  });
  flush();
  return out;
}

export function mount(root) {
  let alive = true;
  const body = h('div', { id: 'cfg' });
  const reload = h('button', { type: 'button', class: 'ghost', id: 'cfg-refresh' }, 'Refresh');
  root.append(h('div', { class: 'toolbar' }, h('h1', {}, 'Config'), reload), body);

  async function load() {
    try {
      const c = await getJson('/api/v1/dashboard/config');
      if (!alive) return;
      clear(body);
      body.append(
        h('div', { class: 'tiles' },
          h('div', { class: 'tile' }, h('div', { class: 'tile-label' }, 'Generation'), h('div', { class: 'tile-value', id: 'cfg-generation' }, String(c.generation))),
          h('div', { class: 'tile' }, h('div', { class: 'tile-label' }, 'Reloads'), h('div', { class: 'tile-value' }, `${c.reloads_ok} ok, ${c.reloads_failed} rejected`))),
      );
      if (c.last_error)
        body.append(h('div', { class: 'alert', role: 'alert', id: 'cfg-error' }, h('strong', {}, 'The last reload was rejected; the generation above is still in use. '), h('code', {}, c.last_error)));
      if (c.previous) {
        body.append(h('section', { class: 'card' },
          h('h2', {}, `Changes since generation ${c.previous.generation}`),
          h('p', { class: 'muted' }, `${c.previous.added} line(s) added, ${c.previous.removed} removed.`),
          c.previous.added + c.previous.removed ? diffView(c.diff) : h('p', {}, 'No change in the text.')));
      } else {
        body.append(h('p', { class: 'muted' }, 'No earlier generation in this process: the diff appears after the first reload.'));
      }
      body.append(h('section', { class: 'card' }, h('h2', {}, 'Active config (secrets masked)'), numbered(c.config)));
    } catch (e) {
      if (!alive) return;
      clear(body);
      body.append(h('p', { class: 'error', role: 'alert' }, `Could not load the config: ${e.message}`));
    }
  }
  reload.addEventListener('click', load);
  load();
  return () => {
    alive = false;
  };
}
