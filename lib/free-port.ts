/**
 * Loopback ports for child processes that take a fixed `--port`, safe when several test
 * processes pick ports at the same time.
 *
 * Asking the kernel for port 0 and closing it races twice: another process asking at the same
 * moment can be handed the same port, and the port lies in the ephemeral range, where every
 * outgoing connection on the machine takes its local port from. Either can take the port before
 * our child binds it (EADDRINUSE). So ports come from below the ephemeral range, and each one is
 * reserved across processes with a lock file created exclusively (O_EXCL) for as long as this
 * process lives. A lock left by a process that died is taken over.
 */
import { createServer } from 'node:net';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Below Linux's default ephemeral range (32768-60999), above the well-known and common ports. */
export const RESERVABLE_PORTS = { first: 20_000, last: 32_767 } as const;

/** REMORA_PORT_LOCK_DIR only lets a test use a directory of its own. */
const lockDir = process.env.REMORA_PORT_LOCK_DIR || path.join(os.tmpdir(), 'remora-port-locks');
const held = new Set<string>();
process.on('exit', () => {
  for (const file of held) try { unlinkSync(file); } catch { /* already gone */ }
});

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Creates the lock for `port`, or takes over one whose owner is gone. False if another live process holds it. */
function lock(port: number): boolean {
  const file = path.join(lockDir, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o644 });
      held.add(file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = 0;
    try { owner = Number(readFileSync(file, 'utf8')); } catch { /* removed meanwhile: try again */ }
    if (owner === process.pid || alive(owner)) return false;
    try { unlinkSync(file); } catch { /* another process took it over first */ }
  }
  return false;
}

function unlock(port: number): void {
  const file = path.join(lockDir, String(port));
  held.delete(file);
  try { unlinkSync(file); } catch { /* already gone */ }
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * A loopback port nothing listens on, reserved for this process until it exits: no other
 * process using freePort gets it, and no outgoing connection takes it as its local port.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  mkdirSync(lockDir, { recursive: true, mode: 0o777 });
  const span = RESERVABLE_PORTS.last - RESERVABLE_PORTS.first + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < 200; i++) {
    const port = RESERVABLE_PORTS.first + ((start + i * 7919) % span);
    if (!lock(port)) continue;
    if (await bindable(port, host)) return port;
    unlock(port);
  }
  throw new Error(`no free port in ${RESERVABLE_PORTS.first}-${RESERVABLE_PORTS.last} on ${host} after 200 tries (locks in ${lockDir})`);
}
