/**
 * Injection over a multi-document YAML manifest (`remora inject -f`). Each injected document is
 * edited in place with the same minimal diff the webhook sends as a JSON Patch, so its untouched
 * parts keep their comments and layout; documents that need no injection are re-emitted as parsed
 * (same content; spacing may be normalised).
 */
import { parseAllDocuments, isMap, isSeq, type Document } from 'yaml';
import { deepEqual, diffSegments, type SegmentOp } from './json-patch.js';
import type { InjectOptions } from './options.js';
import { injectObject, type ObjectResult } from './workload.js';

export class ManifestError extends Error {
  readonly code = 'REMORA_BAD_MANIFEST';
  constructor(
    message: string,
    /** 1-based index of the document that does not parse. */
    readonly documentIndex: number,
  ) {
    super(message);
    this.name = 'ManifestError';
  }
}

export interface ManifestInjection {
  readonly text: string;
  /** One per object in the manifest (List items count one each); empty documents have none. */
  readonly results: ObjectResult[];
}

function applyOp(doc: Document, op: SegmentOp): void {
  const node = op.op === 'remove' ? undefined : doc.createNode(op.value);
  if (op.path.length === 0) {
    doc.contents = node ?? null;
    return;
  }
  const parentPath = op.path.slice(0, -1);
  const last = op.path[op.path.length - 1]!;
  const parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true);
  if (isSeq(parent) && typeof last === 'number') {
    if (op.op === 'add') parent.items.splice(last, 0, node);
    else if (op.op === 'remove') parent.items.splice(last, 1);
    else parent.items[last] = node;
  } else if (isMap(parent)) {
    if (op.op === 'remove') parent.delete(last);
    else parent.set(last, node);
  } else {
    throw new Error(`cannot apply ${op.op} at ${op.path.join('.')}`);
  }
}

const TO_STRING = { lineWidth: 0 } as const;

/**
 * Injects every pod template in `text`. Throws ManifestError (naming the document) if any document
 * does not parse; nothing is returned then.
 */
export function injectManifest(text: string, opts: InjectOptions): ManifestInjection {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) return { text, results: [] }; // an empty stream
  docs.forEach((doc, i) => {
    const err = doc.errors[0];
    if (err) throw new ManifestError(`document ${i + 1}: ${err.message.split('\n')[0]}`, i + 1);
  });
  const results: ObjectResult[] = [];
  const out: string[] = [];
  for (const doc of docs) {
    const before: unknown = doc.toJS({ maxAliasCount: 1000 });
    if (before === null || before === undefined) {
      // An empty document (a trailing `---`, say) is dropped unless it carries comments.
      if (doc.commentBefore || doc.comment) out.push(doc.toString(TO_STRING));
      continue;
    }
    const r = injectObject(before, opts);
    results.push(...r.results);
    if (r.changed) {
      try {
        for (const op of diffSegments(before, r.object)) applyOp(doc, op);
        if (!deepEqual(doc.toJS({ maxAliasCount: 1000 }), r.object)) throw new Error('edited document differs');
      } catch {
        // Aliases or unusual nodes: emit the injected object as a fresh document instead.
        doc.contents = doc.createNode(r.object) as typeof doc.contents;
      }
    }
    out.push(doc.toString(TO_STRING));
  }
  return { text: out.join(''), results };
}
