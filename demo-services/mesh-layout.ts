/**
 * Where `remora demo` puts everything: ports per service and sidecar, the static sidecar config that
 * wires them together, and the command lines. Pure functions, so tests can check the wiring
 * without starting a mesh.
 */
import { stringify } from 'yaml';
import { freePort } from '../lib/processes.js';
import { SERVICE_NAMES, type ServiceName } from './services.js';

export const LOOPBACK = '127.0.0.1';

export interface ServicePorts {
  readonly app: number;
  readonly outbound: number;
  readonly inbound: number;
  readonly admin: number;
  readonly stats: number;
}

export type MeshLayout = Readonly<Record<ServiceName, ServicePorts>>;

/** Ten ports per service from base+10: catalog 16010-16014, inventory 16020-16024, orders 16030-16034. */
export const PORT_STRIDE = 10;
export const HIGHEST_OFFSET = PORT_STRIDE * SERVICE_NAMES.length + 4;

export function fixedLayout(basePort: number): MeshLayout {
  const entries = SERVICE_NAMES.map((name, i) => {
    const p = basePort + PORT_STRIDE * (i + 1);
    return [name, { app: p, outbound: p + 1, inbound: p + 2, admin: p + 3, stats: p + 4 }] as const;
  });
  return Object.fromEntries(entries) as Record<ServiceName, ServicePorts>;
}

/** Kernel-chosen ports, for tests and CI where fixed ports may be taken. */
export async function freeLayout(): Promise<MeshLayout> {
  const out: Partial<Record<ServiceName, ServicePorts>> = {};
  const taken = new Set<number>();
  const next = async (): Promise<number> => {
    for (;;) {
      const p = await freePort(LOOPBACK);
      if (!taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
  };
  for (const name of SERVICE_NAMES) {
    out[name] = { app: await next(), outbound: await next(), inbound: await next(), admin: await next(), stats: await next() };
  }
  return out as Record<ServiceName, ServicePorts>;
}

export function allPorts(layout: MeshLayout): number[] {
  return SERVICE_NAMES.flatMap((n) => Object.values(layout[n]));
}

/** One config for every sidecar: each cluster is that service's sidecar INBOUND listener. */
export function meshConfig(layout: MeshLayout): {
  clusters: { name: string; endpoints: { address: string; port: number }[] }[];
  routes: { match: { service: string }; cluster: string }[];
} {
  return {
    clusters: SERVICE_NAMES.map((name) => ({ name, endpoints: [{ address: LOOPBACK, port: layout[name].inbound }] })),
    // Written out although they match the sidecar's default, so the file shows how routing is wired.
    routes: SERVICE_NAMES.map((name) => ({ match: { service: name }, cluster: name })),
  };
}

export function meshConfigYaml(layout: MeshLayout): string {
  return `# Written by \`remora demo\`: one static config shared by every sidecar.\n${stringify(meshConfig(layout))}`;
}

/** Services get less than startRemora's 5 s stop grace to drain, so they exit before being killed. */
const SERVICE_SHUTDOWN_MS = 2000;

function serviceArgs(names: string, port: number, instance: string, upstream?: number): string[] {
  const args = ['demo-service', '--name', names, '--address', LOOPBACK, '--port', String(port), '--instance', instance];
  args.push('--shutdown-timeout-ms', String(SERVICE_SHUTDOWN_MS));
  if (upstream !== undefined) args.push('--upstream', `${LOOPBACK}:${upstream}`);
  return args;
}

/** Where the demo's sidecars get their config: the control plane (default) or a static file. */
export type SidecarSource = { readonly controlPlane: string; readonly tokenFile?: string; readonly caFile?: string } | { readonly config: string };

export function sidecarArgs(name: ServiceName, layout: MeshLayout, source: SidecarSource): string[] {
  const p = layout[name];
  const from = 'controlPlane' in source
    ? ['--control-plane', source.controlPlane, '--instance-id', `${name}-0`, '--service-account', name, ...(source.tokenFile ? ['--ca-token-file', source.tokenFile] : []), ...(source.caFile ? ['--control-plane-ca-file', source.caFile] : [])]
    : ['--config', source.config];
  return [
    'sidecar',
    ...from,
    '--service', name,
    '--app-address', LOOPBACK,
    '--app-port', String(p.app),
    '--outbound-address', LOOPBACK,
    '--outbound-port', String(p.outbound),
    '--inbound-address', LOOPBACK,
    '--inbound-port', String(p.inbound),
    '--admin-port', String(p.admin),
    '--stats-port', String(p.stats),
  ];
}

/** One `remora` child of the demo, in start order. */
export interface ProcessSpec {
  readonly label: string;
  readonly args: string[];
  /** Ports that must accept connections before the next process starts. */
  readonly waitPorts: number[];
  /** For the table the demo prints. */
  readonly listening: string;
}

export interface MeshPlan {
  readonly processes: readonly ProcessSpec[];
  /** Where the demo client sends: the orders sidecar's outbound listener (or orders itself when direct). */
  readonly entryPort: number;
}

/**
 * Apps first, then sidecars (a sidecar's inbound side forwards to its app). orders calls through its
 * own sidecar's outbound listener. Direct: no sidecars, so orders needs catalog and inventory at ONE
 * address (it has one --upstream); they share a process on catalog's app port.
 */
export function meshPlan(layout: MeshLayout, source: SidecarSource, direct: boolean): MeshPlan {
  if (direct) {
    const shop = layout.catalog.app;
    return {
      entryPort: layout.orders.app,
      processes: [
        {
          label: 'catalog+inventory',
          args: serviceArgs('catalog,inventory', shop, 'shop-0'),
          waitPorts: [shop],
          listening: `app ${LOOPBACK}:${shop} (catalog and inventory)`,
        },
        {
          label: 'orders',
          args: serviceArgs('orders', layout.orders.app, 'orders-0', shop),
          waitPorts: [layout.orders.app],
          listening: `app ${LOOPBACK}:${layout.orders.app} -> ${LOOPBACK}:${shop}`,
        },
      ],
    };
  }
  const apps = SERVICE_NAMES.map((name): ProcessSpec => {
    const p = layout[name];
    const upstream = name === 'orders' ? p.outbound : undefined;
    return { label: name, args: serviceArgs(name, p.app, `${name}-0`, upstream), waitPorts: [p.app], listening: `app ${LOOPBACK}:${p.app}` };
  });
  const sidecars = SERVICE_NAMES.map((name): ProcessSpec => {
    const p = layout[name];
    return {
      label: `${name}-sidecar`,
      args: sidecarArgs(name, layout, source),
      waitPorts: [p.outbound, p.inbound],
      listening: `outbound :${p.outbound}  inbound :${p.inbound}  admin :${p.admin}  stats :${p.stats}`,
    };
  });
  return { entryPort: layout.orders.outbound, processes: [...apps, ...sidecars] };
}
