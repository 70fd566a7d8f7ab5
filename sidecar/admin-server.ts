/**
 * The sidecar's two small HTTP/1.1 servers: admin (127.0.0.1:15000: /config_dump, /clusters,
 * /drain) and health (:15020: /healthz/live, /healthz/ready for Kubernetes probes).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Sidecar } from './sidecar.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function serve(routes: Record<string, Handler>): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const handler = routes[path];
    if (handler) handler(req, res);
    else json(res, 404, { error: `no such path ${path}`, paths: Object.keys(routes) });
  });
}

export function adminServer(sidecar: Sidecar, onDrain: () => void): http.Server {
  return serve({
    '/config_dump': (_req, res) => json(res, 200, sidecar.config),
    '/clusters': (_req, res) => {
      const now = Date.now();
      json(res, 200, sidecar.clusterList().map((c) => c.describe(now)));
    },
    '/drain': (req, res) => {
      if (req.method !== 'POST') return json(res, 405, { error: 'POST /drain to start draining' });
      json(res, 202, { state: 'draining' });
      onDrain();
    },
  });
}

export function healthServer(sidecar: Sidecar): http.Server {
  return serve({
    '/healthz/live': (_req, res) => json(res, 200, { live: true }),
    '/healthz/ready': (_req, res) => {
      const ready = sidecar.ready;
      json(res, ready ? 200 : 503, { ready, state: sidecar.state, version: sidecar.config.version, app: { serving: sidecar.appServing, lastCheck: sidecar.appHealthResult ?? null } });
    },
  });
}

export async function listenHttp(server: http.Server, port: number, address: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  return typeof addr === 'object' && addr ? addr.port : port;
}
