/**
 * The processes a bench run measures: one echo server, and the proxies each scenario needs
 * (remora sidecars, or nginx and HAProxy as references). Every scenario gets its own proxies so
 * no scenario warms or pollutes another's process.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startNode, startRemora, type Proc } from '../lib/processes.js';
import { ROOT_NAMESPACE } from '../control-plane/resources/mtls-mode.js';
import type { MtlsMode } from '../control-plane/resources/types.js';
import { ECHO_SERVICE } from './echo-service.js';
import { BENCH_NAMESPACE, verifyMtlsPair, writeBenchPki, type BenchPki, type MtlsPair, type WorkloadFiles } from './mtls.js';
import {
  findProxyBinary,
  requireProxyBinary,
  startReferenceProxy,
  verifyReferencePair,
  type ReferenceProxy,
} from './reference-proxies.js';

export const SCENARIOS = [
  'direct',
  'one-hop',
  'two-hop',
  'two-hop-mtls',
  'two-hop-mtls-full',
  'two-hop-nginx',
  'two-hop-nginx-mtls',
  'two-hop-haproxy',
  'two-hop-haproxy-mtls',
  'one-hop-baseline',
  'two-hop-baseline',
] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const HOPS: Readonly<Record<ScenarioName, number>> = {
  direct: 0,
  'one-hop': 1,
  'two-hop': 2,
  'two-hop-mtls': 2,
  'two-hop-mtls-full': 2,
  'two-hop-nginx': 2,
  'two-hop-nginx-mtls': 2,
  'two-hop-haproxy': 2,
  'two-hop-haproxy-mtls': 2,
  'one-hop-baseline': 1,
  'two-hop-baseline': 2,
};

/**
 * Scenarios run by bench/baseline-proxy.ts in place of the sidecars: the least a node:http2
 * pass-through does, so the run shows what node:http2 itself costs next to what the sidecar does.
 */
export const BASELINE_SCENARIOS: readonly ScenarioName[] = ['one-hop-baseline', 'two-hop-baseline'];

/**
 * Scenarios whose remora sidecars run with certificates: only `remora sidecar` knows those flags,
 * so a --sidecar-script cannot run them. The reference proxies' mTLS scenarios are not here: they
 * run no sidecar at all, so --sidecar-script does not touch them.
 */
export const MTLS_SCENARIOS: readonly ScenarioName[] = ['two-hop-mtls', 'two-hop-mtls-full'];

/**
 * The same topology with less switched on: the report sets each scenario against it (mTLS against
 * plaintext; all features against mTLS alone).
 */
export const PLAINTEXT_TWIN: Readonly<Partial<Record<ScenarioName, ScenarioName>>> = {
  'two-hop-mtls': 'two-hop',
  'two-hop-mtls-full': 'two-hop-mtls',
  'two-hop-nginx-mtls': 'two-hop-nginx',
  'two-hop-haproxy-mtls': 'two-hop-haproxy',
};

/** Scenarios run by another proxy in place of the sidecars, as a reference: which, and whether A → B is mTLS. */
export const REFERENCE_SCENARIOS: Readonly<Partial<Record<ScenarioName, { readonly proxy: ReferenceProxy; readonly mtls: boolean }>>> = {
  'two-hop-nginx': { proxy: 'nginx', mtls: false },
  'two-hop-nginx-mtls': { proxy: 'nginx', mtls: true },
  'two-hop-haproxy': { proxy: 'haproxy', mtls: false },
  'two-hop-haproxy-mtls': { proxy: 'haproxy', mtls: true },
};

/** Every scenario this machine can run: the reference ones only when their proxy's binary is found. */
export function availableScenarios(env: NodeJS.ProcessEnv = process.env): ScenarioName[] {
  return SCENARIOS.filter((s) => {
    const ref = REFERENCE_SCENARIOS[s];
    return ref === undefined || findProxyBinary(ref.proxy, env) !== undefined;
  });
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const ECHO_SERVER_SCRIPT = path.join(here, 'echo-server.js');
export const BASELINE_PROXY_SCRIPT = path.join(here, 'baseline-proxy.js');

export interface SidecarProc {
  /** e.g. `one-hop`, `two-hop-a`, `two-hop-nginx-b`; also the --cpu-prof file name (sidecars only). */
  readonly role: string;
  readonly proc: Proc;
}

export interface Target {
  readonly scenario: ScenarioName;
  readonly port: number;
  /** The proxies in request order (sidecars, or nginx/HAProxy): the first is the one the load generator talks to. */
  readonly sidecars: readonly SidecarProc[];
  /**
   * Throws unless the scenario measures what it says (for the mTLS ones: that the hop between the
   * proxies is mTLS and plaintext is refused). Run before the first round and after every run.
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

/** Every port is reserved for the whole run (lib/free-port.ts), so none is handed out twice. */
const port = freePort;

/** A sidecar with a certificate: who it is, whom its cluster's endpoint must be, its inbound mode. */
interface SidecarTls {
  readonly own: WorkloadFiles;
  /** SPIFFE ID the cluster's endpoint must present: the endpoint is dialled with mTLS. */
  readonly upstreamIdentity?: string;
  /** Mesh-wide mTLS mode for this sidecar's inbound listener (a `security.mtls` rule). */
  readonly inboundMode?: MtlsMode;
}

/** More of the static config than clusters and the mTLS mode: the all-features scenario's policies. */
interface SidecarFeatures {
  /** YAML lines added to the cluster entry (its policy blocks). */
  readonly clusterPolicy?: readonly string[];
  /** YAML lines of the `routes:` list. */
  readonly routes?: readonly string[];
  /** YAML lines of the `security.authorization:` list. */
  readonly authorization?: readonly string[];
  /** Flags for `remora sidecar` beyond the topology's. */
  readonly args?: readonly string[];
}

async function writeConfig(file: string, cluster: string, endpointPort: number, tls?: SidecarTls, features?: SidecarFeatures): Promise<void> {
  const identity = tls?.upstreamIdentity ? `, identity: "${tls.upstreamIdentity}"` : '';
  const mtls = tls?.inboundMode ? ['  mtls:', `    - { namespace: ${ROOT_NAMESPACE}, mode: ${tls.inboundMode} }`] : [];
  const authorization = features?.authorization ? ['  authorization:', ...features.authorization] : [];
  const yaml = [
    'clusters:',
    `  - name: ${cluster}`,
    '    endpoints:',
    `      - { address: 127.0.0.1, port: ${endpointPort}${identity} }`,
    ...(features?.clusterPolicy ?? []),
    ...(features?.routes ? ['routes:', ...features.routes] : []),
    ...(mtls.length || authorization.length ? ['security:', ...mtls, ...authorization] : []),
    '',
  ].join('\n');
  await writeFile(file, yaml);
}

/**
 * `two-hop-mtls-full`: what a production mesh would switch on, with thresholds no healthy run
 * reaches (so every call pays for the checks and none is refused). Client side: a route with a
 * timeout and budgeted retries on UNAVAILABLE, circuit breakers and outlier detection on the cluster.
 */
function fullClientFeatures(cluster: string): SidecarFeatures {
  return {
    clusterPolicy: [
      '    circuitBreakers: { maxConnections: 64, maxPendingRequests: 10000, maxRequests: 10000, maxRetries: 64 }',
      '    outlierDetection: { consecutiveFailures: 5, baseEjectionMs: 30000, maxEjectionMs: 300000, maxEjectionPercent: 50, statusCodes: [UNAVAILABLE, INTERNAL] }',
    ],
    routes: [
      `  - name: ${cluster}`,
      `    match: { service: ${cluster} }`,
      `    cluster: ${cluster}`,
      '    timeoutMs: 10000',
      '    retries: { maxAttempts: 3, retryOn: [UNAVAILABLE], backoffBaseMs: 25, backoffMaxMs: 250, budgetPercent: 20, minRetriesPerSecond: 10 }',
    ],
    args: ['--metrics', '--access-log=false'],
  };
}

/** Server side: an ALLOW policy naming the client's identity, so every call is checked and allowed. */
function fullServerFeatures(service: string, client: string): SidecarFeatures {
  return {
    authorization: [
      '    - name: bench-callers',
      `      namespace: ${BENCH_NAMESPACE}`,
      `      service: ${service}`,
      '      action: ALLOW',
      `      rules: [{ from: ["${client}"], methods: ["/${ECHO_SERVICE}/*"] }]`,
    ],
    args: ['--metrics', '--access-log=false'],
  };
}

interface StartedSidecar extends SidecarProc {
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly adminPort: number;
  readonly statsPort: number;
}

async function startSidecar(
  opts: TopologyOptions,
  role: string,
  service: string,
  appPort: number,
  clusterPort: number,
  tls?: SidecarTls,
  features?: SidecarFeatures,
  script = opts.sidecarScript,
): Promise<StartedSidecar> {
  const config = path.join(opts.workDir, `${role}.yaml`);
  await writeConfig(config, opts.cluster, clusterPort, tls, features);
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
    ...(features?.args ?? []),
  ];
  const nodeArgs = opts.cpuProfDir
    ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir, '--cpu-prof-name', `sidecar-${role}.cpuprofile`]
    : [];
  const env = { REMORA_LOG_LEVEL: opts.sidecarLogLevel };
  const waitPorts = [outboundPort, inboundPort];
  const proc = script
    ? await startNode(script, args, { nodeArgs, env, waitPorts })
    : await startRemora(['sidecar', ...args], { nodeArgs, env, waitPorts });
  return { role, proc, outboundPort, inboundPort, adminPort, statsPort };
}

interface ConfigDump {
  readonly clusters?: readonly { readonly name: string; readonly circuitBreakers?: unknown; readonly outlierDetection?: unknown }[];
  readonly routes?: readonly { readonly match: { readonly service: string }; readonly timeoutMs?: number; readonly retries?: unknown }[];
  readonly security?: { readonly authorization: readonly { readonly service: string; readonly action: string; readonly rules: readonly { readonly from: readonly string[] }[] }[] };
}

async function fetchText(port: number, urlPath: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, { signal: AbortSignal.timeout(5_000) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`GET 127.0.0.1:${port}${urlPath}: HTTP ${res.status} ${body}`);
  return body;
}

/**
 * verifyMtlsPair, then that every feature the scenario claims is live: A's route has its timeout
 * and retries and its cluster its breakers and outlier detection, B has the ALLOW policy for A's
 * identity, both count calls in /metrics (the pair's check call among them) and log no access.
 */
async function verifyFullFeatures(pair: MtlsPair, a: StartedSidecar, b: StartedSidecar): Promise<void> {
  await verifyMtlsPair(pair);
  const fail = (what: string): Error => new Error(`bench: ${pair.scenario} is not measuring all features: ${what}`);
  const dumpA = JSON.parse(await fetchText(a.adminPort, '/config_dump')) as ConfigDump;
  const route = dumpA.routes?.find((r) => r.match.service === pair.cluster);
  if (!route?.timeoutMs || !route.retries) throw fail(`${a.role} has no route for ${pair.cluster} with a timeout and retries`);
  const cluster = dumpA.clusters?.find((c) => c.name === pair.cluster);
  if (!cluster?.circuitBreakers || !cluster.outlierDetection) throw fail(`${a.role}'s cluster ${pair.cluster} lacks circuit breakers or outlier detection`);
  const dumpB = JSON.parse(await fetchText(b.adminPort, '/config_dump')) as ConfigDump;
  const allows = dumpB.security?.authorization.some(
    (p) => p.service === pair.cluster && p.action === 'ALLOW' && p.rules.some((r) => r.from.includes(pair.client.identity)),
  );
  if (!allows) throw fail(`${b.role} has no ALLOW policy for ${pair.client.identity}`);
  for (const s of [a, b]) {
    if (!(await fetchText(s.statsPort, '/metrics')).includes('remora_requests_total')) throw fail(`${s.role}'s /metrics counts no calls`);
    const logging = JSON.parse(await fetchText(s.adminPort, '/logging')) as { accessLog?: { enabled?: boolean } };
    if (logging.accessLog?.enabled !== false) throw fail(`${s.role}'s access log is not off: ${JSON.stringify(logging)}`);
  }
}

export async function startTopology(opts: TopologyOptions): Promise<Topology> {
  // A missing proxy binary fails the run before anything starts.
  for (const s of opts.scenarios) {
    const ref = REFERENCE_SCENARIOS[s];
    if (ref) requireProxyBinary(ref.proxy, s);
  }
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
    const needsPki = opts.scenarios.some((s) => MTLS_SCENARIOS.includes(s) || REFERENCE_SCENARIOS[s]?.mtls);
    const pki = needsPki ? await writeBenchPki(opts.workDir) : undefined;

    /** B fronts the echo server (inbound → app); A's cluster points at B's inbound listener, with mTLS when `mtls`. */
    const startRemoraPair = async (scenario: ScenarioName, mtls: boolean, full: boolean, script = opts.sidecarScript): Promise<void> => {
      if (!mtls) {
        const b = track(await startSidecar(opts, `${scenario}-b`, opts.cluster, echoPort, echoPort, undefined, undefined, script));
        const a = track(await startSidecar(opts, `${scenario}-a`, 'bench-client', await port(), b.inboundPort, undefined, undefined, script));
        targets.set(scenario, { scenario, port: a.outboundPort, sidecars: [a, b] });
        return;
      }
      // A dials B with mTLS (B's identity named on the endpoint) and B, STRICT, refuses plaintext.
      // Each holds a certificate from the bench's own root.
      const { client, server } = pki!;
      const serverFeatures = full ? fullServerFeatures(opts.cluster, client.spiffeId) : undefined;
      const b = track(await startSidecar(opts, `${scenario}-b`, opts.cluster, echoPort, echoPort, {
        own: server,
        inboundMode: opts.serverMtlsMode ?? 'STRICT',
      }, serverFeatures));
      const a = track(await startSidecar(opts, `${scenario}-a`, 'bench-client', await port(), b.inboundPort, {
        own: client,
        upstreamIdentity: server.spiffeId,
      }, full ? fullClientFeatures(opts.cluster) : undefined));
      const pair: MtlsPair = {
        scenario,
        cluster: opts.cluster,
        client: { role: a.role, adminPort: a.adminPort, outboundPort: a.outboundPort, identity: client.spiffeId },
        server: { role: b.role, adminPort: b.adminPort, inboundPort: b.inboundPort, identity: server.spiffeId },
      };
      const verify = full ? () => verifyFullFeatures(pair, a, b) : () => verifyMtlsPair(pair);
      targets.set(scenario, { scenario, port: a.outboundPort, sidecars: [a, b], verify });
    };

    /** The same two hops through nginx or HAProxy: h2c in and out, mTLS between A and B when `mtls`. */
    const startReferencePair = async (scenario: ScenarioName, proxy: ReferenceProxy, mtls: boolean): Promise<void> => {
      const tls: BenchPki | undefined = mtls ? pki : undefined;
      const [aPort, bPort] = [await port(), await port()];
      const b = await startReferenceProxy(proxy, `${scenario}-b`, { listenPort: bPort, upstreamPort: echoPort, serverTls: tls?.server }, opts.workDir, scenario);
      started.push(b);
      const upstreamTls = tls ? { ...tls.client, serverName: tls.serverName } : undefined;
      const a = await startReferenceProxy(proxy, `${scenario}-a`, { listenPort: aPort, upstreamPort: bPort, upstreamTls }, opts.workDir, scenario);
      started.push(a);
      const verify = (): Promise<void> => verifyReferencePair({ scenario, authority: opts.cluster, entryPort: aPort, serverPort: bPort, pki: tls });
      targets.set(scenario, { scenario, port: aPort, sidecars: [{ role: `${scenario}-a`, proc: a }, { role: `${scenario}-b`, proc: b }], verify });
    };

    for (const scenario of opts.scenarios) {
      const ref = REFERENCE_SCENARIOS[scenario];
      if (scenario === 'direct') {
        targets.set(scenario, { scenario, port: echoPort, sidecars: [] });
      } else if (scenario === 'one-hop' || scenario === 'one-hop-baseline') {
        const script = scenario === 'one-hop' ? opts.sidecarScript : BASELINE_PROXY_SCRIPT;
        const a = track(await startSidecar(opts, scenario, 'bench-client', echoPort, echoPort, undefined, undefined, script));
        targets.set(scenario, { scenario, port: a.outboundPort, sidecars: [a] });
      } else if (scenario === 'two-hop-baseline') {
        await startRemoraPair(scenario, false, false, BASELINE_PROXY_SCRIPT);
      } else if (ref) {
        await startReferencePair(scenario, ref.proxy, ref.mtls);
      } else {
        await startRemoraPair(scenario, MTLS_SCENARIOS.includes(scenario), scenario === 'two-hop-mtls-full');
      }
    }
    return { echo, targets, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
