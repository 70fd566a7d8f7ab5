/**
 * One measured run of one scenario: a fresh load generator (our node:http2 worker process, or
 * h2load) against the scenario's entry port, with the CPU of every process in the path read over
 * exactly the generator's measured window.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { cpuMicros, rssBytes, startNode, type Proc } from '../lib/processes.js';
import type { Workload } from './echo-service.js';
import { runH2load, type H2load } from './h2load.js';
import type { LoadHooks, LoadMode, LoadOptions, LoadResult } from './loadgen.js';
import type { WorkerEvent } from './loadgen-worker.js';
import type { ScenarioName, Target } from './topology.js';

const LOADGEN_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'loadgen-worker.js');
const RSS_SAMPLE_MS = 250;
/** Beyond warm-up + duration: the generator's drain bound plus process start-up and exit. */
const WORKER_SLACK_MS = 20_000;

export interface ProcessCost {
  readonly role: string;
  readonly pid: number;
  /** CPU µs per operation (a unary call, a server-streamed message, a bidi round trip). */
  readonly cpuUsPerOp: number;
  /** Share of one core the process used over the window (1 = a whole core): near 1, it was the bottleneck. */
  readonly busy: number;
  /** Sidecars only: highest RSS seen during the run. */
  readonly peakRssBytes?: number;
}

/** What varies between the runs of one bench invocation, besides the scenario. */
export interface RunCase {
  readonly workload: Workload;
  readonly payloadBytes: number;
  /** server-stream only: messages per call (0 for the other workloads). */
  readonly streamMessages: number;
  readonly mode: LoadMode;
  /** Open loop: the offered rate (0 for closed loop). */
  readonly rps: number;
}

export interface ScenarioRun {
  readonly scenario: ScenarioName;
  readonly case: RunCase;
  readonly load: LoadResult;
  readonly sidecars: readonly ProcessCost[];
  readonly echo: ProcessCost;
  readonly loadgen: ProcessCost;
}

export type LoadSettings = Omit<LoadOptions, 'host' | 'port'>;

/** Our node:http2 generator, or h2load (unary only; it writes its body and log files in workDir). */
export type Generator = { readonly kind: 'node' } | { readonly kind: 'h2load'; readonly h2load: H2load; readonly workDir: string };

export function caseOf(s: LoadSettings): RunCase {
  return {
    workload: s.workload,
    payloadBytes: s.payloadBytes,
    streamMessages: s.workload === 'server-stream' ? s.streamMessages : 0,
    mode: s.mode,
    rps: s.mode === 'open' ? s.rps : 0,
  };
}

/** e.g. `unary 100 B`, `server-stream 1024 B × 100`, `unary 100 B @ 500/s`. */
export function caseLabel(c: RunCase, withRate = true): string {
  const stream = c.workload === 'server-stream' ? ` × ${c.streamMessages}` : '';
  const rate = withRate && c.mode === 'open' ? ` @ ${c.rps}/s` : '';
  return `${c.workload} ${c.payloadBytes} B${stream}${rate}`;
}

export function sameCase(a: RunCase, b: RunCase): boolean {
  return a.workload === b.workload && a.payloadBytes === b.payloadBytes && a.streamMessages === b.streamMessages && a.mode === b.mode && a.rps === b.rps;
}

async function cpuOf(procs: readonly Proc[]): Promise<number[]> {
  return Promise.all(procs.map((p) => cpuMicros(p.pid).catch(() => Number.NaN)));
}

interface GeneratorOutcome {
  readonly result: LoadResult;
  readonly pid: number;
}

/** Our generator in its own process, so its CPU is its own; it reports the window over stdout. */
async function runNodeGenerator(options: LoadOptions, hooks: LoadHooks, scenario: string): Promise<GeneratorOutcome> {
  let result: LoadResult | undefined;
  let started = false;
  let ended = false;
  const onLine = (line: string): void => {
    let e: WorkerEvent;
    try {
      e = JSON.parse(line) as WorkerEvent;
    } catch {
      return; // not ours (e.g. a runtime warning)
    }
    if (e.event === 'measure-start') {
      started = true;
      hooks.onMeasureStart?.();
    } else if (e.event === 'measure-end') {
      ended = true;
      hooks.onMeasureEnd?.();
    } else if (e.event === 'result') result = e.result;
  };
  const worker = await startNode(LOADGEN_SCRIPT, [JSON.stringify(options)], { onLine });
  const limit = setTimeout(() => { void worker.stop('SIGKILL'); }, (options.warmupS + options.durationS) * 1000 + WORKER_SLACK_MS);
  try {
    const code = await worker.exited;
    if (code !== 0 || !result) throw new Error(`load generator for ${scenario} failed (exit ${code}):\n${worker.output()}`);
    if (!started || !ended) throw new Error(`load generator for ${scenario} never reported its measured window`);
    return { result, pid: worker.pid };
  } finally {
    clearTimeout(limit);
    await worker.stop('SIGKILL');
  }
}

export async function runScenario(target: Target, echo: Proc, settings: LoadSettings, generator: Generator, runId: string): Promise<ScenarioRun> {
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
  let windowStart = 0;
  let windowEnd = 0;
  const hooks: LoadHooks = {
    onMeasureStart: () => { windowStart = performance.now(); cpuStart = cpuOf(watched); },
    onMeasureEnd: () => { windowEnd = performance.now(); cpuEnd = cpuOf(watched); },
  };
  const options: LoadOptions = { ...settings, host: '127.0.0.1', port: target.port };
  try {
    const { result, pid } = generator.kind === 'h2load'
      ? await runH2load(generator.h2load, options, generator.workDir, runId, hooks)
      : await runNodeGenerator(options, hooks, target.scenario);
    if (!cpuStart || !cpuEnd) throw new Error(`the load generator for ${target.scenario} never reported its measured window`);
    const [before, after] = await Promise.all([cpuStart, cpuEnd]);
    await sampleRss();
    const windowUs = Math.max(1, (windowEnd - windowStart) * 1000);
    const cost = (i: number): { cpuUsPerOp: number; busy: number } => {
      const used = after[i]! - before[i]!;
      return { cpuUsPerOp: result.ops > 0 ? used / result.ops : 0, busy: used / windowUs };
    };
    return {
      scenario: target.scenario,
      case: caseOf(settings),
      load: result,
      sidecars: target.sidecars.map((s, i) => ({ role: s.role, pid: s.proc.pid, ...cost(i), peakRssBytes: peaks[i]! })),
      echo: { role: 'echo-server', pid: echo.pid, ...cost(watched.length - 1) },
      loadgen: {
        role: generator.kind === 'h2load' ? 'h2load' : 'loadgen',
        pid,
        cpuUsPerOp: result.cpuUsPerOp,
        busy: result.windowS > 0 ? result.cpuMicros / (result.windowS * 1e6) : 0,
      },
    };
  } finally {
    clearInterval(sampler);
  }
}
