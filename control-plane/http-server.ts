/** The control plane's HTTP port (15014): health for probes and a debug view of connected sidecars. */
import http from 'node:http';
import type { DiscoveryServer } from './discovery/discovery-server.js';

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function controlPlaneHttpServer(discovery: DiscoveryServer): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/healthz/live':
        return json(res, 200, { live: true });
      case '/healthz/ready':
        return json(res, discovery.ready ? 200 : 503, { ready: discovery.ready, version: discovery.current()?.version ?? null });
      case '/debug/sidecars':
        return json(res, 200, { replica: discovery.replicaId, version: discovery.current()?.version ?? null, pushes: discovery.pushes, sidecars: discovery.sidecars() });
      default:
        return json(res, 404, { error: `no such path ${path}`, paths: ['/healthz/live', '/healthz/ready', '/debug/sidecars'] });
    }
  });
}
