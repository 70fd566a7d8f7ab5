/**
 * A call on a route with a timeout or retry policy. Calls without one take the lean path in
 * forward.ts; this one pays for what the policy needs:
 *
 * - a deadline (route timeout combined with the caller's grpc-timeout) that answers
 *   DEADLINE_EXCEEDED and resets the upstream, and passes the remaining time upstream;
 * - retries: the request is kept in a bounded replay buffer, and an attempt that fails before
 *   anything of its response went downstream is retried on another endpoint after a full-jitter
 *   backoff (or the server's grpc-retry-pushback-ms), within a retry budget. The status is read
 *   from trailers-only headers and from trailers: response headers and messages are held back
 *   (bounded by the replay buffer size) until the status arrives, so a status in trailers, or a
 *   connection lost before them, can still be retried. A unary method's answer waits for its
 *   status however long that takes (its caller cannot use the message before the status anyway);
 *   a stream's, or an unknown method's, at most HOLD_RESPONSE_MS.
 * - Safety: once a request may have reached the server (the stream was not refused), a retry on
 *   a status needs the method to be idempotent (from its descriptor) or the route's say-so. When
 *   that is not known yet but the cluster is asking its servers right now, the decision waits for
 *   the answer (at most METHODS_WAIT_MS), so even a fresh sidecar's first failure can be retried.
 */
import http2, { type IncomingHttpHeaders } from 'node:http2';
import type { RetrySpec } from '../../control-plane/resources/types.js';
import { Status, encodeGrpcMessage, respondWithError, type SidecarErrorReason, type StatusCode } from '../grpc/status.js';
import type { Cluster } from '../upstream/cluster.js';
import type { MethodKind } from '../idempotency/levels.js';
import { recordOf, type CallRecord } from '../observability/call-record.js';
import type { Endpoint, PooledSession } from '../upstream/endpoint.js';
import { ConnectionOverflow, abandonStream, spendReset } from '../upstream/endpoint.js';
import { CALLER_CANCELLED, MISSING_TRAILERS, TRANSPORT_FAILURE } from '../proxy/forward.js';
import { fullJitterBackoff } from '../upstream/backoff.js';
import { encodeGrpcTimeout, effectiveTimeoutMs, parseGrpcTimeout, type GrpcTimeoutMode } from './grpc-timeout.js';
import { RetryBudget } from './retry-budget.js';
import type { H2Stream } from '../h2/stream.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** What the request path reads from a route for this class. */
export interface CallPolicy {
  readonly timeoutMs?: number;
  readonly grpcTimeout?: GrpcTimeoutMode;
  readonly idleTimeoutMs?: number;
  readonly retries?: RetrySpec;
}

export type IdempotencyLevel = 'NO_SIDE_EFFECTS' | 'IDEMPOTENT' | 'UNKNOWN';

export interface PolicyCallContext {
  readonly cluster: Cluster;
  readonly policy: CallPolicy;
  readonly routeName: string;
  /** How safe the method is to send twice (from descriptors); UNKNOWN when not known. */
  readonly idempotency: (path: string) => IdempotencyLevel;
  /** The method's shape from descriptors the caller holds (e.g. --descriptor-set); the cluster's reflection otherwise. */
  readonly methodKind?: (path: string) => MethodKind | undefined;
  readonly pickContext: { now: number; headers: IncomingHttpHeaders };
}

const STATUS_BY_NAME: Readonly<Record<string, number>> = Status;
const budgets = new WeakMap<RetrySpec, RetryBudget>();
const retryCodes = new WeakMap<RetrySpec, ReadonlySet<number>>();

function budgetOf(spec: RetrySpec): RetryBudget {
  let b = budgets.get(spec);
  if (!b) {
    b = new RetryBudget(spec.budgetPercent ?? 20, spec.minRetriesPerSecond ?? 10);
    budgets.set(spec, b);
  }
  return b;
}

function codesOf(spec: RetrySpec): ReadonlySet<number> {
  let codes = retryCodes.get(spec);
  if (!codes) {
    codes = new Set((spec.retryOn.length ? spec.retryOn : ['UNAVAILABLE']).map((n) => STATUS_BY_NAME[n]!));
    retryCodes.set(spec, codes);
  }
  return codes;
}


interface Attempt {
  readonly call: PolicyCall;
  readonly up: H2Stream;
  readonly endpoint: Endpoint;
  readonly pooled: PooledSession;
  readonly startedAt: number;
  heldHeaders: IncomingHttpHeaders | undefined;
  /** Response messages held back (bounded) so a status arriving just after them can still be retried. */
  held: Buffer[];
  heldBytes: number;
  holdTimer: NodeJS.Timeout | undefined;
  status: number | undefined;
  /** The upstream's trailers, when they came: only then is `status` the upstream's own word. */
  trailers: IncomingHttpHeaders | undefined;
  /** Cut by the per-try timeout (`status` is then ours, DEADLINE_EXCEEDED). */
  timedOut: boolean;
  done: boolean;
  /** Abandoned past the session's reset budget: released at its 'close', not before (see abandonStream). */
  releaseAtClose: boolean;
  perTryTimer: NodeJS.Timeout | undefined;
}

/**
 * How long response messages of a retrying streaming (or unknown) method may wait for their
 * trailers: a stream's first message is delayed by at most this. Unary answers are not timed:
 * they wait for their status (see the top of this file), since on a loaded machine the gap between
 * message and trailers grows well past any short window.
 */
const HOLD_RESPONSE_MS = 20;

/** The longest a failed attempt waits for the cluster's reflection to say whether it may be retried. */
const METHODS_WAIT_MS = 1_000;

// Listeners are module-level functions that find their call (or attempt) through a symbol on the
// stream, as in forward.ts: a call costs no closures.
const kCall = Symbol('remora.policyCall');
const kAttempt = Symbol('remora.attempt');
type Down = H2Stream & { [kCall]: PolicyCall };
type Up = H2Stream & { [kAttempt]: Attempt };

function noop(): void {}
function onDownData(this: Down, chunk: Buffer): void {
  this[kCall].onRequestData(chunk);
}
function onDownEnd(this: Down): void {
  this[kCall].onRequestEnd();
}
function onDownClose(this: Down): void {
  this[kCall].onCallerGone();
}
function onDownWantTrailers(this: Down): void {
  this[kCall].sendTrailers();
}
function onUpDrain(this: Up): void {
  this[kAttempt].call.down.resume();
}
function onUpResponse(this: Up, h: IncomingHttpHeaders, flags: number): void {
  const a = this[kAttempt];
  a.call.onResponse(a, h, flags);
}
function onUpTrailers(this: Up, t: IncomingHttpHeaders): void {
  const a = this[kAttempt];
  a.call.onTrailers(a, t);
}
function onUpClose(this: Up): void {
  const a = this[kAttempt];
  a.call.onAttemptClose(a);
}
function onUpData(this: Up, chunk: Buffer): void {
  const a = this[kAttempt];
  a.call.onResponseData(a, chunk);
}

export class PolicyCall {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** More request bytes than the replay buffer holds went upstream: no retry can resend them. */
  private overflowed = false;
  private requestEnded = false;
  /** Response headers (or a trailers-only answer) went downstream: the call's fate is sealed. */
  private committed = false;
  private finished = false;
  private attempt: Attempt | undefined;
  private attempts = 0;
  /** The observability layer's record of this call, when it keeps one. */
  private readonly record: CallRecord | undefined;
  /** Endpoints this call was sent to (a few at most: an array beats a Set here). */
  private readonly tried: Endpoint[] = [];
  private readonly deadlineAt: number | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  private trailers: IncomingHttpHeaders | Record<string, string> | undefined;
  private readonly retry: RetrySpec | undefined;
  private readonly replayLimit: number;
  /** This call holds one of the cluster's max-retries slots (from its first retry to its end). */
  private holdsRetry = false;
  /** The method is known to be unary: its answer is held until its status (decided at the first message). */
  private unary: boolean | undefined;
  /** Why the last failed attempt was not retried, for the caller's status message. */
  private noRetry = '';
  /** Between a failed attempt and its retry: how to answer instead if the retry becomes impossible. */
  private awaitingRetry: (() => void) | undefined;

  constructor(
    readonly down: H2Stream,
    private readonly headers: IncomingHttpHeaders,
    private readonly ctx: PolicyCallContext,
    now: number,
    /** The cluster breakers handle-stream took for this call (released once, at the end). */
    private readonly held: number,
  ) {
    const policy = ctx.policy;
    this.record = recordOf(down);
    this.retry = policy.retries && policy.retries.maxAttempts > 1 ? policy.retries : undefined;
    this.replayLimit = this.retry ? (this.retry.replayBufferBytes ?? 65_536) : 0;
    const timeout = effectiveTimeoutMs(policy.timeoutMs, parseGrpcTimeout(headers['grpc-timeout']), policy.grpcTimeout ?? 'CAP');
    this.deadlineAt = timeout === undefined ? undefined : now + timeout;
    if (this.retry) {
      budgetOf(this.retry).recordCall(now);
      // Normally already done when the config was applied; this covers clusters that were not marked.
      ctx.cluster.wantMethods();
    }

    (down as Down)[kCall] = this;
    down.on('data', onDownData);
    down.on('end', onDownEnd);
    down.on('close', onDownClose);
    down.on('error', noop);
    down.on('wantTrailers', onDownWantTrailers);
    if (policy.idleTimeoutMs) {
      down.setTimeout(policy.idleTimeoutMs, () => (ctx.cluster.stats.timeouts++, this.fail(Status.DEADLINE_EXCEEDED, `remora: stream idle for ${policy.idleTimeoutMs} ms (route ${ctx.routeName})`, 'timeout')));
    }
    if (this.deadlineAt !== undefined) {
      this.deadlineTimer = setTimeout(() => {
        ctx.cluster.stats.timeouts++;
        this.fail(Status.DEADLINE_EXCEEDED, `remora: deadline of ${timeout} ms exceeded (route ${ctx.routeName})`, 'timeout');
      }, Math.max(0, timeout!));
    }
  }

  start(first: Endpoint): void {
    this.startAttempt(first);
  }

  // ---- request direction ----

  /** @internal */
  sendTrailers(): void {
    this.down.sendTrailers(this.trailers ?? MISSING_TRAILERS);
  }

  /** @internal */
  onRequestData(chunk: Buffer): void {
    if (this.record !== undefined) this.record.bytesIn += chunk.length;
    if (!this.overflowed && this.retry) {
      this.buffered += chunk.length;
      if (this.buffered > this.replayLimit) {
        this.overflowed = true;
        this.chunks.length = 0;
        // No attempt is running to take these bytes, and none could resend them: the retry being
        // waited for is off, and the failure it was for is the answer, now.
        const giveUp = this.awaitingRetry;
        if (giveUp !== undefined) {
          this.awaitingRetry = undefined;
          if (this.backoffTimer) clearTimeout(this.backoffTimer);
          this.backoffTimer = undefined;
          giveUp();
          return;
        }
      } else this.chunks.push(chunk);
    }
    const up = this.attempt?.up;
    if (up && !up.destroyed && !up.closed && !up.write(chunk)) {
      this.down.pause();
      up.once('drain', onUpDrain);
    }
  }

  /** @internal */
  onRequestEnd(): void {
    this.requestEnded = true;
    const up = this.attempt?.up;
    if (up && !up.destroyed && !up.closed) up.end();
  }

  /** @internal */
  onCallerGone(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearTimers();
    this.ctx.cluster.releaseHeld(this.held);
    const a = this.attempt;
    if (a && !a.done && !a.up.closed && !a.up.destroyed) {
      a.done = true;
      // Within the session's reset budget, as forward.ts: past it, callers leaving in bulk would
      // look like a rapid-reset attack to the app, which then drops the connection under everyone.
      if (spendReset(a.pooled, Date.now())) {
        a.up.close(NGHTTP2_CANCEL);
        this.release(a, CALLER_CANCELLED);
        return;
      }
      a.up.off('data', onUpData);
      a.releaseAtClose = true;
      abandonStream(a.pooled, a.up);
    }
  }

  // ---- attempts ----

  private pickEndpoint(now: number): Endpoint | undefined {
    // Another endpoint than those already tried, when there is one.
    this.ctx.pickContext.now = now;
    this.ctx.pickContext.headers = this.headers;
    let fallback: Endpoint | undefined;
    for (let i = 0; i < 4; i++) {
      const e = this.ctx.cluster.pick(this.ctx.pickContext);
      if (e === undefined) break;
      if (!this.tried.includes(e)) return e;
      fallback ??= e;
    }
    return fallback;
  }

  private startAttempt(endpoint: Endpoint): void {
    const now = Date.now();
    this.attempts++;
    this.tried.push(endpoint);
    let pooled: PooledSession;
    try {
      pooled = endpoint.acquire(now);
    } catch (err) {
      const why = err instanceof ConnectionOverflow ? `circuit breaker ${err.breaker} tripped for cluster ${this.ctx.cluster.name}` : (err as Error).message;
      return this.fail(Status.UNAVAILABLE, `remora: ${why}`, 'overflow');
    }
    if (this.deadlineAt !== undefined) this.headers['grpc-timeout'] = encodeGrpcTimeout(this.deadlineAt - now);
    let up: H2Stream;
    try {
      up = pooled.session.request(this.headers, { endStream: false });
    } catch (err) {
      pooled.draining = true;
      this.ctx.cluster.callEnded(endpoint, TRANSPORT_FAILURE, now, now, 0);
      return this.afterFailure(undefined, true, `cannot open a stream to ${endpoint.key}: ${(err as Error).message}`);
    }
    pooled.active++;
    endpoint.activeRequests++;
    const a: Attempt = { call: this, up, endpoint, pooled, startedAt: now, heldHeaders: undefined, held: [], heldBytes: 0, holdTimer: undefined, status: undefined, trailers: undefined, timedOut: false, done: false, releaseAtClose: false, perTryTimer: undefined };
    this.attempt = a;
    const perTry = this.retry?.perTryTimeoutMs;
    if (perTry !== undefined) {
      a.perTryTimer = setTimeout(() => {
        if (a.done || this.committed) return;
        this.ctx.cluster.stats.perTryTimeouts++;
        a.status = Status.DEADLINE_EXCEEDED;
        a.timedOut = true;
        a.up.close(NGHTTP2_CANCEL);
        // Not waiting for the stream's 'close': a stream still pending on a connecting session (a
        // peer that accepted TCP and then went silent in the TLS handshake) only closes when the
        // connect fails or times out, and the call would hang until then instead of moving on.
        this.onAttemptClose(a);
      }, perTry);
    }
    (up as Up)[kAttempt] = a;
    up.on('error', noop);
    up.on('response', onUpResponse);
    up.on('trailers', onUpTrailers);
    up.on('close', onUpClose);
    for (const c of this.chunks) up.write(c);
    if (this.requestEnded) up.end();
  }

  /** @internal */
  onResponse(a: Attempt, h: IncomingHttpHeaders, flags: number): void {
    // Read the body only once the headers are known (see forward.ts).
    if (!(flags & NGHTTP2_FLAG_END_STREAM)) a.up.on('data', onUpData);
    else a.up.resume();
    const now = Date.now();
    this.ctx.cluster.responseStarted(a.endpoint, now - a.startedAt, now);
    if (this.finished || a !== this.attempt) return;
    if (flags & NGHTTP2_FLAG_END_STREAM) {
      // Trailers-only: the status is here.
      a.status = Number(h['grpc-status'] ?? Status.UNKNOWN);
      a.heldHeaders = h;
      return; // decided in onAttemptClose, once the stream is done
    }
    if (this.retry) a.heldHeaders = h;
    else this.commit(h, false);
  }

  /** @internal */
  onResponseData(a: Attempt, chunk: Buffer): void {
    if (this.finished || a !== this.attempt) return;
    if (!this.committed && this.retry) {
      a.held.push(chunk);
      a.heldBytes += chunk.length;
      if (a.heldBytes > this.replayLimit) this.release0(a);
      else if (!this.isUnary()) a.holdTimer ??= setTimeout(() => this.release0(a), HOLD_RESPONSE_MS);
      return;
    }
    if (!this.committed) this.commit(a.heldHeaders!, false);
    this.send(a, chunk);
  }

  private isUnary(): boolean {
    if (this.unary === undefined) {
      const path = String(this.headers[':path']);
      this.unary = (this.ctx.methodKind?.(path) ?? this.ctx.cluster.methodKindOf(path)) === 'UNARY';
    }
    return this.unary;
  }

  private send(a: Attempt, chunk: Buffer): void {
    if (this.record !== undefined) this.record.bytesOut += chunk.length;
    if (!this.down.write(chunk)) {
      a.up.pause();
      this.down.once('drain', () => a.up.resume());
    }
  }

  /** Commits the held response headers and messages: from here on this attempt's answer is final. */
  private release0(a: Attempt): void {
    if (a.holdTimer) clearTimeout(a.holdTimer);
    a.holdTimer = undefined;
    if (this.finished || a !== this.attempt || this.committed) return;
    this.commit(a.heldHeaders!, false);
    for (const c of a.held) this.send(a, c);
    a.held = [];
  }

  /** @internal */
  onTrailers(a: Attempt, t: IncomingHttpHeaders): void {
    a.status = Number(t['grpc-status'] ?? Status.UNKNOWN);
    a.trailers = t;
    if (a === this.attempt) this.trailers = t;
  }

  private commit(h: IncomingHttpHeaders, endStream: boolean): void {
    if (this.committed || this.down.destroyed || this.down.closed) return;
    this.committed = true;
    this.chunks.length = 0;
    this.down.respond(h, endStream ? { endStream: true } : { waitForTrailers: true });
  }

  /** @internal */
  onAttemptClose(a: Attempt): void {
    if (a.perTryTimer) clearTimeout(a.perTryTimer);
    if (a.holdTimer) clearTimeout(a.holdTimer);
    a.holdTimer = undefined;
    if (a.done) {
      if (a.releaseAtClose) {
        a.releaseAtClose = false;
        this.release(a, CALLER_CANCELLED);
      }
      return;
    }
    a.done = true;
    const rst = a.up.rstCode ?? 0;
    const refused = rst === NGHTTP2_REFUSED_STREAM || !a.pooled.connected;
    const outcome = a.status !== undefined && (!rst || a.status === Status.DEADLINE_EXCEEDED) ? a.status : TRANSPORT_FAILURE;
    this.release(a, outcome);
    if (this.finished || a !== this.attempt) return;
    if (this.committed) {
      // Response under way: finish it with the upstream's trailers, or say how it broke.
      if (outcome === TRANSPORT_FAILURE) this.trailers = { 'grpc-status': String(Status.UNAVAILABLE), 'grpc-message': encodeGrpcMessage(`remora: connection to ${a.endpoint.key} lost during the response`), 'x-remora-error': 'upstream-reset' };
      this.finish();
      return;
    }
    if (outcome === Status.OK) {
      // A trailers-only OK, or headers, held messages (maybe none) and trailers.
      if (a.heldHeaders!['grpc-status'] !== undefined) this.commit(a.heldHeaders!, true);
      else this.release0(a);
      this.finish();
      return;
    }
    const pushback = this.trailersOf(a)?.['grpc-retry-pushback-ms'];
    this.afterFailure(a, refused, outcome === TRANSPORT_FAILURE ? `${a.endpoint.key}: ${refused ? 'stream refused or connect failed' : 'connection lost'}` : undefined, outcome, pushback);
  }

  private trailersOf(a: Attempt): IncomingHttpHeaders | undefined {
    return a.heldHeaders?.['grpc-status'] !== undefined ? a.heldHeaders : (this.trailers as IncomingHttpHeaders | undefined);
  }

  /** An attempt ended without committing: retry if the policy allows, else pass its answer on. */
  private afterFailure(a: Attempt | undefined, refused: boolean, transportWhy: string | undefined, outcome = TRANSPORT_FAILURE, pushback?: string | string[]): void {
    const pending = this.waitsForMethods(outcome, refused);
    if (pending === undefined) return this.decideAfterFailure(a, refused, transportWhy, outcome, pushback);
    const waitMs = Math.min(METHODS_WAIT_MS, this.deadlineAt === undefined ? Infinity : this.deadlineAt - Date.now());
    let resumed = false;
    const resume = (): void => {
      if (resumed) return;
      resumed = true;
      this.awaitingRetry = undefined;
      if (this.backoffTimer) clearTimeout(this.backoffTimer);
      this.backoffTimer = undefined;
      if (!this.finished) this.decideAfterFailure(a, refused, transportWhy, outcome, pushback);
    };
    this.awaitingRetry = resume;
    this.backoffTimer = setTimeout(resume, Math.max(0, waitMs));
    void pending.then(resume);
  }

  /**
   * The cluster's reflection under way, when it alone stands between this failure and a retry:
   * everything else allows one, and the method's idempotency is not known yet.
   */
  private waitsForMethods(outcome: number, refused: boolean): Promise<void> | undefined {
    const spec = this.retry;
    if (!spec || refused || spec.retryNonIdempotent || this.committed || this.overflowed || this.attempts >= spec.maxAttempts) return undefined;
    if (outcome !== TRANSPORT_FAILURE && !codesOf(spec).has(outcome)) return undefined;
    if (this.ctx.idempotency(String(this.headers[':path'])) !== 'UNKNOWN') return undefined;
    return this.ctx.cluster.methodsPending();
  }

  private decideAfterFailure(a: Attempt | undefined, refused: boolean, transportWhy: string | undefined, outcome: number, pushback?: string | string[]): void {
    const now = Date.now();
    const retryable = this.canRetry(outcome, refused, now, pushback);
    if (retryable !== undefined) {
      this.ctx.cluster.stats.retries++;
      if (this.record !== undefined) this.record.retries++;
      this.awaitingRetry = () => {
        this.noRetry = 'the request outgrew the replay buffer during the backoff';
        this.giveUp(a, refused, transportWhy, outcome);
      };
      this.backoffTimer = setTimeout(() => {
        this.backoffTimer = undefined;
        this.awaitingRetry = undefined;
        if (this.finished) return;
        const next = this.pickEndpoint(Date.now());
        if (next === undefined) return this.fail(Status.UNAVAILABLE, `remora: ${this.ctx.cluster.unavailableReason(Date.now())}`, 'no-endpoint');
        this.startAttempt(next);
      }, retryable);
      return;
    }
    this.giveUp(a, refused, transportWhy, outcome);
  }

  /** No (more) retries: the caller gets the last attempt's answer, or a status saying what went wrong. */
  private giveUp(a: Attempt | undefined, refused: boolean, transportWhy: string | undefined, outcome: number): void {
    if (a && outcome !== TRANSPORT_FAILURE) {
      const held = a.heldHeaders;
      if (held && held['grpc-status'] !== undefined) this.commit(held, true);
      else if (held && a.trailers !== undefined) {
        // Pass the upstream's own answer on, as it came.
        this.release0(a);
        return this.finish();
      } else if (a.timedOut) {
        // Our own verdict, even if response headers had come: passing those on would end the
        // response without a status (INTERNAL at the caller) instead of saying what happened.
        this.fail(outcome, `remora: per-try timeout of ${this.retry!.perTryTimeoutMs} ms exceeded on ${a.endpoint.key} (attempt ${this.attempts}; no retry: ${this.noRetry})`, 'timeout');
      } else this.fail(outcome, `remora: attempt ended with status ${outcome}; no retry: ${this.noRetry}`, 'upstream-reset');
      this.finish();
      return;
    }
    this.fail(Status.UNAVAILABLE, `remora: ${transportWhy ?? 'upstream failed'}${this.attempts > 1 ? ` (after ${this.attempts} attempts)` : ''}${this.retry ? `; no retry: ${this.noRetry}` : ''}`, refused ? 'connect-failure' : 'upstream-reset');
  }

  /** The backoff in ms before the next attempt, or undefined for "no retry" (noRetry says why). */
  private canRetry(outcome: number, refused: boolean, now: number, pushback: string | string[] | undefined): number | undefined {
    const spec = this.retry;
    if (!spec) return this.noRetryBecause('the route has no retries');
    if (this.committed) return this.noRetryBecause('the response had begun');
    if (this.overflowed) return this.noRetryBecause('the request outgrew the replay buffer');
    if (this.attempts >= spec.maxAttempts) return this.noRetryBecause(`all ${spec.maxAttempts} attempts made`);
    if (outcome !== TRANSPORT_FAILURE && !codesOf(spec).has(outcome)) return this.noRetryBecause(`status ${outcome} is not in retryOn`);
    // A refused stream never reached the server: always safe. Anything else may have.
    if (!refused && !spec.retryNonIdempotent) {
      const level = this.ctx.idempotency(String(this.headers[':path']));
      if (level === 'UNKNOWN') return this.noRetryBecause('the method is not known to be idempotent');
    }
    let delay = fullJitterBackoff(this.attempts - 1, spec.backoffBaseMs, spec.backoffMaxMs);
    if (typeof pushback === 'string') {
      const ms = Number(pushback);
      if (!/^\d+$/.test(pushback)) return this.noRetryBecause('the server said not to (grpc-retry-pushback-ms)');
      delay = ms;
    }
    if (this.deadlineAt !== undefined && now + delay >= this.deadlineAt) return this.noRetryBecause('the deadline is too close');
    // The cluster's max-retries breaker: retries in flight across all calls, like Envoy's.
    const breakers = this.ctx.cluster.breakers;
    if (breakers !== undefined && !this.holdsRetry) {
      if (breakers.tryAcquire('retry') !== null) return this.noRetryBecause('the max-retries breaker is full');
      this.holdsRetry = true;
    }
    if (!budgetOf(spec).tryRetry(now)) {
      this.ctx.cluster.stats.retryBudgetExhausted++;
      return this.noRetryBecause('the retry budget is spent');
    }
    return delay;
  }

  private noRetryBecause(why: string): undefined {
    this.noRetry = why;
    return undefined;
  }

  private release(a: Attempt, outcome: number): void {
    a.pooled.active--;
    a.endpoint.activeRequests--;
    this.ctx.cluster.callEnded(a.endpoint, outcome, a.startedAt, Date.now(), 0);
  }

  private finish(): void {
    this.clearTimers();
    if (this.finished) return;
    this.finished = true;
    this.ctx.cluster.releaseHeld(this.held);
    if (!this.down.destroyed && !this.down.closed && this.down.headersSent && !this.down.writableEnded) this.down.end();
  }

  /** Answer the caller ourselves (deadline, overflow, exhausted retries) and stop the attempt. */
  private fail(code: number, message: string, reason: SidecarErrorReason): void {
    if (this.finished) return;
    const a = this.attempt;
    if (a && !a.done && !a.up.closed && !a.up.destroyed) a.up.close(NGHTTP2_CANCEL);
    if (this.committed) {
      this.trailers = { 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message), 'x-remora-error': reason };
      this.finish();
      return;
    }
    this.clearTimers();
    this.finished = true;
    this.ctx.cluster.releaseHeld(this.held);
    respondWithError(this.down, code as StatusCode, message, reason);
  }

  private releaseRetry(): void {
    if (this.holdsRetry) {
      this.holdsRetry = false;
      this.ctx.cluster.breakers?.release('retry');
    }
  }

  private clearTimers(): void {
    this.releaseRetry();
    this.awaitingRetry = undefined;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.deadlineTimer = undefined;
    this.backoffTimer = undefined;
    if (this.attempt?.perTryTimer) clearTimeout(this.attempt.perTryTimer);
  }
}
