/**
 * The monitoring config in deploy/ against the metrics contract in deploy/monitoring/metric-names.ts:
 * every metric the Grafana dashboard queries is one the sidecar or control plane exports, every
 * label it selects or groups by exists on that metric (or is a scrape target label), histogram
 * series suffixes are only used on histograms, the dashboard uses the provisioned datasource, and
 * the Prometheus config scrapes the compose demo's control plane and sidecars. The PromQL reader
 * here is small and strict: it throws on syntax it does not know rather than skip it.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import {
  CONTROL_PLANE_METRICS,
  METRIC_LABELS,
  METRIC_TYPES,
  NODE_METRICS,
  SCRAPE_JOBS,
  SIDECAR_METRICS,
} from '../deploy/monitoring/metric-names.js';

const DASHBOARD_PATH = 'deploy/grafana/dashboards/remora-mesh.json';
const PROMETHEUS_PATH = 'deploy/prometheus/prometheus.yml';
const DATASOURCES_PATH = 'deploy/grafana/provisioning/datasources/prometheus.yml';
const DASHBOARD_PROVIDERS_PATH = 'deploy/grafana/provisioning/dashboards/remora.yml';

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;

// ------------------------------------------------------------------------------------------------
// A minimal PromQL reader: metric selectors, their label matchers, and grouping label lists.

const AGGREGATIONS = new Set([
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk',
  'quantile', 'limitk', 'limit_ratio',
]);
const FUNCTIONS = new Set([
  'abs', 'absent', 'absent_over_time', 'ceil', 'changes', 'clamp', 'clamp_max', 'clamp_min', 'day_of_month',
  'day_of_week', 'day_of_year', 'days_in_month', 'delta', 'deriv', 'exp', 'floor', 'histogram_avg',
  'histogram_count', 'histogram_fraction', 'histogram_quantile', 'histogram_stddev', 'histogram_stdvar',
  'histogram_sum', 'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join', 'label_replace', 'ln',
  'log2', 'log10', 'minute', 'month', 'predict_linear', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sort',
  'sort_desc', 'sqrt', 'time', 'timestamp', 'vector', 'year', 'avg_over_time', 'min_over_time',
  'max_over_time', 'sum_over_time', 'count_over_time', 'quantile_over_time', 'stddev_over_time',
  'stdvar_over_time', 'last_over_time', 'present_over_time', 'acos', 'acosh', 'asin', 'asinh', 'atan',
  'atanh', 'cos', 'cosh', 'sin', 'sinh', 'tan', 'tanh', 'deg', 'rad', 'pi',
]);
const GROUPING = new Set(['by', 'without']);
const MATCHING = new Set(['on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2', 'inf', 'nan']);

type Token =
  | { kind: 'ident'; text: string; pos: number }
  | { kind: 'string'; text: string; pos: number }
  | { kind: 'number'; text: string; pos: number }
  | { kind: 'punct'; text: string; pos: number };

export interface Selector {
  /** The series name as written, e.g. remora_request_duration_seconds_bucket. */
  readonly series: string;
  /** Labels named in its {...} matchers. */
  readonly matcherLabels: readonly string[];
}

export interface Grouping {
  /** by, without, on, ignoring, group_left or group_right. */
  readonly keyword: string;
  readonly labels: readonly string[];
  /** Indexes into selectors of the series the clause applies to. */
  readonly scope: readonly number[];
}

export interface ParsedQuery {
  readonly selectors: readonly Selector[];
  readonly groupings: readonly Grouping[];
}

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i++;
    } else if (c === '"' || c === "'" || c === '`') {
      const start = i++;
      while (i < expr.length && expr[i] !== c) i += expr[i] === '\\' && c !== '`' ? 2 : 1;
      if (i >= expr.length) throw new Error(`unterminated string at ${start} in: ${expr}`);
      tokens.push({ kind: 'string', text: expr.slice(start + 1, i), pos: start });
      i++;
    } else if (c === '[') {
      // A range or subquery, e.g. [5m], [$__rate_interval], [30m:1m]: durations, no names.
      const start = i;
      while (i < expr.length && expr[i] !== ']') i++;
      if (i >= expr.length) throw new Error(`unterminated [ at ${start} in: ${expr}`);
      if (!/^\[\s*(\$\{?\w+\}?|[0-9a-z]+)\s*(:\s*(\$\{?\w+\}?|[0-9a-z]+)?\s*)?\]$/.test(expr.slice(start, i + 1))) {
        throw new Error(`unexpected range ${expr.slice(start, i + 1)} in: ${expr}`);
      }
      i++;
    } else if (/[a-zA-Z_:]/.test(c)) {
      const m = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i))!;
      tokens.push({ kind: 'ident', text: m[0], pos: i });
      i += m[0].length;
    } else if (/[0-9.]/.test(c)) {
      const m = /^[0-9.][0-9a-zA-Z.]*([eE][+-]?[0-9]+)?/.exec(expr.slice(i))!;
      tokens.push({ kind: 'number', text: m[0], pos: i });
      i += m[0].length;
    } else if ('(){},'.includes(c)) {
      tokens.push({ kind: 'punct', text: c, pos: i });
      i++;
    } else if ('+-*/%^=!<>~@'.includes(c)) {
      const m = /^(==|!=|<=|>=|=~|!~|[-+*/%^=<>@])/.exec(expr.slice(i));
      if (!m) throw new Error(`unexpected ${JSON.stringify(c)} at ${i} in: ${expr}`);
      tokens.push({ kind: 'punct', text: m[0], pos: i });
      i += m[0].length;
    } else {
      throw new Error(`unexpected ${JSON.stringify(c)} at ${i} in: ${expr}`);
    }
  }
  return tokens;
}

/** Index of the token closing the bracket opened at tokens[open]. */
function closing(tokens: Token[], open: number, expr: string): number {
  const o = tokens[open]!.text;
  const cl = o === '(' ? ')' : '}';
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    if (tokens[i]!.kind !== 'punct') continue;
    if (tokens[i]!.text === o) depth++;
    else if (tokens[i]!.text === cl && --depth === 0) return i;
  }
  throw new Error(`unbalanced ${o} at ${tokens[open]!.pos} in: ${expr}`);
}

/** The identifiers in a parenthesized label list starting at tokens[open]; returns them and the index after ")". */
function labelList(tokens: Token[], open: number, expr: string): { labels: string[]; next: number } {
  if (tokens[open]?.text !== '(') throw new Error(`expected a label list at ${tokens[open]?.pos ?? 'end'} in: ${expr}`);
  const end = closing(tokens, open, expr);
  const labels: string[] = [];
  for (let i = open + 1; i < end; i++) {
    const t = tokens[i]!;
    if (t.kind === 'ident') labels.push(t.text);
    else if (t.text !== ',') throw new Error(`unexpected ${t.text} in label list at ${t.pos} in: ${expr}`);
  }
  return { labels, next: end + 1 };
}

/** Every metric selector in a PromQL expression, and every grouping/matching label list with the series it covers. */
export function parsePromQL(expr: string): ParsedQuery {
  const tokens = tokenize(expr);
  const selectors: { series: string; matcherLabels: string[]; at: number }[] = [];
  const groupings: { keyword: string; labels: string[]; from: number; to: number }[] = [];
  const consumed = new Set<number>(); // label-list tokens already read as part of a clause
  const consume = (from: number, to: number): void => {
    for (let k = from; k < to; k++) consumed.add(k);
  };
  for (let i = 0; i < tokens.length; i++) {
    if (consumed.has(i)) continue;
    const t = tokens[i]!;
    const next = tokens[i + 1];
    if (t.kind === 'punct' && t.text === '{') {
      throw new Error(`selector without a metric name at ${t.pos} in: ${expr}`);
    }
    if (t.kind !== 'ident') continue;
    if (AGGREGATIONS.has(t.text) && (next?.text === '(' || (next?.kind === 'ident' && GROUPING.has(next.text)))) {
      // sum by (l) (arg)  |  sum (arg) by (l)  |  sum (arg)
      let j = i + 1;
      let clause: { keyword: string; labels: string[] } | undefined;
      if (next.kind === 'ident') {
        const l = labelList(tokens, j + 1, expr);
        clause = { keyword: next.text, labels: l.labels };
        consume(j, l.next);
        j = l.next;
      }
      if (tokens[j]?.text !== '(') throw new Error(`expected ( after ${t.text} at ${t.pos} in: ${expr}`);
      const argEnd = closing(tokens, j, expr);
      const after = tokens[argEnd + 1];
      if (!clause && after?.kind === 'ident' && GROUPING.has(after.text)) {
        const l = labelList(tokens, argEnd + 2, expr);
        clause = { keyword: after.text, labels: l.labels };
        consume(argEnd + 1, l.next);
      }
      if (clause) groupings.push({ ...clause, from: j, to: argEnd });
      continue;
    }
    if (GROUPING.has(t.text)) throw new Error(`${t.text} outside an aggregation at ${t.pos} in: ${expr}`);
    if (MATCHING.has(t.text)) {
      // Vector matching applies to both sides of the operator; check against every series in the expression.
      if (next?.text === '(') {
        const l = labelList(tokens, i + 1, expr);
        groupings.push({ keyword: t.text, labels: l.labels, from: -1, to: Number.MAX_SAFE_INTEGER });
        consume(i + 1, l.next);
      }
      continue;
    }
    if (next?.text === '(') {
      if (!FUNCTIONS.has(t.text) && !AGGREGATIONS.has(t.text)) throw new Error(`unknown function ${t.text} at ${t.pos} in: ${expr}`);
      continue;
    }
    if (KEYWORDS.has(t.text)) continue;
    // A metric name, optionally with {label matchers}.
    const at = i;
    const matcherLabels: string[] = [];
    if (next?.text === '{') {
      const end = closing(tokens, i + 1, expr);
      for (let k = i + 2; k < end; ) {
        const name = tokens[k];
        const op = tokens[k + 1];
        const value = tokens[k + 2];
        if (name?.kind !== 'ident' || !['=', '!=', '=~', '!~'].includes(op?.text ?? '') || value?.kind !== 'string') {
          throw new Error(`bad label matcher at ${name?.pos ?? 'end'} in: ${expr}`);
        }
        matcherLabels.push(name.text);
        k += 3;
        if (tokens[k]?.text === ',') k++;
        else if (k !== end) throw new Error(`expected , or } at ${tokens[k]?.pos} in: ${expr}`);
      }
      i = end;
    }
    selectors.push({ series: t.text, matcherLabels, at });
  }
  return {
    selectors: selectors.map(({ series, matcherLabels }) => ({ series, matcherLabels })),
    groupings: groupings.map((g) => ({
      keyword: g.keyword,
      labels: g.labels,
      scope: selectors.flatMap((s, n) => (s.at > g.from && s.at < g.to ? [n] : [])),
    })),
  };
}

/** A Grafana template query: label_values(<selector>, <label>) or a plain PromQL expression. */
export function parseTemplateQuery(query: string): { query: ParsedQuery; label?: string } {
  const m = /^\s*label_values\(\s*(.*?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$/s.exec(query);
  if (m) return { query: parsePromQL(m[1]!), label: m[2]! };
  if (/^\s*(label_values|label_names|metrics|query_result)\(/.test(query)) {
    throw new Error(`template query form not understood: ${query}`);
  }
  return { query: parsePromQL(query) };
}

// ------------------------------------------------------------------------------------------------
// Checking a dashboard against the contract.

const KNOWN_METRICS = new Set([...SIDECAR_METRICS, ...CONTROL_PLANE_METRICS, ...NODE_METRICS]);

/** The base metric name and suffix of a series name (suffix only split off for a known histogram). */
export function baseMetric(series: string): { base: string; suffix: string } {
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (series.endsWith(suffix)) {
      const base = series.slice(0, -suffix.length);
      if (METRIC_TYPES[base] === 'histogram') return { base, suffix };
    }
  }
  return { base: series, suffix: '' };
}

/** Labels a series may carry: its own, `le` on a histogram bucket, and the target labels of every job exporting it. */
function allowedLabels(series: string): Set<string> {
  const { base, suffix } = baseMetric(series);
  const labels = new Set(METRIC_LABELS[base] ?? []);
  if (suffix === '_bucket') labels.add('le');
  labels.add('__name__');
  for (const job of Object.values(SCRAPE_JOBS)) {
    if (job.metrics.includes(base)) for (const l of job.targetLabels) labels.add(l);
  }
  return labels;
}

interface PanelLike {
  readonly title?: string;
  readonly type?: string;
  readonly datasource?: { readonly uid?: string } | string | null;
  readonly targets?: readonly { readonly expr?: string; readonly legendFormat?: string; readonly datasource?: { readonly uid?: string } }[];
  readonly panels?: readonly PanelLike[];
}

interface DashboardLike {
  readonly panels?: readonly PanelLike[];
  readonly templating?: { readonly list?: readonly { readonly name: string; readonly type: string; readonly query?: unknown; readonly definition?: string; readonly datasource?: { readonly uid?: string } }[] };
}

/** Every PromQL expression in a dashboard (panel targets, nested row panels, query variables), with where it came from. */
export function dashboardQueries(dashboard: DashboardLike): { where: string; expr: string; template: boolean; legend?: string }[] {
  const out: { where: string; expr: string; template: boolean; legend?: string }[] = [];
  const walk = (panels: readonly PanelLike[] | undefined): void => {
    for (const p of panels ?? []) {
      for (const [n, t] of (p.targets ?? []).entries()) {
        if (typeof t.expr === 'string' && t.expr.trim() !== '') {
          out.push({ where: `panel "${p.title}" target ${n}`, expr: t.expr, template: false, legend: t.legendFormat });
        }
      }
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query;
    if (typeof q === 'string') out.push({ where: `variable $${v.name}`, expr: q, template: true });
  }
  return out;
}

/** Problems with one query against the metrics contract (where: a prefix for the messages). */
export function checkQuery(where: string, expr: string, opts: { template?: boolean; legend?: string } = {}): string[] {
  const problems: string[] = [];
  let parsed: ParsedQuery;
  let templateLabel: string | undefined;
  try {
    if (opts.template) ({ query: parsed, label: templateLabel } = parseTemplateQuery(expr));
    else parsed = parsePromQL(expr);
  } catch (err) {
    return [`${where}: ${(err as Error).message}`];
  }
  if (parsed.selectors.length === 0 && !opts.template) problems.push(`${where}: no metric in ${expr}`);
  for (const s of parsed.selectors) {
    const { base, suffix } = baseMetric(s.series);
    if (!KNOWN_METRICS.has(base)) {
      problems.push(`${where}: unknown metric ${s.series}`);
      continue;
    }
    if (METRIC_TYPES[base] === 'histogram' && suffix === '') problems.push(`${where}: histogram ${base} used without _bucket/_sum/_count`);
    const allowed = allowedLabels(s.series);
    for (const l of s.matcherLabels) if (!allowed.has(l)) problems.push(`${where}: ${s.series} has no label ${l}`);
  }
  for (const g of parsed.groupings) {
    for (const n of g.scope) {
      const s = parsed.selectors[n]!;
      if (!KNOWN_METRICS.has(baseMetric(s.series).base)) continue;
      const allowed = allowedLabels(s.series);
      for (const l of g.labels) if (!allowed.has(l)) problems.push(`${where}: ${g.keyword} (${l}) but ${s.series} has no label ${l}`);
    }
  }
  if (templateLabel !== undefined) {
    for (const s of parsed.selectors) {
      if (KNOWN_METRICS.has(baseMetric(s.series).base) && !allowedLabels(s.series).has(templateLabel)) {
        problems.push(`${where}: label_values of ${templateLabel}, which ${s.series} does not have`);
      }
    }
  }
  // A legend may only name labels some series in the query has.
  const legendLabels = [...(opts.legend ?? '').matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g)].map((m) => m[1]!);
  if (parsed.selectors.some((s) => !KNOWN_METRICS.has(baseMetric(s.series).base))) return problems; // already reported
  const union = new Set(parsed.selectors.flatMap((s) => [...allowedLabels(s.series)]));
  for (const l of legendLabels) if (!union.has(l)) problems.push(`${where}: legend uses {{${l}}}, a label no series in the query has`);
  return problems;
}

/** Problems with a dashboard against the metrics contract; empty when it conforms. */
export function checkDashboard(dashboard: DashboardLike): string[] {
  return dashboardQueries(dashboard).flatMap(({ where, expr, template, legend }) => checkQuery(where, expr, { template, legend }));
}

// ------------------------------------------------------------------------------------------------

function readDashboard(): DashboardLike & Record<string, unknown> {
  return JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8'));
}

function readYaml(path: string): any {
  return parseYaml(readFileSync(path, 'utf8'));
}

function allPanels(panels: readonly PanelLike[] | undefined): PanelLike[] {
  return (panels ?? []).flatMap((p) => [p, ...allPanels(p.panels)]);
}

test('the metric lists are disjoint, typed, labelled, and follow the naming rules', (t) => {
  const all = [...SIDECAR_METRICS, ...CONTROL_PLANE_METRICS, ...NODE_METRICS];
  t.is(new Set(all).size, all.length, 'a name is in two lists');
  t.deepEqual(Object.keys(METRIC_LABELS).sort(), [...all].sort());
  t.deepEqual(Object.keys(METRIC_TYPES).sort(), [...all].sort());
  for (const m of [...SIDECAR_METRICS, ...CONTROL_PLANE_METRICS]) {
    t.regex(m, /^remora_[a-z0-9_]+$/);
    t.is(m.startsWith('remora_cp_'), CONTROL_PLANE_METRICS.includes(m), `${m}: remora_cp_ prefix iff control plane`);
    t.is(m.endsWith('_total'), METRIC_TYPES[m] === 'counter', `${m}: _total iff counter`);
    for (const s of HISTOGRAM_SUFFIXES) t.false(m.endsWith(s), `${m}: base names carry no ${s}`);
  }
  const targetLabels = new Set(Object.values(SCRAPE_JOBS).flatMap((j) => j.targetLabels));
  for (const [m, labels] of Object.entries(METRIC_LABELS)) {
    t.is(new Set(labels).size, labels.length, `${m}: duplicate label`);
    for (const l of labels) {
      t.false(targetLabels.has(l), `${m}: label ${l} would clash with a target label`);
      t.not(l, 'le');
    }
  }
  for (const m of all) t.true(Object.values(SCRAPE_JOBS).some((j) => j.metrics.includes(m)), `${m}: no job exports it`);
});

test('the PromQL reader finds metrics, matcher labels and grouping scopes', (t) => {
  const q = parsePromQL(
    'histogram_quantile(0.99, sum by (destination, le) (rate(remora_request_duration_seconds_bucket{direction="$direction", destination=~"$service"}[$__rate_interval])))',
  );
  t.deepEqual(q.selectors, [{ series: 'remora_request_duration_seconds_bucket', matcherLabels: ['direction', 'destination'] }]);
  t.deepEqual(q.groupings, [{ keyword: 'by', labels: ['destination', 'le'], scope: [0] }]);

  const r = parsePromQL('sum(rate(a_total{x="1"}[5m])) by (x) / on (x) group_left max without (y) (b{z!~"a,b}"}) > 0 or vector(0)');
  t.deepEqual(r.selectors.map((s) => s.series), ['a_total', 'b']);
  t.deepEqual(r.selectors[1]!.matcherLabels, ['z']);
  t.deepEqual(
    r.groupings.map((g) => [g.keyword, g.labels, g.scope]),
    [['by', ['x'], [0]], ['on', ['x'], [0, 1]], ['without', ['y'], [1]]],
  );

  t.deepEqual(parsePromQL('count(remora_config_version < scalar(max(remora_config_version))) or vector(0)').selectors.length, 2);
  t.deepEqual(parsePromQL('time() - (remora_config_last_nack_timestamp_seconds > 0)').selectors.map((s) => s.series), [
    'remora_config_last_nack_timestamp_seconds',
  ]);
  t.deepEqual(parseTemplateQuery('label_values(remora_requests_total, destination)').label, 'destination');

  t.throws(() => parsePromQL('sum(rat(x[5m]))'), { message: /unknown function rat/ });
  t.throws(() => parsePromQL('sum(rate(x{a="1"[5m]))'), { message: /bad label matcher|unbalanced/ });
  t.throws(() => parsePromQL('{__name__="x"}'), { message: /without a metric name/ });
  t.throws(() => parsePromQL('rate(x[5m]) * $oops'), { message: /unexpected "\$"/ });
  t.throws(() => parsePromQL('rate(x by (a) [5m])'), { message: /by outside an aggregation/ });
  // Nested clauses keep their own scopes.
  t.deepEqual(
    parsePromQL('sum by (a) (max by (b) (x)) + sum(y) by (c)').groupings.map((g) => [g.labels, g.scope]),
    [[['a'], [0]], [['b'], [0]], [['c'], [1]]],
  );
});

test('the dashboard queries only contract metrics and labels', (t) => {
  const dashboard = readDashboard();
  const queries = dashboardQueries(dashboard);
  t.true(queries.length >= 30, `only ${queries.length} queries found`);
  t.deepEqual(checkDashboard(dashboard), []);

  // Everything the brief asks the dashboard to show is there.
  const used = new Set(queries.flatMap((q) => {
    const parsed = q.template ? parseTemplateQuery(q.expr).query : parsePromQL(q.expr);
    return parsed.selectors.map((s) => baseMetric(s.series).base);
  }));
  for (const m of [
    'remora_requests_total', 'remora_request_duration_seconds', 'remora_retries_total', 'remora_timeouts_total',
    'remora_overflows_total', 'remora_outlier_ejections_total', 'remora_open_connections', 'remora_active_streams',
    'remora_config_version', 'remora_config_nacks_total', 'remora_certificate_expiry_timestamp_seconds',
    'remora_cp_connected_sidecars', 'remora_cp_push_duration_seconds', 'remora_cp_nacks_total',
    'remora_cp_certificates_issued_total',
  ]) {
    t.true(used.has(m), `dashboard does not show ${m}`);
  }
  // Every Node metric listed is one the dashboard uses (the list is "what the dashboard depends on").
  for (const m of NODE_METRICS) t.true(used.has(m), `NODE_METRICS lists ${m} but the dashboard does not use it`);
  // p50 and p99 come from histogram_quantile over the request duration buckets.
  const exprs = queries.map((q) => q.expr);
  for (const q of ['0.5', '0.99']) {
    t.true(exprs.some((e) => e.includes(`histogram_quantile(${q},`) && e.includes('remora_request_duration_seconds_bucket')), `no p${q} latency`);
  }
  t.true(exprs.some((e) => e.includes('histogram_quantile(0.99,') && e.includes('remora_cp_push_duration_seconds_bucket')), 'no push p99');
  // Success rate is the grpc_status="0" share.
  t.true(exprs.some((e) => /remora_requests_total\{[^}]*grpc_status="0"[^}]*\}.*\/.*remora_requests_total/.test(e)), 'no success rate');
});

test('a made-up metric, label or function in a copy of the dashboard is caught', (t) => {
  const original = readFileSync(DASHBOARD_PATH, 'utf8');
  t.true(original.includes('remora_timeouts_total{'));

  const withBadMetric = JSON.parse(original.replace('remora_timeouts_total{', 'remora_timeouts_count_total{'));
  t.deepEqual(checkDashboard(withBadMetric), [
    'panel "Timeouts" target 0: unknown metric remora_timeouts_count_total',
  ]);

  const withBadLabel = JSON.parse(original.replace('sum by (destination, breaker)', 'sum by (destination, cluster)'));
  t.deepEqual(checkDashboard(withBadLabel), [
    'panel "Circuit breaker overflows" target 0: by (cluster) but remora_overflows_total has no label cluster',
  ]);

  // A histogram suffix on a counter is a made-up series too.
  const withBadSuffix = JSON.parse(original.replace('remora_cp_pushes_total[', 'remora_cp_pushes_total_bucket['));
  t.deepEqual(checkDashboard(withBadSuffix), ['panel "Pushes and NACKs" target 0: unknown metric remora_cp_pushes_total_bucket']);

  // The control plane has no service target label.
  const withCpServiceLabel = JSON.parse(original.replace('sum(remora_cp_connected_sidecars)', 'sum(remora_cp_connected_sidecars{service=\\"catalog\\"})'));
  t.deepEqual(checkDashboard(withCpServiceLabel), ['panel "Connected sidecars" target 0: remora_cp_connected_sidecars has no label service']);

  const withBadFunction = JSON.parse(original.replace('sum(remora_cp_connected_sidecars)', 'summ(remora_cp_connected_sidecars)'));
  t.deepEqual(checkDashboard(withBadFunction).map((p) => p.replace(/ in: .*/, '')), [
    'panel "Connected sidecars" target 0: unknown function summ at 0',
  ]);

  const withBadLegend = JSON.parse(original.replace('"{{destination}} {{breaker}}"', '"{{destination}} {{cluster}}"'));
  t.deepEqual(checkDashboard(withBadLegend), [
    'panel "Circuit breaker overflows" target 0: legend uses {{cluster}}, a label no series in the query has',
  ]);

  // Nested (collapsed-row) panels and template variables are read too.
  const dashboard = JSON.parse(original);
  dashboard.panels.push({ type: 'row', title: 'Collapsed', collapsed: true, panels: [{ title: 'Hidden', targets: [{ expr: 'rate(remora_made_up_total[5m])' }] }] });
  dashboard.templating.list[0].query = 'label_values(remora_requests_total, cluster)';
  t.deepEqual(checkDashboard(dashboard), [
    'panel "Hidden" target 0: unknown metric remora_made_up_total',
    'variable $service: label_values of cluster, which remora_requests_total does not have',
  ]);
});

test('the dashboard is well formed and uses the provisioned datasource', (t) => {
  const dashboard = readDashboard() as any;
  t.is(dashboard.uid, 'remora-mesh');
  t.true(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41);

  const datasources = readYaml(DATASOURCES_PATH);
  t.is(datasources.apiVersion, 1);
  const prom = datasources.datasources.find((d: any) => d.type === 'prometheus');
  t.truthy(prom);
  t.is(prom.uid, 'prometheus');
  t.is(prom.url, 'http://prometheus:9090');

  const panels = allPanels(dashboard.panels);
  const ids = panels.map((p: any) => p.id);
  t.is(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of panels as any[]) {
    t.true(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the 24-column grid`);
    if (p.type === 'row') continue;
    t.is(p.datasource?.uid, prom.uid, `panel "${p.title}" datasource`);
    for (const target of p.targets ?? []) t.is(target.datasource?.uid, prom.uid, `panel "${p.title}" target datasource`);
  }
  const rows = panels.filter((p) => p.type === 'row').map((p) => p.title);
  for (const r of [/^Golden metrics per service/, /^Edges/, /^Retries, timeouts, overflows, ejections$/, /^Connections and streams$/, /^Config version and NACKs$/, /^Certificates$/, /^Control plane$/]) {
    t.true(rows.some((title) => r.test(title ?? '')), `row ${r}`);
  }

  const service = dashboard.templating.list.find((v: any) => v.name === 'service');
  t.is(service.type, 'query');
  t.is(service.query, 'label_values(remora_requests_total, destination)');
  t.is(service.datasource.uid, prom.uid);
  // Every $variable a query uses is defined (or is one of Grafana's built-ins).
  const defined = new Set(dashboard.templating.list.map((v: any) => v.name));
  for (const { where, expr } of dashboardQueries(dashboard)) {
    for (const m of expr.matchAll(/\$\{?(\w+)/g)) {
      t.true(defined.has(m[1]) || ['__rate_interval', '__interval', '__range'].includes(m[1]!), `${where}: undefined variable $${m[1]}`);
    }
  }
});

test('the dashboard provider loads from /var/lib/grafana/dashboards', (t) => {
  const providers = readYaml(DASHBOARD_PROVIDERS_PATH);
  t.is(providers.apiVersion, 1);
  t.is(providers.providers.length, 1);
  t.is(providers.providers[0].type, 'file');
  t.is(providers.providers[0].options.path, '/var/lib/grafana/dashboards');
});

test('prometheus.yml parses and scrapes the control plane and every sidecar every 5s', (t) => {
  const text = readFileSync(PROMETHEUS_PATH, 'utf8');
  const config = readYaml(PROMETHEUS_PATH);
  t.is(config.global.scrape_interval, '5s');
  const jobs = new Map<string, any>(config.scrape_configs.map((j: any) => [j.job_name, j]));
  t.deepEqual([...jobs.keys()].sort(), Object.keys(SCRAPE_JOBS).sort());

  const targets = (job: string): string[] => jobs.get(job).static_configs.flatMap((s: any) => s.targets);
  t.deepEqual(targets('remora-control-plane'), [`control-plane:${SCRAPE_JOBS['remora-control-plane']!.port}`]);
  t.deepEqual(
    targets('remora-sidecar'),
    ['catalog', 'inventory', 'orders', 'traffic'].map((s) => `${s}:${SCRAPE_JOBS['remora-sidecar']!.port}`),
  );
  for (const job of jobs.values()) t.is(job.metrics_path ?? '/metrics', '/metrics');
  for (const job of jobs.values()) t.is(job.scrape_interval ?? config.global.scrape_interval, '5s');

  // The service target label comes from the host part of the address.
  const relabel = jobs.get('remora-sidecar').relabel_configs.find((r: any) => r.target_label === 'service');
  t.deepEqual(relabel.source_labels, ['__address__']);
  const m = new RegExp(`^(?:${relabel.regex})$`).exec('catalog:15020');
  t.is(relabel.replacement.replace('$1', m?.[1]), 'catalog');

  // The commented Kubernetes example: uncommented, it is a valid pod-discovery job.
  const commented = text.split('\n');
  const first = commented.findIndex((l) => l.startsWith('  # - job_name:'));
  t.true(first > 0, 'no commented Kubernetes job');
  const example = commented
    .slice(first)
    .filter((l) => l.startsWith('  #'))
    .map((l) => l.replace(/^ {2}# ?/, '  '))
    .join('\n');
  const k8s = parseYaml(`scrape_configs:\n${example}`).scrape_configs[0];
  t.deepEqual(k8s.kubernetes_sd_configs, [{ role: 'pod' }]);
  const keep = k8s.relabel_configs.find((r: any) => r.action === 'keep');
  t.deepEqual(keep.source_labels, ['__meta_kubernetes_pod_annotation_prometheus_io_scrape']);
  t.true(k8s.relabel_configs.some((r: any) => r.source_labels.includes('__meta_kubernetes_pod_annotation_prometheus_io_port') && r.target_label === '__address__'));
  t.regex(text, /prometheus\.io\/port: "15020"/);
});

test('docs/monitoring.md documents every metric with its type and labels, and its PromQL uses only those', (t) => {
  const doc = readFileSync('docs/monitoring.md', 'utf8');
  const rows = [...doc.matchAll(/^\| `([a-z_]+)` \| (counter|gauge|histogram) \| ([^|]*) \|/gm)];
  const documented = new Map(rows.map((m) => [m[1]!, { type: m[2]!, labels: [...m[3]!.matchAll(/`([a-z_]+)`/g)].map((l) => l[1]!) }]));
  t.deepEqual([...documented.keys()].sort(), [...SIDECAR_METRICS, ...CONTROL_PLANE_METRICS].sort());
  for (const [m, { type, labels }] of documented) {
    t.is(type, METRIC_TYPES[m], `${m} type`);
    t.deepEqual(labels, [...METRIC_LABELS[m]!], `${m} labels`);
  }
  const blocks = [...doc.matchAll(/```promql\n([\s\S]*?)```/g)].map((m) => m[1]!);
  t.true(blocks.length >= 4);
  for (const [n, block] of blocks.entries()) t.deepEqual(checkQuery(`docs promql block ${n}`, block), []);
});
