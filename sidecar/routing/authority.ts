/**
 * Parses `:authority` into the service it names. Accepted forms, as Kubernetes DNS gives them:
 * `svc`, `svc:port`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local` (any port).
 */
export interface ServiceName {
  readonly service: string;
  readonly namespace: string | undefined;
}

export function parseAuthority(authority: string): ServiceName | undefined {
  let host = authority;
  if (host.startsWith('[')) return undefined; // IPv6 literal: names no service
  const colon = host.lastIndexOf(':');
  if (colon !== -1) host = host.slice(0, colon);
  if (host.length === 0) return undefined;
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  const labels = host.split('.');
  if (labels.every((l) => /^\d+$/.test(l))) return undefined; // IPv4 literal
  const service = labels[0]!;
  if (labels.length === 1) return { service, namespace: undefined };
  // svc.ns[.svc[.cluster.local]]: anything after the namespace must be the cluster DNS suffix.
  if (labels.length > 2 && labels[2] !== 'svc') return undefined;
  return { service, namespace: labels[1] };
}
