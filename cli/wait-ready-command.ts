/**
 * `remora wait-ready`: block until the sidecar reports ready (GET :15020/healthz/ready is 200).
 * Injected in classic mode as the app container's postStart hook... of the sidecar, so Kubernetes
 * starts the app only once the sidecar can carry its calls.
 */
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from './flags.js';

const FLAGS = {
  port: { type: 'int', help: 'the sidecar\'s stats port', default: 15020 },
  address: { type: 'string', help: 'the sidecar\'s stats address', default: '127.0.0.1' },
  'timeout-s': { type: 'int', help: 'give up (exit 1) after this long', default: 60 },
} as const satisfies FlagDefs;

const SUMMARY = 'Wait until the sidecar is ready (its /healthz/ready answers 200); exit 1 on timeout.';

export const waitReadyCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const { flags, help } = parseCommand(FLAGS, argv);
    if (help) {
      process.stdout.write(usage('wait-ready', SUMMARY, FLAGS) + '\n');
      return;
    }
    if (flags['timeout-s'] < 1) throw new UsageError('--timeout-s must be at least 1');
    const url = `http://${flags.address}:${flags.port}/healthz/ready`;
    const deadline = Date.now() + flags['timeout-s'] * 1000;
    let last = 'no answer yet';
    while (Date.now() < deadline) {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return;
        last = `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    process.stderr.write(`remora wait-ready: ${url} not ready after ${flags['timeout-s']} s (${last})\n`);
    process.exitCode = 1;
  },
};
