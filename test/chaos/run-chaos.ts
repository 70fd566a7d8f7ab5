/**
 * `npm run test:chaos -- [flags]`: start the mesh once, then run each drill in its own window of
 * steady open-loop load, print a table, optionally write it as JSON, and exit non-zero when a
 * drill missed its expectation (the reasons are printed).
 */
import { parseCommand, UsageError, type FlagDefs } from '../../cli/flags.js';
import { runDrill, type DrillResult } from './drill-runner.js';
import { DRILLS, type Drill } from './drills.js';
import { interrupted, stopOnSignal } from './lifecycle.js';
import type { OpenLoop } from './load.js';
import { buildDescriptorSet } from './descriptor-set.js';
import { ChaosMesh } from './mesh.js';
import { SERVICE } from './mesh-resources.js';
import { drillTable, missedLines, writeJson } from './report.js';

const FLAGS = {
  rps: { type: 'int', help: 'open-loop arrival rate, calls per second', default: 500 },
  'drill-s': { type: 'int', help: 'load window per drill, seconds (longer when a repair overruns it)', default: 60 },
  'fault-at-s': { type: 'int', help: 'inject the fault this many seconds into the window', default: 5 },
  'baseline-s': { type: 'int', help: 'a fault-free window first (0: none)', default: 10 },
  only: { type: 'list', help: `drills to run, comma-separated: ${DRILLS.map((d) => d.name).join(', ')}` },
  'deadline-ms': { type: 'int', help: 'deadline of every call', default: 2000 },
  'max-inflight': { type: 'int', help: 'arrivals beyond this many open calls are not sent and count as DROPPED', default: 2000 },
  'etcd-down-s': { type: 'int', help: 'how long etcd stays down in the etcd-down drill', default: 15 },
  'etcd-fault': { type: 'string', help: 'sigstop (frozen, sockets open) or restart (stopped, same data dir)', default: 'sigstop' },
  idempotency: { type: 'string', help: 'how the client sidecar learns that GetProduct may be retried: reflection (from the servers, as soon as the retrying route is applied) or descriptor-set (buf build, at start)', default: 'reflection' },
  json: { type: 'string', help: 'also write the results to this file' },
  'dump-logs': { type: 'bool', help: 'print every process\'s recent output when a drill misses its expectation' },
} as const satisfies FlagDefs;

const HELP = `Usage: npm run test:chaos -- [flags]   (or node dist/test/chaos/run-chaos.js)

Chaos drills through a real mesh (etcd, 2 control planes, 3 catalog replicas with sidecars, a client
sidecar; STRICT mTLS), each under steady open-loop load of idempotent GetProduct calls.

Flags:
${Object.entries(FLAGS).map(([name, def]) => `  --${name}  ${def.help}${'default' in def ? ` (default ${JSON.stringify(def.default)})` : ''}`).join('\n')}`;

const say = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 23)} ${line}\n`);

function pickDrills(only: readonly string[]): Drill[] {
  if (only.length === 0) return [...DRILLS];
  return only.map((name) => {
    const d = DRILLS.find((x) => x.name === name);
    if (!d) throw new UsageError(`--only: no drill named ${JSON.stringify(name)}; known: ${DRILLS.map((x) => x.name).join(', ')}`);
    return d;
  });
}

/** No fault: the reference row for the drills' latencies. */
function baselineDrill(idempotency: 'reflection' | 'descriptor-set'): Drill {
  return {
    name: 'baseline',
    title: 'steady load, no fault',
    async run(ctx) {
      if (idempotency === 'descriptor-set') return ctx.mark('the client sidecar knows GetProduct is idempotent from its --descriptor-set');
      const known = (await ctx.mesh.clientCluster())?.idempotency.methods ?? 0;
      const problem = (await ctx.mesh.clientCluster())?.idempotency.problem;
      ctx.mark(`reflection has taught the client sidecar the idempotency of ${known} methods${known === 0 ? ` (none yet: ${problem ?? 'no answer yet'})` : ''}`);
    },
  };
}

async function main(): Promise<number> {
  const { flags: f, help } = parseCommand(FLAGS, process.argv.slice(2));
  if (help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const idempotency = f.idempotency;
  if (idempotency !== 'reflection' && idempotency !== 'descriptor-set') throw new UsageError('--idempotency must be reflection or descriptor-set');
  if (f['etcd-fault'] !== 'sigstop' && f['etcd-fault'] !== 'restart') throw new UsageError('--etcd-fault must be sigstop or restart');
  for (const k of ['rps', 'drill-s', 'deadline-ms', 'max-inflight'] as const) if (f[k] <= 0) throw new UsageError(`--${k} must be > 0`);
  if (f['fault-at-s'] < 0 || f['fault-at-s'] >= f['drill-s']) throw new UsageError('--fault-at-s must be within the drill window');
  const drills = pickDrills(f.only);

  let mesh: ChaosMesh | undefined;
  let load: OpenLoop | undefined;
  stopOnSignal(async () => { load?.stop(); await mesh?.stop(); }, say);

  const startedAt = new Date().toISOString();
  say(`starting the mesh (etcd, 2 control planes, 3 ${SERVICE} replicas, client sidecar; STRICT mTLS)`);
  const clientArgs = idempotency === 'descriptor-set' ? ['--descriptor-set', await buildDescriptorSet()] : [];
  mesh = await ChaosMesh.start({ replicas: 3, say, clientArgs, onCreated: (m) => { mesh = m; } });
  const results: DrillResult[] = [];
  try {
    const plan = f['baseline-s'] > 0 ? [{ drill: baselineDrill(idempotency), windowS: f['baseline-s'], faultAtS: 0 }] : [];
    for (const drill of drills) plan.push({ drill, windowS: f['drill-s'], faultAtS: f['fault-at-s'] });
    for (const { drill, windowS, faultAtS } of plan) {
      const problem = await mesh.waitSteady(60_000).then(() => undefined, (err: Error) => err.message);
      if (problem) {
        say(`not running ${drill.name} or any later drill: ${problem}`);
        results.push(notRun(drill, problem));
        break;
      }
      say(`${drill.name}: ${drill.title} (${f.rps} rps, window ${windowS} s)`);
      const result = await runDrill(mesh, drill, {
        load: { target: `127.0.0.1:${mesh.client!.outbound}`, authority: SERVICE, rps: f.rps, deadlineMs: f['deadline-ms'], maxInflight: f['max-inflight'] },
        windowS,
        faultAtS,
        drill: { etcdDownS: f['etcd-down-s'], etcdFault: f['etcd-fault'] },
        idempotencyFrom: idempotency,
        say,
        onLoad: (l) => { load = l; },
      });
      if (interrupted()) return await new Promise<number>(() => {}); // the signal handler stops the mesh and exits
      results.push(result);
      say(`${drill.name}: ${result.total.ok}/${result.total.sent} ok, p99 ${result.total.p99Ms.toFixed(1)} ms${result.met ? '' : ` — MISSED: ${result.missed.join('; ')}`}`);
      for (const [status, messages] of Object.entries(result.failureMessages)) say(`  ${status}: ${messages.join(' | ')}`);
      if (result.total.failedTotal > 0) say(`  failures by second of the window: ${Object.entries(result.failuresPerSecond).map(([s, n]) => `${s}s:${n}`).join(' ')} (fault ${result.fault.fromS.toFixed(1)}-${result.fault.toS.toFixed(1)} s)`);
      say(`  load average ${result.loadavg[0]} → ${result.loadavg[1]} (2 cores)`);
      if (!result.met && f['dump-logs']) say(mesh.outputs());
    }
  } finally {
    await mesh.stop();
  }

  process.stdout.write(`\n${drillTable(results)}\n`);
  const missed = missedLines(results);
  if (f.json) {
    await writeJson(f.json, {
      command: `npm run test:chaos -- ${process.argv.slice(2).join(' ')}`.trim(),
      startedAt,
      rps: f.rps,
      windowS: f['drill-s'],
      faultAtS: f['fault-at-s'],
      deadlineMs: f['deadline-ms'],
    }, results);
    say(`results written to ${f.json}`);
  }
  if (missed.length) {
    process.stdout.write(`\nexpectations missed:\n${missed.map((m) => `  - ${m}`).join('\n')}\n`);
    return 1;
  }
  process.stdout.write('\nevery drill met its expectation\n');
  return 0;
}

function notRun(drill: Drill, reason: string): DrillResult {
  const empty = { sent: 0, ok: 0, failed: {}, failedTotal: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 };
  return { name: drill.name, title: drill.title, loadS: 0, total: empty, fault: { ...empty, fromS: 0, toS: 0 }, timeline: [], missed: [`not run: ${reason}`], met: false, failuresPerSecond: {}, loadavg: [0, 0], failureMessages: {}, idempotentMethodsKnownAtFault: undefined };
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    say(err instanceof UsageError ? err.message : (err.stack ?? err.message));
    process.exit(2);
  },
);
