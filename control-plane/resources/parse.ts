/**
 * `remora apply -f` input: a multi-document YAML string → validated resources. Every problem is
 * reported, each naming its document and field path, e.g.
 *   mesh.yaml document 3 (Route shop/catalog-canary): spec.match.service: must be a non-empty string, got 42
 * so a user fixes a file in one pass instead of one error per run.
 */
import { parseAllDocuments } from 'yaml';
import { FieldChecker } from './fields.js';
import { KIND_NAMES } from './kinds.js';
import { checkResource } from './resource.js';
import type { Resource } from './types.js';

export class ResourceValidationError extends Error {
  readonly code = 'REMORA_RESOURCE_INVALID';
  constructor(readonly problems: readonly string[]) {
    super(`invalid resources:\n  ${problems.join('\n  ')}`);
    this.name = 'ResourceValidationError';
  }
}

export interface ParsedResources {
  readonly resources: readonly Resource[];
  /** Empty when every document is valid. */
  readonly errors: readonly string[];
}

/** `document 3 (Route shop/catalog-canary)`, from whatever of kind and metadata the document has. */
function label(n: number, doc: unknown): string {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return `document ${n}`;
  const o = doc as Record<string, unknown>;
  const kind = typeof o.kind === 'string' ? o.kind : undefined;
  const meta = o.metadata !== null && typeof o.metadata === 'object' ? (o.metadata as Record<string, unknown>) : {};
  const name = typeof meta.name === 'string' ? meta.name : undefined;
  const ns = typeof meta.namespace === 'string' ? meta.namespace : 'default';
  if (!kind && !name) return `document ${n}`;
  return `document ${n} (${[kind, name && `${ns}/${name}`].filter(Boolean).join(' ')})`;
}

export function parseResources(text: string, source: string): ParsedResources {
  const resources: Resource[] = [];
  const errors: string[] = [];
  const seen = new Map<string, number>();
  const docs = parseAllDocuments(text);
  // parseAllDocuments returns an EmptyStream (not an array) for input with no documents at all.
  const list = Array.isArray(docs) ? docs : [];
  list.forEach((doc, i) => {
    const n = i + 1;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) errors.push(`${source} document ${n}: not valid YAML: ${e.message.split('\n')[0]}`);
      return;
    }
    let content: unknown;
    try {
      content = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // An alias bomb ("billion laughs") stops here rather than taking the whole apply down.
      errors.push(`${source} document ${n}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
      return;
    }
    // `---` at the end of a file, or a document of only comments.
    if (content === null || content === undefined) return;
    const c = new FieldChecker();
    const r = checkResource(c, content);
    const where = `${source} ${label(n, content)}`;
    for (const p of c.problems) errors.push(`${where}: ${p}`);
    if (!r) return;
    const id = `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
    const first = seen.get(id);
    if (first !== undefined) {
      errors.push(`${where}: ${KIND_NAMES[r.kind].singular} ${r.metadata.namespace}/${r.metadata.name} is already defined in document ${first}`);
      return;
    }
    seen.set(id, n);
    resources.push(r);
  });
  if (resources.length === 0 && errors.length === 0) errors.push(`${source}: no resources found (expected YAML documents with kind, metadata and spec)`);
  return { resources, errors };
}

/** Like parseResources, but throws ResourceValidationError unless every document is valid. */
export function parseResourcesStrict(text: string, source: string): readonly Resource[] {
  const { resources, errors } = parseResources(text, source);
  if (errors.length > 0) throw new ResourceValidationError(errors);
  return resources;
}
