/**
 * Request mirroring: a copy of the call goes to another cluster, fire and forget. The copy never
 * slows the real call: it takes no part in backpressure (if its upstream cannot keep up it is
 * cancelled, not waited for), its answer is read and dropped, and its failures are ignored.
 */
import http2, { type IncomingHttpHeaders } from 'node:http2';
import type { Cluster } from '../upstream/cluster.js';
import { CALLER_CANCELLED, TRANSPORT_FAILURE } from './forward.js';
import type { H2Stream } from '../h2/stream.js';

const { NGHTTP2_CANCEL } = http2.constants;

export const mirrorStats = { started: 0, abandoned: 0 };

export function startMirror(down: H2Stream, headers: IncomingHttpHeaders, cluster: Cluster, pickContext: { now: number; headers: IncomingHttpHeaders }): void {
  const now = Date.now();
  pickContext.now = now;
  pickContext.headers = headers;
  const endpoint = cluster.pick(pickContext);
  if (endpoint === undefined) return;
  let up: H2Stream;
  try {
    up = endpoint.acquire(now).session.request({ ...headers, 'x-remora-mirror': 'true' }, { endStream: false });
  } catch {
    return;
  }
  mirrorStats.started++;
  let status: number | undefined;
  let abandoned = false;
  const abandon = (): void => {
    if (abandoned || up.closed || up.destroyed) return;
    abandoned = true;
    mirrorStats.abandoned++;
    up.close(NGHTTP2_CANCEL);
  };
  up.on('error', () => {});
  up.on('response', (h: IncomingHttpHeaders) => {
    if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']);
  });
  up.on('trailers', (t: IncomingHttpHeaders) => {
    status = Number(t['grpc-status']);
  });
  up.resume(); // read and drop the answer
  up.on('close', () => cluster.callEnded(endpoint, abandoned ? CALLER_CANCELLED : (status ?? TRANSPORT_FAILURE), now, Date.now(), 0));
  down.on('data', (chunk: Buffer) => {
    if (abandoned || up.closed || up.destroyed) return;
    if (!up.write(chunk)) abandon();
  });
  down.on('end', () => {
    if (!abandoned && !up.closed && !up.destroyed) up.end();
  });
  down.on('close', () => {
    // A cancelled real call takes its copy with it; a finished one lets the copy finish.
    if (down.rstCode && down.rstCode !== 0) abandon();
  });
}
