/**
 * One pino logger per process. Level from REMORA_LOG_LEVEL (default info); JSON lines to stdout.
 * Callers on the hot path must guard with `log.isLevelEnabled(...)` before building messages.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

let stdoutGone = false;

/**
 * stdout through node's own stream rather than pino's default sonic-boom, whose synchronous flush
 * at exit retries a broken pipe forever: a child whose parent died (so its stdout pipe has no
 * reader) would hang in that loop instead of shutting down. Once stdout is gone, lines are dropped.
 */
const stdoutDestination: DestinationStream = {
  write(line: string): void {
    if (!stdoutGone) process.stdout.write(line);
  },
};

process.stdout.on('error', () => {
  stdoutGone = true;
});

export function createLogger(component: string, level = process.env.REMORA_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: component, level, base: { pid: process.pid } }, stdoutDestination);
}
