/**
 * The demo protos as a FileDescriptorSet, for a client sidecar's --descriptor-set: it then knows
 * GetProduct's idempotency from its start instead of asking the servers at the first failure.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../../lib/processes.js';

export async function buildDescriptorSet(): Promise<string> {
  const buf = path.join(repoRoot, 'node_modules/.bin/buf');
  if (!existsSync(buf)) throw new Error(`${buf} is missing: run npm ci (buf is a dev dependency), or use --idempotency reflection`);
  const out = path.join(await mkdtemp(path.join(tmpdir(), 'remora-chaos-')), 'protos.binpb');
  await promisify(execFile)(buf, ['build', 'protos', '-o', out], { cwd: repoRoot });
  return out;
}
