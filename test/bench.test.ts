import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { LatencyHistogram, median } from '../bench/histogram.js';
import { SCENARIOS, startTopology } from '../bench/topology.js';
import { certificateInfo } from '../lib/pki/x509.js';
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
  settings: { scenarios: string[] };
  summary: {
    scenario: string;
    requests: number;
    errors: number;
    rps: number;
    sidecars: { role: string; cpuUsPerRequest: number }[];
    vsPlaintext?: { scenario: string; rpsRatio: number; addedCpuUsPerRequest: number[] };
  }[];
}

test('the default scenarios put two-hop-mtls right after two-hop', (t) => {
  t.deepEqual([...SCENARIOS], ['direct', 'one-hop', 'two-hop', 'two-hop-mtls']);
});

test.serial('remora bench runs direct and one-hop end to end', async (t) => {
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

test.serial('remora bench two-hop-mtls: measured over mTLS, set against two-hop', async (t) => {
  t.timeout(50_000);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-bench-test-'));
  try {
    const json = path.join(dir, 'bench.json');
    const args = ['bench', '--scenarios', 'two-hop,two-hop-mtls', '--duration-s', '1.5', '--warmup-s', '0.5', '--connections', '2', '--streams', '2', '--json', json];
    const { stdout } = await run(process.execPath, [remoraBin, ...args], { timeout: 45_000 });
    t.regex(stdout, /\| two-hop \|/);
    t.regex(stdout, /\| two-hop-mtls \|/);
    t.regex(stdout, /The cost of mTLS/);
    t.regex(stdout, /\| two-hop-mtls \| two-hop \| [\d.]+× \|/);
    const result = JSON.parse(await readFile(json, 'utf8')) as BenchJson;
    t.deepEqual(result.settings.scenarios, ['two-hop', 'two-hop-mtls']);
    t.deepEqual(result.summary.map((s) => s.scenario), ['two-hop', 'two-hop-mtls']);
    for (const s of result.summary) {
      t.true(s.requests > 0, `${s.scenario} completed no requests`);
      t.is(s.errors, 0, `${s.scenario} had errors`);
      t.is(s.sidecars.length, 2, `${s.scenario} sidecars`);
    }
    const mtls = result.summary[1]!;
    t.deepEqual(mtls.sidecars.map((s) => s.role), ['two-hop-mtls-a', 'two-hop-mtls-b']);
    t.is(mtls.vsPlaintext?.scenario, 'two-hop');
    t.is(mtls.vsPlaintext?.addedCpuUsPerRequest.length, 2);
    t.is(result.summary[0]!.vsPlaintext, undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.serial('two-hop-mtls: certificates are private files with SPIFFE IDs, and the check refuses a server sidecar that takes plaintext', async (t) => {
  t.timeout(50_000);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-bench-test-'));
  const base = { scenarios: ['two-hop-mtls'] as const, cluster: 'echo', sidecarLogLevel: 'warn' };
  try {
    await Promise.all(['strict', 'permissive'].map((d) => mkdir(path.join(dir, d))));
    const strict = await startTopology({ ...base, workDir: path.join(dir, 'strict') });
    try {
      await strict.targets.get('two-hop-mtls')!.verify!();
      const pki = path.join(dir, 'strict', 'pki');
      const files = (await readdir(pki)).sort();
      t.deepEqual(files, ['bench-client-key.pem', 'bench-client.pem', 'bench-server-key.pem', 'bench-server.pem', 'roots.pem']);
      for (const f of files) t.is((await stat(path.join(pki, f))).mode & 0o777, 0o600, f);
      const server = certificateInfo(await readFile(path.join(pki, 'bench-server.pem'), 'utf8'));
      t.deepEqual(server.uris, ['spiffe://cluster.local/ns/default/sa/bench-server']);
      const hours = (server.notAfter.getTime() - server.notBefore.getTime()) / 3_600_000;
      t.true(Math.abs(hours - 24) < 0.01, `validity ${hours} h`);
      const client = certificateInfo(await readFile(path.join(pki, 'bench-client.pem'), 'utf8'));
      t.deepEqual(client.uris, ['spiffe://cluster.local/ns/default/sa/bench-client']);
    } finally {
      await strict.stop();
    }

    const permissive = await startTopology({ ...base, workDir: path.join(dir, 'permissive'), serverMtlsMode: 'PERMISSIVE' });
    try {
      const err = await t.throwsAsync(permissive.targets.get('two-hop-mtls')!.verify!());
      t.regex(err!.message, /two-hop-mtls is not measuring mTLS: a plaintext h2c call .* grpc-status 0 .*not STRICT/);
    } finally {
      await permissive.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
