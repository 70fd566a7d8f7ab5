/**
 * Which methods are safe to retry, as learnt from descriptors (server reflection, descriptor sets).
 * The retry path asks on every decision, so levelOf is one Map lookup on a precomputed merge; all
 * the work happens in add/forget, which run when descriptors arrive, not per call.
 */
import type { IdempotencyLevel, MethodLevels } from './levels.js';

export type { IdempotencyLevel, MethodLevels } from './levels.js';

/** Higher is safer to retry. */
const SAFETY: Readonly<Record<IdempotencyLevel, number>> = { UNKNOWN: 0, IDEMPOTENT: 1, NO_SIDE_EFFECTS: 2 };

export class IdempotencyCatalog {
  /** What each source said, per path. */
  private readonly bySource = new Map<string, Map<string, IdempotencyLevel>>();
  /** The answer levelOf gives, kept up to date by add and forget. */
  private readonly merged = new Map<string, IdempotencyLevel>();

  /** `path` is the call's `:path`, e.g. `/remora.demo.v1.CatalogService/GetProduct`. */
  levelOf(path: string): IdempotencyLevel {
    return this.merged.get(path) ?? 'UNKNOWN';
  }

  /**
   * Records what `source` (an endpoint's address, a descriptor file; default "") says. Within a
   * source the newest report of a path wins (a redeployed endpoint re-learnt). Across sources the
   * least safe level wins: during a rolling deploy old and new servers may disagree, and a retry
   * can land on either, so only what all of them promise is safe to act on.
   */
  add(levels: MethodLevels, source = ''): void {
    let known = this.bySource.get(source);
    if (!known) {
      known = new Map();
      this.bySource.set(source, known);
    }
    for (const [path, level] of levels) known.set(path, level);
    for (const path of levels.keys()) this.remerge(path);
  }

  /** Drops what `source` said (an endpoint that left); its paths are re-merged from the others. */
  forget(source: string): boolean {
    const known = this.bySource.get(source);
    if (!known) return false;
    this.bySource.delete(source);
    for (const path of known.keys()) this.remerge(path);
    return true;
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
      const said = known.get(path);
      if (said !== undefined && (level === undefined || SAFETY[said] < SAFETY[level])) level = said;
    }
    if (level === undefined) this.merged.delete(path);
    else this.merged.set(path, level);
  }
}
