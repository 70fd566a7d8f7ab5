/**
 * `remora wait-ready`: block until the sidecar can carry calls: serving, configured, and holding a
 * valid certificate (if it needs one). Injected in classic mode as the sidecar container's
 * postStart hook, so Kubernetes starts the app container only after it. The app's own health is
 * deliberately not waited for (the app starts after this hook; /healthz/ready includes it).
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
        const body = (await res.json()) as { state?: string; version?: string; certificate?: { required: boolean; valid: boolean } };
        if (res.status === 200) return;
        if (body.state === 'serving' && body.version && (!body.certificate?.required || body.certificate.valid)) return;
        last = `HTTP ${res.status}: ${JSON.stringify(body).slice(0, 200)}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    process.stderr.write(`remora wait-ready: ${url} not ready after ${flags['timeout-s']} s (${last})\n`);
    process.exitCode = 1;
  },
};
