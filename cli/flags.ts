/**
 * Flag parsing shared by every `remora` subcommand.
 * Each flag `--some-flag` is also read from the env var `REMORA_SOME_FLAG`; the command line wins.
 */
export type FlagType = 'string' | 'int' | 'bool' | 'list';

export interface FlagDef {
  readonly type: FlagType;
  readonly help: string;
  readonly default?: string | number | boolean;
  readonly short?: string;
}

export type FlagDefs = Readonly<Record<string, FlagDef>>;

type ValueOf<D extends FlagDef> = D['type'] extends 'int'
  ? number
  : D['type'] extends 'bool'
    ? boolean
    : D['type'] extends 'list'
      ? string[]
      : D extends { default: string }
        ? string
        : string | undefined;

export type FlagValues<D extends FlagDefs> = { -readonly [K in keyof D]: ValueOf<D[K]> };

export class UsageError extends Error {
  readonly code = 'REMORA_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ParsedCommand<D extends FlagDefs> {
  readonly flags: FlagValues<D>;
  readonly positional: string[];
  readonly help: boolean;
}

export function envName(flag: string): string {
  return `REMORA_${flag.toUpperCase().replace(/-/g, '_')}`;
}

function convert(name: string, def: FlagDef, raw: string, source: string): string | number | boolean | string[] {
  switch (def.type) {
    case 'int': {
      const n = Number(raw);
      if (!Number.isInteger(n)) throw new UsageError(`${source} must be an integer, got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'bool':
      if (raw === '' || raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new UsageError(`${source} must be true or false, got ${JSON.stringify(raw)}`);
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    case 'string':
      return raw;
  }
  throw new UsageError(`flag --${name} has an unknown type`);
}

export function parseCommand<D extends FlagDefs>(
  defs: D,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): ParsedCommand<D> {
  const out: Record<string, unknown> = {};
  const fromCli = new Set<string>();
  const positional: string[] = [];
  let help = false;
  const byShort = new Map<string, string>();
  for (const [name, def] of Object.entries(defs)) if (def.short) byShort.set(def.short, name);

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let value: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      if (eq !== -1) value = arg.slice(eq + 1);
    } else if (arg.startsWith('-') && arg.length === 2) {
      name = byShort.get(arg.slice(1));
      if (!name) throw new UsageError(`unknown flag ${arg}`);
    } else {
      positional.push(arg);
      continue;
    }
    const def = defs[name];
    if (!def) throw new UsageError(`unknown flag --${name} (see --help)`);
    if (value === undefined) {
      if (def.type === 'bool') value = 'true';
      else {
        const next = argv[i + 1];
        if (next === undefined) throw new UsageError(`flag --${name} needs a value`);
        value = next;
        i++;
      }
    }
    out[name] = convert(name, def, value, `--${name}`);
    fromCli.add(name);
  }

  for (const [name, def] of Object.entries(defs)) {
    if (fromCli.has(name)) continue;
    const raw = env[envName(name)];
    if (raw !== undefined && raw !== '') out[name] = convert(name, def, raw, envName(name));
    else if (def.default !== undefined) out[name] = def.type === 'list' ? convert(name, def, String(def.default), name) : def.default;
    else if (def.type === 'bool') out[name] = false;
    else if (def.type === 'list') out[name] = [];
  }
  return { flags: out as FlagValues<D>, positional, help };
}

export function usage(command: string, summary: string, defs: FlagDefs): string {
  const lines = [`Usage: remora ${command} [flags]`, '', summary, '', 'Flags (each also read from REMORA_<FLAG>):'];
  for (const [name, def] of Object.entries(defs)) {
    const short = def.short ? `-${def.short}, ` : '';
    const dflt = def.default !== undefined ? ` (default ${JSON.stringify(def.default)})` : '';
    lines.push(`  ${short}--${name}  ${def.help}${dflt}  [${envName(name)}]`);
  }
  return lines.join('\n');
}

/** A subcommand module: parses its own argv and runs until done (servers run until signalled). */
export interface Command {
  readonly summary: string;
  run(argv: readonly string[]): Promise<void>;
}
