/**
 * Node flags the sidecar runs with, wherever it runs (container entrypoint, `remora demo`, tests,
 * bench): one list, so what the bench measures is what users deploy.
 *
 * --max-semi-space-size=1: V8 grows the young generation up to 16 MB per semi-space (32+ MB
 * resident) when allocation is fast, which a proxy's per-call objects make it; the sidecar's
 * live young objects are a few hundred KB (the calls in flight), so a 1 MB semi-space keeps
 * scavenges cheap and the sidecar's resident memory ~30 MB lower under load.
 */
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/** Node flags for a `remora <command>` process: the sidecar's own, none for the rest. */
export function nodeFlagsFor(command: string | undefined): readonly string[] {
  return command === 'sidecar' ? SIDECAR_NODE_FLAGS : [];
}
