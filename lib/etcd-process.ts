/**
 * A real etcd for tests, the bench and `remora demo`: Debian's etcd-server binary on two free
 * loopback ports (client, peer) with a fresh data dir, stopped by PID. Nothing is shared between tests that start their own.
 *
 *   const etcd = await startEtcd();
 *   t.teardown(() => etcd.stop());
 *   await etcd.restart({ downMs: 15_000 });   // "etcd down for 15 s", same ports and data
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { freePort } from './processes.js';

export interface EtcdHandle {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly clientPort: number;
  readonly dataDir: string;
  /** PID of the running etcd (changes on restart). */
  readonly pid: number;
  /** Last lines etcd wrote, for failure messages. */
  output(): string;
  /** SIGTERM (SIGKILL after a grace period), then removes the data dir. Final. */
  stop(): Promise<void>;
  /** SIGKILL, keeping the data dir: a crash. Bring it back with start(). */
  kill(): Promise<void>;
  /** Stops etcd keeping its data, waits `downMs`, and starts it again on the same ports. */
  restart(opts?: { downMs?: number }): Promise<void>;
  /** Starts etcd again (after kill() or a restart that failed) on the same ports and data dir. */
  start(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;
const OUTPUT_LIMIT = 64 * 1024;
const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const child of live) if (child.pid) try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function etcdBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' });
  const bin = found.stdout.trim();
  if (found.status !== 0 || !bin) throw new Error('etcd is not installed: apt-get install etcd-server (or run bash scripts/setup.sh)');
  return bin;
}

/** tmpfs when there is one: etcd fsyncs every write, and 3.4 has no --unsafe-no-fsync. */
function dataRoot(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

/**
 * A test process killed outright (ava's timeout, kill -9) runs no exit handler, and its etcd
 * would live on, orphaned. A tiny shell per etcd watches both PIDs: if the test process goes
 * first, it kills etcd and removes the data dir; if etcd goes first, it just exits.
 */
const WATCHDOG = `
while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 0.5; done
if ! kill -0 "$1" 2>/dev/null; then kill -9 "$2" 2>/dev/null; sleep 0.2; rm -rf "$3"; fi`;

function watchdog(etcdPid: number, dataDir: string): void {
  spawn('sh', ['-c', WATCHDOG, 'remora-etcd-watchdog', String(process.pid), String(etcdPid), dataDir], { detached: true, stdio: 'ignore' }).unref();
}

/**
 * etcd's /health on the client port: true once it has a leader and serves requests. Plain HTTP on
 * purpose: an etcd3 client would back off after the first refused connects and notice late.
 */
function healthy(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(`${endpoint}/health`, { timeout: 1_000 }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

export interface EtcdOptions {
  /** Fixed ports (remora demo); free ones otherwise. */
  readonly clientPort?: number;
  readonly peerPort?: number;
  /** Parent of the data dir; default /dev/shm where there is one (no disk in the way). */
  readonly dataRoot?: string;
}

export async function startEtcd(opts: EtcdOptions = {}): Promise<EtcdHandle> {
  const bin = etcdBinary();
  const clientPort = opts.clientPort || (await freePort());
  let peerPort = opts.peerPort || (await freePort());
  while (peerPort === clientPort) peerPort = await freePort();
  const dataDir = mkdtempSync(path.join(opts.dataRoot ?? dataRoot(), 'remora-etcd-'));
  dirs.add(dataDir);
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'test',
    '--data-dir', dataDir,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `test=${peer}`,
    '--logger', 'zap',
    '--log-level', 'warn',
  ];
  let child: ChildProcess | undefined;
  let out = '';
  let stopped = false;

  const exited = (c: ChildProcess) =>
    c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r()));

  async function launch(): Promise<void> {
    const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    live.add(c);
    if (c.pid) watchdog(c.pid, dataDir);
    c.once('exit', () => live.delete(c));
    const append = (b: Buffer) => {
      out += b.toString();
      if (out.length > OUTPUT_LIMIT) out = out.slice(-OUTPUT_LIMIT / 2);
    };
    c.stdout?.on('data', append);
    c.stderr?.on('data', append);
    await waitReady(c);
  }

  async function waitReady(c: ChildProcess): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`etcd exited (${c.exitCode ?? c.signalCode}) before it was ready:\n${out}`);
      if (await healthy(endpoint)) return;
      if (Date.now() > deadline) throw new Error(`etcd did not answer on ${endpoint} within ${READY_TIMEOUT_MS} ms:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function halt(signal: NodeJS.Signals): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const done = exited(c);
    try { process.kill(c.pid!, signal); } catch { /* already gone */ }
    const timer = setTimeout(() => { try { process.kill(c.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5_000);
    await done;
    clearTimeout(timer);
  }

  try {
    await launch();
  } catch (err) {
    await halt('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    dirs.delete(dataDir);
    throw err;
  }

  return {
    endpoint,
    clientPort,
    dataDir,
    get pid() { return child?.pid ?? -1; },
    output: () => out,
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
      dirs.delete(dataDir);
    },
    async kill() {
      await halt('SIGKILL');
    },
    async restart(opts = {}) {
      if (stopped) throw new Error('etcd was stopped for good; start a new one');
      await halt('SIGTERM');
      if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
      await launch();
    },
    async start() {
      if (stopped) throw new Error('etcd was stopped for good; start a new one');
      if (child && child.exitCode === null && child.signalCode === null) return;
      await launch();
    },
  };
}
