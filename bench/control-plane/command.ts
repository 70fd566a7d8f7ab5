/**
 * `remora bench control-plane`: convergence time from an etcd write to N sidecars having received
 * (and ACKed) the config that contains it, against a real etcd and one real `remora control-plane`.
 * The N sidecars are simulated as discovery streams in one worker process (fleet-worker.ts), so
 * their CPU is apart from the control plane's. Each N gets a fresh control plane and key prefix.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { parseCommand, usage, UsageError, type FlagDefs } from '../../cli/flags.js';
import { startNode } from '../../lib/processes.js';
import { describeMachine } from '../report.js';
import { startBenchControlPlane } from './control-plane-proc.js';
import { benchEtcdClient, startBenchEtcd, type BenchEtcd } from './etcd.js';
import { MAX_SIDECARS } from './fleet.js';
import { fleetBudgetMs } from './options.js';
import { deletePrefix, seedBaseMesh } from './records.js';
import { renderControlPlaneReport, verdict } from './report.js';
import type { FleetEvent, FleetOptions, FleetResult } from './types.js';

const SUMMARY = 'Benchmark the control plane: etcd write → N simulated sidecars have the new config (convergence), memory per sidecar.';
const FLEET_WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fleet-worker.js');

const defs = {
  sidecars: { type: 'list', default: '100,1000', help: 'comma-separated fleet sizes; one run (fresh control plane) each' },
  changes: { type: 'int', default: 20, help: 'measured etcd writes per run, one at a time' },
  'interval-ms': { type: 'int', default: 200, help: 'pause after a change converged before the next write' },
  'timeout-ms': { type: 'int', default: 5000, help: 'a sidecar without the change after this counts as a timeout' },
  'streams-per-channel': { type: 'int', default: 100, help: 'discovery streams multiplexed on one grpc-js channel (HTTP/2 connection)' },
  register: { type: 'bool', help: 'every simulated sidecar registers its instance: measures the registration storm, and N endpoints in the snapshot' },
  'flow-control-window': { type: 'int', default: 4194304, help: 'HTTP/2 receive window of the fleet\'s channels in bytes (grpc-node.flow_control_window); the sidecar uses 4 MiB; 0 keeps grpc-js\'s 64 KiB' },
  'base-instances': { type: 'int', default: 100, help: 'instances seeded in etcd before the control plane starts (size of the pushed snapshot)' },
  'base-services': { type: 'int', default: 10, help: 'services the seeded instances are spread over' },
  'settle-ms': { type: 'int', default: 1000, help: 'pause after connecting (then until the control plane is idle) before reading memory and starting the changes' },
  'connect-timeout-ms': { type: 'int', default: 60_000, help: 'bound on connecting all sidecars, on the registration storm, and on waiting for the control plane to go idle' },
  'etcd-data-root': { type: 'string', help: 'parent directory of etcd\'s temp data dir (default: the OS temp dir, on disk here; /dev/shm takes fsync out of the numbers)' },
  json: { type: 'string', help: 'also write machine-readable results to this file' },
  'cpu-prof': { type: 'string', help: 'run the control plane and the fleet worker under node --cpu-prof, writing profiles to this directory' },
  'control-plane-log-level': { type: 'string', default: 'warn', help: 'REMORA_LOG_LEVEL for the control plane' },
} as const satisfies FlagDefs;

type Flags = ReturnType<typeof parseCommand<typeof defs>>['flags'];

interface Plan {
  readonly sidecars: readonly number[];
  readonly fleet: Omit<FleetOptions, 'controlPlane' | 'controlPlanePid' | 'etcdPid' | 'etcdEndpoint' | 'prefix' | 'sidecars'>;
  readonly baseInstances: number;
  readonly baseServices: number;
  readonly etcdDataRoot?: string;
  readonly json?: string;
  readonly cpuProfDir?: string;
  readonly logLevel: string;
}

function atLeast(name: string, n: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (n < min || n > max) throw new UsageError(`--${name} must be from ${min} to ${max}, got ${n}`);
  return n;
}

function plan(flags: Flags): Plan {
  const sidecars = flags.sidecars.map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1 || n > MAX_SIDECARS) throw new UsageError(`--sidecars: each size must be an integer from 1 to ${MAX_SIDECARS}, got ${JSON.stringify(s)}`);
    return n;
  });
  if (sidecars.length === 0) throw new UsageError('--sidecars is empty');
  return {
    sidecars,
    fleet: {
      streamsPerChannel: atLeast('streams-per-channel', flags['streams-per-channel'], 1),
      register: flags.register,
      flowControlWindow: atLeast('flow-control-window', flags['flow-control-window'], 0, 2 ** 31 - 1),
      changes: atLeast('changes', flags.changes, 1, 10_000),
      intervalMs: atLeast('interval-ms', flags['interval-ms'], 0, 60_000),
      changeTimeoutMs: atLeast('timeout-ms', flags['timeout-ms'], 1, 600_000),
      connectTimeoutMs: atLeast('connect-timeout-ms', flags['connect-timeout-ms'], 1, 600_000),
      settleMs: atLeast('settle-ms', flags['settle-ms'], 0, 600_000),
    },
    baseInstances: atLeast('base-instances', flags['base-instances'], 0, 100_000),
    baseServices: atLeast('base-services', flags['base-services'], 1, 10_000),
    etcdDataRoot: flags['etcd-data-root'] ? path.resolve(flags['etcd-data-root']) : undefined,
    json: flags.json,
    cpuProfDir: flags['cpu-prof'] ? path.resolve(flags['cpu-prof']) : undefined,
    logLevel: flags['control-plane-log-level'],
  };
}

function describe(p: Plan): string {
  const f = p.fleet;
  return [
    `sidecars ${p.sidecars.join(',')}`,
    f.register ? 'all register (storm)' : 'watch only (register: false)',
    `${f.changes} changes, ${f.intervalMs} ms apart, timeout ${f.changeTimeoutMs} ms`,
    `${f.streamsPerChannel} streams per channel`,
    ...(f.flowControlWindow > 0 ? [`fleet HTTP/2 window ${f.flowControlWindow} B`] : []),
    `base mesh ${p.baseInstances} instances in ${p.baseServices} services`,
    `etcd data in ${p.etcdDataRoot ?? os.tmpdir()}`,
    ...(p.cpuProfDir ? ['control plane and fleet under --cpu-prof'] : []),
  ].join('; ');
}

const progress = (n: number, message: string): void => void process.stderr.write(`bench control-plane: N=${n}: ${message}\n`);

/** Runs the fleet worker to the end (bounded by its budget) and returns its result. */
async function runWorker(opts: FleetOptions, nodeArgs: string[]): Promise<FleetResult> {
  let result: FleetResult | undefined;
  const worker = await startNode(FLEET_WORKER, [JSON.stringify(opts)], {
    nodeArgs,
    onLine: (line) => {
      let e: FleetEvent;
      try {
        e = JSON.parse(line) as FleetEvent;
      } catch {
        return progress(opts.sidecars, `worker: ${line}`);
      }
      if (e.event === 'log') progress(opts.sidecars, e.message);
      else if (e.event === 'result') result = e.result;
    },
  });
  // The worker bounds itself; this is the backstop should it hang before its own timer fires.
  const killer = setTimeout(() => void worker.stop('SIGKILL'), fleetBudgetMs(opts) + 10_000);
  const code = await worker.exited;
  clearTimeout(killer);
  if (code !== 0 || !result) throw new Error(`fleet worker exited with ${code} without a result:\n${worker.output()}`);
  return result;
}

async function runOne(p: Plan, etcd: BenchEtcd, client: Etcd3, sidecars: number, runId: string): Promise<FleetResult> {
  const prefix = `/remora-bench/${runId}-n${sidecars}/`;
  const tag = `n${sidecars}${p.fleet.register ? '-register' : ''}`;
  await seedBaseMesh(client, prefix, p.baseInstances, p.baseServices);
  const cp = await startBenchControlPlane({
    etcdEndpoint: etcd.endpoint,
    prefix,
    logLevel: p.logLevel,
    cpuProf: p.cpuProfDir ? { dir: p.cpuProfDir, name: `control-plane-${tag}.cpuprofile` } : undefined,
  });
  // The fleet is profiled too: its profile says whether the simulated sidecars were the bottleneck.
  const fleetArgs = p.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', p.cpuProfDir, '--cpu-prof-name', `fleet-${tag}.cpuprofile`] : [];
  try {
    return await runWorker({ ...p.fleet, sidecars, controlPlane: cp.address, controlPlanePid: cp.proc.pid, etcdPid: etcd.pid, etcdEndpoint: etcd.endpoint, prefix }, fleetArgs);
  } finally {
    // SIGTERM, so a --cpu-prof control plane exits cleanly and writes its profile.
    await cp.proc.stop('SIGTERM', 10_000);
    await deletePrefix(client, prefix).catch(() => undefined);
  }
}

async function runPlan(p: Plan): Promise<FleetResult[]> {
  if (p.cpuProfDir) await mkdir(p.cpuProfDir, { recursive: true });
  const etcd = await startBenchEtcd(p.etcdDataRoot);
  const client = benchEtcdClient(etcd.endpoint);
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`bench control-plane: ${sig}, stopping children\n`);
    // Children started through lib/processes are killed by PID when we exit; etcd by its own hook.
    void etcd.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const runId = randomBytes(3).toString('hex');
  try {
    const results: FleetResult[] = [];
    for (const n of p.sidecars) results.push(await runOne(p, etcd, client, n, runId));
    return results;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    client.close();
    await etcd.stop();
  }
}

/** Entry point for `remora bench control-plane ...` (argv without the `control-plane` word). */
export async function runControlPlaneBench(argv: readonly string[]): Promise<void> {
  const parsed = parseCommand(defs, argv);
  if (parsed.help) {
    process.stdout.write(usage('bench control-plane', SUMMARY, defs) + '\n');
    return;
  }
  if (parsed.positional.length) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positional[0])}`);
  const p = plan(parsed.flags);
  const machine = describeMachine();
  const settings = describe(p);
  const results = await runPlan(p);
  process.stdout.write(renderControlPlaneReport(machine, settings, results) + '\n');
  if (p.cpuProfDir) process.stderr.write(`bench control-plane: CPU profiles (control-plane-*, fleet-*) in ${p.cpuProfDir}\n`);
  if (p.json) {
    const settingsJson = { ...p.fleet, sidecars: p.sidecars, baseInstances: p.baseInstances, baseServices: p.baseServices, etcdDataRoot: p.etcdDataRoot ?? os.tmpdir() };
    await writeFile(p.json, JSON.stringify({ machine, settings: settingsJson, target: verdict(results), results }, null, 2) + '\n');
  }
}
