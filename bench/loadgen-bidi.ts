/**
 * The bidi workload: connections × streams long-lived bidirectional calls, each carrying one
 * ping at a time. A ping is the prebuilt request frame; its pong is complete once that many bytes
 * have come back (the echo answers each message with an identical one), so nothing is parsed.
 * Latency is per round trip. When the window ends each call finishes its round trip and
 * half-closes, and the server ends it with grpc-status 0.
 */
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import type { Driver, DriverContext } from './loadgen.js';
import { failureKind, streamErrorCode, type Connection } from './loadgen-meter.js';

const { NGHTTP2_CANCEL } = http2.constants;
const REOPEN_BACKOFF_MS = 10;

class Slot {
  stream: http2.ClientHttp2Stream | undefined;
  sentAt = 0;
  awaiting = false;
  timedOut = false;

  constructor(readonly conn: Connection) {}
}

export function startBidi(ctx: DriverContext): Driver {
  const { opts, meter, conns, frame, headers } = ctx;
  const slots = conns.flatMap((conn) => Array.from({ length: opts.streams }, () => new Slot(conn)));
  let open = 0;

  const reopen = (slot: Slot, transportOk: boolean): void => {
    if (meter.stopping) return;
    if (transportOk) setImmediate(start, slot);
    else setTimeout(start, REOPEN_BACKOFF_MS, slot);
  };

  const ping = (slot: Slot, stream: http2.ClientHttp2Stream): void => {
    slot.sentAt = performance.now();
    slot.awaiting = true;
    meter.recordSent();
    // One frame outstanding at most, so what write() buffers is bounded without waiting for 'drain'.
    stream.write(frame);
  };

  function start(slot: Slot): void {
    if (meter.stopping) return;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = slot.conn.get().request(headers, { endStream: false });
    } catch (err) {
      meter.recordError((err as NodeJS.ErrnoException).code ?? 'request-throw');
      reopen(slot, false);
      return;
    }
    slot.stream = stream;
    slot.timedOut = false;
    open++;
    let received = 0;
    let status: string | undefined;
    let httpStatus = 0;
    let errCode: string | undefined;
    stream.on('response', (h) => {
      httpStatus = Number(h[':status'] ?? 0);
      const g = h['grpc-status'];
      if (g !== undefined) status = String(g); // trailers-only: the call was refused
    });
    stream.on('trailers', (h) => {
      const g = h['grpc-status'];
      if (g !== undefined) status = String(g);
    });
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (!slot.awaiting || received < frame.length) return;
      received -= frame.length;
      slot.awaiting = false;
      meter.recordOk(performance.now() - slot.sentAt);
      if (meter.stopping) stream.end();
      else ping(slot, stream);
    });
    stream.on('error', (err: NodeJS.ErrnoException) => { errCode = streamErrorCode(err); });
    stream.on('close', () => {
      open--;
      slot.stream = undefined;
      // Only a round trip in flight can fail; a call that ends between pings lost nothing.
      if (slot.awaiting) {
        slot.awaiting = false;
        const kind = slot.timedOut ? 'timeout' : status === '0' ? 'ended-before-pong' : failureKind(status, httpStatus, errCode, stream.rstCode);
        meter.recordError(kind);
      }
      reopen(slot, status !== undefined || httpStatus !== 0);
    });
    ping(slot, stream);
  }

  for (const slot of slots) start(slot);

  return {
    active: () => open,
    sweep(now) {
      for (const slot of slots) {
        if (slot.stream && slot.awaiting && !slot.timedOut && now - slot.sentAt > opts.timeoutMs) {
          slot.timedOut = true;
          slot.stream.close(NGHTTP2_CANCEL);
        }
      }
    },
    cancelAll() {
      for (const slot of slots) slot.stream?.close(NGHTTP2_CANCEL);
    },
  };
}
