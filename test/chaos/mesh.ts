/**
 * The mesh the chaos drills and the soak run against, all real processes on 127.0.0.1: one etcd,
 * two control-plane replicas that are also the mesh CA, three catalog replicas (the demo service,
 * each with its own sidecar registering through the control plane) and a client sidecar whose
 * outbound port the load goes through. mTLS is STRICT between sidecars.
 *
 * Control planes keep fixed ports across restarts, because sidecars were told their addresses
 * once, at start. Catalog replicas get fresh ports and a fresh instance id each generation, as a
 * rescheduled pod would.
 */
import { rm } from 'node:fs/promises';
import { startEtcd, type EtcdHandle } from '../../lib/etcd-process.js';
import { freePort, startRemora, type Proc } from '../../lib/processes.js';
import { eventually, getJson, startControlPlane, startSidecar, type ControlPlaneHandle, type SidecarHandle } from '../harness/sidecars.js';
import { meshSecrets, type MeshSecrets } from '../harness/mesh-ca.js';
import { CLIENT_SERVICE, MESH_RESOURCES, SERVICE } from './mesh-resources.js';

export interface ControlPlaneSlot {
  readonly name: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly tlsPort: number;
  handle: ControlPlaneHandle | undefined;
}

export interface Replica {
  readonly slot: number;
  generation: number;
  instanceId: string;
  app: Proc | undefined;
  sidecar: SidecarHandle | undefined;
}

interface EndpointView {
  address: string;
  healthy: boolean | null;
  ejected: boolean | null;
}
export interface ClusterView {
  name: string;
  /** How many methods' idempotency levels the sidecar has learnt (a retry after the request reached a server needs it). */
  idempotency: { methods: number; problem: string | null };
  endpoints: EndpointView[];
}

export type Say = (line: string) => void;

const READY_TIMEOUT_MS = 30_000;
const LOG_ENV = { REMORA_LOG_LEVEL: 'warn' };

export class ChaosMesh {
  etcdPaused = false;
  private stopped = false;

  private constructor(
    readonly etcd: EtcdHandle,
    readonly secrets: MeshSecrets,
    readonly controlPlanes: ControlPlaneSlot[],
    readonly replicas: Replica[],
    public client: SidecarHandle | undefined,
    private readonly say: Say,
  ) {}

  /** Starts everything and waits for the steady state; stops what it started if that fails. */
  static async start(opts: { replicas: number; say: Say; clientArgs?: string[]; onCreated?: (mesh: ChaosMesh) => void }): Promise<ChaosMesh> {
    const etcd = await startEtcd();
    const secrets = await meshSecrets();
    const slots: ControlPlaneSlot[] = [];
    for (const name of ['cp-a', 'cp-b']) {
      slots.push({ name, grpcPort: await freePort(), httpPort: await freePort(), tlsPort: await freePort(), handle: undefined });
    }
    const replicas: Replica[] = Array.from({ length: opts.replicas }, (_, i) => ({ slot: i + 1, generation: 0, instanceId: '', app: undefined, sidecar: undefined }));
    const mesh = new ChaosMesh(etcd, secrets, slots, replicas, undefined, opts.say);
    opts.onCreated?.(mesh);
    try {
      await mesh.apply(MESH_RESOURCES);
      // One replica first: it creates the CA root in etcd; the second then finds it instead of racing to create one.
      await mesh.startControlPlane(slots[0]!);
      await mesh.startControlPlane(slots[1]!);
      for (const r of replicas) await mesh.startReplica(r);
      mesh.client = await startSidecar({
        controlPlanes: mesh.controlPlaneAddresses(),
        service: CLIENT_SERVICE,
        extraArgs: [...secrets.sidecarArgs, '--service-account', CLIENT_SERVICE, '--instance-id', `${CLIENT_SERVICE}-1`, '--register=false', ...(opts.clientArgs ?? [])],
        env: LOG_ENV,
      });
      await mesh.waitSteady(60_000);
    } catch (err) {
      await mesh.stop();
      throw err;
    }
    return mesh;
  }

  controlPlaneAddresses(): string[] {
    return this.controlPlanes.map((c) => `127.0.0.1:${c.grpcPort}`);
  }

  etcdArgs(): string[] {
    return ['--etcd-endpoints', this.etcd.endpoint];
  }

  /** Every sidecar that is running now: the catalog replicas' and the client's. */
  sidecars(): { name: string; sidecar: SidecarHandle }[] {
    const out: { name: string; sidecar: SidecarHandle }[] = [];
    for (const r of this.replicas) if (r.sidecar) out.push({ name: r.instanceId, sidecar: r.sidecar });
    if (this.client) out.push({ name: `${CLIENT_SERVICE}-1`, sidecar: this.client });
    return out;
  }

  async startControlPlane(slot: ControlPlaneSlot): Promise<void> {
    slot.handle = await startControlPlane(
      [this.etcd.endpoint],
      [
        ...this.secrets.cpArgs,
        '--port', String(slot.grpcPort),
        '--http-port', String(slot.httpPort),
        '--tls-port', String(slot.tlsPort),
        '--webhook-port', '-1',
      ],
      slot.name,
      LOG_ENV,
    );
    await eventually(`${slot.name} ready`, () => httpOk(slot.httpPort, '/healthz/ready'), READY_TIMEOUT_MS);
  }

  async killControlPlane(slot: ControlPlaneSlot): Promise<void> {
    await slot.handle?.proc.stop('SIGKILL');
    slot.handle = undefined;
  }

  /** A new generation of a catalog replica: its app, then its sidecar. */
  async startReplica(r: Replica): Promise<void> {
    r.generation++;
    r.instanceId = `${SERVICE}-${r.slot}-g${r.generation}`;
    r.app = await startRemora(['demo-service', '--name', SERVICE, '--port', '0', '--instance', r.instanceId], { portsFile: true, env: LOG_ENV });
    r.sidecar = await this.startReplicaSidecar(r);
  }

  async killReplica(r: Replica): Promise<void> {
    await Promise.all([r.sidecar?.proc.stop('SIGKILL'), r.app?.stop('SIGKILL')]);
    r.sidecar = undefined;
    r.app = undefined;
  }

  /**
   * SIGTERM the replica's sidecar (it deregisters, waits for peers to stop picking it, drains)
   * and start a new one for the same app. Returns the old sidecar's exit code.
   */
  async restartSidecar(r: Replica): Promise<number | string> {
    const old = r.sidecar;
    r.sidecar = undefined;
    // Longer than the sidecar's own 20 s drain timeout: a drain that overruns is the sidecar's finding, not a kill of ours.
    const code = old ? await old.proc.stop('SIGTERM', 30_000) : 0;
    r.generation++;
    r.instanceId = `${SERVICE}-${r.slot}-g${r.generation}`;
    r.sidecar = await this.startReplicaSidecar(r);
    return code;
  }

  private startReplicaSidecar(r: Replica): Promise<SidecarHandle> {
    return startSidecar({
      controlPlanes: this.controlPlaneAddresses(),
      service: SERVICE,
      appPort: r.app!.ports.grpc!,
      extraArgs: [...this.secrets.sidecarArgs, '--service-account', SERVICE, '--instance-id', r.instanceId],
      env: LOG_ENV,
    });
  }

  pauseEtcd(): void {
    process.kill(this.etcd.pid, 'SIGSTOP');
    this.etcdPaused = true;
  }

  resumeEtcd(): void {
    if (!this.etcdPaused) return;
    process.kill(this.etcd.pid, 'SIGCONT');
    this.etcdPaused = false;
  }

  async remora(args: string[], stdin?: string): Promise<{ code: number | string; out: string }> {
    const proc = await startRemora(args, stdin === undefined ? {} : { stdin });
    return { code: await proc.exited, out: proc.output() };
  }

  async apply(yaml: string): Promise<void> {
    const { code, out } = await this.remora(['apply', '-f', '-', ...this.etcdArgs()], yaml);
    if (code !== 0) throw new Error(`remora apply failed (${code}): ${out}`);
  }

  async clientCluster(): Promise<ClusterView | undefined> {
    if (!this.client) return undefined;
    const clusters = await getJson<ClusterView[]>(this.client.admin, '/clusters');
    return clusters.find((c) => c.name === SERVICE);
  }

  /**
   * What "healthy" means between drills: both control planes and every sidecar ready, and the
   * client balancing over exactly the current replicas, all passing health checks, none ejected.
   */
  async steadyProblem(): Promise<string | undefined> {
    for (const cp of this.controlPlanes) {
      if (!cp.handle) return `${cp.name} is not running`;
      if (!(await httpOk(cp.httpPort, '/healthz/ready'))) return `${cp.name} is not ready`;
    }
    for (const { name, sidecar } of this.sidecars()) {
      if (!(await httpOk(sidecar.stats, '/healthz/ready'))) return `sidecar ${name} is not ready`;
    }
    const cluster = await this.clientCluster();
    const want = this.replicas.filter((r) => r.sidecar).map((r) => `127.0.0.1:${r.sidecar!.inbound}`).sort();
    const have = (cluster?.endpoints ?? []).map((e) => e.address).sort();
    if (want.join() !== have.join()) return `client sees endpoints [${have.join(', ')}], want [${want.join(', ')}]`;
    const bad = cluster!.endpoints.filter((e) => e.healthy === false || e.ejected === true);
    if (bad.length) return `client has unhealthy or ejected endpoints: ${bad.map((e) => e.address).join(', ')}`;
    return undefined;
  }

  async waitSteady(timeoutMs: number): Promise<void> {
    let last: string | undefined = 'not checked yet';
    try {
      await eventually('the steady state', async () => {
        last = await this.steadyProblem().catch((err: Error) => err.message);
        return last === undefined;
      }, timeoutMs);
    } catch {
      throw new Error(`the mesh did not reach its steady state within ${timeoutMs} ms: ${last}`);
    }
  }

  /** Output of every process, for a failure report. */
  outputs(): string {
    const parts: string[] = [`--- etcd\n${this.etcd.output().slice(-4000)}`];
    for (const cp of this.controlPlanes) if (cp.handle) parts.push(`--- ${cp.name}\n${cp.handle.proc.output().slice(-4000)}`);
    for (const r of this.replicas) {
      if (r.app) parts.push(`--- app ${r.instanceId}\n${r.app.output().slice(-2000)}`);
      if (r.sidecar) parts.push(`--- sidecar ${r.instanceId}\n${r.sidecar.proc.output().slice(-4000)}`);
    }
    if (this.client) parts.push(`--- client sidecar\n${this.client.proc.output().slice(-4000)}`);
    return parts.join('\n');
  }

  /** Stops every process by its PID: callers first, so nothing retries into a half-stopped mesh. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.etcdPaused) this.resumeEtcd(); // a stopped process would sit on SIGTERM until the grace ran out
    const quietly = (p: Promise<unknown> | undefined) => p?.catch(() => undefined);
    await quietly(this.client?.proc.stop());
    await Promise.all(this.replicas.map((r) => quietly(r.sidecar?.proc.stop())));
    await Promise.all(this.replicas.map((r) => quietly(r.app?.stop())));
    await Promise.all(this.controlPlanes.map((c) => quietly(c.handle?.proc.stop())));
    await quietly(this.etcd.stop());
    await rm(this.secrets.dir, { recursive: true, force: true });
    this.say('mesh stopped');
  }
}

async function httpOk(port: number, path: string): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}
