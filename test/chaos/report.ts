/** The chaos run's results: one table row per drill (Markdown, so it pastes into docs/chaos.md as is) and the same as JSON. */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import type { DrillResult } from './drill-runner.js';

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));

function failedCell(r: DrillResult): string {
  const parts = Object.entries(r.total.failed).map(([status, n]) => `${n} ${status}`);
  return parts.length ? parts.join(', ') : '0';
}

export function drillTable(results: readonly DrillResult[]): string {
  const header = ['drill', 'sent', 'succeeded', 'failed (by status)', 'p50 ms', 'p99 ms', 'p99 during fault ms', 'max ms', 'fault window s', 'met'];
  const rows = results.map((r) => [
    r.name,
    String(r.total.sent),
    String(r.total.ok),
    failedCell(r),
    ms(r.total.p50Ms),
    ms(r.total.p99Ms),
    r.fault.sent ? ms(r.fault.p99Ms) : '-',
    ms(r.total.maxMs),
    r.fault.toS > r.fault.fromS ? `${r.fault.fromS.toFixed(1)}-${r.fault.toS.toFixed(1)}` : '-',
    r.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

export function missedLines(results: readonly DrillResult[]): string[] {
  return results.flatMap((r) => r.missed.map((m) => `${r.name}: ${m}`));
}

export interface RunInfo {
  readonly command: string;
  readonly startedAt: string;
  readonly rps: number;
  readonly windowS: number;
  readonly faultAtS: number;
  readonly deadlineMs: number;
}

export async function writeJson(file: string, info: RunInfo, results: readonly DrillResult[]): Promise<void> {
  const doc = {
    ...info,
    machine: { cpus: os.cpus().length, node: process.version, loadavgAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100) },
    met: results.every((r) => r.met),
    drills: results,
  };
  await writeFile(file, JSON.stringify(doc, null, 2) + '\n');
}
