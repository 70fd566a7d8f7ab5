/**
 * Pushed resources → the sidecar's MeshConfig, through the same validator as the static file.
 * Problems are reported per resource (`cluster/catalog: endpoints[0].port: ...`) for the NACK.
 */
import type { ConfigResource, ResourceError } from '../../protos/gen/remora/mesh/v1/discovery.js';
import type { MeshConfig } from '../config/model.js';
import { ConfigError, validateMeshConfig } from '../config/validate.js';

export type TranslateResult = { config: MeshConfig; errors: [] } | { config: undefined; errors: ResourceError[] };

const KIND_LIST = { cluster: 'clusters', route: 'routes' } as const;
/** Kinds of which a snapshot holds at most one. */
const SINGLE = new Set(['security']);

export function translateResources(version: string, resources: readonly ConfigResource[]): TranslateResult {
  const errors: ResourceError[] = [];
  const doc: { clusters: unknown[]; routes: unknown[]; security?: unknown } = { clusters: [], routes: [] };
  const names: Record<'clusters' | 'routes', string[]> = { clusters: [], routes: [] };
  for (const r of resources) {
    const id = `${r.kind}/${r.name}`;
    if (SINGLE.has(r.kind)) {
      if (doc.security !== undefined) errors.push({ resource: id, message: 'a snapshot carries one security resource, got a second' });
      try {
        doc.security = JSON.parse(r.json);
      } catch (err) {
        errors.push({ resource: id, message: `body is not JSON: ${(err as Error).message}` });
      }
      continue;
    }
    // hasOwn: a kind such as "constructor" must not find Object.prototype's members.
    const list = Object.hasOwn(KIND_LIST, r.kind) ? KIND_LIST[r.kind as keyof typeof KIND_LIST] : undefined;
    if (!list) {
      errors.push({ resource: id, message: `unknown resource kind ${JSON.stringify(r.kind)} (this sidecar knows: ${[...Object.keys(KIND_LIST), ...SINGLE].join(', ')})` });
      continue;
    }
    try {
      doc[list].push(JSON.parse(r.json));
      names[list].push(id);
    } catch (err) {
      errors.push({ resource: id, message: `body is not JSON: ${(err as Error).message}` });
    }
  }
  if (errors.length === 0) {
    try {
      return { config: validateMeshConfig(doc, version), errors: [] };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const problem of err.problems) {
        // "clusters[3].endpoints[0].port: ..." → resource "cluster/<name>", message "endpoints[0].port: ..."
        const m = /^(clusters|routes)\[(\d+)\]\.?(.*)$/s.exec(problem);
        const resource = m ? names[m[1] as 'clusters' | 'routes'][Number(m[2])] : undefined;
        if (problem.startsWith('security.')) {
          errors.push({ resource: 'security/mesh', message: problem.slice('security.'.length) });
          continue;
        }
        // "clusters[3]: must be an object" is about the resource as a whole: no leading ": ".
        errors.push(resource ? { resource, message: m![3]!.replace(/^: /, '') } : { resource: '', message: problem });
      }
    }
  }
  return { config: undefined, errors };
}
