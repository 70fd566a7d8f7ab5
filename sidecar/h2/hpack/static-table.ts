/**
 * The HPACK static table (RFC 7541 Appendix A) and the lookup maps the encoder uses to find
 * an index for a field without scanning.
 */

/** Entries 1..61 of the static table; slot 0 is unused so that the wire index is the array index. */
const STATIC_ENTRIES: ReadonlyArray<readonly [string, string]> = [
  ['', ''],
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

export const STATIC_TABLE_LENGTH = 61;

/** Names by wire index (1..61); flat arrays keep the decoder's indexed path to one load each. */
export const STATIC_NAMES: readonly string[] = STATIC_ENTRIES.map((entry) => entry[0]);
export const STATIC_VALUES: readonly string[] = STATIC_ENTRIES.map((entry) => entry[1]);

/**
 * name → (value → index). Nested rather than keyed by `name + value` so that a lookup allocates
 * no joined string on the encoder's hot path.
 */
export const STATIC_EXACT_INDEX: ReadonlyMap<string, ReadonlyMap<string, number>> = buildExactIndex();

/** name → the lowest static index carrying that name (the shortest integer on the wire). */
export const STATIC_NAME_INDEX: ReadonlyMap<string, number> = buildNameIndex();

function buildExactIndex(): Map<string, Map<string, number>> {
  const byName = new Map<string, Map<string, number>>();
  for (let index = 1; index <= STATIC_TABLE_LENGTH; index++) {
    const [name, value] = STATIC_ENTRIES[index]!;
    let byValue = byName.get(name);
    if (byValue === undefined) byName.set(name, (byValue = new Map()));
    if (!byValue.has(value)) byValue.set(value, index);
  }
  return byName;
}

function buildNameIndex(): Map<string, number> {
  const byName = new Map<string, number>();
  for (let index = 1; index <= STATIC_TABLE_LENGTH; index++) {
    const name = STATIC_ENTRIES[index]![0];
    if (!byName.has(name)) byName.set(name, index);
  }
  return byName;
}
