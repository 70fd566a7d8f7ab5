/**
 * Observability through real processes: the sidecar's and control plane's /metrics export exactly
 * the documented metric names with the right counts, the access log is switched and sampled at
 * runtime through the admin port, and a call that crosses two services leaves one trace of four
 * spans (client and server per hop) in a stub Zipkin collector.
 */
import test from 'ava';
import http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { startEtcd } from '../lib/etcd-process.js';
import { startEchoServer, echoClient, unary, EchoService } from './fixtures/echo-service.js';
import { startSidecar, startControlPlane, eventually } from './harness/sidecars.js';
import { SIDECAR_METRICS, CONTROL_PLANE_METRICS, NODE_METRICS } from '../deploy/monitoring/metric-names.js';

/** Metric family names in a Prometheus text page (from its # TYPE lines). */
function families(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
}

/** The value of the first sample whose name and labels contain all of `parts`. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

const scrape = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

test('sidecar and control-plane /metrics export exactly the documented metrics, with per-call counts, bytes and latency', async (t) => {
  const etcd = await startEtcd();
  const cp = await startControlPlane([etcd.endpoint]);
  const app = await startEchoServer(0, 'svc');
  const server = await startSidecar({ appPort: app.port, service: 'svc' });
  const client = await startSidecar({ clusters: { svc: [server.inbound] }, service: 'front' });
  const c = echoClient(`127.0.0.1:${client.outbound}`, 'svc');
  t.teardown(async () => {
    c.close();
    await Promise.all([client.proc.stop(), server.proc.stop(), cp.proc.stop()]);
    app.server.forceShutdown();
    await etcd.stop();
  });
  for (let i = 0; i < 20; i++) await unary(c, Buffer.alloc(100));
  app.failUnary = grpc.status.RESOURCE_EXHAUSTED;
  for (let i = 0; i < 5; i++) await unary(c, Buffer.alloc(100)).catch(() => undefined);
  app.failUnary = undefined;

  const text = await eventually('metrics show all 25 calls', async () => {
    const s = await scrape(client.stats);
    return sample(s, 'remora_request_duration_seconds_count', { direction: 'outbound', destination: 'svc' }) === 25 && s;
  });
  const ok = { direction: 'outbound', source: 'front', destination: 'svc', method: EchoService.unary.path };
  t.is(sample(text, 'remora_requests_total', { ...ok, grpc_status: '0' }), 20);
  t.is(sample(text, 'remora_requests_total', { ...ok, grpc_status: String(grpc.status.RESOURCE_EXHAUSTED) }), 5);
  t.true(sample(text, 'remora_request_bytes_total', ok)! >= 25 * 105, 'request bytes include the gRPC frame headers');
  t.true(sample(text, 'remora_request_duration_seconds_bucket', { ...ok, le: '10' }) === 25);
  t.is(sample(text, 'remora_open_connections', { direction: 'upstream' }), 1);
  const serverText = await scrape(server.stats);
  t.is(sample(serverText, 'remora_requests_total', { direction: 'inbound', destination: 'svc', grpc_status: '0' }), 20);

  const sidecarFamilies = [...families(text)].filter((n) => n.startsWith('remora_'));
  t.deepEqual(sidecarFamilies.sort(), [...SIDECAR_METRICS].sort(), 'the sidecar exports exactly the documented metrics');
  for (const n of NODE_METRICS) t.true(families(text).has(n), `${n} exported`);
  const cpText = await scrape(cp.http);
  t.deepEqual([...families(cpText)].filter((n) => n.startsWith('remora_')).sort(), [...CONTROL_PLANE_METRICS].sort(), 'the control plane exports exactly the documented metrics');
});

test('the access log is switched on, sampled and off at runtime through the admin port; the log level too', async (t) => {
  const app = await startEchoServer(0, 'svc');
  const sc = await startSidecar({ clusters: { svc: [app.port] }, service: 'front' });
  const c = echoClient(`127.0.0.1:${sc.outbound}`, 'svc');
  t.teardown(async () => {
    c.close();
    await sc.proc.stop();
    app.server.forceShutdown();
  });
  const accessLines = () => sc.proc.output().split('\n').filter((l) => l.includes('"name":"access"'));
  for (let i = 0; i < 5; i++) await unary(c, Buffer.from('x'));
  t.is(accessLines().length, 0, 'off by default');

  const on = await fetch(`http://127.0.0.1:${sc.admin}/logging?access=on&sample=1`, { method: 'POST' });
  t.is(on.status, 200);
  const md = new grpc.Metadata();
  md.set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00');
  for (let i = 0; i < 10; i++) await unary(c, Buffer.from('x'), md);
  await eventually('10 access lines', () => accessLines().length === 10);
  const entry = JSON.parse(accessLines()[0]!) as Record<string, unknown>;
  t.like(entry, { direction: 'outbound', source: 'front', destination: 'svc', method: EchoService.unary.path, grpcStatus: 0, retries: 0, traceId: '4bf92f3577b34da6a3ce929d0e0e4736' });
  t.is(entry.endpoint, `127.0.0.1:${app.port}`);
  t.true(typeof entry.durationMs === 'number' && typeof entry.bytesIn === 'number');

  await fetch(`http://127.0.0.1:${sc.admin}/logging?sample=0.5`, { method: 'POST' });
  for (let i = 0; i < 200; i++) await unary(c, Buffer.from('x'));
  const sampled = (await eventually('sampled lines', () => accessLines().length > 10 && accessLines().length)) - 10;
  t.true(sampled > 60 && sampled < 140, `about half of 200 calls logged (got ${sampled})`);

  await fetch(`http://127.0.0.1:${sc.admin}/logging?access=off&level=debug`, { method: 'POST' });
  const before = accessLines().length;
  for (let i = 0; i < 5; i++) await unary(c, Buffer.from('x'));
  t.is(accessLines().length, before);
  const state = (await (await fetch(`http://127.0.0.1:${sc.admin}/logging`)).json()) as { level: string; accessLog: { enabled: boolean } };
  t.is(state.level, 'debug');
  t.false(state.accessLog.enabled);
  t.is((await fetch(`http://127.0.0.1:${sc.admin}/logging?level=loud`, { method: 'POST' })).status, 400);
});

interface ZSpan { traceId: string; id: string; parentId?: string; kind: string; name: string; duration: number; localEndpoint: { serviceName: string }; tags: Record<string, string> }

test('a call crossing two services leaves one trace: a client and a server span per hop, exported to Zipkin', async (t) => {
  const spans: ZSpan[] = [];
  const collector = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      if (req.url === '/api/v2/spans' && req.method === 'POST') spans.push(...(JSON.parse(body) as ZSpan[]));
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  const zipkin = `http://127.0.0.1:${(collector.address() as { port: number }).port}/api/v2/spans`;
  const tracing = ['--zipkin-url', zipkin, '--trace-sample-rate', '1'];

  // gamma: an echo app. beta: an app that calls gamma, passing the trace headers on, as apps in a mesh must.
  const gammaApp = await startEchoServer(0, 'gamma');
  const gammaSc = await startSidecar({ appPort: gammaApp.port, service: 'gamma', extraArgs: tracing });
  let betaOut = 0;
  const relay = new grpc.Server();
  relay.addService(EchoService, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const md = new grpc.Metadata();
      for (const k of ['traceparent', 'tracestate']) for (const v of call.metadata.get(k)) md.add(k, v);
      const onward = echoClient(`127.0.0.1:${betaOut}`, 'gamma');
      unary(onward, call.request, md).then((r) => cb(null, r.response), (err: grpc.ServiceError) => cb(err)).finally(() => onward.close());
    },
  });
  const relayPort = await new Promise<number>((resolve, reject) => relay.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const betaSc = await startSidecar({ appPort: relayPort, service: 'beta', clusters: { gamma: [gammaSc.inbound] }, extraArgs: tracing });
  betaOut = betaSc.outbound;
  const alphaSc = await startSidecar({ service: 'alpha', clusters: { beta: [betaSc.inbound] }, extraArgs: tracing });
  const c = echoClient(`127.0.0.1:${alphaSc.outbound}`, 'beta');
  t.teardown(async () => {
    c.close();
    await Promise.all([alphaSc, betaSc, gammaSc].map((s) => s.proc.stop()));
    relay.forceShutdown();
    gammaApp.server.forceShutdown();
    collector.close();
  });

  await unary(c, Buffer.from('trace me'));
  await eventually('four spans exported', () => spans.length >= 4, 10_000);
  t.is(spans.length, 4);
  t.is(new Set(spans.map((s) => s.traceId)).size, 1, 'one trace');
  const byId = new Map(spans.map((s) => [s.id, s]));
  const root = spans.find((s) => !s.parentId || !byId.has(s.parentId))!;
  const chain = [root];
  for (let next = root; ; ) {
    const child = spans.find((s) => s.parentId === next.id);
    if (!child) break;
    chain.push(child);
    next = child;
  }
  t.deepEqual(chain.map((s) => `${s.localEndpoint.serviceName}:${s.kind}`), ['alpha:CLIENT', 'beta:SERVER', 'beta:CLIENT', 'gamma:SERVER']);
  for (const s of chain) {
    t.is(s.name.toLowerCase(), EchoService.unary.path.toLowerCase());
    t.is(s.tags['grpc.status_code'], '0');
    t.true(s.duration > 0);
  }
  // Each hop's client span encloses the server span it caused.
  t.true(chain[0]!.duration >= chain[1]!.duration && chain[2]!.duration >= chain[3]!.duration);
});
