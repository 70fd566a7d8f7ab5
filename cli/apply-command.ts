/**
 * `remora apply -f FILE`: validate every document first and write nothing unless all are valid;
 * then write them all in one etcd transaction and say what happened to each, like kubectl.
 */
import { readFile } from 'node:fs/promises';
import { resourceRef } from '../control-plane/resources/kinds.js';
import { parseResources, ResourceValidationError } from '../control-plane/resources/parse.js';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from './flags.js';
import { CommandError, runCommand, STORE_FLAGS, withStore } from './store-session.js';

const FLAGS = {
  filename: { type: 'string', help: 'multi-document YAML file of resources; - reads stdin', short: 'f' },
  ...STORE_FLAGS,
} as const satisfies FlagDefs;

const SUMMARY = 'Create or update mesh resources (Route, Cluster, AuthorizationPolicy, MeshConfig) from YAML, all or nothing.';

async function readInput(file: string): Promise<string> {
  if (file !== '-') {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new CommandError(`cannot read ${file}: ${(err as Error).message}`);
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export const applyCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const { flags, positional, help } = parseCommand(FLAGS, argv);
    if (help) {
      process.stdout.write(usage('apply -f FILE', SUMMARY, FLAGS) + '\n');
      return;
    }
    if (!flags.filename) throw new UsageError('-f FILE is required (-f - reads stdin)');
    if (positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positional[0])} (apply takes -f FILE)`);
    const file = flags.filename;
    await runCommand(async () => {
      const source = file === '-' ? 'stdin' : file;
      const { resources, errors } = parseResources(await readInput(file), source);
      if (errors.length > 0) {
        for (const e of errors) process.stderr.write(`${e}\n`);
        throw new CommandError(`nothing applied: ${errors.length} error${errors.length === 1 ? '' : 's'} in ${source}`);
      }
      await withStore(flags, async (store) => {
        let result;
        try {
          result = await store.applyResourcesDetailed(resources);
        } catch (err) {
          if (err instanceof ResourceValidationError) throw new CommandError(`nothing applied: ${err.problems.join('; ')}`);
          throw err;
        }
        for (const { resource: r, outcome } of result.results) {
          process.stdout.write(`${resourceRef(r.kind, r.metadata.namespace, r.metadata.name)} ${outcome}\n`);
        }
      });
    });
  },
};
