/** Starts real `remora sidecar` processes on free loopback ports with a generated static config. */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { startRemora, type Proc } from '../../lib/processes.js';

export interface SidecarHandle {
  readonly proc: Proc;
  readonly outbound: number;
  readonly inbound: number;
  readonly admin: number;
  readonly stats: number;
  readonly configFile: string;
}

export interface SidecarSpec {
  /** cluster name → endpoint ports on 127.0.0.1 */
  clusters?: Record<string, number[]>;
  /** raw config document, instead of `clusters` */
  config?: unknown;
  appPort?: number;
  service?: string;
  extraArgs?: string[];
  env?: Record<string, string>;
}

export function configFor(clusters: Record<string, number[]>): unknown {
  return {
    clusters: Object.entries(clusters).map(([name, ports]) => ({
      name,
      endpoints: ports.map((port) => ({ address: '127.0.0.1', port })),
    })),
  };
}

export async function startSidecar(spec: SidecarSpec & { controlPlanes?: string[] }): Promise<SidecarHandle> {
  let configFile = '';
  let source: string[];
  if (spec.controlPlanes) {
    source = ['--control-plane', spec.controlPlanes.join(',')];
  } else {
    const dir = await mkdtemp(path.join(tmpdir(), 'remora-test-'));
    configFile = path.join(dir, 'mesh.yaml');
    await writeFile(configFile, stringify(spec.config ?? configFor(spec.clusters ?? {})));
    source = ['--config', configFile];
  }
  const proc = await startRemora(
    [
      'sidecar',
      ...source,
      '--service', spec.service ?? 'test',
      '--app-port', String(spec.appPort ?? 1),
      // No app behind this sidecar: don't let failing app health checks hold readiness down.
      ...(spec.appPort === undefined ? ['--app-health-interval-ms', '0'] : []),
      '--outbound-port', '0',
      '--inbound-address', '127.0.0.1',
      '--inbound-port', '0',
      '--admin-port', '0',
      '--stats-address', '127.0.0.1',
      '--stats-port', '0',
      ...(spec.extraArgs ?? []),
    ],
    { portsFile: true, env: { REMORA_LOG_LEVEL: 'warn', ...spec.env } },
  );
  const { outbound, inbound, admin, stats } = proc.ports as Record<'outbound' | 'inbound' | 'admin' | 'stats', number>;
  return { proc, outbound, inbound, admin, stats, configFile };
}

export async function getJson<T>(port: number, urlPath: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`);
  return (await res.json()) as T;
}

export interface ControlPlaneHandle {
  readonly proc: Proc;
  readonly grpc: number;
  readonly http: number;
  /** The TLS port (when the control plane runs a CA). */
  readonly tls: number | undefined;
  readonly address: string;
  readonly tlsAddress: string;
}

export async function startControlPlane(etcdEndpoints: string[], extraArgs: string[] = [], replicaId?: string, env: Record<string, string> = {}): Promise<ControlPlaneHandle> {
  const proc = await startRemora(
    [
      'control-plane',
      '--etcd-endpoints', etcdEndpoints.join(','),
      '--address', '127.0.0.1',
      '--port', '0',
      '--http-port', '0',
      '--tls-port', '0',
      '--webhook-port', '0',
      ...(replicaId ? ['--replica-id', replicaId] : []),
      // Plaintext unless the test sets up a CA (meshCredentials()).
      ...(extraArgs.includes('--ca') ? [] : ['--ca', 'none']),
      ...extraArgs,
    ],
    { portsFile: true, env: { REMORA_LOG_LEVEL: 'warn', ...env } },
  );
  const { grpc, http, tls } = proc.ports as Record<'grpc' | 'http' | 'tls', number>;
  return { proc, grpc, http, tls, address: `127.0.0.1:${grpc}`, tlsAddress: `127.0.0.1:${tls}` };
}

/** Polls until `check` returns a truthy value or the time is up (then throws with `what`). */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
