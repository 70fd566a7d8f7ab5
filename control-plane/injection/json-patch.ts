/**
 * RFC 6902 JSON Patch from the difference of two JSON values (the pod before and after injection).
 *
 * Arrays are compared by common prefix and suffix, so inserting containers at the front or
 * volumes at the end yields `add` ops at the right indices rather than a rewrite of the list.
 * Ops apply in order; indices account for earlier ops. Paths escape `~` and `/` (RFC 6901).
 */
export type Segment = string | number;

export interface SegmentOp {
  readonly op: 'add' | 'remove' | 'replace';
  readonly path: readonly Segment[];
  readonly value?: unknown;
}

export interface JsonPatchOp {
  readonly op: 'add' | 'remove' | 'replace';
  readonly path: string;
  readonly value?: unknown;
}

export function escapePointerSegment(s: Segment): string {
  return String(s).replace(/~/g, '~0').replace(/\//g, '~1');
}

export function pointer(path: readonly Segment[]): string {
  return path.map((s) => `/${escapePointerSegment(s)}`).join('');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

function diffInto(a: unknown, b: unknown, path: Segment[], ops: SegmentOp[]): void {
  if (deepEqual(a, b)) return;
  if (Array.isArray(a) && Array.isArray(b)) {
    let pre = 0;
    while (pre < a.length && pre < b.length && deepEqual(a[pre], b[pre])) pre++;
    let suf = 0;
    while (suf < a.length - pre && suf < b.length - pre && deepEqual(a[a.length - 1 - suf], b[b.length - 1 - suf])) suf++;
    const oldMid = a.length - pre - suf;
    const newMid = b.length - pre - suf;
    const common = Math.min(oldMid, newMid);
    for (let i = 0; i < common; i++) diffInto(a[pre + i], b[pre + i], [...path, pre + i], ops);
    for (let i = common; i < newMid; i++) ops.push({ op: 'add', path: [...path, pre + i], value: b[pre + i] });
    for (let i = common; i < oldMid; i++) ops.push({ op: 'remove', path: [...path, pre + newMid] });
    return;
  }
  if (isObject(a) && isObject(b)) {
    for (const k of Object.keys(a)) {
      if (a[k] !== undefined && (!Object.prototype.hasOwnProperty.call(b, k) || b[k] === undefined)) ops.push({ op: 'remove', path: [...path, k] });
    }
    for (const k of Object.keys(b)) {
      if (b[k] === undefined) continue;
      if (!Object.prototype.hasOwnProperty.call(a, k) || a[k] === undefined) ops.push({ op: 'add', path: [...path, k], value: b[k] });
      else diffInto(a[k], b[k], [...path, k], ops);
    }
    return;
  }
  ops.push({ op: 'replace', path, value: b });
}

/** Ops turning `a` into `b`, with paths as segment lists (for applying to other trees, e.g. YAML). */
export function diffSegments(a: unknown, b: unknown): SegmentOp[] {
  const ops: SegmentOp[] = [];
  diffInto(a, b, [], ops);
  return ops;
}

/** An RFC 6902 JSON Patch turning `a` into `b`. */
export function jsonPatch(a: unknown, b: unknown): JsonPatchOp[] {
  return diffSegments(a, b).map((o) => (o.op === 'remove' ? { op: o.op, path: pointer(o.path) } : { op: o.op, path: pointer(o.path), value: o.value }));
}
