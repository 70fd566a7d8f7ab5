/**
 * The mesh dashboard (control-plane/dashboard) in a real browser: Debian's chromium driven by
 * playwright-core. One fast test renders a fixed MeshView from a stub server; the end-to-end one
 * runs the real mesh (etcd, a control plane, echo services behind sidecars, steady traffic) and
 * reads the numbers off the page the control plane serves.
 */
import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { dashboardRoutes } from '../control-plane/dashboard/page.js';
import type { MeshView } from '../control-plane/dashboard/mesh-view.js';
import { json, listenHttp, serveJson } from '../lib/json-http.js';
import { startEtcd } from '../lib/etcd-process.js';
import { repoRoot, startRemora } from '../lib/processes.js';
import { startEchoServer, echoClient, unary, grpc } from './fixtures/echo-service.js';
import { startSidecar, startControlPlane, getJson, eventually, type SidecarHandle } from './harness/sidecars.js';
import { meshSecrets } from './harness/mesh-ca.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.join(repoRoot, 'docs/dashboard.png');

/**
 * A headless chromium, closed in teardown. launch() gives every browser a fresh temporary profile
 * (its own --user-data-dir, removed on close); playwright refuses a --user-data-dir in args.
 * No chromium is a failure, never a skip: the dashboard would go untested.
 */
async function browser(t: ExecutionContext): Promise<Browser> {
  try {
    await access(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(`${CHROMIUM} is missing: the dashboard tests need a real browser; run \`apt-get install chromium\``);
  }
  const b = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => b.close());
  return b;
}

interface PageProblems {
  readonly consoleErrors: string[];
  readonly pageErrors: string[];
  readonly failedRequests: string[];
  /** CSP violations the page reported (securitypolicyviolation events). */
  cspViolations(): Promise<string[]>;
}

/** A 1280x800 page that records console errors, uncaught exceptions, failed requests and CSP violations. */
async function watchedPage(b: Browser): Promise<{ page: Page; problems: PageProblems }> {
  const page = await b.newPage({ viewport: { width: 1280, height: 800 } });
  const consoleErrors: string[] = [];
  const pageErrors: string[] = [];
  const failedRequests: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('requestfailed', (req) => failedRequests.push(`${req.url()}: ${req.failure()?.errorText ?? '?'}`));
  // Runs before the page's own scripts; playwright's init scripts are not subject to the page's CSP.
  await page.addInitScript(`
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber);
    });
  `);
  const cspViolations = async () => (await page.evaluate('window.__cspViolations')) as string[];
  return { page, problems: { consoleErrors, pageErrors, failedRequests, cspViolations } };
}

async function assertNoProblems(t: ExecutionContext, problems: PageProblems): Promise<void> {
  t.deepEqual(problems.consoleErrors, [], 'no console errors');
  t.deepEqual(problems.pageErrors, [], 'no uncaught exceptions');
  t.deepEqual(problems.failedRequests, [], 'no failed requests');
  t.deepEqual(await problems.cspViolations(), [], 'no CSP violations');
}

const edgeSelector = (source: string, destination: string) => `[data-testid=edge][data-source="${source}"][data-destination="${destination}"]`;

interface EdgeReading {
  readonly label: string;
  readonly rps: number;
  /** Percent, or null for "—". */
  readonly success: number | null;
  readonly p99: string;
}

/** The graph label of one edge, parsed ("12.3 rps · 99.5% · p99 4.1 ms"); undefined if not drawn. */
async function readEdge(page: Page, source: string, destination: string): Promise<EdgeReading | undefined> {
  const label = page.locator(`${edgeSelector(source, destination)} [data-testid=edge-label]`);
  if ((await label.count()) !== 1) return undefined;
  const text = (await label.textContent({ timeout: 1000 })) ?? '';
  const m = /^([\d.]+) rps · ([\d.]+%|—) · p99 (.+)$/.exec(text);
  if (!m) throw new Error(`edge ${source} → ${destination}: unexpected label ${JSON.stringify(text)}`);
  return { label: text, rps: Number(m[1]), success: m[2] === '—' ? null : Number(m[2]!.slice(0, -1)), p99: m[3]! };
}

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).textContent({ timeout: 1000 })) ?? '').trim();
}

// -------------------------------------------------------------------------------------------------

const MINUTE = 60_000;

/** A fixed document: four services, a caller cycle-free chain, an idle edge, every certificate state. */
function fixedView(now: number): MeshView {
  const iso = (offsetMs: number) => new Date(now + offsetMs).toISOString();
  const nackA = { at: iso(-30_000), sidecar: 'default/orders/orders-1', version: '42', errors: ['route/default/to-nowhere: cluster: no cluster named "nowhere"'] };
  const nackB = { at: iso(-5 * MINUTE), sidecar: 'default/web/web-1', version: '40', errors: ['cluster/default/bad: endpoints[0].port: must be 1..65535', 'route/default/r: cluster: no cluster named "bad"'] };
  return {
    generatedAt: iso(0),
    windowSeconds: 30,
    configVersion: '43',
    services: [
      { name: 'catalog', instances: 2 },
      { name: 'inventory', instances: 1 },
      { name: 'orders', instances: 1 },
      { name: 'web', instances: 0 },
    ],
    edges: [
      { source: 'web', destination: 'catalog', rps: 12.34, successRate: 0.995, p99Ms: 4.1, requests: 370 },
      { source: 'web', destination: 'orders', rps: 250, successRate: 1, p99Ms: 230, requests: 7500 },
      { source: 'orders', destination: 'inventory', rps: 80.2, successRate: 0.99996, p99Ms: 0.42, requests: 2406 },
      { source: 'orders', destination: 'catalog', rps: 0, successRate: null, p99Ms: null, requests: 0 },
      { source: 'inventory', destination: 'catalog', rps: 3, successRate: 0.5, p99Ms: 1250, requests: 90 },
    ],
    sidecars: [
      { namespace: 'default', service: 'web', instanceId: 'web-1', replica: 'cp-0', appliedVersion: '43', certificateExpiry: iso(30 * MINUTE), lastNack: nackB },
      { namespace: 'default', service: 'catalog', instanceId: 'catalog-1', replica: 'cp-0', appliedVersion: '43', certificateExpiry: iso(5 * 60 * MINUTE), lastNack: null },
      { namespace: 'default', service: 'catalog', instanceId: 'catalog-2', replica: 'cp-1', appliedVersion: '43', certificateExpiry: iso(-2 * MINUTE), lastNack: null },
      { namespace: 'default', service: 'orders', instanceId: 'orders-1', replica: 'cp-1', appliedVersion: '41', certificateExpiry: iso(59 * MINUTE), lastNack: nackA },
      { namespace: 'default', service: 'inventory', instanceId: 'inventory-1', replica: 'cp-0', appliedVersion: '43', certificateExpiry: null, lastNack: null },
    ],
    nacks: [nackA, nackB],
  };
}

test('renders a MeshView: edge labels and layout, sidecar versions, certificate expiry highlighting, NACKs; strict CSP, no console errors', async (t) => {
  const view = fixedView(Date.now());
  let meshStatus = 200;
  const server = serveJson({
    ...dashboardRoutes(),
    '/api/mesh': (_req, res) => (meshStatus === 200 ? json(res, 200, view) : json(res, meshStatus, { error: 'down for the test' })),
  });
  const port = await listenHttp(server, 0, '127.0.0.1');
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  const base = `http://127.0.0.1:${port}`;

  // The HTTP side: types, caching, and a CSP that allows exactly the inline import map.
  const index = await fetch(`${base}/`);
  t.is(index.status, 200);
  t.is(index.headers.get('content-type'), 'text/html; charset=utf-8');
  t.is(index.headers.get('cache-control'), 'no-cache');
  const html = await index.text();
  const importMap = /<script type="importmap">([^<]*)<\/script>/.exec(html)?.[1];
  t.truthy(importMap, 'the page has an inline import map');
  t.deepEqual(JSON.parse(importMap!), { imports: { preact: '/assets/preact.mjs', 'preact/hooks': '/assets/hooks.mjs', htm: '/assets/htm.mjs' } });
  const csp = index.headers.get('content-security-policy') ?? '';
  const hash = createHash('sha256').update(importMap!, 'utf8').digest('base64');
  t.true(csp.includes("default-src 'self'"), csp);
  t.true(csp.includes(`script-src 'self' 'sha256-${hash}'`), csp);
  t.false(csp.includes('unsafe-inline'), csp);
  t.false(csp.includes('unsafe-eval'), csp);
  for (const [asset, type] of [
    ['/assets/preact.mjs', 'text/javascript; charset=utf-8'],
    ['/assets/hooks.mjs', 'text/javascript; charset=utf-8'],
    ['/assets/htm.mjs', 'text/javascript; charset=utf-8'],
    ['/assets/app.js', 'text/javascript; charset=utf-8'],
    ['/assets/dashboard.css', 'text/css; charset=utf-8'],
    ['/assets/favicon.svg', 'image/svg+xml'],
  ] as const) {
    const res = await fetch(`${base}${asset}`);
    t.is(res.status, 200, asset);
    t.is(res.headers.get('content-type'), type, asset);
    t.is(res.headers.get('cache-control'), 'no-cache', asset);
    const body = await res.text();
    if (asset === '/assets/hooks.mjs') t.regex(body, /from\s*"preact"/, 'hooks.mjs imports preact by its bare name: the import map resolves it');
    if (asset === '/assets/htm.mjs') t.regex(body, /export default/, 'the ES module build of htm, not its CommonJS one');
    const etag = res.headers.get('etag');
    t.truthy(etag, asset);
    t.is((await fetch(`${base}${asset}`, { headers: { 'if-none-match': etag! } })).status, 304, `${asset} revalidates`);
  }
  t.is((await fetch(`${base}/assets/app.js`, { method: 'POST' })).status, 405);

  const b = await browser(t);
  const { page, problems } = await watchedPage(b);
  await page.goto(`${base}/`);
  await page.locator('[data-testid=status][data-state=live]').waitFor({ timeout: 10_000 });
  await page.locator('[data-testid=edge]').first().waitFor({ timeout: 5000 });

  // Edges: one per MeshEdge, labelled "rps · success · p99", colour class by success rate.
  t.is(await page.locator('[data-testid=edge]').count(), 5);
  const labels: Record<string, [string, string]> = {
    'web orders': ['250 rps · 100.0% · p99 230 ms', 'ok'],
    'web catalog': ['12.3 rps · 99.5% · p99 4.1 ms', 'warn'],
    // 99.996% is shown rounded down: any failure keeps it below 100.0%.
    'orders inventory': ['80.2 rps · 99.9% · p99 0.42 ms', 'warn'],
    'orders catalog': ['0.0 rps · — · p99 —', 'idle'],
    'inventory catalog': ['3.0 rps · 50.0% · p99 1.25 s', 'bad'],
  };
  for (const [key, [label, health]] of Object.entries(labels)) {
    const [source, destination] = key.split(' ') as [string, string];
    t.is((await readEdge(page, source, destination))?.label, label, key);
    t.true(((await page.locator(edgeSelector(source, destination)).getAttribute('class')) ?? '').split(' ').includes(health), `${key} is ${health}`);
    const row = page.locator(`[data-testid=edge-row][data-source="${source}"][data-destination="${destination}"]`);
    t.is(await row.count(), 1, `${key} in the edge table`);
  }
  // Columns by call depth: web → orders → inventory → catalog, left to right.
  const nodeX = async (name: string) => {
    const transform = (await page.locator(`[data-testid=node][data-service="${name}"]`).getAttribute('transform')) ?? '';
    return Number(/translate\(([\d.]+),/.exec(transform)?.[1]);
  };
  const xs = await Promise.all(['web', 'orders', 'inventory', 'catalog'].map(nodeX));
  t.true(xs[0]! < xs[1]! && xs[1]! < xs[2]! && xs[2]! < xs[3]!, `node columns ${xs.join(', ')}`);
  t.is(await text(page, '[data-testid=node][data-service="web"] .node-sub'), 'no registered instances');
  t.is(await text(page, '[data-testid=node][data-service="catalog"] .node-sub'), '2 instances');

  // Sidecars: applied version (and whether it is the current one), certificate expiry state.
  t.is(await page.locator('[data-testid=sidecar-row]').count(), 5);
  const sidecar = (id: string, testid: string) => `[data-testid=sidecar-row][data-instance="${id}"] [data-testid=${testid}]`;
  const expected: Record<string, [version: string, state: string, expiry: string]> = {
    'web-1': ['43', 'current', 'expiring'],
    'catalog-1': ['43', 'current', 'ok'],
    'catalog-2': ['43', 'current', 'expired'],
    'orders-1': ['41', 'behind', 'expiring'],
    'inventory-1': ['43', 'current', 'none'],
  };
  for (const [id, [version, state, expiry]] of Object.entries(expected)) {
    t.is(await text(page, sidecar(id, 'applied-version')), version, id);
    t.is(await text(page, sidecar(id, 'version-state')), state, id);
    t.is(await page.locator(sidecar(id, 'cert-expiry')).getAttribute('data-expiry-state'), expiry, id);
  }
  t.regex(await text(page, sidecar('web-1', 'cert-expiry')), /^in 30 min/);
  t.regex(await text(page, sidecar('catalog-1', 'cert-expiry')), /^in 5 h 00 min/);
  t.regex(await text(page, sidecar('catalog-2', 'cert-expiry')), /^expired 2 min ago/);
  t.regex(await text(page, sidecar('orders-1', 'last-nack')), /^42/);

  // NACKs, newest first, every error listed.
  const nacks = page.locator('[data-testid=nack]');
  t.is(await nacks.count(), 2);
  t.is(await nacks.nth(0).getAttribute('data-sidecar'), 'default/orders/orders-1');
  t.is(await nacks.nth(1).getAttribute('data-sidecar'), 'default/web/web-1');
  t.deepEqual(await nacks.nth(1).locator('[data-testid=nack-error]').allTextContents(), view.nacks[1]!.errors);
  t.regex((await nacks.nth(0).textContent()) ?? '', /rejected config 42.*30 s ago.*no cluster named "nowhere"/);

  await assertNoProblems(t, problems);

  // The control plane going away: the page keeps the last view and says it is stale.
  meshStatus = 503;
  await page.locator('[data-testid=status][data-state=stale]').waitFor({ timeout: 6000 });
  t.regex(await text(page, '[data-testid=status]'), /HTTP 503/);
  t.is(await page.locator('[data-testid=edge]').count(), 5, 'the last view stays on screen');
});

// -------------------------------------------------------------------------------------------------

test('live mesh dashboard end to end: the control plane serves the page, which shows real traffic web → catalog/orders, sidecar versions, certificate expiry and a failing edge', async (t) => {
  t.timeout(180_000);
  const b = await browser(t); // first: no chromium fails before the mesh starts

  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  // The control plane is the mesh CA: every sidecar gets a certificate and reports its expiry.
  const secrets = await meshSecrets();
  const cp = await startControlPlane([etcd.endpoint], secrets.cpArgs);
  t.teardown(async () => { await cp.proc.stop(); });
  const catalog = await startEchoServer(0, 'catalog');
  const orders = await startEchoServer(0, 'orders');
  t.teardown(() => { catalog.server.forceShutdown(); orders.server.forceShutdown(); });
  const sidecars: Record<string, SidecarHandle> = {};
  t.teardown(async () => { await Promise.all(Object.values(sidecars).map((s) => s.proc.stop())); });
  const args = (id: string, service: string) => ['--instance-id', id, '--service-account', service, ...secrets.sidecarArgs];
  sidecars['catalog-1'] = await startSidecar({ controlPlanes: [cp.address], service: 'catalog', appPort: catalog.port, extraArgs: args('catalog-1', 'catalog') });
  sidecars['orders-1'] = await startSidecar({ controlPlanes: [cp.address], service: 'orders', appPort: orders.port, extraArgs: args('orders-1', 'orders') });
  // web asks for a 50-minute certificate: within the hour, so the page highlights it.
  sidecars['web-1'] = await startSidecar({ controlPlanes: [cp.address], service: 'web', extraArgs: [...args('web-1', 'web'), '--register=false', '--cert-ttl-s', '3000'] });
  const web = sidecars['web-1'];
  await Promise.all(Object.entries(sidecars).map(([id, sc]) => eventually(`${id} ready (certificate installed)`, async () =>
    (await fetch(`http://127.0.0.1:${sc.stats}/healthz/ready`)).status === 200, 20_000)));

  await eventually('web has endpoints for catalog and orders', async () => {
    const config = await getJson<{ clusters: { name: string; endpoints: unknown[] }[] }>(web.admin, '/config_dump');
    return ['catalog', 'orders'].every((name) => (config.clusters.find((c) => c.name === name)?.endpoints.length ?? 0) > 0);
  }, 15_000);

  // Steady traffic from web to both services for the whole test: one call in flight per service.
  // When failOrders is set, every 4th call to orders ends with FAILED_PRECONDITION (the app's
  // answer: not an endpoint failure, so outlier detection leaves the endpoint alone).
  let running = true;
  let failOrders = false;
  const counts = { catalog: { ok: 0, failed: 0 }, orders: { ok: 0, failed: 0 } };
  const loop = async (service: 'catalog' | 'orders') => {
    const client = echoClient(`127.0.0.1:${web.outbound}`, service);
    try {
      for (let i = 0; running; i++) {
        const md = new grpc.Metadata();
        if (service === 'orders' && failOrders && i % 4 === 0) {
          md.set('x-status', String(grpc.status.FAILED_PRECONDITION));
          md.set('x-message', 'orders fails this call on purpose');
        }
        try {
          await unary(client, Buffer.from('ping'), md, { deadline: Date.now() + 3000 });
          counts[service].ok++;
        } catch {
          counts[service].failed++;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      client.close();
    }
  };
  const traffic = [loop('catalog'), loop('orders')];
  t.teardown(async () => { running = false; await Promise.all(traffic); });
  await eventually('calls through the mesh succeed', () => counts.catalog.ok > 10 && counts.orders.ok > 10, 10_000);
  t.is(counts.catalog.failed + counts.orders.failed, 0, 'no call failed before failures were switched on');

  // The control plane has to serve both the page and its data.
  const base = `http://127.0.0.1:${cp.http}`;
  const index = await fetch(`${base}/`);
  const api = await fetch(`${base}/api/mesh`);
  if (index.status !== 200 || api.status !== 200) {
    throw new Error(`the control plane does not serve the dashboard yet: GET / → ${index.status}, GET /api/mesh → ${api.status} (dashboardRoutes() merged into control-plane/http-server.ts, and /api/mesh, are needed)`);
  }
  t.is(index.headers.get('content-type'), 'text/html; charset=utf-8');

  // A timeout below says what the control plane was serving, to tell a page bug from missing data.
  t.teardown(async () => {
    if (t.passed) return;
    const mesh = await getJson<MeshView>(cp.http, '/api/mesh').catch((err: Error) => err.message);
    t.log('GET /api/mesh at the end:', typeof mesh === 'string' ? mesh : { edges: mesh.edges, sidecars: mesh.sidecars, services: mesh.services });
  });

  const { page, problems } = await watchedPage(b);
  await page.goto(`${base}/`);
  await page.locator('[data-testid=status][data-state=live]').waitFor({ timeout: 10_000 });

  const healthy = await eventually('edges web → catalog and web → orders with traffic and 100.0% success', async () => {
    const edges = await Promise.all([readEdge(page, 'web', 'catalog'), readEdge(page, 'web', 'orders')]);
    return edges.every((e) => e && e.rps > 0 && e.success === 100) && edges;
  }, 20_000);
  t.log(`web → catalog: ${healthy[0]!.label}; web → orders: ${healthy[1]!.label}`);

  // Every sidecar with the config version it applied (the one its admin port reports).
  for (const [id, sc] of Object.entries(sidecars)) {
    const version = (await getJson<{ version: string }>(sc.admin, '/config_dump')).version;
    await eventually(`sidecar ${id} shown with applied version ${version}`, async () =>
      (await text(page, `[data-testid=sidecar-row][data-instance="${id}"] [data-testid=applied-version]`)) === version, 20_000);
  }

  // Every sidecar's certificate expiry, as the sidecar itself reports it; web's within the hour.
  for (const [id, sc] of Object.entries(sidecars)) {
    const notAfter = (await getJson<{ identity: { notAfter: string } | null }>(sc.admin, '/certs')).identity?.notAfter;
    t.truthy(notAfter, `${id} has a certificate`);
    const cell = `[data-testid=sidecar-row][data-instance="${id}"] [data-testid=cert-expiry]`;
    const state = await eventually(`${id} shown with its certificate expiry`, async () => {
      const shown = Date.parse((await page.locator(cell).getAttribute('data-expiry', { timeout: 1000 })) ?? '');
      return Math.abs(shown - Date.parse(notAfter!)) < 1000 && page.locator(cell).getAttribute('data-expiry-state');
    }, 20_000);
    t.is(state, id === 'web-1' ? 'expiring' : 'ok', `${id} certificate highlighting`);
  }

  // Some calls to orders fail: its success rate drops below 100%, catalog's does not.
  failOrders = true;
  const failing = await eventually('web → orders below 100% success', async () => {
    const e = await readEdge(page, 'web', 'orders');
    return e && e.success !== null && e.success < 100 && e;
  }, 25_000);
  t.log(`with every 4th call failing: web → orders: ${failing.label}`);
  t.true(counts.orders.failed > 0);
  t.is((await readEdge(page, 'web', 'catalog'))?.success, 100, 'catalog unaffected');
  t.is(counts.catalog.failed, 0);

  // A config the sidecars cannot apply (a route to a cluster that does not exist): every sidecar
  // NACKs it, keeps its last good version, and the page lists the NACKs and shows them behind.
  const good = (await getJson<{ version: string }>(web.admin, '/config_dump')).version;
  const apply = await startRemora(['apply', '-f', '-', '--etcd-endpoints', etcd.endpoint], {
    stdin: 'kind: Route\nmetadata: { name: to-nowhere, namespace: default }\nspec: { match: { service: other }, cluster: nowhere }\n',
  });
  t.is(await apply.exited, 0, apply.output());
  await eventually('a NACK from every sidecar listed', async () => {
    const listed = await page.locator('[data-testid=nack]').evaluateAll((els) => els.map((el) => el.getAttribute('data-sidecar')));
    return ['catalog-1', 'orders-1', 'web-1'].every((id) => listed.includes(`default/${id.split('-')[0]}/${id}`));
  }, 20_000);
  for (const error of await page.locator('[data-testid=nack] [data-testid=nack-error]').allTextContents()) {
    t.is(error, 'route/default/to-nowhere: cluster: no cluster named "nowhere"');
  }
  for (const id of Object.keys(sidecars)) {
    await eventually(`${id} shown behind, still on ${good}`, async () =>
      (await text(page, `[data-testid=sidecar-row][data-instance="${id}"] [data-testid=version-state]`)) === 'behind', 10_000);
    t.is(await text(page, `[data-testid=sidecar-row][data-instance="${id}"] [data-testid=applied-version]`), good);
  }

  await assertNoProblems(t, problems);
  if (t.passed) await page.screenshot({ path: SCREENSHOT, fullPage: true });
});
