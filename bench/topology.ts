/**
 * The processes a bench run measures: one echo server, and the sidecars each scenario needs.
 * Every scenario gets its own sidecars so no scenario warms or pollutes another's process.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startNode, startRemora, type Proc } from '../lib/processes.js';
import { ROOT_NAMESPACE } from '../control-plane/resources/mtls-mode.js';
import type { MtlsMode } from '../control-plane/resources/types.js';
import { verifyMtlsPair, writeBenchPki, type WorkloadFiles } from './mtls.js';

export const SCENARIOS = ['direct', 'one-hop', 'two-hop', 'two-hop-mtls'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const HOPS: Readonly<Record<ScenarioName, number>> = { direct: 0, 'one-hop': 1, 'two-hop': 2, 'two-hop-mtls': 2 };

/** Scenarios whose sidecars run with certificates: only `remora sidecar` knows those flags. */
export const MTLS_SCENARIOS: readonly ScenarioName[] = ['two-hop-mtls'];

/** The same topology without mTLS: the report sets each mTLS scenario against it. */
export const PLAINTEXT_TWIN: Readonly<Partial<Record<ScenarioName, ScenarioName>>> = { 'two-hop-mtls': 'two-hop' };

const here = path.dirname(fileURLToPath(import.meta.url));
export const ECHO_SERVER_SCRIPT = path.join(here, 'echo-server.js');

export interface SidecarProc {
  /** e.g. `one-hop`, `two-hop-a`; also the --cpu-prof file name. */
  readonly role: string;
  readonly proc: Proc;
}

export interface Target {
  readonly scenario: ScenarioName;
  readonly port: number;
  /** In request order: the first is the one the load generator talks to. */
  readonly sidecars: readonly SidecarProc[];
  /**
   * Throws unless the scenario measures what it says (for `two-hop-mtls`: that the hop between the
   * sidecars is mTLS and plaintext is refused). Run before the first round and after every run.
   */
  readonly verify?: () => Promise<void>;
}

export interface Topology {
  readonly echo: Proc;
  readonly targets: ReadonlyMap<ScenarioName, Target>;
  /** Stops every process by PID; safe to call more than once. */
  stop(): Promise<void>;
}

export interface TopologyOptions {
  readonly scenarios: readonly ScenarioName[];
  /** Where sidecar config files go (a temp dir the caller removes). */
  readonly workDir: string;
  /** Cluster name the load generator's authority routes to. */
  readonly cluster: string;
  readonly cpuProfDir?: string;
  /** Run this node script instead of `remora sidecar`, with the same flags (e.g. a baseline proxy). */
  readonly sidecarScript?: string;
  readonly sidecarLogLevel: string;
  /**
   * mTLS mode of the server sidecar in `two-hop-mtls` (default STRICT, so the pair cannot fall
   * back to plaintext). Anything else makes Target.verify fail: only for testing that check.
   */
  readonly serverMtlsMode?: MtlsMode;
}

const usedPorts = new Set<number>();
/** freePort, but never the same port twice in one run (the kernel may hand a closed port out again). */
async function port(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = await freePort();
    if (!usedPorts.has(p)) {
      usedPorts.add(p);
      return p;
    }
  }
  throw new Error('could not find a free port');
}

/** A sidecar with a certificate: who it is, whom its cluster's endpoint must be, its inbound mode. */
interface SidecarTls {
  readonly own: WorkloadFiles;
  /** SPIFFE ID the cluster's endpoint must present: the endpoint is dialled with mTLS. */
  readonly upstreamIdentity?: string;
  /** Mesh-wide mTLS mode for this sidecar's inbound listener (a `security.mtls` rule). */
  readonly inboundMode?: MtlsMode;
}

async function writeConfig(file: string, cluster: string, endpointPort: number, tls?: SidecarTls): Promise<void> {
  const identity = tls?.upstreamIdentity ? `, identity: "${tls.upstreamIdentity}"` : '';
  const yaml = [
    'clusters:',
    `  - name: ${cluster}`,
    '    endpoints:',
    `      - { address: 127.0.0.1, port: ${endpointPort}${identity} }`,
    ...(tls?.inboundMode ? ['security:', '  mtls:', `    - { namespace: ${ROOT_NAMESPACE}, mode: ${tls.inboundMode} }`] : []),
    '',
  ].join('\n');
  await writeFile(file, yaml);
}

interface StartedSidecar extends SidecarProc {
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly adminPort: number;
}

async function startSidecar(
  opts: TopologyOptions,
  role: string,
  service: string,
  appPort: number,
  clusterPort: number,
  tls?: SidecarTls,
): Promise<StartedSidecar> {
  const config = path.join(opts.workDir, `${role}.yaml`);
  await writeConfig(config, opts.cluster, clusterPort, tls);
  const [outboundPort, inboundPort, adminPort, statsPort] = [await port(), await port(), await port(), await port()];
  const tlsArgs = tls
    ? [
        '--service-account', tls.own.serviceAccount,
        '--cert-file', tls.own.certFile,
        '--key-file', tls.own.keyFile,
        '--trust-bundle-file', tls.own.trustBundleFile,
      ]
    : [];
  const args = [
    '--config', config,
    '--service', service,
    '--app-port', String(appPort),
    '--app-address', '127.0.0.1',
    '--outbound-address', '127.0.0.1',
    '--outbound-port', String(outboundPort),
    '--inbound-address', '127.0.0.1',
    '--inbound-port', String(inboundPort),
    '--admin-port', String(adminPort),
    '--stats-port', String(statsPort),
    ...tlsArgs,
  ];
  const nodeArgs = opts.cpuProfDir
    ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir, '--cpu-prof-name', `sidecar-${role}.cpuprofile`]
    : [];
  const env = { REMORA_LOG_LEVEL: opts.sidecarLogLevel };
  const waitPorts = [outboundPort, inboundPort];
  const proc = opts.sidecarScript
    ? await startNode(opts.sidecarScript, args, { nodeArgs, env, waitPorts })
    : await startRemora(['sidecar', ...args], { nodeArgs, env, waitPorts });
  return { role, proc, outboundPort, inboundPort, adminPort };
}

export async function startTopology(opts: TopologyOptions): Promise<Topology> {
  const started: Proc[] = [];
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    // Sidecars get a long grace period: with --cpu-prof they write the profile on exit.
    stopping ??= Promise.all(started.map((p) => p.stop('SIGTERM', 10_000))).then(() => undefined);
    return stopping;
  };
  try {
    const echoPort = await port();
    const echo = await startNode(ECHO_SERVER_SCRIPT, ['--port', String(echoPort)], { waitPorts: [echoPort] });
    started.push(echo);
    const targets = new Map<ScenarioName, Target>();
    const track = (s: StartedSidecar): StartedSidecar => {
      started.push(s.proc);
      return s;
    };
    const pki = opts.scenarios.some((s) => MTLS_SCENARIOS.includes(s)) ? await writeBenchPki(opts.workDir) : undefined;
    for (const scenario of opts.scenarios) {
      if (scenario === 'direct') {
        targets.set(scenario, { scenario, port: echoPort, sidecars: [] });
      } else if (scenario === 'one-hop') {
        const a = track(await startSidecar(opts, 'one-hop', 'bench-client', echoPort, echoPort));
        targets.set(scenario, { scenario, port: a.outboundPort, sidecars: [a] });
      } else if (scenario === 'two-hop') {
        // B fronts the echo server (inbound → app); A's cluster points at B's inbound listener.
        const b = track(await startSidecar(opts, 'two-hop-b', opts.cluster, echoPort, echoPort));
        const a = track(await startSidecar(opts, 'two-hop-a', 'bench-client', await port(), b.inboundPort));
        targets.set(scenario, { scenario, port: a.outboundPort, sidecars: [a, b] });
      } else {
        // As two-hop, but A dials B with mTLS (B's identity named on the endpoint) and B, STRICT,
        // refuses plaintext. Each holds a certificate from the bench's own root.
        const { client, server } = pki!;
        const b = track(await startSidecar(opts, `${scenario}-b`, opts.cluster, echoPort, echoPort, {
          own: server,
          inboundMode: opts.serverMtlsMode ?? 'STRICT',
        }));
        const a = track(await startSidecar(opts, `${scenario}-a`, 'bench-client', await port(), b.inboundPort, {
          own: client,
          upstreamIdentity: server.spiffeId,
        }));
        const pair = {
          scenario,
          cluster: opts.cluster,
          client: { role: a.role, adminPort: a.adminPort, outboundPort: a.outboundPort, identity: client.spiffeId },
          server: { role: b.role, adminPort: b.adminPort, inboundPort: b.inboundPort, identity: server.spiffeId },
        };
        targets.set(scenario, { scenario, port: a.outboundPort, sidecars: [a, b], verify: () => verifyMtlsPair(pair) });
      }
    }
    return { echo, targets, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
