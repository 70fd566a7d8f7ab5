/**
 * One measured run, inside the fleet worker: connect N simulated sidecars, optionally let them all
 * register (the storm), then make M etcd writes one at a time and time how long each takes to
 * reach every sidecar. The writes are made here, in the same process and clock as the receipts,
 * so "write start → snapshot received" needs no cross-process clock.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3 } from 'etcd3';
import { cpuMicros, rssBytes } from '../../lib/processes.js';
import { benchEtcdClient } from './etcd.js';
import { Fleet, FLEET_SERVICE } from './fleet.js';
import { writeChange } from './records.js';
import { mean, percentiles } from './stats.js';
import type { ChangeResult, ConnectResult, CpuResult, FleetOptions, FleetResult, StormResult } from './types.js';

/** After the last change: one status-writer interval (1 s) and a margin, so the ACKs' etcd writes are billed. */
const CPU_TAIL_MS = 1200;
const POLL_MS = 10;
/** The control plane counts as idle once it uses under 10% of a core over a 250 ms window. */
const IDLE_WINDOW_MS = 250;
const IDLE_CPU_FRACTION = 0.1;

type Log = (message: string) => void;

/** Register mode: the first version whose fleet cluster lists every sidecar, read from sidecar 0. */
class StormObserver {
  fullVersion: number | undefined;
  constructor(private readonly sidecars: number) {}

  observe(resources: readonly { kind: string; name: string; json: string }[], version: number): void {
    if (this.fullVersion !== undefined) return;
    const cluster = resources.find((r) => r.kind === 'cluster' && r.name === FLEET_SERVICE);
    if (!cluster) return;
    const parsed = JSON.parse(cluster.json) as { endpoints?: unknown[] };
    if ((parsed.endpoints?.length ?? 0) >= this.sidecars) this.fullVersion = version;
  }
}

async function connect(fleet: Fleet, opts: FleetOptions, openedAt: number): Promise<ConnectResult> {
  const missing = await fleet.until(0, opts.connectTimeoutMs);
  const allMs = performance.now() - openedAt;
  const perSidecar: number[] = [];
  for (let i = 0; i < opts.sidecars; i++) {
    const first = fleet.receipts(i)[0];
    if (first) perSidecar.push(first.at - openedAt);
  }
  return { allMs: missing === 0 ? allMs : NaN, firstSnapshot: percentiles(perSidecar), timeouts: missing };
}

async function storm(fleet: Fleet, observer: StormObserver, opts: FleetOptions, openedAt: number): Promise<StormResult> {
  const deadline = openedAt + opts.connectTimeoutMs;
  while (observer.fullVersion === undefined && performance.now() < deadline) await sleep(POLL_MS);
  const full = observer.fullVersion;
  const missing = full === undefined ? opts.sidecars : await fleet.until(full, Math.max(1, deadline - performance.now()));
  const perSidecar: number[] = [];
  let finalSnapshotBytes = 0;
  if (full !== undefined) {
    for (let i = 0; i < opts.sidecars; i++) {
      const r = fleet.firstAtOrAbove(i, full);
      if (!r) continue;
      perSidecar.push(r.at - openedAt);
      finalSnapshotBytes = r.bytes;
    }
  }
  const stats = percentiles(perSidecar);
  return { allMs: missing === 0 ? stats.maxMs : NaN, perSidecar: stats, pushes: fleet.receipts(0).length, finalSnapshotBytes, completed: missing === 0, timeouts: missing };
}

/**
 * Waits at least `minMs`, then until the control plane is idle (bounded by `maxMs`), and returns
 * the time waited. Connecting N sidecars leaves N status writes to etcd in the control plane's
 * queue for a few seconds; the first change should not be measured against that leftover.
 */
async function settle(pid: number, minMs: number, maxMs: number): Promise<number> {
  const start = performance.now();
  await sleep(minMs);
  while (performance.now() - start < maxMs) {
    const before = await cpuMicros(pid);
    await sleep(IDLE_WINDOW_MS);
    if ((await cpuMicros(pid)) - before < IDLE_WINDOW_MS * 1000 * IDLE_CPU_FRACTION) break;
  }
  return performance.now() - start;
}

async function change(fleet: Fleet, etcd: Etcd3, opts: FleetOptions, k: number, latencies: number[]): Promise<ChangeResult> {
  fleet.reset();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  let revision: number;
  try {
    revision = await writeChange(etcd, opts.prefix, k);
  } catch {
    fleet.countError('put-failed');
    return { index: k, revision: NaN, putMs: NaN, firstMs: NaN, lastMs: NaN, converged: 0, timeouts: opts.sidecars, snapshotBytes: 0, pushes: 0, fleetBusy: NaN };
  }
  const putMs = performance.now() - t0;
  const missing = await fleet.until(revision, opts.changeTimeoutMs);
  const fleetBusy = performance.eventLoopUtilization(elu0).utilization;
  let first = Infinity;
  let last = 0;
  let snapshotBytes = 0;
  let converged = 0;
  for (let i = 0; i < opts.sidecars; i++) {
    const r = fleet.firstAtOrAbove(i, revision);
    if (!r) continue;
    const ms = r.at - t0;
    latencies.push(ms);
    converged++;
    first = Math.min(first, ms);
    last = Math.max(last, ms);
    snapshotBytes = r.bytes;
  }
  return {
    index: k,
    revision,
    putMs,
    firstMs: converged > 0 ? first : NaN,
    lastMs: missing === 0 ? last : NaN,
    converged,
    timeouts: opts.sidecars - converged,
    snapshotBytes,
    pushes: fleet.receipts(0).length,
    fleetBusy,
  };
}

export async function runFleet(opts: FleetOptions, log: Log): Promise<FleetResult> {
  const etcd = benchEtcdClient(opts.etcdEndpoint);
  const observer = new StormObserver(opts.sidecars);
  const fleet = new Fleet({
    address: opts.controlPlane,
    sidecars: opts.sidecars,
    streamsPerChannel: opts.streamsPerChannel,
    register: opts.register,
    flowControlWindow: opts.flowControlWindow,
    observe: opts.register ? (snap, version) => observer.observe(snap.resources, version) : undefined,
  });
  try {
    const rssBefore = await rssBytes(opts.controlPlanePid);
    const openedAt = performance.now();
    fleet.open();
    const connected = await connect(fleet, opts, openedAt);
    log(`${opts.sidecars} sidecars on ${fleet.channels} channels: first snapshots in ${connected.allMs.toFixed(0)} ms, ${connected.timeouts} missing`);
    let stormResult: StormResult | undefined;
    if (opts.register) {
      stormResult = await storm(fleet, observer, opts, openedAt);
      log(`registration storm: all ${opts.sidecars} registered and seen by all in ${stormResult.allMs.toFixed(0)} ms over ${stormResult.pushes} pushes`);
    }
    const settledMs = await settle(opts.controlPlanePid, opts.settleMs, Math.max(opts.settleMs, opts.connectTimeoutMs));
    log(`control plane idle after ${settledMs.toFixed(0)} ms`);
    const rssAfter = await rssBytes(opts.controlPlanePid);

    const cpu0 = { cp: await cpuMicros(opts.controlPlanePid), etcd: await cpuMicros(opts.etcdPid), fleet: process.cpuUsage() };
    const windowStart = performance.now();
    const latencies: number[] = [];
    const changes: ChangeResult[] = [];
    for (let k = 0; k < opts.changes; k++) {
      await sleep(opts.intervalMs);
      const c = await change(fleet, etcd, opts, k, latencies);
      changes.push(c);
      log(`change ${k + 1}/${opts.changes}: revision ${c.revision}, last sidecar at ${c.lastMs.toFixed(1)} ms, ${c.timeouts} timeouts, ${c.pushes} push(es), ${c.snapshotBytes} B, fleet busy ${(c.fleetBusy * 100).toFixed(0)}%`);
    }
    await sleep(CPU_TAIL_MS);
    const fleetCpu = process.cpuUsage(cpu0.fleet);
    const per = (us: number): number => us / 1000 / Math.max(1, opts.changes);
    const cpu: CpuResult = {
      windowMs: performance.now() - windowStart,
      controlPlaneMsPerChange: per((await cpuMicros(opts.controlPlanePid)) - cpu0.cp),
      etcdMsPerChange: per((await cpuMicros(opts.etcdPid)) - cpu0.etcd),
      fleetMsPerChange: per(fleetCpu.user + fleetCpu.system),
      fleetBusyDuringConvergence: mean(changes.map((c) => c.fleetBusy)),
    };
    const timeouts = changes.reduce((n, c) => n + c.timeouts, 0) + connected.timeouts + (stormResult?.timeouts ?? 0);
    return {
      sidecars: opts.sidecars,
      channels: fleet.channels,
      register: opts.register,
      connect: connected,
      ...(stormResult ? { storm: stormResult } : {}),
      settledMs,
      controlPlaneRssBeforeBytes: rssBefore,
      controlPlaneRssAfterBytes: rssAfter,
      controlPlaneKibPerSidecar: (rssAfter - rssBefore) / 1024 / opts.sidecars,
      fleetRssBytes: process.memoryUsage.rss(),
      convergence: percentiles(latencies),
      lastSidecar: percentiles(changes.map((c) => c.lastMs)),
      changes,
      snapshotBytes: changes.reduce((m, c) => Math.max(m, c.snapshotBytes), 0),
      cpu,
      timeouts,
      errors: { ...fleet.errors },
      errorCount: fleet.errorCount,
    };
  } finally {
    fleet.close();
    etcd.close();
  }
}
