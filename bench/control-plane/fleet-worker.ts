/**
 * Fleet worker process: `node dist/bench/control-plane/fleet-worker.js '<FleetOptions JSON>'`.
 * The simulated sidecars live apart from the orchestrator and the control plane so each one's CPU
 * is its own. Speaks JSON lines on stdout: {"event":"log",...} while running, then
 * {"event":"result","result":FleetResult}.
 */
import { fleetBudgetMs, parseFleetOptions } from './options.js';
import { runFleet } from './run-fleet.js';
import type { FleetEvent } from './types.js';

function emit(e: FleetEvent): void {
  process.stdout.write(JSON.stringify(e) + '\n');
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error("usage: fleet-worker.js '<options JSON>'");
  const opts = parseFleetOptions(arg);
  setTimeout(() => {
    process.stderr.write(`fleet-worker: still running after ${fleetBudgetMs(opts)} ms; giving up\n`);
    process.exit(3);
  }, fleetBudgetMs(opts)).unref();
  const result = await runFleet(opts, (message) => emit({ event: 'log', message }));
  emit({ event: 'result', result });
  // Closing channels may keep the loop alive briefly; the result is already out.
  process.stdout.write('', () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`fleet-worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
