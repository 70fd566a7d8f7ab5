/** Field checks the resource kinds share, on top of lib/validate.ts's Checker. */
import { Checker, DNS_LABEL, describe, type Obj } from '../../lib/validate.js';
import { GRPC_STATUS_NAMES, type GrpcStatusName } from './types.js';

/**
 * A Checker that says "is required" for a missing field instead of "got undefined undefined", and
 * names root fields of a document without a leading dot (`kind`, not `.kind`).
 */
export class FieldChecker extends Checker {
  override fail(path: string, why: string): undefined {
    this.problems.push(path ? `${path}: ${why}` : why);
    return undefined;
  }

  override known(o: Obj, path: string, keys: readonly string[]): void {
    // An empty key ("": 1) still needs a visible name, or the problem would have no path at the root.
    for (const k of Object.keys(o)) if (!keys.includes(k)) this.fail(at(path, k || '""'), `unknown field (known: ${keys.join(', ')})`);
  }

  override object(v: unknown, path: string): Obj | undefined {
    if (v === undefined) return this.fail(path, 'is required');
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return this.fail(path, `must be an object, got ${shown(v)}`);
    return v as Obj;
  }

  override array(v: unknown, path: string): unknown[] | undefined {
    if (v !== undefined && !Array.isArray(v)) return this.fail(path, `must be a list, got ${shown(v)}`);
    return super.array(v, path);
  }

  override bool(v: unknown, path: string, dflt?: boolean): boolean | undefined {
    if (v === undefined && dflt === undefined) return this.fail(path, 'is required');
    if (v !== undefined && typeof v !== 'boolean') return this.fail(path, `must be true or false, got ${shown(v)}`);
    return super.bool(v, path, dflt);
  }

  override string(v: unknown, path: string, pattern?: RegExp, hint?: string): string | undefined {
    if (v === undefined) return this.fail(path, 'is required');
    if (typeof v !== 'string' || v.length === 0) return this.fail(path, `must be a non-empty string, got ${shown(v)}`);
    // The base class would echo the whole value: a megabyte-long name would make a megabyte-long error.
    if (pattern && !pattern.test(v)) return this.fail(path, `${shown(v)} is not valid${hint ? ` (${hint})` : ''}`);
    return v;
  }

  override int(v: unknown, path: string, min: number, max: number, dflt?: number): number | undefined {
    if (v === undefined) return dflt === undefined ? this.fail(path, 'is required') : dflt;
    // The base class prints the value with JSON.stringify, which throws on a cyclic YAML alias.
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) return this.fail(path, `must be an integer from ${min} to ${max}, got ${shown(v)}`);
    return v;
  }

  override number(v: unknown, path: string, min: number, max: number, dflt?: number): number | undefined {
    if (v === undefined) return dflt === undefined ? this.fail(path, 'is required') : dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) return this.fail(path, `must be a number from ${min} to ${max}, got ${shown(v)}`);
    return v;
  }

  override labels(v: unknown, path: string): Record<string, string> {
    if (v === undefined) return {};
    const o = this.object(v, path);
    if (!o) return {};
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(o)) {
      if (typeof val !== 'string') this.fail(at(path, k), `label values must be strings, got ${shown(val)}`);
      // Plain assignment would treat a `__proto__` key as the prototype and drop the label silently.
      else Object.defineProperty(out, k, { value: val, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }

  override oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], dflt?: T): T | undefined {
    if (v === undefined && dflt === undefined) return this.fail(path, `is required (one of ${allowed.join(', ')})`);
    if (v !== undefined && (typeof v !== 'string' || !(allowed as readonly string[]).includes(v))) {
      return this.fail(path, `must be one of ${allowed.join(', ')}, got ${shown(v)}`);
    }
    return super.oneOf(v, path, allowed, dflt);
  }
}

/** How a wrong value appears in a message: as written in the file (`42`, `"x"`, `null`), or its shape. */
export function shown(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v !== null && typeof v === 'object') return 'an object';
  if (typeof v === 'string') {
    return v.length <= SHOWN_STRING_MAX ? JSON.stringify(v) : `${JSON.stringify(v.slice(0, SHOWN_STRING_MAX))}... (${v.length} characters)`;
  }
  // JSON.stringify would print YAML's .nan and .inf as null.
  if (typeof v === 'number') return Number.isFinite(v) ? JSON.stringify(v) : String(v);
  if (typeof v === 'boolean' || v === null) return JSON.stringify(v);
  return describe(v);
}

/** Enough of a wrong value to recognise it; the rest is counted, not echoed. */
const SHOWN_STRING_MAX = 80;

/** Names and namespaces become etcd key segments and DNS names: a DNS label, at most 63 characters. */
export function dnsLabel(c: Checker, v: unknown, path: string, hint = 'lower-case DNS label: a-z, 0-9 and -, starting and ending with a letter or digit'): string | undefined {
  const s = c.string(v, path, DNS_LABEL, hint);
  if (s !== undefined && s.length > DNS_LABEL_MAX) return c.fail(path, `must be at most ${DNS_LABEL_MAX} characters, got ${s.length}`);
  return s;
}

export const DNS_LABEL_MAX = 63;

/** `at('', 'port')` is `port`; `at('spec', 'port')` is `spec.port`: root fields of stored values have no prefix. */
export const at = (base: string, field: string): string => (base ? `${base}.${field}` : field);

/** The top level of a stored JSON value, whose field paths have no prefix. */
export function rootObject(c: Checker, v: unknown, what: string): Obj | undefined {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Obj;
  return c.fail('', `${what} must be a JSON object, got ${shown(v)}`);
}

/** A string that may be empty (a zone, a version), unlike Checker.string. */
export function text(c: Checker, v: unknown, path: string, dflt?: string): string | undefined {
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string') return c.fail(path, `must be a string, got ${shown(v)}`);
  return v;
}

/** An optional policy block: absent stays absent (the sidecar's default applies), present must be an object. */
export function block(c: Checker, v: unknown, path: string, keys: readonly string[]): Obj | undefined {
  if (v === undefined) return undefined;
  const o = c.object(v, path);
  if (o) c.known(o, path, keys);
  return o;
}

export function statusNames(c: Checker, v: unknown, path: string, dflt: readonly GrpcStatusName[]): GrpcStatusName[] {
  if (v === undefined) return [...dflt];
  const list = c.array(v, path);
  if (!list) return [];
  if (list.length === 0) c.fail(path, 'must list at least one gRPC status name');
  const out: GrpcStatusName[] = [];
  list.forEach((s, i) => {
    const name = c.oneOf(s, `${path}[${i}]`, GRPC_STATUS_NAMES);
    if (name !== undefined && !out.includes(name)) out.push(name);
  });
  return out;
}

/** Strings of a list, each checked by `one`; a missing list is empty. */
export function strings(c: Checker, v: unknown, path: string, one: (s: unknown, p: string) => string | undefined): string[] {
  return (c.array(v, path) ?? []).map((s, i) => one(s, `${path}[${i}]`)).filter((s): s is string => s !== undefined);
}
