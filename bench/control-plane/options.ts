/** The fleet worker's options, checked on the way in (they cross a process boundary as JSON). */
import { MAX_SIDECARS } from './fleet.js';
import type { FleetOptions } from './types.js';

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

function field<T>(o: Record<string, unknown>, name: keyof FleetOptions, check: (v: unknown) => v is T): T {
  const v = o[name];
  if (!check(v)) throw new Error(`fleet-worker: options.${name} is missing or has the wrong type`);
  return v;
}

export function parseFleetOptions(json: string): FleetOptions {
  const raw: unknown = JSON.parse(json);
  if (typeof raw !== 'object' || raw === null) throw new Error('fleet-worker: options must be a JSON object');
  const o = raw as Record<string, unknown>;
  const opts: FleetOptions = {
    controlPlane: field(o, 'controlPlane', isStr),
    controlPlanePid: field(o, 'controlPlanePid', isCount),
    etcdPid: field(o, 'etcdPid', isCount),
    etcdEndpoint: field(o, 'etcdEndpoint', isStr),
    prefix: field(o, 'prefix', isStr),
    sidecars: field(o, 'sidecars', isCount),
    streamsPerChannel: field(o, 'streamsPerChannel', isCount),
    register: field(o, 'register', isBool),
    flowControlWindow: field(o, 'flowControlWindow', isCount),
    changes: field(o, 'changes', isCount),
    intervalMs: field(o, 'intervalMs', isCount),
    changeTimeoutMs: field(o, 'changeTimeoutMs', isCount),
    connectTimeoutMs: field(o, 'connectTimeoutMs', isCount),
    settleMs: field(o, 'settleMs', isCount),
  };
  if (opts.sidecars < 1 || opts.sidecars > MAX_SIDECARS) throw new Error(`fleet-worker: sidecars must be 1..${MAX_SIDECARS}`);
  if (opts.streamsPerChannel < 1) throw new Error('fleet-worker: streamsPerChannel must be >= 1');
  return Object.freeze(opts);
}

/** The longest a run may take with these options; the worker exits past it, whatever it is doing. */
export function fleetBudgetMs(o: FleetOptions): number {
  return o.connectTimeoutMs * (o.register ? 3 : 2) + o.settleMs + o.changes * (o.intervalMs + o.changeTimeoutMs + 5000) + 30_000;
}
