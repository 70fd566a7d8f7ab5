/**
 * The rate sweep's chart as a standalone SVG, written by hand so the bench needs no plotting
 * dependency: latency (p99 solid, p50 dashed, log-scale y) against the achieved rate, one colour
 * per series (a scenario, or a scenario and case when the sweep had several).
 */

export interface ChartPoint {
  /** Achieved rate: successful operations per second. */
  readonly x: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface ChartSeries {
  readonly name: string;
  readonly points: readonly ChartPoint[];
}

export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
}

const WIDTH = 900;
const HEIGHT = 520;
const PLOT = { left: 80, top: 50, right: WIDTH - 250, bottom: HEIGHT - 70 };
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (n: number): string => (Math.round(n * 10) / 10).toString();

/** A round step (1, 2 or 5 × 10^k) giving about `target` ticks over [0, max]. */
function linearStep(max: number, target = 6): number {
  const raw = max / target;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * magnitude >= raw) return m * magnitude;
  return 10 * magnitude;
}

function label(v: number): string {
  if (v >= 1000) return `${num(v / 1000)}k`;
  if (v >= 1) return num(v);
  return String(Number(v.toPrecision(2)));
}

export function latencyChartSvg(series: readonly ChartSeries[], opts: ChartOptions): string {
  const points = series.flatMap((s) => s.points).filter((p) => p.x > 0 && p.p50Ms > 0 && p.p99Ms > 0);
  const maxX = Math.max(1, ...points.map((p) => p.x));
  const step = linearStep(maxX);
  const xMax = Math.ceil(maxX / step) * step;
  const ys = points.flatMap((p) => [p.p50Ms, p.p99Ms]);
  const lo = 10 ** Math.floor(Math.log10(ys.length ? Math.min(...ys) : 1));
  let hi = 10 ** Math.ceil(Math.log10(ys.length ? Math.max(...ys) : 10));
  if (hi <= lo) hi = lo * 10;

  const sx = (x: number): number => PLOT.left + (x / xMax) * (PLOT.right - PLOT.left);
  const sy = (y: number): number => PLOT.bottom - ((Math.log10(y) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (PLOT.bottom - PLOT.top);

  const out: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${(PLOT.left + PLOT.right) / 2}" y="25" text-anchor="middle" font-size="15">${esc(opts.title)}</text>`,
  ];

  out.push('<g class="grid" stroke="#e4e4e4">');
  const xTicks: number[] = [];
  for (let x = 0; x <= xMax + step / 2; x += step) xTicks.push(x);
  const yTicks: number[] = [];
  for (let decade = lo; decade < hi * 1.001; decade *= 10) {
    for (const m of [1, 2, 5]) if (decade * m <= hi * 1.001) yTicks.push(decade * m);
  }
  for (const x of xTicks) out.push(`<line x1="${num(sx(x))}" y1="${PLOT.top}" x2="${num(sx(x))}" y2="${PLOT.bottom}"/>`);
  for (const y of yTicks) out.push(`<line x1="${PLOT.left}" y1="${num(sy(y))}" x2="${PLOT.right}" y2="${num(sy(y))}"/>`);
  out.push('</g>');

  out.push('<g class="axes" stroke="black">');
  out.push(`<line x1="${PLOT.left}" y1="${PLOT.bottom}" x2="${PLOT.right}" y2="${PLOT.bottom}"/>`);
  out.push(`<line x1="${PLOT.left}" y1="${PLOT.top}" x2="${PLOT.left}" y2="${PLOT.bottom}"/>`);
  for (const x of xTicks) out.push(`<line x1="${num(sx(x))}" y1="${PLOT.bottom}" x2="${num(sx(x))}" y2="${PLOT.bottom + 5}"/>`);
  for (const y of yTicks) out.push(`<line x1="${PLOT.left - 5}" y1="${num(sy(y))}" x2="${PLOT.left}" y2="${num(sy(y))}"/>`);
  out.push('</g>');

  out.push('<g class="tick-labels">');
  for (const x of xTicks) out.push(`<text x="${num(sx(x))}" y="${PLOT.bottom + 20}" text-anchor="middle">${label(x)}</text>`);
  for (const y of yTicks) out.push(`<text x="${PLOT.left - 9}" y="${num(sy(y) + 4)}" text-anchor="end">${label(y)}</text>`);
  out.push('</g>');
  out.push(`<text x="${(PLOT.left + PLOT.right) / 2}" y="${HEIGHT - 25}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  out.push(`<text transform="translate(22 ${(PLOT.top + PLOT.bottom) / 2}) rotate(-90)" text-anchor="middle">latency, ms (log scale)</text>`);

  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const pts = [...s.points].filter((p) => p.x > 0 && p.p50Ms > 0 && p.p99Ms > 0).sort((a, b) => a.x - b.x);
    const line = (pick: (p: ChartPoint) => number): string => pts.map((p) => `${num(sx(p.x))},${num(sy(pick(p)))}`).join(' ');
    out.push(`<g class="series" data-series="${esc(s.name)}" stroke="${colour}" fill="none" stroke-width="2">`);
    out.push(`<polyline class="p99" points="${line((p) => p.p99Ms)}"/>`);
    out.push(`<polyline class="p50" stroke-dasharray="6 4" points="${line((p) => p.p50Ms)}"/>`);
    for (const p of pts) {
      const tip = `${s.name}: ${num(p.x)}/s, p50 ${p.p50Ms} ms, p99 ${p.p99Ms} ms`;
      out.push(`<circle cx="${num(sx(p.x))}" cy="${num(sy(p.p99Ms))}" r="3" fill="${colour}"><title>${esc(tip)}</title></circle>`);
      out.push(`<circle cx="${num(sx(p.x))}" cy="${num(sy(p.p50Ms))}" r="2.5" fill="white"><title>${esc(tip)}</title></circle>`);
    }
    out.push('</g>');
  });

  out.push('<g class="legend">');
  const lx = PLOT.right + 20;
  series.forEach((s, i) => {
    const y = PLOT.top + 10 + i * 20;
    out.push(`<line x1="${lx}" y1="${y}" x2="${lx + 24}" y2="${y}" stroke="${COLOURS[i % COLOURS.length]!}" stroke-width="3"/>`);
    out.push(`<text x="${lx + 30}" y="${y + 4}">${esc(s.name)}</text>`);
  });
  const ky = PLOT.top + 20 + series.length * 20;
  out.push(`<line x1="${lx}" y1="${ky}" x2="${lx + 24}" y2="${ky}" stroke="black" stroke-width="2"/>`);
  out.push(`<text x="${lx + 30}" y="${ky + 4}">p99</text>`);
  out.push(`<line x1="${lx}" y1="${ky + 20}" x2="${lx + 24}" y2="${ky + 20}" stroke="black" stroke-width="2" stroke-dasharray="6 4"/>`);
  out.push(`<text x="${lx + 30}" y="${ky + 24}">p50</text>`);
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n') + '\n';
}
