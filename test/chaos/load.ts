/**
 * A steady open loop of catalog GetProduct calls through the client sidecar's outbound port,
 * with a real grpc-js client. Arrivals follow the clock, not the answers: call i is due at
 * start + i/rps, and its latency counts from then, so a stall anywhere (the mesh, or this
 * process's event loop) shows up as latency instead of silently slowing the senders.
 *
 * Bounded three ways: the run ends at `endAt()` (which a drill may push back while its fault is
 * still being repaired) but never after `hardStopMs`; at most rps × hardStopMs calls are sent;
 * at most `maxInflight` are open at once (arrivals beyond it are logged as DROPPED). Every call
 * carries a deadline, so the wait for the last answers is bounded too.
 */
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { GetProductRequest } from '../../protos/gen/remora/demo/v1/catalog.js';
import { PRODUCTS } from '../../demo-services/products.js';
import { CallLog, DROPPED } from './call-log.js';

export const GET_PRODUCT = '/remora.demo.v1.CatalogService/GetProduct';

export interface LoadOptions {
  /** host:port of the client sidecar's outbound listener. */
  readonly target: string;
  readonly authority: string;
  readonly rps: number;
  readonly deadlineMs: number;
  readonly maxInflight: number;
}

const TICK_MS = 2;
const identity = (b: Buffer): Buffer => b;

/** One channel for the whole run: the client app keeps its connection to its own sidecar, as a real app would. */
export function catalogClient(opts: Pick<LoadOptions, 'target' | 'authority'>): grpc.Client {
  return new grpc.Client(opts.target, grpc.credentials.createInsecure(), {
    'grpc.default_authority': opts.authority,
    // Only the mesh retries: a client-side retry would hide what the drill is measuring.
    'grpc.enable_retries': 0,
  });
}

export class OpenLoop {
  readonly log = new CallLog();
  private readonly requests = PRODUCTS.map((p) => Buffer.from(GetProductRequest.encode({ id: p.id }).finish()));
  private startedAt = 0;
  private inflight = 0;
  private stopRequested = false;

  constructor(private readonly client: grpc.Client, private readonly opts: LoadOptions) {}

  /** Milliseconds since the run started (the time base of the log and of drill events). */
  elapsed(): number {
    return performance.now() - this.startedAt;
  }

  /** Ends the run at the next tick (SIGINT). */
  stop(): void {
    this.stopRequested = true;
  }

  async run(endAt: () => number, hardStopMs: number): Promise<void> {
    const { rps } = this.opts;
    const maxCalls = Math.ceil((rps * hardStopMs) / 1000);
    this.startedAt = performance.now();
    let next = 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = this.elapsed();
        const end = Math.min(endAt(), hardStopMs);
        while (next < maxCalls && !this.stopRequested) {
          const due = (next * 1000) / rps;
          if (due > now || due >= end) break;
          this.send(next++, due);
        }
        const finished = this.stopRequested || next >= maxCalls || (next * 1000) / rps >= end;
        if (finished) resolve();
        else setTimeout(tick, TICK_MS);
      };
      tick();
    });
    // Every call has a deadline; the margin covers a slow status on a loaded machine.
    const drainBy = performance.now() + this.opts.deadlineMs + 5_000;
    while (this.inflight > 0 && performance.now() < drainBy) await new Promise((r) => setTimeout(r, 20));
  }

  private send(i: number, intendedMs: number): void {
    if (this.inflight >= this.opts.maxInflight) {
      this.log.add(intendedMs, 0, DROPPED);
      return;
    }
    this.inflight++;
    const body = this.requests[i % this.requests.length]!;
    // The deadline runs from the real send, as an app sets it; a stall of this driver shows as latency, not as failures.
    const deadline = new Date(Date.now() + this.opts.deadlineMs);
    this.client.makeUnaryRequest(GET_PRODUCT, identity, identity, body, new grpc.Metadata(), { deadline }, (err, res) => {
      this.inflight--;
      let code: number = grpc.status.OK;
      let message: string | undefined;
      if (err) {
        code = err.code;
        message = err.details;
      } else if (!res || res.length === 0) {
        // An OK with no product would be a mesh bug worth failing on, not a success.
        code = grpc.status.DATA_LOSS;
        message = 'OK with an empty response';
      }
      this.log.add(intendedMs, this.elapsed() - intendedMs, code, message);
    });
  }
}
