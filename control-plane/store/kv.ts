/** Thin helpers over etcd's raw KV API, which the store uses for exact control of revisions. */
import { Range, type Etcd3, type IKeyValue } from 'etcd3';

const PAGE = 500;

export interface RangeResult {
  readonly revision: string;
  readonly kvs: readonly IKeyValue[];
}

/**
 * Every key under `prefix` at one revision: the first page fixes the revision and later pages
 * read at it, so a large range is still one consistent snapshot (no giant single response).
 */
export async function rangePrefix(client: Etcd3, prefix: string, atRevision?: string): Promise<RangeResult> {
  const { start, end } = Range.prefix(prefix);
  const kvs: IKeyValue[] = [];
  let key = start;
  let revision = atRevision;
  for (;;) {
    const res = await client.kv.range({ key, range_end: end, limit: PAGE, ...(revision ? { revision } : {}) });
    revision ??= res.header.revision;
    kvs.push(...res.kvs);
    if (!res.more || res.kvs.length === 0) return { revision, kvs };
    // The next page starts just after the last key seen.
    key = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
  }
}

export const keyBuf = (key: string): Buffer => Buffer.from(key, 'utf8');
