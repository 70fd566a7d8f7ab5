/**
 * The control plane's HTTP port (15014): health for probes, /metrics for Prometheus, the live
 * dashboard (/) and its data (/api/mesh), and a debug view of connected sidecars.
 */
import type http from 'node:http';
import { json, serveJson } from '../lib/json-http.js';
import type { DiscoveryServer } from './discovery/discovery-server.js';
import type { ControlPlaneMetrics } from './observability/cp-metrics.js';
import { dashboardRoutes } from './dashboard/page.js';

export function controlPlaneHttpServer(discovery: DiscoveryServer, metrics: ControlPlaneMetrics): http.Server {
  return serveJson({
    ...dashboardRoutes(),
    '/api/mesh': (_req, res) => json(res, 200, discovery.meshView()),
    '/metrics': (_req, res) => {
      void metrics.render().then((text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      });
    },
    '/healthz/live': (_req, res) => json(res, 200, { live: true }),
    '/healthz/ready': (_req, res) =>
      json(res, discovery.ready ? 200 : 503, { ready: discovery.ready, version: discovery.current()?.version ?? null }),
    '/debug/sidecars': (_req, res) =>
      json(res, 200, { replica: discovery.replicaId, version: discovery.current()?.version ?? null, pushes: discovery.pushes, sidecars: discovery.sidecars() }),
  });
}
