/**
 * probeGrpcHealth against real servers: `remora demo-service` processes (grpc-js with
 * grpc-health-check), a grpc-js server without a health service, a raw HTTP/2 server that never
 * answers, and a closed port. Then a HealthChecker over real probes follows a service that is
 * killed and restarted.
 */
import test, { type ExecutionContext } from 'ava';
import http2 from 'node:http2';
import { startRemora, freePort, type Proc } from '../lib/processes.js';
import { Status } from '../sidecar/grpc/status.js';
import { probeGrpcHealth, type HealthProbeResult } from '../sidecar/health/grpc-health-probe.js';
import { HealthChecker } from '../sidecar/health/health-checker.js';
import { startRawUpstream } from './fixtures/raw-h2.js';
import { startEchoServer } from './fixtures/echo-service.js';
import { connect as h2connect } from '../sidecar/h2/connect.js';
import type { H2Session } from '../sidecar/h2/session.js';
import { UPSTREAM_SESSION_OPTIONS } from '../sidecar/upstream/endpoint.js';

const CATALOG = 'remora.demo.v1.CatalogService';

async function startCatalog(t: ExecutionContext, extra: string[] = [], port = 0): Promise<Proc> {
  const proc = await startRemora(['demo-service', '--name', 'catalog', '--port', String(port), ...extra], { portsFile: true });
  t.teardown(() => proc.stop('SIGKILL'));
  return proc;
}

function connect(t: ExecutionContext, port: number): H2Session {
  const session = h2connect('127.0.0.1', Number(port), UPSTREAM_SESSION_OPTIONS);
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  return session;
}

const probe = (session: H2Session, serviceName: string, timeoutMs = 2000): Promise<HealthProbeResult> =>
  probeGrpcHealth(session, { authority: 'catalog', serviceName, timeoutMs });

// Serial: each test starts real node processes, and a small shared machine starting many at once
// makes them miss startRemora's port-open timeout.

test.serial('SERVING for the whole server and for the catalog service; an unknown name is NOT_FOUND', async (t) => {
  const svc = await startCatalog(t);
  const session = connect(t, svc.ports.grpc!);
  t.is(await probe(session, ''), 'SERVING');
  t.is(await probe(session, CATALOG), 'SERVING');
  // grpc-health-check answers Check for an unregistered name with NOT_FOUND (SERVICE_UNKNOWN is
  // only sent on Watch), so the probe reports a failure with that status.
  const unknown = await probe(session, 'remora.demo.v1.NoSuchService');
  t.deepEqual(unknown, {
    failure: 'NOT_FOUND: Health status unknown for service remora.demo.v1.NoSuchService',
    grpcStatus: Status.NOT_FOUND,
  });
  // Many probes at once over one session: each gets its own stream and answer.
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => probe(session, i % 2 ? CATALOG : '')));
  t.true(results.every((r) => r === 'SERVING'));
  t.false(session.destroyed, 'the shared session stays usable');
});

test.serial('NOT_SERVING after SIGTERM while the service drains', async (t) => {
  const svc = await startCatalog(t, ['--drain-delay-ms', '2000']);
  const session = connect(t, svc.ports.grpc!);
  t.is(await probe(session, CATALOG), 'SERVING');
  const signalledAt = Date.now();
  process.kill(svc.pid, 'SIGTERM');
  let last: HealthProbeResult = 'SERVING';
  while (last === 'SERVING' && Date.now() - signalledAt < 1500) {
    await new Promise((r) => setTimeout(r, 20));
    last = await probe(session, CATALOG);
  }
  t.is(last, 'NOT_SERVING');
  t.is(await probe(session, ''), 'NOT_SERVING');
  t.true(Date.now() - signalledAt < 1800, 'seen within the drain delay');
  t.is(await svc.exited, 0);
});

test.serial('a server without a health service: UNIMPLEMENTED', async (t) => {
  const echo = await startEchoServer(0, '', { health: false });
  t.teardown(() => echo.server.forceShutdown());
  const session = connect(t, echo.port);
  const r = await probe(session, '');
  t.true(typeof r === 'object' && r.grpcStatus === Status.UNIMPLEMENTED, JSON.stringify(r));
  t.regex(typeof r === 'object' ? r.failure : '', /^UNIMPLEMENTED/);
});

test.serial('a server that never answers: timeout, and the stream is cancelled with RST_STREAM CANCEL', async (t) => {
  let serverStreams = 0;
  const closed: number[] = [];
  const raw = await startRawUpstream((stream) => {
    serverStreams++;
    stream.on('close', () => closed.push(stream.rstCode ?? -1));
  });
  t.teardown(() => raw.server.close());
  const session = connect(t, raw.port);
  const started = Date.now();
  const r = await probe(session, CATALOG, 300);
  const took = Date.now() - started;
  t.deepEqual(r, { failure: 'timeout after 300 ms' });
  t.true(took >= 290 && took < 1000, `took ${took} ms`);
  for (let i = 0; i < 100 && closed.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.is(serverStreams, 1);
  t.deepEqual(closed, [http2.constants.NGHTTP2_CANCEL], 'the server saw the stream cancelled: nothing left open');
  t.false(session.destroyed, 'a timeout costs the stream, not the session');
});

test.serial('a closed port: a failure that names the cause, quickly', async (t) => {
  const port = await freePort();
  const session = connect(t, port);
  const started = Date.now();
  const r = await probe(session, '', 2000);
  t.true(typeof r === 'object', JSON.stringify(r));
  t.regex(typeof r === 'object' ? r.failure : '', /ECONNREFUSED/);
  t.true(Date.now() - started < 1000, 'not a timeout');
  // The session is gone now; probing it again fails at once rather than throwing.
  const again = await probe(session, '', 2000);
  t.true(typeof again === 'object', JSON.stringify(again));
});

test.serial('a response that is not a health answer: HTTP status and oversized bodies are failures', async (t) => {
  const raw = await startRawUpstream((stream, headers) => {
    if (headers[':authority'] === 'http404') {
      stream.respond({ ':status': 404 }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.end(Buffer.alloc(64 * 1024));
  });
  t.teardown(() => raw.server.close());
  const session = connect(t, raw.port);
  t.deepEqual(await probeGrpcHealth(session, { authority: 'http404', serviceName: '', timeoutMs: 2000 }), {
    failure: 'HTTP status 404 instead of 200',
  });
  t.deepEqual(await probe(session, ''), { failure: 'response larger than 4096 bytes' });
  t.false(session.destroyed);
});

test.serial('HealthChecker over real probes: unhealthy after kill -9, healthy again after a restart', async (t) => {
  const first = await startCatalog(t);
  const port = first.ports.grpc!;
  const target = { name: 'catalog-1', port };

  // One pooled session per target, replaced once it breaks: what the sidecar's endpoint pool does.
  let session: H2Session | undefined;
  const probeTarget = async (tgt: typeof target): Promise<HealthProbeResult> => {
    if (!session || session.closed || session.destroyed) {
      session = h2connect('127.0.0.1', Number(tgt.port), UPSTREAM_SESSION_OPTIONS);
      session.on('error', () => {});
    }
    return probeGrpcHealth(session, { authority: 'catalog', serviceName: CATALOG, timeoutMs: 300 });
  };
  t.teardown(() => session?.destroy());

  const events: { healthy: boolean; why: string; at: number }[] = [];
  let notify: () => void = () => {};
  const checker = new HealthChecker<typeof target>(
    { intervalMs: 100, jitterMs: 20, healthyThreshold: 2, unhealthyThreshold: 2 },
    probeTarget,
    (_tgt, healthy, why) => {
      events.push({ healthy, why, at: Date.now() });
      notify();
    },
  );
  t.teardown(() => checker.stop());
  const until = async (n: number, ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    while (events.length < n && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        notify = resolve;
        setTimeout(resolve, 50);
      });
    }
  };

  checker.setTargets([target]);
  await new Promise((r) => setTimeout(r, 400));
  t.true(checker.isHealthy(target));
  t.deepEqual(events, [], 'a healthy service stays healthy');
  t.is(checker.lastResult(target), 'SERVING');

  const killedAt = Date.now();
  await first.stop('SIGKILL');
  await until(1, 3000);
  t.false(checker.isHealthy(target), 'unhealthy after the kill');
  t.is(events.length, 1);
  t.regex(events[0]!.why, /\(2 consecutive checks\)$/);
  t.log(`unhealthy ${events[0]!.at - killedAt} ms after kill -9: ${events[0]!.why}`);

  const restartedAt = Date.now();
  await startCatalog(t, [], port);
  await until(2, 5000);
  t.true(checker.isHealthy(target), 'healthy again after the restart');
  t.is(events[1]?.why, 'SERVING (2 consecutive checks)');
  t.log(`healthy ${events[1]!.at - restartedAt} ms after the restart began`);
  checker.stop();
});
