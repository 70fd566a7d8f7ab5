/**
 * The sidecar's two small HTTP/1.1 servers: admin (127.0.0.1:15000: /config_dump, /clusters,
 * /certs, /rotate_cert, /drain) and health (:15020: /healthz/live, /healthz/ready for Kubernetes probes).
 */
import type http from 'node:http';
import { json, serveJson as serve } from '../lib/json-http.js';
import type { Sidecar } from './sidecar.js';

export function adminServer(sidecar: Sidecar, onDrain: () => void): http.Server {
  return serve({
    '/config_dump': (_req, res) => json(res, 200, sidecar.config),
    '/clusters': (_req, res) => {
      const now = Date.now();
      json(res, 200, sidecar.clusterList().map((c) => c.describe(now)));
    },
    '/certs': (_req, res) => json(res, 200, { required: sidecar.needsCertificate, valid: sidecar.certificateValid, identity: sidecar.identityStatus() ?? null }),
    '/rotate_cert': (req, res) => {
      if (req.method !== 'POST') return json(res, 405, { error: 'POST /rotate_cert to renew the workload certificate now' });
      const rotating = sidecar.rotateCertificate();
      if (!rotating) return json(res, 409, { error: 'this sidecar has no workload certificate to rotate (no mesh CA and no certificate files)' });
      void rotating.then(() => {
        const status = sidecar.identityStatus();
        json(res, status?.lastError === undefined ? 200 : 502, status);
      });
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
      json(res, ready ? 200 : 503, { ready, state: sidecar.state, version: sidecar.config.version, app: { serving: sidecar.appServing, lastCheck: sidecar.appHealthResult ?? null }, certificate: { required: sidecar.needsCertificate, valid: sidecar.certificateValid } });
    },
  });
}
