/**
 * The HTTPS server the Kubernetes API server calls for sidecar injection (port 15017, Service
 * `remora-webhook` :443). POST /inject takes an AdmissionReview; GET /healthz answers "ok".
 *
 * The certificate comes from a callback (the control plane hands out one from the mesh CA);
 * `refreshTls()` loads the current one for new connections. Until there is a certificate, new
 * connections are closed at once (the API server then applies the webhook's failurePolicy).
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../../lib/log.js';
import { BadAdmissionRequest, handleAdmissionReview } from './admission.js';
import type { InjectOptions } from './options.js';

export const WEBHOOK_PATH = '/inject';
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface WebhookTls {
  readonly key: string;
  readonly cert: string;
}

export interface WebhookServerOptions {
  /** Listen address, e.g. 0.0.0.0. */
  readonly address: string;
  /** 15017 in a cluster; 0 picks a free port. */
  readonly port: number;
  /** The current key and certificate chain (PEM), or undefined while there is none yet. */
  readonly tls: () => WebhookTls | undefined;
  readonly injectOptions: InjectOptions;
  readonly log: Pick<Logger, 'info' | 'warn' | 'debug'>;
}

export interface WebhookServer {
  readonly port: number;
  /** Reads `tls()` again and uses it for new connections (call after every certificate rotation). */
  refreshTls(): void;
  close(): Promise<void>;
}

class TooLarge extends Error {}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
      reject(new TooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        reject(new TooLarge());
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startWebhookServer(opts: WebhookServerOptions): Promise<WebhookServer> {
  const { log, injectOptions } = opts;
  let loaded: WebhookTls | undefined;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'https://webhook');
    if (url.pathname === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'use GET\n');
      return send(res, 200, 'ok\n');
    }
    if (url.pathname !== WEBHOOK_PATH) return send(res, 404, `no such path; POST ${WEBHOOK_PATH}\n`);
    if (req.method !== 'POST') return send(res, 405, `POST an AdmissionReview to ${WEBHOOK_PATH}\n`);
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (err) {
      if (err instanceof TooLarge) {
        res.setHeader('connection', 'close');
        return send(res, 413, `request body over ${MAX_BODY_BYTES} bytes\n`);
      }
      throw err;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return send(res, 400, 'request body is not JSON\n');
    }
    try {
      const outcome = handleAdmissionReview(body, injectOptions);
      if (outcome.injected) log.info({ pod: outcome.pod }, 'sidecar injected');
      else if (outcome.status === 'invalid') log.warn({ pod: outcome.pod, reason: outcome.reason }, 'sidecar not injected');
      else log.debug({ pod: outcome.pod, status: outcome.status, reason: outcome.reason }, 'sidecar not injected');
      return send(res, 200, outcome.review);
    } catch (err) {
      if (err instanceof BadAdmissionRequest) {
        log.warn({ err: err.message }, 'bad admission request');
        return send(res, 400, `${err.message}\n`);
      }
      throw err;
    }
  };

  const server = https.createServer({ minVersion: 'TLSv1.2' }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'webhook request failed');
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;

  const refreshTls = (): void => {
    const current = opts.tls();
    if (!current) return;
    if (loaded && loaded.key === current.key && loaded.cert === current.cert) return;
    server.setSecureContext({ key: current.key, cert: current.cert, minVersion: 'TLSv1.2' });
    loaded = current;
    log.info('webhook certificate loaded');
  };
  try {
    refreshTls();
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'cannot load the webhook certificate yet');
  }

  // Before the first certificate, close connections at once (a TLS server without one would only
  // fail the handshake later). The certificate may have arrived since: look again first.
  server.on('connection', (socket: Socket) => {
    if (!loaded) {
      try {
        refreshTls();
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'cannot load the webhook certificate');
      }
    }
    if (!loaded) socket.destroy();
  });
  server.on('tlsClientError', (err) => log.debug({ err: err.message }, 'webhook TLS handshake failed'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, path: WEBHOOK_PATH }, 'sidecar injection webhook listening');

  return {
    port,
    refreshTls,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
