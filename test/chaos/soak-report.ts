/** The soak's curve as a table, a CSV and a small SVG chart (hand-written: no charting dependency). */
import type { ProcessSample, WatchedProcess } from './soak-sampler.js';

export interface SoakSample {
  /** Seconds since the load started. */
  readonly tS: number;
  /** Same order as SoakData.processes; undefined when the process could not be read (gone). */
  readonly procs: readonly (ProcessSample | undefined)[];
  /** Calls meant to be sent during the interval ending here, and how they ended. */
  readonly calls: number;
  readonly errors: number;
  readonly p99Ms: number;
}

export interface SoakData {
  readonly processes: readonly WatchedProcess[];
  readonly samples: readonly SoakSample[];
}

const slug = (name: string) => name.replace(/[^A-Za-z0-9-]+/g, '_');

export function toCsv(data: SoakData): string {
  const header = ['t_s', 'calls', 'errors', 'p99_ms', ...data.processes.flatMap((p) => [`${slug(p.name)}_rss_mb`, `${slug(p.name)}_fds`])];
  const rows = data.samples.map((s) => [
    s.tS.toFixed(0), String(s.calls), String(s.errors), s.p99Ms.toFixed(1),
    ...s.procs.flatMap((p) => (p ? [p.rssMb.toFixed(1), String(p.fds)] : ['', ''])),
  ]);
  return [header, ...rows].map((r) => r.join(',')).join('\n') + '\n';
}

export function curveTable(data: SoakData): string {
  const short = (name: string) => name.replace(/^sidecar /, '').replace(/^control-plane /, '');
  const header = ['t min', 'calls', 'errors', 'p99 ms', ...data.processes.map((p) => `${short(p.name)} MB/fds`)];
  const rows = data.samples.map((s) => [
    (s.tS / 60).toFixed(1), String(s.calls), String(s.errors), s.p99Ms.toFixed(1),
    ...s.procs.map((p) => (p ? `${p.rssMb.toFixed(1)}/${p.fds}` : 'gone')),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w - 1) + ':').join(' | ')} |`, ...rows.map(line)].join('\n');
}

// ---- SVG ----

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#17becf'];
const W = 960;
const PANEL_H = 190;
const LEFT = 64;
const RIGHT = 230;
const TOP = 34;
const GAP = 56;

interface Line {
  readonly label: string;
  readonly color: string;
  readonly points: readonly (readonly [number, number])[];
}

/** 1, 2 or 5 times a power of ten, at least v: round axis maxima. */
function niceCeil(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function panel(y0: number, title: string, unit: string, lines: readonly Line[], maxX: number): string {
  const plotW = W - LEFT - RIGHT;
  const maxY = niceCeil(Math.max(0, ...lines.flatMap((l) => l.points.map((p) => p[1]))) * 1.1);
  const sx = (x: number) => LEFT + (maxX ? (x / maxX) * plotW : 0);
  const sy = (y: number) => y0 + PANEL_H - (y / maxY) * PANEL_H;
  const parts = [`<text x="${LEFT}" y="${y0 - 10}" font-size="14" font-weight="bold">${esc(title)}</text>`];
  for (let i = 0; i <= 4; i++) {
    const v = (maxY * i) / 4;
    parts.push(`<line x1="${LEFT}" x2="${LEFT + plotW}" y1="${sy(v)}" y2="${sy(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${LEFT - 6}" y="${sy(v) + 4}" font-size="11" text-anchor="end">${+v.toPrecision(3)}</text>`);
  }
  parts.push(`<text x="14" y="${y0 + PANEL_H / 2}" font-size="11" transform="rotate(-90 14 ${y0 + PANEL_H / 2})" text-anchor="middle">${esc(unit)}</text>`);
  const minutes = maxX / 60;
  const step = niceCeil(minutes / 8);
  for (let m = 0; m <= minutes + 1e-9; m += step) {
    parts.push(`<line x1="${sx(m * 60)}" x2="${sx(m * 60)}" y1="${y0 + PANEL_H}" y2="${y0 + PANEL_H + 4}" stroke="#333"/>`);
    parts.push(`<text x="${sx(m * 60)}" y="${y0 + PANEL_H + 16}" font-size="11" text-anchor="middle">${+m.toPrecision(3)} min</text>`);
  }
  parts.push(`<rect x="${LEFT}" y="${y0}" width="${plotW}" height="${PANEL_H}" fill="none" stroke="#333"/>`);
  lines.forEach((l, i) => {
    const pts = l.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${l.color}" stroke-width="1.6" points="${pts}"/>`);
    const ly = y0 + 10 + i * 16;
    parts.push(`<line x1="${W - RIGHT + 14}" x2="${W - RIGHT + 34}" y1="${ly}" y2="${ly}" stroke="${l.color}" stroke-width="3"/>`);
    parts.push(`<text x="${W - RIGHT + 40}" y="${ly + 4}" font-size="11">${esc(l.label)}</text>`);
  });
  return parts.join('\n');
}

export function toSvg(data: SoakData, title: string): string {
  const maxX = Math.max(0, ...data.samples.map((s) => s.tS));
  const perProcess = (pick: (p: ProcessSample) => number, kinds: readonly WatchedProcess['kind'][]) =>
    data.processes
      .map((proc, i) => ({ proc, i }))
      .filter(({ proc }) => kinds.includes(proc.kind))
      .map(({ proc, i }, n): Line => ({
        label: proc.name,
        color: COLORS[n % COLORS.length]!,
        points: data.samples.flatMap((s) => (s.procs[i] ? [[s.tS, pick(s.procs[i]!)] as const] : [])),
      }));
  const interval = data.samples.length > 1 ? data.samples[1]!.tS - data.samples[0]!.tS : 10;
  const traffic: Line[] = [
    { label: 'calls/s', color: COLORS[0]!, points: data.samples.map((s) => [s.tS, s.calls / interval] as const) },
    { label: 'errors per interval', color: '#d62728', points: data.samples.map((s) => [s.tS, s.errors] as const) },
  ];
  const panels = [
    panel(TOP + 20, 'Resident memory', 'MB', perProcess((p) => p.rssMb, ['sidecar', 'control-plane', 'etcd']), maxX),
    panel(TOP + 20 + (PANEL_H + GAP), 'Open file descriptors', 'fds', perProcess((p) => p.fds, ['sidecar', 'control-plane', 'etcd']), maxX),
    panel(TOP + 20 + 2 * (PANEL_H + GAP), 'Load', 'per s / count', traffic, maxX),
  ];
  const h = TOP + 20 + 3 * (PANEL_H + GAP);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">`,
    `<rect width="${W}" height="${h}" fill="#fff"/>`,
    `<text x="${LEFT}" y="${TOP - 8}" font-size="16" font-weight="bold">${esc(title)}</text>`,
    ...panels,
    '</svg>',
    '',
  ].join('\n');
}
