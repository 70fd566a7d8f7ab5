/**
 * Shutdown for the chaos and soak programs: on SIGINT/SIGTERM, stop the load and every process
 * of the mesh by PID before exiting. A second signal exits at once (lib/processes.ts still
 * SIGKILLs the children it knows on exit, and each etcd has its own watchdog).
 */
let stopping = false;

/** True once a signal asked us to stop: the program should report nothing further, cleanup is under way. */
export function interrupted(): boolean {
  return stopping;
}

export function stopOnSignal(cleanup: () => Promise<void>, say: (line: string) => void): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      const code = signal === 'SIGINT' ? 130 : 143;
      if (stopping) process.exit(code);
      stopping = true;
      say(`${signal}: stopping the mesh (again to exit at once)`);
      void cleanup().finally(() => process.exit(code));
    });
  }
}
