/**
 * Load generator process: `node dist/bench/loadgen-worker.js '<LoadOptions JSON>'`.
 * Runs apart from the orchestrator so its CPU is its own and measurable. Speaks JSON lines on stdout:
 * {"event":"measure-start"}, {"event":"measure-end"} (so the orchestrator can read the other
 * processes' CPU over the same window), then {"event":"result","result":LoadResult}.
 */
import { WORKLOADS, type Workload } from './echo-service.js';
import { runLoad, type LoadMode, type LoadOptions, type LoadResult } from './loadgen.js';

export type WorkerEvent =
  | { readonly event: 'measure-start' }
  | { readonly event: 'measure-end' }
  | { readonly event: 'result'; readonly result: LoadResult };

function field<T>(obj: Record<string, unknown>, name: string, check: (v: unknown) => v is T): T {
  const v = obj[name];
  if (!check(v)) throw new Error(`loadgen-worker: options.${name} is missing or has the wrong type`);
  return v;
}
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isMode = (v: unknown): v is LoadMode => v === 'closed' || v === 'open';
const isWorkload = (v: unknown): v is Workload => WORKLOADS.some((w) => w === v);

function parseLoadOptions(json: string): LoadOptions {
  const raw: unknown = JSON.parse(json);
  if (typeof raw !== 'object' || raw === null) throw new Error('loadgen-worker: options must be a JSON object');
  const o = raw as Record<string, unknown>;
  return Object.freeze({
    host: field(o, 'host', isStr),
    port: field(o, 'port', isNum),
    authority: field(o, 'authority', isStr),
    path: field(o, 'path', isStr),
    workload: field(o, 'workload', isWorkload),
    streamMessages: field(o, 'streamMessages', isNum),
    connections: Math.max(1, field(o, 'connections', isNum)),
    streams: Math.max(1, field(o, 'streams', isNum)),
    mode: field(o, 'mode', isMode),
    rps: field(o, 'rps', isNum),
    maxInflight: Math.max(1, field(o, 'maxInflight', isNum)),
    warmupS: field(o, 'warmupS', isNum),
    durationS: field(o, 'durationS', isNum),
    requests: field(o, 'requests', isNum),
    payloadBytes: field(o, 'payloadBytes', isNum),
    timeoutMs: Math.max(1, field(o, 'timeoutMs', isNum)),
  });
}

function emit(e: WorkerEvent): void {
  process.stdout.write(JSON.stringify(e) + '\n');
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error("usage: loadgen-worker.js '<options JSON>'");
  const opts = parseLoadOptions(arg);
  if (opts.mode === 'open' && opts.rps <= 0) throw new Error('loadgen-worker: open loop needs rps > 0');
  const result = await runLoad(opts, {
    onMeasureStart: () => emit({ event: 'measure-start' }),
    onMeasureEnd: () => emit({ event: 'measure-end' }),
  });
  emit({ event: 'result', result });
  // Sessions may hold the loop open for their graceful close; the result is already out.
  process.stdout.write('', () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`loadgen-worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
