/**
 * Field-path validation for untrusted documents (YAML files, etcd values, pushed config): a
 * Checker collects every problem as `path: why` instead of stopping at the first.
 */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export type Obj = Record<string, unknown>;

export class Checker {
  readonly problems: string[] = [];

  fail(path: string, why: string): undefined {
    this.problems.push(`${path}: ${why}`);
    return undefined;
  }

  object(v: unknown, path: string): Obj | undefined {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return this.fail(path, `must be an object, got ${describe(v)}`);
    return v as Obj;
  }

  /** Unknown fields are errors: a typo must not silently fall back to a default. */
  known(o: Obj, path: string, keys: readonly string[]): void {
    for (const k of Object.keys(o)) if (!keys.includes(k)) this.fail(`${path}.${k}`, `unknown field (known: ${keys.join(', ')})`);
  }

  array(v: unknown, path: string): unknown[] | undefined {
    if (v === undefined) return [];
    if (!Array.isArray(v)) return this.fail(path, `must be a list, got ${describe(v)}`);
    return v;
  }

  string(v: unknown, path: string, pattern?: RegExp, hint?: string): string | undefined {
    if (typeof v !== 'string' || v.length === 0) return this.fail(path, `must be a non-empty string, got ${describe(v)}`);
    if (pattern && !pattern.test(v)) return this.fail(path, `${JSON.stringify(v)} is not valid${hint ? ` (${hint})` : ''}`);
    return v;
  }

  int(v: unknown, path: string, min: number, max: number, dflt?: number): number | undefined {
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      return this.fail(path, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  number(v: unknown, path: string, min: number, max: number, dflt?: number): number | undefined {
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      return this.fail(path, `must be a number from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  bool(v: unknown, path: string, dflt?: boolean): boolean | undefined {
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== 'boolean') return this.fail(path, `must be true or false, got ${describe(v)}`);
    return v;
  }

  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], dflt?: T): T | undefined {
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      return this.fail(path, `must be one of ${allowed.join(', ')}, got ${describe(v)}`);
    }
    return v as T;
  }

  labels(v: unknown, path: string): Record<string, string> {
    if (v === undefined) return {};
    const o = this.object(v, path);
    if (!o) return {};
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(o)) {
      if (typeof val !== 'string') this.fail(`${path}.${k}`, `label values must be strings, got ${describe(val)}`);
      else out[k] = val;
    }
    return out;
  }
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return JSON.stringify(v);
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

export function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}
