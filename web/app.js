// The lab dashboard: a world map (d3-geo + world-atlas) with regions, edges, WAN links and live
// request flows, per-region cards with chaos buttons, uPlot charts and an event timeline, all fed
// by the lab's Server-Sent Events stream. The page holds no secret: its requests carry the
// HttpOnly session cookie the login link set.

const PALETTE = [
  '#4fc3f7',
  '#ffb74d',
  '#ba68c8',
  '#81c784',
  '#f06292',
  '#fff176',
  '#4db6ac',
  '#9575cd',
  '#e57373',
  '#a1887f',
];
const $ = (sel) => document.querySelector(sel);
const svgNS = 'http://www.w3.org/2000/svg';
const fmt = (v, d = 0) => (v === undefined || v === null || Number.isNaN(v) ? '–' : Number(v).toFixed(d));

let state = null;
let projection = null;
let charts = null;

function el(tag, attrs = {}, parent) {
  const e = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

const SIGNED_OUT =
  'This browser is no longer signed in (the lab restarted?): open the dashboard link npm start printed.';

async function chaos(body) {
  const res = await fetch('/api/chaos', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status === 401) alert(SIGNED_OUT);
  else if (!res.ok) {
    const j = await res.json().catch(() => ({}));
    alert(`chaos failed: ${j.error ? j.error.message : res.status}`);
  }
}

async function traffic(on, ratePerS) {
  const res = await fetch('/api/traffic', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ on, ratePerS }),
  });
  if (res.status === 401) alert(SIGNED_OUT);
}

// ---- map ----
const layers = {};
async function initMap() {
  const svg = $('#map');
  projection = d3.geoNaturalEarth1().scale(175).translate([470, 265]);
  const path = d3.geoPath(projection);
  layers.base = el('g', {}, svg);
  el('path', { class: 'graticule', d: path(d3.geoGraticule10()) }, layers.base);
  try {
    const world = await (await fetch('/vendor/countries-110m.json')).json();
    const land = topojson.feature(world, world.objects.countries);
    for (const f of land.features) el('path', { class: 'land', d: path(f) }, layers.base);
  } catch (e) {
    console.warn('map data', e);
  }
  layers.wan = el('g', {}, svg);
  layers.flows = el('g', {}, svg);
  layers.regions = el('g', {}, svg);
}

function xy(r) {
  return projection([r.lon, r.lat]);
}

/** A bowed arc between two points so flows in both directions do not overlap. */
function arc(a, b, bow) {
  const [x1, y1] = a;
  const [x2, y2] = b;
  const mx = (x1 + x2) / 2;
  const my = (y1 + y2) / 2;
  const dx = x2 - x1;
  const dy = y2 - y1;
  const len = Math.hypot(dx, dy) || 1;
  const cx = mx - (dy / len) * len * bow;
  const cy = my + (dx / len) * len * bow;
  return `M${x1},${y1} Q${cx},${cy} ${x2},${y2}`;
}

function drawMap() {
  if (!projection || !state) return;
  const byId = Object.fromEntries(state.regions.map((r) => [r.id, r]));
  layers.wan.replaceChildren();
  const seen = new Set();
  for (const l of state.links) {
    const key = [l.from, l.to].sort().join('|');
    if (seen.has(key)) continue;
    seen.add(key);
    const back = state.links.find((x) => x.from === l.to && x.to === l.from);
    const cut = l.cut || back?.cut;
    el(
      'path',
      { class: `wan${cut ? ' cut' : ''}`, d: arc(xy(byId[l.from]), xy(byId[l.to]), 0.12) },
      layers.wan,
    );
  }
  layers.flows.replaceChildren();
  // Users: each city's line goes to its nearest live edge (great circle), as the generator does.
  const liveEdges = state.regions.filter((r) => r.edge === 'up');
  for (const c of state.cities || []) {
    let best = null;
    let bestD = Number.POSITIVE_INFINITY;
    for (const r of liveEdges) {
      const d = d3.geoDistance([c.lon, c.lat], [r.lon, r.lat]);
      if (d < bestD) {
        bestD = d;
        best = r;
      }
    }
    const p = xy(c);
    if (best) el('path', { class: 'user-line', d: arc(p, xy(best), 0.05) }, layers.flows);
    el('circle', { class: 'city', cx: p[0], cy: p[1], r: 2.4 }, layers.flows);
  }
  for (const [k, rps] of Object.entries(state.stats.flows)) {
    const [from, to] = k.split('>');
    if (!byId[from] || !byId[to] || rps <= 0) continue;
    const w = Math.min(9, 1.5 + Math.sqrt(rps) * 1.6);
    if (from === to) {
      const [x, y] = xy(byId[from]);
      el(
        'circle',
        { class: 'flow', cx: x, cy: y, r: 13 + w, 'stroke-width': w, 'data-flow': k },
        layers.flows,
      );
    } else {
      el(
        'path',
        { class: 'flow', d: arc(xy(byId[from]), xy(byId[to]), -0.18), 'stroke-width': w, 'data-flow': k },
        layers.flows,
      );
    }
  }
  layers.regions.replaceChildren();
  for (const r of state.regions) {
    const [x, y] = xy(r);
    el('circle', { class: `edge-ring ${r.edge}`, cx: x, cy: y, r: 11 }, layers.regions);
    el('circle', { class: `node ${r.node}`, cx: x, cy: y, r: 6.5, 'data-region': r.id }, layers.regions);
    const right = x > 760;
    const lx = right ? x - 15 : x + 15;
    const anchor = right ? 'end' : 'start';
    const t = el('text', { class: 'label', x: lx, y: y - 4, 'text-anchor': anchor }, layers.regions);
    t.textContent = r.id;
    const s = el('text', { class: 'sublabel', x: lx, y: y + 10, 'text-anchor': anchor }, layers.regions);
    const rr = state.stats.regions[r.id] || {};
    s.textContent = `${fmt(rr.servedRps, 1)} req/s served · p99 ${fmt(rr.p99Ms)} ms`;
  }
}

// ---- region cards ----
function badge(text, cls) {
  return `<span class="badge ${cls}">${text}</span>`;
}

function drawRegions() {
  const box = $('#regions');
  const cutAll = (id) => state.links.filter((l) => l.from === id || l.to === id).every((l) => l.cut);
  for (const r of state.regions) {
    let card = box.querySelector(`[data-region="${r.id}"]`);
    if (!card) {
      card = document.createElement('div');
      card.className = 'region';
      card.dataset.region = r.id;
      card.innerHTML = `<div class="top"><span class="name"></span><span class="where"></span></div>
        <div class="badges"></div><div class="metrics"></div>
        <div class="actions">
          <button class="danger" data-act="kill" data-testid="kill-${r.id}">Kill node</button>
          <button class="danger" data-act="kill-edge" data-testid="kill-edge-${r.id}">Kill node + edge</button>
          <button data-act="restart" data-testid="restart-${r.id}">Restart</button>
          <button data-act="isolate" data-testid="isolate-${r.id}">Partition</button>
          <button data-act="heal" data-testid="heal-${r.id}">Heal</button>
          <button data-act="skew" data-testid="skew-${r.id}">Skew clock</button>
        </div>`;
      card.querySelector('.name').textContent = r.id;
      card.querySelector('.where').textContent = `${r.name} · ${r.edgeUrl.replace('http://', '')}`;
      card.addEventListener('click', (ev) => {
        const act = ev.target.dataset?.act;
        if (!act) return;
        if (act === 'kill') chaos({ action: 'kill', region: r.id });
        if (act === 'kill-edge') chaos({ action: 'kill', region: r.id, withEdge: true });
        if (act === 'restart') chaos({ action: 'restart', region: r.id });
        if (act === 'isolate') chaos({ action: 'partition', a: r.id });
        if (act === 'heal') chaos({ action: 'heal', a: r.id });
        if (act === 'skew') {
          const ms = prompt(`Offset ${r.id}'s clock by how many ms? (0 to reset)`, '2000');
          if (ms !== null && ms.trim() !== '' && Number.isFinite(Number(ms)))
            chaos({ action: 'skew', region: r.id, ms: Number(ms) });
        }
      });
      box.appendChild(card);
    }
    const rr = state.stats.regions[r.id] || {};
    card.classList.toggle('node-down', r.node === 'down');
    card.dataset.node = r.node;
    card.dataset.edge = r.edge;
    card.dataset.servedRps = fmt(rr.servedRps, 2);
    const isolated = state.links.length > 0 && cutAll(r.id);
    card.querySelector('.badges').innerHTML =
      badge(`node ${r.node}`, r.node === 'up' ? 'up' : 'down') +
      badge(`edge ${r.edge}`, r.edge === 'up' ? 'up' : 'down') +
      (isolated ? badge('partitioned', 'warn') : '') +
      (r.skewMs ? badge(`clock ${r.skewMs > 0 ? '+' : ''}${r.skewMs} ms`, 'warn') : '');
    card.querySelector('.metrics').innerHTML = [
      ['served/s', fmt(rr.servedRps, 1), 'served-rps'],
      ['via edge/s', fmt(rr.edgeRps, 1), 'edge-rps'],
      ['p50 ms', fmt(rr.p50Ms), 'p50'],
      ['p99 ms', fmt(rr.p99Ms), 'p99'],
      ['conflicts', r.conflicts === undefined || r.conflicts === null ? '–' : fmt(r.conflicts), 'conflicts'],
    ]
      .map(
        ([k, v, id]) => `<div><div class="v" data-metric="${id}">${v}</div><div class="k">${k}</div></div>`,
      )
      .join('');
    card.querySelector('[data-act="kill"]').disabled = r.node === 'down';
    card.querySelector('[data-act="kill-edge"]').disabled = r.node === 'down' && r.edge === 'down';
  }
}

function drawLinks() {
  const body = $('#links tbody');
  body.replaceChildren();
  for (const l of state.links) {
    const tr = document.createElement('tr');
    if (l.cut) tr.className = 'cut';
    const lag = l.lag || {};
    tr.innerHTML = `<td>${l.from} → ${l.to}</td><td>${fmt(l.oneWayMs)} ms</td><td>${fmt(lag.p50Ms)} ms</td><td>${fmt(lag.p99Ms)} ms</td><td></td>`;
    const b = document.createElement('button');
    b.textContent = l.cut ? 'heal' : 'cut';
    b.onclick = () =>
      chaos(l.cut ? { action: 'heal', a: l.from, b: l.to } : { action: 'partition', a: l.from, b: l.to });
    tr.lastChild.appendChild(b);
    body.appendChild(tr);
  }
}

/** Saga counts and the accounts' money total, as the first live region node reports them. */
function sagaSummary() {
  const r = state.regions.find((x) => x.node === 'up' && x.sagas?.sagas);
  if (!r) return '–';
  const { sagas, money } = r.sagas;
  const extra =
    sagas.compensated || sagas.stuck ? ` (${sagas.compensated} refunded, ${sagas.stuck} stuck)` : '';
  return `${sagas.completed} done${extra} · money ${money ? money.total : '–'}`;
}

function drawSummary() {
  const s = state.stats;
  const up = state.regions.filter((r) => r.node === 'up').length;
  const dnsAns = state.dns.answer ? state.dns.answer.join(', ') : 'no answer';
  $('#summary').innerHTML = [
    ['requests/s', fmt(s.totalRps, 1)],
    ['errors/s', fmt(s.errorRps, 2)],
    ['regions up', `${up}/${state.regions.length}`],
    ['GeoDNS app →', dnsAns],
    ['transfers', sagaSummary()],
    ['uptime', `${Math.round((state.nowMs - state.startedAtMs) / 1000)} s`],
  ]
    .map(([k, v]) => `<span><span class="k">${k}</span><b>${v}</b></span>`)
    .join('');
  $('#traffic-toggle').textContent = state.traffic.on ? 'Stop traffic' : 'Start traffic';
  if (document.activeElement !== $('#rate') && state.traffic.on) $('#rate').value = state.traffic.ratePerS;
}

// ---- charts ----
function initCharts() {
  const ids = state.regions.map((r) => r.id);
  const series = [{}].concat(
    ids.map((id, i) => ({ label: id, stroke: PALETTE[i % PALETTE.length], width: 2 })),
  );
  const common = (title) => ({
    width: Math.max(300, $('.charts > div').clientWidth - 4),
    height: 170,
    series,
    axes: [
      {
        stroke: '#8593aa',
        grid: { stroke: '#1f2a3e' },
        space: 70,
        values: (_u, vals) => vals.map((v) => new Date(v * 1000).toLocaleTimeString([], { hour12: false })),
      },
      { stroke: '#8593aa', grid: { stroke: '#1f2a3e' }, label: title },
    ],
    legend: { live: false },
  });
  const empty = [[]].concat(ids.map(() => []));
  charts = {
    rps: new uPlot(common(''), empty, $('#chart-rps')),
    lat: new uPlot(common(''), empty, $('#chart-lat')),
  };
}

function updateCharts() {
  if (!charts) initCharts();
  const ids = state.regions.map((r) => r.id);
  const h = state.stats.history;
  const t = h.map((b) => b.sec);
  const rps = [t].concat(ids.map((id) => h.map((b) => b.served[id] || 0)));
  charts.rps.setData(rps);
  const lat = [t].concat(ids.map((id) => h.map((b) => (b.p99Ms[id] === undefined ? null : b.p99Ms[id]))));
  charts.lat.setData(lat);
}

// ---- timeline ----
function addEvents(list) {
  const ol = $('#events');
  for (const e of list) {
    const li = document.createElement('li');
    li.className = e.kind;
    const time = new Date(e.atMs).toLocaleTimeString();
    li.innerHTML = `<time>${time}</time><span class="kind">${e.kind}</span><span class="text"></span>`;
    li.querySelector('.text').textContent = e.text;
    ol.prepend(li);
  }
  while (ol.children.length > 200) ol.lastChild.remove();
}

function render() {
  drawSummary();
  drawRegions();
  drawLinks();
  drawMap();
  updateCharts();
}

function connect() {
  const es = new EventSource('/api/stream');
  es.addEventListener('open', () => {
    $('#conn').textContent = 'live';
    $('#conn').className = 'conn live';
  });
  es.addEventListener('error', () => {
    $('#conn').textContent = 'reconnecting…';
    $('#conn').className = 'conn';
  });
  es.addEventListener('state', (m) => {
    state = JSON.parse(m.data);
    render();
  });
  es.addEventListener('events', (m) => {
    $('#events').replaceChildren();
    addEvents(JSON.parse(m.data));
  });
  es.addEventListener('event', (m) => addEvents([JSON.parse(m.data)]));
}

$('#traffic-toggle').addEventListener('click', () => {
  const rate = Number($('#rate').value) || 8;
  traffic(!state?.traffic.on, rate);
});
$('#rate').addEventListener('change', () => {
  if (state?.traffic.on) traffic(true, Number($('#rate').value));
});

initMap().then(connect);
