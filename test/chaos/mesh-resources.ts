/**
 * What the chaos mesh's operator applies with `remora apply`: STRICT mTLS everywhere, health
 * checks and outlier detection on the catalog cluster, and a route that retries the idempotent
 * GetProduct (NO_SIDE_EFFECTS in catalog.proto; the sidecar learns it through reflection).
 * Values are what a user would pick (the README's examples), not tuned to make drills pass.
 */
export const SERVICE = 'catalog';
export const CLIENT_SERVICE = 'frontend';

export const MESH_RESOURCES = `
kind: MeshConfig
metadata: { name: mesh, namespace: remora-system }
spec: { mtlsMode: STRICT }
---
kind: Cluster
metadata: { name: ${SERVICE} }
spec:
  service: ${SERVICE}
  # The README's example values. Faster checks (1 s interval, 500 ms timeout, 2 strikes) took every
  # endpoint out during a rolling restart on an oversubscribed machine, before the sidecar had a
  # panic threshold (default 50%, which now keeps such a cluster balancing): see docs/chaos.md.
  healthCheck: { intervalMs: 5000, timeoutMs: 1000, unhealthyThreshold: 3 }
  # 10% of three replicas rounds to none; the sidecar still allows one
  outlierDetection: { consecutiveFailures: 5, baseEjectionMs: 30000, maxEjectionPercent: 10 }
---
kind: Route
metadata: { name: ${SERVICE}-reads }
spec:
  match: { service: ${SERVICE}, method: { exact: /remora.demo.v1.CatalogService/GetProduct } }
  cluster: ${SERVICE}
  timeoutMs: 2000
  retries: { maxAttempts: 3, retryOn: [UNAVAILABLE, DEADLINE_EXCEEDED], perTryTimeoutMs: 700 }
`;

/**
 * Accepted by the control plane (a route may name a cluster that does not exist yet), rejected
 * by every sidecar: the whole snapshot that contains it is NACKed.
 */
export const DANGLING_ROUTE_NAME = 'chaos-dangling';
export const DANGLING_ROUTE = `
kind: Route
metadata: { name: ${DANGLING_ROUTE_NAME} }
spec: { match: { service: not-deployed }, cluster: no-such-cluster }
`;
export const DANGLING_ROUTE_ERROR = /no cluster named "no-such-cluster"/;
