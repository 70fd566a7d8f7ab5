/**
 * `remora inject -f MANIFEST`: add the sidecar to every pod template in a YAML manifest, like
 * `istioctl kube-inject`. The result goes to stdout (pipe it to `kubectl apply -f -`), one line per
 * object to stderr. A manifest that does not parse writes nothing to stdout and exits 1.
 */
import { readFile } from 'node:fs/promises';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from './flags.js';
import { injectManifest, ManifestError } from '../control-plane/injection/manifest.js';
import { DEFAULT_INJECT_OPTIONS, injectOptions, InjectOptionsError, type InjectMode } from '../control-plane/injection/options.js';
import type { ObjectResult } from '../control-plane/injection/workload.js';

const FLAGS = {
  filename: { type: 'string', help: 'manifest (multi-document YAML); - or no -f reads stdin', short: 'f' },
  image: { type: 'string', help: 'sidecar image (its entrypoint is `remora`)', default: DEFAULT_INJECT_OPTIONS.image },
  mode: { type: 'string', help: 'native: sidecar as an init container with restartPolicy Always (Kubernetes 1.29+); classic: first app container', default: DEFAULT_INJECT_OPTIONS.mode },
  'control-plane': { type: 'string', help: 'control plane TLS discovery address host:port, as seen from pods', default: DEFAULT_INJECT_OPTIONS.controlPlane },
  'proxy-uid': { type: 'int', help: 'uid the sidecar runs as (its traffic is not redirected)', default: DEFAULT_INJECT_OPTIONS.proxyUid },
} as const satisfies FlagDefs;

const SUMMARY = 'Add the Remora sidecar to the pod templates of a Kubernetes manifest; writes the result to stdout.';

/** The version written to remora.io/injected: this package's. */
export async function remoraVersion(): Promise<string> {
  try {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'dev';
  } catch {
    return 'dev';
  }
}

async function readInput(file: string): Promise<string> {
  if (file !== '-') {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new InjectFailed(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

class InjectFailed extends Error {}

/** `deployment/web: injected`, `service/web: not a pod template, unchanged`, `pod/x: skipped (...)`. */
export function describeResult(r: ObjectResult): string {
  const ref = `${r.kind ? r.kind.toLowerCase() : 'object'}/${r.name}`;
  switch (r.status) {
    case 'injected':
      return `${ref}: injected${r.note ? ` (note: ${r.note})` : ''}`;
    case 'not-a-pod-template':
    case 'already-injected':
      return `${ref}: ${r.reason}, unchanged`;
    default:
      return `${ref}: skipped (${r.reason})`;
  }
}

export const injectCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const { flags, positional, help } = parseCommand(FLAGS, argv);
    if (help) {
      process.stdout.write(usage('inject [-f FILE|-]', SUMMARY, FLAGS) + '\n');
      return;
    }
    if (positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positional[0])} (inject takes -f FILE)`);
    let opts;
    try {
      opts = injectOptions({
        image: flags.image,
        mode: flags.mode as InjectMode,
        controlPlane: flags['control-plane'],
        proxyUid: flags['proxy-uid'],
        version: await remoraVersion(),
      });
    } catch (err) {
      if (err instanceof InjectOptionsError) throw new UsageError(err.message.replace(/^(image|mode|control plane|proxy uid)/, (m) => `--${m.replace(' ', '-')}`));
      throw err;
    }
    const file = flags.filename ?? '-';
    const source = file === '-' ? 'stdin' : file;
    let result;
    try {
      result = injectManifest(await readInput(file), opts);
    } catch (err) {
      if (err instanceof ManifestError || err instanceof InjectFailed) {
        process.stderr.write(`remora: ${err instanceof ManifestError ? `${source}: ` : ''}${err.message}; nothing written\n`);
        process.exitCode = 1;
        return;
      }
      throw err;
    }
    process.stdout.write(result.text);
    for (const r of result.results) process.stderr.write(`${describeResult(r)}\n`);
  },
};
