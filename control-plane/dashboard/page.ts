/**
 * The live mesh dashboard on the control plane's HTTP port (15014): one HTML page, Preact and htm
 * served straight from node_modules (no bundler, no build step, nothing from a CDN), and the
 * client app, which polls GET /api/mesh (a MeshView, ./mesh-view.ts) every 2 s.
 *
 * The browser resolves the bare specifiers `preact`, `preact/hooks` (hooks.mjs itself does
 * `import … from "preact"`) and `htm` through an inline import map. The page's CSP allows exactly
 * that inline script by its sha256 hash, and scripts from this origin; nothing else runs.
 */
import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import type http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

type RouteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/** Where the browser finds each module; the import map and the routes both come from this. */
const MODULES = {
  preact: '/assets/preact.mjs',
  'preact/hooks': '/assets/hooks.mjs',
  htm: '/assets/htm.mjs',
} as const;

const IMPORT_MAP = JSON.stringify({ imports: MODULES });
const IMPORT_MAP_HASH = `sha256-${createHash('sha256').update(IMPORT_MAP, 'utf8').digest('base64')}`;

/**
 * Same-origin everything; the only inline script is the import map (allowed by its hash, never
 * 'unsafe-inline'); no inline styles, no plugins, no framing, no <base> or form tricks.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  `script-src 'self' '${IMPORT_MAP_HASH}'`,
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Remora mesh</title>
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/dashboard.css">
<script type="importmap">${IMPORT_MAP}</script>
<script type="module" src="/assets/app.js"></script>
</head>
<body>
<div id="app"><p class="boot">Loading the mesh view…</p></div>
<noscript><p class="boot">The dashboard needs JavaScript; the raw data is at <a href="/api/mesh">/api/mesh</a>.</p></noscript>
</body>
</html>
`;

const JS = 'text/javascript; charset=utf-8';

/**
 * The client app, its stylesheet and icon are plain files in control-plane/dashboard/assets/, not
 * TypeScript: tsc neither compiles nor copies them. They are read from the source tree, the same
 * way demo-services/protos.ts finds the .proto files: the sources ship next to the build.
 *   - compiled:  <repo>/dist/control-plane/dashboard/page.js → <repo>/control-plane/dashboard/assets/
 *   - from source (a TS loader) or a build that copies assets next to page.js: ./assets/
 * The first directory that holds app.js wins. Keeping the client a real .js file (rather than a
 * string constant in a .ts module) keeps it editable, syntax-checkable (`node --check`) and
 * debuggable in the browser with real line numbers. A missing directory is a 500 naming the paths
 * tried, and the dashboard tests fail on it.
 */
const ASSET_DIR_CANDIDATES = [
  path.resolve(here, '../../../control-plane/dashboard/assets'),
  path.resolve(here, 'assets'),
];

let assetDir: Promise<string> | undefined;

function findAssetDir(): Promise<string> {
  if (!assetDir) {
    assetDir = (async () => {
      for (const dir of ASSET_DIR_CANDIDATES) {
        try {
          await access(path.join(dir, 'app.js'));
          return dir;
        } catch { /* try the next */ }
      }
      throw new Error(`dashboard assets not found: no app.js in ${ASSET_DIR_CANDIDATES.join(' or ')}`);
    })();
    assetDir.catch(() => { assetDir = undefined; }); // looked for again on the next request
  }
  return assetDir;
}

/**
 * node_modules is resolved from this module's location, whichever directory the process runs in.
 * The specifiers are resolved with require's conditions: preact's "default" export is the ESM
 * build we want; htm's "require" export is its CommonJS build, so take the browser ES module
 * (htm.module.js) from the same directory.
 */
const fromNodeModules = {
  preact: async () => require.resolve('preact'),
  hooks: async () => require.resolve('preact/hooks'),
  htm: async () => path.join(path.dirname(require.resolve('htm')), 'htm.module.js'),
};

interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

function asset(body: Buffer, contentType: string): Asset {
  return { body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/** Reads a file once (asynchronously) and keeps it; a failed read is retried on the next request. */
function cachedFile(locate: () => Promise<string>, contentType: string): () => Promise<Asset> {
  let cached: Promise<Asset> | undefined;
  return () => {
    if (!cached) {
      cached = (async () => asset(await readFile(await locate()), contentType))();
      cached.catch(() => { cached = undefined; });
    }
    return cached;
  };
}

const fromAssets = (name: string) => async () => path.join(await findAssetDir(), name);

const HEADERS = {
  'cache-control': 'no-cache',
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

function send(req: http.IncomingMessage, res: http.ServerResponse, a: Asset): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { ...HEADERS, allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    res.end('method not allowed\n');
    return;
  }
  const headers = { ...HEADERS, 'content-type': a.contentType, etag: a.etag };
  // no-cache means "revalidate": an unchanged file costs a 304, not its bytes.
  const inm = req.headers['if-none-match'];
  if (inm !== undefined && inm.split(',').some((tag) => tag.trim().replace(/^W\//, '') === a.etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'content-length': a.body.length });
  res.end(req.method === 'HEAD' ? undefined : a.body);
}

function serve(load: () => Promise<Asset>): RouteHandler {
  return (req, res) => {
    load().then(
      (a) => send(req, res, a),
      (err: unknown) => {
        const text = `dashboard: ${err instanceof Error ? err.message : String(err)}\n`;
        if (!res.headersSent) res.writeHead(500, { ...HEADERS, 'content-type': 'text/plain; charset=utf-8' });
        res.end(text);
      },
    );
  };
}

const page = asset(Buffer.from(HTML, 'utf8'), 'text/html; charset=utf-8');

/**
 * Route handlers for the dashboard: '/', '/assets/preact.mjs', '/assets/hooks.mjs',
 * '/assets/htm.mjs', '/assets/app.js', '/assets/dashboard.css', '/assets/favicon.svg'.
 * Same signature as lib/json-http.ts routes; GET and HEAD, anything else is a 405.
 * GET /api/mesh (the data) is the control plane's own route.
 */
export function dashboardRoutes(): Record<string, RouteHandler> {
  return {
    '/': serve(async () => page),
    [MODULES.preact]: serve(preactFile),
    [MODULES['preact/hooks']]: serve(hooksFile),
    [MODULES.htm]: serve(htmFile),
    '/assets/app.js': serve(appFile),
    '/assets/dashboard.css': serve(cssFile),
    '/assets/favicon.svg': serve(iconFile),
  };
}

// Module-level caches: every dashboardRoutes() (and every server) shares one read of each file.
const preactFile = cachedFile(fromNodeModules.preact, JS);
const hooksFile = cachedFile(fromNodeModules.hooks, JS);
const htmFile = cachedFile(fromNodeModules.htm, JS);
const appFile = cachedFile(fromAssets('app.js'), JS);
const cssFile = cachedFile(fromAssets('dashboard.css'), 'text/css; charset=utf-8');
const iconFile = cachedFile(fromAssets('favicon.svg'), 'image/svg+xml');
