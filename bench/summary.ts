/**
 * Folds repeated runs into one row per scenario (median of each metric, since this machine is
 * noisy and a median ignores one bad round) and derives the cost of each hop against `direct`,
 * and of mTLS against the same topology in plaintext.
 */
import { median } from './histogram.js';
import type { ScenarioRun } from './run-scenario.js';
import { HOPS, PLAINTEXT_TWIN, type ScenarioName } from './topology.js';

export interface SidecarSummary {
  readonly role: string;
  readonly cpuUsPerRequest: number;
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
  /** Per sidecar, in request order: the CPU µs per call mTLS adds to it. */
  readonly addedCpuUsPerRequest: readonly number[];
}

export interface ScenarioSummary {
  readonly scenario: ScenarioName;
  readonly hops: number;
  readonly runs: number;
  readonly requests: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  /** Summed over runs: any failure matters. */
  readonly errors: number;
  readonly errorsByKind: Readonly<Record<string, number>>;
  readonly drops: number;
  readonly sidecars: readonly SidecarSummary[];
  readonly echoCpuUsPerRequest: number;
  readonly loadgenCpuUsPerRequest: number;
  readonly vsDirect?: VsDirect;
  readonly vsPlaintext?: VsPlaintext;
}

function summarise(scenario: ScenarioName, runs: readonly ScenarioRun[]): ScenarioSummary {
  const m = (f: (r: ScenarioRun) => number): number => median(runs.map(f));
  const errorsByKind: Record<string, number> = {};
  for (const r of runs) for (const [k, n] of Object.entries(r.load.errors)) errorsByKind[k] = (errorsByKind[k] ?? 0) + n;
  const roles = runs[0]?.sidecars.map((s) => s.role) ?? [];
  return {
    scenario,
    hops: HOPS[scenario],
    runs: runs.length,
    requests: runs.reduce((n, r) => n + r.load.completed, 0),
    rps: m((r) => r.load.rps),
    p50Ms: m((r) => r.load.latency.p50Ms),
    p90Ms: m((r) => r.load.latency.p90Ms),
    p99Ms: m((r) => r.load.latency.p99Ms),
    p999Ms: m((r) => r.load.latency.p999Ms),
    errors: runs.reduce((n, r) => n + r.load.errorCount, 0),
    errorsByKind,
    drops: runs.reduce((n, r) => n + r.load.drops, 0),
    sidecars: roles.map((role, i) => ({
      role,
      cpuUsPerRequest: m((r) => r.sidecars[i]!.cpuUsPerRequest),
      peakRssMb: Math.max(...runs.map((r) => r.sidecars[i]!.peakRssBytes ?? 0)) / (1024 * 1024),
    })),
    echoCpuUsPerRequest: m((r) => r.echo.cpuUsPerRequest),
    loadgenCpuUsPerRequest: m((r) => r.loadgen.cpuUsPerRequest),
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
    rpsRatio: d.rps > 0 ? run.load.rps / d.rps : 0,
    addedP50MsPerHop: (run.load.latency.p50Ms - d.latency.p50Ms) / hops,
    addedP99MsPerHop: (run.load.latency.p99Ms - d.latency.p99Ms) / hops,
  };
}

/** Like vsDirect: each round's run against the same round's plaintext twin, then the median. */
function vsPlaintext(mine: readonly RoundRun[], runs: readonly RoundRun[], twin: ScenarioName): VsPlaintext | undefined {
  const pairs: [RoundRun, RoundRun][] = [];
  for (const run of mine) {
    const plain = runs.find((r) => r.scenario === twin && r.round === run.round);
    if (plain && plain.sidecars.length === run.sidecars.length) pairs.push([run, plain]);
  }
  if (pairs.length === 0) return undefined;
  const m = (f: (run: RoundRun, plain: RoundRun) => number): number => median(pairs.map(([run, plain]) => f(run, plain)));
  return {
    scenario: twin,
    rpsRatio: m((run, plain) => (plain.load.rps > 0 ? run.load.rps / plain.load.rps : 0)),
    addedP50Ms: m((run, plain) => run.load.latency.p50Ms - plain.load.latency.p50Ms),
    addedP99Ms: m((run, plain) => run.load.latency.p99Ms - plain.load.latency.p99Ms),
    addedCpuUsPerRequest: pairs[0]![0].sidecars.map((_, i) => m((run, plain) => run.sidecars[i]!.cpuUsPerRequest - plain.sidecars[i]!.cpuUsPerRequest)),
  };
}

export function summariseAll(order: readonly ScenarioName[], runs: readonly RoundRun[]): ScenarioSummary[] {
  return order.map((scenario) => {
    const mine = runs.filter((r) => r.scenario === scenario);
    let row = summarise(scenario, mine);
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
        addedP50MsPerHop: median(pairs.map((p) => p.addedP50MsPerHop)),
        addedP99MsPerHop: median(pairs.map((p) => p.addedP99MsPerHop)),
      },
    };
  });
}
