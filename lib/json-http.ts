/** Small JSON-over-HTTP/1.1 servers: the sidecar's admin and health ports, the control plane's :15014. */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A server answering exact paths (query strings ignored); anything else is a 404 listing the paths. */
export function serveJson(routes: Record<string, Handler>): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const handler = routes[path];
    if (handler) handler(req, res);
    else json(res, 404, { error: `no such path ${path}`, paths: Object.keys(routes) });
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
