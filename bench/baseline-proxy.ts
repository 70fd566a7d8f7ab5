/**
 * The yardstick: the least a node:http2 gRPC pass-through can do. No routing, balancing, policy,
 * metrics or security; one upstream session; headers, DATA and trailers piped through. Run with
 * the sidecar's flags so the bench can put it where a sidecar goes:
 *
 *   node dist/cli/remora.js bench --scenarios direct,one-hop,two-hop --sidecar-script dist/bench/baseline-proxy.js
 *
 * Whatever CPU per call this costs is node:http2's own; what a sidecar costs above it is ours.
 */
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';

function flag(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const value = i < 0 ? undefined : process.argv[i + 1];
  if (value === undefined) throw new Error(`baseline-proxy: --${name} is required`);
  return value;
}

// The bench's static config names one endpoint; that is all this proxy needs from it.
const endpoint = /address: ([\d.]+), port: (\d+)/.exec(readFileSync(flag('config'), 'utf8'));
if (!endpoint) throw new Error('baseline-proxy: no endpoint in the config file');
const upstreamUrl = `http://${endpoint[1]}:${endpoint[2]}`;

let upstream: http2.ClientHttp2Session | undefined;
function session(): http2.ClientHttp2Session {
  if (upstream === undefined || upstream.closed || upstream.destroyed) {
    upstream = http2.connect(upstreamUrl);
    upstream.on('error', () => {});
  }
  return upstream;
}

function forward(down: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  delete headers.host;
  const up = session().request(headers);
  let trailers: http2.IncomingHttpHeaders = { 'grpc-status': '14', 'grpc-message': 'baseline-proxy: upstream reset' };
  down.on('error', () => {});
  up.on('error', () => {});
  down.pipe(up);
  up.on('response', (h) => {
    down.respond(h, { waitForTrailers: true });
    up.pipe(down);
  });
  up.on('trailers', (t) => { trailers = t; });
  down.on('wantTrailers', () => down.sendTrailers(trailers));
  down.on('close', () => { if (!up.closed) up.close(http2.constants.NGHTTP2_CANCEL); });
  up.on('close', () => { if (!down.headersSent && !down.closed) down.respond({ ':status': 200, 'content-type': 'application/grpc', ...trailers }, { endStream: true }); });
}

for (const name of ['outbound', 'inbound']) {
  const server = http2.createServer();
  server.on('stream', forward);
  server.listen(Number(flag(`${name}-port`)), flag(`${name}-address`));
}
