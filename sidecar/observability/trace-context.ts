/**
 * Trace context on the wire: W3C Trace Context (`traceparent`, `tracestate`) and Zipkin's B3, both
 * the multi-header form (`x-b3-*`) and the single header (`b3`). The sidecar reads the caller's
 * context from the request headers and rewrites the same header object for the next hop, which
 * node then sends upstream as it is.
 *
 * Ids come from a fast non-cryptographic generator (xorshift128+, seeded once from the OS), formatted
 * through a byte→hex table: trace ids need to be unique, not unpredictable, and an id per call must
 * cost nanoseconds, not a trip to the kernel's entropy pool.
 */
import { randomFillSync } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http2';

export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. A 64-bit B3 trace id is padded on the left with zeros. */
  traceId: string;
  /** 16 lowercase hex digits, not all zero. */
  spanId: string;
  parentSpanId?: string;
  sampled: boolean;
  /** W3C `tracestate`, exactly as it came (duplicate fields joined with ','). */
  tracestate?: string;
  /**
   * B3 only: the caller sent ids but no sampling decision, leaving it to the receiver. `sampled`
   * is false until someone (a Tracer) decides.
   */
  deferred?: boolean;
  /** B3 debug (`x-b3-flags: 1`, or `d` in the single header): implies sampled, carried on in B3. */
  debug?: boolean;
}

export interface PropagationFormat {
  readonly w3c: boolean;
  readonly b3Multi: boolean;
  readonly b3Single: boolean;
}

// ---------------------------------------------------------------------------------------------
// Ids

/**
 * byte → its two lowercase hex digits, as character codes. An id is built by one
 * String.fromCharCode call: a single flat string, where concatenating two-digit pieces would
 * allocate an intermediate string per piece.
 */
const HEX_HI = new Uint8Array(256);
const HEX_LO = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  const digits = i.toString(16).padStart(2, '0');
  HEX_HI[i] = digits.charCodeAt(0);
  HEX_LO[i] = digits.charCodeAt(1);
}

/**
 * xorshift128+ (Vigna; shifts 23, 17, 26) on 64-bit words kept as 32-bit halves:
 * [s0 hi, s0 lo, s1 hi, s1 lo]. A typed array so that updating the state never boxes a number.
 * `out` receives the last draw: [hi, lo].
 */
const state = new Uint32Array(4);
const out = new Uint32Array(2);

function seed(): void {
  do randomFillSync(state);
  while ((state[0]! | state[1]! | state[2]! | state[3]!) === 0);
}
seed();

/** Draws the next 64 bits into `out`. */
function next64(): void {
  const s = state;
  let xh = s[0]!;
  let xl = s[1]!;
  const yh = s[2]!;
  const yl = s[3]!;
  s[0] = yh;
  s[1] = yl;
  // x ^= x << 23
  xh ^= (xh << 23) | (xl >>> 9);
  xl ^= xl << 23;
  // x ^= x >>> 17
  xl ^= (xl >>> 17) | (xh << 15);
  xh ^= xh >>> 17;
  // x ^= y ^ (y >>> 26)
  xl ^= yl ^ ((yl >>> 26) | (yh << 6));
  xh ^= yh ^ (yh >>> 26);
  s[2] = xh;
  s[3] = xl;
  // result = x + y (mod 2^64)
  const lo = ((xl >>> 0) + yl) >>> 0;
  const carry = lo < yl ? 1 : 0;
  out[0] = ((xh >>> 0) + yh + carry) >>> 0;
  out[1] = lo;
}

/** Two 32-bit words as 16 hex digits. */
function hex64(h: number, l: number): string {
  const H = HEX_HI;
  const L = HEX_LO;
  const h0 = h >>> 24, h1 = (h >>> 16) & 0xff, h2 = (h >>> 8) & 0xff, h3 = h & 0xff;
  const l0 = l >>> 24, l1 = (l >>> 16) & 0xff, l2 = (l >>> 8) & 0xff, l3 = l & 0xff;
  return String.fromCharCode(
    H[h0]!, L[h0]!, H[h1]!, L[h1]!, H[h2]!, L[h2]!, H[h3]!, L[h3]!,
    H[l0]!, L[l0]!, H[l1]!, L[l1]!, H[l2]!, L[l2]!, H[l3]!, L[l3]!,
  );
}

/** Four 32-bit words as 32 hex digits, one flat string. */
function hex128(a: number, b: number, c: number, d: number): string {
  const H = HEX_HI;
  const L = HEX_LO;
  const a0 = a >>> 24, a1 = (a >>> 16) & 0xff, a2 = (a >>> 8) & 0xff, a3 = a & 0xff;
  const b0 = b >>> 24, b1 = (b >>> 16) & 0xff, b2 = (b >>> 8) & 0xff, b3 = b & 0xff;
  const c0 = c >>> 24, c1 = (c >>> 16) & 0xff, c2 = (c >>> 8) & 0xff, c3 = c & 0xff;
  const d0 = d >>> 24, d1 = (d >>> 16) & 0xff, d2 = (d >>> 8) & 0xff, d3 = d & 0xff;
  return String.fromCharCode(
    H[a0]!, L[a0]!, H[a1]!, L[a1]!, H[a2]!, L[a2]!, H[a3]!, L[a3]!,
    H[b0]!, L[b0]!, H[b1]!, L[b1]!, H[b2]!, L[b2]!, H[b3]!, L[b3]!,
    H[c0]!, L[c0]!, H[c1]!, L[c1]!, H[c2]!, L[c2]!, H[c3]!, L[c3]!,
    H[d0]!, L[d0]!, H[d1]!, L[d1]!, H[d2]!, L[d2]!, H[d3]!, L[d3]!,
  );
}

/** 16 hex digits, never all zero. */
export function newSpanId(): string {
  do next64();
  while ((out[0]! | out[1]!) === 0);
  return hex64(out[0]!, out[1]!);
}

/** 32 hex digits, never all zero. */
export function newTraceId(): string {
  next64();
  const a = out[0]!;
  const b = out[1]!;
  let c: number, d: number;
  do {
    next64();
    c = out[0]!;
    d = out[1]!;
  } while ((a | b | c | d) === 0);
  return hex128(a, b, c, d);
}

/** A draw in [0, 2^30), for sampling decisions. */
export function randomInt30(): number {
  next64();
  return out[0]! >>> 2;
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers

const enum Hex {
  Invalid = 0,
  Zero = 1,
  NonZero = 2,
}

/** Whether s[from, to) is lowercase hex, and whether it is all zeros. */
function scanHex(s: string, from: number, to: number): Hex {
  let nonZero = false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x30) continue; // '0'
    if ((c > 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66)) nonZero = true;
    else return Hex.Invalid;
  }
  return nonZero ? Hex.NonZero : Hex.Zero;
}

/** A header that must occur once: a repeated one (node gives an array for some) counts as absent. */
function single(v: string | string[] | undefined): string | undefined {
  if (v === undefined || typeof v === 'string') return v;
  return v.length === 1 ? v[0] : undefined;
}

const ZERO_HIGH = '0000000000000000';

/** A B3 trace id (16 or 32 hex, not zero) as 32 hex digits, or undefined. */
function b3TraceId(s: string, from: number, to: number): string | undefined {
  const n = to - from;
  if ((n !== 16 && n !== 32) || scanHex(s, from, to) !== Hex.NonZero) return undefined;
  const id = from === 0 && to === s.length ? s : s.slice(from, to);
  return n === 16 ? ZERO_HIGH + id : id;
}

function b3SpanId(s: string, from: number, to: number): string | undefined {
  if (to - from !== 16 || scanHex(s, from, to) !== Hex.NonZero) return undefined;
  return from === 0 && to === s.length ? s : s.slice(from, to);
}

/** 32-hex trace id as B3 wants it: 16 digits when the high half is zero (a 64-bit trace). */
export function b3TraceIdOf(traceId: string): string {
  return traceId.startsWith(ZERO_HIGH) ? traceId.slice(16) : traceId;
}

// ---------------------------------------------------------------------------------------------
// Extraction

/** What the request carried, read into one reusable record (extraction runs on every call). */
export const enum Found {
  /** No usable context. */
  None = 0,
  /** Trace and span ids (and perhaps a decision). */
  Context = 1,
  /** A B3 sampling decision without ids (`b3: 0`, or a lone `x-b3-sampled`). */
  DecisionOnly = 2,
}

/** Sampling as read: a decision, or none (B3 allows leaving it to the receiver). */
export const enum Sampling {
  No = 0,
  Yes = 1,
  Deferred = 2,
}

export interface Incoming {
  found: Found;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  sampling: Sampling;
  debug: boolean;
  tracestate: string | undefined;
  /** Which B3 forms the request carried, valid or not: those are the ones rewritten. */
  hadB3Multi: boolean;
  hadB3Single: boolean;
}

export function newIncoming(): Incoming {
  return {
    found: Found.None,
    traceId: '',
    spanId: '',
    parentSpanId: undefined,
    sampling: Sampling.No,
    debug: false,
    tracestate: undefined,
    hadB3Multi: false,
    hadB3Single: false,
  };
}

/**
 * W3C traceparent: `vv-<32 hex trace>-<16 hex parent>-<2 hex flags>`, lowercase. Version 00 must be
 * exactly 55 characters; version ff is invalid; a later version is read as the spec asks (the 00
 * fields, then either the end or a '-' before whatever that version added).
 */
function readTraceparent(tp: string, into: Incoming): boolean {
  if (tp.length < 55) return false;
  const v = scanHex(tp, 0, 2);
  if (v === Hex.Invalid) return false;
  const v0 = tp.charCodeAt(0);
  const v1 = tp.charCodeAt(1);
  if (v0 === 0x66 && v1 === 0x66) return false; // ff
  if (v === Hex.Zero ? tp.length !== 55 : tp.length > 55 && tp.charCodeAt(55) !== 0x2d) return false;
  if (tp.charCodeAt(2) !== 0x2d || tp.charCodeAt(35) !== 0x2d || tp.charCodeAt(52) !== 0x2d) return false;
  if (scanHex(tp, 3, 35) !== Hex.NonZero || scanHex(tp, 36, 52) !== Hex.NonZero) return false;
  if (scanHex(tp, 53, 55) === Hex.Invalid) return false;
  const flags = parseInt(tp.slice(53, 55), 16);
  into.found = Found.Context;
  into.traceId = tp.slice(3, 35);
  into.spanId = tp.slice(36, 52);
  into.parentSpanId = undefined;
  into.sampling = flags & 1 ? Sampling.Yes : Sampling.No;
  into.debug = false;
  return true;
}

/** `b3: {trace}-{span}[-{sampling}[-{parent}]]` or `b3: {sampling}`, sampling one of 0, 1, d. */
function readB3Single(b3: string, into: Incoming): boolean {
  const n = b3.length;
  if (n === 1) return b3Sampling(b3.charCodeAt(0), into, Found.DecisionOnly);
  const d1 = b3.indexOf('-');
  if (d1 < 0) return false;
  const traceId = b3TraceId(b3, 0, d1);
  if (traceId === undefined) return false;
  let d2 = b3.indexOf('-', d1 + 1);
  if (d2 < 0) d2 = n;
  const spanId = b3SpanId(b3, d1 + 1, d2);
  if (spanId === undefined) return false;
  let parent: string | undefined;
  if (d2 === n) {
    into.sampling = Sampling.Deferred;
    into.debug = false;
  } else {
    // Exactly one sampling character, then the end or '-' and a parent span id.
    if (d2 + 2 !== n && b3.charCodeAt(d2 + 2) !== 0x2d) return false;
    if (!b3Sampling(b3.charCodeAt(d2 + 1), into, Found.Context)) return false;
    if (d2 + 2 !== n) {
      parent = b3SpanId(b3, d2 + 3, n);
      if (parent === undefined) return false;
    }
  }
  into.found = Found.Context;
  into.traceId = traceId;
  into.spanId = spanId;
  into.parentSpanId = parent;
  return true;
}

function b3Sampling(c: number, into: Incoming, found: Found): boolean {
  if (c === 0x30) {
    into.sampling = Sampling.No;
    into.debug = false;
  } else if (c === 0x31) {
    into.sampling = Sampling.Yes;
    into.debug = false;
  } else if (c === 0x64) {
    into.sampling = Sampling.Yes;
    into.debug = true;
  } else return false;
  into.found = found;
  return true;
}

function readB3Multi(headers: IncomingHttpHeaders, into: Incoming): boolean {
  const traceHeader = single(headers['x-b3-traceid']);
  const spanHeader = single(headers['x-b3-spanid']);
  const sampledHeader = single(headers['x-b3-sampled']);
  const debug = single(headers['x-b3-flags']) === '1';
  let sampling: Sampling;
  if (debug) sampling = Sampling.Yes;
  else if (sampledHeader === undefined) sampling = Sampling.Deferred;
  else if (sampledHeader === '1' || sampledHeader === 'true') sampling = Sampling.Yes;
  else if (sampledHeader === '0' || sampledHeader === 'false') sampling = Sampling.No;
  else return false;
  if (traceHeader === undefined && spanHeader === undefined) {
    if (sampling === Sampling.Deferred) return false;
    into.found = Found.DecisionOnly;
    into.sampling = sampling;
    into.debug = debug;
    return true;
  }
  if (traceHeader === undefined || spanHeader === undefined) return false;
  const traceId = b3TraceId(traceHeader, 0, traceHeader.length);
  const spanId = b3SpanId(spanHeader, 0, spanHeader.length);
  if (traceId === undefined || spanId === undefined) return false;
  const parentHeader = headers['x-b3-parentspanid'];
  let parent: string | undefined;
  if (parentHeader !== undefined) {
    const p = single(parentHeader);
    parent = p === undefined ? undefined : b3SpanId(p, 0, p.length);
    if (parent === undefined) return false;
  }
  into.found = Found.Context;
  into.traceId = traceId;
  into.spanId = spanId;
  into.parentSpanId = parent;
  into.sampling = sampling;
  into.debug = debug;
  return true;
}

/**
 * Reads the request's trace context into `into`: a valid traceparent wins, else the B3 single
 * header, else B3 multi. `tracestate` is kept only with a valid traceparent (the spec forbids
 * reading it otherwise). Records which B3 forms were present, valid or not.
 */
export function readIncoming(headers: IncomingHttpHeaders, into: Incoming): Found {
  const b3 = headers.b3;
  into.hadB3Single = b3 !== undefined;
  into.hadB3Multi =
    headers['x-b3-traceid'] !== undefined ||
    headers['x-b3-spanid'] !== undefined ||
    headers['x-b3-sampled'] !== undefined ||
    headers['x-b3-parentspanid'] !== undefined;
  into.found = Found.None;
  into.tracestate = undefined;
  const tp = single(headers.traceparent);
  if (tp !== undefined && readTraceparent(tp, into)) {
    const ts = headers.tracestate;
    into.tracestate = ts === undefined || typeof ts === 'string' ? ts : ts.join(',');
    return into.found;
  }
  if (into.hadB3Single) {
    const b = single(b3);
    if (b !== undefined && readB3Single(b, into)) return into.found;
  }
  if (into.hadB3Multi || headers['x-b3-flags'] !== undefined) {
    if (readB3Multi(headers, into)) return into.found;
  }
  into.found = Found.None;
  return Found.None;
}

const scratch = newIncoming();

/**
 * W3C traceparent (version 00, validated per spec: lengths, lowercase hex, not all zeros, version
 * ff refused) wins; else B3: the single header `b3: {traceid}-{spanid}-{sampled}-{parentspanid}`,
 * or the multi headers (x-b3-traceid 16 or 32 hex, a 64-bit id padded to 32; x-b3-spanid;
 * x-b3-parentspanid; x-b3-sampled 1/0; x-b3-flags 1 = debug = sampled).
 *
 * Returns undefined when absent or malformed, and also for a B3 decision without ids (`b3: 0`):
 * that is no context to continue (the Tracer still honours the decision).
 */
export function extractTraceContext(headers: IncomingHttpHeaders): TraceContext | undefined {
  if (readIncoming(headers, scratch) !== Found.Context) return undefined;
  const ctx: TraceContext = {
    traceId: scratch.traceId,
    spanId: scratch.spanId,
    sampled: scratch.sampling === Sampling.Yes,
  };
  if (scratch.parentSpanId !== undefined) ctx.parentSpanId = scratch.parentSpanId;
  if (scratch.tracestate !== undefined) ctx.tracestate = scratch.tracestate;
  if (scratch.sampling === Sampling.Deferred) ctx.deferred = true;
  if (scratch.debug) ctx.debug = true;
  return ctx;
}

/** The formats a request carried, for injectTraceContext: traceparent always, B3 as it came. */
export function incomingFormat(headers: IncomingHttpHeaders): PropagationFormat {
  readIncoming(headers, scratch);
  return formatFor(scratch.hadB3Multi, scratch.hadB3Single);
}

const FORMATS: readonly PropagationFormat[] = [
  Object.freeze({ w3c: true, b3Multi: false, b3Single: false }),
  Object.freeze({ w3c: true, b3Multi: true, b3Single: false }),
  Object.freeze({ w3c: true, b3Multi: false, b3Single: true }),
  Object.freeze({ w3c: true, b3Multi: true, b3Single: true }),
];

/** Shared, frozen format objects: no allocation per call. */
export function formatFor(b3Multi: boolean, b3Single: boolean): PropagationFormat {
  return FORMATS[(b3Multi ? 1 : 0) | (b3Single ? 2 : 0)]!;
}

// ---------------------------------------------------------------------------------------------
// Injection

/**
 * Writes `ctx` for the next hop into the SAME header object. With `format.w3c`: traceparent
 * (`00-<trace>-<span>-<01|00>`), and tracestate set to ctx.tracestate (which extraction took as it
 * came) or removed when the context has none (a tracestate belongs to the trace it came with).
 * With `format.b3Multi` / `format.b3Single`: the B3 headers rewritten, 64-bit trace ids kept at 16
 * digits. A deferred context (no decision yet) writes no B3 sampling state and traceparent `-00`.
 */
export function injectTraceContext(headers: IncomingHttpHeaders, ctx: TraceContext, format: PropagationFormat): void {
  writeContext(
    headers,
    ctx.traceId,
    ctx.spanId,
    ctx.parentSpanId,
    ctx.deferred === true ? Sampling.Deferred : ctx.sampled ? Sampling.Yes : Sampling.No,
    ctx.debug === true,
    ctx.tracestate,
    format.w3c,
    format.b3Multi,
    format.b3Single,
  );
}

/** injectTraceContext without the context object, for the Tracer's hot path. */
export function writeContext(
  headers: IncomingHttpHeaders,
  traceId: string,
  spanId: string,
  parentSpanId: string | undefined,
  sampling: Sampling,
  debug: boolean,
  tracestate: string | undefined,
  w3c: boolean,
  b3Multi: boolean,
  b3Single: boolean,
): void {
  if (w3c) {
    headers.traceparent = '00-' + traceId + '-' + spanId + (sampling === Sampling.Yes ? '-01' : '-00');
    if (tracestate !== undefined) headers.tracestate = tracestate;
    else if (headers.tracestate !== undefined) delete headers.tracestate;
  }
  if (!b3Multi && !b3Single) return;
  const b3Trace = b3TraceIdOf(traceId);
  if (b3Multi) {
    headers['x-b3-traceid'] = b3Trace;
    headers['x-b3-spanid'] = spanId;
    if (parentSpanId !== undefined) headers['x-b3-parentspanid'] = parentSpanId;
    else if (headers['x-b3-parentspanid'] !== undefined) delete headers['x-b3-parentspanid'];
    if (debug) {
      // Debug implies sampled; B3 says not to send both.
      headers['x-b3-flags'] = '1';
      if (headers['x-b3-sampled'] !== undefined) delete headers['x-b3-sampled'];
    } else {
      if (sampling === Sampling.Deferred) {
        if (headers['x-b3-sampled'] !== undefined) delete headers['x-b3-sampled'];
      } else headers['x-b3-sampled'] = sampling === Sampling.Yes ? '1' : '0';
      if (headers['x-b3-flags'] !== undefined) delete headers['x-b3-flags'];
    }
  }
  if (b3Single) {
    if (sampling === Sampling.Deferred) headers.b3 = b3Trace + '-' + spanId;
    else {
      const s = debug ? '-d' : sampling === Sampling.Yes ? '-1' : '-0';
      headers.b3 = parentSpanId === undefined ? b3Trace + '-' + spanId + s : b3Trace + '-' + spanId + s + '-' + parentSpanId;
    }
  }
}
