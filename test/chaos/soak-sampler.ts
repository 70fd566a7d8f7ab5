/** What the soak watches in each mesh process, from /proc: resident memory and open file descriptors. */
import { readdir } from 'node:fs/promises';
import { rssBytes } from '../../lib/processes.js';
import type { ChaosMesh } from './mesh.js';

export interface ProcessSample {
  readonly rssMb: number;
  readonly fds: number;
}

export interface WatchedProcess {
  /** e.g. "sidecar catalog-1-g1", "control-plane cp-a". */
  readonly name: string;
  readonly kind: 'sidecar' | 'control-plane' | 'etcd';
  readonly pid: number;
}

/** The soak never restarts anything, so the set is fixed at its start. */
export function watchedProcesses(mesh: ChaosMesh): WatchedProcess[] {
  const out: WatchedProcess[] = mesh.sidecars().map(({ name, sidecar }) => ({ name: `sidecar ${name}`, kind: 'sidecar' as const, pid: sidecar.proc.pid }));
  for (const cp of mesh.controlPlanes) if (cp.handle) out.push({ name: `control-plane ${cp.name}`, kind: 'control-plane', pid: cp.handle.proc.pid });
  out.push({ name: 'etcd', kind: 'etcd', pid: mesh.etcd.pid });
  return out;
}

export async function sampleProcess(pid: number): Promise<ProcessSample> {
  const [rss, fds] = await Promise.all([rssBytes(pid), readdir(`/proc/${pid}/fd`).then((e) => e.length)]);
  return { rssMb: Math.round((rss / (1024 * 1024)) * 10) / 10, fds };
}
