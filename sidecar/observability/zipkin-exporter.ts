/**
 * Sends finished spans to a Zipkin collector (v2 JSON over HTTP), in batches, off the call path:
 * export() only enqueues. One request at a time; a failed batch is reported and dropped, never
 * retried in a loop; past `maxQueue` spans are dropped and counted rather than piling up.
 */
import http from 'node:http';
import https from 'node:https';

export interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  kind: 'CLIENT' | 'SERVER';
  name: string;
  /** Epoch microseconds. */
  timestamp: number;
  /** Microseconds, at least 1. */
  duration: number;
  localEndpoint: { serviceName: string };
  remoteEndpoint?: { ipv4?: string; ipv6?: string; port?: number };
  tags: Record<string, string>;
  shared?: boolean;
}

export interface SpanExporter {
  /** Never blocks, never throws. */
  export(span: ZipkinSpan): void;
  /** Resolves once every span exported before the call has been sent (or dropped). */
  flush(): Promise<void>;
  /** Flushes, then releases the connection; later spans are dropped. */
  close(): Promise<void>;
}

export interface ZipkinExporterOptions {
  /** e.g. http://127.0.0.1:9411/api/v2/spans */
  readonly url: string;
  /** Spans per POST, and the queue length that triggers one. Default 100. */
  readonly maxBatch?: number;
  /** A partial batch waits at most this long. Default 1000. */
  readonly flushIntervalMs?: number;
  /** Spans waiting beyond this are dropped and counted. Default 10000. */
  readonly maxQueue?: number;
  /** Per request. Default 10000. */
  readonly timeoutMs?: number;
  /** Told about each failed batch. */
  readonly onError?: (err: Error) => void;
}

function positiveInt(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`ZipkinExporter: ${name} must be a positive integer, got ${v}`);
  return v;
}

const JSON_HEADERS = { 'content-type': 'application/json' } as const;

export class ZipkinExporter implements SpanExporter {
  private readonly url: URL;
  private readonly transport: typeof http | typeof https;
  private readonly agent: http.Agent;
  private readonly maxBatch: number;
  private readonly flushIntervalMs: number;
  private readonly maxQueue: number;
  private readonly timeoutMs: number;
  private readonly onError: (err: Error) => void;

  private queue: ZipkinSpan[] = [];
  private inflight: Promise<void> | undefined = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;
  private immediate: NodeJS.Immediate | undefined = undefined;
  private closed = false;
  /** Spans taken off the queue into batches so far (sent or failed), for flush(). */
  private taken = 0;
  private droppedCount = 0;
  private exportedCount = 0;

  constructor(opts: ZipkinExporterOptions) {
    this.url = new URL(opts.url);
    if (this.url.protocol === 'http:') {
      this.transport = http;
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    } else if (this.url.protocol === 'https:') {
      this.transport = https;
      this.agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    } else {
      throw new Error(`ZipkinExporter: url must be http: or https:, got ${JSON.stringify(opts.url)}`);
    }
    this.maxBatch = positiveInt('maxBatch', opts.maxBatch, 100);
    this.flushIntervalMs = positiveInt('flushIntervalMs', opts.flushIntervalMs, 1000);
    this.maxQueue = positiveInt('maxQueue', opts.maxQueue, 10_000);
    this.timeoutMs = positiveInt('timeoutMs', opts.timeoutMs, 10_000);
    this.onError = opts.onError ?? noop;
  }

  /** Spans dropped: queue full, exporter closed, or their batch failed. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Spans the collector accepted. */
  get exported(): number {
    return this.exportedCount;
  }

  export(span: ZipkinSpan): void {
    if (this.closed || this.queue.length >= this.maxQueue) {
      this.droppedCount++;
      return;
    }
    const n = this.queue.push(span);
    if (this.inflight !== undefined) return; // the send in progress looks again when it is done
    if (n >= this.maxBatch) {
      // Serialise and send after the current call's work, not inside it.
      if (this.immediate === undefined) this.immediate = setImmediate(this.onImmediate).unref();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(this.onTimer, this.flushIntervalMs).unref();
    }
  }

  async flush(): Promise<void> {
    const target = this.taken + this.queue.length;
    while (this.taken < target || this.inflight !== undefined) {
      if (this.inflight !== undefined) await this.inflight;
      else this.sendBatch();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    this.disarm();
    this.agent.destroy();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.sendBatch();
  };

  private readonly onImmediate = (): void => {
    this.immediate = undefined;
    this.sendBatch();
  };

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }

  /** Starts a POST of up to maxBatch queued spans, unless one is in flight or there is nothing. */
  private sendBatch(): void {
    if (this.inflight !== undefined || this.queue.length === 0) return;
    this.disarm();
    const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
    if (batch === this.queue) this.queue = [];
    else this.queue.splice(0, batch.length);
    this.taken += batch.length;
    this.inflight = this.post(batch).then((err) => {
      if (err === undefined) this.exportedCount += batch.length;
      else {
        this.droppedCount += batch.length;
        try {
          this.onError(err);
        } catch {
          // a throwing error handler must not break the exporter
        }
      }
      this.inflight = undefined;
      this.afterSend();
    });
  }

  private afterSend(): void {
    const n = this.queue.length;
    if (n >= this.maxBatch) {
      if (this.immediate === undefined) this.immediate = setImmediate(this.onImmediate).unref();
    } else if (n > 0 && this.timer === undefined && this.immediate === undefined) {
      this.timer = setTimeout(this.onTimer, this.flushIntervalMs).unref();
    }
  }

  /** One POST; resolves with the failure, if any (never rejects). Retries once only on a stale keep-alive socket. */
  private post(batch: ZipkinSpan[]): Promise<Error | undefined> {
    let body: Buffer;
    try {
      body = Buffer.from(JSON.stringify(batch), 'utf8');
    } catch (err) {
      return Promise.resolve(new Error(`zipkin exporter: cannot serialise a batch: ${(err as Error).message}`));
    }
    const attempt = (retry: boolean): Promise<Error | undefined> =>
      new Promise((resolve) => {
        let settled = false;
        const done = (err: Error | undefined): void => {
          if (settled) return;
          settled = true;
          resolve(err);
        };
        const req = this.transport.request(this.url, {
          method: 'POST',
          agent: this.agent,
          headers: { ...JSON_HEADERS, 'content-length': body.length },
        });
        req.setTimeout(this.timeoutMs, () => {
          req.destroy(new Error(`zipkin collector ${this.url.href} did not answer within ${this.timeoutMs} ms`));
        });
        req.on('response', (res) => {
          const status = res.statusCode ?? 0;
          const answered = (): void =>
            done(status >= 200 && status < 300 ? undefined : new Error(`zipkin collector ${this.url.href} answered HTTP ${status}`));
          res.on('end', answered);
          res.on('error', (err) => done(new Error(`zipkin collector ${this.url.href}: ${err.message}`)));
          // A connection lost mid-answer ends in 'close' without 'end'.
          res.on('close', () => (res.complete ? answered() : done(new Error(`zipkin collector ${this.url.href}: connection lost during the answer`))));
          res.resume();
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          if (settled) return;
          if (retry && req.reusedSocket && err.code === 'ECONNRESET') {
            // The collector closed an idle keep-alive connection as we reused it: once more, fresh.
            settled = true;
            resolve(attempt(false));
            return;
          }
          done(new Error(`zipkin collector ${this.url.href}: ${err.message}`));
        });
        req.end(body);
      });
    return attempt(true);
  }
}

function noop(): void {}

/** For when tracing is configured without a collector: spans go nowhere. */
export const NOOP_EXPORTER: SpanExporter = Object.freeze({
  export(): void {},
  flush: (): Promise<void> => Promise.resolve(),
  close: (): Promise<void> => Promise.resolve(),
});
