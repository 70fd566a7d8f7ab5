/**
 * The six faults, each injected into a mesh under steady load and then repaired. A drill marks
 * when its fault starts and ends (the runner reports p99 over that window) and records any
 * expectation beyond "no call failed" that it saw missed, with the reason.
 */
import { getJson, eventually } from '../harness/sidecars.js';
import type { ChaosMesh, ControlPlaneSlot } from './mesh.js';
import { DANGLING_ROUTE, DANGLING_ROUTE_ERROR, DANGLING_ROUTE_NAME, SERVICE } from './mesh-resources.js';

export interface DrillOptions {
  readonly etcdDownS: number;
  /** sigstop: etcd frozen, sockets open (a hung node); restart: stopped and started on the same data dir. */
  readonly etcdFault: 'sigstop' | 'restart';
}

export interface DrillContext {
  readonly mesh: ChaosMesh;
  readonly opts: DrillOptions;
  /** Records an event on the drill's timeline (seconds since its load started). */
  mark(what: string): void;
  faultStarted(): void;
  faultEnded(): void;
  /** Records a missed expectation unless `ok`. */
  expect(ok: boolean, reason: string): void;
}

export interface Drill {
  readonly name: string;
  readonly title: string;
  run(ctx: DrillContext): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Generous: on two shared cores a restart or a failover can take seconds. */
const RECOVERY_TIMEOUT_MS = 60_000;

interface InstanceRow { service: string; instanceId: string; controlPlane: string }
interface SidecarStatusRow { instanceId: string; appliedVersion: string; lastNack: { version: string; errors: string[] } | null }
interface CertsView { identity: { issuerFingerprint: string; renewals: number; trustBundle: unknown[] } | null }
interface CaRootRow { fingerprint: string; signing: boolean }

async function remoraJson<T>(mesh: ChaosMesh, args: string[]): Promise<T> {
  const { code, out } = await mesh.remora([...args, '-o', 'json', ...mesh.etcdArgs()]);
  if (code !== 0) throw new Error(`remora ${args.join(' ')} failed (${code}): ${out}`);
  const parsed = JSON.parse(out) as T | { items: T };
  return (typeof parsed === 'object' && parsed !== null && 'items' in parsed ? parsed.items : parsed) as T;
}

async function remoraOk(mesh: ChaosMesh, args: string[]): Promise<string> {
  const { code, out } = await mesh.remora(args);
  if (code !== 0) throw new Error(`remora ${args.join(' ')} failed (${code}): ${out}`);
  return out;
}

const catalogInstances = async (mesh: ChaosMesh) =>
  (await remoraJson<InstanceRow[]>(mesh, ['get', 'instances', '-A'])).filter((i) => i.service === SERVICE);

async function connectedTo(slot: ControlPlaneSlot): Promise<number> {
  return (await getJson<{ sidecars: unknown[] }>(slot.httpPort, '/debug/sidecars')).sidecars.length;
}

const killReplica: Drill = {
  name: 'kill-replica',
  title: 'kill -9 one of three catalog replicas (app and sidecar), then start it again',
  async run(ctx) {
    const { mesh } = ctx;
    const victim = mesh.replicas[1]!;
    const deadAddress = `127.0.0.1:${victim.sidecar!.inbound}`;
    const was = victim.instanceId;
    ctx.faultStarted();
    await mesh.killReplica(victim);
    ctx.mark(`killed ${was} (kill -9 app and sidecar)`);
    await eventually('the client to stop choosing the dead endpoint', async () => {
      const e = (await mesh.clientCluster())?.endpoints.find((x) => x.address === deadAddress);
      return !e || e.healthy === false || e.ejected === true;
    }, RECOVERY_TIMEOUT_MS);
    ctx.mark('client marked the dead endpoint unhealthy or ejected (or it was deregistered)');
    await mesh.startReplica(victim);
    ctx.mark(`started ${victim.instanceId}`);
    await mesh.waitSteady(RECOVERY_TIMEOUT_MS);
    ctx.mark('client balances over the three live replicas again (dead registration expired)');
    ctx.faultEnded();
  },
};

const killControlPlane: Drill = {
  name: 'kill-control-plane',
  title: 'kill -9 the control-plane replica holding most sidecars, then start it again',
  async run(ctx) {
    const { mesh } = ctx;
    const [a, b] = mesh.controlPlanes as [ControlPlaneSlot, ControlPlaneSlot];
    const [na, nb] = [await connectedTo(a), await connectedTo(b)];
    const [victim, survivor] = na >= nb ? [a, b] : [b, a];
    const total = na + nb;
    ctx.mark(`sidecars per replica: ${a.name} ${na}, ${b.name} ${nb}`);
    ctx.faultStarted();
    await mesh.killControlPlane(victim);
    ctx.mark(`killed ${victim.name} (kill -9)`);
    await eventually(`all ${total} sidecars on ${survivor.name}`, async () => (await connectedTo(survivor)) === total, RECOVERY_TIMEOUT_MS);
    ctx.mark(`all ${total} sidecars reconnected to ${survivor.name}`);
    // The dead replica's etcd lease (10 s TTL) runs out: registrations must survive, re-made by the survivor.
    await sleep(12_000);
    const rows = await catalogInstances(mesh);
    ctx.expect(rows.length === mesh.replicas.length, `after ${victim.name}'s lease expired, ${rows.length} catalog registrations remain, want ${mesh.replicas.length}`);
    ctx.expect(rows.every((r) => r.controlPlane === survivor.name), `registrations held by ${rows.map((r) => r.controlPlane).join(', ')}, want all by ${survivor.name}`);
    ctx.mark(`lease expired: ${rows.length} catalog registrations, held by ${[...new Set(rows.map((r) => r.controlPlane))].join(', ')}`);
    await mesh.startControlPlane(victim);
    ctx.mark(`${victim.name} restarted and ready`);
    await mesh.waitSteady(RECOVERY_TIMEOUT_MS);
    ctx.faultEnded();
  },
};

const etcdDown: Drill = {
  name: 'etcd-down',
  title: 'etcd unavailable (frozen with SIGSTOP, or stopped and restarted on the same data) for --etcd-down-s, then back',
  async run(ctx) {
    const { mesh, opts } = ctx;
    const downMs = opts.etcdDownS * 1000;
    ctx.faultStarted();
    if (opts.etcdFault === 'sigstop') {
      mesh.pauseEtcd();
      ctx.mark(`etcd frozen (SIGSTOP) for ${opts.etcdDownS} s`);
      await sleep(downMs);
      mesh.resumeEtcd();
      ctx.mark('etcd resumed (SIGCONT)');
    } else {
      ctx.mark(`etcd stopped for ${opts.etcdDownS} s`);
      await mesh.etcd.restart({ downMs });
      ctx.mark('etcd restarted on the same data dir');
    }
    await eventually('both control planes ready', async () => {
      for (const cp of mesh.controlPlanes) if ((await fetch(`http://127.0.0.1:${cp.httpPort}/healthz/ready`)).status !== 200) return false;
      return true;
    }, RECOVERY_TIMEOUT_MS);
    let rows: InstanceRow[] = [];
    await eventually('every catalog registration back in etcd', async () => (rows = await catalogInstances(mesh)).length === mesh.replicas.length, RECOVERY_TIMEOUT_MS)
      .catch(() => ctx.expect(false, `after etcd came back, ${rows.length} catalog registrations in etcd, want ${mesh.replicas.length}`));
    ctx.mark(`${rows.length} catalog registrations in etcd`);
    await mesh.waitSteady(RECOVERY_TIMEOUT_MS);
    ctx.faultEnded();
  },
};

const rollingRestart: Drill = {
  name: 'rolling-restart',
  title: 'rolling restart of the catalog sidecars: SIGTERM one, start its successor, wait ready, next',
  async run(ctx) {
    const { mesh } = ctx;
    ctx.faultStarted();
    for (const r of mesh.replicas) {
      const was = r.instanceId;
      const code = await mesh.restartSidecar(r);
      ctx.expect(code === 0, `sidecar ${was} exited with ${code} after SIGTERM, want 0 (a clean drain)`);
      ctx.mark(`${was} drained and exited ${code}; ${r.instanceId} started`);
      await mesh.waitSteady(RECOVERY_TIMEOUT_MS);
      ctx.mark(`${r.instanceId} ready and in the client's endpoints`);
    }
    ctx.faultEnded();
  },
};

const rotateCerts: Drill = {
  name: 'rotate-certs',
  title: 'POST /rotate_cert on every sidecar, then a CA root rotation (ca add-root, use-root, remove-root)',
  async run(ctx) {
    const { mesh } = ctx;
    const sidecars = mesh.sidecars();
    const certs = (port: number) => getJson<CertsView>(port, '/certs');
    const before = new Map<string, number>();
    for (const { name, sidecar } of sidecars) before.set(name, (await certs(sidecar.admin)).identity?.renewals ?? 0);
    ctx.faultStarted();
    const answers = await Promise.all(sidecars.map(async ({ name, sidecar }) => {
      const res = await fetch(`http://127.0.0.1:${sidecar.admin}/rotate_cert`, { method: 'POST' });
      await res.arrayBuffer();
      return { name, status: res.status };
    }));
    for (const a of answers) ctx.expect(a.status === 200, `POST /rotate_cert on ${a.name} answered ${a.status}, want 200`);
    for (const { name, sidecar } of sidecars) {
      const renewals = (await certs(sidecar.admin)).identity?.renewals ?? 0;
      ctx.expect(renewals > before.get(name)!, `${name} did not renew its certificate (renewals ${before.get(name)} → ${renewals})`);
    }
    ctx.mark(`/rotate_cert: ${sidecars.length} sidecars renewed`);

    const etcd = mesh.etcdArgs();
    const oldRoot = (await remoraJson<CaRootRow[]>(mesh, ['ca', 'status'])).find((r) => r.signing)!.fingerprint;
    await remoraOk(mesh, ['ca', 'add-root', '--ca-key-passphrase-file', mesh.secrets.passphraseFile, ...etcd]);
    const newRoot = (await remoraJson<CaRootRow[]>(mesh, ['ca', 'status'])).find((r) => !r.signing)!.fingerprint;
    const all = async (what: string, ok: (c: CertsView) => boolean) => {
      for (const { name, sidecar } of sidecars) await eventually(`${name}: ${what}`, async () => ok(await certs(sidecar.admin)), RECOVERY_TIMEOUT_MS);
    };
    await all('trusts both roots', (c) => c.identity?.trustBundle.length === 2);
    ctx.mark(`ca add-root ${newRoot.slice(0, 11)}…: every sidecar trusts both roots`);
    await remoraOk(mesh, ['ca', 'use-root', newRoot, ...etcd]);
    await all('holds a certificate from the new root', (c) => c.identity?.issuerFingerprint === newRoot);
    ctx.mark('ca use-root: every sidecar holds a certificate from the new root');
    await remoraOk(mesh, ['ca', 'remove-root', oldRoot, ...etcd]);
    await all('trusts only the new root', (c) => c.identity?.trustBundle.length === 1 && c.identity.issuerFingerprint === newRoot);
    ctx.mark('ca remove-root: every sidecar trusts only the new root');
    ctx.faultEnded();
  },
};

const nackConfig: Drill = {
  name: 'nack-config',
  title: 'push a config the control plane accepts and every sidecar rejects (a route to a missing cluster), then repair it',
  async run(ctx) {
    const { mesh } = ctx;
    const sidecars = mesh.sidecars();
    const version = async (port: number) => (await getJson<{ version: string }>(port, '/config_dump')).version;
    const good = new Map<string, string>();
    for (const { name, sidecar } of sidecars) good.set(name, await version(sidecar.admin));
    ctx.faultStarted();
    await mesh.apply(DANGLING_ROUTE);
    ctx.mark(`applied route ${DANGLING_ROUTE_NAME} → a cluster that does not exist`);
    let rows: SidecarStatusRow[] = [];
    const nacked = () => sidecars.filter(({ name }) => {
      const row = rows.find((r) => r.instanceId === name);
      return row?.lastNack && row.lastNack.version !== good.get(name) && DANGLING_ROUTE_ERROR.test(row.lastNack.errors.join('\n'));
    });
    await eventually('every sidecar NACKs it (remora status)', async () => {
      rows = await remoraJson<SidecarStatusRow[]>(mesh, ['status']);
      return nacked().length === sidecars.length;
    }, RECOVERY_TIMEOUT_MS).catch(() => ctx.expect(false, `${nacked().length} of ${sidecars.length} sidecars reported the NACK in remora status`));
    ctx.mark(`${nacked().length} of ${sidecars.length} sidecars NACKed (${rows[0]?.lastNack?.errors[0] ?? 'no NACK seen'})`);
    for (const { name, sidecar } of sidecars) {
      const now = await version(sidecar.admin);
      ctx.expect(now === good.get(name), `${name} left its last good config ${good.get(name)} for ${now}`);
    }
    await sleep(3_000);
    await remoraOk(mesh, ['delete', 'route', DANGLING_ROUTE_NAME, ...mesh.etcdArgs()]);
    ctx.mark('deleted the route');
    for (const { name, sidecar } of sidecars) {
      await eventually(`${name} applies the repaired config`, async () => (await version(sidecar.admin)) !== good.get(name), RECOVERY_TIMEOUT_MS)
        .catch(() => ctx.expect(false, `${name} never applied a config after the bad route was deleted`));
    }
    ctx.mark('every sidecar applied the repaired config');
    ctx.faultEnded();
  },
};

export const DRILLS: readonly Drill[] = [killReplica, killControlPlane, etcdDown, rollingRestart, rotateCerts, nackConfig];
