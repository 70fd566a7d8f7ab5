/**
 * The nat-table rules that make interception transparent, as the init container installs them in
 * the pod's network namespace: outbound TCP from the app goes to the sidecar's outbound listener
 * (15001), inbound TCP to the pod goes to its inbound listener (15006). Not redirected: the
 * sidecar's own traffic (its uid), loopback, and the ports and addresses the pod's annotations
 * exclude. The sidecar then routes what it receives by the HTTP/2 :authority, so an app dialling
 * `inventory:50051` is in the mesh without knowing it.
 *
 * Built as iptables-restore input (one atomic change); the jumps from PREROUTING and OUTPUT are
 * added separately only when missing, so running it twice changes nothing.
 */
export interface InterceptionOptions {
  readonly proxyUid: number;
  readonly proxyGid?: number;
  readonly outboundPort: number;
  readonly inboundPort: number;
  /** Inbound ports left alone (the sidecar's stats/health port, app ports probed directly...). */
  readonly excludeInboundPorts: readonly number[];
  readonly excludeOutboundPorts: readonly number[];
  /** CIDRs the app reaches directly (e.g. the Kubernetes API, metadata servers). */
  readonly excludeOutboundCidrs: readonly string[];
  /** Redirect inbound traffic too (default true). */
  readonly inbound: boolean;
}

export const CHAINS = { inbound: 'REMORA_INBOUND', inRedirect: 'REMORA_IN_REDIRECT', output: 'REMORA_OUTPUT', redirect: 'REMORA_REDIRECT' } as const;

/** The jumps into our chains: [built-in chain, rule] pairs, each added only if missing. */
export function jumps(opts: InterceptionOptions): [string, string][] {
  const list: [string, string][] = [['OUTPUT', `-p tcp -j ${CHAINS.output}`]];
  if (opts.inbound) list.unshift(['PREROUTING', `-p tcp -j ${CHAINS.inbound}`]);
  return list;
}

export function restoreInput(opts: InterceptionOptions): string {
  const gid = opts.proxyGid ?? opts.proxyUid;
  const lines = ['*nat'];
  // Declaring a chain in iptables-restore creates it, or flushes it if it exists: rerunnable.
  for (const c of Object.values(CHAINS)) lines.push(`:${c} - [0:0]`);
  lines.push(`-A ${CHAINS.redirect} -p tcp -j REDIRECT --to-ports ${opts.outboundPort}`);
  lines.push(`-A ${CHAINS.inRedirect} -p tcp -j REDIRECT --to-ports ${opts.inboundPort}`);
  if (opts.inbound) {
    for (const p of [...new Set([opts.inboundPort, ...opts.excludeInboundPorts])]) lines.push(`-A ${CHAINS.inbound} -p tcp --dport ${p} -j RETURN`);
    lines.push(`-A ${CHAINS.inbound} -p tcp -j ${CHAINS.inRedirect}`);
  }
  // The sidecar's own connections (to peers and to the local app) are never redirected.
  lines.push(`-A ${CHAINS.output} -m owner --uid-owner ${opts.proxyUid} -j RETURN`);
  lines.push(`-A ${CHAINS.output} -m owner --gid-owner ${gid} -j RETURN`);
  lines.push(`-A ${CHAINS.output} -o lo -j RETURN`);
  lines.push(`-A ${CHAINS.output} -d 127.0.0.0/8 -j RETURN`);
  for (const p of opts.excludeOutboundPorts) lines.push(`-A ${CHAINS.output} -p tcp --dport ${p} -j RETURN`);
  for (const cidr of opts.excludeOutboundCidrs) lines.push(`-A ${CHAINS.output} -d ${cidr} -j RETURN`);
  lines.push(`-A ${CHAINS.output} -j ${CHAINS.redirect}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

const CIDR = /^(\d{1,3}\.){3}\d{1,3}(\/(\d|[12]\d|3[0-2]))?$/;

/** Parses "a,b,c" port lists; throws naming the flag on anything that is not a port. */
export function parsePorts(flag: string, values: readonly string[]): number[] {
  return values.filter((v) => v !== '').map((v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`--${flag}: ${JSON.stringify(v)} is not a port (1-65535)`);
    return n;
  });
}

export function parseCidrs(flag: string, values: readonly string[]): string[] {
  return values.filter((v) => v !== '').map((v) => {
    if (!CIDR.test(v) || v.split('/')[0]!.split('.').some((o) => Number(o) > 255)) throw new Error(`--${flag}: ${JSON.stringify(v)} is not an IPv4 address or CIDR`);
    return v;
  });
}
