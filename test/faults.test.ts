/**
 * decideFault: rates within statistical bounds, independent delay and abort draws, header gating,
 * status names and messages, and that the no-fault path allocates nothing.
 *
 * Bounds: a rate estimated from N independent draws has standard deviation sqrt(p(1-p)/N); the
 * tests allow 5 of them. The generator is seeded, so a run is reproducible.
 */
import test, { type ExecutionContext } from 'ava';
import type { IncomingHttpHeaders } from 'node:http2';
import { getHeapStatistics } from 'node:v8';
import { GRPC_STATUS_NAMES, type FaultSpec } from '../control-plane/resources/types.js';
import { decideFault, type FaultDecision } from '../sidecar/faults/fault.js';
import { Status } from '../sidecar/grpc/status.js';
import { Random } from '../sidecar/upstream/random.js';

const SIGMAS = 5;
const DRAWS = 20_000;
const NO_HEADERS: IncomingHttpHeaders = {};

function seeded(seed: number): () => number {
  const r = new Random(seed);
  return () => r.next();
}

/** A random() that counts its calls, to prove gated or certain outcomes draw nothing. */
function counting(value: number): { random: () => number; calls: () => number } {
  let n = 0;
  return { random: () => { n++; return value; }, calls: () => n };
}

function assertRate(t: ExecutionContext, hits: number, p: number, what: string): void {
  const observed = hits / DRAWS;
  const bound = SIGMAS * Math.sqrt((p * (1 - p)) / DRAWS);
  t.true(Math.abs(observed - p) <= bound, `${what}: ${observed.toFixed(4)}, expected ${p} ± ${bound.toFixed(4)}`);
}

function tally(spec: FaultSpec, headers: IncomingHttpHeaders, seed: number): { delayed: number; aborted: number; both: number; none: number } {
  const random = seeded(seed);
  const out = { delayed: 0, aborted: 0, both: 0, none: 0 };
  for (let i = 0; i < DRAWS; i++) {
    const d = decideFault(spec, headers, random, 'r');
    if (d === undefined) { out.none++; continue; }
    if (d.delayMs > 0) out.delayed++;
    if (d.abort) out.aborted++;
    if (d.delayMs > 0 && d.abort) out.both++;
  }
  return out;
}

test('abort at 10% over 20k calls lands within 5 sigma', (t) => {
  const c = tally({ abort: { status: 'UNAVAILABLE', percent: 10 } }, NO_HEADERS, 1);
  assertRate(t, c.aborted, 0.1, 'abort rate');
  t.is(c.delayed, 0);
});

test('delay at 30% over 20k calls lands within 5 sigma', (t) => {
  const c = tally({ delay: { fixedMs: 50, percent: 30 } }, NO_HEADERS, 2);
  assertRate(t, c.delayed, 0.3, 'delay rate');
  t.is(c.aborted, 0);
});

test('delay and abort draw independently: both ≈ product of the rates', (t) => {
  const c = tally({ delay: { fixedMs: 50, percent: 40 }, abort: { status: 'INTERNAL', percent: 25 } }, NO_HEADERS, 3);
  assertRate(t, c.delayed, 0.4, 'delay rate');
  assertRate(t, c.aborted, 0.25, 'abort rate');
  assertRate(t, c.both, 0.1, 'both');
  assertRate(t, c.none, 0.6 * 0.75, 'neither');
});

test('fractional percentages work (0.5%)', (t) => {
  const c = tally({ abort: { status: 'UNAVAILABLE', percent: 0.5 } }, NO_HEADERS, 4);
  assertRate(t, c.aborted, 0.005, 'abort rate');
});

test('0% never fires and 100% always does, without drawing', (t) => {
  const never = counting(0);
  for (let i = 0; i < 100; i++) {
    t.is(decideFault({ delay: { fixedMs: 10, percent: 0 }, abort: { status: 'UNAVAILABLE', percent: 0 } }, NO_HEADERS, never.random, 'r'), undefined);
  }
  t.is(never.calls(), 0);
  const always = counting(0.999999);
  for (let i = 0; i < 100; i++) {
    const d = decideFault({ delay: { fixedMs: 10, percent: 100 }, abort: { status: 'UNAVAILABLE', percent: 100 } }, NO_HEADERS, always.random, 'r');
    t.is(d?.delayMs, 10);
    t.is(d?.abort?.code, Status.UNAVAILABLE);
  }
  t.is(always.calls(), 0);
});

test('a delay of 0 ms is no fault', (t) => {
  t.is(decideFault({ delay: { fixedMs: 0, percent: 100 } }, NO_HEADERS, Math.random, 'r'), undefined);
});

test('decision shapes: delay only, abort only, both', (t) => {
  const yes = () => 0;
  t.deepEqual(decideFault({ delay: { fixedMs: 250, percent: 50 } }, NO_HEADERS, yes, 'r'), { delayMs: 250 });
  t.deepEqual(decideFault({ abort: { status: 'RESOURCE_EXHAUSTED', percent: 50, message: 'slow down' } }, NO_HEADERS, yes, 'r'), {
    delayMs: 0,
    abort: { code: Status.RESOURCE_EXHAUSTED, message: 'slow down' },
  } satisfies FaultDecision);
  t.deepEqual(
    decideFault({ delay: { fixedMs: 5, percent: 50 }, abort: { status: 'ABORTED', percent: 50 } }, NO_HEADERS, yes, 'catalog-chaos'),
    { delayMs: 5, abort: { code: Status.ABORTED, message: 'remora: fault injected by route catalog-chaos' } },
  );
});

test('every status name maps to its gRPC code', (t) => {
  for (const status of GRPC_STATUS_NAMES) {
    const d = decideFault({ abort: { status, percent: 100 } }, NO_HEADERS, Math.random, 'r');
    t.is(d?.abort?.code, Status[status], status);
  }
  t.is(Status.UNAVAILABLE, 14);
  t.is(decideFault({ abort: { status: 'DEADLINE_EXCEEDED', percent: 100 } }, NO_HEADERS, Math.random, 'r')?.abort?.code, 4);
});

test('onlyWithHeader: present', (t) => {
  const spec: FaultSpec = { abort: { status: 'UNAVAILABLE', percent: 100 }, onlyWithHeader: { name: 'x-chaos' } };
  const r = counting(0);
  t.is(decideFault(spec, {}, r.random, 'r'), undefined);
  t.is(decideFault(spec, { 'x-other': '1' }, r.random, 'r'), undefined);
  t.is(r.calls(), 0, 'a gated-out call draws nothing');
  t.is(decideFault(spec, { 'x-chaos': '' }, r.random, 'r')?.abort?.code, Status.UNAVAILABLE, 'an empty value is present');
  t.is(decideFault(spec, { 'x-chaos': 'anything' }, r.random, 'r')?.abort?.code, Status.UNAVAILABLE);
});

test('onlyWithHeader: exact value', (t) => {
  const spec: FaultSpec = { delay: { fixedMs: 100, percent: 100 }, onlyWithHeader: { name: 'x-chaos', exact: 'on' } };
  t.is(decideFault(spec, {}, Math.random, 'r'), undefined);
  t.is(decideFault(spec, { 'x-chaos': 'off' }, Math.random, 'r'), undefined);
  t.is(decideFault(spec, { 'x-chaos': 'ON' }, Math.random, 'r'), undefined, 'values compare case-sensitively');
  t.is(decideFault(spec, { 'x-chaos': 'on, off' }, Math.random, 'r'), undefined, 'a joined repeat is not the exact value');
  t.deepEqual(decideFault(spec, { 'x-chaos': 'on' }, Math.random, 'r'), { delayMs: 100 });
  t.deepEqual(decideFault(spec, { 'x-chaos': ['off', 'on'] }, Math.random, 'r'), { delayMs: 100 }, 'any value of an array header');
});

test('gated rates: only calls with the header are faulted, at the configured rate', (t) => {
  const spec: FaultSpec = { abort: { status: 'UNAVAILABLE', percent: 20 }, onlyWithHeader: { name: 'x-chaos', exact: '1' } };
  t.is(tally(spec, { 'x-chaos': '0' }, 5).aborted, 0);
  assertRate(t, tally(spec, { 'x-chaos': '1' }, 6).aborted, 0.2, 'gated abort rate');
});

/** Results go here so they escape: otherwise the JIT may drop an allocation nobody looks at. */
let sink: FaultDecision | undefined;

test('the no-fault path allocates nothing', (t) => {
  // Misses by draw and misses by header gate, measured on the heap in chunks small enough that a
  // scavenge rarely falls inside one; the median chunk ignores those that do. One decision object
  // per call would show as hundreds of KB per chunk. The random() returns a constant, so any boxed
  // number would be decideFault's, not the generator's. The last case proves the probe can see.
  const miss = () => 0.999;
  const cases: [string, FaultSpec, IncomingHttpHeaders, boolean][] = [
    ['draws miss', { delay: { fixedMs: 10, percent: 10 }, abort: { status: 'UNAVAILABLE', percent: 10 } }, { 'x-chaos': '1' }, false],
    ['header absent', { abort: { status: 'UNAVAILABLE', percent: 100 }, onlyWithHeader: { name: 'x-chaos' } }, { 'x-other': '1' }, false],
    ['header differs', { abort: { status: 'UNAVAILABLE', percent: 100 }, onlyWithHeader: { name: 'x-chaos', exact: 'on' } }, { 'x-chaos': 'off' }, false],
    ['control: every call delayed', { delay: { fixedMs: 10, percent: 100 } }, {}, true],
  ];
  const chunk = 10_000;
  for (const [name, spec, headers, faulting] of cases) {
    for (let i = 0; i < 10 * chunk; i++) sink = decideFault(spec, headers, miss, 'r'); // warm up: optimized code
    const deltas: number[] = [];
    for (let c = 0; c < 21; c++) {
      const before = getHeapStatistics().used_heap_size;
      for (let i = 0; i < chunk; i++) sink = decideFault(spec, headers, miss, 'r');
      deltas.push(getHeapStatistics().used_heap_size - before);
    }
    deltas.sort((x, y) => x - y);
    const median = deltas[10]!;
    const line = `${name}: median heap growth per ${chunk} calls ${median} bytes (${deltas.join(', ')})`;
    t.is(sink !== undefined, faulting, name);
    // A few KB are the heap statistics call itself.
    if (faulting) t.true(median > 100_000, line);
    else t.true(median < 16 * 1024, line);
  }
});
