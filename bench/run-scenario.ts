/**
 * One measured run of one scenario: a fresh load-generator process against the scenario's entry
 * port, with the CPU of every process in the path read over exactly the generator's measured window.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuMicros, rssBytes, startNode, type Proc } from '../lib/processes.js';
import type { LoadOptions, LoadResult } from './loadgen.js';
import type { WorkerEvent } from './loadgen-worker.js';
import type { ScenarioName, Target } from './topology.js';

const LOADGEN_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'loadgen-worker.js');
const RSS_SAMPLE_MS = 250;
/** Beyond warm-up + duration: the generator's drain bound plus process start-up and exit. */
const WORKER_SLACK_MS = 20_000;

export interface ProcessCost {
  readonly role: string;
  readonly pid: number;
  readonly cpuUsPerRequest: number;
  /** Sidecars only: highest RSS seen during the run. */
  readonly peakRssBytes?: number;
}

export interface ScenarioRun {
  readonly scenario: ScenarioName;
  readonly load: LoadResult;
  readonly sidecars: readonly ProcessCost[];
  readonly echo: ProcessCost;
  readonly loadgen: ProcessCost;
}

export type LoadSettings = Omit<LoadOptions, 'host' | 'port'>;

async function cpuOf(procs: readonly Proc[]): Promise<number[]> {
  return Promise.all(procs.map((p) => cpuMicros(p.pid).catch(() => Number.NaN)));
}

export async function runScenario(target: Target, echo: Proc, settings: LoadSettings): Promise<ScenarioRun> {
  const watched = [...target.sidecars.map((s) => s.proc), echo];
  const peaks = target.sidecars.map(() => 0);
  const sampleRss = async (): Promise<void> => {
    const rss = await Promise.all(target.sidecars.map((s) => rssBytes(s.proc.pid).catch(() => 0)));
    rss.forEach((v, i) => { if (v > peaks[i]!) peaks[i] = v; });
  };
  await sampleRss();
  const sampler = setInterval(() => { void sampleRss(); }, RSS_SAMPLE_MS);

  let cpuStart: Promise<number[]> | undefined;
  let cpuEnd: Promise<number[]> | undefined;
  let result: LoadResult | undefined;
  const onLine = (line: string): void => {
    let e: WorkerEvent;
    try {
      e = JSON.parse(line) as WorkerEvent;
    } catch {
      return; // not ours (e.g. a runtime warning)
    }
    if (e.event === 'measure-start') cpuStart = cpuOf(watched);
    else if (e.event === 'measure-end') cpuEnd = cpuOf(watched);
    else if (e.event === 'result') result = e.result;
  };

  const options: LoadOptions = { ...settings, host: '127.0.0.1', port: target.port };
  const worker = await startNode(LOADGEN_SCRIPT, [JSON.stringify(options)], { onLine });
  const limit = setTimeout(() => { void worker.stop('SIGKILL'); }, (settings.warmupS + settings.durationS) * 1000 + WORKER_SLACK_MS);
  try {
    const code = await worker.exited;
    if (code !== 0 || !result) throw new Error(`load generator for ${target.scenario} failed (exit ${code}):\n${worker.output()}`);
    if (!cpuStart || !cpuEnd) throw new Error(`load generator for ${target.scenario} never reported its measured window`);
    const [before, after] = await Promise.all([cpuStart, cpuEnd]);
    await sampleRss();
    const perReq = (i: number): number => (result!.completed > 0 ? (after[i]! - before[i]!) / result!.completed : 0);
    return {
      scenario: target.scenario,
      load: result,
      sidecars: target.sidecars.map((s, i) => ({ role: s.role, pid: s.proc.pid, cpuUsPerRequest: perReq(i), peakRssBytes: peaks[i]! })),
      echo: { role: 'echo-server', pid: echo.pid, cpuUsPerRequest: perReq(watched.length - 1) },
      loadgen: { role: 'loadgen', pid: worker.pid, cpuUsPerRequest: result.cpuUsPerRequest },
    };
  } finally {
    clearTimeout(limit);
    clearInterval(sampler);
    await worker.stop('SIGKILL');
  }
}
