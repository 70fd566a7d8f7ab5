/**
 * Hostile clients of the control plane's discovery API, all real: etcd, a control plane, a
 * well-behaved `remora sidecar`, and raw HTTP/2 clients that speak gRPC badly on purpose (garbage
 * frames, wrong types, huge messages, lying ACKs, NACK storms, never reading, streams opened and
 * dropped by the hundred). Throughout, a change put in etcd must reach the good sidecar promptly,
 * the control plane must stay up with bounded memory, and its metrics must count what happened.
 *
 * The tests share one control plane and run one after the other, so each measures its own abuse.
 */
import test from 'ava';
import http2 from 'node:http2';
import { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdHandle } from '../lib/etcd-process.js';
import { rssBytes } from '../lib/processes.js';
import { configKey, DEFAULT_PREFIX, statusPrefix } from '../control-plane/resources/keys.js';
import { HealthState, StreamConfigRequest, StreamConfigResponse, type Hello } from '../protos/gen/remora/mesh/v1/discovery.js';
import type { MeshConfig } from '../sidecar/config/model.js';
import { eventually, getJson, startControlPlane, startSidecar, type ControlPlaneHandle, type SidecarHandle } from './harness/sidecars.js';

const STREAM_CONFIG = '/remora.mesh.v1.DiscoveryService/StreamConfig';
/** From an etcd write to the good sidecar's /config_dump, while the abuse goes on. Generous: CI shares 2 cores. */
const PUSH_BOUND_MS = Number(process.env.ABUSE_PUSH_BOUND_MS ?? 2_000);
/** Growth of the control plane's RSS a test may cause: generous, GC decides when memory goes back. */
const RSS_GROWTH_BOUND = 48 * 1024 * 1024;

interface Mesh {
  etcd: EtcdHandle;
  cp: ControlPlaneHandle;
  good: SidecarHandle;
  client: Etcd3;
  probes: number;
  rssAtStart: number;
}
let mesh: Mesh | undefined;
const m = (): Mesh => {
  if (!mesh) throw new Error('the shared mesh did not start (see the before hook)');
  return mesh;
};

test.before(async () => {
  const etcd = await startEtcd();
  const cp = await startControlPlane([etcd.endpoint]);
  const good = await startSidecar({ controlPlanes: [cp.address], service: 'good', extraArgs: ['--register=false', '--instance-id', 'good-1'] });
  const client = new Etcd3({ hosts: etcd.endpoint });
  mesh = { etcd, cp, good, client, probes: 0, rssAtStart: 0 };
  // A backend every probe route points at, and one first push to settle what the control plane holds.
  await client.put(configKey(DEFAULT_PREFIX, 'Cluster', 'default', 'backend')).value(JSON.stringify({
    kind: 'Cluster', metadata: { name: 'backend', namespace: 'default', labels: {} },
    spec: { service: 'backend', subset: {}, endpoints: [{ address: '127.0.0.1', port: 9, weight: 1, labels: {} }], connectTimeoutMs: 5000, maxSessionAgeMs: 300000 },
  }));
  await probePush('warm-up');
  mesh.rssAtStart = await rssBytes(cp.proc.pid);
});

test.after.always(async () => {
  if (!mesh) return;
  mesh.client.close();
  await mesh.good.proc.stop();
  await mesh.cp.proc.stop();
  await mesh.etcd.stop();
});

// ---------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------

/** Puts a new route in etcd and returns how long it took to show in the good sidecar's /config_dump. */
async function probePush(tag: string): Promise<number> {
  const { client, good } = m();
  const name = `probe-${++m().probes}-${tag}`.slice(0, 60).replace(/-+$/, '');
  const started = performance.now();
  await client.put(configKey(DEFAULT_PREFIX, 'Route', 'default', name)).value(JSON.stringify({
    kind: 'Route', metadata: { name, namespace: 'default', labels: {} }, spec: { match: { service: name }, cluster: 'backend' },
  }));
  const deadline = started + 15_000;
  for (;;) {
    const config = await getJson<MeshConfig>(good.admin, '/config_dump');
    if (config.routes.some((r) => r.name === `default/${name}`)) return performance.now() - started;
    if (performance.now() > deadline) throw new Error(`route ${name} did not reach the good sidecar within 15 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Probes pushes every `everyMs` until `during` settles; returns the latencies. */
async function probingWhile(tag: string, during: Promise<unknown>, everyMs = 150): Promise<number[]> {
  const latencies: number[] = [];
  let done = false;
  const finished = during.finally(() => { done = true; });
  // Bounded: at most 100 probes, and the abuse itself is bounded in count and time.
  while (!done && latencies.length < 100) {
    latencies.push(await probePush(tag));
    await Promise.race([finished.catch(() => undefined), new Promise((r) => setTimeout(r, everyMs))]);
  }
  await finished;
  latencies.push(await probePush(`${tag}-after`));
  return latencies;
}

function checkLatencies(t: { log: (...v: unknown[]) => void; true: (v: boolean, msg?: string) => void }, what: string, latencies: number[]): void {
  const sorted = [...latencies].sort((a, b) => a - b);
  const p50 = sorted[Math.floor(sorted.length / 2)]!;
  const max = sorted[sorted.length - 1]!;
  t.log(`${what}: ${latencies.length} pushes to the good sidecar, p50 ${p50.toFixed(0)} ms, max ${max.toFixed(0)} ms`);
  t.true(max < PUSH_BOUND_MS, `${what}: a push took ${max.toFixed(0)} ms (bound ${PUSH_BOUND_MS} ms)`);
}

async function metrics(): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${m().cp.http}/metrics`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const mm = /^([a-z_]+(?:\{[^}]*\})?) ([-0-9.e+]+|NaN)$/.exec(line);
    if (mm) out.set(mm[1]!, Number(mm[2]));
  }
  return out;
}

const sumOf = (ms: Map<string, number>, name: string): number =>
  [...ms].filter(([k]) => k === name || k.startsWith(`${name}{`)).reduce((s, [, v]) => s + v, 0);

async function stillServing(t: { is: (a: unknown, b: unknown, msg?: string) => void }): Promise<void> {
  const { cp } = m();
  t.is(cp.proc.exitCode, null, `the control plane exited:\n${cp.proc.output().slice(-2_000)}`);
  t.is((await getJson<{ live: boolean }>(cp.http, '/healthz/live')).live, true);
}

async function connectedSidecars(): Promise<number> {
  return sumOf(await metrics(), 'remora_cp_connected_sidecars');
}

// ---------------------------------------------------------------------------------------------
// A raw gRPC client over node:http2: every byte is ours to get wrong
// ---------------------------------------------------------------------------------------------

interface CallEnd {
  /** grpc-status, or undefined when the stream was reset without one. */
  readonly code: number | undefined;
  readonly message: string;
}

class RawCall {
  readonly ended: Promise<CallEnd>;
  constructor(readonly stream: http2.ClientHttp2Stream) {
    this.ended = new Promise((resolve) => {
      // A rejection is usually trailers-only: grpc-status in the response headers, while our half
      // of the stream stays open (so no 'close') until we end it.
      const take = (h: http2.IncomingHttpHeaders) => {
        if (h['grpc-status'] === undefined) return;
        resolve({ code: Number(h['grpc-status']), message: decodeURIComponent(String(h['grpc-message'] ?? '')) });
        stream.close();
      };
      stream.on('response', take);
      stream.on('trailers', take);
      stream.on('error', () => undefined);
      stream.on('close', () => resolve({ code: undefined, message: `closed (RST_STREAM ${stream.rstCode})` }));
    });
  }

  send(msg: StreamConfigRequest): boolean {
    return this.sendRaw(Buffer.from(StreamConfigRequest.encode(msg).finish()));
  }

  sendRaw(body: Uint8Array, declaredLength = body.length): boolean {
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(declaredLength, 1);
    frame.set(body, 5);
    return this.stream.write(frame);
  }

  cancel(): void {
    this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  /** Starts reading: `count()` whole gRPC messages received since, `first` the first one decoded. */
  read(): { count: () => number; first: Promise<StreamConfigResponse> } {
    let buffered = Buffer.alloc(0);
    let count = 0;
    let gotFirst: (r: StreamConfigResponse) => void = () => undefined;
    const first = new Promise<StreamConfigResponse>((resolve) => { gotFirst = resolve; });
    this.stream.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 5 && buffered.length >= 5 + buffered.readUInt32BE(1)) {
        const body = buffered.subarray(5, 5 + buffered.readUInt32BE(1));
        if (count === 0) gotFirst(StreamConfigResponse.decode(body));
        buffered = buffered.subarray(5 + body.length);
        count++;
      }
    });
    return { count: () => count, first };
  }
}

class RawClient {
  private constructor(readonly session: http2.ClientHttp2Session) {}

  static connect(settings: http2.Settings = {}): Promise<RawClient> {
    const session = http2.connect(`http://${m().cp.address}`, { settings });
    session.on('error', () => undefined);
    return new Promise((resolve, reject) => {
      session.once('connect', () => resolve(new RawClient(session)));
      session.once('error', reject);
    });
  }

  call(): RawCall {
    const stream = this.session.request({
      ':method': 'POST',
      ':path': STREAM_CONFIG,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    return new RawCall(stream);
  }

  close(): void {
    this.session.destroy();
  }
}

function hello(service: string, instanceId: string, extra: Partial<Hello> = {}, instance: Partial<NonNullable<Hello['instance']>> = {}): StreamConfigRequest {
  return {
    hello: {
      instance: { service, namespace: 'abuse', instanceId, address: '127.0.0.1', port: 1, zone: '', labels: {}, serviceAccount: '', health: HealthState.HEALTH_STATE_SERVING, ...instance },
      appliedVersion: '',
      sidecarVersion: 'hostile',
      register: false,
      ...extra,
    },
  };
}

/** Resolves once the call ended, failing if it takes longer than `ms`: a malformed stream must not hang. */
async function endsWithin(call: RawCall, ms: number, what: string): Promise<CallEnd> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: the stream was still open after ${ms} ms`)), ms); });
  try {
    return await Promise.race([call.ended, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The same "random" bytes every run (a linear congruential generator), so a failure replays. */
function garbage(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = (seed * 2_654_435_761 + 1) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1_103_515_245) + 12_345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const GRPC = { INVALID_ARGUMENT: 3, RESOURCE_EXHAUSTED: 8, INTERNAL: 13 } as const;

// ---------------------------------------------------------------------------------------------
// The abuse
// ---------------------------------------------------------------------------------------------

test.serial('malformed messages end only their own stream, with a status that says why', async (t) => {
  const rejections: { what: string; end: CallEnd }[] = [];
  const abuse = (async () => {
    for (let round = 0; round < 10; round++) {
      const cases: [string, (c: RawCall) => void][] = [
        ['garbage bytes', (c) => c.sendRaw(garbage(64 + round, round))],
        ['Hello field sent as a varint', (c) => c.sendRaw(Buffer.from([0x08, 0x96, 0x01]))],
        ['a valid message of another type first (an ACK)', (c) => c.send({ ack: { version: '1', nonce: 'n' } })],
        ['invalid Hello values', (c) => c.send(hello('NOT A DNS LABEL', 'x y', { register: true }, { port: 0 }))],
        ['two Hellos', (c) => { c.send(hello('twice', `twice-${round}`)); c.send(hello('twice', `twice-${round}`)); }],
        ['declared length of 2 GiB', (c) => c.sendRaw(garbage(16, round), 0x7fff_ffff)],
        ['a 5 MiB message', (c) => c.send(hello('huge', `huge-${round}`, {}, { zone: 'z'.repeat(5 * 1024 * 1024) }))],
        ['a compressed flag with no compression agreed', (c) => { const f = Buffer.from([1, 0, 0, 0, 1, 0]); c.stream.write(f); }],
      ];
      // A connection each: after the 5 MiB message, node's HTTP/2 server resets every later stream
      // of that connection (ENHANCE_YOUR_CALM), which would hide the other cases.
      await Promise.all(cases.map(async ([what, act]) => {
        const raw = await RawClient.connect();
        try {
          const call = raw.call();
          act(call);
          rejections.push({ what, end: await endsWithin(call, 10_000, what) });
        } finally {
          raw.close();
        }
      }));
    }
  })();
  const latencies = await probingWhile('malformed', abuse);
  const outcomes = new Map<string, number>();
  for (const { what, end } of rejections) outcomes.set(`${what} → ${end.code ?? end.message}`, (outcomes.get(`${what} → ${end.code ?? end.message}`) ?? 0) + 1);
  t.log(Object.fromEntries(outcomes));
  for (const { what, end } of rejections) {
    t.true(end.code !== undefined && end.code !== 0, `${what}: ended with grpc-status ${end.code} ${end.message}`);
  }
  const byWhat = new Map(rejections.map((r) => [r.what, r.end]));
  t.is(byWhat.get('invalid Hello values')?.code, GRPC.INVALID_ARGUMENT);
  t.regex(byWhat.get('invalid Hello values')?.message ?? '', /hello\.instance\.service/);
  t.is(byWhat.get('two Hellos')?.code, GRPC.INVALID_ARGUMENT);
  t.is(byWhat.get('a 5 MiB message')?.code, GRPC.RESOURCE_EXHAUSTED);
  t.is(byWhat.get('declared length of 2 GiB')?.code, GRPC.RESOURCE_EXHAUSTED);
  checkLatencies(t, 'malformed messages', latencies);
  await stillServing(t);
  await eventually('only the good sidecar is connected', async () => (await connectedSidecars()) === 1);
});

test.serial('a Hello cannot bloat the mesh: huge labels and over-long names are refused, never registered or pushed', async (t) => {
  const raw = await RawClient.connect();
  t.teardown(() => raw.close());
  const labels = Object.fromEntries(Array.from({ length: 2_000 }, (_, i) => [`label-${i}`, 'v'.repeat(1_000)]));
  const cases: [string, StreamConfigRequest][] = [
    ['2 MB of labels', hello('bloat', 'bloat-1', { register: true }, { labels })],
    ['a 64-character service name', hello('s'.repeat(64), 'long-1', { register: true })],
    ['a 100 KB zone', hello('zone', 'zone-1', { register: true }, { zone: 'z'.repeat(100_000) })],
  ];
  for (const [what, msg] of cases) {
    const call = raw.call();
    call.send(msg);
    const end = await endsWithin(call, 10_000, what);
    t.is(end.code, GRPC.INVALID_ARGUMENT, `${what}: ${end.code} ${end.message.slice(0, 200)}`);
  }
  // Had any been registered, its service would be a cluster in every sidecar's config.
  await probePush('after-bloat');
  const config = await getJson<MeshConfig>(m().good.admin, '/config_dump');
  t.deepEqual(config.clusters.map((c) => c.name).filter((n) => n !== 'backend'), []);
  const endpoints = await m().client.getAll().prefix(`${DEFAULT_PREFIX}endpoints/`).keys();
  t.deepEqual(endpoints, []);
  await stillServing(t);
});

test.serial('lying ACKs are ignored and a NACK storm is counted, bounded in what it stores', async (t) => {
  const raw = await RawClient.connect();
  t.teardown(() => raw.close());
  const before = await metrics();

  // One liar ACKs a nonce never sent; the other ACKs the real nonce but claims another version.
  const liar = raw.call();
  liar.send(hello('liar', 'liar-1', { appliedVersion: 'v-start' }));
  liar.send({ ack: { version: '999999', nonce: 'never-sent' } });
  liar.read();
  const boaster = raw.call();
  boaster.send(hello('boaster', 'boaster-1'));
  const pushed = await boaster.read().first;
  boaster.send({ ack: { version: 'v'.repeat(100_000), nonce: pushed.nonce } });
  // Before anything else is pushed, which would make this ACK stale (and rightly ignored).
  const applied = await eventually('the boaster\'s ACK processed', async () => {
    const view = await getJson<{ sidecars: { service: string; appliedVersion: string }[] }>(m().cp.http, '/api/mesh');
    return view.sidecars.find((s) => s.service === 'boaster' && s.appliedVersion !== '')?.appliedVersion;
  });
  t.is(applied, pushed.version, 'an ACK applies the version sent under its nonce, not the one it claims');

  const NACKS = 2_000;
  const stormer = raw.call();
  stormer.stream.on('data', () => undefined);
  stormer.send(hello('storm', 'storm-1'));
  const storm = (async () => {
    for (let i = 0; i < NACKS; i++) {
      // Every NACK names a made-up kind; every tenth (the last one too) carries 500 errors of 2 KB.
      const errors = Array.from({ length: i % 10 === 9 ? 500 : 1 }, (_, j) => ({ resource: `kind${i}x${j}/default/r`, message: 'm'.repeat(2_000) }));
      if (!stormer.send({ nack: { version: String(i), nonce: `n${i}`, errors } })) await new Promise((r) => stormer.stream.once('drain', r));
      // And golden-metric reports as fast as the socket takes them, each naming 50 new destinations.
      if (i % 2 === 0) {
        const destinations = Array.from({ length: 50 }, (_, j) => ({ destination: `d${i}-${j}`, requests: 1, failures: 0, latencyBuckets: [1, 0], latencyBoundsSeconds: [0.1] }));
        stormer.send({ stats: { intervalMs: 5_000, destinations, certificateExpiryMs: 0 } });
      }
    }
  })();
  const latencies = await probingWhile('nack-storm', storm);
  await eventually('every NACK counted', async () => sumOf(await metrics(), 'remora_cp_nacks_total') - sumOf(before, 'remora_cp_nacks_total') >= NACKS, 20_000);
  const after = await metrics();
  t.is(sumOf(after, 'remora_cp_nacks_total') - sumOf(before, 'remora_cp_nacks_total'), NACKS);
  const reasons = [...after.keys()].filter((k) => k.startsWith('remora_cp_nacks_total{'));
  t.true(reasons.length <= 6, `NACK reasons are a small fixed set, got ${reasons.length}: ${reasons.slice(0, 5).join(', ')}...`);

  // What the stormer and the liar look like to `remora status` (etcd) and the dashboard.
  const status = await eventually('the storm\'s last NACK in etcd', async () => {
    const v = await m().client.get(`${statusPrefix(DEFAULT_PREFIX)}abuse/storm/storm-1`).string();
    return v !== null && (JSON.parse(v) as { lastNack: { version: string } | null }).lastNack?.version === String(NACKS - 1) && v;
  }, 10_000);
  t.true(status.length < 64 * 1024, `a sidecar's status in etcd is bounded, got ${status.length} bytes`);
  const view = await getJson<{ sidecars: { service: string; appliedVersion: string }[]; nacks: unknown[]; edges: { source: string }[] }>(m().cp.http, '/api/mesh');
  const stormEdges = view.edges.filter((e) => e.source === 'storm').length;
  t.true(stormEdges <= 50 * 10, `stats reports faster than one a second are dropped: the dashboard holds ${stormEdges} edges from the storm (sent ${NACKS / 2 * 50})`);
  t.is(view.sidecars.find((s) => s.service === 'liar')?.appliedVersion, 'v-start', 'an ACK for a nonce never sent changes nothing');
  t.true(JSON.stringify(view.nacks).length < 256 * 1024, `the dashboard's recent NACKs are bounded, got ${JSON.stringify(view.nacks).length} bytes`);
  checkLatencies(t, 'NACK storm', latencies);
  await stillServing(t);
  raw.close();
  await eventually('the liars and the stormer disconnected', async () => (await connectedSidecars()) === 1);
});

test.serial('clients that never read: pushes to them stop at their window, memory stays bounded, others keep getting pushes', async (t) => {
  const STUCK = 10;
  // A tiny receive window and no reading: the control plane can send them one snapshot's first bytes.
  const stuck = await Promise.all(Array.from({ length: STUCK }, () => RawClient.connect({ initialWindowSize: 1_024 })));
  t.teardown(() => { for (const c of stuck) c.close(); });
  const calls = stuck.map((c, i) => {
    const call = c.call();
    call.send(hello('stuck', `stuck-${i}`));
    return call;
  });
  await eventually('the stuck clients are connected', async () => (await connectedSidecars()) === 1 + STUCK);
  const rssBefore = await rssBytes(m().cp.proc.pid);

  // Big snapshots, changing often: a fixed-endpoint cluster with ~150 KB of labels, rewritten each time.
  const CHANGES = 60;
  const bulk = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`l${i}`, 'x'.repeat(1_000)]));
  const changes = (async () => {
    for (let i = 0; i < CHANGES; i++) {
      await m().client.put(configKey(DEFAULT_PREFIX, 'Cluster', 'default', 'bulk')).value(JSON.stringify({
        kind: 'Cluster', metadata: { name: 'bulk', namespace: 'default', labels: {} },
        spec: { service: 'bulk', subset: {}, endpoints: [{ address: '127.0.0.1', port: 1 + i, weight: 1, labels: bulk }], connectTimeoutMs: 5000, maxSessionAgeMs: 300000 },
      }));
      // Let each change become its own push rather than one coalesced burst.
      await new Promise((r) => setTimeout(r, 60));
    }
  })();
  const latencies = await probingWhile('stuck', changes, 300);
  const rssAfter = await rssBytes(m().cp.proc.pid);
  const growth = rssAfter - rssBefore;
  t.log(`control plane RSS ${(rssBefore / 2 ** 20).toFixed(0)} → ${(rssAfter / 2 ** 20).toFixed(0)} MiB with ${STUCK} stuck clients and ${CHANGES} snapshots of ~150 KB`);
  t.true(growth < RSS_GROWTH_BOUND, `RSS grew by ${(growth / 2 ** 20).toFixed(0)} MiB (bound ${RSS_GROWTH_BOUND / 2 ** 20} MiB)`);
  checkLatencies(t, 'stuck readers', latencies);
  const config = await getJson<MeshConfig>(m().good.admin, '/config_dump');
  t.is(config.clusters.find((c) => c.name === 'bulk')?.endpoints[0]?.port, CHANGES, 'the good sidecar has the last change');

  // One stuck client starts reading with a wide window: what was queued for it arrives. The one
  // snapshot in flight and the newest, not all the snapshots pushed while it was stuck.
  const reader = calls[0]!.read();
  stuck[0]!.session.settings({ initialWindowSize: 16 * 1024 * 1024 });
  stuck[0]!.session.setLocalWindowSize(16 * 1024 * 1024);
  let seen = -1;
  await eventually('the unstuck client has read everything queued for it', async () => {
    const now = reader.count();
    const settled = now > 0 && now === seen;
    seen = now;
    await new Promise((r) => setTimeout(r, 400));
    return settled;
  }, 20_000);
  t.log(`the unstuck client received ${reader.count()} snapshots queued while ${CHANGES} were pushed`);
  t.true(reader.count() <= 3, `a stuck stream queued ${reader.count()} snapshots (at most the one in flight and the newest expected)`);
  await stillServing(t);
  for (const c of stuck) c.close();
  await eventually('the stuck clients are gone', async () => (await connectedSidecars()) === 1);
  await m().client.delete().key(configKey(DEFAULT_PREFIX, 'Cluster', 'default', 'bulk'));
});

test.serial('hundreds of streams opened and dropped on one connection leave nothing behind', async (t) => {
  const raw = await RawClient.connect();
  t.teardown(() => raw.close());
  const STREAMS = 600;
  const churn = (async () => {
    for (let batch = 0; batch < STREAMS / 50; batch++) {
      const calls = Array.from({ length: 50 }, (_, j) => {
        const i = batch * 50 + j;
        const call = raw.call();
        // A third say hello and vanish, a third vanish after hello and a stats report, a third say nothing.
        if (i % 3 !== 2) call.send(hello('churn', `churn-${i}`));
        if (i % 3 === 1) call.send({ stats: { intervalMs: 1000, destinations: [{ destination: 'x', requests: 1, failures: 0, latencyBuckets: [1], latencyBoundsSeconds: [] }], certificateExpiryMs: 0 } });
        setImmediate(() => call.cancel());
        return call.ended;
      });
      await Promise.all(calls);
    }
  })();
  const latencies = await probingWhile('churn', churn);
  checkLatencies(t, 'stream churn', latencies);
  await stillServing(t);
  await eventually('no dropped stream is still counted as connected', async () => (await connectedSidecars()) === 1);
  const sidecars = await getJson<{ sidecars: unknown[] }>(m().cp.http, '/debug/sidecars');
  t.is(sidecars.sidecars.length, 1);
  // Status rows of dropped streams are deleted (in the next status flush, once a second).
  await eventually('no status row left for a dropped stream', async () => {
    const keys = await m().client.getAll().prefix(`${statusPrefix(DEFAULT_PREFIX)}abuse/`).keys();
    return keys.length === 0;
  }, 10_000);
  t.pass();
});

test.serial('after all of it: the control plane runs, its memory is bounded, and pushes are still prompt', async (t) => {
  await stillServing(t);
  const latencies: number[] = [];
  for (let i = 0; i < 5; i++) latencies.push(await probePush('final'));
  checkLatencies(t, 'at the end', latencies);
  const rss = await rssBytes(m().cp.proc.pid);
  t.log(`control plane RSS at start ${(m().rssAtStart / 2 ** 20).toFixed(0)} MiB, at the end ${(rss / 2 ** 20).toFixed(0)} MiB`);
  t.true(rss - m().rssAtStart < 2 * RSS_GROWTH_BOUND, `RSS grew by ${((rss - m().rssAtStart) / 2 ** 20).toFixed(0)} MiB over all the abuse`);
  const ms = await metrics();
  t.is(sumOf(ms, 'remora_cp_connected_sidecars'), 1);
  t.true(sumOf(ms, 'remora_cp_pushes_total') >= m().probes, 'every probe was a push');
});
