import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { LatencyHistogram, median } from '../bench/histogram.js';
import { remoraBin } from '../lib/processes.js';

const run = promisify(execFile);

test('histogram percentiles are accurate to 3 significant digits', (t) => {
  const h = new LatencyHistogram();
  for (let ms = 1; ms <= 1000; ms++) h.recordMillis(ms);
  t.is(h.count, 1000);
  const near = (actual: number, expected: number): boolean => Math.abs(actual - expected) <= expected * 0.001 + 0.001;
  t.true(near(h.percentileMs(50), 500), `p50 ${h.percentileMs(50)}`);
  t.true(near(h.percentileMs(99), 990), `p99 ${h.percentileMs(99)}`);
  const s = h.summary();
  t.true(near(s.p999Ms, 999), `p99.9 ${s.p999Ms}`);
  t.true(near(s.maxMs, 1000), `max ${s.maxMs}`);
  t.true(near(s.meanMs, 500.5), `mean ${s.meanMs}`);
});

test('histogram clamps out-of-range values, survives encoding, and merges', (t) => {
  const a = new LatencyHistogram();
  t.is(a.percentileMs(99), 0);
  a.recordMicros(0);
  a.recordMicros(1e12);
  t.is(a.count, 2);
  t.is(a.summary().maxMs, 60_000);
  const b = LatencyHistogram.decode(a.encode());
  // Decoding keeps buckets, not the exact max, so max comes back as its bucket's upper edge.
  const { maxMs: aMax, ...aRest } = a.summary();
  const { maxMs: bMax, ...bRest } = b.summary();
  t.deepEqual(bRest, aRest);
  t.true(Math.abs(bMax - aMax) <= aMax * 0.001);
  b.merge(a);
  t.is(b.count, 4);
});

test('median of odd, even and empty lists', (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.true(Number.isNaN(median([])));
});

interface BenchJson {
  summary: { scenario: string; requests: number; errors: number; rps: number }[];
}

test('remora bench runs direct and one-hop end to end', async (t) => {
  t.timeout(45_000);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-bench-test-'));
  try {
    const json = path.join(dir, 'bench.json');
    const args = ['bench', '--scenarios', 'direct,one-hop', '--duration-s', '2', '--warmup-s', '0.5', '--connections', '2', '--streams', '2', '--json', json];
    const { stdout } = await run(process.execPath, [remoraBin, ...args], { timeout: 40_000 });
    t.regex(stdout, /\| direct \|/);
    t.regex(stdout, /\| one-hop \|/);
    const result = JSON.parse(await readFile(json, 'utf8')) as BenchJson;
    t.deepEqual(result.summary.map((s) => s.scenario), ['direct', 'one-hop']);
    for (const s of result.summary) {
      t.true(s.requests > 0, `${s.scenario} completed no requests`);
      t.is(s.errors, 0, `${s.scenario} had errors`);
      t.true(s.rps > 0, `${s.scenario} rps`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
