#!/usr/bin/env node
import { UsageError, type Command } from './flags.js';

/** Subcommands load lazily so `remora sidecar` never pays for the control plane's imports. */
const commands: Record<string, () => Promise<Command>> = {
  sidecar: async () => (await import('../sidecar/command.js')).sidecarCommand,
  'control-plane': async () => (await import('../control-plane/command.js')).controlPlaneCommand,
  'demo-service': async () => (await import('../demo-services/command.js')).demoServiceCommand,
  'demo-client': async () => (await import('../demo-services/client-command.js')).demoClientCommand,
  demo: async () => (await import('../demo-services/demo-command.js')).demoCommand,
  bench: async () => (await import('../bench/command.js')).benchCommand,
  apply: async () => (await import('./apply-command.js')).applyCommand,
  get: async () => (await import('./get-command.js')).getCommand,
  delete: async () => (await import('./delete-command.js')).deleteCommand,
  status: async () => (await import('./status-command.js')).statusCommand,
  ca: async () => (await import('./ca-command.js')).caCommand,
  inject: async () => (await import('./inject-command.js')).injectCommand,
  'init-iptables': async () => (await import('./init-iptables-command.js')).initIptablesCommand,
  'wait-ready': async () => (await import('./wait-ready-command.js')).waitReadyCommand,
};

function topUsage(): string {
  return [
    'Usage: remora <command> [flags]',
    '',
    'Commands:',
    ...Object.keys(commands).map((c) => `  ${c}`),
    '',
    'Run `remora <command> --help` for the flags of one command.',
  ].join('\n');
}

/**
 * A child started by lib/processes (tests, bench, `remora demo`) leaves when its parent dies, even
 * by SIGKILL (an ava timeout, say), instead of running on as an orphan holding ports.
 */
function exitWithParent(): void {
  const parent = Number(process.env.REMORA_PARENT_PID);
  if (!Number.isInteger(parent) || parent <= 1) return;
  const timer = setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch {
      clearInterval(timer);
      process.kill(process.pid, 'SIGTERM');
      setTimeout(() => process.exit(1), 5000).unref();
    }
  }, 1000);
  timer.unref();
}

async function main(argv: string[]): Promise<void> {
  exitWithParent();
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(topUsage() + '\n');
    return;
  }
  const load = commands[name];
  if (!load) throw new UsageError(`unknown command ${JSON.stringify(name)}\n\n${topUsage()}`);
  const command = await load();
  await command.run(rest);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`remora: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`remora: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
