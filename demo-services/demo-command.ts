/**
 * `remora demo`: the whole mesh on this machine as local processes. etcd, a control-plane replica,
 * three services with a sidecar each (registered and configured through the control plane), and
 * the demo client sending orders through the orders sidecar. `--static` gives the sidecars a static
 * config file instead of the control plane; `--direct` skips the sidecars (catalog and inventory
 * then share one process so orders has a single upstream).
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from '../cli/flags.js';
import { startRemora, type Proc } from '../lib/processes.js';
import { startEtcd, type EtcdHandle } from '../lib/etcd-process.js';
import {
  allPorts,
  fixedLayout,
  freeLayout,
  HIGHEST_OFFSET,
  LOOPBACK,
  meshConfigYaml,
  meshPlan,
  type MeshLayout,
  type SidecarSource,
} from './mesh-layout.js';
import { SCENARIOS } from './traffic.js';

const SUMMARY = 'Run the demo shop (catalog, inventory, orders), a sidecar per service and a traffic client, locally.';

const flags = {
  'base-port': { type: 'int', help: 'ports are base+10.. (catalog), base+20.. (inventory), base+30.. (orders); 0 = any free ports', default: 16000 },
  'duration-s': { type: 'int', help: 'stop everything after this many seconds (0 = until Ctrl-C)', default: 0 },
  rps: { type: 'int', help: 'demo client calls per second', default: 5 },
  scenario: { type: 'string', help: `demo client traffic: ${SCENARIOS.join(', ')}`, default: 'orders' },
  'no-client': { type: 'bool', help: 'start the mesh only, no demo client' },
  direct: { type: 'bool', help: 'no sidecars: orders calls a process serving catalog and inventory directly' },
  static: { type: 'bool', help: 'sidecars read a static config file: no etcd, no control plane' },
} as const satisfies FlagDefs;

interface Child {
  readonly label: string;
  readonly proc: Proc;
  readonly listening: string;
  /** Absent when the child writes to our own stdout. */
  readonly log?: WriteStream;
  readonly logPath?: string;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, LOOPBACK, () => srv.close(() => resolve(true)));
  });
}

function validate(f: { 'base-port': number; 'duration-s': number; rps: number; scenario: string }): void {
  const base = f['base-port'];
  if (base !== 0 && (base < 1024 || base + HIGHEST_OFFSET > 65535)) {
    throw new UsageError(`--base-port must be 0 or 1024..${65535 - HIGHEST_OFFSET}, got ${base}`);
  }
  if (f['duration-s'] < 0) throw new UsageError(`--duration-s must be >= 0, got ${f['duration-s']}`);
  if (f.rps < 1) throw new UsageError(`--rps must be >= 1, got ${f.rps}`);
  if (!(SCENARIOS as readonly string[]).includes(f.scenario)) {
    throw new UsageError(`--scenario must be one of ${SCENARIOS.join(', ')}, got ${JSON.stringify(f.scenario)}`);
  }
}

/** Polls `check` (errors count as "not yet") for up to 20 s. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`remora demo: timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function table(children: readonly Child[]): string {
  const rows = [['PROCESS', 'PID', 'LISTENING'], ...children.map((c) => [c.label, String(c.proc.pid), c.listening])];
  const widths = [0, 1].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => `  ${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padEnd(widths[1]!)}  ${r[2]}`).join('\n');
}

function hints(layout: MeshLayout, entry: number, direct: boolean, dir: string, etcdEndpoint?: string): string {
  const lines = [
    `  remora demo-client --target ${LOOPBACK}:${entry} --authority orders --count 20`,
    `  remora demo-client --target ${LOOPBACK}:${entry} --scenario ${direct ? 'orders' : 'mixed'} --duration-s 10`,
  ];
  if (!direct) {
    lines.push(
      `  curl -s http://${LOOPBACK}:${layout.orders.admin}/config_dump`,
      `  curl -s http://${LOOPBACK}:${layout.orders.stats}/healthz/ready`,
      `  curl -s http://${LOOPBACK}:${layout.orders.admin}/clusters`,
    );
  }
  if (etcdEndpoint) {
    lines.push(
      `  export REMORA_ETCD_ENDPOINTS=${etcdEndpoint}`,
      `  remora get instances -A                      # what registered through the control plane`,
      `  remora status                                # each sidecar's applied config version, last NACK`,
      `  remora ca status                             # the mesh CA's roots (every sidecar-to-sidecar call is mTLS)`,
      `  curl -s http://${LOOPBACK}:${layout.orders.admin}/certs      # the orders sidecar's SPIFFE certificate`,
      `  grpcurl -plaintext ${LOOPBACK}:${layout.catalog.inbound} list   # refused: the mesh is STRICT mTLS`,
      `  remora apply -f my-routes.yaml               # Route / Cluster resources, pushed in milliseconds`,
    );
  }
  lines.push(
    `  grpcurl -plaintext ${LOOPBACK}:${layout.catalog.app} list        # reflection, straight at a service`,
    `  tail -f ${dir}/*.log`,
  );
  return lines.join('\n');
}

/** A random CA-key passphrase and bootstrap token in the demo's private directory. */
async function writeDemoSecrets(dir: string): Promise<{ passphraseFile: string; tokensFile: string; tokenFile: string }> {
  const files = { passphraseFile: path.join(dir, 'ca-passphrase'), tokensFile: path.join(dir, 'bootstrap-tokens'), tokenFile: path.join(dir, 'sidecar-token') };
  const token = randomBytes(24).toString('base64url');
  await writeFile(files.passphraseFile, randomBytes(24).toString('base64url'), { mode: 0o600 });
  await writeFile(files.tokensFile, `${token} *\n`, { mode: 0o600 });
  await writeFile(files.tokenFile, token, { mode: 0o600 });
  return files;
}

async function applyResources(etcdEndpoint: string, yaml: string): Promise<void> {
  const proc = await startRemora(['apply', '-f', '-', '--etcd-endpoints', etcdEndpoint], { stdin: yaml });
  const code = await proc.exited;
  if (code !== 0) throw new Error(`remora apply failed: ${proc.output()}`);
}

export const demoCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const parsed = parseCommand(flags, argv);
    if (parsed.help) {
      process.stdout.write(usage('demo', SUMMARY, flags) + '\n');
      return;
    }
    const f = parsed.flags;
    validate(f);
    const direct = f.direct;
    const layout = f['base-port'] === 0 ? await freeLayout() : fixedLayout(f['base-port']);
    if (f['base-port'] !== 0) {
      for (const port of allPorts(layout)) {
        if (!(await portFree(port))) throw new UsageError(`port ${port} is already in use; pick another --base-port (or 0 for any free ports)`);
      }
    }

    const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-demo-'));
    const configPath = path.join(dir, 'mesh.yaml');
    await writeFile(configPath, meshConfigYaml(layout));

    const children: Child[] = [];
    let stopping = false;
    let wake: () => void = () => {};
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const requestStop = () => {
      stopping = true;
      wake();
    };
    // First signal: orderly stop. Another while stopping: kill everything now rather than die and
    // leave the children behind.
    let signals = 0;
    const onSignal = () => {
      if (++signals === 1) return requestStop();
      process.stderr.write('remora demo: signalled again; killing every child now\n');
      for (const c of children) void c.proc.stop('SIGKILL');
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    const start = async (
      label: string,
      args: string[],
      waitPorts: number[],
      listening: string | ((proc: Proc) => string),
      inherit = false,
      portsFile = false,
    ): Promise<Child> => {
      const proc = await startRemora(args, { waitPorts, inherit, portsFile });
      let child: Child = { label, proc, listening: typeof listening === 'string' ? listening : listening(proc) };
      if (!inherit) {
        const logPath = path.join(dir, `${label}.log`);
        const log = createWriteStream(logPath);
        // Runs before any further output event can fire, so the file misses nothing said so far.
        log.write(proc.output());
        proc.child.stdout?.on('data', (b: Buffer) => log.write(b));
        proc.child.stderr?.on('data', (b: Buffer) => log.write(b));
        child = { ...child, log, logPath };
      }
      children.push(child);
      void proc.exited.then((code) => {
        if (stopping) return;
        if (label === 'demo-client') return requestStop();
        process.stderr.write(`remora demo: ${label} (pid ${proc.pid}) exited with ${code}; see ${child.logPath ?? 'the output above'}\n`);
      });
      return child;
    };

    const stopAll = async (): Promise<void> => {
      stopping = true;
      const tiers = [
        children.filter((c) => c.label === 'demo-client'),
        children.filter((c) => c.label.endsWith('-sidecar')),
        children.filter((c) => c.label !== 'demo-client' && !c.label.endsWith('-sidecar') && c.label !== 'control-plane'),
        // Last, so the sidecars could deregister through it while draining.
        children.filter((c) => c.label === 'control-plane'),
      ];
      // The client first so its summary reports the mesh still up; sidecars before apps so nothing
      // is routed to an app that is already gone.
      for (const tier of tiers) await Promise.all(tier.map((c) => c.proc.stop(c.label === 'demo-client' ? 'SIGINT' : 'SIGTERM')));
      await Promise.all(children.map((c) => new Promise<void>((resolve) => (c.log ? c.log.end(resolve) : resolve()))));
      await etcd?.stop();
    };

    let etcd: EtcdHandle | undefined;
    let source: SidecarSource = { config: configPath };
    let controlPlaneHttp = 0;
    try {
      if (!direct && !f.static) {
        const base = f['base-port'];
        etcd = await startEtcd(base === 0 ? {} : { clientPort: base + 1, peerPort: base + 2 });
        const secrets = await writeDemoSecrets(dir);
        // The whole mesh STRICT: every call between sidecars is mTLS, and plaintext is refused.
        await applyResources(etcd.endpoint, 'kind: MeshConfig\nmetadata: { name: mesh, namespace: remora-system }\nspec: { mtlsMode: STRICT }\n');
        const cp = await start(
          'control-plane',
          ['control-plane', '--etcd-endpoints', etcd.endpoint, '--address', LOOPBACK, '--port', String(base === 0 ? 0 : base + 3),
            '--http-port', String(base === 0 ? 0 : base + 4), '--tls-port', String(base === 0 ? 0 : base + 5), '--webhook-port', String(base === 0 ? 0 : base + 6), '--replica-id', 'demo-cp-0',
            '--ca', 'etcd', '--ca-key-passphrase-file', secrets.passphraseFile, '--bootstrap-token-file', secrets.tokensFile],
          [],
          (proc) => `discovery ${LOOPBACK}:${proc.ports.grpc}  TLS :${proc.ports.tls}  http :${proc.ports.http}  (etcd ${etcd!.endpoint})`,
          false,
          true,
        );
        controlPlaneHttp = cp.proc.ports.http!;
        await until('the control plane has loaded the mesh from etcd', async () => (await fetch(`http://${LOOPBACK}:${controlPlaneHttp}/healthz/ready`)).ok);
        // Sidecars talk to the control plane's TLS port, trusting the mesh roots it created.
        const rootsFile = path.join(dir, 'mesh-roots.pem');
        const bundle = await startRemora(['ca', 'bundle', '--etcd-endpoints', etcd.endpoint]);
        if ((await bundle.exited) !== 0) throw new Error(`remora ca bundle failed: ${bundle.output()}`);
        await writeFile(rootsFile, bundle.output());
        source = { controlPlane: `${LOOPBACK}:${cp.proc.ports.tls}`, tokenFile: secrets.tokenFile, caFile: rootsFile };
      }
    } catch (err) {
      await stopAll();
      throw err;
    }

    const plan = meshPlan(layout, source, direct);
    try {
      for (const spec of plan.processes) {
        if (stopping) break;
        await start(spec.label, spec.args, spec.waitPorts, spec.listening);
      }
      if (stopping) {
        await stopAll();
        return;
      }
      if ('controlPlane' in source) {
        // Every service registers through the control plane; wait until orders' sidecar can reach all three.
        await until('the orders sidecar has endpoints for every service', async () => {
          const cfg = (await (await fetch(`http://${LOOPBACK}:${layout.orders.admin}/config_dump`)).json()) as { clusters: { name: string; endpoints: unknown[] }[] };
          return cfg.clusters.filter((c) => c.endpoints.length > 0).length >= 3;
        });
        // And every sidecar holds its certificate (readiness includes it).
        for (const name of ['catalog', 'inventory', 'orders'] as const) {
          await until(`the ${name} sidecar is ready (certificate issued)`, async () => (await fetch(`http://${LOOPBACK}:${layout[name].stats}/healthz/ready`)).ok);
        }
      }

      const entry = plan.entryPort;
      process.stdout.write(
        `\nremora demo: the shop is up${direct ? ' (direct, no sidecars)' : ''}; config and logs in ${dir}\n\n` +
          `${table(children)}\n\n${controlPlaneHttp ? `Dashboard: http://${LOOPBACK}:${controlPlaneHttp}/   metrics: curl -s ${LOOPBACK}:${layout.orders.stats}/metrics\n\n` : ''}Try:\n${hints(layout, entry, direct, dir, etcd?.endpoint)}\n\nCtrl-C stops everything.\n\n`,
      );

      const duration = f['duration-s'];
      if (!f['no-client']) {
        const clientArgs = ['demo-client', '--target', `${LOOPBACK}:${entry}`, '--scenario', f.scenario, '--rps', String(f.rps)];
        clientArgs.push('--duration-s', String(duration), '--count', '0');
        if (f.scenario !== 'mixed') clientArgs.push('--authority', f.scenario);
        const c = await start('demo-client', clientArgs, [], `-> ${LOOPBACK}:${entry}`, true);
        process.stdout.write(`remora demo: demo-client pid ${c.proc.pid} sending ${f.scenario} traffic to ${LOOPBACK}:${entry}\n`);
      }
      // The client ends itself after the duration (and prints its summary); this timer is the backstop.
      const timer = duration > 0 ? setTimeout(requestStop, duration * 1000 + (f['no-client'] ? 0 : 5000)) : undefined;
      await woken;
      clearTimeout(timer);
      process.stdout.write('remora demo: stopping\n');
      await stopAll();
      process.stdout.write('remora demo: stopped\n');
    } catch (err) {
      await stopAll();
      throw err;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
