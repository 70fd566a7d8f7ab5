/**
 * The access log: one JSON line per call, on, off or sampled, switched at runtime through the
 * admin port (POST /logging?access=on&sample=0.1). Nothing is built for a call that is not logged.
 */
import type { Logger } from '../../lib/log.js';

export interface AccessLogSettings {
  enabled: boolean;
  /** 0..1: the share of calls logged while enabled. */
  sampleRate: number;
}

export interface AccessLogEntry {
  readonly traceId: string | undefined;
  readonly direction: string;
  readonly source: string;
  readonly sourceIdentity: string | undefined;
  readonly destination: string;
  readonly endpoint: string;
  readonly method: string;
  readonly grpcStatus: number;
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly retries: number;
  /** Why the sidecar answered itself (timeout, overflow, denied, no-route...), if it did. */
  readonly flag: string | undefined;
}

export class AccessLog {
  readonly settings: AccessLogSettings;
  private readonly log: Logger;

  /** `log` should be its own logger at level info: the access log does not follow the log level. */
  constructor(log: Logger, settings: AccessLogSettings) {
    this.log = log;
    this.settings = { ...settings };
  }

  /** Cheap check before building an entry. */
  wants(): boolean {
    const s = this.settings;
    return s.enabled && (s.sampleRate >= 1 || Math.random() < s.sampleRate);
  }

  write(entry: AccessLogEntry): void {
    this.log.info(entry, 'access');
  }
}
