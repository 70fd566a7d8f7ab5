import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { latencyChartSvg } from '../bench/chart.js';
import { parseH2loadLog, parseH2loadSummary } from '../bench/h2load.js';
import { LatencyHistogram, median } from '../bench/histogram.js';
import { summariseProfile, type CpuProfile } from '../bench/profile-summary.js';
import { HOPS, PLAINTEXT_TWIN, SCENARIOS, startTopology } from '../bench/topology.js';
import { certificateInfo } from '../lib/pki/x509.js';
import { remoraBin, repoRoot } from '../lib/processes.js';

const run = promisify(execFile);

interface SvgSeries {
  readonly name: string;
  readonly p99Points: number;
  readonly p50Points: number;
}

/**
 * Just enough XML to check the chart: every tag closes in order under one <svg> root, and each
 * series group's p99 and p50 polylines are read.
 */
function parseSvg(text: string): { series: SvgSeries[] } {
  const body = text.replace(/^<\?xml[^>]*\?>\s*/, '');
  if (!body.startsWith('<svg')) throw new Error('not an <svg> document');
  const stack: string[] = [];
  const series: { name: string; p99Points: number; p50Points: number }[] = [];
  let roots = 0;
  const unescape = (s: string): string => s.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g)) {
    const [, closing, name, attrs, selfClosing] = m;
    if (closing) {
      if (stack.pop() !== name) throw new Error(`</${name}> closes the wrong element`);
      continue;
    }
    if (stack.length === 0) roots++;
    const attr = (key: string): string | undefined => new RegExp(`\\s${key}="([^"]*)"`).exec(attrs!)?.[1];
    if (name === 'g' && attr('class') === 'series') series.push({ name: unescape(attr('data-series') ?? ''), p99Points: 0, p50Points: 0 });
    if (name === 'polyline' && stack.at(-1) === 'g' && series.length > 0) {
      const points = (attr('points') ?? '').trim().split(/\s+/).filter((p) => /^[\d.]+,[\d.]+$/.test(p)).length;
      if (attr('class') === 'p99') series.at(-1)!.p99Points = points;
      if (attr('class') === 'p50') series.at(-1)!.p50Points = points;
    }
    if (!selfClosing) stack.push(name!);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
  return { series };
}

test('histogram percentiles are accurate to 3 significant digits', (t) => {
  const h = new LatencyHistogram();
  for (let ms = 1; ms <= 1000; ms++) h.recordMillis(ms);
  t.is(h.count, 1000);
  const near = (actual: number, expected: number): boolean => Math.abs(actual - expected) <= expected * 0.001 + 0.001;
  t.true(near(h.percentileMs(50), 500), `p50 ${h.percentileMs(50)}`);
  t.true(near(h.percentileMs(99), 990), `p99 ${h.percentileMs(99)}`);
  const s = h.summary();
  t.true(near(s.p999Ms, 999), `p99.9 ${s.p999Ms}`);
  t.true(near(s.maxMs, 1000), `max ${s.maxMs}`);
  t.true(near(s.meanMs, 500.5), `mean ${s.meanMs}`);
});

test('histogram clamps out-of-range values, survives encoding, and merges', (t) => {
  const a = new LatencyHistogram();
  t.is(a.percentileMs(99), 0);
  a.recordMicros(0);
  a.recordMicros(1e12);
  t.is(a.count, 2);
  t.is(a.summary().maxMs, 60_000);
  const b = LatencyHistogram.decode(a.encode());
  // Decoding keeps buckets, not the exact max, so max comes back as its bucket's upper edge.
  const { maxMs: aMax, ...aRest } = a.summary();
  const { maxMs: bMax, ...bRest } = b.summary();
  t.deepEqual(bRest, aRest);
  t.true(Math.abs(bMax - aMax) <= aMax * 0.001);
  b.merge(a);
  t.is(b.count, 4);
});

test('median of odd, even and empty lists', (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.true(Number.isNaN(median([])));
});

interface RowJson {
  scenario: string;
  label: string;
  unit: string;
  case: { workload: string; payloadBytes: number; streamMessages: number; mode: string; rps: number };
  requests: number;
  errors: number;
  errorsByKind: Record<string, number>;
  rps: number;
  opsPerS: number;
  p50Ms: number;
  p99Ms: number;
  loadgenCpuUsPerOp: number;
  loadgenBusy: number;
  sidecars: { role: string; cpuUsPerOp: number; peakRssMb: number }[];
  vsDirect?: { rpsRatio: number; addedP50MsPerHop: number };
  vsPlaintext?: { scenario: string; rpsRatio: number; addedCpuUsPerOp: number[] };
}

interface BenchJson {
  schema: string;
  machine: { cores: number; cpuModel: string; loadAvg1m: number; loadAvg1mEnd: number };
  settings: { scenarios: string[]; workloads: string[]; payloadBytes: number[]; rates: number[]; generator: { kind: string; version?: string } };
  definitions: Record<string, string>;
  cases: { label: string; unit: string }[];
  summary: RowJson[];
  runs: {
    scenario: string;
    round: number;
    case: { workload: string; rps: number };
    load: { histogram: string; unit: string; sent: number; drops: number; windowS: number };
    loadgen: { role: string; cpuUsPerOp: number };
  }[];
}

/** Runs `remora bench` to completion with a JSON file; returns its stdout and the parsed JSON. */
async function bench(t: ExecutionContext, args: readonly string[], timeoutMs: number): Promise<{ stdout: string; json: BenchJson; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-bench-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'bench.json');
  const { stdout } = await run(process.execPath, [remoraBin, 'bench', ...args, '--json', file], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  return { stdout, json: JSON.parse(await readFile(file, 'utf8')) as BenchJson, dir };
}

/** Fails unless every row completed calls without a single error. */
function assertClean(t: ExecutionContext, rows: readonly RowJson[]): void {
  for (const r of rows) {
    t.true(r.requests > 0, `${r.scenario} ${r.label} completed no requests`);
    t.is(r.errors, 0, `${r.scenario} ${r.label} had errors: ${JSON.stringify(r.errorsByKind)}`);
    t.true(r.opsPerS > 0 && r.p50Ms > 0 && r.p99Ms >= r.p50Ms, `${r.scenario} ${r.label}: ${r.opsPerS} ops/s, p50 ${r.p50Ms}, p99 ${r.p99Ms}`);
  }
}

test('the scenario list: every mTLS scenario comes after its plaintext twin, and every scenario has a hop count', (t) => {
  for (const s of ['direct', 'one-hop', 'two-hop', 'two-hop-mtls'] as const) t.true(SCENARIOS.includes(s), s);
  t.is(SCENARIOS[0], 'direct');
  for (const s of SCENARIOS) {
    t.true(Number.isInteger(HOPS[s]), `HOPS[${s}]`);
    const twin = PLAINTEXT_TWIN[s];
    if (twin) t.true(SCENARIOS.indexOf(twin) < SCENARIOS.indexOf(s), `${s} before its twin ${twin}`);
  }
});

test('the chart is well-formed SVG with one line pair per series, log-scale y and escaped names', (t) => {
  const svg = latencyChartSvg(
    [
      { name: 'direct', points: [{ x: 480, p50Ms: 0.4, p99Ms: 2 }, { x: 990, p50Ms: 0.5, p99Ms: 3 }, { x: 1900, p50Ms: 0.9, p99Ms: 40 }] },
      { name: 'a<b & "c"', points: [{ x: 470, p50Ms: 0.8, p99Ms: 4 }, { x: 0, p50Ms: 0, p99Ms: 0 }] },
    ],
    { title: 'title', xLabel: 'calls/s' },
  );
  const doc = parseSvg(svg);
  t.deepEqual(doc.series.map((s) => s.name), ['direct', 'a<b & "c"']);
  t.deepEqual(doc.series.map((s) => s.p99Points), [3, 1], 'points with no successful calls are left out');
  t.deepEqual(doc.series.map((s) => s.p50Points), [3, 1]);
  // Decade ticks of a log axis from 0.1 to 100 ms.
  for (const tick of ['0.1', '1', '10', '100']) t.regex(svg, new RegExp(`text-anchor="end">${tick.replace('.', '\\.')}</text>`));
  const [, , , thirdY] = /points="([\d.]+),([\d.]+) ([\d.]+),([\d.]+)/.exec(svg) ?? [];
  t.truthy(thirdY, 'a p99 polyline with coordinates');
});

test('h2load output and per-request log are read into counts and latencies', (t) => {
  const out = [
    'finished in 3.00s, 6550.00 req/s, 889.42KB/s',
    'requests: 13100 total, 13100 started, 13098 done, 13097 succeeded, 1 failed, 1 errored, 0 timeout',
    'status codes: 13097 2xx, 0 3xx, 0 4xx, 1 5xx',
  ].join('\n');
  const s = parseH2loadSummary(out);
  t.like(s, { total: 13100, started: 13100, done: 13098, succeeded: 13097, failed: 1, errored: 1, timeout: 0, status2xx: 13097, reqPerS: 6550 });
  t.throws(() => parseH2loadSummary('no summary'), { message: /no "requests:" line/ });
  const rows = ['1795385319683190\t0\t5770', '1795385319683193\t200\t766', '1795385319683194\t200\t1766', '1795385319683195\t-1\t50', '1795385319683196\t503\t70', ''];
  const log = parseH2loadLog(rows.join('\n'));
  t.is(log.fromWarmup, 1, 'status 0: begun in the warm-up, not counted');
  t.is(log.completed, 4);
  t.is(log.ok, 2);
  t.deepEqual(log.errors, { 'stream-failed': 1, 'http-503': 1 });
  t.is(log.histogram.count, 2);
  t.true(Math.abs(log.histogram.percentileMs(100) - 1.766) < 0.01);
});

test('bench flags that cannot work together are refused with a reason', async (t) => {
  const refuse = async (args: string[], message: RegExp): Promise<void> => {
    const err = await t.throwsAsync(run(process.execPath, [remoraBin, 'bench', ...args], { timeout: 20_000 }));
    t.is((err as { code?: number }).code, 2, args.join(' '));
    t.regex((err as { stderr?: string }).stderr ?? '', message);
  };
  await refuse(['--workload', 'bidi', '--rates', '100'], /bidi runs closed loop only/);
  await refuse(['--chart', 'x.svg'], /--chart draws the rate sweep: give --rates too/);
  await refuse(['--generator', 'h2load', '--workload', 'unary,server-stream'], /h2load drives unary calls only, not server-stream/);
  await refuse(['--payload-bytes', '100,-1'], /--payload-bytes: "-1" is not an integer/);
  await refuse(['--workload', 'client-stream'], /unknown workload "client-stream"/);
});

test.serial('remora bench: every workload and payload size against direct and one-hop, one JSON that describes itself', async (t) => {
  t.timeout(70_000);
  const args = [
    '--scenarios', 'direct,one-hop', '--workload', 'unary,server-stream,bidi', '--payload-bytes', '100,16384', '--stream-messages', '10',
    '--duration-s', '0.6', '--warmup-s', '0.2', '--connections', '2', '--streams', '2',
  ];
  const { stdout, json } = await bench(t, args, 65_000);
  const labels = ['unary 100 B', 'unary 16384 B', 'server-stream 100 B × 10', 'server-stream 16384 B × 10', 'bidi 100 B', 'bidi 16384 B'];
  for (const label of labels) {
    t.regex(stdout, new RegExp(`\\| ${label} \\| direct \\|`), label);
    t.regex(stdout, new RegExp(`\\| ${label} \\| one-hop \\|`), label);
  }
  t.regex(stdout, /server-stream: op = one streamed response message .*latency per call, to its last message/);
  t.regex(stdout, /generator µs\/op \| generator busy/);

  t.is(json.schema, 'remora-bench/2');
  t.true(json.machine.cores > 0 && json.machine.cpuModel.length > 0 && Number.isFinite(json.machine.loadAvg1mEnd));
  t.deepEqual(json.settings.workloads, ['unary', 'server-stream', 'bidi']);
  t.deepEqual(json.settings.payloadBytes, [100, 16384]);
  t.is(json.settings.generator.kind, 'node');
  for (const key of ['op', 'latency', 'cpuUsPerOp', 'busy', 'vsDirect']) t.truthy(json.definitions[key], `definition of ${key}`);
  t.deepEqual(json.cases.map((c) => c.label), labels);
  t.deepEqual(json.summary.map((r) => `${r.label}/${r.scenario}`), labels.flatMap((l) => [`${l}/direct`, `${l}/one-hop`]));
  t.is(json.runs.length, 12);
  assertClean(t, json.summary);

  const units: Record<string, string> = { unary: 'call', 'server-stream': 'message', bidi: 'round-trip' };
  for (const r of json.summary) {
    t.is(r.unit, units[r.case.workload], r.label);
    t.true(r.loadgenCpuUsPerOp > 0 && r.loadgenBusy > 0, `${r.label} ${r.scenario}: the generator's own CPU is measured`);
    if (r.scenario === 'one-hop') {
      t.is(r.sidecars.length, 1);
      t.true(r.sidecars[0]!.cpuUsPerOp > 0 && r.sidecars[0]!.peakRssMb > 10, `${r.label}: sidecar CPU and RSS`);
      t.truthy(r.vsDirect, `${r.label}: compared with direct of the same case`);
    }
  }
  // Every server-stream call brought back exactly 10 messages (a short one counts as bad-length), and
  // messages are counted as they arrive: about 10 per completed call, give or take the calls in
  // flight at the window's edges.
  for (const r of json.summary.filter((x) => x.case.workload === 'server-stream')) {
    t.true(Math.abs(r.opsPerS - r.rps * 10) <= r.rps * 10 * 0.35, `${r.label}: ${r.opsPerS} msgs/s vs ${r.rps} calls/s`);
  }
});

test.serial('remora bench --rates: an open-loop sweep per scenario, drawn as an SVG chart', async (t) => {
  t.timeout(50_000);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-bench-chart-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const chart = path.join(dir, 'sweep.svg');
  const durationS = 1.2;
  const args = ['--scenarios', 'direct,one-hop', '--rates', '100,300', '--duration-s', String(durationS), '--warmup-s', '0.2', '--connections', '2', '--chart', chart];
  const { stdout, json } = await bench(t, args, 45_000);
  t.regex(stdout, /\| unary 100 B @ 100\/s \| direct \|/);
  t.regex(stdout, /\| unary 100 B @ 300\/s \| one-hop \|/);
  t.deepEqual(json.settings.rates, [100, 300]);
  t.deepEqual(json.summary.map((r) => [r.case.mode, r.case.rps, r.scenario]), [
    ['open', 100, 'direct'], ['open', 100, 'one-hop'], ['open', 300, 'direct'], ['open', 300, 'one-hop'],
  ]);
  assertClean(t, json.summary);
  // The open loop keeps its schedule whatever the path does: what it sent (or dropped at the cap)
  // in the window is the offered rate × the window. Slack: timers, and a stalled event loop at the
  // window's end (the window then closes late, with the arrivals due in the stall unsent).
  for (const { scenario, case: c, load } of json.runs) {
    const expected = c.rps * load.windowS;
    const stalledS = Math.max(0, load.windowS - durationS);
    const arrivals = load.sent + load.drops;
    t.true(
      Math.abs(arrivals - expected) <= expected * 0.1 + c.rps * stalledS + 5,
      `${scenario} at ${c.rps}/s: ${arrivals} arrivals in ${load.windowS} s, expected ${expected}`,
    );
  }
  // A direct call at these rates keeps up on any machine (completions lag arrivals by one latency).
  for (const r of json.summary.filter((x) => x.scenario === 'direct')) {
    t.true(r.opsPerS >= r.case.rps * 0.5, `direct at ${r.case.rps}/s achieved only ${r.opsPerS}`);
  }
  const doc = parseSvg(await readFile(chart, 'utf8'));
  t.deepEqual(doc.series.map((s) => s.name), ['direct', 'one-hop']);
  for (const s of doc.series) {
    t.is(s.p99Points, 2, `${s.name}: a p99 point per rate`);
    t.is(s.p50Points, 2, `${s.name}: a p50 point per rate`);
  }
});

test.serial('remora bench --generator h2load: unary load from h2load, its CPU per call measured from /proc', async (t) => {
  t.timeout(45_000);
  try {
    await run('h2load', ['--version']);
  } catch {
    t.fail('h2load is not installed: `apt-get install nghttp2-client` (scripts/setup.sh installs it)');
    return;
  }
  const args = ['--generator', 'h2load', '--scenarios', 'direct,one-hop', '--duration-s', '1', '--warmup-s', '0.3', '--connections', '2', '--streams', '4'];
  const { stdout, json } = await bench(t, args, 40_000);
  t.regex(stdout, /h2load checks HTTP status only, never grpc-status/);
  t.regex(stdout, /generator h2load \(nghttp2\/[\d.]+/);
  t.is(json.settings.generator.kind, 'h2load');
  t.deepEqual(json.summary.map((r) => r.scenario), ['direct', 'one-hop']);
  assertClean(t, json.summary);
  for (const run of json.runs) {
    t.is(run.loadgen.role, 'h2load');
    t.true(run.loadgen.cpuUsPerOp > 0, `${run.scenario}: h2load CPU per call ${run.loadgen.cpuUsPerOp}`);
    t.true(LatencyHistogram.decode(run.load.histogram).count > 0, `${run.scenario}: latencies from h2load's log`);
  }
  t.true(json.summary[1]!.sidecars[0]!.cpuUsPerOp > 0);
});

test.serial('remora bench --cpu-prof writes the sidecar\'s profile, and profile-summary reads it', async (t) => {
  t.timeout(45_000);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-bench-prof-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const args = ['--scenarios', 'one-hop', '--cpu-prof', dir, '--duration-s', '1', '--warmup-s', '0.3', '--connections', '2', '--streams', '2'];
  await bench(t, args, 40_000);
  const file = path.join(dir, 'sidecar-one-hop.cpuprofile');
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const s = summariseProfile(profile);
  t.true(s.busyMs > 0 && s.samples > 0);
  t.true(s.byKind.node > 0, 'node internals');
  t.true(s.functions.some((f) => f.kind === 'node' && f.where.startsWith('node:')), 'node internals by name');
  t.true(s.functions.some((f) => f.kind === 'remora' && f.where.startsWith('dist/sidecar/h2/')), 'the HTTP/2 engine by name');
  t.true(s.functions.some((f) => f.kind === 'remora' && f.where.startsWith('dist/sidecar/')), 'our own code, by repository path');
  const shares = (Object.keys(s.byKind) as (keyof typeof s.byKind)[]).filter((k) => k !== 'idle').reduce((n, k) => n + s.byKind[k], 0);
  t.true(Math.abs(shares - s.busyMs) < 1e-6 * s.busyMs + 1e-6, 'the kinds add up to the busy time');

  const { stdout } = await run(process.execPath, [path.join(repoRoot, 'dist/bench/profile-summary.js'), file, '--top', '10'], { timeout: 20_000 });
  t.regex(stdout, /\| node internals \(node:\*\) \| \d+ \| [\d.]+% \|/);
  t.regex(stdout, /\| garbage collector \|/);
  const rows = stdout.split('\n').filter((l) => /^\| [\d.]+ \| [\d.]+% \|/.test(l));
  t.is(rows.length, 10, stdout);
});

test.serial('remora bench two-hop-mtls: measured over mTLS, set against two-hop', async (t) => {
  t.timeout(50_000);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-bench-test-'));
  try {
    const json = path.join(dir, 'bench.json');
    const args = ['bench', '--scenarios', 'two-hop,two-hop-mtls', '--duration-s', '1.5', '--warmup-s', '0.5', '--connections', '2', '--streams', '2', '--json', json];
    const { stdout } = await run(process.execPath, [remoraBin, ...args], { timeout: 45_000 });
    t.regex(stdout, /\| two-hop \|/);
    t.regex(stdout, /\| two-hop-mtls \|/);
    t.regex(stdout, /The cost of mTLS/);
    t.regex(stdout, /\| two-hop-mtls \| two-hop \| [\d.]+× \|/);
    const result = JSON.parse(await readFile(json, 'utf8')) as BenchJson;
    t.deepEqual(result.settings.scenarios, ['two-hop', 'two-hop-mtls']);
    t.deepEqual(result.summary.map((s) => s.scenario), ['two-hop', 'two-hop-mtls']);
    for (const s of result.summary) {
      t.true(s.requests > 0, `${s.scenario} completed no requests`);
      t.is(s.errors, 0, `${s.scenario} had errors`);
      t.is(s.sidecars.length, 2, `${s.scenario} sidecars`);
    }
    const mtls = result.summary[1]!;
    t.deepEqual(mtls.sidecars.map((s) => s.role), ['two-hop-mtls-a', 'two-hop-mtls-b']);
    t.is(mtls.vsPlaintext?.scenario, 'two-hop');
    t.is(mtls.vsPlaintext?.addedCpuUsPerOp.length, 2);
    t.is(result.summary[0]!.vsPlaintext, undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.serial('two-hop-mtls: certificates are private files with SPIFFE IDs, and the check refuses a server sidecar that takes plaintext', async (t) => {
  t.timeout(50_000);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-bench-test-'));
  const base = { scenarios: ['two-hop-mtls'] as const, cluster: 'echo', sidecarLogLevel: 'warn' };
  try {
    await Promise.all(['strict', 'permissive'].map((d) => mkdir(path.join(dir, d))));
    const strict = await startTopology({ ...base, workDir: path.join(dir, 'strict') });
    try {
      await strict.targets.get('two-hop-mtls')!.verify!();
      const pki = path.join(dir, 'strict', 'pki');
      const files = (await readdir(pki)).sort();
      t.deepEqual(files, ['bench-client-key.pem', 'bench-client.pem', 'bench-server-key.pem', 'bench-server.pem', 'roots.pem']);
      for (const f of files) t.is((await stat(path.join(pki, f))).mode & 0o777, 0o600, f);
      const server = certificateInfo(await readFile(path.join(pki, 'bench-server.pem'), 'utf8'));
      t.deepEqual(server.uris, ['spiffe://cluster.local/ns/default/sa/bench-server']);
      const hours = (server.notAfter.getTime() - server.notBefore.getTime()) / 3_600_000;
      t.true(Math.abs(hours - 24) < 0.01, `validity ${hours} h`);
      const client = certificateInfo(await readFile(path.join(pki, 'bench-client.pem'), 'utf8'));
      t.deepEqual(client.uris, ['spiffe://cluster.local/ns/default/sa/bench-client']);
    } finally {
      await strict.stop();
    }

    const permissive = await startTopology({ ...base, workDir: path.join(dir, 'permissive'), serverMtlsMode: 'PERMISSIVE' });
    try {
      const err = await t.throwsAsync(permissive.targets.get('two-hop-mtls')!.verify!());
      t.regex(err!.message, /two-hop-mtls is not measuring mTLS: a plaintext h2c call .* grpc-status 0 .*not STRICT/);
    } finally {
      await permissive.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
