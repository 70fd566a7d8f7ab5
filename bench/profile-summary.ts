/**
 * `node dist/bench/profile-summary.js FILE.cpuprofile [--top N]`: the functions that spent the
 * most CPU themselves (self time) in a V8 CPU profile, as a markdown table, and the split between
 * node's internals, native work, the garbage collector, Remora's code and its dependencies.
 * For a quick look without DevTools; see docs/profiling.md.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** Paths of our own files are shown from here: `dist/sidecar/...`. */
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly hitCount?: number;
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export type CodeKind = 'idle' | 'native' | 'gc' | 'node' | 'remora' | 'dependency' | 'builtin';

export const KIND_LABEL: Readonly<Record<CodeKind, string>> = {
  idle: 'idle (waiting in the event loop)',
  native: '(program): native code outside JS (TLS, libuv, syscalls, V8 itself)',
  gc: 'garbage collector',
  node: 'node internals (node:*)',
  remora: 'Remora (our compiled code)',
  dependency: 'dependencies (node_modules)',
  builtin: 'V8 builtins and native functions (no script)',
};

export interface FunctionCost {
  readonly name: string;
  /** `node:internal/http2/core:1234`, `dist/sidecar/proxy/forward.js:88`, or '' for native. */
  readonly where: string;
  readonly kind: CodeKind;
  readonly selfMs: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Everything but idle: the share columns are of this. */
  readonly busyMs: number;
  readonly samples: number;
  readonly byKind: Readonly<Record<CodeKind, number>>;
  /** Sorted by self time, largest first; idle left out. */
  readonly functions: readonly FunctionCost[];
}

function kindOf(frame: CallFrame): CodeKind {
  switch (frame.functionName) {
    case '(idle)': return 'idle';
    case '(program)': return 'native';
    case '(garbage collector)': return 'gc';
  }
  const url = frame.url;
  if (url.startsWith('node:')) return 'node';
  if (url.includes('/node_modules/')) return 'dependency';
  if (url === '') return 'builtin';
  return 'remora';
}

function whereOf(frame: CallFrame, root: string): string {
  if (frame.url === '') return '';
  let file = frame.url;
  if (file.startsWith('file://')) {
    file = path.relative(root, fileURLToPath(file));
    const nm = file.lastIndexOf('node_modules/');
    if (nm !== -1) file = file.slice(nm + 'node_modules/'.length);
  }
  return `${file}:${frame.lineNumber + 1}`;
}

/** Milliseconds each node was on top of the stack, from the sample timeline (hit counts as a fallback). */
function selfTimes(profile: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    // A sample's time runs until the next one is taken (the last until the profile ends).
    let t = profile.startTime;
    const stamps = deltas.map((d) => (t += d));
    for (let i = 0; i < samples.length; i++) {
      const until = i + 1 < samples.length ? stamps[i + 1]! : Math.max(profile.endTime, stamps[i]!);
      const us = Math.max(0, until - stamps[i]!);
      self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + us / 1000);
    }
  } else {
    const hits = profile.nodes.reduce((n, node) => n + (node.hitCount ?? 0), 0);
    const msPerHit = hits > 0 ? (profile.endTime - profile.startTime) / 1000 / hits : 0;
    for (const node of profile.nodes) self.set(node.id, (node.hitCount ?? 0) * msPerHit);
  }
  return self;
}

export function summariseProfile(profile: CpuProfile, root = REPO_ROOT): ProfileSummary {
  const self = selfTimes(profile);
  const byKind: Record<CodeKind, number> = { idle: 0, native: 0, gc: 0, node: 0, remora: 0, dependency: 0, builtin: 0 };
  const byFunction = new Map<string, { name: string; where: string; kind: CodeKind; selfMs: number }>();
  let totalMs = 0;
  for (const node of profile.nodes) {
    const ms = self.get(node.id) ?? 0;
    if (ms === 0 || node.callFrame.functionName === '(root)') continue;
    totalMs += ms;
    const kind = kindOf(node.callFrame);
    byKind[kind] += ms;
    if (kind === 'idle') continue;
    const name = node.callFrame.functionName || '(anonymous)';
    const where = whereOf(node.callFrame, root);
    // One row per function, however many call paths reached it.
    const key = `${name}\u0000${where}`;
    const row = byFunction.get(key) ?? { name, where, kind, selfMs: 0 };
    row.selfMs += ms;
    byFunction.set(key, row);
  }
  return {
    totalMs,
    busyMs: totalMs - byKind.idle,
    samples: profile.samples?.length ?? 0,
    byKind,
    functions: [...byFunction.values()].sort((a, b) => b.selfMs - a.selfMs),
  };
}

export function renderProfileSummary(file: string, s: ProfileSummary, top: number): string {
  const pct = (ms: number): string => (s.busyMs > 0 ? `${((ms / s.busyMs) * 100).toFixed(1)}%` : '-');
  const kinds = (Object.keys(KIND_LABEL) as CodeKind[]).filter((k) => k !== 'idle');
  const lines = [
    `# ${file}`,
    `# ${(s.totalMs / 1000).toFixed(2)} s sampled (${s.samples} samples): busy ${(s.busyMs / 1000).toFixed(2)} s, idle ${(s.byKind.idle / 1000).toFixed(2)} s; shares below are of busy time`,
    '',
    '| where the busy time went | self ms | share |',
    '| --- | --- | --- |',
    ...kinds.map((k) => `| ${KIND_LABEL[k]} | ${s.byKind[k].toFixed(0)} | ${pct(s.byKind[k])} |`),
    '',
    `| self ms | share | function | where | kind |`,
    '| --- | --- | --- | --- | --- |',
    ...s.functions.slice(0, top).map((f) => `| ${f.selfMs.toFixed(1)} | ${pct(f.selfMs)} | ${f.name.replace(/\|/g, '\\|')} | ${f.where || '-'} | ${f.kind} |`),
  ];
  return lines.join('\n');
}

function isProfile(v: unknown): v is CpuProfile {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return Array.isArray(o.nodes) && typeof o.startTime === 'number' && typeof o.endTime === 'number';
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' }, help: { type: 'boolean', short: 'h' } } });
  const file = positionals[0];
  if (values.help || !file) {
    process.stdout.write('Usage: node dist/bench/profile-summary.js FILE.cpuprofile [--top N]\n\nTop self-time functions of a V8 CPU profile (e.g. from remora bench --cpu-prof DIR).\n');
    if (!file && !values.help) process.exitCode = 2;
    return;
  }
  const top = Number(values.top);
  if (!Number.isInteger(top) || top < 1) throw new Error(`--top must be a positive integer, got ${JSON.stringify(values.top)}`);
  const raw: unknown = JSON.parse(await readFile(file, 'utf8'));
  if (!isProfile(raw)) throw new Error(`${file} is not a V8 CPU profile (no nodes/startTime/endTime)`);
  process.stdout.write(renderProfileSummary(file, summariseProfile(raw), top) + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`profile-summary: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
