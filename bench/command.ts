/**
 * `remora bench`: measures the sidecar's hot path. Starts an echo server and the sidecars each
 * scenario needs, drives every scenario from a separate load-generator process in ONE run (so the
 * ratios between scenarios hold on a noisy machine), and prints a markdown table.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from '../cli/flags.js';
import { UNARY_PATH } from './echo-service.js';
import { describeMachine, renderReport } from './report.js';
import { runScenario, type LoadSettings } from './run-scenario.js';
import { summariseAll, type RoundRun } from './summary.js';
import { MTLS_SCENARIOS, SCENARIOS, startTopology, type ScenarioName, type Topology } from './topology.js';

const SUMMARY = 'Benchmark the sidecar hot path: direct vs one sidecar vs two sidecars (plaintext and mTLS), unary gRPC echo.';

const defs = {
  mode: { type: 'string', default: 'closed', help: 'closed (fixed concurrency) or open (fixed arrival rate, needs --rps)' },
  connections: { type: 'int', default: 8, help: 'HTTP/2 connections from the load generator' },
  streams: { type: 'int', default: 8, help: 'closed loop: concurrent streams per connection' },
  rps: { type: 'int', default: 0, help: 'open loop: requests per second over all connections' },
  'max-inflight': { type: 'int', default: 1000, help: 'open loop: in-flight cap; arrivals beyond it are dropped and reported' },
  'duration-s': { type: 'string', default: '10', help: 'measured seconds per scenario run' },
  'warmup-s': { type: 'string', default: '2', help: 'seconds of load before measuring (excluded from stats)' },
  requests: { type: 'int', default: 0, help: 'end each measured window after this many calls (still capped by --duration-s)' },
  'payload-bytes': { type: 'int', default: 100, help: 'request (and echoed response) payload size' },
  'timeout-ms': { type: 'int', default: 5000, help: 'per-call deadline; slower calls are cancelled and counted as errors' },
  scenarios: { type: 'list', default: SCENARIOS.join(','), help: `comma-separated subset of ${SCENARIOS.join(',')}` },
  authority: { type: 'string', default: 'echo', help: ':authority sent (the sidecar routes on it); also the cluster name' },
  repeat: { type: 'int', default: 1, help: 'interleave the scenarios this many times and report medians' },
  json: { type: 'string', help: 'also write machine-readable results to this file' },
  'cpu-prof': { type: 'string', help: 'start sidecars with node --cpu-prof, writing profiles to this directory' },
  'sidecar-script': { type: 'string', help: 'run this node script instead of `remora sidecar` (same flags), e.g. to compare a baseline proxy; leaves out the mTLS scenarios' },
  'sidecar-log-level': { type: 'string', default: 'warn', help: 'REMORA_LOG_LEVEL for the sidecars' },
} as const satisfies FlagDefs;

type Flags = ReturnType<typeof parseCommand<typeof defs>>['flags'];

export interface BenchPlan {
  readonly scenarios: readonly ScenarioName[];
  readonly load: LoadSettings;
  readonly repeat: number;
  readonly json?: string;
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

function plan(flags: Flags): BenchPlan {
  if (flags.mode !== 'closed' && flags.mode !== 'open') throw new UsageError(`--mode must be closed or open, got ${JSON.stringify(flags.mode)}`);
  if (flags.mode === 'open' && flags.rps <= 0) throw new UsageError('--mode open needs --rps > 0');
  const scenarios: ScenarioName[] = [];
  for (const s of flags.scenarios) {
    const known = SCENARIOS.find((k) => k === s);
    if (!known) throw new UsageError(`unknown scenario ${JSON.stringify(s)} (known: ${SCENARIOS.join(', ')})`);
    if (!scenarios.includes(known)) scenarios.push(known);
  }
  // Another script knows nothing of certificates: with --sidecar-script the default list leaves
  // the mTLS scenarios out, and naming one is an error.
  const mtls = scenarios.filter((s) => MTLS_SCENARIOS.includes(s));
  if (flags['sidecar-script'] && mtls.length > 0 && flags.scenarios.join(',') !== SCENARIOS.join(',')) {
    throw new UsageError(`--sidecar-script cannot run ${mtls.join(', ')} (the certificate flags are remora sidecar's); leave it out of --scenarios`);
  }
  const chosen = flags['sidecar-script'] ? scenarios.filter((s) => !mtls.includes(s)) : scenarios;
  if (chosen.length === 0) throw new UsageError('--scenarios is empty');
  return Object.freeze({
    scenarios: chosen,
    load: Object.freeze({
      authority: flags.authority,
      path: UNARY_PATH,
      connections: atLeast('connections', flags.connections, 1),
      streams: atLeast('streams', flags.streams, 1),
      mode: flags.mode,
      rps: atLeast('rps', flags.rps, 0),
      maxInflight: atLeast('max-inflight', flags['max-inflight'], 1),
      warmupS: seconds('warmup-s', flags['warmup-s'], 0),
      durationS: seconds('duration-s', flags['duration-s'], 0.1),
      requests: atLeast('requests', flags.requests, 0),
      payloadBytes: atLeast('payload-bytes', flags['payload-bytes'], 0),
      timeoutMs: atLeast('timeout-ms', flags['timeout-ms'], 1),
    }),
    repeat: atLeast('repeat', flags.repeat, 1),
    json: flags.json,
    cpuProfDir: flags['cpu-prof'] ? path.resolve(flags['cpu-prof']) : undefined,
    sidecarScript: flags['sidecar-script'] ? path.resolve(flags['sidecar-script']) : undefined,
    sidecarLogLevel: flags['sidecar-log-level'],
  });
}

function describeSettings(p: BenchPlan): string {
  const l = p.load;
  const shape = l.mode === 'closed'
    ? `closed loop, ${l.connections} connections × ${l.streams} streams`
    : `open loop at ${l.rps} rps over ${l.connections} connections (in-flight cap ${l.maxInflight})`;
  return [
    shape,
    `payload ${l.payloadBytes} B`,
    `warm-up ${l.warmupS} s`,
    `duration ${l.durationS} s${l.requests ? ` or ${l.requests} calls` : ''}`,
    `repeat ${p.repeat}${p.repeat > 1 ? ' (medians)' : ''}`,
    `authority ${l.authority}`,
    `scenarios ${p.scenarios.join(',')}`,
    ...(p.scenarios.some((s) => MTLS_SCENARIOS.includes(s)) ? ['mTLS hop: TLS 1.3, RSA 2048 certificates from a bench root, server sidecar STRICT'] : []),
    ...(p.sidecarScript ? [`sidecar script ${p.sidecarScript}`] : []),
    ...(p.cpuProfDir ? ['sidecars under --cpu-prof'] : []),
  ].join('; ');
}

function assertAlive(topology: Topology): void {
  const procs = [{ role: 'echo-server', proc: topology.echo }, ...[...topology.targets.values()].flatMap((t) => t.sidecars)];
  for (const { role, proc } of procs) {
    if (proc.exitCode !== null) throw new Error(`${role} (pid ${proc.pid}) exited with ${proc.exitCode}:\n${proc.output()}`);
  }
}

async function runPlan(p: BenchPlan): Promise<RoundRun[]> {
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
  try {
    topology = await startTopology({
      scenarios: p.scenarios,
      workDir,
      cluster: p.load.authority,
      cpuProfDir: p.cpuProfDir,
      sidecarScript: p.sidecarScript,
      sidecarLogLevel: p.sidecarLogLevel,
    });
    // Before measuring: each scenario is what it says (two-hop-mtls: the hop really is mTLS).
    for (const target of topology.targets.values()) await target.verify?.();
    const runs: RoundRun[] = [];
    for (let round = 0; round < p.repeat; round++) {
      // Rotate the order each round so no scenario always runs first (cold) or last (hot machine).
      const order = p.scenarios.map((_, i) => p.scenarios[(i + round) % p.scenarios.length]!);
      for (const scenario of order) {
        const target = topology.targets.get(scenario)!;
        const run = await runScenario(target, topology.echo, p.load);
        assertAlive(topology);
        // And still so after the run (outside the measured window).
        await target.verify?.();
        runs.push({ ...run, round });
        const l = run.load;
        process.stderr.write(
          `bench: round ${round + 1}/${p.repeat} ${scenario}: ${l.rps.toFixed(0)} rps, p50 ${l.latency.p50Ms.toFixed(3)} ms, ` +
            `p99 ${l.latency.p99Ms.toFixed(3)} ms, ${l.errorCount} errors\n`,
        );
      }
    }
    if (p.cpuProfDir) {
      const roles = [...topology.targets.values()].flatMap((t) => t.sidecars.map((s) => `sidecar-${s.role}.cpuprofile`));
      process.stderr.write(`bench: CPU profiles (written as the sidecars exit) in ${p.cpuProfDir}: ${roles.join(', ')}\n`);
    }
    return runs;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await topology?.stop();
    await rm(workDir, { recursive: true, force: true });
  }
}

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
    const machine = describeMachine();
    const settings = describeSettings(p);
    const runs = await runPlan(p);
    const rows = summariseAll(p.scenarios, runs);
    process.stdout.write(renderReport(machine, settings, rows) + '\n');
    if (p.json) {
      await writeFile(p.json, JSON.stringify({ machine, settings: { ...p.load, scenarios: p.scenarios, repeat: p.repeat }, summary: rows, runs }, null, 2) + '\n');
    }
  },
};
