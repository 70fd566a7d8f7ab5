/**
 * `--generator h2load`: unary load from nghttp2's h2load (Debian's nghttp2-client) instead of our
 * own generator, as a second opinion on the numbers and on what our generator costs.
 *
 * h2load posts a prepared body file holding one gRPC frame with the gRPC headers. It reads HTTP
 * status only, never grpc-status, so a call answered `200` with a gRPC error counts as a success:
 * one call through the target is checked with our own client (grpc-status 0) before each run.
 * Latency percentiles come from h2load's per-request log (--log-file), which holds the measured
 * period only; with --rps h2load times each request from when it was actually sent, so an open
 * loop through h2load is not corrected for coordinated omission as ours is.
 */
import { execFile, spawn } from 'node:child_process';
import { access, readFile, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { cpuMicros } from '../lib/processes.js';
import { LatencyHistogram } from './histogram.js';
import { grpcFrame, runLoad, type LoadHooks, type LoadOptions, type LoadResult } from './loadgen.js';

const run = promisify(execFile);
const INSTALL_HINT = 'install it with `apt-get install nghttp2-client` (Debian/Ubuntu)';
/** Beyond warm-up + duration: start-up, stopping all clients, writing the log. */
const SLACK_MS = 15_000;
const WINDOW_START = 'Main benchmark duration is started';
const WINDOW_END = 'Main benchmark duration is over';

export interface H2load {
  readonly bin: string;
  /** e.g. `nghttp2/1.52.0` */
  readonly version: string;
}

/** Finds h2load on PATH (or /usr/bin) and checks it has the flags the bench uses; throws saying how to install it. */
export async function findH2load(): Promise<H2load> {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/bin'];
  let bin: string | undefined;
  for (const dir of dirs) {
    const candidate = path.join(dir, 'h2load');
    try {
      await access(candidate, constants.X_OK);
      bin = candidate;
      break;
    } catch { /* keep looking */ }
  }
  if (!bin) throw new Error(`--generator h2load: h2load not found on PATH or in /usr/bin; ${INSTALL_HINT}`);
  const [{ stdout: versionOut }, help] = await Promise.all([
    run(bin, ['--version']),
    // h2load exits 0 on --help, but be lenient: only the text matters.
    run(bin, ['--help']).then((r) => r.stdout, (err: { stdout?: string }) => err.stdout ?? ''),
  ]);
  const version = /nghttp2\/\S+/.exec(versionOut)?.[0] ?? versionOut.trim();
  const missing = ['--warm-up-time', '--log-file', '--rps', '--duration'].filter((flag) => !help.includes(flag));
  if (missing.length > 0) throw new Error(`--generator h2load: ${bin} (${version}) lacks ${missing.join(', ')}; the bench needs nghttp2 1.40 or newer: ${INSTALL_HINT}`);
  return { bin, version };
}

/** The numbers h2load prints at the end of a run (its own view; the log file has the detail). */
export interface H2loadSummary {
  readonly total: number;
  readonly started: number;
  readonly done: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly timeout: number;
  readonly status2xx: number;
  readonly reqPerS: number;
}

export function parseH2loadSummary(text: string): H2loadSummary {
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text);
  if (!req) throw new Error(`h2load printed no "requests:" line:\n${text.slice(-2000)}`);
  const n = (i: number): number => Number(req[i]);
  const codes = /status codes: (\d+) 2xx/.exec(text);
  const finished = /finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(text);
  return {
    total: n(1),
    started: n(2),
    done: n(3),
    succeeded: n(4),
    failed: n(5),
    errored: n(6),
    timeout: n(7),
    status2xx: codes ? Number(codes[1]) : 0,
    reqPerS: finished ? Number(finished[1]) : 0,
  };
}

export interface H2loadLog {
  readonly histogram: LatencyHistogram;
  readonly completed: number;
  readonly ok: number;
  readonly errors: Readonly<Record<string, number>>;
  /** Rows with status 0: calls started in the warm-up that ended in the measured period; not counted. */
  readonly fromWarmup: number;
}

/**
 * Reads `--log-file` rows (start µs since epoch, HTTP status or -1 for a failed stream, µs to end
 * of response). h2load 1.52 also logs, with status 0, the calls that were in flight when its
 * warm-up ended (its summary counts them as succeeded); they belong to no period and are skipped.
 */
export function parseH2loadLog(text: string): H2loadLog {
  const histogram = new LatencyHistogram();
  const errors: Record<string, number> = {};
  let completed = 0;
  let ok = 0;
  let fromWarmup = 0;
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const [, status, micros] = line.split('\t');
    if (status === undefined || micros === undefined) continue;
    const code = Number(status);
    if (code === 0) {
      fromWarmup++;
      continue;
    }
    completed++;
    if (code >= 200 && code < 300) {
      ok++;
      histogram.recordMicros(Number(micros));
    } else {
      const kind = code < 0 ? 'stream-failed' : `http-${code}`;
      errors[kind] = (errors[kind] ?? 0) + 1;
    }
  }
  return { histogram, completed, ok, errors, fromWarmup };
}

/** h2load's command line for one run. */
export function h2loadArgs(opts: LoadOptions, bodyFile: string, logFile: string): string[] {
  const ms = (s: number): string => `${Math.max(1, Math.round(s * 1000))}ms`;
  const open = opts.mode === 'open';
  // Open loop: h2load's --rps is per client, and -m caps each client's streams in flight.
  const streams = open ? Math.max(1, Math.ceil(opts.maxInflight / opts.connections)) : opts.streams;
  return [
    '-t', '1',
    '-c', String(opts.connections),
    '-m', String(streams),
    '-D', ms(opts.durationS),
    ...(opts.warmupS > 0 ? ['--warm-up-time', ms(opts.warmupS)] : []),
    ...(open ? ['--rps', String(opts.rps / opts.connections)] : []),
    '-d', bodyFile,
    '-H', 'content-type: application/grpc',
    '-H', 'te: trailers',
    '-H', `:authority: ${opts.authority}`,
    '--log-file', logFile,
    `http://${opts.host}:${opts.port}${opts.path}`,
  ];
}

/** One gRPC call through the target, read with our own client: h2load cannot tell a gRPC error from success. */
async function checkGrpcStatus(opts: LoadOptions): Promise<void> {
  const r = await runLoad({ ...opts, mode: 'closed', connections: 1, streams: 1, warmupS: 0, durationS: 5, requests: 1 });
  if (r.ok !== 1) {
    throw new Error(`--generator h2load: a check call to ${opts.host}:${opts.port}${opts.path} (authority ${opts.authority}) failed: ${JSON.stringify(r.errors)}; h2load would count such answers as successes`);
  }
}

/**
 * CPU (µs) of this process's children that have exited and been reaped (cutime + cstime): how
 * h2load's CPU is read after it exits, since it exits right after its measured period ends and
 * its own /proc entry may be gone by the time we read it.
 */
async function reapedChildrenCpuMicros(): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1e6) / 100; // USER_HZ is 100 on Linux
}

export interface H2loadRun {
  readonly result: LoadResult;
  readonly pid: number;
  readonly summary: H2loadSummary;
  readonly args: readonly string[];
}

/**
 * Runs h2load once against `opts` (unary only), calling the hooks as h2load reports its measured
 * period starting and ending, and reading its CPU from /proc at the same moments.
 */
export async function runH2load(h2: H2load, opts: LoadOptions, workDir: string, runId: string, hooks: LoadHooks = {}): Promise<H2loadRun> {
  if (opts.workload !== 'unary') throw new Error(`--generator h2load drives unary calls only, not ${opts.workload}`);
  await checkGrpcStatus(opts);
  const bodyFile = path.join(workDir, `h2load-body-${opts.payloadBytes}.bin`);
  const logFile = path.join(workDir, `h2load-${runId}.log`);
  await writeFile(bodyFile, grpcFrame(opts.payloadBytes));
  await writeFile(logFile, '');
  const args = h2loadArgs(opts, bodyFile, logFile);

  // Nothing else of ours exits while h2load runs, so the change in reaped-children CPU is h2load's.
  const childrenBefore = await reapedChildrenCpuMicros();
  const child = spawn(h2.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${h2.bin}`);
  const killOnExit = (): void => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } };
  process.once('exit', killOnExit);
  let output = '';
  child.stderr.on('data', (b: Buffer) => { output += b.toString(); });
  let cpuStart: Promise<number> | undefined;
  let sawEnd = false;
  let windowStart = 0;
  let windowEnd = 0;
  createInterface({ input: child.stdout }).on('line', (line) => {
    output += line + '\n';
    if (line.startsWith(WINDOW_START) && !cpuStart) {
      windowStart = performance.now();
      cpuStart = cpuMicros(pid);
      hooks.onMeasureStart?.();
    } else if (line.startsWith(WINDOW_END) && !sawEnd) {
      sawEnd = true;
      windowEnd = performance.now();
      hooks.onMeasureEnd?.();
    }
  });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const limit = setTimeout(killOnExit, (opts.warmupS + opts.durationS) * 1000 + SLACK_MS);
  let code: number | string;
  try {
    code = await exited;
  } finally {
    clearTimeout(limit);
    process.removeListener('exit', killOnExit);
  }
  if (code !== 0) throw new Error(`h2load exited with ${code}:\nh2load ${args.join(' ')}\n${output.slice(-4000)}`);
  if (!cpuStart || !sawEnd) throw new Error(`h2load never reported its measured period:\n${output.slice(-4000)}`);
  const atStart = await cpuStart.catch((err: Error) => { throw new Error(`could not read h2load's CPU at the start of its measured period: ${err.message}`); });
  // From the start of the measured period to exit: stopping the clients and printing after it is tiny.
  const cpu = (await reapedChildrenCpuMicros()) - childrenBefore - atStart;
  const summary = parseH2loadSummary(output);
  const log = parseH2loadLog(await readFile(logFile, 'utf8'));
  if (log.completed === 0) throw new Error(`h2load completed no requests against ${opts.host}:${opts.port}:\nh2load ${args.join(' ')}\n${output.slice(-4000)}`);
  const windowS = (windowEnd - windowStart) / 1000;
  const errorCount = log.completed - log.ok;
  return {
    pid,
    summary,
    args,
    result: {
      workload: 'unary',
      unit: 'call',
      sent: summary.started,
      completed: log.completed,
      ok: log.ok,
      rps: windowS > 0 ? log.ok / windowS : 0,
      ops: log.completed,
      opsPerS: windowS > 0 ? log.ok / windowS : 0,
      windowS,
      errors: log.errors,
      errorCount,
      drops: 0,
      warmupCompleted: log.fromWarmup,
      abandoned: Math.max(0, summary.started - summary.done),
      sessionErrors: summary.errored,
      latency: log.histogram.summary(),
      histogram: log.histogram.encode(),
      cpuMicros: cpu,
      cpuUsPerOp: log.completed > 0 ? cpu / log.completed : 0,
    },
  };
}
