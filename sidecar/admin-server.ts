/**
 * The sidecar's two small HTTP/1.1 servers: admin (127.0.0.1:15000: /config_dump, /clusters,
 * /certs, /rotate_cert, /drain) and health (:15020: /healthz/live, /healthz/ready for Kubernetes probes).
 */
import type http from 'node:http';
import { json, serveJson as serve } from '../lib/json-http.js';
import type { Sidecar } from './sidecar.js';
import type { Logger } from '../lib/log.js';
import type { AccessLog } from './observability/access-log.js';
import type { SidecarMetrics } from './observability/sidecar-metrics.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * GET /logging shows the log level and access-log settings; POST /logging?level=debug&access=on&sample=0.1
 * changes any of them at runtime.
 */
function logging(req: http.IncomingMessage, res: http.ServerResponse, log: Logger, accessLog: AccessLog): void {
  const q = new URL(req.url ?? '/', 'http://admin').searchParams;
  if (req.method === 'POST') {
    const level = q.get('level');
    const access = q.get('access');
    const sample = q.get('sample');
    if (level !== null && !LEVELS.includes(level)) return json(res, 400, { error: `level must be one of ${LEVELS.join(', ')}` });
    if (access !== null && access !== 'on' && access !== 'off') return json(res, 400, { error: 'access must be on or off' });
    const rate = sample === null ? undefined : Number(sample);
    if (rate !== undefined && !(rate >= 0 && rate <= 1)) return json(res, 400, { error: 'sample must be a number from 0 to 1' });
    if (level !== null) log.level = level;
    if (access !== null) accessLog.settings.enabled = access === 'on';
    if (rate !== undefined) accessLog.settings.sampleRate = rate;
    log.info({ level: log.level, accessLog: accessLog.settings }, 'logging changed through the admin port');
  } else if (req.method !== 'GET') {
    return json(res, 405, { error: 'GET or POST /logging' });
  }
  json(res, 200, { level: log.level, accessLog: accessLog.settings });
}

export function adminServer(sidecar: Sidecar, onDrain: () => void, logs: { log: Logger; accessLog: AccessLog }): http.Server {
  return serve({
    '/logging': (req, res) => logging(req, res, logs.log, logs.accessLog),
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

export function healthServer(sidecar: Sidecar, metrics: SidecarMetrics | undefined): http.Server {
  return serve({
    '/metrics': (_req, res) => {
      if (!metrics) return json(res, 404, { error: 'metrics are off (--metrics=false)' });
      void metrics.render().then((text) => {
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(text);
      });
    },
    '/healthz/live': (_req, res) => json(res, 200, { live: true }),
    '/healthz/ready': (_req, res) => {
      const ready = sidecar.ready;
      json(res, ready ? 200 : 503, { ready, state: sidecar.state, version: sidecar.config.version, app: { serving: sidecar.appServing, lastCheck: sidecar.appHealthResult ?? null }, certificate: { required: sidecar.needsCertificate, valid: sidecar.certificateValid } });
    },
  });
}
