/**
 * nginx and HAProxy as reference proxies for the bench: finding their binaries, writing their
 * configs, running them as child processes in the run's temp dir.
 * Each is configured for a fair comparison with the single-threaded sidecar: one process doing
 * all the work (nginx without a master, HAProxy with one thread), so the PID whose CPU the bench
 * reads is the one doing the proxying; no access log; upstream connections kept alive.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { waitForPort, type Proc } from '../lib/processes.js';
import { UNARY_PATH } from './echo-service.js';
import { writeSecret, type BenchPki } from './mtls.js';

export const REFERENCE_PROXIES = ['nginx', 'haproxy'] as const;
export type ReferenceProxy = (typeof REFERENCE_PROXIES)[number];

interface ProxyInstall {
  /** Environment variable naming the binary to use instead of looking for it. */
  readonly envOverride: string;
  /** The Debian package that ships it. */
  readonly debianPackage: string;
}

export const PROXY_INSTALL: Readonly<Record<ReferenceProxy, ProxyInstall>> = {
  nginx: { envOverride: 'REMORA_BENCH_NGINX_BIN', debianPackage: 'nginx-light' },
  haproxy: { envOverride: 'REMORA_BENCH_HAPROXY_BIN', debianPackage: 'haproxy' },
};

/** Debian installs both under /usr/sbin, which is not on an ordinary user's PATH. */
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin'];

function isExecutableFile(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The proxy's binary: the env override if set (and then only it), else the first on PATH or in the sbin dirs. */
export function findProxyBinary(proxy: ReferenceProxy, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const override = env[PROXY_INSTALL[proxy].envOverride];
  if (override) return isExecutableFile(override) ? path.resolve(override) : undefined;
  const dirs = [...(env.PATH ?? '').split(path.delimiter).filter((d) => d.length > 0), ...SBIN_DIRS];
  return dirs.map((d) => path.join(d, proxy)).find(isExecutableFile);
}

/** The binary, or an error that says how to install it (`needs` names what wanted it, e.g. a scenario). */
export function requireProxyBinary(proxy: ReferenceProxy, needs: string, env: NodeJS.ProcessEnv = process.env): string {
  const found = findProxyBinary(proxy, env);
  if (found) return found;
  const { envOverride, debianPackage } = PROXY_INSTALL[proxy];
  const override = env[envOverride];
  const where = override
    ? `${override} (from ${envOverride}) is not an executable file`
    : `no ${proxy} on PATH or in ${SBIN_DIRS.join(', ')}`;
  throw new Error(
    `bench: ${needs} needs ${proxy}, and ${where}. Install it with \`apt-get install ${debianPackage}\` ` +
      `(Debian/Ubuntu), set ${envOverride} to its binary, or leave ${needs} out of --scenarios`,
  );
}

/** TLS material as files: our certificate chain and key, and the roots the peer must chain to. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly trustBundleFile: string;
}

/** One proxy process: one listener, one upstream, gRPC over HTTP/2 on both sides. */
export interface ProxyHop {
  readonly listenPort: number;
  readonly upstreamPort: number;
  /** Listen with TLS 1.3 and require a client certificate chaining to the trust bundle; absent: h2c. */
  readonly serverTls?: TlsFiles;
  /** Dial upstream with TLS 1.3 and this client certificate, verifying the server's chain; absent: h2c. */
  readonly upstreamTls?: TlsFiles & {
    /** DNS name the upstream's certificate must carry: nginx's grpc_ssl_verify checks one. */
    readonly serverName: string;
  };
}

/**
 * nginx, run as `nginx -g 'daemon off; master_process off;'`: one process does everything.
 * The upstream block's keepalive keeps connections for reuse; nginx still opens one upstream
 * connection per in-flight call (its grpc proxy does not multiplex), reusing them as calls end.
 */
export function nginxConfig(hop: ProxyHop, dir: string): string {
  const f = (name: string): string => path.join(dir, name);
  const listen = hop.serverTls
    ? [
        `    listen 127.0.0.1:${hop.listenPort} ssl http2;`,
        `    ssl_certificate ${hop.serverTls.certFile};`,
        `    ssl_certificate_key ${hop.serverTls.keyFile};`,
        `    ssl_client_certificate ${hop.serverTls.trustBundleFile};`,
        '    ssl_verify_client on;',
        '    ssl_protocols TLSv1.3;',
      ]
    : [`    listen 127.0.0.1:${hop.listenPort} http2;`];
  const upstream = hop.upstreamTls
    ? [
        '      grpc_pass grpcs://upstream;',
        `      grpc_ssl_certificate ${hop.upstreamTls.certFile};`,
        `      grpc_ssl_certificate_key ${hop.upstreamTls.keyFile};`,
        `      grpc_ssl_trusted_certificate ${hop.upstreamTls.trustBundleFile};`,
        '      grpc_ssl_verify on;',
        `      grpc_ssl_name ${hop.upstreamTls.serverName};`,
        '      grpc_ssl_protocols TLSv1.3;',
        '      grpc_ssl_session_reuse on;',
      ]
    : ['      grpc_pass grpc://upstream;'];
  return [
    'worker_processes 1;',
    `pid ${f('nginx.pid')};`,
    'error_log stderr warn;',
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    // The packaged defaults are under /var/lib/nginx: a non-root run could not write there.
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${f(`${t}-temp`)};`),
    // nginx closes a connection after 1000 requests by default, both towards the client (GOAWAY)
    // and upstream: churn that neither the sidecar nor HAProxy has.
    '  keepalive_requests 1000000;',
    '  http2_max_concurrent_streams 1024;',
    '  upstream upstream {',
    `    server 127.0.0.1:${hop.upstreamPort};`,
    '    keepalive 1024;',
    '    keepalive_requests 1000000;',
    '    keepalive_timeout 60s;',
    '  }',
    '  server {',
    ...listen,
    '    location / {',
    ...upstream,
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Cert chain and key in one PEM, as HAProxy's `crt` wants them. */
export interface HaproxyTlsFiles {
  readonly serverCrt?: string;
  readonly upstreamCrt?: string;
}

/**
 * HAProxy, run as `haproxy -db`: one process, one thread. HTTP/2 on both sides (`proto h2`, or
 * ALPN h2 over TLS); the default `http-reuse safe` shares idle upstream connections between calls.
 * No `log` line, so nothing is logged per call.
 */
export function haproxyConfig(hop: ProxyHop, crt: HaproxyTlsFiles): string {
  const bind = hop.serverTls
    ? `  bind 127.0.0.1:${hop.listenPort} ssl crt ${crt.serverCrt} ca-file ${hop.serverTls.trustBundleFile} verify required alpn h2 ssl-min-ver TLSv1.3`
    : `  bind 127.0.0.1:${hop.listenPort} proto h2`;
  // No verifyhost: HAProxy checks the chain; the certificates' identities are URI SANs it cannot match.
  const server = hop.upstreamTls
    ? `  server upstream 127.0.0.1:${hop.upstreamPort} ssl crt ${crt.upstreamCrt} ca-file ${hop.upstreamTls.trustBundleFile} verify required alpn h2 ssl-min-ver TLSv1.3`
    : `  server upstream 127.0.0.1:${hop.upstreamPort} proto h2`;
  return [
    'global',
    '  nbthread 1',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    'frontend listener',
    bind,
    '  default_backend upstream',
    'backend upstream',
    server,
    '',
  ].join('\n');
}

const live = new Set<Proc>();
process.on('exit', () => {
  for (const p of live) try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ }
});

const OUTPUT_LIMIT = 64 * 1024;
/** Makes the kernel kill the proxy if the bench dies without stopping it (the PID stays the proxy's: setpriv execs). */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((f) => existsSync(f));

/** A non-node child process with the same handle as lib/processes' startNode gives, ready once `waitPorts` accept. */
async function startProgram(binary: string, args: readonly string[], waitPorts: readonly number[]): Promise<Proc> {
  const [file, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', binary, ...args]] : [binary, [...args]];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const append = (b: Buffer): void => {
    out += b.toString();
    if (out.length > OUTPUT_LIMIT) out = out.slice(-OUTPUT_LIMIT / 2);
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  const spawnFailed = new Promise<Error>((resolve) => child.once('error', resolve));
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    void spawnFailed.then(() => resolve('spawn-failed'));
  });
  const proc: Proc = {
    child,
    pid: child.pid ?? -1,
    ports: {},
    get exitCode() { return child.exitCode ?? (child.signalCode ? -1 : null); },
    output: () => out,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const res = await exited;
      clearTimeout(timer);
      return res;
    },
  };
  if (child.pid === undefined) throw new Error(`cannot start ${binary}: ${(await spawnFailed).message}`);
  live.add(proc);
  void exited.then(() => live.delete(proc));
  try {
    for (const port of waitPorts) await waitForPort(port, '127.0.0.1', 15_000, proc);
  } catch (err) {
    await proc.stop('SIGKILL');
    throw new Error(`${path.basename(binary)} did not start: ${(err as Error).message}`);
  }
  return proc;
}


/**
 * Starts one proxy hop. Its config (and HAProxy's combined PEMs) go to `<workDir>/<role>/`;
 * `needs` names the scenario for the missing-binary error.
 */
export async function startReferenceProxy(proxy: ReferenceProxy, role: string, hop: ProxyHop, workDir: string, needs: string): Promise<Proc> {
  const binary = requireProxyBinary(proxy, needs);
  const dir = path.join(workDir, role);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (proxy === 'nginx') {
    const conf = path.join(dir, 'nginx.conf');
    await writeFile(conf, nginxConfig(hop, dir));
    // -e: the error log before the config is read would otherwise be /var/log/nginx's.
    return startProgram(binary, ['-e', 'stderr', '-p', dir, '-c', conf, '-g', 'daemon off; master_process off;'], [hop.listenPort]);
  }
  const combined = async (name: string, tls: TlsFiles | undefined): Promise<string | undefined> => {
    if (!tls) return undefined;
    const file = path.join(dir, name);
    const [cert, key] = await Promise.all([readFile(tls.certFile, 'utf8'), readFile(tls.keyFile, 'utf8')]);
    await writeSecret(file, `${cert.trimEnd()}\n${key.trimEnd()}\n`);
    return file;
  };
  const crt = { serverCrt: await combined('server.pem', hop.serverTls), upstreamCrt: await combined('upstream.pem', hop.upstreamTls) };
  const conf = path.join(dir, 'haproxy.cfg');
  await writeFile(conf, haproxyConfig(hop, crt));
  return startProgram(binary, ['-db', '-f', conf], [hop.listenPort]);
}

/** How one probe call ended: its gRPC status code and details. */
export interface ProbeOutcome {
  readonly code: number;
  readonly details: string;
}

const identity = (b: Buffer): Buffer => b;

/** One unary echo call with grpc-js, as an app would make it, over the given credentials. */
export function probeCall(port: number, authority: string, creds: grpc.ChannelCredentials, timeoutMs = 5_000): Promise<ProbeOutcome> {
  // Each probe gets its own connection: a shared subchannel could reuse one that is already up.
  // The name override only sets TLS's SNI (node refuses an IP there); names are not checked (tlsCredentials).
  const client = new grpc.Client(`127.0.0.1:${port}`, creds, {
    'grpc.default_authority': authority,
    'grpc.ssl_target_name_override': authority,
    'grpc.use_local_subchannel_pool': 1,
  });
  return new Promise((resolve) => {
    client.makeUnaryRequest(UNARY_PATH, identity, identity, Buffer.alloc(16), new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err) => {
      client.close();
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: 'OK' });
    });
  });
}

/** TLS to a peer whose certificate names no DNS host we dial: the chain is checked, the name is not. */
export async function tlsCredentials(trustBundleFile: string, client?: { certFile: string; keyFile: string }): Promise<grpc.ChannelCredentials> {
  const roots = await readFile(trustBundleFile);
  const [key, cert] = client ? await Promise.all([readFile(client.keyFile), readFile(client.certFile)]) : [null, null];
  return grpc.credentials.createSsl(roots, key, cert, { checkServerIdentity: () => undefined });
}

export interface ReferencePair {
  readonly scenario: string;
  readonly authority: string;
  /** Where the load generator calls (proxy A's h2c listener). */
  readonly entryPort: number;
  /** Proxy B's listener: TLS with client certificates when the scenario is mTLS. */
  readonly serverPort: number;
  /** The pair's certificates when the A → B hop is mTLS. */
  readonly pki?: BenchPki;
}

/**
 * Throws, saying what is wrong, unless the pair does what the scenario claims: a call through it
 * succeeds, and for mTLS B refuses plaintext and TLS without a client certificate while a TLS call
 * with A's certificate straight to B succeeds (so the refusal is about the certificate).
 */
export async function verifyReferencePair(pair: ReferencePair): Promise<void> {
  const fail = (what: string): Error => new Error(`bench: ${pair.scenario} is not measuring what it says: ${what}`);
  const show = (o: ProbeOutcome): string => `${grpc.status[o.code] ?? o.code} ${JSON.stringify(o.details)}`;
  if (pair.pki) {
    const plaintext = await probeCall(pair.serverPort, pair.authority, grpc.credentials.createInsecure());
    if (plaintext.code === grpc.status.OK) throw fail(`a plaintext h2c call straight to B (port ${pair.serverPort}) succeeded: B takes plaintext`);
    const anonymous = await probeCall(pair.serverPort, pair.authority, await tlsCredentials(pair.pki.client.trustBundleFile));
    if (anonymous.code === grpc.status.OK) throw fail(`a TLS call without a client certificate straight to B (port ${pair.serverPort}) succeeded: B does not require client certificates`);
    const withCert = await probeCall(pair.serverPort, pair.authority, await tlsCredentials(pair.pki.client.trustBundleFile, pair.pki.client));
    if (withCert.code !== grpc.status.OK) throw fail(`a TLS call with the client certificate straight to B (port ${pair.serverPort}) ended with ${show(withCert)}`);
  }
  const through = await probeCall(pair.entryPort, pair.authority, grpc.credentials.createInsecure());
  if (through.code !== grpc.status.OK) throw fail(`a call through A (port ${pair.entryPort}) → B ended with ${show(through)}`);
}
