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
    for (const k of Object.keys(o)) if (!keys.includes(k)) this.fail(at(path, k), `unknown field (known: ${keys.join(', ')})`);
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

  override string(v: unknown, path: string, pattern?: RegExp, hint?: string): string | undefined {
    if (v === undefined) return this.fail(path, 'is required');
    if (typeof v !== 'string' || v.length === 0) return this.fail(path, `must be a non-empty string, got ${shown(v)}`);
    return super.string(v, path, pattern, hint);
  }

  override bool(v: unknown, path: string, dflt?: boolean): boolean | undefined {
    if (v === undefined && dflt === undefined) return this.fail(path, 'is required');
    if (v !== undefined && typeof v !== 'boolean') return this.fail(path, `must be true or false, got ${shown(v)}`);
    return super.bool(v, path, dflt);
  }

  override int(v: unknown, path: string, min: number, max: number, dflt?: number): number | undefined {
    return v === undefined && dflt === undefined ? this.fail(path, 'is required') : super.int(v, path, min, max, dflt);
  }

  override labels(v: unknown, path: string): Record<string, string> {
    if (v === undefined) return {};
    const o = this.object(v, path);
    if (!o) return {};
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(o)) {
      if (typeof val !== 'string') this.fail(at(path, k), `label values must be strings, got ${shown(val)}`);
      else out[k] = val;
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
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v === null) return JSON.stringify(v);
  return describe(v);
}

/** Names and namespaces become etcd key segments and DNS names: a DNS label, at most 63 characters. */
export function dnsLabel(c: Checker, v: unknown, path: string): string | undefined {
  const s = c.string(v, path, DNS_LABEL, 'lower-case DNS label: a-z, 0-9 and -, starting and ending with a letter or digit');
  if (s !== undefined && s.length > 63) return c.fail(path, `must be at most 63 characters, got ${s.length}`);
  return s;
}

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
