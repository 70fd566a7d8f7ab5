/**
 * Runs one drill inside its own window of steady load: load starts, the fault goes in a few
 * seconds later, and the load keeps going until the window is over and the drill has repaired
 * its fault (plus a short tail, so the repair itself is measured too).
 */
import os from 'node:os';
import type { WindowSummary } from './call-log.js';
import type { Drill, DrillContext, DrillOptions } from './drills.js';
import { OpenLoop, catalogClient, type LoadOptions } from './load.js';
import type { ChaosMesh } from './mesh.js';

export interface DrillResult {
  readonly name: string;
  readonly title: string;
  /** Length of the load window, seconds. */
  readonly loadS: number;
  readonly total: WindowSummary;
  /** From the fault's injection to its repair (by intended send time). */
  readonly fault: WindowSummary & { readonly fromS: number; readonly toS: number };
  readonly timeline: readonly { readonly atS: number; readonly what: string }[];
  /** Why the expectation was missed; empty when it was met. */
  readonly missed: readonly string[];
  readonly met: boolean;
  /** Failed calls per second of the window, by intended send time. */
  readonly failuresPerSecond: Readonly<Record<number, number>>;
  /** The machine's 1-minute load average when the drill started and ended (2 cores: above 2 means queueing for CPU). */
  readonly loadavg: readonly [number, number];
  /** A few status messages per failure status. */
  readonly failureMessages: Readonly<Record<string, readonly string[]>>;
  /** With reflection: methods whose idempotency the client sidecar knew when the fault went in (0: it would not retry yet). */
  readonly idempotentMethodsKnownAtFault: number | undefined;
}

export interface RunOptions {
  readonly load: LoadOptions;
  readonly windowS: number;
  readonly faultAtS: number;
  readonly drill: DrillOptions;
  /** With reflection, the client sidecar learns GetProduct's idempotency from the servers once the route is applied. */
  readonly idempotencyFrom: 'reflection' | 'descriptor-set';
  readonly say: (line: string) => void;
  /** Called with the running load so SIGINT can stop it. */
  readonly onLoad?: (load: OpenLoop | undefined) => void;
}

const TAIL_MS = 3_000;
/** A drill's repair may overrun its window; the load never runs longer than this past it. */
const OVERRUN_CAP_MS = 180_000;

export async function runDrill(mesh: ChaosMesh, drill: Drill, opts: RunOptions): Promise<DrillResult> {
  const client = catalogClient(opts.load);
  const load = new OpenLoop(client, opts.load);
  opts.onLoad?.(load);
  const windowMs = opts.windowS * 1000;
  const timeline: { atS: number; what: string }[] = [];
  const missed: string[] = [];
  let faultFrom: number | undefined;
  let faultTo: number | undefined;
  let actionDone = Infinity;
  const at = () => Math.round(load.elapsed()) / 1000;
  const ctx: DrillContext = {
    mesh,
    opts: opts.drill,
    mark(what) {
      timeline.push({ atS: at(), what });
      opts.say(`  [${drill.name} +${at().toFixed(1)} s] ${what}`);
    },
    faultStarted() { faultFrom = load.elapsed(); },
    faultEnded() { faultTo = load.elapsed(); },
    expect(ok, reason) {
      if (ok) return;
      missed.push(reason);
      opts.say(`  [${drill.name} +${at().toFixed(1)} s] MISSED: ${reason}`);
    },
  };

  const loadStart = os.loadavg()[0]!;
  const running = load.run(() => (actionDone === Infinity ? Math.max(windowMs, load.elapsed() + 1_000) : Math.max(windowMs, actionDone + TAIL_MS)), windowMs + OVERRUN_CAP_MS);
  let knownAtFault: number | undefined;
  try {
    await new Promise((r) => setTimeout(r, opts.faultAtS * 1000));
    if (opts.idempotencyFrom === 'reflection') knownAtFault = (await mesh.clientCluster().catch(() => undefined))?.idempotency.methods;
    await drill.run(ctx);
  } catch (err) {
    ctx.expect(false, `the drill did not complete: ${(err as Error).message}`);
  } finally {
    actionDone = load.elapsed();
    faultFrom ??= actionDone;
    faultTo ??= actionDone;
  }
  await running;
  client.close();
  opts.onLoad?.(undefined);

  const total = load.log.summarize();
  const fault = { ...load.log.summarize(faultFrom, faultTo), fromS: faultFrom / 1000, toS: faultTo / 1000 };
  if (total.failedTotal > 0) {
    const byStatus = Object.entries(total.failed).map(([s, n]) => `${n} ${s}`).join(', ');
    const hint = knownAtFault === 0 && (total.failed.UNAVAILABLE ?? 0) > 0
      ? '; the client sidecar had not learnt that GetProduct is idempotent when the fault went in (see idempotency.problem in its /clusters), so it could not retry those'
      : '';
    missed.push(`${total.failedTotal} of ${total.sent} idempotent calls failed (${byStatus}) while a healthy replica remained${hint}`);
  }
  if (total.sent === 0) missed.push('no call was sent');
  return {
    name: drill.name,
    title: drill.title,
    loadS: load.elapsed() / 1000,
    total,
    fault,
    timeline,
    missed,
    met: missed.length === 0,
    failuresPerSecond: load.log.failuresPerSecond(),
    loadavg: [round2(loadStart), round2(os.loadavg()[0]!)],
    failureMessages: load.log.failureMessages(),
    idempotentMethodsKnownAtFault: knownAtFault,
  };
}

const round2 = (v: number) => Math.round(v * 100) / 100;
