#!/usr/bin/env node
/**
 * Helpers for the docker-compose demo (docker-compose.yml), baked into the remora image at
 * /app/deploy/compose/mesh-setup.mjs. Plain node, no dependencies: the minimal base image has
 * no curl, mv or chmod.
 *
 *   node mesh-setup.mjs init        the `mesh-init` one-shot: apply the STRICT MeshConfig to etcd
 *                                   (retrying while etcd starts), then create the CA-key passphrase
 *                                   and the bootstrap token, unless a previous run already did
 *   node mesh-setup.mjs ca-bundle   the `ca-bundle` one-shot: wait for the control plane to be
 *                                   ready (it creates the mesh CA in etcd on first start), then write
 *                                   `remora ca bundle` to the file the sidecars verify it with
 *   node mesh-setup.mjs wait-http URL   wait until URL answers 200
 *   node mesh-setup.mjs wait-sidecar SERVICE...   wait until the sidecar in this network namespace
 *                                   is ready (:15020/healthz/ready: certificate, config) and has
 *                                   endpoints for every SERVICE (admin :15000/config_dump); the
 *                                   traffic client waits so, and its first call already succeeds
 *
 * Environment (defaults match docker-compose.yml):
 *   REMORA_ETCD_ENDPOINTS  etcd, for `remora apply` and `remora ca bundle` (http://etcd:2379)
 *   SECRETS_DIR            control-plane-only secrets: ca-passphrase, bootstrap-tokens
 *                          (/var/lib/remora/secrets)
 *   MESH_DIR               what sidecars read: token, roots.pem (/var/lib/remora/mesh)
 *   CONTROL_PLANE_HTTP     the control plane's HTTP port (http://control-plane:15014)
 *   MESH_MTLS_MODE         the MeshConfig's mtlsMode (STRICT)
 *   WAIT_TIMEOUT_S         give up after this long (180)
 *
 * Files are written to a temporary name, mode 0600, then renamed, so whoever waits for one
 * (`until [ -s FILE ]` in the compose commands) never reads half of it. bootstrap-tokens is
 * written last: the control plane starts once it exists, by then etcd is up and the MeshConfig is
 * in place.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const REMORA = process.env.REMORA_CLI ?? '/app/dist/cli/remora.js';
const ETCD = process.env.REMORA_ETCD_ENDPOINTS ?? 'http://etcd:2379';
const SECRETS_DIR = process.env.SECRETS_DIR ?? '/var/lib/remora/secrets';
const MESH_DIR = process.env.MESH_DIR ?? '/var/lib/remora/mesh';
const CONTROL_PLANE_HTTP = process.env.CONTROL_PLANE_HTTP ?? 'http://control-plane:15014';
const MTLS_MODE = process.env.MESH_MTLS_MODE ?? 'STRICT';
const deadline = Date.now() + Number(process.env.WAIT_TIMEOUT_S ?? 180) * 1000;

const log = (msg) => process.stdout.write(`mesh-setup: ${msg}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs `remora ARGS` and returns { code, stdout, stderr }. */
function remora(args, stdin) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [REMORA, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    child.on('error', (e) => err.push(Buffer.from(String(e))));
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
    child.stdin.end(stdin ?? '');
  });
}

/** Retries `attempt` (a promise of true/false) every second until it succeeds or the deadline. */
async function retry(what, attempt) {
  let last = '';
  for (;;) {
    const r = await attempt().catch((e) => String(e));
    if (r === true) return;
    if (typeof r === 'string' && r !== last) {
      last = r;
      log(`${what}: not yet (${r.trim().split('\n').pop()})`);
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(1000);
  }
}

function writeAtomic(file, content) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, file);
}

const secret = () => randomBytes(24).toString('base64url');

async function init() {
  const meshConfig = `kind: MeshConfig\nmetadata: { name: mesh, namespace: remora-system }\nspec: { mtlsMode: ${MTLS_MODE} }\n`;
  await retry(`MeshConfig (mtlsMode ${MTLS_MODE}) is applied to ${ETCD}`, async () => {
    const r = await remora(['apply', '-f', '-', '--etcd-endpoints', ETCD, '--timeout-ms', '3000'], meshConfig);
    return r.code === 0 ? true : r.stderr || r.stdout || `exit ${r.code}`;
  });
  log(`MeshConfig applied (mtlsMode ${MTLS_MODE})`);

  const passphrase = path.join(SECRETS_DIR, 'ca-passphrase');
  const tokens = path.join(SECRETS_DIR, 'bootstrap-tokens');
  const sidecarToken = path.join(MESH_DIR, 'token');
  if (existsSync(tokens) && existsSync(sidecarToken) && existsSync(passphrase)) {
    log('secrets exist from an earlier run; kept (docker compose down -v starts over)');
    return;
  }
  // The passphrase encrypts the CA's keys in etcd: keep it when only the tokens are missing.
  if (!existsSync(passphrase)) writeAtomic(passphrase, secret());
  const token = secret();
  // One token for every sidecar of the demo, allowed any identity ("*"), like `remora demo`.
  // A real deployment gives each workload its own token scoped to <namespace>/<service-account>,
  // or uses Kubernetes service-account tokens.
  writeAtomic(sidecarToken, token);
  writeAtomic(tokens, `${token} *\n`);
  log(`wrote ${passphrase}, ${tokens} and ${sidecarToken}`);
}

async function caBundle() {
  await retry(`the control plane is ready (${CONTROL_PLANE_HTTP}/healthz/ready)`, async () => {
    const res = await fetch(`${CONTROL_PLANE_HTTP}/healthz/ready`, { signal: AbortSignal.timeout(3000) });
    return res.ok ? true : `HTTP ${res.status}`;
  });
  let pem = '';
  await retry('the mesh CA bundle is in etcd', async () => {
    const r = await remora(['ca', 'bundle', '--etcd-endpoints', ETCD, '--timeout-ms', '3000']);
    if (r.code === 0 && r.stdout.includes('-----BEGIN CERTIFICATE-----')) {
      pem = r.stdout;
      return true;
    }
    return r.stderr || `exit ${r.code}, no certificate`;
  });
  const file = path.join(MESH_DIR, 'roots.pem');
  writeAtomic(file, pem);
  log(`wrote ${file} (${pem.split('-----BEGIN CERTIFICATE-----').length - 1} root(s))`);
}

async function waitHttp(url) {
  if (!url) throw new Error('usage: mesh-setup.mjs wait-http URL');
  await retry(`${url} answers 200`, async () => {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return res.ok ? true : `HTTP ${res.status}`;
  });
  log(`${url} is ready`);
}

async function waitSidecar(services) {
  if (services.length === 0) throw new Error('usage: mesh-setup.mjs wait-sidecar SERVICE...');
  await waitHttp('http://127.0.0.1:15020/healthz/ready');
  await retry(`the sidecar has endpoints for ${services.join(', ')}`, async () => {
    const res = await fetch('http://127.0.0.1:15000/config_dump', { signal: AbortSignal.timeout(3000) });
    if (!res.ok) return `HTTP ${res.status}`;
    const { clusters = [] } = await res.json();
    const missing = services.filter((s) => !clusters.some((c) => c.name === s && c.endpoints?.length > 0));
    return missing.length === 0 ? true : `no endpoints for ${missing.join(', ')}`;
  });
  log(`the sidecar has endpoints for ${services.join(', ')}`);
}

const [cmd, ...args] = process.argv.slice(2);
const commands = { init, 'ca-bundle': caBundle, 'wait-http': () => waitHttp(args[0]), 'wait-sidecar': () => waitSidecar(args) };
if (!commands[cmd]) {
  process.stderr.write('usage: mesh-setup.mjs init | ca-bundle | wait-http URL | wait-sidecar SERVICE...\n');
  process.exit(2);
}
try {
  await commands[cmd]();
} catch (err) {
  process.stderr.write(`mesh-setup ${cmd}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
