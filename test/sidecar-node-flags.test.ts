/**
 * The sidecar's node flags reach every way it is started: processes started by startRemora
 * (tests, bench, `remora demo`) and the container image's entrypoint.
 */
import test from 'ava';
import { readFile, writeFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SIDECAR_NODE_FLAGS } from '../lib/sidecar-node-flags.js';
import { freePort, repoRoot, startRemora } from '../lib/processes.js';

test('the container entrypoint gives the sidecar, and only the sidecar, its node flags', async (t) => {
  const dockerfile = await readFile(path.join(repoRoot, 'Dockerfile'), 'utf8');
  t.regex(dockerfile, /^ENTRYPOINT \["\/usr\/local\/bin\/remora"\]$/m);
  const sidecarLine = dockerfile.split('\\n').find((l) => l.includes('= sidecar ]'));
  t.truthy(sidecarLine, 'the wrapper has a sidecar branch');
  t.true(sidecarLine!.includes(`exec node ${SIDECAR_NODE_FLAGS.join(' ')} /app/dist/cli/remora.js`), sidecarLine);
});

test('a sidecar started by startRemora runs with the flags; other commands without', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-flags-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'c.yaml');
  await writeFile(config, 'clusters: []\n');
  const [outbound, inbound] = [await freePort(), await freePort()];
  const sidecar = await startRemora(['sidecar', '--config', config, '--service', 'flags', '--app-port', '1',
    '--outbound-port', String(outbound), '--inbound-port', String(inbound), '--admin-port', '0', '--stats-port', '0'], { waitPorts: [outbound] });
  t.teardown(() => sidecar.stop());
  const cmdline = (await readFile(`/proc/${sidecar.pid}/cmdline`, 'utf8')).split('\0');
  for (const flag of SIDECAR_NODE_FLAGS) t.true(cmdline.includes(flag), `${flag} in ${cmdline.join(' ')}`);
  const help = await startRemora(['control-plane', '--help']);
  const helpCmdline = await readFile(`/proc/${help.pid}/cmdline`, 'utf8').catch(() => '');
  await help.exited;
  for (const flag of SIDECAR_NODE_FLAGS) t.false(helpCmdline.includes(flag));
});
