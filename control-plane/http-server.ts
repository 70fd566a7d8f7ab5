/** The control plane's HTTP port (15014): health for probes and a debug view of connected sidecars. */
import type http from 'node:http';
import { json, serveJson } from '../lib/json-http.js';
import type { DiscoveryServer } from './discovery/discovery-server.js';

export function controlPlaneHttpServer(discovery: DiscoveryServer): http.Server {
  return serveJson({
    '/healthz/live': (_req, res) => json(res, 200, { live: true }),
    '/healthz/ready': (_req, res) =>
      json(res, discovery.ready ? 200 : 503, { ready: discovery.ready, version: discovery.current()?.version ?? null }),
    '/debug/sidecars': (_req, res) =>
      json(res, 200, { replica: discovery.replicaId, version: discovery.current()?.version ?? null, pushes: discovery.pushes, sidecars: discovery.sidecars() }),
  });
}
