/** `remora delete KIND NAME [-n NS]`: removes one resource; a missing one is an error (exit 1). */
import { resolveKind, resourceRef } from '../control-plane/resources/kinds.js';
import { RESOURCE_KINDS } from '../control-plane/resources/types.js';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from './flags.js';
import { CommandError, runCommand, STORE_FLAGS, withStore } from './store-session.js';

const FLAGS = {
  namespace: { type: 'string', help: 'namespace of the resource (default "default")', short: 'n' },
  ...STORE_FLAGS,
} as const satisfies FlagDefs;

const SUMMARY = `Delete a mesh resource. KIND is one of ${RESOURCE_KINDS.join(', ')} (any case, singular or plural).`;

export const deleteCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const { flags, positional, help } = parseCommand(FLAGS, argv);
    if (help) {
      process.stdout.write(usage('delete KIND NAME', SUMMARY, FLAGS) + '\n');
      return;
    }
    const [kindArg, name, ...extra] = positional;
    if (!kindArg || !name) throw new UsageError('usage: remora delete KIND NAME [-n NAMESPACE]');
    if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
    const kind = resolveKind(kindArg);
    if (!kind) throw new UsageError(`unknown kind ${JSON.stringify(kindArg)} (known: ${RESOURCE_KINDS.join(', ')})`);
    const namespace = flags.namespace ?? 'default';
    await runCommand(() =>
      withStore(flags, async (store) => {
        const ref = resourceRef(kind, namespace, name);
        if (!(await store.deleteResource(kind, name, namespace))) throw new CommandError(`${ref} not found`);
        process.stdout.write(`${ref} deleted\n`);
      }),
    );
  },
};
