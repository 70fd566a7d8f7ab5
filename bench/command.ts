/**
 * `remora bench`: measures the sidecar's hot path. Starts an echo server and the sidecars each
 * scenario needs, drives every scenario from a separate load-generator process in ONE run (so the
 * ratios between scenarios hold on a noisy machine), and prints markdown tables. Every case
 * (workload × payload size × offered rate) runs against every scenario.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from '../cli/flags.js';
import { latencyChartSvg, type ChartSeries } from './chart.js';
import { WORKLOAD_PATH, WORKLOADS, type Workload } from './echo-service.js';
import { findH2load, type H2load } from './h2load.js';
import { OP_UNIT } from './loadgen.js';
import { describeMachine, renderReport, type Machine } from './report.js';
import { caseLabel, runScenario, type Generator, type LoadSettings, type RunCase } from './run-scenario.js';
import { summariseAll, type RoundRun, type ScenarioSummary } from './summary.js';
import {
  availableScenarios,
  MTLS_SCENARIOS,
  REFERENCE_SCENARIOS,
  SCENARIOS,
  startTopology,
  type ScenarioName,
  type Topology,
} from './topology.js';

const SUMMARY =
  'Benchmark the sidecar hot path: direct vs one sidecar vs two sidecars (plaintext, mTLS, all features) vs nginx and HAProxy; unary, server-streaming and bidi gRPC echo.';
const GENERATORS = ['node', 'h2load'] as const;
type GeneratorKind = (typeof GENERATORS)[number];
/** A gRPC message's length prefix is 32 bits; beyond this a run measures memory, not the proxy. */
const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

const defs = {
  workload: { type: 'list', default: 'unary', help: `comma-separated workloads, each run in turn: ${WORKLOADS.join(', ')}` },
  mode: { type: 'string', default: 'closed', help: 'closed (fixed concurrency) or open (fixed arrival rate, needs --rps)' },
  connections: { type: 'int', default: 8, help: 'HTTP/2 connections from the load generator' },
  streams: { type: 'int', default: 8, help: 'closed loop: concurrent streams per connection (bidi: long-lived calls per connection)' },
  rps: { type: 'int', default: 0, help: 'open loop: requests per second over all connections' },
  rates: { type: 'list', help: 'rate sweep: run the open loop at each of these rates (e.g. 250,500,1000,2000); implies --mode open' },
  chart: { type: 'string', help: 'with --rates: write an SVG of p50/p99 latency against achieved rate, one line per scenario' },
  'max-inflight': { type: 'int', default: 1000, help: 'open loop: in-flight cap; arrivals beyond it are dropped and reported' },
  'duration-s': { type: 'string', default: '10', help: 'measured seconds per scenario run' },
  'warmup-s': { type: 'string', default: '2', help: 'seconds of load before measuring (excluded from stats)' },
  requests: { type: 'int', default: 0, help: 'end each measured window after this many calls (still capped by --duration-s)' },
  'payload-bytes': { type: 'list', default: '100', help: 'comma-separated request (and echoed response) payload sizes; each runs in turn' },
  'stream-messages': { type: 'int', default: 100, help: 'server-stream: messages the server streams back per call' },
  'timeout-ms': { type: 'int', default: 5000, help: 'per-call (bidi: per round trip) deadline; slower ones are cancelled and counted as errors' },
  generator: { type: 'string', default: 'node', help: 'node (our node:http2 generator) or h2load (nghttp2-client; unary only, checks HTTP status only)' },
  scenarios: { type: 'list', help: `comma-separated subset of ${SCENARIOS.join(',')} (default: every one this machine can run; nginx and HAProxy ones need those installed)` },
  authority: { type: 'string', default: 'echo', help: ':authority sent (the sidecar routes on it); also the cluster name' },
  repeat: { type: 'int', default: 1, help: 'interleave the scenarios this many times and report medians' },
  json: { type: 'string', help: 'also write machine-readable results to this file' },
  'cpu-prof': { type: 'string', help: 'start sidecars with node --cpu-prof, writing profiles to this directory (see docs/profiling.md)' },
  'sidecar-script': { type: 'string', help: 'run this node script instead of `remora sidecar` (same flags), e.g. to compare a baseline proxy; leaves out the mTLS scenarios' },
  'sidecar-log-level': { type: 'string', default: 'warn', help: 'REMORA_LOG_LEVEL for the sidecars' },
} as const satisfies FlagDefs;

type Flags = ReturnType<typeof parseCommand<typeof defs>>['flags'];

/** What stays the same across the cases of one bench invocation. */
type BaseSettings = Omit<LoadSettings, 'workload' | 'path' | 'payloadBytes' | 'mode' | 'rps'>;

export interface BenchPlan {
  readonly scenarios: readonly ScenarioName[];
  readonly base: BaseSettings;
  readonly workloads: readonly Workload[];
  readonly payloads: readonly number[];
  /** Offered rates of a sweep (open loop); empty without --rates. */
  readonly rates: readonly number[];
  readonly mode: 'closed' | 'open';
  readonly rps: number;
  readonly cases: readonly RunCase[];
  readonly generator: GeneratorKind;
  readonly repeat: number;
  readonly json?: string;
  readonly chart?: string;
  readonly cpuProfDir?: string;
  readonly sidecarScript?: string;
  readonly sidecarLogLevel: string;
}

function seconds(name: string, raw: string, min: number): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

function atLeast(name: string, n: number, min: number): number {
  if (n < min) throw new UsageError(`--${name} must be >= ${min}, got ${n}`);
  return n;
}

/** A list flag of integers in [min, max], duplicates dropped, order kept. */
function intList(name: string, raw: readonly string[], min: number, max: number): number[] {
  const out: number[] = [];
  for (const item of raw) {
    const n = Number(item);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name}: ${JSON.stringify(item)} is not an integer in [${min}, ${max}]`);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

function pickScenarios(flags: Flags): ScenarioName[] {
  const named = flags.scenarios.length > 0;
  const scenarios: ScenarioName[] = [];
  for (const s of named ? flags.scenarios : availableScenarios()) {
    const known = SCENARIOS.find((k) => k === s);
    if (!known) throw new UsageError(`unknown scenario ${JSON.stringify(s)} (known: ${SCENARIOS.join(', ')})`);
    if (!scenarios.includes(known)) scenarios.push(known);
  }
  // Another script knows nothing of certificates: with --sidecar-script the default list leaves
  // the mTLS scenarios out, and naming one is an error.
  const mtls = scenarios.filter((s) => MTLS_SCENARIOS.includes(s));
  if (flags['sidecar-script'] && mtls.length > 0 && named) {
    throw new UsageError(`--sidecar-script cannot run ${mtls.join(', ')} (the certificate flags are remora sidecar's); leave it out of --scenarios`);
  }
  const chosen = flags['sidecar-script'] ? scenarios.filter((s) => !mtls.includes(s)) : scenarios;
  if (chosen.length === 0) throw new UsageError('--scenarios is empty');
  return chosen;
}

function pickWorkloads(raw: readonly string[]): Workload[] {
  const out: Workload[] = [];
  for (const w of raw) {
    const known = WORKLOADS.find((k) => k === w);
    if (!known) throw new UsageError(`unknown workload ${JSON.stringify(w)} (known: ${WORKLOADS.join(', ')})`);
    if (!out.includes(known)) out.push(known);
  }
  if (out.length === 0) throw new UsageError('--workload is empty');
  return out;
}

export function plan(flags: Flags): BenchPlan {
  if (flags.mode !== 'closed' && flags.mode !== 'open') throw new UsageError(`--mode must be closed or open, got ${JSON.stringify(flags.mode)}`);
  const generator = GENERATORS.find((g) => g === flags.generator);
  if (!generator) throw new UsageError(`--generator must be ${GENERATORS.join(' or ')}, got ${JSON.stringify(flags.generator)}`);
  const workloads = pickWorkloads(flags.workload);
  const payloads = intList('payload-bytes', flags['payload-bytes'], 0, MAX_PAYLOAD_BYTES);
  if (payloads.length === 0) throw new UsageError('--payload-bytes is empty');
  const rates = intList('rates', flags.rates, 1, 10_000_000);
  const mode = rates.length > 0 ? 'open' : flags.mode;
  if (mode === 'open' && rates.length === 0 && flags.rps <= 0) throw new UsageError('--mode open needs --rps > 0 (or --rates)');
  if (flags.chart && rates.length === 0) throw new UsageError('--chart draws the rate sweep: give --rates too');
  if (mode === 'open' && workloads.includes('bidi')) throw new UsageError('bidi runs closed loop only (each ping waits for its pong): drop it from --workload for --mode open or --rates');
  if (generator === 'h2load') {
    const other = workloads.filter((w) => w !== 'unary');
    if (other.length > 0) throw new UsageError(`--generator h2load drives unary calls only, not ${other.join(', ')}`);
    if (flags.requests > 0) throw new UsageError('--generator h2load runs for --duration-s; it cannot stop at --requests');
  }
  const streamMessages = atLeast('stream-messages', flags['stream-messages'], 1);
  const offered = mode === 'open' ? (rates.length > 0 ? rates : [flags.rps]) : [0];
  const cases: RunCase[] = [];
  for (const workload of workloads) {
    for (const payloadBytes of payloads) {
      for (const rps of offered) {
        cases.push({ workload, payloadBytes, streamMessages: workload === 'server-stream' ? streamMessages : 0, mode, rps });
      }
    }
  }
  return Object.freeze({
    scenarios: pickScenarios(flags),
    base: Object.freeze({
      authority: flags.authority,
      streamMessages,
      connections: atLeast('connections', flags.connections, 1),
      streams: atLeast('streams', flags.streams, 1),
      maxInflight: atLeast('max-inflight', flags['max-inflight'], 1),
      warmupS: seconds('warmup-s', flags['warmup-s'], 0),
      durationS: seconds('duration-s', flags['duration-s'], 0.1),
      requests: atLeast('requests', flags.requests, 0),
      timeoutMs: atLeast('timeout-ms', flags['timeout-ms'], 1),
    }),
    workloads,
    payloads,
    rates,
    mode,
    rps: mode === 'open' && rates.length === 0 ? atLeast('rps', flags.rps, 1) : 0,
    cases,
    generator,
    repeat: atLeast('repeat', flags.repeat, 1),
    json: flags.json,
    chart: flags.chart ? path.resolve(flags.chart) : undefined,
    cpuProfDir: flags['cpu-prof'] ? path.resolve(flags['cpu-prof']) : undefined,
    sidecarScript: flags['sidecar-script'] ? path.resolve(flags['sidecar-script']) : undefined,
    sidecarLogLevel: flags['sidecar-log-level'],
  });
}

export function settingsFor(p: BenchPlan, c: RunCase): LoadSettings {
  return { ...p.base, workload: c.workload, path: WORKLOAD_PATH[c.workload], payloadBytes: c.payloadBytes, mode: c.mode, rps: c.rps };
}

function describeSettings(p: BenchPlan, h2?: H2load): string {
  const b = p.base;
  const shape = p.mode === 'closed'
    ? `closed loop, ${b.connections} connections × ${b.streams} streams`
    : p.rates.length > 0
      ? `open loop rate sweep at ${p.rates.join(', ')} per s over ${b.connections} connections (in-flight cap ${b.maxInflight})`
      : `open loop at ${p.rps} per s over ${b.connections} connections (in-flight cap ${b.maxInflight})`;
  return [
    shape,
    `workloads ${p.workloads.join(',')}`,
    `payloads ${p.payloads.join(',')} B`,
    ...(p.workloads.includes('server-stream') ? [`${b.streamMessages} messages per server-stream call`] : []),
    `warm-up ${b.warmupS} s`,
    `duration ${b.durationS} s${b.requests ? ` or ${b.requests} calls` : ''}`,
    `repeat ${p.repeat}${p.repeat > 1 ? ' (medians)' : ''}`,
    `authority ${b.authority}`,
    `scenarios ${p.scenarios.join(',')}`,
    h2 ? `generator h2load (${h2.version}, 1 thread)` : 'generator node:http2 (one worker process)',
    ...(p.scenarios.some((s) => MTLS_SCENARIOS.includes(s)) ? ['mTLS hop: TLS 1.3, RSA 2048 certificates from a bench root, server sidecar STRICT'] : []),
    ...(p.sidecarScript ? [`sidecar script ${p.sidecarScript}`] : []),
    ...(p.cpuProfDir ? ['sidecars under --cpu-prof'] : []),
  ].join('; ');
}

function generatorNotes(h2?: H2load): string[] {
  if (!h2) return [];
  return [
    'h2load checks HTTP status only, never grpc-status: a call answered HTTP 200 with a gRPC error counts as a success ' +
      '(before each run one call through the target is checked for grpc-status 0 with our own client)',
    'h2load has no per-call deadline (--timeout-ms does not apply), and with --rps it times each call from when it was actually sent ' +
      '(no coordinated-omission correction, unlike our open loop)',
  ];
}

function assertAlive(topology: Topology): void {
  const procs = [{ role: 'echo-server', proc: topology.echo }, ...[...topology.targets.values()].flatMap((t) => t.sidecars)];
  for (const { role, proc } of procs) {
    if (proc.exitCode !== null) throw new Error(`${role} (pid ${proc.pid}) exited with ${proc.exitCode}:\n${proc.output()}`);
  }
}

async function runPlan(p: BenchPlan, h2: H2load | undefined): Promise<RoundRun[]> {
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'remora-bench-'));
  if (p.cpuProfDir) await mkdir(p.cpuProfDir, { recursive: true });
  let topology: Topology | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`bench: ${sig}, stopping children\n`);
    void (topology?.stop() ?? Promise.resolve())
      .then(() => rm(workDir, { recursive: true, force: true }))
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const generator: Generator = h2 ? { kind: 'h2load', h2load: h2, workDir } : { kind: 'node' };
  try {
    topology = await startTopology({
      scenarios: p.scenarios,
      workDir,
      cluster: p.base.authority,
      cpuProfDir: p.cpuProfDir,
      sidecarScript: p.sidecarScript,
      sidecarLogLevel: p.sidecarLogLevel,
    });
    // Before measuring: each scenario is what it says (two-hop-mtls: the hop really is mTLS).
    for (const target of topology.targets.values()) await target.verify?.();
    const runs: RoundRun[] = [];
    for (let round = 0; round < p.repeat; round++) {
      for (const [caseIndex, runCase] of p.cases.entries()) {
        // Rotate the order each round (and case) so no scenario always runs first (cold) or last (hot machine).
        const shift = round + caseIndex;
        const order = p.scenarios.map((_, i) => p.scenarios[(i + shift) % p.scenarios.length]!);
        for (const scenario of order) {
          const target = topology.targets.get(scenario)!;
          const run = await runScenario(target, topology.echo, settingsFor(p, runCase), generator, `${round}-${caseIndex}-${scenario}`);
          assertAlive(topology);
          // And still so after the run (outside the measured window).
          await target.verify?.();
          runs.push({ ...run, round });
          const l = run.load;
          process.stderr.write(
            `bench: round ${round + 1}/${p.repeat} ${caseLabel(runCase)} ${scenario}: ${l.opsPerS.toFixed(0)} ${l.unit}s/s, ` +
              `p50 ${l.latency.p50Ms.toFixed(3)} ms, p99 ${l.latency.p99Ms.toFixed(3)} ms, ${l.errorCount} errors\n`,
          );
        }
      }
    }
    if (p.cpuProfDir) {
      // nginx and HAProxy are not node: only remora sidecars write profiles.
      const sidecarTargets = [...topology.targets.values()].filter((t) => REFERENCE_SCENARIOS[t.scenario] === undefined);
      const roles = sidecarTargets.flatMap((t) => t.sidecars.map((s) => `sidecar-${s.role}.cpuprofile`));
      process.stderr.write(`bench: CPU profiles (written as the sidecars exit) in ${p.cpuProfDir}: ${roles.join(', ')}; summary: node dist/bench/profile-summary.js FILE\n`);
    }
    return runs;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await topology?.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

/** One line per scenario (and per workload/payload when the sweep had several) through the sweep's rates. */
export function sweepSeries(rows: readonly ScenarioSummary[]): ChartSeries[] {
  const groups = new Map<string, { name: string; rows: ScenarioSummary[] }>();
  const shapes = new Set(rows.map((r) => caseLabel(r.case, false)));
  for (const r of rows) {
    const shape = caseLabel(r.case, false);
    const key = `${r.scenario}\u0000${shape}`;
    const name = shapes.size > 1 ? `${r.scenario}, ${shape}` : r.scenario;
    const g = groups.get(key) ?? { name, rows: [] };
    g.rows.push(r);
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => ({
    name: g.name,
    points: g.rows.map((r) => ({ x: r.opsPerS, p50Ms: r.p50Ms, p99Ms: r.p99Ms })),
  }));
}

/** Field meanings, so a results file can be read without this code. */
const DEFINITIONS = {
  op: 'one unary call, one server-streamed response message, or one bidi ping-pong round trip (see unit)',
  rps: 'successful calls per second of measured window (bidi: round trips)',
  opsPerS: 'successful operations per second; server-stream: response messages received per second by any call (a long call\'s messages flow throughout the window)',
  latency: 'ms, successful operations only; unary: per call; server-stream: per call, to its last message; bidi: per round trip; open loop: from the intended send time',
  cpuUsPerOp: 'process CPU (utime + stime from /proc, or the generator\'s own) over the measured window / operations in it',
  busy: 'process CPU over the measured window / window length: the share of one core it used',
  peakRssMb: 'highest resident set size sampled every 250 ms, over all runs',
  vsDirect: 'each run against the direct run of the same round and case, medians; latency deltas divided by hops',
  vsPlaintext: 'an mTLS scenario against its plaintext twin, same round and case, medians',
  errorsByKind: 'grpc-<status>, timeout, http-<status>, rst-<code>, bad-length, no-status, ended-before-pong, stream-failed (h2load), or a socket error code',
  histogram: 'HDR histogram of latency in µs, compressed base64 (hdr-histogram-js encodeIntoCompressedBase64)',
} as const;

export const benchCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    if (argv[0] === 'control-plane') return (await import('./control-plane/command.js')).runControlPlaneBench(argv.slice(1));
    const parsed = parseCommand(defs, argv);
    if (parsed.help) {
      process.stdout.write(usage('bench', SUMMARY, defs) + '\n');
      return;
    }
    if (parsed.positional.length) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positional[0])}`);
    const p = plan(parsed.flags);
    const h2 = p.generator === 'h2load' ? await findH2load() : undefined;
    const startedAt = new Date().toISOString();
    const machineAtStart = describeMachine();
    const settings = describeSettings(p, h2);
    const runs = await runPlan(p, h2);
    const machine: Machine = { ...machineAtStart, loadAvg1mEnd: os.loadavg()[0]! };
    const rows = summariseAll(p.scenarios, p.cases, runs);
    process.stdout.write(renderReport(machine, settings, rows, generatorNotes(h2)) + '\n');
    if (p.chart) {
      const units = new Set(p.cases.map((c) => OP_UNIT[c.workload]));
      const unit = units.size === 1 ? `${[...units][0]}s` : 'operations';
      const svg = latencyChartSvg(sweepSeries(rows), {
        title: `remora bench: latency against achieved rate (${machine.cpuModel}, ${machine.cores} cores)`,
        xLabel: `achieved rate, successful ${unit} per second`,
      });
      await writeFile(p.chart, svg);
      process.stderr.write(`bench: chart written to ${p.chart}\n`);
    }
    if (p.json) {
      const json = {
        schema: 'remora-bench/2',
        startedAt,
        finishedAt: new Date().toISOString(),
        machine,
        settings: {
          ...p.base,
          scenarios: p.scenarios,
          workloads: p.workloads,
          payloadBytes: p.payloads,
          mode: p.mode,
          rps: p.rps,
          rates: p.rates,
          repeat: p.repeat,
          generator: h2 ? { kind: 'h2load', bin: h2.bin, version: h2.version, notes: generatorNotes(h2) } : { kind: 'node' },
          sidecarScript: p.sidecarScript ?? null,
          cpuProfDir: p.cpuProfDir ?? null,
          chart: p.chart ?? null,
          summaryLine: settings,
        },
        definitions: DEFINITIONS,
        cases: p.cases.map((c) => ({ ...c, label: caseLabel(c), unit: OP_UNIT[c.workload] })),
        summary: rows,
        runs,
      };
      await writeFile(p.json, JSON.stringify(json, null, 2) + '\n');
    }
  },
};
