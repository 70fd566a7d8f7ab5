/** Human-readable bench output: the machine and settings, then markdown tables. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { OpUnit } from './loadgen.js';
import type { ScenarioSummary } from './summary.js';

export interface Machine {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryMb: number;
  readonly node: string;
  readonly kernel: string;
  /** 1-minute load average when the bench started: a busy machine explains odd numbers. */
  readonly loadAvg1m: number;
  /** ... and when it ended (absent until then). */
  readonly loadAvg1mEnd?: number;
}

export function describeMachine(): Machine {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch { /* not Linux: os.cpus() will do */ }
  return {
    cpuModel,
    cores: os.cpus().length,
    memoryMb: Math.round(os.totalmem() / (1024 * 1024)),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    loadAvg1m: os.loadavg()[0]!,
  };
}

/** A generator near a whole core may be what limited throughput, not the path under test. */
export const GENERATOR_BUSY_WARNING = 0.9;

const f = (n: number, digits: number): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const ms = (n: number): string => f(n, n < 10 ? 3 : 1);
const signed = (n: number): string => (n >= 0 ? '+' : '') + ms(n);
const signedUs = (n: number): string => (n >= 0 ? '+' : '') + f(n, 0);
const pct = (n: number): string => `${f(n * 100, 0)}%`;
const UNIT_PLURAL: Readonly<Record<OpUnit, string>> = { call: 'calls', message: 'msgs', 'round-trip': 'round trips' };

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

function throughput(r: ScenarioSummary): string {
  const rate = `${f(r.opsPerS, 0)} ${UNIT_PLURAL[r.unit]}/s`;
  return r.unit === 'message' ? `${rate} (${f(r.rps, 0)} calls/s)` : rate;
}

/** Only the workloads present get a line: what an op is and what the latency measures. */
function legend(rows: readonly ScenarioSummary[]): string[] {
  const present = new Set(rows.map((r) => r.case.workload));
  const lines: string[] = [];
  if (present.has('unary')) lines.push('# unary: op = one call; latency per call');
  if (present.has('server-stream')) lines.push('# server-stream: op = one streamed response message (msgs/s: received in the window by any call; calls/s: completed); latency per call, to its last message and trailers');
  if (present.has('bidi')) lines.push('# bidi: op = one ping-pong round trip on a long-lived call (connections × streams calls); latency per round trip');
  return lines;
}

export function renderReport(machine: Machine, settings: string, rows: readonly ScenarioSummary[], headerNotes: readonly string[] = []): string {
  const end = machine.loadAvg1mEnd ?? os.loadavg()[0]!;
  const header = [
    `# remora bench: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryMb} MB, node ${machine.node}, ${machine.kernel}, ` +
      `load avg ${machine.loadAvg1m.toFixed(2)} at start, ${end.toFixed(2)} at end`,
    `# settings: ${settings}`,
    ...headerNotes.map((n) => `# ${n}`),
    ...legend(rows),
  ].join('\n');
  const main = table(
    ['case', 'scenario', 'throughput', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'errors', 'proxy CPU µs/op (per hop)', 'peak RSS MB', 'vs direct'],
    rows.map((r) => [
      r.label,
      r.scenario,
      throughput(r),
      ms(r.p50Ms),
      ms(r.p90Ms),
      ms(r.p99Ms),
      ms(r.p999Ms),
      String(r.errors) + (r.drops > 0 ? ` (+${r.drops} dropped)` : ''),
      r.sidecars.length ? r.sidecars.map((s) => f(s.cpuUsPerOp, 0)).join(' + ') : '-',
      r.sidecars.length ? r.sidecars.map((s) => f(s.peakRssMb, 0)).join(' + ') : '-',
      r.vsDirect
        ? `${f(r.vsDirect.rpsRatio, 2)}× throughput, p50 ${signed(r.vsDirect.addedP50MsPerHop)} ms/hop, p99 ${signed(r.vsDirect.addedP99MsPerHop)} ms/hop`
        : '-',
    ]),
  );
  const cpu = table(
    ['case', 'scenario', 'generator µs/op', 'generator busy', 'echo server µs/op', 'proxies µs/op', 'proxies busy', 'total µs/op'],
    rows.map((r) => {
      const side = r.sidecars.reduce((n, s) => n + s.cpuUsPerOp, 0);
      return [
        r.label,
        r.scenario,
        f(r.loadgenCpuUsPerOp, 1),
        pct(r.loadgenBusy),
        f(r.echoCpuUsPerOp, 1),
        f(side, 1),
        r.sidecars.length ? r.sidecars.map((s) => pct(s.busy)).join(' + ') : '-',
        f(r.loadgenCpuUsPerOp + r.echoCpuUsPerOp + side, 1),
      ];
    }),
  );
  const mtlsRows = rows.filter((r) => r.vsPlaintext);
  const mtls = table(
    ['case', 'scenario', 'against', 'throughput', 'p50 ms', 'p99 ms', 'added proxy CPU µs/op (per hop)', 'added total proxy CPU µs/op'],
    mtlsRows.map((r) => {
      const v = r.vsPlaintext!;
      return [
        r.label,
        r.scenario,
        v.scenario,
        `${f(v.rpsRatio, 2)}×`,
        signed(v.addedP50Ms),
        signed(v.addedP99Ms),
        v.addedCpuUsPerOp.map(signedUs).join(' / '),
        signedUs(v.addedCpuUsPerOp.reduce((n, x) => n + x, 0)),
      ];
    }),
  );
  const notes: string[] = [];
  for (const r of rows) {
    const which = `${r.scenario} (${r.label})`;
    if (r.requests === 0) {
      notes.push(`WARNING: ${which}: no call ended inside the measured window, so it has no latency: calls outlast the window; raise --duration-s or lower the load per call`);
    }
    if (r.errors > 0) notes.push(`WARNING: ${which} had ${r.errors} failed operations: ${JSON.stringify(r.errorsByKind)}`);
    if (r.drops > 0) notes.push(`WARNING: ${which} dropped ${r.drops} arrivals at the in-flight cap (open loop): the system could not keep up`);
    if (r.loadgenBusy >= GENERATOR_BUSY_WARNING) {
      notes.push(`WARNING: ${which}: the load generator used ${pct(r.loadgenBusy)} of a core: it may have set the pace, not the path under test`);
    }
  }
  return [
    header,
    '',
    main,
    '',
    'CPU per operation by process, and each one\'s share of a core over the window (all processes share this machine\'s cores):',
    '',
    cpu,
    ...(mtlsRows.length ? ['', 'The cost of mTLS and features: each scenario against its simpler twin (the same topology with less switched on), run in the same round and case, medians:', '', mtls] : []),
    ...(notes.length ? ['', ...notes] : []),
  ].join('\n');
}
