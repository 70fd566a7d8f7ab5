/** gRPC status codes by name, for flags and for printing. */
import { status } from '@grpc/grpc-js';
import { UsageError } from '../cli/flags.js';

/** Name of a status code, e.g. 14 → "UNAVAILABLE"; unknown numbers print as "CODE_<n>". */
export function statusName(code: number): string {
  const name: unknown = (status as unknown as Record<number, unknown>)[code];
  return typeof name === 'string' ? name : `CODE_${code}`;
}

/** Accepts "RESOURCE_EXHAUSTED", "resource_exhausted" or "8". OK (0) is refused: it is not an error. */
export function parseErrorCode(raw: string, flag: string): status {
  const trimmed = raw.trim();
  let code: number | undefined;
  if (/^\d+$/.test(trimmed)) code = Number(trimmed);
  else {
    const byName: unknown = (status as unknown as Record<string, unknown>)[trimmed.toUpperCase()];
    if (typeof byName === 'number') code = byName;
  }
  if (code === undefined || code < 1 || code > 16) {
    throw new UsageError(`${flag} must be a gRPC error status name or number 1..16 (e.g. UNAVAILABLE or 14), got ${JSON.stringify(raw)}`);
  }
  return code as status;
}
