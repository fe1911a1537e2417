// Traffic: the router's last hour (or less) from the traffic history, drawn with uPlot: request
// rate, latency and time to first token percentiles, error / fallback / cache-hit rates, tokens
// and cost per model and per decision, signal latencies. Refreshed every few seconds.
import { getJson } from '../api.js';
import { h, clear, fmtMs, fmtInt, fmtCost, fmtPct, fmtUs, cssVar } from '../dom.js';

const REFRESH_MS = 5000;
const RANGES = [
  ['300', 'Last 5 minutes'],
  ['900', 'Last 15 minutes'],
  ['3600', 'Last hour'],
];

const palette = () => [1, 2, 3, 4, 5, 6, 7, 8].map((i) => cssVar(`--c${i}`) || '#888');

function ratio(a, b) {
  return b > 0 ? a / b : null;
}

// The chart definitions: each returns {series: [{label, values}], format} from the history.
function chartDefs(t) {
  const n = t.t.length;
  const per = (xs) => xs.map((x) => x / t.bucket_s);
  const byName = (group, key, scale = 1) =>
    Object.entries(t[group]).map(([name, s]) => ({ label: name, values: s[key].map((v) => v * scale) }));
  const perBucket = (f) => Array.from({ length: n }, (_, i) => f(i));
  return [
    {
      id: 'rps',
      title: 'Requests per second',
      unit: '/s',
      series: [
        { label: 'requests', values: t.rps },
        { label: 'errors (5xx)', values: per(t.errors) },
        { label: 'refused (4xx)', values: per(t.client_errors) },
        { label: 'fallbacks', values: per(t.fallbacks) },
        { label: 'cache hits', values: per(t.cache_hits) },
      ],
      format: (v) => v.toFixed(2),
    },
    {
      id: 'latency',
      title: 'Latency and time to first token',
      unit: 'ms',
      series: [
        { label: 'latency p50', values: t.latency_ms.p50 },
        { label: 'latency p95', values: t.latency_ms.p95 },
        { label: 'TTFT p50', values: t.ttft_ms.p50 },
        { label: 'TTFT p95', values: t.ttft_ms.p95 },
      ],
      format: fmtMs,
    },
    {
      id: 'rates',
      title: 'Error, fallback and cache hit rates',
      unit: '%',
      series: [
        { label: 'errors', values: perBucket((i) => ratio(t.errors[i], t.requests[i])) },
        { label: 'refused', values: perBucket((i) => ratio(t.client_errors[i], t.requests[i])) },
        { label: 'fallbacks', values: perBucket((i) => ratio(t.fallbacks[i], t.requests[i])) },
        { label: 'cache hit rate', values: perBucket((i) => ratio(t.cache_hits[i], t.cache_hits[i] + t.cache_misses[i])) },
        { label: 'guard blocks', values: perBucket((i) => ratio(t.blocked[i], t.requests[i])) },
      ].map((s) => ({ ...s, values: s.values.map((v) => (v === null ? null : v * 100)) })),
      format: (v) => `${v.toFixed(0)}%`,
    },
    { id: 'tokens-model', title: 'Tokens per model', unit: 'tokens', series: byName('models', 'tokens'), format: fmtInt },
    { id: 'cost-model', title: 'Cost per model (USD)', unit: 'USD', series: byName('models', 'cost'), format: fmtCost },
    { id: 'tokens-decision', title: 'Tokens per decision', unit: 'tokens', series: byName('decisions', 'tokens'), format: fmtInt },
    { id: 'cost-decision', title: 'Cost per decision (USD)', unit: 'USD', series: byName('decisions', 'cost'), format: fmtCost },
    {
      id: 'requests-decision',
      title: 'Requests per decision',
      unit: 'requests',
      series: byName('decisions', 'requests'),
      format: fmtInt,
    },
    {
      id: 'signals',
      title: 'Signal latency (mean per request)',
      unit: 'µs',
      series: Object.entries(t.signals).map(([type, s]) => ({ label: type, values: s.mean_us })),
      format: fmtUs,
    },
  ];
}

function points(series) {
  let n = 0;
  for (const s of series) for (const v of s.values) if (v !== null && v !== undefined) ++n;
  return n;
}

export function mount(root) {
  let alive = true;
  let timer = null;
  let last = null;
  // The x axis spans the history shown (at least a minute), not just the points that have data.
  let xRange = [0, 60];
  const charts = new Map(); // id -> {u, figure, labels}
  const range = h('select', { id: 'traffic-range' }, RANGES.map(([v, l]) => h('option', { value: v, selected: v === '3600' }, l)));
  const updated = h('span', { class: 'muted', id: 'traffic-updated', 'aria-live': 'polite' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const tiles = h('div', { class: 'tiles', id: 'traffic-tiles' });
  const grid = h('div', { class: 'charts', id: 'traffic-charts' });
  root.append(
    h('h1', {}, 'Traffic'),
    h('div', { class: 'toolbar' }, h('div', { class: 'field' }, h('label', { for: 'traffic-range' }, 'Range'), range), updated),
    error,
    tiles,
    grid,
  );

  function renderTiles(t) {
    const x = t.totals;
    const seconds = Math.max(1, t.t.length * t.bucket_s);
    const items = [
      ['Requests', fmtInt(x.requests)],
      ['Average rate', `${(x.requests / seconds).toFixed(2)}/s`],
      ['p50 / p95 latency', `${fmtMs(x.latency_p50_ms)} / ${fmtMs(x.latency_p95_ms)}`],
      ['p50 / p95 TTFT', `${fmtMs(x.ttft_p50_ms)} / ${fmtMs(x.ttft_p95_ms)}`],
      ['Errors (5xx)', x.requests ? fmtPct(x.errors / x.requests) : '–'],
      ['Fallbacks', x.requests ? fmtPct(x.fallbacks / x.requests) : '–'],
      ['Cache hit rate', x.cache_hits + x.cache_misses ? fmtPct(x.cache_hits / (x.cache_hits + x.cache_misses)) : '–'],
      ['Tokens', fmtInt(x.tokens)],
      ['Cost', fmtCost(x.cost)],
    ];
    clear(tiles);
    for (const [label, value] of items)
      tiles.append(h('div', { class: 'tile' }, h('div', { class: 'tile-label' }, label), h('div', { class: 'tile-value' }, value)));
  }

  function chartWidth(figure) {
    return Math.max(240, Math.floor(figure.clientWidth - 2));
  }

  function options(def, width) {
    const colors = palette();
    const axis = cssVar('--muted') || '#666';
    const gridColor = cssVar('--grid') || '#ddd';
    return {
      width,
      height: 200,
      scales: { x: { time: true, range: () => xRange } },
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: 'time' },
        ...def.series.map((s, i) => ({
          label: s.label,
          stroke: colors[i % colors.length],
          width: 2,
          spanGaps: false,
          points: { show: s.values.length < 4 },
          value: (u, v) => (v === null || v === undefined ? '–' : def.format(v)),
        })),
      ],
      axes: [
        { stroke: axis, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor } },
        {
          stroke: axis,
          grid: { stroke: gridColor, width: 1 },
          ticks: { stroke: gridColor },
          size: 64,
          values: (u, vals) => vals.map((v) => (v === null ? '' : def.format(v))),
        },
      ],
    };
  }

  function draw(t) {
    const end = t.t.length ? t.t[t.t.length - 1] + t.bucket_s : Math.floor(t.now_ms / 1000);
    const start = t.t.length ? t.t[0] : end - 60;
    xRange = [Math.min(start, end - 60), end];
    const defs = chartDefs(t);
    for (const def of defs) {
      const data = [t.t, ...def.series.map((s) => s.values)];
      const labels = def.series.map((s) => s.label).join('|');
      let c = charts.get(def.id);
      if (!c) {
        const plot = h('div', { class: 'plot', role: 'img' });
        const note = h('p', { class: 'muted small chart-note' });
        const figure = h('figure', { class: 'chart', id: `chart-${def.id}` }, h('figcaption', {}, def.title), plot, note);
        grid.append(figure);
        c = { figure, plot, note, u: null, labels: null };
        charts.set(def.id, c);
      }
      const n = points(def.series);
      c.figure.dataset.points = String(n);
      c.figure.dataset.series = String(def.series.length);
      c.plot.setAttribute('aria-label', `${def.title}: ${def.series.length} series, ${n} data points over ${t.t.length} intervals of ${t.bucket_s} s`);
      c.note.textContent = def.series.length ? '' : 'No data yet.';
      if (c.u && c.labels === labels) {
        c.u.setData(data);
        continue;
      }
      c.u?.destroy();
      c.labels = labels;
      c.u = new window.uPlot(options(def, chartWidth(c.figure)), data, c.plot);
    }
  }

  async function refresh() {
    try {
      const t = await getJson(`/api/v1/dashboard/traffic?seconds=${range.value}`);
      if (!alive) return;
      last = t;
      error.hidden = true;
      renderTiles(t);
      draw(t);
      updated.textContent = `Updated ${new Date(t.now_ms).toLocaleTimeString([], { hour12: false })}, ${t.bucket_s} s intervals`;
      root.dataset.loaded = 'true';
    } catch (e) {
      if (!alive) return;
      error.hidden = false;
      error.textContent = `Could not load the traffic history: ${e.message}`;
    } finally {
      if (alive) timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function rebuild() {
    for (const c of charts.values()) {
      c.u?.destroy();
      c.u = null;
      c.labels = null;
    }
    if (last) draw(last);
  }

  range.addEventListener('change', () => {
    clearTimeout(timer);
    refresh();
  });
  const resize = new ResizeObserver(() => {
    for (const c of charts.values()) if (c.u) c.u.setSize({ width: chartWidth(c.figure), height: 200 });
  });
  resize.observe(grid);
  const scheme = window.matchMedia('(prefers-color-scheme: dark)');
  scheme.addEventListener('change', rebuild);
  refresh();
  return () => {
    alive = false;
    clearTimeout(timer);
    resize.disconnect();
    scheme.removeEventListener('change', rebuild);
    for (const c of charts.values()) c.u?.destroy();
  };
}
