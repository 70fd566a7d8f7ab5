/** The control-plane bench's output: markdown tables and whether the issue's target was met. */
import os from 'node:os';
import type { Machine } from '../report.js';
import type { FleetResult } from './types.js';

/** From the control-plane issue: p99 convergence under 250 ms at N = 1,000 on this machine. */
export const TARGET = { sidecars: 1000, p99Ms: 250 } as const;

export interface TargetVerdict {
  readonly sidecars: number;
  readonly p99TargetMs: number;
  /** Undefined when no run had exactly TARGET.sidecars sidecars. */
  readonly p99Ms?: number;
  readonly met?: boolean;
}

/** NaN survives JSON as null; both print as "-". */
const num = (v: number | null | undefined): number => (typeof v === 'number' ? v : NaN);
const f = (v: number | null | undefined, digits: number): string => (Number.isFinite(num(v)) ? num(v).toFixed(digits) : '-');
const ms = (v: number | null | undefined): string => f(v, num(v) < 10 ? 2 : 1);
const mb = (bytes: number): string => f(bytes / 1024 / 1024, 1);

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}

const errorText = (r: FleetResult): string =>
  r.errorCount === 0 ? '0' : `${r.errorCount} (${Object.entries(r.errors).map(([k, v]) => `${k}: ${v}`).join(', ')})`;

export function verdict(results: readonly FleetResult[]): TargetVerdict {
  const run = results.find((r) => r.sidecars === TARGET.sidecars);
  if (!run) return { sidecars: TARGET.sidecars, p99TargetMs: TARGET.p99Ms };
  const p99 = num(run.convergence.p99Ms);
  return { sidecars: TARGET.sidecars, p99TargetMs: TARGET.p99Ms, p99Ms: p99, met: run.timeouts === 0 && p99 < TARGET.p99Ms };
}

export function renderControlPlaneReport(machine: Machine, settings: string, results: readonly FleetResult[]): string {
  const header =
    `# remora bench control-plane: ${machine.cpuModel}, ${machine.cores} cores, node ${machine.node}, ${machine.kernel}, ` +
    `load avg ${machine.loadAvg1m.toFixed(2)} at start, ${os.loadavg()[0]!.toFixed(2)} at end\n# settings: ${settings}`;
  const mode = (r: FleetResult): string => (r.register ? 'register' : 'watch only');
  const convergence = table(
    ['sidecars', 'mode', 'changes', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'last sidecar p50 ms', 'last sidecar p99 ms', 'snapshot bytes', 'timeouts', 'errors'],
    results.map((r) => [
      String(r.sidecars),
      mode(r),
      String(r.changes.length),
      ms(r.convergence.p50Ms),
      ms(r.convergence.p90Ms),
      ms(r.convergence.p99Ms),
      ms(r.convergence.maxMs),
      ms(r.lastSidecar.p50Ms),
      ms(r.lastSidecar.p99Ms),
      String(r.snapshotBytes),
      String(r.timeouts),
      errorText(r),
    ]),
  );
  const cost = table(
    ['sidecars', 'CP RSS before MB', 'CP RSS after MB', 'CP KiB per sidecar', 'CP CPU ms/change', 'etcd CPU ms/change', 'fleet CPU ms/change', 'fleet busy while converging', 'connect: all ms', 'storm: all ms (pushes)'],
    results.map((r) => [
      String(r.sidecars),
      mb(r.controlPlaneRssBeforeBytes),
      mb(r.controlPlaneRssAfterBytes),
      f(r.controlPlaneKibPerSidecar, 1),
      f(r.cpu.controlPlaneMsPerChange, 1),
      f(r.cpu.etcdMsPerChange, 1),
      f(r.cpu.fleetMsPerChange, 1),
      `${f(num(r.cpu.fleetBusyDuringConvergence) * 100, 0)}%`,
      ms(r.connect.allMs),
      r.storm ? `${ms(r.storm.allMs)} (${r.storm.pushes})` : '-',
    ]),
  );
  const v = verdict(results);
  const line =
    v.met === undefined
      ? `target (p99 < ${v.p99TargetMs} ms at N = ${v.sidecars}): not measured, no run with ${v.sidecars} sidecars`
      : `target (p99 < ${v.p99TargetMs} ms at N = ${v.sidecars}, no timeouts): ${v.met ? 'MET' : 'NOT MET'}, p99 ${ms(v.p99Ms)} ms`;
  return [header, '', convergence, '', cost, '', line].join('\n');
}
