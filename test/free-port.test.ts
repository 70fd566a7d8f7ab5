/**
 * freePort across processes: concurrent pickers never share a port, ports stay out of the
 * ephemeral range, a dead process's locks are taken over and a live one's are not.
 */
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { RESERVABLE_PORTS } from '../lib/free-port.js';
import { repoRoot } from '../lib/processes.js';

const run = promisify(execFile);
const freePortModule = path.join(repoRoot, 'dist/lib/free-port.js');

const pickScript = (count: number) => `import { freePort } from ${JSON.stringify(freePortModule)};
const ports = await Promise.all(Array.from({ length: ${count} }, () => freePort()));
console.log(JSON.stringify(ports));`;

/** Picks `count` ports in a new node process, all at once, and prints them. */
async function pickInChild(count: number, lockDir: string): Promise<number[]> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', pickScript(count)], {
    env: { ...process.env, REMORA_PORT_LOCK_DIR: lockDir }, timeout: 20_000,
  });
  return JSON.parse(stdout) as number[];
}

/** Like pickInChild, but the process holds its ports until its stdin is closed. */
async function holdInChild(count: number, lockDir: string): Promise<{ ports: number[]; release(): Promise<void> }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `${pickScript(count)}\nprocess.stdin.resume();`], {
    env: { ...process.env, REMORA_PORT_LOCK_DIR: lockDir }, stdio: ['pipe', 'pipe', 'inherit'],
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const exited = new Promise<void>((resolve) => child.once('exit', () => { clearTimeout(timer); resolve(); }));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d; if (out.includes('\n')) resolve(out); });
    child.once('exit', (code) => reject(new Error(`picker exited with ${code} before printing its ports`)));
  });
  return { ports: JSON.parse(line) as number[], release: async () => { child.stdin!.end(); await exited; } };
}

async function deadPid(): Promise<number> {
  const { stdout } = await run(process.execPath, ['-e', 'console.log(process.pid)']);
  return Number(stdout);
}

test('four processes picking 40 ports each at once get 160 different ports below the ephemeral range, released at exit', async (t) => {
  const lockDir = await mkdtemp(path.join(os.tmpdir(), 'remora-port-locks-'));
  t.teardown(() => rm(lockDir, { recursive: true, force: true }));
  const holders = await Promise.all([1, 2, 3, 4].map(() => holdInChild(40, lockDir)));
  const all = holders.flatMap((h) => h.ports);
  await Promise.all(holders.map((h) => h.release()));
  t.is(all.length, 160);
  t.is(new Set(all).size, 160, 'no port handed to two processes');
  for (const p of all) t.true(p >= RESERVABLE_PORTS.first && p <= RESERVABLE_PORTS.last, `${p}`);
  t.deepEqual(await readdir(lockDir), [], 'every lock removed when its process exited');
});

test("a dead process's locks are taken over; a live process's are not", async (t) => {
  const lockDir = await mkdtemp(path.join(os.tmpdir(), 'remora-port-locks-'));
  t.teardown(() => rm(lockDir, { recursive: true, force: true }));
  const ports = Array.from({ length: RESERVABLE_PORTS.last - RESERVABLE_PORTS.first + 1 }, (_, i) => RESERVABLE_PORTS.first + i);
  const writeLocks = (pid: number) => { for (const p of ports) writeFileSync(path.join(lockDir, String(p)), String(pid)); };

  writeLocks(await deadPid());
  const [taken] = await pickInChild(1, lockDir);
  t.true(taken! >= RESERVABLE_PORTS.first && taken! <= RESERVABLE_PORTS.last);

  writeLocks(process.pid);
  const err = await t.throwsAsync(pickInChild(1, lockDir));
  t.regex(err!.message, /no free port in 20000-32767 on 127\.0\.0\.1 after 200 tries/);
});
