/**
 * What `remora apply/get/delete/status` share: the etcd flags, one short-lived store, a deadline
 * on the whole command, and one-line errors. A CLI must fail in seconds with a hint, not sit in
 * etcd3's retry loop while the user wonders whether it hung.
 */
import { createLogger } from '../lib/log.js';
import { EtcdStore } from '../control-plane/store/etcd-store.js';
import { DEFAULT_PREFIX } from '../control-plane/resources/keys.js';
import { UsageError, type FlagDefs } from './flags.js';

export const STORE_FLAGS = {
  'etcd-endpoints': { type: 'list', help: 'etcd endpoints, comma-separated', default: 'http://127.0.0.1:2379' },
  prefix: { type: 'string', help: 'etcd key prefix of this mesh', default: DEFAULT_PREFIX },
  'timeout-ms': { type: 'int', help: 'give up on etcd after this long', default: 5_000 },
} as const satisfies FlagDefs;

export interface StoreFlags {
  readonly 'etcd-endpoints': readonly string[];
  readonly prefix: string;
  readonly 'timeout-ms': number;
}

/** A failure the user caused or can fix: printed as one line, exit status 1, no stack trace. */
export class CommandError extends Error {
  readonly code = 'REMORA_COMMAND_FAILED';
  constructor(message: string) {
    super(message);
    this.name = 'CommandError';
  }
}

class DeadlineError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'DeadlineError';
  }
}

/** Errors that mean "etcd is not there" rather than "etcd said no". */
const UNREACHABLE = new Set(['GRPCUnavailableError', 'GRPCDeadlineExceededError', 'BrokenCircuitError', 'DeadlineError', 'GRPCCancelledError']);

function unreachableHint(endpoints: readonly string[], cause: string): string {
  return (
    `cannot reach etcd at ${endpoints.join(', ')} (${cause}). ` +
    'Start etcd (e.g. `etcd` or `systemctl start etcd`), or point --etcd-endpoints / REMORA_ETCD_ENDPOINTS at your cluster.'
  );
}

function firstLine(err: Error): string {
  return err.message.split('\n')[0]!.replace(/^\w*Error: /, '');
}

/**
 * Runs `fn` with a store on the given etcd, closes it, and turns failures into one line on stderr
 * and exit status 1. The whole command, retries included, is bounded by --timeout-ms.
 */
export async function withStore(flags: StoreFlags, fn: (store: EtcdStore) => Promise<void>): Promise<void> {
  const endpoints = flags['etcd-endpoints'];
  if (endpoints.length === 0) throw new UsageError('--etcd-endpoints must name at least one endpoint');
  const ms = flags['timeout-ms'];
  if (ms < 100) throw new UsageError(`--timeout-ms must be at least 100, got ${ms}`);
  const store = new EtcdStore(
    { endpoints, prefix: flags.prefix, leaseTtlSeconds: 10, replicaId: 'cli' },
    // etcd3 retries a failed call up to three times, each with this deadline; the race below caps the total.
    { callTimeoutMs: Math.max(100, Math.floor(ms / 2)), log: createLogger('cli', 'silent') },
  );
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(store),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineError(ms)), ms);
      }),
    ]);
  } catch (err) {
    if (err instanceof CommandError || err instanceof UsageError) throw err;
    const e = err instanceof Error ? err : new Error(String(err));
    const looksUnreachable = UNREACHABLE.has(e.name) || UNREACHABLE.has(e.constructor.name) || /ECONNREFUSED|No connection established|connect/i.test(e.message);
    if (looksUnreachable) throw new CommandError(unreachableHint(endpoints, firstLine(e)));
    // Something answered, but not etcd's v3 gRPC API (an HTTP server, a proxy, etcd's v2-only port).
    const notEtcd = /UNIMPLEMENTED|HTTP status code/.test(e.message) ? ' (is that an etcd v3 client endpoint?)' : '';
    throw new CommandError(`etcd at ${endpoints.join(', ')}: ${firstLine(e)}${notEtcd}`);
  } finally {
    clearTimeout(timer);
    // No lease was taken by a CLI, so closing touches nothing in etcd and cannot hang.
    await store.close({ revokeLease: false }).catch(() => undefined);
  }
}

/** Runs a CLI command body; a CommandError becomes `remora: message` on stderr and exit status 1. */
export async function runCommand(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    process.stderr.write(`remora: ${err.message}\n`);
    // Exit now: a call abandoned at the deadline may still hold grpc timers for a while, and the
    // user asked for an answer, not for them. (Writes to pipes and files are synchronous here.)
    process.exit(1);
  }
}

export function warnInvalid(invalid: readonly { readonly key: string; readonly problems: readonly string[] }[]): void {
  for (const bad of invalid) {
    process.stderr.write(`warning: skipped invalid value at ${bad.key}: ${bad.problems.join('; ')}\n`);
  }
}
