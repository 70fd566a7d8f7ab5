/**
 * The processes a bench run measures: one echo server, and the sidecars each scenario needs.
 * Every scenario gets its own sidecars so no scenario warms or pollutes another's process.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startNode, startRemora, type Proc } from '../lib/processes.js';

export const SCENARIOS = ['direct', 'one-hop', 'two-hop'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const HOPS: Readonly<Record<ScenarioName, number>> = { direct: 0, 'one-hop': 1, 'two-hop': 2 };

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

async function writeConfig(file: string, cluster: string, endpointPort: number): Promise<void> {
  const yaml = [
    'clusters:',
    `  - name: ${cluster}`,
    '    endpoints:',
    `      - { address: 127.0.0.1, port: ${endpointPort} }`,
    '',
  ].join('\n');
  await writeFile(file, yaml);
}

interface StartedSidecar extends SidecarProc {
  readonly outboundPort: number;
  readonly inboundPort: number;
}

async function startSidecar(
  opts: TopologyOptions,
  role: string,
  service: string,
  appPort: number,
  clusterPort: number,
): Promise<StartedSidecar> {
  const config = path.join(opts.workDir, `${role}.yaml`);
  await writeConfig(config, opts.cluster, clusterPort);
  const [outboundPort, inboundPort, adminPort, statsPort] = [await port(), await port(), await port(), await port()];
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
  ];
  const nodeArgs = opts.cpuProfDir
    ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir, '--cpu-prof-name', `sidecar-${role}.cpuprofile`]
    : [];
  const env = { REMORA_LOG_LEVEL: opts.sidecarLogLevel };
  const waitPorts = [outboundPort, inboundPort];
  const proc = opts.sidecarScript
    ? await startNode(opts.sidecarScript, args, { nodeArgs, env, waitPorts })
    : await startRemora(['sidecar', ...args], { nodeArgs, env, waitPorts });
  return { role, proc, outboundPort, inboundPort };
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
    for (const scenario of opts.scenarios) {
      if (scenario === 'direct') {
        targets.set(scenario, { scenario, port: echoPort, sidecars: [] });
      } else if (scenario === 'one-hop') {
        const a = track(await startSidecar(opts, 'one-hop', 'bench-client', echoPort, echoPort));
        targets.set(scenario, { scenario, port: a.outboundPort, sidecars: [a] });
      } else {
        // B fronts the echo server (inbound → app); A's cluster points at B's inbound listener.
        const b = track(await startSidecar(opts, 'two-hop-b', opts.cluster, echoPort, echoPort));
        const a = track(await startSidecar(opts, 'two-hop-a', 'bench-client', await port(), b.inboundPort));
        targets.set(scenario, { scenario, port: a.outboundPort, sidecars: [a, b] });
      }
    }
    return { echo, targets, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
