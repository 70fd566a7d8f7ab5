/**
 * `npm run soak -- --duration-min 30 --rps 200`: the chaos mesh under steady moderate load, no
 * faults. Every --sample-s it reads each sidecar's and control plane's RSS and open file
 * descriptors; at the end it prints the curve, writes CSV and SVG, and judges whether memory,
 * descriptors and errors stayed flat (exit 1 when not).
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseCommand, UsageError, type FlagDefs } from '../../cli/flags.js';
import { interrupted, stopOnSignal } from './lifecycle.js';
import { OpenLoop, catalogClient } from './load.js';
import { ChaosMesh } from './mesh.js';
import { SERVICE } from './mesh-resources.js';
import { curveTable, toCsv, toSvg, type SoakData, type SoakSample } from './soak-report.js';
import { sampleProcess, watchedProcesses, type ProcessSample } from './soak-sampler.js';
import { judgeErrors, judgeSeries, MIN_SAMPLES, type SeriesVerdict } from './soak-verdict.js';

const FLAGS = {
  'duration-min': { type: 'int', help: 'length of the load, minutes', default: 30 },
  rps: { type: 'int', help: 'open-loop arrival rate, calls per second', default: 200 },
  'sample-s': { type: 'int', help: 'sample every process this often, seconds', default: 10 },
  'deadline-ms': { type: 'int', help: 'deadline of every call', default: 2000 },
  'max-inflight': { type: 'int', help: 'arrivals beyond this many open calls are not sent and count as DROPPED', default: 2000 },
  'rss-tolerance-pct': { type: 'int', help: 'flat: the last third\'s mean RSS (and fds) at most this much above the middle third\'s', default: 10 },
  'fd-tolerance': { type: 'int', help: 'flat: and at most this many descriptors more, on top of the percentage', default: 2 },
  out: { type: 'string', help: 'directory for soak.csv, soak.svg, soak.json (default: a new one under the temp dir)' },
} as const satisfies FlagDefs;

const HELP = `Usage: npm run soak -- [flags]   (or node dist/test/chaos/run-soak.js)

A soak through the chaos mesh (etcd, 2 control planes, 3 catalog replicas with sidecars, a client
sidecar; STRICT mTLS) under steady open-loop load, sampling memory and file descriptors.

Flags:
${Object.entries(FLAGS).map(([name, def]) => `  --${name}  ${def.help}${'default' in def ? ` (default ${JSON.stringify(def.default)})` : ''}`).join('\n')}`;

const say = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 23)} ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<number> {
  const { flags: f, help } = parseCommand(FLAGS, process.argv.slice(2));
  if (help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  for (const k of ['duration-min', 'rps', 'sample-s', 'deadline-ms', 'max-inflight'] as const) if (f[k] <= 0) throw new UsageError(`--${k} must be > 0`);
  const durationMs = f['duration-min'] * 60_000;
  const sampleMs = f['sample-s'] * 1000;
  const outDir = f.out ?? (await mkdtemp(path.join(tmpdir(), 'remora-soak-')));
  await mkdir(outDir, { recursive: true });

  let mesh: ChaosMesh | undefined;
  let load: OpenLoop | undefined;
  stopOnSignal(async () => { load?.stop(); await mesh?.stop(); }, say);
  say(`starting the mesh (etcd, 2 control planes, 3 ${SERVICE} replicas, client sidecar; STRICT mTLS)`);
  mesh = await ChaosMesh.start({ replicas: 3, say, onCreated: (m) => { mesh = m; } });
  const processes = watchedProcesses(mesh);
  const readings: { tS: number; procs: (ProcessSample | undefined)[] }[] = [];
  const gone = new Set<string>();
  try {
    const client = catalogClient({ target: `127.0.0.1:${mesh.client!.outbound}`, authority: SERVICE });
    const activeLoad = new OpenLoop(client, { target: '', authority: SERVICE, rps: f.rps, deadlineMs: f['deadline-ms'], maxInflight: f['max-inflight'] });
    load = activeLoad;
    say(`soak: ${f.rps} rps for ${f['duration-min']} min, sampling every ${f['sample-s']} s; output in ${outDir}`);
    let running = true;
    const loadDone = activeLoad.run(() => durationMs, durationMs).finally(() => { running = false; });
    for (let k = 1; k * sampleMs <= durationMs; k++) {
      await sleep(k * sampleMs - activeLoad.elapsed());
      if (!running && k * sampleMs > activeLoad.elapsed()) break;
      const procs = await Promise.all(processes.map((p) => sampleProcess(p.pid).catch(() => {
        gone.add(p.name);
        return undefined;
      })));
      readings.push({ tS: (k * sampleMs) / 1000, procs });
      const sidecars = processes.map((p, i) => (p.kind === 'sidecar' ? procs[i] : undefined)).filter((x): x is ProcessSample => !!x);
      say(`t=${((k * sampleMs) / 60_000).toFixed(1)} min: sidecars ${sidecars.map((s) => `${s.rssMb} MB/${s.fds} fds`).join(', ')}; calls so far ${activeLoad.log.length}`);
    }
    await loadDone;
    client.close();
    load = undefined;
    if (interrupted()) return await new Promise<number>(() => {}); // the signal handler stops the mesh and exits

    const samples: SoakSample[] = readings.map((r) => {
      const w = activeLoad.log.summarize((r.tS * 1000) - sampleMs, r.tS * 1000);
      return { tS: r.tS, procs: r.procs, calls: w.sent + (w.failed.DROPPED ?? 0), errors: w.failedTotal, p99Ms: w.p99Ms };
    });
    const data: SoakData = { processes, samples };
    const total = activeLoad.log.summarize();

    const judged: SeriesVerdict[] = [];
    processes.forEach((p, i) => {
      if (p.kind === 'etcd') return; // not ours; shown in the curve for context
      const series = (pick: (s: ProcessSample) => number) => samples.flatMap((s) => (s.procs[i] ? [pick(s.procs[i]!)] : []));
      judged.push(judgeSeries(`${p.name} RSS`, series((s) => s.rssMb), { pct: f['rss-tolerance-pct'], abs: 0 }));
      judged.push(judgeSeries(`${p.name} fds`, series((s) => s.fds), { pct: f['rss-tolerance-pct'], abs: f['fd-tolerance'] }));
    });
    const errors = judgeErrors(samples.map((s) => s.errors));
    const problems: string[] = [];
    if (samples.length < MIN_SAMPLES) problems.push(`only ${samples.length} samples: need at least ${MIN_SAMPLES} (a longer --duration-min or a shorter --sample-s) to judge`);
    for (const name of gone) problems.push(`${name} exited during the soak`);
    for (const v of judged) {
      if (v.flat) continue;
      problems.push(`${v.series} not flat: middle third ${v.middleMean.toFixed(1)}, last third ${v.lastMean.toFixed(1)} (${v.changePct >= 0 ? '+' : ''}${v.changePct.toFixed(1)}%)${v.steadyClimb ? ', climbing steadily' : ''}`);
    }
    if (errors.growing) problems.push(`errors grew: ${errors.middle} in the middle third, ${errors.last} in the last`);

    const title = `Remora soak: ${f.rps} rps for ${f['duration-min']} min, ${total.sent} calls, ${total.failedTotal} failed`;
    await writeFile(path.join(outDir, 'soak.csv'), toCsv(data));
    await writeFile(path.join(outDir, 'soak.svg'), toSvg(data, title));
    await writeFile(path.join(outDir, 'soak.json'), JSON.stringify({
      command: `npm run soak -- ${process.argv.slice(2).join(' ')}`.trim(),
      rps: f.rps, durationMin: f['duration-min'], sampleS: f['sample-s'], total, failureMessages: activeLoad.log.failureMessages(),
      verdict: { flat: problems.length === 0, problems, series: judged, errors }, data,
    }, null, 2) + '\n');

    process.stdout.write(`\n${title}\np50 ${total.p50Ms.toFixed(1)} ms, p99 ${total.p99Ms.toFixed(1)} ms, max ${total.maxMs.toFixed(1)} ms; failed by status: ${JSON.stringify(total.failed)}\n\n`);
    process.stdout.write(`${curveTable(data)}\n\n`);
    process.stdout.write(`${['series', 'middle third', 'last third', 'change', 'steady climb', 'flat'].join(' | ')}\n`);
    for (const v of judged) process.stdout.write(`${v.series} | ${v.middleMean.toFixed(1)} | ${v.lastMean.toFixed(1)} | ${v.changePct >= 0 ? '+' : ''}${v.changePct.toFixed(1)}% | ${v.steadyClimb ? 'yes' : 'no'} | ${v.flat ? 'yes' : 'NO'}\n`);
    process.stdout.write(`errors: ${errors.total} in all, ${errors.middle} in the middle third, ${errors.last} in the last\n`);
    process.stdout.write(`\nwrote ${path.join(outDir, 'soak.csv')}, soak.svg, soak.json\n`);
    if (problems.length) {
      process.stdout.write(`\nverdict: NOT FLAT\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 1;
    }
    process.stdout.write('\nverdict: FLAT (memory, file descriptors and errors)\n');
    return 0;
  } finally {
    await mesh.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    say(err instanceof UsageError ? err.message : (err.stack ?? err.message));
    process.exit(2);
  },
);
