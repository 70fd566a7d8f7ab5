/**
 * `remora status`: every connected sidecar as its control-plane replica last recorded it: who it
 * is, which config version it applied, and its last NACK (shortened; -o json has it whole).
 */
import type { SidecarStatus } from '../control-plane/resources/types.js';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from './flags.js';
import { runCommand, STORE_FLAGS, warnInvalid, withStore } from './store-session.js';
import { outputFormat, shorten, structured, table } from './table.js';

const FLAGS = {
  namespace: { type: 'string', help: 'only sidecars of this namespace (default: all)', short: 'n' },
  output: { type: 'string', help: 'table (default), json or yaml', short: 'o' },
  ...STORE_FLAGS,
} as const satisfies FlagDefs;

const SUMMARY = 'Show each connected sidecar: identity, control-plane replica, applied config version, last NACK.';
const NACK_WIDTH = 60;

function lastNack(s: SidecarStatus): string {
  const n = s.lastNack;
  if (!n) return '-';
  const more = n.errors.length > 1 ? ` (+${n.errors.length - 1} more)` : '';
  return shorten(`${n.version}: ${n.errors[0] ?? 'rejected'}`, NACK_WIDTH - more.length) + more;
}

export const statusCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const { flags, positional, help } = parseCommand(FLAGS, argv);
    if (help) {
      process.stdout.write(usage('status', SUMMARY, FLAGS) + '\n');
      return;
    }
    if (positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positional[0])}`);
    const format = outputFormat(flags.output);
    await runCommand(() =>
      withStore(flags, async (store) => {
        const { statuses, invalid } = await store.readStatus();
        warnInvalid(invalid);
        const list = statuses
          .filter((s) => !flags.namespace || s.namespace === flags.namespace)
          .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.service.localeCompare(b.service) || a.instanceId.localeCompare(b.instanceId));
        if (format !== 'table') {
          process.stdout.write(structured(format, list, false));
          return;
        }
        if (list.length === 0) {
          process.stderr.write(`No sidecars connected${flags.namespace ? ` in namespace ${flags.namespace}` : ''}.\n`);
          return;
        }
        const headers = ['NAMESPACE', 'SERVICE', 'INSTANCE', 'CONTROL-PLANE', 'APPLIED-VERSION', 'LAST-NACK'];
        process.stdout.write(table(headers, list.map((s) => [s.namespace, s.service, s.instanceId, s.controlPlane || '-', s.appliedVersion || '-', lastNack(s)])));
      }),
    );
  },
};
