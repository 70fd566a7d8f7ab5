/**
 * One encoded config snapshot, shared by every connected sidecar: built and protobuf-encoded once
 * per change, then the same bytes are written to each stream. All sidecars get the same view
 * today, which is what makes a push to 1,000 sidecars one encode and 1,000 writes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { StreamConfigResponse } from '../../protos/gen/remora/mesh/v1/discovery.js';
import type { MeshState } from './mesh-state.js';
import { buildSidecarConfig } from './sidecar-config.js';
import { buildSecurityDoc, NO_CA, type CaView } from './security-doc.js';

export interface EncodedSnapshot {
  readonly version: string;
  readonly nonce: string;
  readonly bytes: Buffer;
  /** Hash of the resources alone: equal hashes mean nothing a sidecar sees has changed. */
  readonly contentHash: string;
  readonly resourceCount: number;
  readonly builtAt: number;
}

export function encodeSnapshot(state: MeshState, ca: CaView = NO_CA): EncodedSnapshot {
  const security = buildSecurityDoc(state, ca);
  const { clusters, routes } = buildSidecarConfig(state, security);
  const resources = [
    ...clusters.map((c) => ({ kind: 'cluster', name: c.name, json: JSON.stringify(c) })),
    ...routes.map((r) => ({ kind: 'route', name: r.name, json: JSON.stringify(r) })),
    { kind: 'security', name: 'mesh', json: JSON.stringify(security) },
  ];
  const hash = createHash('sha256');
  for (const r of resources) hash.update(r.kind).update('\0').update(r.json).update('\0');
  const version = state.revision;
  const nonce = `${version}-${randomBytes(4).toString('hex')}`;
  const bytes = Buffer.from(StreamConfigResponse.encode({ version, nonce, resources }).finish());
  return { version, nonce, bytes, contentHash: hash.digest('hex'), resourceCount: resources.length, builtAt: Date.now() };
}
