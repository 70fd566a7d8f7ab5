/** Human-readable bench output: the machine and settings, then markdown tables. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { ScenarioSummary } from './summary.js';

export interface Machine {
  readonly cpuModel: string;
  readonly cores: number;
  readonly node: string;
  readonly kernel: string;
  /** 1-minute load average when the bench started: a busy machine explains odd numbers. */
  readonly loadAvg1m: number;
}

export function describeMachine(): Machine {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch { /* not Linux: os.cpus() will do */ }
  return { cpuModel, cores: os.cpus().length, node: process.version, kernel: `${os.type()} ${os.release()}`, loadAvg1m: os.loadavg()[0]! };
}

const f = (n: number, digits: number): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const ms = (n: number): string => f(n, n < 10 ? 3 : 1);
const signed = (n: number): string => (n >= 0 ? '+' : '') + ms(n);
const signedUs = (n: number): string => (n >= 0 ? '+' : '') + f(n, 0);

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

export function renderReport(machine: Machine, settings: string, rows: readonly ScenarioSummary[]): string {
  const header =
    `# remora bench: ${machine.cpuModel}, ${machine.cores} cores, node ${machine.node}, ${machine.kernel}, ` +
    `load avg ${machine.loadAvg1m.toFixed(2)} at start, ${os.loadavg()[0]!.toFixed(2)} at end\n# settings: ${settings}`;
  const main = table(
    ['scenario', 'rps', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'errors', 'sidecar CPU µs/req (per hop)', 'peak RSS MB', 'vs direct'],
    rows.map((r) => [
      r.scenario,
      f(r.rps, 0),
      ms(r.p50Ms),
      ms(r.p90Ms),
      ms(r.p99Ms),
      ms(r.p999Ms),
      String(r.errors) + (r.drops > 0 ? ` (+${r.drops} dropped)` : ''),
      r.sidecars.length ? r.sidecars.map((s) => f(s.cpuUsPerRequest, 0)).join(' + ') : '-',
      r.sidecars.length ? r.sidecars.map((s) => f(s.peakRssMb, 0)).join(' + ') : '-',
      r.vsDirect
        ? `${f(r.vsDirect.rpsRatio, 2)}× rps, p50 ${signed(r.vsDirect.addedP50MsPerHop)} ms/hop, p99 ${signed(r.vsDirect.addedP99MsPerHop)} ms/hop`
        : '-',
    ]),
  );
  const cpu = table(
    ['scenario', 'loadgen µs/req', 'echo server µs/req', 'sidecars µs/req', 'total µs/req'],
    rows.map((r) => {
      const side = r.sidecars.reduce((n, s) => n + s.cpuUsPerRequest, 0);
      return [r.scenario, f(r.loadgenCpuUsPerRequest, 0), f(r.echoCpuUsPerRequest, 0), f(side, 0), f(r.loadgenCpuUsPerRequest + r.echoCpuUsPerRequest + side, 0)];
    }),
  );
  const mtlsRows = rows.filter((r) => r.vsPlaintext);
  const mtls = table(
    ['scenario', 'against', 'rps', 'p50 ms', 'p99 ms', 'added sidecar CPU µs/req (per hop)', 'added total sidecar CPU µs/req'],
    mtlsRows.map((r) => {
      const v = r.vsPlaintext!;
      return [
        r.scenario,
        v.scenario,
        `${f(v.rpsRatio, 2)}×`,
        signed(v.addedP50Ms),
        signed(v.addedP99Ms),
        v.addedCpuUsPerRequest.map(signedUs).join(' / '),
        signedUs(v.addedCpuUsPerRequest.reduce((n, x) => n + x, 0)),
      ];
    }),
  );
  const notes: string[] = [];
  for (const r of rows) {
    if (r.errors > 0) notes.push(`WARNING: ${r.scenario} had ${r.errors} failed calls: ${JSON.stringify(r.errorsByKind)}`);
    if (r.drops > 0) notes.push(`WARNING: ${r.scenario} dropped ${r.drops} arrivals at the in-flight cap (open loop): the system could not keep up`);
  }
  return [
    header,
    '',
    main,
    '',
    'CPU per request by process (all processes share this machine\'s cores):',
    '',
    cpu,
    ...(mtlsRows.length ? ['', 'The cost of mTLS: each run against the plaintext run of the same round, medians:', '', mtls] : []),
    ...(notes.length ? ['', ...notes] : []),
  ].join('\n');
}
