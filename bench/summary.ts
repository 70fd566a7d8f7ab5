/**
 * Folds repeated runs into one row per case (workload, payload, rate) and scenario (median of
 * each metric, since this machine is noisy and a median ignores one bad round) and derives the
 * cost of each hop against `direct`, and of mTLS against the same topology in plaintext, always
 * within the same case.
 */
import { median } from './histogram.js';
import type { OpUnit } from './loadgen.js';
import { caseLabel, sameCase, type RunCase, type ScenarioRun } from './run-scenario.js';
import { HOPS, PLAINTEXT_TWIN, type ScenarioName } from './topology.js';

export interface SidecarSummary {
  readonly role: string;
  readonly cpuUsPerOp: number;
  /** Share of one core, median over runs. */
  readonly busy: number;
  /** Highest over all runs: memory growth across rounds should show, not be smoothed away. */
  readonly peakRssMb: number;
}

export interface VsDirect {
  readonly rpsRatio: number;
  readonly addedP50MsPerHop: number;
  readonly addedP99MsPerHop: number;
}

/** An mTLS scenario against its plaintext twin (`two-hop-mtls` against `two-hop`), same rounds. */
export interface VsPlaintext {
  readonly scenario: ScenarioName;
  readonly rpsRatio: number;
  readonly addedP50Ms: number;
  readonly addedP99Ms: number;
  /** Per sidecar, in request order: the CPU µs per operation mTLS adds to it. */
  readonly addedCpuUsPerOp: readonly number[];
}

export interface ScenarioSummary {
  readonly scenario: ScenarioName;
  readonly case: RunCase;
  /** The case in words, e.g. `server-stream 100 B × 100`. */
  readonly label: string;
  readonly unit: OpUnit;
  readonly hops: number;
  readonly runs: number;
  /** Calls (bidi: round trips) completed in the measured windows, summed over runs. */
  readonly requests: number;
  /** Successful calls (bidi: round trips) per second. */
  readonly rps: number;
  /** Successful operations per second: calls, server-streamed messages or bidi round trips. */
  readonly opsPerS: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  /** Summed over runs: any failure matters. */
  readonly errors: number;
  readonly errorsByKind: Readonly<Record<string, number>>;
  readonly drops: number;
  readonly sidecars: readonly SidecarSummary[];
  readonly echoCpuUsPerOp: number;
  readonly loadgenCpuUsPerOp: number;
  /** The generator's share of one core: near 1, the generator (not the path) set the pace. */
  readonly loadgenBusy: number;
  readonly vsDirect?: VsDirect;
  readonly vsPlaintext?: VsPlaintext;
}

/** Median of the finite values: a run with no successful operation has no latency to offer. */
function medianOfMeasured(values: readonly number[]): number {
  return median(values.filter(Number.isFinite));
}

/** A latency of a run, or NaN when nothing succeeded in its window (percentiles of nothing read 0). */
function latencyOf(r: ScenarioRun, f: (l: ScenarioRun['load']['latency']) => number): number {
  return r.load.ok > 0 ? f(r.load.latency) : Number.NaN;
}

function summarise(scenario: ScenarioName, runCase: RunCase, runs: readonly ScenarioRun[]): ScenarioSummary {
  const m = (f: (r: ScenarioRun) => number): number => median(runs.map(f));
  const lat = (f: (l: ScenarioRun['load']['latency']) => number): number => medianOfMeasured(runs.map((r) => latencyOf(r, f)));
  const errorsByKind: Record<string, number> = {};
  for (const r of runs) for (const [k, n] of Object.entries(r.load.errors)) errorsByKind[k] = (errorsByKind[k] ?? 0) + n;
  const roles = runs[0]?.sidecars.map((s) => s.role) ?? [];
  return {
    scenario,
    case: runCase,
    label: caseLabel(runCase),
    unit: runs[0]?.load.unit ?? 'call',
    hops: HOPS[scenario],
    runs: runs.length,
    requests: runs.reduce((n, r) => n + r.load.completed, 0),
    rps: m((r) => r.load.rps),
    opsPerS: m((r) => r.load.opsPerS),
    p50Ms: lat((l) => l.p50Ms),
    p90Ms: lat((l) => l.p90Ms),
    p99Ms: lat((l) => l.p99Ms),
    p999Ms: lat((l) => l.p999Ms),
    errors: runs.reduce((n, r) => n + r.load.errorCount, 0),
    errorsByKind,
    drops: runs.reduce((n, r) => n + r.load.drops, 0),
    sidecars: roles.map((role, i) => ({
      role,
      cpuUsPerOp: m((r) => r.sidecars[i]!.cpuUsPerOp),
      busy: m((r) => r.sidecars[i]!.busy),
      peakRssMb: Math.max(...runs.map((r) => r.sidecars[i]!.peakRssBytes ?? 0)) / (1024 * 1024),
    })),
    echoCpuUsPerOp: m((r) => r.echo.cpuUsPerOp),
    loadgenCpuUsPerOp: m((r) => r.loadgen.cpuUsPerOp),
    loadgenBusy: m((r) => r.loadgen.busy),
  };
}

/** A run tagged with the round it ran in: comparisons pair runs of the same round. */
export type RoundRun = ScenarioRun & { readonly round: number };

/**
 * Each round's run is compared with the same round's `direct` run, then the median taken: the
 * machine's load drifts between rounds, and a ratio of medians would mix different rounds.
 */
function vsDirect(run: RoundRun, direct: RoundRun, hops: number): VsDirect {
  const d = direct.load;
  return {
    rpsRatio: d.opsPerS > 0 ? run.load.opsPerS / d.opsPerS : 0,
    addedP50MsPerHop: (latencyOf(run, (l) => l.p50Ms) - latencyOf(direct, (l) => l.p50Ms)) / hops,
    addedP99MsPerHop: (latencyOf(run, (l) => l.p99Ms) - latencyOf(direct, (l) => l.p99Ms)) / hops,
  };
}

/** Like vsDirect: each round's run against the same round's plaintext twin, then the median. */
function vsPlaintext(mine: readonly RoundRun[], runs: readonly RoundRun[], twin: ScenarioName): VsPlaintext | undefined {
  const pairs: [RoundRun, RoundRun][] = [];
  for (const run of mine) {
    const plain = runs.find((r) => r.scenario === twin && r.round === run.round && sameCase(r.case, run.case));
    if (plain && plain.sidecars.length === run.sidecars.length) pairs.push([run, plain]);
  }
  if (pairs.length === 0) return undefined;
  const m = (f: (run: RoundRun, plain: RoundRun) => number): number => median(pairs.map(([run, plain]) => f(run, plain)));
  return {
    scenario: twin,
    rpsRatio: m((run, plain) => (plain.load.opsPerS > 0 ? run.load.opsPerS / plain.load.opsPerS : 0)),
    addedP50Ms: medianOfMeasured(pairs.map(([run, plain]) => latencyOf(run, (l) => l.p50Ms) - latencyOf(plain, (l) => l.p50Ms))),
    addedP99Ms: medianOfMeasured(pairs.map(([run, plain]) => latencyOf(run, (l) => l.p99Ms) - latencyOf(plain, (l) => l.p99Ms))),
    addedCpuUsPerOp: pairs[0]![0].sidecars.map((_, i) => m((run, plain) => run.sidecars[i]!.cpuUsPerOp - plain.sidecars[i]!.cpuUsPerOp)),
  };
}

/** One row per case and scenario, cases in the order given, scenarios in `order` within each. */
export function summariseAll(order: readonly ScenarioName[], cases: readonly RunCase[], runs: readonly RoundRun[]): ScenarioSummary[] {
  return cases.flatMap((runCase) => {
    const ofCase = runs.filter((r) => sameCase(r.case, runCase));
    return order.map((scenario) => summariseScenario(scenario, runCase, ofCase));
  });
}

function summariseScenario(scenario: ScenarioName, runCase: RunCase, runs: readonly RoundRun[]): ScenarioSummary {
  const mine = runs.filter((r) => r.scenario === scenario);
  let row = summarise(scenario, runCase, mine);
  const twin = PLAINTEXT_TWIN[scenario];
  const plain = twin === undefined ? undefined : vsPlaintext(mine, runs, twin);
  if (plain) row = { ...row, vsPlaintext: plain };
  if (row.hops === 0) return row;
  const pairs: VsDirect[] = [];
  for (const run of mine) {
    const direct = runs.find((r) => r.scenario === 'direct' && r.round === run.round);
    if (direct) pairs.push(vsDirect(run, direct, row.hops));
  }
  if (pairs.length === 0) return row;
  return {
    ...row,
    vsDirect: {
      rpsRatio: median(pairs.map((p) => p.rpsRatio)),
      addedP50MsPerHop: medianOfMeasured(pairs.map((p) => p.addedP50MsPerHop)),
      addedP99MsPerHop: medianOfMeasured(pairs.map((p) => p.addedP99MsPerHop)),
    },
  };
}
