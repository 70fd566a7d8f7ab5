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

export async function startSidecar(spec: SidecarSpec): Promise<SidecarHandle> {
  const dir = await mkdtemp(path.join(tmpdir(), 'remora-test-'));
  const configFile = path.join(dir, 'mesh.yaml');
  await writeFile(configFile, stringify(spec.config ?? configFor(spec.clusters ?? {})));
  const proc = await startRemora(
    [
      'sidecar',
      '--config', configFile,
      '--service', spec.service ?? 'test',
      '--app-port', String(spec.appPort ?? 1),
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
