/**
 * Transparent interception with real iptables, in two network namespaces this test creates (a
 * "pod" and a "peer" joined by a veth pair): `remora init-iptables` installs the rules in the
 * pod's namespace, the sidecar runs there as uid 1337, and unmodified clients are redirected:
 *  - outbound: an app in the pod dials 10.77.0.2:50051, where nothing listens, with :authority
 *    catalog; the sidecar routes it by :authority to catalog in the peer namespace;
 *  - inbound: the peer dials the pod's app port; the call arrives through the sidecar's inbound
 *    listener (its metrics count it) before reaching the app.
 * Needs root, iproute2 and iptables (scripts/setup.sh installs them).
 */
import test from 'ava';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

const run = promisify(execFile);
const REMORA = path.resolve('dist/cli/remora.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Ns {
  readonly pod: string;
  readonly peer: string;
}

async function sh(cmd: string, args: string[]): Promise<string> {
  try {
    return (await run(cmd, args, { timeout: 20_000 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr || e.message}`);
  }
}

async function makeNamespaces(): Promise<Ns> {
  const id = randomBytes(3).toString('hex');
  const ns = { pod: `remora-pod-${id}`, peer: `remora-peer-${id}` };
  await sh('ip', ['netns', 'add', ns.pod]);
  await sh('ip', ['netns', 'add', ns.peer]);
  await sh('ip', ['link', 'add', `rp${id}`, 'type', 'veth', 'peer', 'name', `rq${id}`]);
  await sh('ip', ['link', 'set', `rp${id}`, 'netns', ns.pod]);
  await sh('ip', ['link', 'set', `rq${id}`, 'netns', ns.peer]);
  for (const [n, dev, addr] of [[ns.pod, `rp${id}`, '10.77.0.1/24'], [ns.peer, `rq${id}`, '10.77.0.2/24']] as const) {
    await sh('ip', ['-n', n, 'addr', 'add', addr, 'dev', dev]);
    await sh('ip', ['-n', n, 'link', 'set', dev, 'up']);
    await sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
  }
  return ns;
}

/** A long-running process inside a namespace, optionally as another uid; stopped by PID. */
function inNs(ns: string, argv: string[], uid?: number): ChildProcess & { out: string[] } {
  const prefix = uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  const child = spawn('ip', ['netns', 'exec', ns, ...prefix, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, REMORA_LOG_LEVEL: 'warn' } }) as ChildProcess & { out: string[] };
  child.out = [];
  child.stdout!.on('data', (d: Buffer) => child.out.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => child.out.push(d.toString()));
  return child;
}

async function once(ns: string, argv: string[], uid?: number): Promise<{ code: number | null; out: string }> {
  const child = inNs(ns, argv, uid);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, out: child.out.join('') };
}

/** Polls `url` from inside the namespace until it answers 200. */
async function waitHttp(ns: string, url: string, timeoutMs = 15_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await once(ns, [process.execPath, '-e', `fetch(${JSON.stringify(url)}).then(async (r) => { process.stdout.write(await r.text()); process.exit(r.status === 200 ? 0 : 1); }, () => process.exit(1))`]);
    if (r.code === 0) return r.out;
    if (Date.now() > deadline) throw new Error(`${url} in ${ns} not ready: ${r.out}`);
    await sleep(200);
  }
}

test('iptables interception in a pod namespace: an unmodified app\'s outbound call and a peer\'s inbound call both go through the sidecar', async (t) => {
  t.timeout(90_000);
  if (process.getuid?.() !== 0) t.fail('this test needs root (network namespaces, iptables)');
  for (const tool of ['ip', 'iptables', 'setpriv']) {
    await sh('sh', ['-c', `command -v ${tool}`]).catch(() => t.fail(`${tool} is missing: apt-get install iproute2 iptables util-linux (scripts/setup.sh does)`));
  }
  const ns = await makeNamespaces();
  const procs: ChildProcess[] = [];
  t.teardown(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await sleep(200);
    await sh('ip', ['netns', 'del', ns.pod]).catch(() => undefined);
    await sh('ip', ['netns', 'del', ns.peer]).catch(() => undefined);
  });

  // The peer: catalog on 10.77.0.2:9090. The pod: inventory (the app) on :8080, and its sidecar.
  procs.push(inNs(ns.peer, [process.execPath, REMORA, 'demo-service', '--name', 'catalog', '--address', '0.0.0.0', '--port', '9090']));
  procs.push(inNs(ns.pod, [process.execPath, REMORA, 'demo-service', '--name', 'inventory', '--address', '0.0.0.0', '--port', '8080']));
  const dir = await mkdtemp(path.join(tmpdir(), 'remora-intercept-'));
  const config = path.join(dir, 'mesh.yaml');
  await writeFile(config, 'clusters:\n  - name: catalog\n    endpoints: [{ address: 10.77.0.2, port: 9090 }]\n');
  await sh('chmod', ['0755', dir]);
  await sh('chmod', ['0644', config]);
  procs.push(inNs(ns.pod, [process.execPath, REMORA, 'sidecar', '--config', config, '--service', 'inventory', '--app-port', '8080', '--app-health-interval-ms', '0',
    '--inbound-address', '0.0.0.0', '--stats-address', '127.0.0.1'], 1337));
  await waitHttp(ns.pod, 'http://127.0.0.1:15020/healthz/ready');

  const rules = await once(ns.pod, [process.execPath, REMORA, 'init-iptables']);
  t.is(rules.code, 0, rules.out);
  // Idempotent: a second run (an init container restarted) leaves one jump per chain.
  t.is((await once(ns.pod, [process.execPath, REMORA, 'init-iptables'])).code, 0);
  const nat = await sh('ip', ['netns', 'exec', ns.pod, 'iptables', '-t', 'nat', '-S']);
  t.is(nat.split('\n').filter((l) => l === '-A OUTPUT -p tcp -j REMORA_OUTPUT').length, 1, nat);

  // Outbound: nothing listens on 10.77.0.2:50051; only the redirect to the sidecar can answer.
  const out = await once(ns.pod, [process.execPath, REMORA, 'demo-client', '--target', '10.77.0.2:50051', '--authority', 'catalog:50051', '--scenario', 'catalog', '--count', '5', '--rps', '20', '--output', 'json']);
  t.is(out.code, 0, out.out);
  t.regex(out.out, /"codes":\{"OK":5\}/);

  // Inbound: the peer calls the pod's app port; the sidecar's inbound listener carries it.
  const into = await once(ns.peer, [process.execPath, REMORA, 'demo-client', '--target', '10.77.0.1:8080', '--scenario', 'inventory', '--count', '5', '--rps', '20', '--output', 'json']);
  t.is(into.code, 0, into.out);
  t.regex(into.out, /"codes":\{"OK":5\}/);
  const metrics = await waitHttp(ns.pod, 'http://127.0.0.1:15020/metrics');
  const inbound = [...metrics.matchAll(/^remora_requests_total\{direction="inbound",[^}]*grpc_status="0"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  const outbound = [...metrics.matchAll(/^remora_requests_total\{direction="outbound",[^}]*destination="catalog"[^}]*grpc_status="0"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  t.is(outbound, 5, 'the 5 outbound calls went through the sidecar');
  t.is(inbound, 5, 'the 5 inbound calls went through the sidecar');
});

test('init-iptables rules: exclusions, no inbound, and flags that are not ports or addresses', async (t) => {
  const { restoreInput, parsePorts, parseCidrs, jumps } = await import('../sidecar/interception/iptables-rules.js');
  const rules = restoreInput({ proxyUid: 1337, outboundPort: 15001, inboundPort: 15006, excludeInboundPorts: [15020, 9090], excludeOutboundPorts: [5432], excludeOutboundCidrs: ['169.254.169.254/32'], inbound: true });
  for (const line of [
    '-A REMORA_INBOUND -p tcp --dport 9090 -j RETURN',
    '-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN',
    '-A REMORA_OUTPUT -o lo -j RETURN',
    '-A REMORA_OUTPUT -p tcp --dport 5432 -j RETURN',
    '-A REMORA_OUTPUT -d 169.254.169.254/32 -j RETURN',
    '-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
    '-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006',
  ]) t.true(rules.includes(line), line);
  // The sidecar's own rule comes before the catch-all redirect.
  t.true(rules.indexOf('--uid-owner 1337') < rules.indexOf('-A REMORA_OUTPUT -j REMORA_REDIRECT'));
  const outboundOnly = { proxyUid: 1337, outboundPort: 15001, inboundPort: 15006, excludeInboundPorts: [], excludeOutboundPorts: [], excludeOutboundCidrs: [], inbound: false };
  t.false(restoreInput(outboundOnly).includes('-A REMORA_INBOUND'));
  t.deepEqual(jumps(outboundOnly).map(([c]) => c), ['OUTPUT']);
  t.throws(() => parsePorts('exclude-inbound-ports', ['80', 'http']), { message: /--exclude-inbound-ports: "http" is not a port/ });
  t.throws(() => parseCidrs('exclude-outbound-ips', ['10.0.0.0/33']), { message: /not an IPv4 address or CIDR/ });
  t.throws(() => parseCidrs('exclude-outbound-ips', ['300.1.1.1']), { message: /not an IPv4/ });
});
