/**
 * Which methods are safe to retry, and which are unary, as learnt from descriptors (server
 * reflection, descriptor sets). The retry path asks on every decision, so levelOf and kindOf are
 * one Map lookup on a precomputed merge; all the work happens in add/forget, which run when
 * descriptors arrive, not per call.
 */
import type { IdempotencyLevel, MethodKind, MethodKinds, MethodLevels } from './levels.js';

export type { IdempotencyLevel, MethodKind, MethodKinds, MethodLevels } from './levels.js';

/** Higher is safer to retry. */
const SAFETY: Readonly<Record<IdempotencyLevel, number>> = { UNKNOWN: 0, IDEMPOTENT: 1, NO_SIDE_EFFECTS: 2 };

const NO_KINDS: MethodKinds = new Map();

interface SourceReport {
  readonly levels: Map<string, IdempotencyLevel>;
  readonly kinds: Map<string, MethodKind>;
}

export class IdempotencyCatalog {
  /** What each source said, per path. */
  private readonly bySource = new Map<string, SourceReport>();
  /** The answers levelOf and kindOf give, kept up to date by add and forget. */
  private readonly merged = new Map<string, IdempotencyLevel>();
  private readonly mergedKinds = new Map<string, MethodKind>();

  /** `path` is the call's `:path`, e.g. `/remora.demo.v1.CatalogService/GetProduct`. */
  levelOf(path: string): IdempotencyLevel {
    return this.merged.get(path) ?? 'UNKNOWN';
  }

  /** Undefined when no source knows the method, or sources disagree on its shape. */
  kindOf(path: string): MethodKind | undefined {
    return this.mergedKinds.get(path);
  }

  /**
   * Records what `source` (an endpoint's address, a descriptor file; default "") says. Within a
   * source the newest report of a path wins (a redeployed endpoint re-learnt). Across sources the
   * least safe level wins: during a rolling deploy old and new servers may disagree, and a retry
   * can land on either, so only what all of them promise is safe to act on. The same goes for
   * kinds: a method is unary only if every source that knows it says so.
   */
  add(levels: MethodLevels, source = '', kinds: MethodKinds = NO_KINDS): void {
    let known = this.bySource.get(source);
    if (!known) {
      known = { levels: new Map(), kinds: new Map() };
      this.bySource.set(source, known);
    }
    for (const [path, level] of levels) known.levels.set(path, level);
    for (const [path, kind] of kinds) known.kinds.set(path, kind);
    for (const path of levels.keys()) this.remerge(path);
    for (const path of kinds.keys()) this.remergeKind(path);
  }

  /** Drops what `source` said (an endpoint that left); its paths are re-merged from the others. */
  forget(source: string): boolean {
    const known = this.bySource.get(source);
    if (!known) return false;
    this.bySource.delete(source);
    for (const path of known.levels.keys()) this.remerge(path);
    for (const path of known.kinds.keys()) this.remergeKind(path);
    return true;
  }

  /** The sources that reported something, e.g. to forget those that are gone. */
  sources(): string[] {
    return [...this.bySource.keys()];
  }

  /** Paths with a known level, for admin dumps. */
  get size(): number {
    return this.merged.size;
  }

  entries(): IterableIterator<[string, IdempotencyLevel]> {
    return this.merged.entries();
  }

  private remerge(path: string): void {
    let level: IdempotencyLevel | undefined;
    for (const known of this.bySource.values()) {
      const said = known.levels.get(path);
      if (said !== undefined && (level === undefined || SAFETY[said] < SAFETY[level])) level = said;
    }
    if (level === undefined) this.merged.delete(path);
    else this.merged.set(path, level);
  }

  private remergeKind(path: string): void {
    let kind: MethodKind | undefined;
    let disagree = false;
    for (const known of this.bySource.values()) {
      const said = known.kinds.get(path);
      if (said === undefined) continue;
      if (kind !== undefined && kind !== said) disagree = true;
      kind = said;
    }
    if (kind === undefined || disagree) this.mergedKinds.delete(path);
    else this.mergedKinds.set(path, kind);
  }
}
