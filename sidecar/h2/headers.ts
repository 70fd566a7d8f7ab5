/**
 * Header lists between the wire (names and values alternating, as HPACK decodes them) and the
 * header objects the proxy works with (node's IncomingHttpHeaders shape), with RFC 9113 8.2-8.3
 * validation on the way in: a message that breaks these rules is malformed and its stream is
 * reset, as nghttp2 does.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';

export type HeaderKind = 'request' | 'response' | 'trailers';

/** RFC 9110 token characters, lowercase only (HTTP/2 field names must be lowercase). */
const NAME_CHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") NAME_CHAR[c.charCodeAt(0)] = 1;

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path', ':protocol']);

/**
 * The prototype of every header object: it has no prototype itself, so no field name reaches
 * Object.prototype (a field named __proto__ is just a field). Objects made from it stay in V8's
 * fast mode, where Object.create(null) ones start as slow dictionaries.
 */
const HEADERS_PROTOTYPE = Object.freeze(Object.create(null) as object);

function validName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) if (NAME_CHAR[name.charCodeAt(i)] !== 1) return false;
  return true;
}

function validValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 10 || c === 13) return false;
  }
  return true;
}

/**
 * The header object for a decoded list, or a string saying why the list is malformed. Repeated
 * fields become arrays (cookie crumbs are joined with "; ", RFC 9113 8.2.3); :status is a number,
 * as node gives it.
 */
export function toHeaderObject(fields: readonly string[], kind: HeaderKind): IncomingHttpHeaders | string {
  const obj = Object.create(HEADERS_PROTOTYPE) as Record<string, string | string[] | number>;
  let regularSeen = false;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    if (!validValue(value)) return `invalid value for ${JSON.stringify(name)}`;
    if (name.charCodeAt(0) === 58 /* : */) {
      if (regularSeen) return `pseudo-header ${name} after a regular header`;
      if (kind === 'trailers') return `pseudo-header ${name} in trailers`;
      if (kind === 'request' ? !REQUEST_PSEUDO.has(name) : name !== ':status') return `unknown pseudo-header ${name}`;
      if (obj[name] !== undefined) return `repeated pseudo-header ${name}`;
      if (name === ':status') {
        const status = statusCode(value);
        if (status < 0) return `invalid :status ${JSON.stringify(value)}`;
        obj[name] = status;
      } else {
        obj[name] = value;
      }
      continue;
    }
    regularSeen = true;
    if (!validName(name)) return `invalid header name ${JSON.stringify(name)}`;
    if (CONNECTION_SPECIFIC.has(name)) return `connection-specific header ${name}`;
    if (name === 'te' && value !== 'trailers') return 'te other than "trailers"';
    const existing = obj[name];
    if (existing === undefined) obj[name] = value;
    else if (name === 'cookie') obj[name] = `${existing as string}; ${value}`;
    else if (Array.isArray(existing)) existing.push(value);
    else obj[name] = [existing as string, value];
  }
  if (kind === 'request') {
    const method = obj[':method'];
    if (method === undefined) return 'no :method';
    if (method !== 'CONNECT') {
      if (obj[':scheme'] === undefined) return 'no :scheme';
      if (!obj[':path']) return 'no :path';
    }
  } else if (kind === 'response' && obj[':status'] === undefined) {
    return 'no :status';
  }
  return obj as IncomingHttpHeaders;
}

/** A three-digit status from 100 to 999, or -1. */
function statusCode(value: string): number {
  if (value.length !== 3) return -1;
  const a = value.charCodeAt(0) - 48;
  const b = value.charCodeAt(1) - 48;
  const c = value.charCodeAt(2) - 48;
  if (a < 1 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return -1;
  return a * 100 + b * 10 + c;
}

/**
 * A header object as a field list for the encoder: pseudo-headers first (as HTTP/2 requires),
 * arrays as repeated fields, numbers as text, undefined skipped. Throws on connection-specific
 * fields, which HTTP/2 forbids (a programming error: received lists were validated).
 */
export function toFieldList(headers: OutgoingHttpHeaders | IncomingHttpHeaders | Readonly<Record<string, string>>): string[] {
  const fields: string[] = [];
  let regularSeen = false;
  for (const name in headers) {
    const value = (headers as Record<string, string | number | readonly string[] | undefined>)[name];
    if (value === undefined) continue;
    if (name.charCodeAt(0) === 58 /* : */) {
      // Rare (an object built with a pseudo-header after regular ones): it still goes in front.
      if (regularSeen) fields.unshift(name, String(value));
      else fields.push(name, String(value));
      continue;
    }
    if (CONNECTION_SPECIFIC.has(name)) throw new TypeError(`HTTP/2 forbids the connection-specific header ${name}`);
    regularSeen = true;
    if (typeof value === 'string') fields.push(name, value);
    else if (typeof value === 'number') fields.push(name, String(value));
    else for (const v of value) fields.push(name, v);
  }
  return fields;
}
