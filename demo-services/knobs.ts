/**
 * Failure injection for the demo services: added latency, error responses, crashes. Wrapped around
 * every demo handler (never health or reflection, so probes keep telling the truth about the process)
 * so the mesh's retries, timeouts, outlier detection and balancing have something to react to.
 */
import * as grpc from '@grpc/grpc-js';
import { UsageError } from '../cli/flags.js';
import { parseErrorCode } from './status.js';

export const INSTANCE_HEADER = 'x-remora-instance';
/** Set in the status metadata of injected errors so tests and operators can tell them from real ones. */
export const FAULT_HEADER = 'x-remora-fault';

/**
 * Where an injected error's status travels. `headers`: a trailers-only response (status in the one
 * HEADERS frame). `trailers`: response headers first, then the status in trailers. A mesh must
 * classify both, so the demo can produce both.
 */
export type ErrorMode = 'headers' | 'trailers';

export interface Knobs {
  readonly instance: string;
  readonly latencyMs: number;
  readonly latencyJitterMs: number;
  readonly errorRate: number;
  readonly errorCode: grpc.status;
  readonly errorMessage: string;
  readonly errorMode: ErrorMode;
  /** 0 = never. Otherwise the process kills itself when call number crashAfter+1 arrives. */
  readonly crashAfter: number;
}

export interface RawKnobs {
  instance: string;
  'latency-ms': number;
  'latency-jitter-ms': number;
  'error-rate': string;
  'error-code': string;
  'error-message': string;
  'error-mode': string;
  'crash-after': number;
}

/** Validates once, up front, so a bad value is a usage error rather than a surprise under load. */
export function parseKnobs(raw: RawKnobs): Knobs {
  const nonNegative = (flag: keyof RawKnobs, v: number): number => {
    if (v < 0) throw new UsageError(`--${flag} must be >= 0, got ${v}`);
    return v;
  };
  const rate = Number(raw['error-rate']);
  if (raw['error-rate'].trim() === '' || !Number.isFinite(rate) || rate < 0 || rate > 1) {
    throw new UsageError(`--error-rate must be a number between 0 and 1, got ${JSON.stringify(raw['error-rate'])}`);
  }
  const mode = raw['error-mode'];
  if (mode !== 'headers' && mode !== 'trailers') {
    throw new UsageError(`--error-mode must be "headers" (trailers-only response) or "trailers", got ${JSON.stringify(mode)}`);
  }
  if (raw.instance.trim() === '') throw new UsageError('--instance must not be empty');
  return Object.freeze({
    instance: raw.instance,
    latencyMs: nonNegative('latency-ms', raw['latency-ms']),
    latencyJitterMs: nonNegative('latency-jitter-ms', raw['latency-jitter-ms']),
    errorRate: rate,
    errorCode: parseErrorCode(raw['error-code'], '--error-code'),
    errorMessage: raw['error-message'],
    errorMode: mode,
    crashAfter: nonNegative('crash-after', raw['crash-after']),
  });
}

type Verdict = 'serve' | 'fail' | 'gone';

/** What the knobs need of any server call; grpc-js does not export its common base type. */
type SurfaceCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'cancelled' | 'sendMetadata'>;

/** Per-process state of the knobs: one call counter shared by every service in the process. */
export class FaultInjector {
  private calls = 0;

  constructor(
    readonly knobs: Knobs,
    private readonly random: () => number = Math.random,
  ) {}

  /** Counts the call, sleeps the configured latency and decides whether it fails. */
  async admit(call: SurfaceCall): Promise<Verdict> {
    const k = this.knobs;
    this.calls++;
    if (k.crashAfter > 0 && this.calls > k.crashAfter) {
      // SIGKILL, not exit(): a crash must not run exit handlers or close connections politely.
      process.kill(process.pid, 'SIGKILL');
    }
    const delay = k.latencyMs + (k.latencyJitterMs > 0 ? this.random() * k.latencyJitterMs : 0);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    if (call.cancelled) return 'gone';
    return k.errorRate > 0 && this.random() < k.errorRate ? 'fail' : 'serve';
  }

  instanceMetadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(INSTANCE_HEADER, this.knobs.instance);
    return md;
  }

  /**
   * The injected error. In trailers mode the headers go out first, so the status lands in trailers;
   * in headers mode nothing has been sent and grpc-js answers trailers-only, so the instance header
   * rides in that single header block instead.
   */
  injectedError(call: SurfaceCall): Partial<grpc.StatusObject> {
    const k = this.knobs;
    const metadata = new grpc.Metadata();
    metadata.set(FAULT_HEADER, 'injected');
    if (k.errorMode === 'trailers') call.sendMetadata(this.instanceMetadata());
    else metadata.set(INSTANCE_HEADER, k.instance);
    return { code: k.errorCode, details: k.errorMessage, metadata };
  }
}

type Handler = grpc.UntypedHandleCall;
type Unary = grpc.handleUnaryCall<unknown, unknown>;
type ClientStreaming = grpc.handleClientStreamingCall<unknown, unknown>;
type ServerStreaming = grpc.handleServerStreamingCall<unknown, unknown>;
type Bidi = grpc.handleBidiStreamingCall<unknown, unknown>;

/**
 * Returns the implementation with every method behind the injector. Unary and client-streaming
 * calls fail through their callback; streaming responses fail by emitting the status as an error,
 * which grpc-js turns into the call's status.
 */
export function withKnobs<I extends grpc.UntypedServiceImplementation>(
  definition: grpc.ServiceDefinition,
  implementation: I,
  injector: FaultInjector,
): I {
  const wrapped: Record<string, Handler> = {};
  for (const [key, method] of Object.entries(definition)) {
    const handler = implementation[key];
    if (!handler) throw new Error(`service implementation lacks method ${key}`);
    const run = (call: SurfaceCall, serve: () => void, fail: (err: Partial<grpc.StatusObject>) => void): void => {
      void injector
        .admit(call)
        .then((verdict) => {
          if (verdict === 'gone') return;
          if (verdict === 'fail') return fail(injector.injectedError(call));
          call.sendMetadata(injector.instanceMetadata());
          serve();
        })
        // A handler bug must cost one call, not the process (an unhandled rejection would exit it).
        .catch((err: unknown) => fail({ code: grpc.status.INTERNAL, details: `handler failed: ${err instanceof Error ? err.message : String(err)}` }));
    };
    if (!method.requestStream && !method.responseStream) {
      const h = handler as Unary;
      wrapped[key] = ((call, cb) => run(call, () => h(call, cb), (e) => cb(e))) satisfies Unary;
    } else if (method.requestStream && !method.responseStream) {
      const h = handler as ClientStreaming;
      wrapped[key] = ((call, cb) => run(call, () => h(call, cb), (e) => cb(e))) satisfies ClientStreaming;
    } else if (!method.requestStream && method.responseStream) {
      const h = handler as ServerStreaming;
      wrapped[key] = ((call) => run(call, () => h(call), (e) => call.emit('error', e))) satisfies ServerStreaming;
    } else {
      const h = handler as Bidi;
      wrapped[key] = ((call) => run(call, () => h(call), (e) => call.emit('error', e))) satisfies Bidi;
    }
  }
  return wrapped as I;
}
