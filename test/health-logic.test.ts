/**
 * The health modules' logic, with a fake clock and fake probes: no processes, no sockets, no sleeps.
 * (The probe against real servers is in health-probe.test.ts.)
 */
import test from 'ava';
import { Status } from '../sidecar/grpc/status.js';
import { decodeCheckResponse, encodeCheckRequest } from '../sidecar/health/health-wire.js';
import { HealthChecker, type ProbeResult } from '../sidecar/health/health-checker.js';
import { OutlierDetector } from '../sidecar/health/outlier-detector.js';
import { DEFAULT_FAILURE_CODES, classifyStatus, failureCodesFor } from '../sidecar/health/failure-codes.js';
import { EndpointBreaker } from '../sidecar/health/endpoint-breaker.js';
import { ClusterCircuitBreakers, overflowMessage } from '../sidecar/health/circuit-breakers.js';
import type { Scheduler, TimerHandle } from '../sidecar/health/scheduler.js';
import type { OutlierDetectionSpec } from '../sidecar/config/model.js';

// ---------------------------------------------------------------------------------------------
// A fake clock: timers fire only when the test advances time, in due order.

interface FakeTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Lets promise callbacks (a fake probe settling) run before the test looks. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

class FakeScheduler implements Scheduler {
  now = 0;
  readonly delays: number[] = [];
  private timers: FakeTimer[] = [];
  private seq = 0;

  setTimer(fn: () => void, delayMs: number): TimerHandle {
    const timer: FakeTimer = { at: this.now + delayMs, seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    this.delays.push(delayMs);
    return { cancel: () => void (timer.cancelled = true) };
  }

  pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers.splice(this.timers.indexOf(due), 1);
      this.now = due.at;
      due.fn();
      await flush();
    }
    this.now = end;
    await flush();
  }
}

// ---------------------------------------------------------------------------------------------
// grpc.health.v1 wire format

test('encodeCheckRequest: "" is an empty message, a name is field 1 with a varint length', (t) => {
  t.deepEqual([...encodeCheckRequest('')], [0, 0, 0, 0, 0]);
  const name = 'remora.demo.v1.CatalogService';
  const frame = encodeCheckRequest(name);
  t.deepEqual([...frame.subarray(0, 7)], [0, 0, 0, 0, name.length + 2, 0x0a, name.length]);
  t.is(frame.subarray(7).toString(), name);
  // 200 bytes needs a two-byte varint: 200 = 0xc8 → 0xc8 0x01.
  const long = encodeCheckRequest('x'.repeat(200));
  t.is(long.readUInt32BE(1), 203);
  t.deepEqual([...long.subarray(5, 8)], [0x0a, 0xc8, 0x01]);
  t.is(long.length, 5 + 203);
});

const frameOf = (...bytes: number[]): Buffer => Buffer.from([0, 0, 0, 0, bytes.length, ...bytes]);

test('decodeCheckResponse: each serving status, defaults, unknown fields and broken frames', (t) => {
  t.is(decodeCheckResponse(frameOf(0x08, 1)), 'SERVING');
  t.is(decodeCheckResponse(frameOf(0x08, 2)), 'NOT_SERVING');
  t.is(decodeCheckResponse(frameOf(0x08, 3)), 'SERVICE_UNKNOWN');
  t.is(decodeCheckResponse(frameOf()), 'UNKNOWN', 'proto3: a missing enum is its zero value');
  t.is(decodeCheckResponse(frameOf(0x08, 9)), 'UNKNOWN', 'an enum number from a newer proto');
  // field 2 (string "ab"), field 3 (fixed32), field 4 (varint 300), then the status
  t.is(decodeCheckResponse(frameOf(0x12, 2, 0x61, 0x62, 0x1d, 1, 2, 3, 4, 0x20, 0xac, 0x02, 0x08, 1)), 'SERVING');
  t.is(decodeCheckResponse(frameOf(0x08, 2, 0x08, 1)), 'SERVING', 'last value wins');

  const err = (b: Buffer): string => {
    const r = decodeCheckResponse(b);
    return typeof r === 'string' ? `decoded as ${r}` : r.error;
  };
  t.regex(err(Buffer.alloc(0)), /without a response message/);
  t.regex(err(Buffer.from([0, 0, 0])), /truncated gRPC frame prefix/);
  t.regex(err(Buffer.from([1, 0, 0, 0, 2, 0x08, 1])), /compressed/);
  t.regex(err(Buffer.from([0, 0, 0, 0, 4, 0x08, 1])), /truncated response message/);
  t.regex(err(Buffer.concat([frameOf(0x08, 1), frameOf(0x08, 1)])), /more than one message/);
  t.regex(err(frameOf(0x08, 0x80)), /truncated varint/);
  t.regex(err(frameOf(0x12, 5, 0x61)), /truncated field/);
  t.regex(err(frameOf(0x0b)), /wire type 3/);
});

// ---------------------------------------------------------------------------------------------
// HealthChecker

const timing = { intervalMs: 1000, jitterMs: 100, healthyThreshold: 2, unhealthyThreshold: 3 };
const FAIL: ProbeResult = { failure: 'timeout after 500 ms' };

/** A probe whose answers the test sets per target; every call is logged. */
function scriptedProbe<T>(initial: ProbeResult = 'SERVING') {
  const answers = new Map<T, ProbeResult>();
  const calls: T[] = [];
  return {
    calls,
    set: (target: T, result: ProbeResult) => answers.set(target, result),
    probe: (target: T): Promise<ProbeResult> => {
      calls.push(target);
      return Promise.resolve(answers.get(target) ?? initial);
    },
  };
}

function changeLog<T>() {
  const changes: string[] = [];
  return { changes, onChange: (target: T, healthy: boolean, why: string) => changes.push(`${String(target)} ${healthy ? 'healthy' : 'unhealthy'}: ${why}`) };
}

test('HealthChecker: new targets start healthy and are checked at once; thresholds after the first check', async (t) => {
  const clock = new FakeScheduler();
  const p = scriptedProbe<string>();
  const log = changeLog<string>();
  const hc = new HealthChecker<string>(timing, p.probe, log.onChange, () => 0, { scheduler: clock });
  hc.setTargets(['a']);
  t.true(hc.isHealthy('a'), 'healthy before any check: new endpoints take traffic at once');
  t.deepEqual(p.calls, ['a'], 'first check starts inside setTargets');
  await flush();
  t.is(hc.lastResult('a'), 'SERVING');

  // Two failures are under unhealthyThreshold (3); a success in between resets the streak.
  p.set('a', FAIL);
  await clock.advance(1000);
  await clock.advance(1000);
  t.true(hc.isHealthy('a'));
  p.set('a', 'SERVING');
  await clock.advance(1000);
  p.set('a', 'NOT_SERVING');
  await clock.advance(2000);
  t.true(hc.isHealthy('a'));
  t.deepEqual(log.changes, []);
  await clock.advance(1000);
  t.false(hc.isHealthy('a'), 'third consecutive failure');
  t.deepEqual(log.changes, ['a unhealthy: NOT_SERVING (3 consecutive checks)']);

  // Back takes healthyThreshold (2) successes.
  p.set('a', 'SERVING');
  await clock.advance(1000);
  t.false(hc.isHealthy('a'));
  await clock.advance(1000);
  t.true(hc.isHealthy('a'));
  t.is(log.changes[1], 'a healthy: SERVING (2 consecutive checks)');
  t.is(p.calls.length, 9);
  hc.stop();
});

test('HealthChecker: the first check replaces the starting guess at once, in both directions', async (t) => {
  const clock = new FakeScheduler();
  const p = scriptedProbe<string>(FAIL);
  const log = changeLog<string>();
  const hc = new HealthChecker<string>(timing, p.probe, log.onChange, () => 0, { scheduler: clock });
  hc.setTargets(['dead']);
  await flush();
  t.false(hc.isHealthy('dead'), 'a dead new endpoint leaves after one check, not unhealthyThreshold of them');
  t.deepEqual(log.changes, ['dead unhealthy: timeout after 500 ms (first check)']);
  hc.stop();

  // The sidecar's own app: not ready until it answers, and ready on its first SERVING.
  const p2 = scriptedProbe<string>('SERVING');
  const log2 = changeLog<string>();
  const ready = new HealthChecker<string>(timing, p2.probe, log2.onChange, () => 0, { scheduler: clock, initiallyHealthy: false });
  ready.setTargets(['app']);
  t.false(ready.isHealthy('app'));
  await flush();
  t.true(ready.isHealthy('app'));
  t.deepEqual(log2.changes, ['app healthy: SERVING (first check)']);
  ready.stop();
});

test('HealthChecker: each interval gets 0..jitterMs of random jitter', async (t) => {
  for (const [r, expected] of [[0, 1000], [0.5, 1050], [0.999999, 1100]] as const) {
    const clock = new FakeScheduler();
    const hc = new HealthChecker<string>(timing, scriptedProbe<string>().probe, () => {}, () => r, { scheduler: clock });
    hc.setTargets(['a']);
    await flush();
    t.deepEqual(clock.delays, [expected], `random() = ${r}`);
    hc.stop();
  }
  // With the real Math.random, over many rounds: always inside the bounds, and actually spread.
  const clock = new FakeScheduler();
  const hc = new HealthChecker<string>(timing, scriptedProbe<string>().probe, () => {}, Math.random, { scheduler: clock });
  hc.setTargets(['a']);
  await flush();
  for (let i = 0; i < 200; i++) await clock.advance(1100);
  t.true(clock.delays.length > 150);
  t.true(clock.delays.every((d) => Number.isInteger(d) && d >= 1000 && d <= 1100));
  t.true(new Set(clock.delays).size > 20);
  hc.stop();
});

test('HealthChecker: never two probes at once for one target; the next is timed from the last answer', async (t) => {
  const clock = new FakeScheduler();
  let release: (r: ProbeResult) => void = () => {};
  let calls = 0;
  const hc = new HealthChecker<string>(
    timing,
    () => {
      calls++;
      return new Promise<ProbeResult>((resolve) => (release = resolve));
    },
    () => {},
    () => 0,
    { scheduler: clock },
  );
  hc.setTargets(['slow']);
  hc.setTargets(['slow']);
  await clock.advance(10_000);
  t.is(calls, 1, 'a probe that has not answered blocks the next one');
  t.is(clock.pending(), 0, 'no timer while a probe is out');
  release('SERVING');
  await flush();
  t.deepEqual(clock.delays, [1000]);
  await clock.advance(999);
  t.is(calls, 1);
  await clock.advance(1);
  t.is(calls, 2);
  hc.stop();
});

test('HealthChecker: setTargets keeps state, adds and removes; late results of removed targets are dropped', async (t) => {
  const clock = new FakeScheduler();
  const p = scriptedProbe<string>();
  const log = changeLog<string>();
  const hc = new HealthChecker<string>({ ...timing, unhealthyThreshold: 1 }, p.probe, log.onChange, () => 0, { scheduler: clock });
  hc.setTargets(['a', 'b']);
  await flush();
  p.set('a', FAIL);
  await clock.advance(1000);
  t.false(hc.isHealthy('a'));

  hc.setTargets(['a', 'c']);
  t.false(hc.isHealthy('a'), 'a kept its state');
  t.false(hc.isHealthy('b'), 'b is gone: unknown targets are not healthy');
  t.true(hc.isHealthy('c'));
  t.is(p.calls.filter((x) => x === 'c').length, 1, 'c checked at once');
  const bCalls = p.calls.filter((x) => x === 'b').length;
  await clock.advance(5000);
  t.is(p.calls.filter((x) => x === 'b').length, bCalls, 'b no longer checked');

  // A probe in flight when its target is removed: its answer changes nothing.
  let release: (r: ProbeResult) => void = () => {};
  const changes: string[] = [];
  const hc2 = new HealthChecker<string>(
    { ...timing, unhealthyThreshold: 1 },
    () => new Promise<ProbeResult>((resolve) => (release = resolve)),
    (target, healthy) => changes.push(`${target} ${healthy}`),
    () => 0,
    { scheduler: clock },
  );
  hc2.setTargets(['x']);
  hc2.setTargets([]);
  release(FAIL);
  await flush();
  t.deepEqual(changes, []);
  hc.stop();
  hc2.stop();
});

test('HealthChecker: a target re-added while its old probe is out waits for that probe instead of starting another', async (t) => {
  const clock = new FakeScheduler();
  const releases: ((r: ProbeResult) => void)[] = [];
  const changes: string[] = [];
  const hc = new HealthChecker<string>(
    timing,
    () => new Promise<ProbeResult>((resolve) => releases.push(resolve)),
    (target, healthy, why) => changes.push(`${target} ${healthy} ${why}`),
    () => 0,
    { scheduler: clock },
  );
  hc.setTargets(['x']);
  hc.setTargets([]);
  hc.setTargets(['x']);
  t.is(releases.length, 1, 'no second probe beside the first');
  releases[0]!(FAIL);
  await flush();
  t.deepEqual(changes, ['x false timeout after 500 ms (first check)'], 'the old probe counts as the first check');
  await clock.advance(1000);
  t.is(releases.length, 2, 'checking goes on');
  hc.stop();
});

test('HealthChecker: an onChange that removes the target stops its checks at once', async (t) => {
  const clock = new FakeScheduler();
  const p = scriptedProbe<string>(FAIL);
  const hc: HealthChecker<string> = new HealthChecker<string>(timing, p.probe, (target, healthy) => {
    if (!healthy) hc.setTargets([]);
  }, () => 0, { scheduler: clock });
  hc.setTargets(['a']);
  await flush();
  t.is(clock.pending(), 0, 'the timer set for the next check was cancelled with the target');
  await clock.advance(10_000);
  t.deepEqual(p.calls, ['a']);
});

test('HealthChecker: stop() clears every timer; a probe that throws or rejects counts as a failure', async (t) => {
  const clock = new FakeScheduler();
  const log = changeLog<string>();
  let n = 0;
  const hc = new HealthChecker<string>(
    { ...timing, unhealthyThreshold: 2 },
    (target) => {
      n++;
      if (target === 'throws') throw new Error('boom');
      return target === 'rejects' ? Promise.reject(new Error('nope')) : Promise.resolve('SERVING');
    },
    log.onChange,
    () => 0,
    { scheduler: clock },
  );
  hc.setTargets(['throws', 'rejects', 'ok']);
  await flush();
  t.deepEqual(log.changes.sort(), ['rejects unhealthy: probe failed: nope (first check)', 'throws unhealthy: probe threw: boom (first check)']);
  t.is(clock.pending(), 3);
  hc.stop();
  t.is(clock.pending(), 0);
  const before = n;
  await clock.advance(10_000);
  t.is(n, before);
  hc.setTargets(['new']);
  t.is(n, before, 'stop is final');
});

// ---------------------------------------------------------------------------------------------
// OutlierDetector

const outlier: OutlierDetectionSpec = { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 3500, maxEjectionPercent: 50, statusCodes: [] };

function detector(spec: OutlierDetectionSpec, targets: string[]) {
  const clock = new FakeScheduler();
  const changes: string[] = [];
  const d = new OutlierDetector<string>(spec, (target, ejected, why) => changes.push(`${clock.now} ${target} ${ejected ? 'ejected' : 'back'}: ${why}`), clock);
  d.setTargets(targets);
  const fail = (target: string, times = 1): void => {
    for (let i = 0; i < times; i++) d.record(target, 'failure', clock.now);
  };
  return { clock, changes, d, fail };
}

test('OutlierDetector: consecutive failures eject for baseEjectionMs, and a timer re-admits on time', async (t) => {
  const { clock, changes, d, fail } = detector(outlier, ['a', 'b']);
  fail('a', 2);
  d.record('a', 'success', clock.now);
  fail('a', 2);
  t.false(d.isEjected('a'), 'a success broke the streak');
  fail('a');
  t.true(d.isEjected('a'));
  t.deepEqual(changes, ['0 a ejected: 3 consecutive failures: ejected for 1000 ms (ejection #1)']);
  fail('a', 10);
  t.is(changes.length, 1, 'outcomes while ejected are ignored');
  await clock.advance(999);
  t.true(d.isEjected('a'));
  await clock.advance(1);
  t.false(d.isEjected('a'));
  t.is(changes[1], '1000 a back: ejection time over');
  t.deepEqual(d.stats(), { ejections: 1, skipped: 0, ejected: 0 });
  d.stop();
});

test('OutlierDetector: each ejection lasts base x ejections, capped; the count decays after quiet periods', async (t) => {
  const { clock, changes, d, fail } = detector(outlier, ['a', 'b']);
  const durations: number[] = [];
  for (let i = 0; i < 5; i++) {
    fail('a', 3);
    const start = clock.now;
    while (d.isEjected('a')) await clock.advance(100);
    durations.push(clock.now - start);
  }
  t.deepEqual(durations, [1000, 2000, 3000, 3500, 3500], 'multiplier 1, 2, 3, then maxEjectionMs');

  // Ejection count is 5 now; 2 x maxEjectionMs without an ejection takes it to 3, so the next is 4 x base capped.
  await clock.advance(2 * 3500);
  fail('a', 3);
  t.regex(changes.at(-1)!, /ejected for 3500 ms \(ejection #4\)/);
  await clock.advance(3500);
  // 4 quiet periods take 4 off: back to the first ejection's time.
  await clock.advance(4 * 3500);
  fail('a', 3);
  t.regex(changes.at(-1)!, /ejected for 1000 ms \(ejection #1\)/);
  d.stop();
});

test('OutlierDetector: never more than maxEjectionPercent ejected; at least one with two or more targets', async (t) => {
  const ten = Array.from({ length: 10 }, (_, i) => `t${i}`);
  const { clock, d, fail } = detector({ ...outlier, maxEjectionPercent: 20 }, ten);
  t.is(d.maxEjected(), 2);
  fail('t0', 3);
  fail('t1', 3);
  fail('t2', 3);
  t.deepEqual(ten.filter((x) => d.isEjected(x)), ['t0', 't1']);
  t.deepEqual(d.stats(), { ejections: 2, skipped: 1, ejected: 2 });
  await clock.advance(1000);
  t.false(d.isEjected('t0'));
  fail('t2');
  t.true(d.isEjected('t2'), 'the streak was kept, so the next failure ejects once there is room');
  d.stop();

  const cases: [number, number, number][] = [
    // [targets, percent, max ejected]
    [3, 10, 1],
    [2, 10, 1],
    [1, 50, 0],
    [1, 100, 1],
    [5, 0, 0],
    [7, 30, 2],
    [4, 100, 4],
  ];
  for (const [n, percent, max] of cases) {
    const targets = Array.from({ length: n }, (_, i) => `t${i}`);
    const { d: dd, fail: ff } = detector({ ...outlier, maxEjectionPercent: percent }, targets);
    t.is(dd.maxEjected(), max, `${n} targets at ${percent}%`);
    for (const x of targets) ff(x, 3);
    t.is(targets.filter((x) => dd.isEjected(x)).length, max, `${n} targets at ${percent}%: ejections made`);
    dd.stop();
  }
});

test('OutlierDetector: record() re-admits when a late timer has not yet; setTargets and stop clean up', async (t) => {
  const { clock, changes, d, fail } = detector(outlier, ['a', 'b']);
  fail('a', 3);
  d.record('a', 'success', 5000);
  t.false(d.isEjected('a'), 'an outcome after the ejection time re-admits');
  t.is(changes[1], '0 a back: ejection time over');
  await clock.advance(5000);
  t.is(changes.length, 2, 'the timer was cancelled with it');

  fail('a', 3);
  t.true(d.isEjected('a'));
  d.setTargets(['b', 'c']);
  t.false(d.isEjected('a'));
  t.is(d.stats().ejected, 0, 'removing an ejected target frees its slot');
  fail('b', 3);
  t.true(d.isEjected('b'));
  d.record('unknown', 'failure', clock.now);
  d.stop();
  t.is(clock.pending(), 0);
  await clock.advance(10_000);
  t.is(changes.filter((c) => c.includes(' back')).length, 1, 'no callbacks after stop');
});

test('classifyStatus: UNAVAILABLE and INTERNAL by default, configured codes added; others are the app answering', (t) => {
  t.deepEqual([...DEFAULT_FAILURE_CODES].sort(), [Status.INTERNAL, Status.UNAVAILABLE]);
  t.is(classifyStatus(Status.OK, DEFAULT_FAILURE_CODES), 'success');
  t.is(classifyStatus(Status.UNAVAILABLE, DEFAULT_FAILURE_CODES), 'failure');
  t.is(classifyStatus(Status.INTERNAL, DEFAULT_FAILURE_CODES), 'failure');
  t.is(classifyStatus(Status.NOT_FOUND, DEFAULT_FAILURE_CODES), 'success');
  t.is(classifyStatus(Status.DEADLINE_EXCEEDED, DEFAULT_FAILURE_CODES), 'success');
  const codes = failureCodesFor(['DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED']);
  t.is(classifyStatus(Status.DEADLINE_EXCEEDED, codes), 'failure');
  t.is(classifyStatus(Status.RESOURCE_EXHAUSTED, codes), 'failure');
  t.is(classifyStatus(Status.UNAVAILABLE, codes), 'failure', 'defaults kept');
  const d = new OutlierDetector<string>({ ...outlier, statusCodes: ['ABORTED'] }, () => {}, new FakeScheduler());
  t.true(d.failureCodes.has(Status.ABORTED) && d.failureCodes.has(Status.INTERNAL));
});

// ---------------------------------------------------------------------------------------------
// EndpointBreaker

const breakerConfig = { failureThreshold: 3, openMs: 100, maxOpenMs: 350, probeTimeoutMs: 1000 };

test('EndpointBreaker: closed → open after consecutive failures → half-open with exactly one probe → closed', (t) => {
  const b = new EndpointBreaker(breakerConfig);
  t.is(b.state(0), 'closed');
  b.record('failure', 0, 1);
  b.record('failure', 0, 1);
  b.record('success', 0, 1);
  b.record('failure', 0, 2);
  b.record('failure', 0, 2);
  t.is(b.state(2), 'closed', 'a success reset the streak');
  b.record('failure', 0, 10);
  t.is(b.state(10), 'open');
  t.false(b.tryAcquire(10));
  t.false(b.tryAcquire(109));
  t.is(b.openRemainingMs(60), 50);
  t.is(b.state(110), 'half-open');
  t.true(b.tryAcquire(110), 'the probe');
  t.false(b.tryAcquire(110), 'only one probe');
  t.false(b.tryAcquire(150));
  b.record('success', 110, 160);
  t.is(b.state(160), 'closed');
  t.true(b.tryAcquire(160));
  t.true(b.tryAcquire(160));
  b.record('failure', 160, 170);
  b.record('failure', 160, 170);
  t.is(b.state(170), 'closed', 'the failure streak started over');
});

test('EndpointBreaker: a failed probe doubles the open time up to the cap; closing resets it', (t) => {
  const b = new EndpointBreaker(breakerConfig);
  for (let i = 0; i < 3; i++) b.record('failure', 0, 0);
  const openFor: number[] = [];
  let now = 0;
  for (let i = 0; i < 4; i++) {
    now += b.openRemainingMs(now);
    t.true(b.tryAcquire(now));
    b.record('failure', now, now);
    openFor.push(b.openRemainingMs(now));
  }
  t.deepEqual(openFor, [200, 350, 350, 350]);
  now += 350;
  t.true(b.tryAcquire(now));
  b.record('success', now, now);
  for (let i = 0; i < 3; i++) b.record('failure', now, now);
  t.is(b.openRemainingMs(now), 100, 'back to openMs');
});

test('EndpointBreaker: stragglers from before a change of state are ignored; cancelled and lost probes free the slot', (t) => {
  const b = new EndpointBreaker(breakerConfig);
  for (let i = 0; i < 3; i++) b.record('failure', 0, 5);
  t.is(b.state(5), 'open');
  b.record('success', 1, 50);
  t.is(b.state(50), 'open', 'a call from before the opening says nothing about now');
  t.true(b.tryAcquire(105));
  b.record('success', 2, 106);
  t.is(b.state(106), 'half-open', 'a straggler does not pass for the probe');
  t.false(b.tryAcquire(106));
  b.record('cancelled', 105, 107);
  t.true(b.tryAcquire(108), 'a cancelled probe lets the next caller probe');
  t.false(b.tryAcquire(500));
  t.true(b.tryAcquire(1108), 'a probe never reported is presumed lost after probeTimeoutMs');
  b.record('success', 108, 1109);
  t.is(b.state(1109), 'half-open', 'the lost probe reporting late does not count');
  b.record('success', 1108, 1110);
  t.is(b.state(1110), 'closed');
  b.record('failure', 3, 1111);
  b.record('failure', 3, 1111);
  b.record('failure', 3, 1111);
  t.is(b.state(1111), 'closed', 'failures of calls begun before the close do not reopen it');
  b.record('cancelled', 1200, 1201);
  t.is(b.state(1201), 'closed');
});

// ---------------------------------------------------------------------------------------------
// ClusterCircuitBreakers

test('ClusterCircuitBreakers: each threshold trips with its name, counts overflows, and recovers on release', (t) => {
  const cb = new ClusterCircuitBreakers({ maxConnections: 2, maxPendingRequests: 1, maxRequests: 3, maxRetries: 1 });
  const cases = [
    ['connection', 2, 'max-connections'],
    ['pending', 1, 'max-pending-requests'],
    ['request', 3, 'max-requests'],
    ['retry', 1, 'max-retries'],
  ] as const;
  for (const [kind, limit, name] of cases) {
    for (let i = 0; i < limit; i++) t.is(cb.tryAcquire(kind), null, `${kind} #${i + 1}`);
    t.is(cb.active(kind), limit);
    t.is(cb.limit(kind), limit);
    t.is(cb.tryAcquire(kind), name);
    t.is(cb.tryAcquire(kind), name);
    t.is(cb.overflows(kind), 2);
    t.is(cb.active(kind), limit, 'a refusal takes nothing');
    cb.release(kind);
    t.is(cb.tryAcquire(kind), null);
  }
  t.is(overflowMessage('max-requests', 'catalog', 3), 'circuit breaker max-requests tripped for cluster catalog (limit 3)');
});

test('ClusterCircuitBreakers: absent thresholds are unlimited; release never goes below zero', (t) => {
  const cb = new ClusterCircuitBreakers({ maxRequests: 1 });
  let refused = 0;
  for (let i = 0; i < 10_000; i++) if (cb.tryAcquire('connection') !== null) refused++;
  t.is(refused, 0);
  t.is(cb.limit('retry'), Number.POSITIVE_INFINITY);
  cb.release('request');
  cb.release('request');
  t.is(cb.active('request'), 0);
  t.is(cb.tryAcquire('request'), null);
  t.is(cb.tryAcquire('request'), 'max-requests', 'extra releases did not raise the limit');
  const none = new ClusterCircuitBreakers();
  t.is(none.tryAcquire('retry'), null);
});

test('ClusterCircuitBreakers: zero thresholds refuse everything', (t) => {
  const cb = new ClusterCircuitBreakers({ maxConnections: 0, maxPendingRequests: 0, maxRequests: 0, maxRetries: 0 });
  t.is(cb.tryAcquire('retry'), 'max-retries');
  t.is(cb.tryAcquire('request'), 'max-requests');
});
