/**
 * Tracing: trace context on the wire (W3C and B3), the Tracer's span decisions, and the Zipkin
 * exporter against a real stub collector on 127.0.0.1.
 */
import test, { type ExecutionContext } from 'ava';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http2';
import {
  extractTraceContext,
  incomingFormat,
  injectTraceContext,
  newSpanId,
  newTraceId,
  type TraceContext,
} from '../sidecar/observability/trace-context.js';
import { Tracer, nowMicros, type Span } from '../sidecar/observability/tracer.js';
import {
  NOOP_EXPORTER,
  ZipkinExporter,
  type SpanExporter,
  type ZipkinSpan,
} from '../sidecar/observability/zipkin-exporter.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const PARENT = 'a3ce929d0e0e4736';
const TP = `00-${TRACE}-${SPAN}-01`;

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

function h(fields: Record<string, string | string[]>): IncomingHttpHeaders {
  return { ':path': '/remora.demo.v1.CatalogService/Get', 'content-type': 'application/grpc', ...fields };
}

/** Keeps what the tracer exports. */
class CaptureExporter implements SpanExporter {
  readonly spans: ZipkinSpan[] = [];
  export(span: ZipkinSpan): void {
    this.spans.push(span);
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

// ---------------------------------------------------------------------------------------------
// Ids

test('newTraceId / newSpanId: lowercase hex of the right length, never zero, no repeats', (t) => {
  const traces = new Set<string>();
  const spans = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const tr = newTraceId();
    const sp = newSpanId();
    t.regex(tr, HEX32);
    t.regex(sp, HEX16);
    t.not(tr, '0'.repeat(32));
    t.not(sp, '0'.repeat(16));
    traces.add(tr);
    spans.add(sp);
  }
  t.is(traces.size, 20_000);
  t.is(spans.size, 20_000);
  // Every hex digit turns up in every position of span ids: the formatting covers the whole byte range.
  const seen = Array.from({ length: 16 }, () => new Set<string>());
  for (const sp of spans) for (let i = 0; i < 16; i++) seen[i]!.add(sp[i]!);
  t.true(seen.every((s) => s.size === 16));
});

test('nowMicros: epoch microseconds, monotonic', (t) => {
  const a = nowMicros();
  t.true(Number.isInteger(a));
  t.true(Math.abs(a - Date.now() * 1000) < 5_000_000);
  let prev = a;
  for (let i = 0; i < 10_000; i++) {
    const n = nowMicros();
    t.true(n >= prev);
    prev = n;
  }
});

// ---------------------------------------------------------------------------------------------
// W3C traceparent

test('extract: a valid traceparent; flags bit 0 is the sampling decision', (t) => {
  t.deepEqual(extractTraceContext(h({ traceparent: TP })), { traceId: TRACE, spanId: SPAN, sampled: true });
  t.deepEqual(extractTraceContext(h({ traceparent: `00-${TRACE}-${SPAN}-00` })), { traceId: TRACE, spanId: SPAN, sampled: false });
  // Unknown flag bits are ignored; the sampled bit still counts.
  t.is(extractTraceContext(h({ traceparent: `00-${TRACE}-${SPAN}-03` }))?.sampled, true);
  t.is(extractTraceContext(h({ traceparent: `00-${TRACE}-${SPAN}-fe` }))?.sampled, false);
  t.is(extractTraceContext(h({})), undefined);
});

test('extract: malformed traceparents are refused', (t) => {
  const bad: Record<string, string | string[]> = {
    'version ff': `ff-${TRACE}-${SPAN}-01`,
    'version not hex': `0g-${TRACE}-${SPAN}-01`,
    'version uppercase': `0A-${TRACE}-${SPAN}-01`,
    'version 00 with trailing data': `00-${TRACE}-${SPAN}-01-extra`,
    'version 00 with one character too many': `${TP}0`,
    'short trace id': `00-${TRACE.slice(1)}-${SPAN}-01`,
    'long trace id': `00-${TRACE}0-${SPAN}-01`,
    'short span id': `00-${TRACE}-${SPAN.slice(1)}-01`,
    'long span id': `00-${TRACE}-${SPAN}0-01`,
    'one-digit flags': `00-${TRACE}-${SPAN}-1`,
    'uppercase trace id': `00-${TRACE.toUpperCase()}-${SPAN}-01`,
    'uppercase span id': `00-${TRACE}-${SPAN.toUpperCase()}-01`,
    'uppercase flags': `00-${TRACE}-${SPAN}-0A`,
    'flags not hex': `00-${TRACE}-${SPAN}-0x`,
    'all-zero trace id': `00-${'0'.repeat(32)}-${SPAN}-01`,
    'all-zero span id': `00-${TRACE}-${'0'.repeat(16)}-01`,
    'wrong separators': `00_${TRACE}_${SPAN}_01`,
    'empty': '',
    'two fields joined by node': `${TP}, 00-${TRACE}-${PARENT}-01`,
    'two fields as an array': [TP, `00-${TRACE}-${PARENT}-01`],
  };
  for (const [why, traceparent] of Object.entries(bad)) {
    t.is(extractTraceContext(h({ traceparent })), undefined, why);
  }
});

test('extract: a later traceparent version is read as the spec asks (00 fields, then the end or "-")', (t) => {
  t.deepEqual(extractTraceContext(h({ traceparent: `01-${TRACE}-${SPAN}-01` })), { traceId: TRACE, spanId: SPAN, sampled: true });
  t.deepEqual(extractTraceContext(h({ traceparent: `cc-${TRACE}-${SPAN}-01-what-the-future-holds` }))?.spanId, SPAN);
  t.is(extractTraceContext(h({ traceparent: `cc-${TRACE}-${SPAN}-01what` })), undefined);
  // Whatever came in, the next hop is told in the version we speak.
  const headers = h({ traceparent: `cc-${TRACE}-${SPAN}-01-future` });
  injectTraceContext(headers, extractTraceContext(headers)!, incomingFormat(headers));
  t.is(headers.traceparent, TP);
});

test('tracestate passes through with a valid traceparent, and only then', (t) => {
  const tracestate = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7';
  const ctx = extractTraceContext(h({ traceparent: TP, tracestate }));
  t.is(ctx?.tracestate, tracestate);
  // Several tracestate fields are one list.
  t.is(extractTraceContext(h({ traceparent: TP, tracestate: ['a=1', 'b=2'] }))?.tracestate, 'a=1,b=2');
  // Injection keeps it as it came.
  const out = h({ traceparent: TP, tracestate });
  injectTraceContext(out, { ...ctx!, spanId: PARENT }, { w3c: true, b3Multi: false, b3Single: false });
  t.is(out.tracestate, tracestate);
  t.is(out.traceparent, `00-${TRACE}-${PARENT}-01`);
  // A tracestate without a valid traceparent belongs to no trace we continue: it is not passed on.
  const tracer = new Tracer({ serviceName: 's', sampleRate: 1, exporter: NOOP_EXPORTER });
  const orphan = h({ traceparent: `00-${TRACE}-${SPAN}-1`, tracestate });
  tracer.start(orphan, 'CLIENT', '/x');
  t.is(orphan.tracestate, undefined);
  t.not(TRACEPARENT.exec(orphan.traceparent as string)?.[1], TRACE);
  const kept = h({ traceparent: TP, tracestate });
  tracer.start(kept, 'CLIENT', '/x');
  t.is(kept.tracestate, tracestate);
});

// ---------------------------------------------------------------------------------------------
// B3

test('extract: B3 multi headers; a 64-bit trace id is padded to 128 bits', (t) => {
  t.deepEqual(
    extractTraceContext(h({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-parentspanid': PARENT, 'x-b3-sampled': '1' })),
    { traceId: TRACE, spanId: SPAN, parentSpanId: PARENT, sampled: true },
  );
  t.deepEqual(extractTraceContext(h({ 'x-b3-traceid': PARENT, 'x-b3-spanid': SPAN, 'x-b3-sampled': '0' })), {
    traceId: '0000000000000000' + PARENT,
    spanId: SPAN,
    sampled: false,
  });
  // Debug means sampled.
  t.deepEqual(extractTraceContext(h({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-flags': '1' })), {
    traceId: TRACE,
    spanId: SPAN,
    sampled: true,
    debug: true,
  });
  // No decision: the receiver decides.
  t.deepEqual(extractTraceContext(h({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN })), {
    traceId: TRACE,
    spanId: SPAN,
    sampled: false,
    deferred: true,
  });
  const bad: Record<string, Record<string, string>> = {
    'no span id': { 'x-b3-traceid': TRACE, 'x-b3-sampled': '1' },
    'no trace id': { 'x-b3-spanid': SPAN },
    'trace id of 20 digits': { 'x-b3-traceid': TRACE.slice(0, 20), 'x-b3-spanid': SPAN },
    'zero trace id': { 'x-b3-traceid': '0'.repeat(16), 'x-b3-spanid': SPAN },
    'zero span id': { 'x-b3-traceid': TRACE, 'x-b3-spanid': '0'.repeat(16) },
    'span id not hex': { 'x-b3-traceid': TRACE, 'x-b3-spanid': 'zzf067aa0ba902b7' },
    'bad parent': { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-parentspanid': 'abc' },
    'bad sampled': { 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': 'yes' },
  };
  for (const [why, fields] of Object.entries(bad)) t.is(extractTraceContext(h(fields)), undefined, why);
});

test('extract: the B3 single header, including b3: 0', (t) => {
  t.deepEqual(extractTraceContext(h({ b3: `${TRACE}-${SPAN}-1-${PARENT}` })), {
    traceId: TRACE,
    spanId: SPAN,
    parentSpanId: PARENT,
    sampled: true,
  });
  t.deepEqual(extractTraceContext(h({ b3: `${PARENT}-${SPAN}-0` })), {
    traceId: '0000000000000000' + PARENT,
    spanId: SPAN,
    sampled: false,
  });
  t.deepEqual(extractTraceContext(h({ b3: `${TRACE}-${SPAN}-d` })), { traceId: TRACE, spanId: SPAN, sampled: true, debug: true });
  t.deepEqual(extractTraceContext(h({ b3: `${TRACE}-${SPAN}` })), { traceId: TRACE, spanId: SPAN, sampled: false, deferred: true });
  // A decision without ids is no context to continue (the Tracer honours it: see below).
  t.is(extractTraceContext(h({ b3: '0' })), undefined);
  t.is(extractTraceContext(h({ b3: '1' })), undefined);
  for (const b3 of ['', '2', `${TRACE}`, `${TRACE}-${SPAN}-x`, `${TRACE}-${SPAN}-11`, `${TRACE}-${SPAN}-1-`, `${TRACE}-${SPAN}-1-abc`, `${TRACE.slice(2)}-${SPAN}-1`, `${TRACE}-${SPAN}-1-${PARENT}-x`]) {
    t.is(extractTraceContext(h({ b3 })), undefined, b3);
  }
});

test('extract: a valid traceparent wins over B3; an invalid one falls back to B3', (t) => {
  const b3Trace = 'aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb';
  const both = h({ traceparent: TP, 'x-b3-traceid': b3Trace, 'x-b3-spanid': PARENT, 'x-b3-sampled': '0', b3: `${b3Trace}-${PARENT}-0` });
  t.deepEqual(extractTraceContext(both), { traceId: TRACE, spanId: SPAN, sampled: true });
  const broken = h({ traceparent: `00-${TRACE}-${SPAN}`, 'x-b3-traceid': b3Trace, 'x-b3-spanid': PARENT, 'x-b3-sampled': '0' });
  t.deepEqual(extractTraceContext(broken), { traceId: b3Trace, spanId: PARENT, sampled: false });
  // B3 single before B3 multi.
  t.is(extractTraceContext(h({ b3: `${b3Trace}-${PARENT}-1`, 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN }))?.traceId, b3Trace);
});

test('inject: traceparent always, B3 only in the forms that came in', (t) => {
  const ctx: TraceContext = { traceId: TRACE, spanId: PARENT, parentSpanId: SPAN, sampled: true };

  const w3cOnly = h({ traceparent: TP });
  injectTraceContext(w3cOnly, ctx, incomingFormat(w3cOnly));
  t.is(w3cOnly.traceparent, `00-${TRACE}-${PARENT}-01`);
  t.false(Object.keys(w3cOnly).some((k) => k.startsWith('x-b3') || k === 'b3'));

  const multi = h({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': '1' });
  injectTraceContext(multi, ctx, incomingFormat(multi));
  t.like(multi, {
    traceparent: `00-${TRACE}-${PARENT}-01`,
    'x-b3-traceid': TRACE,
    'x-b3-spanid': PARENT,
    'x-b3-parentspanid': SPAN,
    'x-b3-sampled': '1',
  });
  t.is(multi.b3, undefined);

  const one = h({ b3: `${TRACE}-${SPAN}-1` });
  injectTraceContext(one, ctx, incomingFormat(one));
  t.is(one.b3, `${TRACE}-${PARENT}-1-${SPAN}`);
  t.is(one.traceparent, `00-${TRACE}-${PARENT}-01`);
  t.false(Object.keys(one).some((k) => k.startsWith('x-b3')));

  // A 64-bit B3 trace stays 64-bit in B3 (apps that only know 64-bit ids keep working).
  const short = h({ 'x-b3-traceid': PARENT, 'x-b3-spanid': SPAN, 'x-b3-sampled': '0', b3: `${PARENT}-${SPAN}-0` });
  const shortCtx = extractTraceContext(short)!;
  injectTraceContext(short, { ...shortCtx, spanId: PARENT, parentSpanId: undefined }, incomingFormat(short));
  t.is(short['x-b3-traceid'], PARENT);
  t.is(short['x-b3-parentspanid'], undefined);
  t.is(short['x-b3-sampled'], '0');
  t.is(short.b3, `${PARENT}-${PARENT}-0`);
  t.is(short.traceparent, `00-0000000000000000${PARENT}-${PARENT}-00`);

  // Debug travels as x-b3-flags (and 'd'), without x-b3-sampled.
  const dbg = h({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-flags': '1', b3: `${TRACE}-${SPAN}-d` });
  injectTraceContext(dbg, { ...extractTraceContext(dbg)!, spanId: PARENT }, incomingFormat(dbg));
  t.is(dbg['x-b3-flags'], '1');
  t.is(dbg['x-b3-sampled'], undefined);
  t.is(dbg.b3, `${TRACE}-${PARENT}-d`);
});

// ---------------------------------------------------------------------------------------------
// Tracer

function tracer(sampleRate: number, serviceName = 'svc'): { tracer: Tracer; spans: ZipkinSpan[] } {
  const exporter = new CaptureExporter();
  return { tracer: new Tracer({ serviceName, sampleRate, exporter }), spans: exporter.spans };
}

test('Tracer: a sampled incoming trace gets a child span, and the request leaves as its child', (t) => {
  const { tracer: tr, spans } = tracer(0);
  const headers = h({ traceparent: TP, tracestate: 'k=v' });
  const span = tr.start(headers, 'SERVER', '/remora.demo.v1.CatalogService/Get', 1_000)!;
  t.truthy(span);
  t.is(span.kind, 'SERVER');
  t.is(span.name, '/remora.demo.v1.CatalogService/Get');
  t.is(span.startMicros, 1_000);
  t.is(span.context.traceId, TRACE);
  t.is(span.context.parentSpanId, SPAN);
  t.not(span.context.spanId, SPAN);
  t.regex(span.context.spanId, HEX16);
  t.true(span.context.sampled);
  t.is(headers.traceparent, `00-${TRACE}-${span.context.spanId}-01`);
  t.is(headers.tracestate, 'k=v');

  tr.finish(span, { grpcStatus: 0, peer: { address: '::ffff:10.0.0.7', port: 51000 } }, 1_250);
  tr.finish(span, { grpcStatus: 0 }, 9_999); // a second finish is ignored
  t.is(spans.length, 1);
  t.deepEqual(JSON.parse(JSON.stringify(spans[0])), {
    traceId: TRACE,
    id: span.context.spanId,
    parentId: SPAN,
    kind: 'SERVER',
    name: '/remora.demo.v1.CatalogService/Get',
    timestamp: 1_000,
    duration: 250,
    localEndpoint: { serviceName: 'svc' },
    remoteEndpoint: { ipv4: '10.0.0.7', port: 51000 },
    tags: { 'remora.direction': 'inbound', 'grpc.status_code': '0' },
    shared: false,
  });
});

test('Tracer: an unsampled decision propagates as -00 and nothing is recorded', (t) => {
  const { tracer: tr, spans } = tracer(1);
  const w3c = h({ traceparent: `00-${TRACE}-${SPAN}-00` });
  t.is(tr.start(w3c, 'CLIENT', '/x'), undefined);
  const m = TRACEPARENT.exec(w3c.traceparent as string)!;
  t.is(m[1], TRACE);
  t.not(m[2], SPAN);
  t.is(m[3], '00');

  const b3 = h({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': '0' });
  t.is(tr.start(b3, 'CLIENT', '/x'), undefined);
  t.is(b3['x-b3-sampled'], '0');
  t.is(b3['x-b3-parentspanid'], SPAN);
  t.regex(b3.traceparent as string, /-00$/);

  // b3: 0 carries a decision without ids: a new trace, unsampled, despite sampleRate 1.
  const single = h({ b3: '0' });
  t.is(tr.start(single, 'CLIENT', '/x'), undefined);
  t.regex(single.traceparent as string, TRACEPARENT);
  t.regex(single.traceparent as string, /-00$/);
  t.regex(single.b3 as string, /^[0-9a-f]{32}-[0-9a-f]{16}-0$/);
  t.is(spans.length, 0);
});

test('Tracer: with no context, sampleRate 1 starts a sampled trace; sampleRate 0 records nothing but still propagates', (t) => {
  const on = tracer(1);
  const headers = h({});
  const span = on.tracer.start(headers, 'CLIENT', '/a.B/C')!;
  t.truthy(span);
  t.regex(span.context.traceId, HEX32);
  t.is(span.context.parentSpanId, undefined);
  t.is(headers.traceparent, `00-${span.context.traceId}-${span.context.spanId}-01`);
  t.false(Object.keys(headers).some((k) => k.startsWith('x-b3') || k === 'b3'));
  t.true(Math.abs(span.startMicros - Date.now() * 1000) < 5_000_000);
  on.tracer.finish(span, { grpcStatus: 14, cluster: 'catalog', peer: { address: 'fd00::1', port: 8080 }, tags: { 'remora.route': 'r1' } });
  t.is(on.spans.length, 1);
  const zs = on.spans[0]!;
  t.is(zs.parentId, undefined);
  t.is(zs.shared, undefined);
  t.deepEqual(zs.remoteEndpoint, { ipv6: 'fd00::1', port: 8080 });
  t.deepEqual(zs.tags, {
    'remora.direction': 'outbound',
    'grpc.status_code': '14',
    error: 'UNAVAILABLE',
    upstream_cluster: 'catalog',
    'remora.route': 'r1',
  });
  t.true(zs.duration >= 1);

  const off = tracer(0);
  const h0 = h({});
  t.is(off.tracer.start(h0, 'CLIENT', '/a.B/C'), undefined);
  t.regex(h0.traceparent as string, TRACEPARENT);
  t.regex(h0.traceparent as string, /-00$/);
  t.is(off.spans.length, 0);
});

test('Tracer: B3 without a decision is decided here and the decision written back', (t) => {
  const { tracer: tr } = tracer(1);
  const headers = h({ 'x-b3-traceid': PARENT, 'x-b3-spanid': SPAN });
  const span = tr.start(headers, 'SERVER', '/x')!;
  t.is(span.context.traceId, '0000000000000000' + PARENT);
  t.like(headers, { 'x-b3-traceid': PARENT, 'x-b3-spanid': span.context.spanId, 'x-b3-parentspanid': SPAN, 'x-b3-sampled': '1' });
  const none = tracer(0);
  const h2 = h({ 'x-b3-traceid': PARENT, 'x-b3-spanid': SPAN });
  t.is(none.tracer.start(h2, 'SERVER', '/x'), undefined);
  t.is(h2['x-b3-sampled'], '0');
});

test('Tracer: a call that ends without a status is an error; a 64-bit trace is reported with 16 digits', (t) => {
  const { tracer: tr, spans } = tracer(1);
  const span = tr.start(h({ b3: `${PARENT}-${SPAN}-1` }), 'CLIENT', '/x', 10)!;
  tr.finish(span, { grpcStatus: undefined, peer: { address: 'backend.local', port: 0 } }, 10);
  const zs = spans[0]!;
  t.is(zs.traceId, PARENT);
  t.is(zs.duration, 1); // Zipkin wants at least 1 µs
  t.deepEqual(zs.tags, { 'remora.direction': 'outbound', error: 'true', 'peer.address': 'backend.local' });
  t.is(zs.remoteEndpoint, undefined);
});

test('Tracer: sampleRate is honoured for calls without a decision, and validated', (t) => {
  const { tracer: tr } = tracer(0.25);
  let sampled = 0;
  const n = 20_000;
  for (let i = 0; i < n; i++) if (tr.start({}, 'CLIENT', '/x') !== undefined) sampled++;
  t.true(Math.abs(sampled / n - 0.25) < 0.02, `sampled ${sampled} of ${n}`);
  for (const sampleRate of [-0.1, 1.5, Number.NaN]) {
    t.throws(() => new Tracer({ serviceName: 's', sampleRate, exporter: NOOP_EXPORTER }), { instanceOf: RangeError });
  }
});

// ---------------------------------------------------------------------------------------------
// Span trees

interface TreeNode {
  span: ZipkinSpan;
  children: TreeNode[];
}

/** Builds parent → children; roots are spans whose parent is not among `spans` (an app's span, say). */
export function buildSpanTree(spans: readonly ZipkinSpan[]): TreeNode[] {
  const nodes = new Map<string, TreeNode>();
  for (const span of spans) nodes.set(span.id, { span, children: [] });
  const roots: TreeNode[] = [];
  for (const node of nodes.values()) {
    const parent = node.span.parentId === undefined ? undefined : nodes.get(node.span.parentId);
    if (parent) parent.children.push(node);
    else roots.push(node);
  }
  return roots;
}

/**
 * Asserts that `spans` form one chain, root first, with the given kinds (and services, if given):
 * one trace id, each span the only child of the one before, and each child within its parent's time.
 */
export function assertSpanChain(
  t: ExecutionContext,
  spans: readonly ZipkinSpan[],
  kinds: readonly ZipkinSpan['kind'][],
  services?: readonly string[],
): void {
  t.is(spans.length, kinds.length, 'span count');
  t.is(new Set(spans.map((s) => s.traceId)).size, 1, 'one trace');
  t.is(new Set(spans.map((s) => s.id)).size, spans.length, 'distinct span ids');
  const roots = buildSpanTree(spans);
  t.is(roots.length, 1, 'one root');
  const chain: ZipkinSpan[] = [];
  for (let node: TreeNode | undefined = roots[0]; node !== undefined; node = node.children[0]) {
    chain.push(node.span);
    t.true(node.children.length <= 1, `${node.span.kind} ${node.span.id} has ${node.children.length} children`);
  }
  t.deepEqual(
    chain.map((s) => s.kind),
    [...kinds],
  );
  if (services) t.deepEqual(chain.map((s) => s.localEndpoint.serviceName), [...services]);
  for (let i = 1; i < chain.length; i++) {
    const parent = chain[i - 1]!;
    const child = chain[i]!;
    t.is(child.parentId, parent.id);
    t.true(child.timestamp >= parent.timestamp && child.timestamp + child.duration <= parent.timestamp + parent.duration, `span ${i} within its parent`);
    if (child.kind === 'SERVER') t.is(child.shared, false);
  }
}

/**
 * Two hops with the Tracer alone: app A → A's outbound sidecar (CLIENT) → B's inbound sidecar
 * (SERVER) → app B, which calls C and passes the context on → B's outbound (CLIENT) → C's inbound
 * (SERVER). Headers travel as the proxy sends them: the object each sidecar rewrote.
 */
function twoHops(exporter: SpanExporter, appTraceparent?: string): void {
  const aOut = new Tracer({ serviceName: 'a', sampleRate: 1, exporter });
  // Downstream sidecars sample nothing on their own: the decision comes with the request.
  const bIn = new Tracer({ serviceName: 'b', sampleRate: 0, exporter });
  const bOut = new Tracer({ serviceName: 'b', sampleRate: 0, exporter });
  const cIn = new Tracer({ serviceName: 'c', sampleRate: 0, exporter });
  const t0 = nowMicros();

  const fromA = h(appTraceparent ? { traceparent: appTraceparent } : {});
  const s1 = aOut.start(fromA, 'CLIENT', '/b.B/Get', t0)!;
  const atB = { ...fromA };
  const s2 = bIn.start(atB, 'SERVER', '/b.B/Get', t0 + 100)!;
  // App B copies the context it received onto its own outgoing call.
  const fromB: IncomingHttpHeaders = { ':path': '/c.C/List', 'content-type': 'application/grpc', traceparent: atB.traceparent };
  const s3 = bOut.start(fromB, 'CLIENT', '/c.C/List', t0 + 200)!;
  const atC = { ...fromB };
  const s4 = cIn.start(atC, 'SERVER', '/c.C/List', t0 + 300)!;

  cIn.finish(s4, { grpcStatus: 0, peer: { address: '10.0.0.2', port: 40000 } }, t0 + 400);
  bOut.finish(s3, { grpcStatus: 0, cluster: 'c', peer: { address: '10.0.0.3', port: 15006 } }, t0 + 500);
  bIn.finish(s2, { grpcStatus: 0, peer: { address: '10.0.0.1', port: 40001 } }, t0 + 600);
  aOut.finish(s1, { grpcStatus: 0, cluster: 'b', peer: { address: '10.0.0.2', port: 15006 } }, t0 + 700);
}

test('span tree: two hops read CLIENT → SERVER → CLIENT → SERVER', (t) => {
  const exporter = new CaptureExporter();
  twoHops(exporter);
  assertSpanChain(t, exporter.spans, ['CLIENT', 'SERVER', 'CLIENT', 'SERVER'], ['a', 'b', 'b', 'c']);

  // When app A traces too, the chain hangs under A's span.
  const withApp = new CaptureExporter();
  twoHops(withApp, TP);
  assertSpanChain(t, withApp.spans, ['CLIENT', 'SERVER', 'CLIENT', 'SERVER']);
  const root = buildSpanTree(withApp.spans)[0]!.span;
  t.is(root.traceId, TRACE);
  t.is(root.parentId, SPAN);
});

// ---------------------------------------------------------------------------------------------
// Zipkin exporter against a stub collector

interface Collector {
  readonly url: string;
  readonly batches: ZipkinSpan[][];
  readonly contentTypes: (string | undefined)[];
  /** The most requests it ever had open at once. */
  maxInFlight: number;
  close(): Promise<void>;
}

async function startCollector(opts: { status?: number; delayMs?: number } = {}): Promise<Collector> {
  let inFlight = 0;
  const collector = {
    url: '',
    batches: [] as ZipkinSpan[][],
    contentTypes: [] as (string | undefined)[],
    maxInFlight: 0,
    close: async (): Promise<void> => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = http.createServer((req, res) => {
    inFlight++;
    collector.maxInFlight = Math.max(collector.maxInFlight, inFlight);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answer = (): void => {
        inFlight--;
        if (req.method === 'POST' && req.url === '/api/v2/spans') {
          collector.batches.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ZipkinSpan[]);
          collector.contentTypes.push(req.headers['content-type']);
        }
        res.writeHead(opts.status ?? 202).end();
      };
      if (opts.delayMs) setTimeout(answer, opts.delayMs);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  collector.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v2/spans`;
  return collector;
}

async function waitFor(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

let seq = 0;
function zspan(name = 'op'): ZipkinSpan {
  return {
    traceId: newTraceId(),
    id: newSpanId(),
    kind: 'CLIENT',
    name: `${name}-${seq++}`,
    timestamp: nowMicros(),
    duration: 10,
    localEndpoint: { serviceName: 'svc' },
    tags: {},
  };
}

test('exporter: full batches go at once, one request at a time; flush sends the rest', async (t) => {
  const collector = await startCollector({ delayMs: 20 });
  const exporter = new ZipkinExporter({ url: collector.url, maxBatch: 3, flushIntervalMs: 60_000 });
  try {
    for (let i = 0; i < 7; i++) exporter.export(zspan());
    await waitFor(() => exporter.exported === 6);
    t.deepEqual(collector.batches.map((b) => b.length), [3, 3]);
    await exporter.flush();
    t.deepEqual(collector.batches.map((b) => b.length), [3, 3, 1]);
    t.is(exporter.exported, 7);
    t.is(exporter.dropped, 0);
    t.is(collector.maxInFlight, 1);
    t.deepEqual(collector.contentTypes, ['application/json', 'application/json', 'application/json']);
  } finally {
    await exporter.close();
    await collector.close();
  }
});

test('exporter: a partial batch goes on the timer', async (t) => {
  const collector = await startCollector();
  const exporter = new ZipkinExporter({ url: collector.url, flushIntervalMs: 100 });
  try {
    const start = Date.now();
    exporter.export(zspan());
    exporter.export(zspan());
    await new Promise((resolve) => setTimeout(resolve, 30));
    t.is(collector.batches.length, 0);
    await waitFor(() => collector.batches.length === 1);
    t.true(Date.now() - start >= 90);
    t.is(collector.batches[0]!.length, 2);
    // The collector sees the batch before the exporter has read its answer.
    await waitFor(() => exporter.exported === 2);
    t.is(exporter.exported, 2);
  } finally {
    await exporter.close();
    await collector.close();
  }
});

test('exporter: the JSON is Zipkin v2, as the Tracer made it; two hops arrive as a chain', async (t) => {
  const collector = await startCollector();
  const exporter = new ZipkinExporter({ url: collector.url });
  try {
    const tr = new Tracer({ serviceName: 'orders', sampleRate: 1, exporter });
    const headers = h({ traceparent: TP });
    const span = tr.start(headers, 'SERVER', '/shop.Orders/Place', 1_700_000_000_000_000)!;
    tr.finish(span, { grpcStatus: 5, peer: { address: '10.1.2.3', port: 4242 }, tags: { 'remora.route': 'orders' } }, 1_700_000_000_001_500);
    await exporter.flush();
    t.is(collector.batches.length, 1);
    t.deepEqual(collector.batches[0], [
      {
        traceId: TRACE,
        id: span.context.spanId,
        parentId: SPAN,
        kind: 'SERVER',
        name: '/shop.Orders/Place',
        timestamp: 1_700_000_000_000_000,
        duration: 1_500,
        localEndpoint: { serviceName: 'orders' },
        remoteEndpoint: { ipv4: '10.1.2.3', port: 4242 },
        tags: { 'remora.direction': 'inbound', 'grpc.status_code': '5', error: 'NOT_FOUND', 'remora.route': 'orders' },
        shared: false,
      },
    ]);

    twoHops(exporter);
    await exporter.flush();
    assertSpanChain(t, collector.batches[1]!, ['CLIENT', 'SERVER', 'CLIENT', 'SERVER'], ['a', 'b', 'b', 'c']);
  } finally {
    await exporter.close();
    await collector.close();
  }
});

test('exporter: past maxQueue spans are dropped and counted; after close too', async (t) => {
  const collector = await startCollector();
  const exporter = new ZipkinExporter({ url: collector.url, maxQueue: 5, flushIntervalMs: 60_000 });
  try {
    for (let i = 0; i < 8; i++) exporter.export(zspan());
    t.is(exporter.dropped, 3);
    await exporter.flush();
    t.is(exporter.exported, 5);
    t.is(collector.batches.flat().length, 5);
  } finally {
    await exporter.close();
    exporter.export(zspan());
    t.is(exporter.dropped, 4);
    await collector.close();
  }
});

test('exporter: a collector answering 500 is reported, the batch dropped, nothing thrown', async (t) => {
  const collector = await startCollector({ status: 500 });
  const errors: Error[] = [];
  const exporter = new ZipkinExporter({ url: collector.url, maxBatch: 2, onError: (err) => errors.push(err) });
  try {
    for (let i = 0; i < 3; i++) t.notThrows(() => exporter.export(zspan()));
    await exporter.flush();
    t.is(errors.length, 2);
    t.regex(errors[0]!.message, /HTTP 500/);
    t.is(exporter.dropped, 3);
    t.is(exporter.exported, 0);
    t.is(collector.batches.length, 2); // each batch tried once, not retried
  } finally {
    await exporter.close();
    await collector.close();
  }
});

test('exporter: a collector that is down is reported, nothing thrown', async (t) => {
  const gone = await startCollector();
  await gone.close(); // its port is now closed
  const errors: Error[] = [];
  const exporter = new ZipkinExporter({ url: gone.url, onError: (err) => errors.push(err) });
  t.notThrows(() => exporter.export(zspan()));
  await exporter.flush();
  await exporter.close();
  t.is(errors.length, 1);
  t.regex(errors[0]!.message, /ECONNREFUSED/);
  t.is(exporter.dropped, 1);
});

test.serial('exporter: export() returns at once while a slow collector holds the request', async (t) => {
  const collector = await startCollector({ delayMs: 1_000 });
  const exporter = new ZipkinExporter({ url: collector.url, maxBatch: 1_000, flushIntervalMs: 10 });
  try {
    // The first batch goes out on the timer and hangs for a second; meanwhile the caller keeps exporting.
    for (let i = 0; i < 10; i++) exporter.export(zspan());
    await new Promise((resolve) => setTimeout(resolve, 50));
    const spans = Array.from({ length: 1_000 }, () => zspan());
    const start = process.hrtime.bigint();
    for (const s of spans) exporter.export(s);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    t.log(`1000 export() calls with a request hanging: ${ms.toFixed(2)} ms`);
    t.true(ms < 50);
    t.is(collector.batches.length, 0);
    const flushStart = Date.now();
    await exporter.flush();
    // The hanging batch, then the 1000 queued behind it: two requests of a second each, one at a time.
    t.true(Date.now() - flushStart >= 1_500);
    t.deepEqual(collector.batches.map((b) => b.length), [10, 1_000]);
    t.is(exporter.exported, 1_010);
    t.is(collector.maxInFlight, 1);
  } finally {
    await exporter.close();
    await collector.close();
  }
});

test('exporter: a request past timeoutMs is abandoned and reported', async (t) => {
  const collector = await startCollector({ delayMs: 1_000 });
  const errors: Error[] = [];
  const exporter = new ZipkinExporter({ url: collector.url, timeoutMs: 100, onError: (err) => errors.push(err) });
  try {
    exporter.export(zspan());
    const start = Date.now();
    await exporter.flush();
    t.true(Date.now() - start < 900);
    t.is(errors.length, 1);
    t.regex(errors[0]!.message, /did not answer within 100 ms/);
    t.is(exporter.dropped, 1);
  } finally {
    await exporter.close();
    await collector.close();
  }
});

test('exporter: options are checked', (t) => {
  t.throws(() => new ZipkinExporter({ url: 'ftp://127.0.0.1/x' }), { message: /http: or https:/ });
  t.throws(() => new ZipkinExporter({ url: 'http://127.0.0.1:9411/api/v2/spans', maxBatch: 0 }), { instanceOf: RangeError });
});

// ---------------------------------------------------------------------------------------------
// Micro-benchmark

function nsPerOp(iterations: number, fn: () => void): number {
  for (let i = 0; i < 20_000; i++) fn(); // warm up
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - start) / iterations;
}

test.serial('benchmark: ns per start+finish (sampled) and per start (no header, sampleRate 0)', (t) => {
  const sink: SpanExporter = { export() {}, flush: () => Promise.resolve(), close: () => Promise.resolve() };
  const on = new Tracer({ serviceName: 'bench', sampleRate: 1, exporter: sink });
  const headers = h({ traceparent: TP });
  const result = { grpcStatus: 0, peer: { address: '10.0.0.1', port: 8080 }, cluster: 'catalog' };
  let span: Span | undefined;
  const sampled = nsPerOp(200_000, () => {
    headers.traceparent = TP;
    span = on.start(headers, 'CLIENT', '/remora.demo.v1.CatalogService/Get');
    on.finish(span!, result);
  });

  const off = new Tracer({ serviceName: 'bench', sampleRate: 0, exporter: sink });
  const bare = h({});
  const unsampled = nsPerOp(200_000, () => {
    delete bare.traceparent;
    span = off.start(bare, 'CLIENT', '/remora.demo.v1.CatalogService/Get');
  });

  const ids = nsPerOp(500_000, () => void newSpanId());
  t.log(`start+finish, sampled (continuing a traceparent): ${sampled.toFixed(0)} ns`);
  t.log(`start, no header, sampleRate 0:                   ${unsampled.toFixed(0)} ns`);
  t.log(`newSpanId:                                         ${ids.toFixed(0)} ns`);
  t.is(span, undefined);
  // Loose bounds, only to catch something pathological (a syscall per id, say) on a slow CI box.
  t.true(sampled < 20_000);
  t.true(unsampled < 5_000);
});
