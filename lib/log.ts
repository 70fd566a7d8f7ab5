/**
 * One pino logger per process. Level from REMORA_LOG_LEVEL (default info); JSON to stdout.
 * Callers on the hot path must guard with `log.isLevelEnabled(...)` before building messages.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(component: string, level = process.env.REMORA_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: component, level, base: { pid: process.pid } });
}
