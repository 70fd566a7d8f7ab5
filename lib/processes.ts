/**
 * Child `remora` processes for tests, the bench and `remora demo`: start a subcommand, wait
 * until its ports accept connections, stop it by PID. Every child is killed if we exit first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { readPortsFile, type Ports } from './ports-file.js';
import { nodeFlagsFor } from './sidecar-node-flags.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const remoraBin = path.join(repoRoot, 'dist/cli/remora.js');

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) if (child.pid) try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
});

export { freePort } from './free-port.js';

export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 15_000, child?: Proc): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null) {
      throw new Error(`process exited with ${child.exitCode} before port ${port} opened:\n${child.output()}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, host);
      sock.once('connect', () => { sock.destroy(); resolve(true); });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${host}:${port} did not open within ${timeoutMs} ms${child ? `:\n${child.output()}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Ports the process reported in its ports file (see StartOptions.portsFile). */
  ports: Ports;
  readonly exitCode: number | null;
  output(): string;
  /** Resolves with the exit code (or signal name) once the process is gone. */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

export interface StartOptions {
  /** Pass `--ports-file` and wait until the process has written its bound ports there. */
  portsFile?: boolean;
  env?: Record<string, string>;
  /** Ports that must accept connections before start() resolves. */
  waitPorts?: number[];
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  /** Pass the child's output through to ours instead of keeping it for output(). */
  inherit?: boolean;
  /** Written to the child's stdin, which is then closed. */
  stdin?: string;
  /** Called for each stdout line (machine-readable child output); such lines are not kept in output(). */
  onLine?: (line: string) => void;
}

const OUTPUT_LIMIT = 256 * 1024;

async function waitForPortsFile(file: string, proc: Proc, timeoutMs = 15_000): Promise<Ports> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ports = await readPortsFile(file);
    if (ports) return ports;
    if (proc.exitCode !== null) throw new Error(`process exited with ${proc.exitCode} before it was ready:\n${proc.output()}`);
    if (Date.now() > deadline) throw new Error(`process did not report its ports within ${timeoutMs} ms:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function startRemora(args: string[], opts: StartOptions = {}): Promise<Proc> {
  const flags = nodeFlagsFor(args[0]);
  return startNode(remoraBin, args, flags.length ? { ...opts, nodeArgs: [...flags, ...(opts.nodeArgs ?? [])] } : opts);
}

/** Runs a node script (`remora` itself, or a helper script such as the bench's load generator). */
export async function startNode(script: string, args: string[], opts: StartOptions = {}): Promise<Proc> {
  let portsFile: string | undefined;
  if (opts.portsFile) {
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    portsFile = path.join(await mkdtemp(path.join(tmpdir(), 'remora-ports-')), 'ports.json');
    args = [...args, '--ports-file', portsFile];
  }
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), script, ...args], {
    // The child polls this PID and stops itself if we die without stopping it (see cli/remora.ts).
    env: { ...process.env, REMORA_PARENT_PID: String(process.pid), ...opts.env },
    stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', opts.inherit ? 'inherit' : 'pipe', opts.inherit ? 'inherit' : 'pipe'],
  });
  live.add(child);
  if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
  let out = '';
  const append = (b: Buffer) => {
    out += b.toString();
    if (out.length > OUTPUT_LIMIT) out = out.slice(-OUTPUT_LIMIT / 2);
  };
  const onLine = opts.onLine;
  if (onLine && child.stdout) createInterface({ input: child.stdout }).on('line', onLine);
  else child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  // Resolved once the child has exited AND its output has been read (its pipes closed): 'exit' can
  // come before the last stdout lines are delivered, which a loaded machine shows. Bounded, since a
  // grandchild that inherited the pipes could hold them open.
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      const result = code ?? signal ?? 'unknown';
      const bound = setTimeout(() => resolve(result), 2_000);
      child.once('close', () => {
        clearTimeout(bound);
        resolve(result);
      });
    });
  });
  const proc: Proc = {
    child,
    pid: child.pid!,
    ports: {},
    get exitCode() { return child.exitCode ?? (child.signalCode ? -1 : null); },
    output: () => out,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      process.kill(child.pid!, signal);
      const timer = setTimeout(() => { try { process.kill(child.pid!, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
      const res = await exited;
      clearTimeout(timer);
      return res;
    },
  };
  try {
    if (portsFile) proc.ports = await waitForPortsFile(portsFile, proc);
    for (const port of opts.waitPorts ?? []) await waitForPort(port, '127.0.0.1', 15_000, proc);
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
  return proc;
}

/** CPU time (user + system) of a process in microseconds, from /proc. */
export async function cpuMicros(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / 100; // USER_HZ is 100 on Linux
}

/** Resident set size of a process in bytes, from /proc. */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}
