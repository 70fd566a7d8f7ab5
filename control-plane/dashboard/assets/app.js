// The Remora mesh dashboard, in the browser. Plain ES module, no build step: `preact`,
// `preact/hooks` and `htm` resolve through the page's import map to /assets/*.mjs, served by the
// control plane from its node_modules (control-plane/dashboard/page.ts).
//
// It polls GET /api/mesh (a MeshView, control-plane/dashboard/mesh-view.ts) every 2 s and draws:
// the service graph with each edge's rps, success rate and p99; the edges as a table; every
// sidecar's applied config version and certificate expiry; the recent NACKs.
// data-testid attributes are for test/dashboard.test.ts.

import { h, render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';

const html = htm.bind(h);

const API = '/api/mesh';
const POLL_MS = 2000;
const FETCH_TIMEOUT_MS = 5000;
/** Certificates expiring sooner than this are highlighted. */
const EXPIRY_WARNING_MS = 60 * 60 * 1000;

// ---------------------------------------------------------------------------------------------
// Formatting

/** "12.3", "0.4", "250": one decimal below 100 rps. */
function formatRps(rps) {
  if (!Number.isFinite(rps)) return '—';
  return rps >= 100 ? rps.toFixed(0) : rps.toFixed(1);
}

/**
 * "99.5%". Rounded down, so a window with any failed call never shows as "100.0%"
 * (999 of 1000 is 99.9%, and 9999 of 10000 is 99.9% too, not a rounded-up 100.0%).
 */
function formatSuccess(rate) {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return '—';
  if (rate >= 1) return '100.0%';
  return `${(Math.floor(rate * 1000) / 10).toFixed(1)}%`;
}

/** "0.42 ms", "4.1 ms", "230 ms", "1.25 s". */
function formatLatency(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** The edge label: "12.3 rps · 99.5% · p99 4.1 ms". */
function edgeLabel(edge) {
  return `${formatRps(edge.rps)} rps · ${formatSuccess(edge.successRate)} · p99 ${formatLatency(edge.p99Ms)}`;
}

/** "45 s", "12 min", "3 h 05 min", "2 d 4 h" for a non-negative duration. */
function formatSpan(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return `${hours} h ${String(min % 60).padStart(2, '0')} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** "in 42 min" / "3 min ago", relative to `now` (the control plane's clock, not the browser's). */
function relative(iso, now) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return String(iso);
  const d = t - now;
  return d >= 0 ? `in ${formatSpan(d)}` : `${formatSpan(-d)} ago`;
}

/** "2025-06-01 12:34:56Z": UTC, so every viewer reads the same thing. */
function utc(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? String(iso) : new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** ok: every call succeeded; warn: ≥ 95%; bad: below; idle: no calls in the window. */
function health(successRate) {
  if (successRate === null || successRate === undefined) return 'idle';
  if (successRate >= 1) return 'ok';
  return successRate >= 0.95 ? 'warn' : 'bad';
}

function expiryState(iso, now) {
  if (iso === null || iso === undefined) return 'none';
  const left = Date.parse(iso) - now;
  if (Number.isNaN(left)) return 'none';
  if (left <= 0) return 'expired';
  return left < EXPIRY_WARNING_MS ? 'expiring' : 'ok';
}

const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

// ---------------------------------------------------------------------------------------------
// Graph layout: deterministic, services in columns by call depth.

const NODE_W = 160;
const NODE_H = 46;
const COL_GAP = 230; // room for an edge label between columns
const ROW_GAP = 58;
const PAD = 16; // around everything drawn
const LABEL_CHAR_W = 6.7; // 11 px monospace
const LABEL_H = 18;

/**
 * Columns by call depth: callers on the left, the services they call to the right. Depth is the
 * longest call chain reaching a service, after dropping the edges that close a cycle. Those are
 * found by a depth-first search that starts from the services nobody calls, then (for cycles
 * without such an entry) from services without registered instances (clients, such as a
 * --register=false sidecar), then from those that call more than they are called, then by name:
 * the same view always gives the same picture. Within a column, by name (services without any
 * edge last).
 */
function layoutColumns(names, edges, instances) {
  const out = new Map(names.map((n) => [n, []]));
  const indegree = new Map(names.map((n) => [n, 0]));
  for (const e of edges) {
    if (e.source === e.destination || out.get(e.source).includes(e.destination)) continue;
    out.get(e.source).push(e.destination);
    indegree.set(e.destination, indegree.get(e.destination) + 1);
  }
  for (const targets of out.values()) targets.sort(byName);

  const state = new Map(); // unset: unseen, 1: on the DFS stack, 2: done
  const forward = new Map(names.map((n) => [n, []]));
  const postorder = [];
  const visit = (root) => {
    const stack = [[root, 0]];
    state.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      const targets = out.get(node);
      if (i === targets.length) {
        state.set(node, 2);
        postorder.push(node);
        stack.pop();
        continue;
      }
      top[1]++;
      const next = targets[i];
      if (state.get(next) === 1) continue; // a back edge closes a cycle: not used for depth
      forward.get(node).push(next);
      if (!state.has(next)) {
        state.set(next, 1);
        stack.push([next, 0]);
      }
    }
  };
  const entryRank = (n) => [
    indegree.get(n) === 0 ? 0 : 1,
    (instances.get(n) ?? 0) === 0 ? 0 : 1,
    indegree.get(n) - out.get(n).length,
  ];
  const starts = [...names].sort((a, b) => {
    const ra = entryRank(a);
    const rb = entryRank(b);
    return ra[0] - rb[0] || ra[1] - rb[1] || ra[2] - rb[2] || byName(a, b);
  });
  for (const n of starts) if (!state.has(n)) visit(n);

  // Reverse postorder is a topological order of the graph without its back edges.
  const depth = new Map(names.map((n) => [n, 0]));
  for (const n of postorder.reverse()) {
    for (const m of forward.get(n)) depth.set(m, Math.max(depth.get(m), depth.get(n) + 1));
  }
  // Services with no edges at all go to the end of their column, out of the way.
  const connected = new Set(edges.flatMap((e) => [e.source, e.destination]));
  const columns = [];
  for (const n of [...names.filter((n) => connected.has(n)), ...names.filter((n) => !connected.has(n))]) (columns[depth.get(n)] ??= []).push(n);
  return columns.filter(Boolean);
}

const fmt = (n) => Math.round(n * 10) / 10;
const cubic = (p) => `M${fmt(p[0])},${fmt(p[1])} C${fmt(p[2])},${fmt(p[3])} ${fmt(p[4])},${fmt(p[5])} ${fmt(p[6])},${fmt(p[7])}`;
/** The point of a cubic Bézier at t = 0.5 (where its label goes). */
const mid = (p) => ({ lx: (p[0] + 3 * p[2] + 3 * p[4] + p[6]) / 8, ly: (p[1] + 3 * p[3] + 3 * p[5] + p[7]) / 8 });

/** The path of one edge and the middle of it. */
function edgePath(edge, nodes) {
  const s = nodes.get(edge.source);
  const d = nodes.get(edge.destination);
  if (s === d) {
    // A service calling itself: a loop over the top of its node.
    const x1 = s.x + NODE_W * 0.3;
    const x2 = s.x + NODE_W * 0.7;
    return { d: cubic([x1, s.y, x1 - 10, s.y - 46, x2 + 10, s.y - 46, x2, s.y - 2]), lx: s.x + NODE_W / 2, ly: s.y - 44 };
  }
  const between = (lo, hi) => [...nodes.values()].filter((n) => n.column >= lo && n.column <= hi);
  if (d.column > s.column + 1) {
    // Forward past other columns: an arc over the nodes in between, higher the more it spans.
    const top = Math.min(...between(s.column, d.column).map((n) => n.y));
    const y = top - 34 - 26 * (d.column - s.column - 2);
    const x1 = s.x + NODE_W;
    const y1 = s.y + NODE_H / 2;
    const x2 = d.x - 2;
    const y2 = d.y + NODE_H / 2;
    // Control points placed so that the middle of the curve (where the label goes) is at y.
    const c = (8 * y - y1 - y2) / 6;
    const p = [x1, y1, x1 + COL_GAP / 2, c, x2 - COL_GAP / 2, c, x2, y2];
    return { d: cubic(p), ...mid(p) };
  }
  if (d.column > s.column) {
    // Forward to the next column: right side of the caller to the left side of the callee.
    const x1 = s.x + NODE_W;
    const y1 = s.y + NODE_H / 2;
    const x2 = d.x - 2;
    const y2 = d.y + NODE_H / 2;
    const c = (x2 - x1) / 2;
    const p = [x1, y1, x1 + c, y1, x2 - c, y2, x2, y2];
    return { d: cubic(p), ...mid(p) };
  }
  if (d.column === s.column) {
    // Within a column: a bulge to the right, side to side.
    const x1 = s.x + NODE_W;
    const x2 = d.x + NODE_W + 2;
    const p = [x1, s.y + NODE_H / 2, x1 + 80, s.y + NODE_H / 2, x2 + 80, d.y + NODE_H / 2, x2, d.y + NODE_H / 2];
    return { d: cubic(p), ...mid(p) };
  }
  // Backward (a call that closes a cycle): under the nodes in between (they are drawn over it),
  // deeper the more columns it spans, so such edges and their labels do not sit on each other.
  const bottom = Math.max(...between(d.column, s.column).map((n) => n.y + NODE_H));
  const y = bottom + 24 + 28 * (s.column - d.column);
  const p = [s.x + NODE_W / 2 + 12, s.y + NODE_H, s.x + NODE_W / 2 + 12, y, d.x + NODE_W / 2 - 12, y, d.x + NODE_W / 2 - 12, d.y + NODE_H + 2];
  return { d: cubic(p), ...mid(p) };
}

const overlap = (a, b) => Math.abs(a.lx - b.lx) * 2 < a.w + b.w && Math.abs(a.ly - b.ly) < LABEL_H + 2;

/** Node positions, edge paths and label positions, and the box that holds them all. */
function layoutGraph(services, edges) {
  const instances = new Map(services.map((s) => [s.name, s.instances]));
  const names = new Set(services.map((s) => s.name));
  for (const e of edges) names.add(e.source).add(e.destination);
  const columns = layoutColumns([...names].sort(byName), edges, instances);

  const maxRows = Math.max(1, ...columns.map((c) => c.length));
  const colHeight = (rows) => rows * NODE_H + (rows - 1) * ROW_GAP;
  const nodes = new Map();
  columns.forEach((col, ci) => {
    const top = (colHeight(maxRows) - colHeight(col.length)) / 2;
    col.forEach((name, ri) => {
      nodes.set(name, { name, instances: instances.get(name) ?? 0, column: ci, x: ci * (NODE_W + COL_GAP), y: top + ri * (NODE_H + ROW_GAP) });
    });
  });

  const sorted = [...edges].sort((a, b) => byName(a.source, b.source) || byName(a.destination, b.destination));
  const placed = [];
  const drawn = sorted.map((edge) => {
    const geometry = edgePath(edge, nodes);
    const label = edgeLabel(edge);
    const at = { lx: geometry.lx, ly: geometry.ly, w: label.length * LABEL_CHAR_W + 12 };
    // A label that would cover another moves up or down, a row at a time, to the nearest free spot.
    const base = at.ly;
    for (let i = 1; i <= 20 && placed.some((o) => overlap(o, at)); i++) at.ly = base + (i % 2 ? -1 : 1) * Math.ceil(i / 2) * (LABEL_H + 4);
    placed.push(at);
    return { edge, d: geometry.d, label, ...at };
  });

  const xs = [...[...nodes.values()].flatMap((n) => [n.x, n.x + NODE_W]), ...placed.flatMap((l) => [l.lx - l.w / 2, l.lx + l.w / 2])];
  const ys = [...[...nodes.values()].flatMap((n) => [n.y, n.y + NODE_H]), ...placed.flatMap((l) => [l.ly - LABEL_H / 2, l.ly + LABEL_H / 2])];
  const box = { x: Math.min(...xs) - PAD, y: Math.min(...ys) - PAD, w: Math.max(...xs) - Math.min(...xs) + 2 * PAD, h: Math.max(...ys) - Math.min(...ys) + 2 * PAD };
  return { nodes, edges: drawn, box };
}

// ---------------------------------------------------------------------------------------------
// Components

function Graph({ view }) {
  if (view.services.length === 0 && view.edges.length === 0) {
    return html`<p class="empty" data-testid="graph-empty">No services yet: start a sidecar and it shows up here.</p>`;
  }
  const { nodes, edges, box } = layoutGraph(view.services, view.edges);
  return html`
    <svg class="graph" data-testid="graph" viewBox="${fmt(box.x)} ${fmt(box.y)} ${fmt(box.w)} ${fmt(box.h)}" width=${fmt(box.w)}
         role="img" aria-label="Service graph: ${edges.length} edges between ${nodes.size} services">
      <defs>
        ${['ok', 'warn', 'bad', 'idle'].map((k) => html`
          <marker key=${k} id="arrow-${k}" class="arrow ${k}" viewBox="0 0 10 10" refX="9" refY="5"
                  markerWidth="7" markerHeight="7" markerUnits="userSpaceOnUse" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" />
          </marker>`)}
      </defs>
      <g class="edges">
        ${edges.map(({ edge: e, d }) => {
          const k = health(e.successRate);
          const w = 1.5 + Math.min(4, Math.log10(1 + Math.max(0, e.rps)) * 1.5);
          return html`<path key=${`${e.source}\u2192${e.destination}`} class="edge-line ${k}" d=${d}
                            stroke-width=${fmt(w)} marker-end="url(#arrow-${k})" />`;
        })}
      </g>
      <g class="nodes">
        ${[...nodes.values()].map((n) => html`
          <g key=${n.name} class="node" data-testid="node" data-service=${n.name} transform="translate(${fmt(n.x)},${fmt(n.y)})">
            <rect width=${NODE_W} height=${NODE_H} rx="8" />
            <text class="node-name" x=${NODE_W / 2} y="19" text-anchor="middle">${n.name}</text>
            <text class="node-sub" x=${NODE_W / 2} y="35" text-anchor="middle">
              ${n.instances === 0 ? 'no registered instances' : plural(n.instances, 'instance', 'instances')}
            </text>
          </g>`)}
      </g>
      <g class="labels">
        ${edges.map(({ edge: e, label, lx, ly, w }) => html`
          <g key=${`${e.source}\u2192${e.destination}`} class="edge ${health(e.successRate)}" data-testid="edge"
             data-source=${e.source} data-destination=${e.destination} transform="translate(${fmt(lx)},${fmt(ly)})">
            <title>${e.source} → ${e.destination}: ${e.requests} calls in the last ${view.windowSeconds} s</title>
            <rect x=${fmt(-w / 2)} y=${-LABEL_H / 2} width=${fmt(w)} height=${LABEL_H} rx="4" />
            <text data-testid="edge-label" text-anchor="middle" y="4">${label}</text>
          </g>`)}
      </g>
    </svg>`;
}

function EdgeTable({ view }) {
  const edges = [...view.edges].sort((a, b) => byName(a.source, b.source) || byName(a.destination, b.destination));
  if (edges.length === 0) {
    return html`<p class="empty" data-testid="edges-empty">No calls between services in the last ${view.windowSeconds} s.</p>`;
  }
  return html`
    <table class="edges-table">
      <thead><tr><th>From</th><th>To</th><th class="num">Requests/s</th><th class="num">Success</th><th class="num">p99</th><th class="num">Calls in window</th></tr></thead>
      <tbody>
        ${edges.map((e) => html`
          <tr key=${`${e.source}\u2192${e.destination}`} data-testid="edge-row" data-source=${e.source} data-destination=${e.destination}>
            <td>${e.source}</td>
            <td>${e.destination}</td>
            <td class="num" data-testid="edge-rps">${formatRps(e.rps)}</td>
            <td class="num"><span class="rate ${health(e.successRate)}" data-testid="edge-success">${formatSuccess(e.successRate)}</span></td>
            <td class="num" data-testid="edge-p99">${formatLatency(e.p99Ms)}</td>
            <td class="num" data-testid="edge-requests">${e.requests}</td>
          </tr>`)}
      </tbody>
    </table>`;
}

function SidecarTable({ view, now }) {
  const rows = [...view.sidecars].sort(
    (a, b) => byName(a.namespace, b.namespace) || byName(a.service, b.service) || byName(a.instanceId, b.instanceId),
  );
  if (rows.length === 0) return html`<p class="empty" data-testid="sidecars-empty">No sidecars connected.</p>`;
  return html`
    <table class="sidecars">
      <thead><tr><th>Service</th><th>Instance</th><th>Replica</th><th>Applied config</th><th>Certificate expires</th><th>Last NACK</th></tr></thead>
      <tbody>
        ${rows.map((s) => {
          const current = s.appliedVersion === view.configVersion;
          const exp = expiryState(s.certificateExpiry, now);
          return html`
            <tr key=${`${s.namespace}/${s.service}/${s.instanceId}`} data-testid="sidecar-row"
                data-namespace=${s.namespace} data-service=${s.service} data-instance=${s.instanceId}>
              <td><span class="ns">${s.namespace}/</span>${s.service}</td>
              <td class="mono">${s.instanceId}</td>
              <td class="mono">${s.replica}</td>
              <td>
                <span class="mono" data-testid="applied-version">${s.appliedVersion || '—'}</span>
                ${' '}<span class="badge ${current ? 'ok' : 'warn'}" data-testid="version-state">${current ? 'current' : 'behind'}</span>
              </td>
              <td class="expiry ${exp}" data-testid="cert-expiry" data-expiry-state=${exp} data-expiry=${s.certificateExpiry ?? ''}
                  title=${s.certificateExpiry ? `${s.certificateExpiry} (highlighted within 1 h of expiry)` : 'no certificate'}>
                ${s.certificateExpiry === null
                  ? html`<span class="muted">no certificate</span>`
                  : html`<span class="rel">${exp === 'expired' ? `expired ${relative(s.certificateExpiry, now)}` : relative(s.certificateExpiry, now)}</span>
                         <span class="abs">${utc(s.certificateExpiry)}</span>`}
              </td>
              <td data-testid="last-nack">
                ${s.lastNack
                  ? html`<span class="mono">${s.lastNack.version}</span> <span class="muted">${relative(s.lastNack.at, now)}</span>`
                  : html`<span class="muted">—</span>`}
              </td>
            </tr>`;
        })}
      </tbody>
    </table>`;
}

function Nacks({ view, now }) {
  if (view.nacks.length === 0) return html`<p class="empty" data-testid="nacks-empty">No NACKs: every sidecar applied every config it was sent.</p>`;
  return html`
    <ol class="nacks">
      ${view.nacks.map((n, i) => html`
        <li key=${`${n.at}|${n.sidecar}|${n.version}|${i}`} data-testid="nack" data-sidecar=${n.sidecar} data-version=${n.version}>
          <div class="nack-head">
            <span class="mono">${n.sidecar}</span>
            <span>rejected config <span class="mono">${n.version}</span></span>
            <span class="muted" title=${n.at}>${relative(n.at, now)} (${utc(n.at)})</span>
          </div>
          <ul class="nack-errors">
            ${n.errors.map((e, j) => html`<li key=${j} data-testid="nack-error">${e}</li>`)}
          </ul>
        </li>`)}
    </ol>`;
}

function Summary({ view }) {
  const rps = view.edges.reduce((sum, e) => sum + e.rps, 0);
  const calls = view.edges.reduce((sum, e) => sum + e.requests, 0);
  const ok = view.edges.reduce((sum, e) => sum + (e.successRate === null ? 0 : e.successRate * e.requests), 0);
  const overall = calls > 0 ? ok / calls : null;
  return html`
    <dl class="summary">
      <div><dt>Services</dt><dd data-testid="summary-services">${view.services.length}</dd></div>
      <div><dt>Sidecars</dt><dd data-testid="summary-sidecars">${view.sidecars.length}</dd></div>
      <div><dt>Requests/s</dt><dd>${formatRps(rps)}</dd></div>
      <div><dt>Success</dt><dd class="rate ${health(overall)}">${formatSuccess(overall)}</dd></div>
      <div><dt>Config version</dt><dd class="mono" data-testid="config-version">${view.configVersion}</dd></div>
    </dl>`;
}

function Status({ state }) {
  const { view, error, fetchedAt } = state;
  if (!view && !error) return html`<span class="status loading" data-testid="status" data-state="loading">connecting…</span>`;
  if (!view) return html`<span class="status error" data-testid="status" data-state="error">${API} unavailable: ${error} (retrying every ${POLL_MS / 1000} s)</span>`;
  if (error) {
    return html`<span class="status stale" data-testid="status" data-state="stale">
      stale: ${error}; showing data from ${new Date(fetchedAt).toLocaleTimeString()} (retrying)</span>`;
  }
  return html`<span class="status live" data-testid="status" data-state="live">live · ${utc(view.generatedAt)}</span>`;
}

/** Checks the fields the page relies on, so a wrong document is an error on the page, not a crash. */
function checkView(v) {
  const arrays = ['services', 'edges', 'sidecars', 'nacks'];
  if (!v || typeof v !== 'object') throw new Error('not a JSON object');
  for (const k of arrays) if (!Array.isArray(v[k])) throw new Error(`"${k}" is not an array`);
  return v;
}

function usePolledView() {
  const [state, setState] = useState({ view: null, error: null, fetchedAt: 0 });
  useEffect(() => {
    let stopped = false;
    let timer;
    let controller;
    const poll = async () => {
      controller = new AbortController();
      const timeout = setTimeout(() => controller.abort(new Error(`no answer in ${FETCH_TIMEOUT_MS / 1000} s`)), FETCH_TIMEOUT_MS);
      try {
        const res = await fetch(API, { cache: 'no-store', headers: { accept: 'application/json' }, signal: controller.signal });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        let body;
        try {
          body = await res.json();
        } catch {
          throw new Error('the answer is not JSON');
        }
        const view = checkView(body);
        if (!stopped) setState({ view, error: null, fetchedAt: Date.now() });
      } catch (err) {
        const reason = controller.signal.aborted && controller.signal.reason instanceof Error ? controller.signal.reason : err;
        if (!stopped) setState((s) => ({ ...s, error: reason instanceof Error ? reason.message : String(reason) }));
      } finally {
        clearTimeout(timeout);
        // The next poll is scheduled after this one ends: a slow control plane never gets a pile-up.
        if (!stopped) timer = setTimeout(poll, POLL_MS);
      }
    };
    poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
      controller?.abort();
    };
  }, []);
  return state;
}

function App() {
  const state = usePolledView();
  const { view } = state;
  // Relative times (certificate expiry, NACK age) use the control plane's clock.
  const now = view ? Date.parse(view.generatedAt) || Date.now() : Date.now();
  return html`
    <header>
      <h1><span class="logo" aria-hidden="true"></span>Remora mesh</h1>
      <${Status} state=${state} />
    </header>
    ${view && html`
      <main>
        <${Summary} view=${view} />
        <section>
          <h2>Service graph <span class="muted">last ${view.windowSeconds} s, as seen by the callers' sidecars</span></h2>
          <div class="graph-wrap"><${Graph} view=${view} /></div>
          <${EdgeTable} view=${view} />
        </section>
        <section>
          <h2>Sidecars <span class="muted">applied config and certificate; highlighted within 1 h of expiry</span></h2>
          <${SidecarTable} view=${view} now=${now} />
        </section>
        <section>
          <h2>Recent NACKs <span class="muted">configs a sidecar refused (it keeps its last good one)</span></h2>
          <${Nacks} view=${view} now=${now} />
        </section>
      </main>`}
    <footer class="muted">Polling <a href=${API}>${API}</a> every ${POLL_MS / 1000} s.</footer>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the "Loading…" placeholder
render(html`<${App} />`, root);
