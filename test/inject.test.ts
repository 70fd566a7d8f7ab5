/**
 * Sidecar injection (`remora inject`, control-plane/injection/): golden files for native and
 * classic mode, idempotence, skips with reasons, and the CLI as a real process.
 *
 * Golden files: test/fixtures/inject/in/NAME.yaml → out/NAME.{native,classic}.yaml, compared as
 * parsed YAML. `REMORA_UPDATE_GOLDEN=1 npx ava dist/test/inject.test.js` rewrites them (review the diff).
 */
import test from 'ava';
import path from 'node:path';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { repoRoot, startNode, startRemora, type Proc, type StartOptions } from '../lib/processes.js';
import { deepFreeze } from '../lib/validate.js';
import { injectPod, type InjectStatus, type JsonObject } from '../control-plane/injection/inject.js';
import { injectManifest, ManifestError } from '../control-plane/injection/manifest.js';
import { injectOptions, InjectOptionsError, type InjectMode } from '../control-plane/injection/options.js';
import { injectObject, type ObjectStatus } from '../control-plane/injection/workload.js';
import { describeResult } from '../cli/inject-command.js';

const FIXTURES = path.join(repoRoot, 'test/fixtures/inject');
const UPDATE = process.env.REMORA_UPDATE_GOLDEN === '1';
const MODES: InjectMode[] = ['native', 'classic'];
const optsFor = (mode: InjectMode) => injectOptions({ mode, version: 'golden' });

/** What each input fixture must yield, object by object (kind/name status). */
const EXPECTED: Record<string, string[]> = {
  'deployment': ['Deployment/web injected'],
  'pod': ['Pod/catalog-0 injected'],
  'statefulset': ['StatefulSet/ledger injected'],
  'cronjob': ['CronJob/report injected'],
  'service-and-deployment': ['Service/api not-a-pod-template', 'Deployment/api injected'],
  'opted-out-pod': ['Pod/legacy opted-out'],
  'host-network-pod': ['Pod/node-agent not-applicable'],
  'already-injected-pod': ['Pod/catalog-1 already-injected'],
};

function parseDocs(text: string): unknown[] {
  return parseAllDocuments(text as string)
    .map((d) => d.toJS() as unknown)
    .filter((d) => d !== null && d !== undefined);
}

async function inputs(): Promise<string[]> {
  return (await readdir(path.join(FIXTURES, 'in'))).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
}

const read = (rel: string) => readFile(path.join(FIXTURES, rel), 'utf8');

test('every input fixture has an expectation', async (t) => {
  t.deepEqual(await inputs(), Object.keys(EXPECTED).sort());
});

for (const mode of MODES) {
  test(`golden files, ${mode} mode`, async (t) => {
    const opts = optsFor(mode);
    for (const name of await inputs()) {
      const input = await read(`in/${name}.yaml`);
      const r = injectManifest(input, opts);
      t.deepEqual(r.results.map((x) => `${x.kind}/${x.name} ${x.status}`), EXPECTED[name], name);
      const goldenRel = `out/${name}.${mode}.yaml`;
      if (UPDATE) await writeFile(path.join(FIXTURES, goldenRel), `# golden: remora inject --mode ${mode} of in/${name}.yaml (REMORA_UPDATE_GOLDEN=1 rewrites)\n${r.text}`);
      t.deepEqual(parseDocs(r.text), parseDocs(await read(goldenRel)), `${goldenRel} (REMORA_UPDATE_GOLDEN=1 to rewrite)`);
      // Editing the YAML in place gives exactly what injecting the parsed objects gives.
      t.deepEqual(parseDocs(r.text), parseDocs(input).map((d) => injectObject(d, opts).object), `${name}: YAML edit == object injection`);
      // Untouched documents come out with the same content.
      const unchanged = parseDocs(input).filter((d) => !injectObject(d, opts).changed);
      for (const d of unchanged) t.true(parseDocs(r.text).some((o) => JSON.stringify(o) === JSON.stringify(d)), `${name}: unchanged document kept`);
    }
  });

  test(`idempotent: inject(inject(x)) == inject(x), ${mode} mode`, async (t) => {
    const opts = optsFor(mode);
    for (const name of await inputs()) {
      const once = injectManifest(await read(`in/${name}.yaml`), opts);
      const twice = injectManifest(once.text, opts);
      t.deepEqual(parseDocs(twice.text), parseDocs(once.text), name);
      t.false(twice.results.some((r) => r.injected), name);
      for (const doc of parseDocs(once.text)) t.false(injectObject(doc, opts).changed, name);
    }
  });
}

test('comments outside the injected parts survive', async (t) => {
  const r = injectManifest(await read('in/deployment.yaml'), optsFor('native'));
  t.true(r.text.startsWith('# A Deployment with two containers'));
  t.regex(r.text, /- name: web # the app/);
  const multi = injectManifest(await read('in/service-and-deployment.yaml'), optsFor('native'));
  t.regex(multi.text, /# the deployment behind it/);
});

function podOf(text: string): JsonObject {
  return parseDocs(text)[0] as JsonObject;
}

test('native mode: remora-init, then the sidecar with restartPolicy Always, then the user\'s init containers', async (t) => {
  const dep = parseDocs(injectManifest(await read('in/deployment.yaml'), optsFor('native')).text)[0] as any;
  const spec = dep.spec.template.spec;
  t.deepEqual(spec.initContainers.map((c: any) => c.name), ['remora-init', 'remora-sidecar', 'migrate']);
  t.deepEqual(spec.containers.map((c: any) => c.name), ['web', 'log-shipper']);
  const sidecar = spec.initContainers[1];
  t.is(sidecar.restartPolicy, 'Always');
  t.is(sidecar.lifecycle, undefined);
  t.is(spec.terminationGracePeriodSeconds, 45);
  const env = Object.fromEntries(sidecar.env.map((e: any) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]));
  t.like(env, {
    REMORA_SERVICE: 'web',
    REMORA_NAMESPACE: 'metadata.namespace',
    REMORA_SERVICE_ACCOUNT: 'web',
    REMORA_INSTANCE_ID: 'metadata.name',
    REMORA_ADVERTISE_ADDRESS: 'status.podIP',
    REMORA_APP_PORT: '8080',
    REMORA_CONTROL_PLANE: 'remora-control-plane.remora-system.svc:15012',
    REMORA_CONTROL_PLANE_CA_FILE: '/var/run/remora/roots/roots.pem',
    REMORA_CA_TOKEN_FILE: '/var/run/secrets/remora/token',
    REMORA_INBOUND_ADDRESS: '0.0.0.0',
    REMORA_STATS_ADDRESS: '0.0.0.0',
    REMORA_LABELS: 'version=v2',
  });
  const init = spec.initContainers[0];
  t.deepEqual(init.command, ['remora', 'init-iptables', '--proxy-uid', '1337', '--outbound-port', '15001', '--inbound-port', '15006', '--exclude-inbound-ports', '15020,15021,8081']);
  t.deepEqual(init.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
  t.deepEqual(spec.volumes.map((v: any) => v.name), ['logs', 'remora-token', 'remora-roots']);
  t.deepEqual(spec.volumes[1].projected.sources[0].serviceAccountToken, { audience: 'remora-ca', expirationSeconds: 3600, path: 'token' });
  t.like(dep.spec.template.metadata.annotations, { 'remora.io/injected': 'golden', 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020', 'prometheus.io/path': '/metrics', 'kubectl.kubernetes.io/default-container': 'web' });
});

test('classic mode: the sidecar is the first container and holds the app with a postStart hook', async (t) => {
  const pod = podOf(injectManifest(await read('in/pod.yaml'), optsFor('classic')).text) as any;
  t.deepEqual(pod.spec.initContainers.map((c: any) => c.name), ['remora-init']);
  t.deepEqual(pod.spec.containers.map((c: any) => c.name), ['remora-sidecar', 'catalog']);
  const sidecar = pod.spec.containers[0];
  t.is(sidecar.restartPolicy, undefined);
  t.deepEqual(sidecar.lifecycle.postStart.exec.command, ['remora', 'wait-ready', '--port', '15020', '--timeout-s', '60']);
  t.is(pod.metadata.annotations['kubectl.kubernetes.io/default-container'], 'catalog');
  const cron = injectManifest(await read('in/cronjob.yaml'), optsFor('classic'));
  t.regex(describeResult(cron.results[0]!), /^cronjob\/report: injected \(note: .*use --mode native\)$/);
});

test('annotations: service, app port, proxy resources, exclusions; an app\'s own prometheus annotations are kept', async (t) => {
  const sts = parseDocs(injectManifest(await read('in/statefulset.yaml'), optsFor('native')).text)[0] as any;
  const tpl = sts.spec.template;
  const [init, sidecar] = tpl.spec.initContainers;
  t.deepEqual(init.command.slice(-6), ['--exclude-inbound-ports', '15020,15021', '--exclude-outbound-ports', '5432,6379', '--exclude-outbound-ips', '10.0.0.0/8,169.254.169.254']);
  t.deepEqual(sidecar.resources, { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '512Mi' } });
  t.like(Object.fromEntries(sidecar.env.map((e: any) => [e.name, e.value])), { REMORA_SERVICE: 'ledger-svc', REMORA_APP_PORT: '7000' });
  t.is(tpl.metadata.annotations['prometheus.io/port'], '9102');
});

function pod(extra: { metadata?: JsonObject; spec?: JsonObject } = {}): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p', labels: { app: 'svc' }, ...extra.metadata },
    spec: { containers: [{ name: 'app', image: 'x', ports: [{ containerPort: 8080 }] }], ...extra.spec },
  };
}

test('injectPod never modifies its input and returns a new object', (t) => {
  const input = deepFreeze(pod());
  const before = JSON.stringify(input);
  const r = injectPod(input, optsFor('native'));
  t.true(r.changed);
  t.is(r.status, 'injected');
  t.not(r.template, input);
  t.is(JSON.stringify(input), before);
});

test('skips with a reason', (t) => {
  const opts = optsFor('native');
  const cases: [unknown, InjectStatus, RegExp][] = [
    [pod({ metadata: { labels: { app: 'svc', 'remora.io/inject': 'false' } } }), 'opted-out', /label remora\.io\/inject=false/],
    [pod({ metadata: { annotations: { 'remora.io/inject': 'false' } } }), 'opted-out', /annotation remora\.io\/inject=false/],
    [pod({ spec: { hostNetwork: true, containers: [{ name: 'a' }] } }), 'not-applicable', /hostNetwork/],
    [pod({ spec: { containers: [] } }), 'invalid', /no containers/],
    [pod({ spec: { containers: 'oops' } }), 'invalid', /spec\.containers is not a list/],
    [pod({ spec: { containers: [{ image: 'x' }] } }), 'invalid', /not a container with a name/],
    [pod({ spec: { containers: [{ name: 'a', ports: [{ containerPort: 15001 }] }] } }), 'invalid', /container a uses port 15001/],
    [pod({ spec: { containers: [{ name: 'a' }], initContainers: [{ name: 'i', ports: [{ containerPort: 15020 }] }] } }), 'invalid', /uses port 15020/],
    [pod({ metadata: { labels: {} } }), 'invalid', /no service name: set the label app/],
    [pod({ metadata: { labels: { app: 'Not_A_Label' } } }), 'invalid', /not a lower-case DNS label/],
    [pod({ metadata: { annotations: { 'remora.io/app-port': 'http' } } }), 'invalid', /remora\.io\/app-port="http" is not a port/],
    [pod({ metadata: { annotations: { 'remora.io/exclude-inbound-ports': '80,abc' } } }), 'invalid', /exclude-inbound-ports/],
    [pod({ metadata: { annotations: { 'remora.io/exclude-outbound-ips': '10.0.0.0/8; rm -rf /' } } }), 'invalid', /exclude-outbound-ips/],
    [pod({ metadata: { annotations: { 'remora.io/proxy-memory': 'lots' } } }), 'invalid', /proxy-memory="lots" is not a Kubernetes quantity/],
    [pod({ metadata: { annotations: { 'remora.io/proxy-memory': '1Gi', 'remora.io/proxy-memory-limit': '512Mi' } } }), 'invalid', /below the memory request/],
    [pod({ spec: { containers: [{ name: 'a' }], volumes: [{ name: 'remora-token', emptyDir: {} }] } }), 'invalid', /volume named remora-token/],
    [pod({ metadata: { annotations: { 'remora.io/injected': '0.0.1' } } }), 'already-injected', /already injected \(remora\.io\/injected=0\.0\.1\)/],
    [pod({ spec: { containers: [{ name: 'a' }, { name: 'remora-sidecar' }] } }), 'already-injected', /named remora-sidecar/],
    [pod({ spec: { containers: [{ name: 'a' }], initContainers: [{ name: 'remora-sidecar', restartPolicy: 'Always' }] } }), 'already-injected', /named remora-sidecar/],
    ['a string', 'invalid', /not an object/],
  ];
  for (const [input, status, reason] of cases) {
    const r = injectPod(input, opts);
    t.is(r.status, status, JSON.stringify(input));
    t.regex(r.reason, reason);
    t.false(r.changed);
    t.is(r.template, input);
  }
});

test('workloads: the service name falls back to the workload name; Lists; unknown kinds pass through', (t) => {
  const opts = optsFor('native');
  const dep = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'orders' }, spec: { template: { spec: { containers: [{ name: 'a' }] } } } };
  const r = injectObject(dep, opts);
  t.true(r.changed);
  const sidecar = (r.object as any).spec.template.spec.initContainers[1];
  t.is(sidecar.env.find((e: any) => e.name === 'REMORA_SERVICE').value, 'orders');
  t.is(sidecar.env.find((e: any) => e.name === 'REMORA_APP_PORT'), undefined);
  t.is((dep as any).spec.template.spec.initContainers, undefined, 'input untouched');

  const list = { apiVersion: 'v1', kind: 'List', items: [dep, { kind: 'ConfigMap', metadata: { name: 'c' } }] };
  const lr = injectObject(list, opts);
  t.deepEqual(lr.results.map((x) => `${x.kind}/${x.name} ${x.status}`), ['Deployment/orders injected', 'ConfigMap/c not-a-pod-template']);
  t.deepEqual((lr.object as any).items[1], list.items[1]);

  const weird = { kind: 'Deployment', metadata: { name: 'd' } };
  t.like(injectObject(weird, opts), { changed: false, object: weird, results: [{ status: 'invalid' as ObjectStatus, reason: 'no spec.template' }] });
  t.like(injectObject({ kind: 'Widget', spec: { template: {} } }, opts).results[0], { status: 'not-a-pod-template' as ObjectStatus });
});

test('bad YAML names the document; options are checked', (t) => {
  const err = t.throws(() => injectManifest('kind: Service\n---\nkind: Pod\nmetadata: {name: [\n', optsFor('native')), { instanceOf: ManifestError });
  t.is(err.documentIndex, 2);
  t.regex(err.message, /^document 2: /);
  t.is(injectManifest('', optsFor('native')).text, '');
  t.throws(() => injectOptions({ mode: 'sidecar' as InjectMode }), { instanceOf: InjectOptionsError, message: /mode must be native or classic/ });
  t.throws(() => injectOptions({ controlPlane: 'no-port' }), { instanceOf: InjectOptionsError });
  t.throws(() => injectOptions({ proxyUid: 0 }), { instanceOf: InjectOptionsError });
});

// ---- the CLI, as a real process ----

/**
 * `remora inject ...` through dist/cli/remora.js once the command is registered there; until then
 * the same command module through a small driver that does what remora.ts's main() does.
 */
let runner: Promise<(args: string[], opts: StartOptions) => Promise<Proc>> | undefined;
function cliRunner(): Promise<(args: string[], opts: StartOptions) => Promise<Proc>> {
  runner ??= (async () => {
    const help = await startRemora(['--help']);
    await help.exited;
    if (/^\s+inject$/m.test(help.output())) return (args: string[], opts: StartOptions) => startRemora(['inject', ...args], opts);
    const dir = await mkdtemp(path.join(tmpdir(), 'remora-inject-'));
    const driver = path.join(dir, 'inject-driver.mjs');
    const cmd = pathToFileURL(path.join(repoRoot, 'dist/cli/inject-command.js')).href;
    const flags = pathToFileURL(path.join(repoRoot, 'dist/cli/flags.js')).href;
    await writeFile(driver, [
      `import { injectCommand } from ${JSON.stringify(cmd)};`,
      `import { UsageError } from ${JSON.stringify(flags)};`,
      'injectCommand.run(process.argv.slice(2)).catch((err) => {',
      '  process.stderr.write(`remora: ${err.message}\\n`);',
      '  process.exit(err instanceof UsageError ? 2 : 1);',
      '});',
    ].join('\n'));
    return (args: string[], opts: StartOptions) => startNode(driver, args, opts);
  })();
  return runner;
}

async function cli(args: string[], stdin?: string): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const lines: string[] = [];
  const run = await cliRunner();
  const proc = await run(args, { ...(stdin === undefined ? {} : { stdin }), onLine: (l) => lines.push(l) });
  const code = await proc.exited;
  await new Promise((r) => setImmediate(r));
  return { code, stdout: lines.length ? `${lines.join('\n')}\n` : '', stderr: proc.output() };
}

async function packageVersion(): Promise<string> {
  return (JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

function withVersion(docs: unknown[], version: string): unknown[] {
  return JSON.parse(JSON.stringify(docs).replaceAll('"remora.io/injected":"golden"', `"remora.io/injected":${JSON.stringify(version)}`)) as unknown[];
}

test('CLI: -f FILE and stdin give the golden output; a summary per object on stderr', async (t) => {
  const version = await packageVersion();
  const file = path.join(FIXTURES, 'in/service-and-deployment.yaml');
  const golden = withVersion(parseDocs(await read('out/service-and-deployment.native.yaml')), version);

  const fromFile = await cli(['-f', file]);
  t.is(fromFile.code, 0, fromFile.stderr);
  t.deepEqual(parseDocs(fromFile.stdout), golden);
  t.is(fromFile.stderr, 'service/api: not a pod template, unchanged\ndeployment/api: injected\n');

  const fromStdin = await cli([], await readFile(file, 'utf8'));
  t.is(fromStdin.code, 0, fromStdin.stderr);
  t.deepEqual(parseDocs(fromStdin.stdout), golden);

  const dash = await cli(['-f', '-', '--mode', 'classic', '--image', 'registry.example/remora:1'], await read('in/opted-out-pod.yaml') + '---\n' + await read('in/pod.yaml'));
  t.is(dash.code, 0, dash.stderr);
  t.is(dash.stderr, 'pod/legacy: skipped (annotation remora.io/inject=false)\npod/catalog-0: injected\n');
  const [legacy, catalog] = parseDocs(dash.stdout) as any[];
  t.deepEqual(legacy, parseDocs(await read('in/opted-out-pod.yaml'))[0]);
  t.is(catalog.spec.containers[0].image, 'registry.example/remora:1');
  t.is(catalog.metadata.annotations['remora.io/injected'], version);
});

test('CLI: bad YAML exits 1 naming the document and writes nothing to stdout; bad flags exit 2', async (t) => {
  const bad = await cli(['-f', '-'], 'kind: Service\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: [\n');
  t.is(bad.code, 1);
  t.is(bad.stdout, '');
  t.regex(bad.stderr, /^remora: stdin: document 2: .*; nothing written\n$/);

  const missing = await cli(['-f', '/nonexistent/remora.yaml']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /cannot read \/nonexistent\/remora\.yaml: ENOENT/);

  const mode = await cli(['--mode', 'sidecar'], '');
  t.is(mode.code, 2);
  t.regex(mode.stderr, /--mode must be native or classic/);
});

// ---- contracts with the rest of remora, and the Kubernetes manifests ----

async function helpOf(command: string): Promise<string> {
  const proc = await startRemora([command, '--help']);
  await proc.exited;
  return proc.output();
}

test('every REMORA_* env var given to the sidecar is a flag of `remora sidecar`', async (t) => {
  const help = await helpOf('sidecar');
  const pod = parseDocs(injectManifest(await read('in/deployment.yaml'), optsFor('native')).text)[0] as any;
  const names: string[] = pod.spec.template.spec.initContainers[1].env.map((e: any) => e.name);
  t.true(names.length >= 11);
  for (const name of names) t.true(help.includes(`[${name}]`), `${name} is not a sidecar flag`);
});

test('deploy/kubernetes: every file parses; the webhook, Services and control plane fit together', async (t) => {
  const dir = path.join(repoRoot, 'deploy/kubernetes');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  t.deepEqual(files, ['control-plane.yaml', 'etcd.yaml', 'namespace.yaml', 'webhook.yaml']);
  const all: any[] = [];
  for (const f of files) {
    const docs = parseAllDocuments(await readFile(path.join(dir, f), 'utf8'));
    t.true(Array.isArray(docs), f);
    for (const [i, d] of (docs as ReturnType<typeof parseAllDocuments> & unknown[]).entries()) {
      t.deepEqual(d.errors, [], `${f} document ${i + 1}`);
      const o = d.toJS() as any;
      t.true(typeof o.apiVersion === 'string' && typeof o.kind === 'string' && typeof o.metadata?.name === 'string', `${f} document ${i + 1}`);
      all.push(o);
    }
  }
  const find = (kind: string, name: string) => all.find((o) => o.kind === kind && o.metadata.name === name);

  const hook = find('MutatingWebhookConfiguration', 'remora-sidecar-injector');
  t.truthy(hook);
  for (const w of hook.webhooks) {
    t.like(w, { admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Ignore', timeoutSeconds: 5 });
    t.like(w.clientConfig.service, { name: 'remora-webhook', namespace: 'remora-system', path: '/inject', port: 443 });
    t.deepEqual(w.rules, [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
  }
  t.deepEqual(hook.webhooks[0].namespaceSelector, { matchLabels: { 'remora.io/inject': 'enabled' } });
  t.deepEqual(hook.webhooks[0].objectSelector, { matchExpressions: [{ key: 'remora.io/inject', operator: 'NotIn', values: ['false'] }] });

  const webhookSvc = find('Service', 'remora-webhook');
  t.deepEqual(webhookSvc.spec.ports.map((p: any) => [p.port, p.targetPort]), [[443, 15017]]);
  const cpSvc = find('Service', 'remora-control-plane');
  t.deepEqual(cpSvc.spec.ports.map((p: any) => p.port), [15010, 15012, 15014, 15017]);

  const cp = find('Deployment', 'remora-control-plane');
  t.is(cp.metadata.namespace, 'remora-system');
  t.is(cp.spec.replicas, 2);
  const c = cp.spec.template.spec.containers[0];
  t.deepEqual(c.args, ['control-plane', '--etcd-endpoints', 'http://remora-etcd.remora-system.svc:2379', '--ca', 'etcd', '--ca-key-passphrase-file', '/var/run/remora/ca/passphrase']);
  t.deepEqual(c.ports.map((p: any) => p.containerPort), [15010, 15012, 15014, 15017]);
  t.like(c.readinessProbe.httpGet, { path: '/healthz/ready', port: 15014 });
  t.is(cp.spec.template.spec.volumes[0].secret.secretName, 'remora-ca-passphrase');
  const cpHelp = await helpOf('control-plane');
  for (const e of c.env) t.true(e.name === 'REMORA_LOG_LEVEL' || cpHelp.includes(`[${e.name}]`), `${e.name} is not a control-plane flag`);

  const rules = find('ClusterRole', 'remora-control-plane').rules;
  t.deepEqual(rules, [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }]);
  const etcd = find('StatefulSet', 'remora-etcd');
  t.is(etcd.spec.replicas, 3);
  t.is(find('Service', 'remora-etcd').spec.ports[0].port, 2379);
  t.is(find('Service', 'remora-etcd-peer').spec.clusterIP, 'None');
  t.truthy(find('Namespace', 'remora-system'));
});
