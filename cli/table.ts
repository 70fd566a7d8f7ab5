/** Output for the resource commands: aligned tables for people, JSON and YAML for scripts. */
import { stringify } from 'yaml';
import { UsageError } from './flags.js';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function outputFormat(v: string | undefined): OutputFormat {
  if (v === undefined || v === '' || v === 'wide') return 'table';
  if ((OUTPUT_FORMATS as readonly string[]).includes(v)) return v as OutputFormat;
  throw new UsageError(`-o must be one of ${OUTPUT_FORMATS.join(', ')}, got ${JSON.stringify(v)}`);
}

/** Columns padded to their widest cell, three spaces apart, like kubectl. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ');
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** JSON: one object when asked for one thing, else an array. YAML: one document per item. */
export function structured(format: 'json' | 'yaml', items: readonly unknown[], single: boolean): string {
  if (format === 'json') return JSON.stringify(single ? items[0] : items, null, 2) + '\n';
  if (items.length === 0) return single ? '' : '[]\n';
  return items.map((i) => stringify(i)).join('---\n');
}

export function shorten(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ');
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}
