import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { requireProxyBinary } from '../bench/reference-proxies.js';
import { availableScenarios, MTLS_SCENARIOS, PLAINTEXT_TWIN, REFERENCE_SCENARIOS, SCENARIOS } from '../bench/topology.js';
import { remoraBin } from '../lib/processes.js';

const run = promisify(execFile);

interface BenchJson {
  summary: {
    scenario: string;
    requests: number;
    errors: number;
    errorsByKind: Record<string, number>;
    sidecars: { role: string; cpuUsPerOp: number }[];
  }[];
}

test('reference scenarios are listed only when their binary is found, and pair with their plaintext twins', (t) => {
  const refs = SCENARIOS.filter((s) => REFERENCE_SCENARIOS[s]);
  t.deepEqual(refs, ['two-hop-nginx', 'two-hop-nginx-mtls', 'two-hop-haproxy', 'two-hop-haproxy-mtls']);
  // An override wins over PATH: nginx "missing", and any executable standing in for haproxy.
  const env = { PATH: '/nonexistent', REMORA_BENCH_NGINX_BIN: '/nonexistent/nginx', REMORA_BENCH_HAPROXY_BIN: process.execPath };
  const available = availableScenarios(env);
  t.false(available.some((s) => s.includes('nginx')), available.join(','));
  t.true(available.includes('two-hop-haproxy') && available.includes('two-hop-haproxy-mtls'), available.join(','));
  t.true(available.includes('two-hop-mtls-full'));
  t.is(PLAINTEXT_TWIN['two-hop-nginx-mtls'], 'two-hop-nginx');
  t.is(PLAINTEXT_TWIN['two-hop-haproxy-mtls'], 'two-hop-haproxy');
  t.is(PLAINTEXT_TWIN['two-hop-mtls-full'], 'two-hop-mtls');
  // Certificate flags are remora's: reference scenarios are not sidecars a --sidecar-script replaces.
  t.deepEqual([...MTLS_SCENARIOS], ['two-hop-mtls', 'two-hop-mtls-full']);
});

test('a reference scenario whose proxy is missing fails before starting anything, saying how to install it', async (t) => {
  t.timeout(30_000);
  const attempt = async (scenario: string, envVar: string): Promise<string> => {
    const env = { ...process.env, [envVar]: '/nonexistent/bin/proxy' };
    const err = await t.throwsAsync(
      run(process.execPath, [remoraBin, 'bench', '--scenarios', scenario, '--duration-s', '0.5', '--warmup-s', '0'], { env, timeout: 25_000 }),
    );
    return (err as Error & { stderr?: string }).stderr ?? '';
  };
  const [nginx, haproxy] = await Promise.all([attempt('two-hop-nginx', 'REMORA_BENCH_NGINX_BIN'), attempt('two-hop-haproxy-mtls', 'REMORA_BENCH_HAPROXY_BIN')]);
  t.regex(nginx, /two-hop-nginx needs nginx, and \/nonexistent\/bin\/proxy \(from REMORA_BENCH_NGINX_BIN\) is not an executable file/);
  t.regex(nginx, /apt-get install nginx-light/);
  t.regex(haproxy, /two-hop-haproxy-mtls needs haproxy/);
  t.regex(haproxy, /apt-get install haproxy/);
});

test.serial('remora bench: nginx and HAProxy over mTLS and the all-features pair complete calls with no errors, CPU measured per proxy', async (t) => {
  t.timeout(55_000);
  // Fails, naming the package to install, on a machine without them.
  requireProxyBinary('nginx', 'this test');
  requireProxyBinary('haproxy', 'this test');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'remora-bench-reference-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const json = path.join(dir, 'bench.json');
  const scenarios = ['direct', 'two-hop-nginx-mtls', 'two-hop-haproxy-mtls', 'two-hop-mtls-full'];
  const args = ['bench', '--scenarios', scenarios.join(','), '--duration-s', '1', '--warmup-s', '0.5', '--json', json];
  const { stdout } = await run(process.execPath, [remoraBin, ...args], { timeout: 50_000 });
  for (const s of scenarios) t.regex(stdout, new RegExp(`\\| ${s} \\|`));
  const result = JSON.parse(await readFile(json, 'utf8')) as BenchJson;
  t.deepEqual(result.summary.map((s) => s.scenario), scenarios);
  for (const s of result.summary) {
    t.true(s.requests > 0, `${s.scenario} completed no calls`);
    t.is(s.errors, 0, `${s.scenario} had errors: ${JSON.stringify(s.errorsByKind)}`);
    if (s.scenario === 'direct') continue;
    t.deepEqual(s.sidecars.map((p) => p.role), [`${s.scenario}-a`, `${s.scenario}-b`]);
    for (const p of s.sidecars) t.true(Number.isFinite(p.cpuUsPerOp) && p.cpuUsPerOp > 0, `${p.role} CPU µs/op ${p.cpuUsPerOp}`);
  }
});
