/**
 * Property-based fuzzing of everything that turns untrusted config into typed config: the resource
 * validators behind `remora apply` and the control plane's etcd reads, the sidecar's static config
 * validation, and its translation of a pushed snapshot. Then a few of the invalid files the fuzzer
 * makes go through real processes: `remora apply` against etcd and a control plane, and straight
 * into etcd, past apply.
 *
 * Reproducible by default (fixed seed); FUZZ_RUNS=5000 runs more, FUZZ_SEED=<n> explores elsewhere.
 * A failure prints the seed and path to replay it. See docs/config-fuzzing.md.
 */
import test from 'ava';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { Etcd3 } from 'etcd3';
import { parseResources } from '../control-plane/resources/parse.js';
import { checkResource, resourceJson } from '../control-plane/resources/resource.js';
import { FieldChecker } from '../control-plane/resources/fields.js';
import { validateStoredValue } from '../control-plane/resources/stored-value.js';
import { configKey, DEFAULT_PREFIX } from '../control-plane/resources/keys.js';
import { KIND_NAMES } from '../control-plane/resources/kinds.js';
import { routeMatchKey } from '../control-plane/resources/route.js';
import { GRPC_STATUS_NAMES, LOAD_BALANCING_POLICIES, RESOURCE_KINDS, type Resource, type ResourceKind, type StoredResource } from '../control-plane/resources/types.js';
import { MeshState } from '../control-plane/discovery/mesh-state.js';
import { encodeSnapshot } from '../control-plane/discovery/snapshot.js';
import { StreamConfigResponse, type ConfigResource } from '../protos/gen/remora/mesh/v1/discovery.js';
import { ConfigError, validateMeshConfig } from '../sidecar/config/validate.js';
import { loadStaticConfig } from '../sidecar/config/static-file.js';
import { translateResources } from '../sidecar/discovery/translate.js';
import type { MeshConfig } from '../sidecar/config/model.js';
import { startEtcd } from '../lib/etcd-process.js';
import { startRemora } from '../lib/processes.js';
import { eventually, getJson, startControlPlane, startSidecar } from './harness/sidecars.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_122);
const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
/** One input must never take this long: a regex blow-up or a parser loop would show up here. */
const PER_INPUT_MS = 2_000;
const params = (numRuns = RUNS): fc.Parameters<unknown> => ({ seed: SEED, numRuns, endOnFailure: true, includeErrorInReport: true });

/** Runs `fn` and fails the property if it takes longer than PER_INPUT_MS (it cannot be interrupted, only measured). */
function timed<T>(what: string, fn: () => T): T {
  const started = performance.now();
  const out = fn();
  const ms = performance.now() - started;
  if (ms > PER_INPUT_MS) throw new Error(`${what} took ${ms.toFixed(0)} ms on one input (limit ${PER_INPUT_MS} ms)`);
  return out;
}

/** A deep-equality check that throws, so fast-check sees the failure and shrinks it. */
function same(actual: unknown, expected: unknown, what: string): void {
  assert.deepStrictEqual(actual, expected, what);
}

// ---------------------------------------------------------------------------------------------
// Field paths
// ---------------------------------------------------------------------------------------------

type Path = readonly (string | number)[];

/** `spec.routes[0].retry.attempts`, as the validators write it. */
function renderPath(p: Path): string {
  let out = '';
  for (const seg of p) out = typeof seg === 'number' ? `${out}[${seg}]` : out ? `${out}.${seg}` : seg;
  return out;
}

/** Maps whose keys are the user's (labels), not field names: an extra key there is valid. */
const isLabelMap = (p: Path): boolean => p.length > 0 && (p[p.length - 1] === 'labels' || p[p.length - 1] === 'subset');

/** Fields where any non-empty string is valid, so a 100,000-character one is too (see docs/config-fuzzing.md). */
function isFreeText(p: Path): boolean {
  const s = renderPath(p);
  if (p.length >= 2 && isLabelMap(p.slice(0, -1))) return true;
  return /(headers\[\d+\]\.(name|exact)|onlyWithHeader\.(name|exact)|hashHeader|abort\.message|serviceName|address|^routes\[\d+\]\.name)$/.test(s);
}

interface Site {
  readonly path: Path;
  readonly value: unknown;
}

/** Every node below the root: objects, lists and leaves. */
function sites(v: unknown, p: Path = []): Site[] {
  const out: Site[] = p.length > 0 ? [{ path: p, value: v }] : [];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...sites(x, [...p, i])));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...sites(x, [...p, k]));
  return out;
}

function setAt(root: unknown, p: Path, value: unknown): void {
  let o = root as Record<string | number, unknown>;
  for (const seg of p.slice(0, -1)) o = o[seg] as Record<string | number, unknown>;
  Object.defineProperty(o, p[p.length - 1]!, { value, enumerable: true, writable: true, configurable: true });
}

/** Every leaf of `input` is in `output` at the same path with the same value: nothing written was lost or changed. */
function keptLeaves(input: unknown, output: unknown): string[] {
  const lost: string[] = [];
  for (const s of sites(input)) {
    if (s.value !== null && typeof s.value === 'object') continue;
    let o: unknown = output;
    for (const seg of s.path) o = o === null || typeof o !== 'object' ? undefined : Object.hasOwn(o, seg) ? (o as Record<string | number, unknown>)[seg] : undefined;
    if (!Object.is(o, s.value)) lost.push(`${renderPath(s.path)}: wrote ${String(s.value)}, got ${String(o)}`);
  }
  return lost;
}

// ---------------------------------------------------------------------------------------------
// Valid resources
// ---------------------------------------------------------------------------------------------

const rec = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }, required: (keyof T)[] = []) =>
  fc.record(model, { requiredKeys: required, noNullPrototype: true });

const dnsName = fc.stringMatching(/^[a-z]([-a-z0-9]{0,14}[a-z0-9])?$/);
const headerName = fc.stringMatching(/^x-[a-z0-9]{1,10}$/);
// `__proto__` and `constructor` as keys: a label must survive them like any other.
const labelKey = fc.oneof(fc.stringMatching(/^[a-z][a-z0-9./_-]{0,20}$/), fc.constantFrom('__proto__', 'constructor', 'toString'));
const labels = fc.dictionary(labelKey, fc.string({ maxLength: 12 }), { maxKeys: 3, noNullPrototype: true });
const status = fc.constantFrom(...GRPC_STATUS_NAMES);
const statuses = fc.uniqueArray(status, { minLength: 1, maxLength: 4 });
// No -0: JSON has no negative zero, so it would come back from etcd as 0 (harmless, but not a round trip).
const percent = fc.oneof(fc.integer({ min: 0, max: 100 }), fc.double({ min: 0, max: 100, noNaN: true, noDefaultInfinity: true }).map((x) => x || 0));
const methodPath = fc.tuple(fc.stringMatching(/^[a-z]{1,6}\.[A-Z][a-z]{1,6}$/), fc.stringMatching(/^[A-Z][A-Za-z]{0,8}$/));

const headerMatch = fc.oneof(
  rec({ name: headerName, exact: fc.string({ maxLength: 10 }) }, ['name', 'exact']),
  rec({ name: headerName, regex: fc.constantFrom('v[0-9]+', 'a|b', '.*', '[a-z]{2,4}') }, ['name', 'regex']),
  rec({ name: headerName, present: fc.boolean() }, ['name', 'present']),
);

const retries = rec({
  maxAttempts: fc.integer({ min: 1, max: 10 }),
  retryOn: statuses,
  perTryTimeoutMs: fc.integer({ min: 1, max: 3_600_000 }),
  backoffBaseMs: fc.integer({ min: 1, max: 60_000 }),
  backoffMaxMs: fc.integer({ min: 1, max: 600_000 }),
  budgetPercent: percent,
  minRetriesPerSecond: fc.integer({ min: 0, max: 10_000 }),
  retryNonIdempotent: fc.boolean(),
  replayBufferBytes: fc.integer({ min: 0, max: 16 * 1024 * 1024 }),
}).map((r) => {
  // backoffMaxMs >= backoffBaseMs, counting the defaults (25 and 250) of whichever is left out.
  const base = r.backoffBaseMs ?? 25;
  const max = r.backoffMaxMs ?? 250;
  return max >= base ? r : { ...r, backoffMaxMs: base };
});

const fault = rec({
  delay: rec({ fixedMs: fc.integer({ min: 0, max: 3_600_000 }), percent }, ['fixedMs']),
  abort: rec({ status, percent, message: fc.string({ maxLength: 20 }) }, ['status']),
  onlyWithHeader: rec({ name: headerName, exact: fc.string({ maxLength: 10 }) }, ['name']),
}).filter((f) => f.delay !== undefined || f.abort !== undefined);

/** A Route spec whose clusters are drawn from `cluster`. */
function routeSpec(cluster: fc.Arbitrary<string>) {
  const target = fc.oneof(
    cluster.map((c) => ({ cluster: c })),
    fc
      .uniqueArray(rec({ cluster, weight: fc.integer({ min: 0, max: 10_000 }) }, ['cluster', 'weight']), { selector: (d) => d.cluster, minLength: 1, maxLength: 3 })
      .filter((ds) => ds.some((d) => d.weight > 0))
      .map((destinations) => ({ destinations })),
  );
  const rest = rec({
    failover: cluster,
    timeoutMs: fc.integer({ min: 1, max: 3_600_000 }),
    grpcTimeout: fc.constantFrom('CAP', 'HONOR', 'IGNORE'),
    idleTimeoutMs: fc.integer({ min: 1, max: 86_400_000 }),
    retries,
    fault,
    mirror: rec({ cluster, percent }, ['cluster']),
  });
  const match = rec({
    service: dnsName,
    method: fc.oneof(methodPath.map(([s, m]) => ({ exact: `/${s}/${m}` })), methodPath.map(([s]) => ({ prefix: `/${s}/` }))),
    headers: fc.uniqueArray(headerMatch, { selector: (h) => h.name, minLength: 1, maxLength: 3 }),
  }, ['service']);
  return fc.tuple(match, target, rest).map(([m, t, r]) => {
    const spec: Record<string, unknown> = { match: m, ...t, ...r };
    const retry = r.retries as { perTryTimeoutMs?: number } | undefined;
    // perTryTimeoutMs <= timeoutMs when both are set.
    if (retry?.perTryTimeoutMs !== undefined && r.timeoutMs !== undefined && retry.perTryTimeoutMs > r.timeoutMs) {
      spec.retries = { ...retry, perTryTimeoutMs: r.timeoutMs };
    }
    return spec;
  });
}

const endpoint = rec({
  address: fc.oneof(fc.ipV4(), fc.domain()),
  port: fc.integer({ min: 1, max: 65_535 }),
  weight: fc.integer({ min: 1, max: 1_000_000 }),
  labels,
  identity: fc.tuple(dnsName, dnsName).map(([ns, sa]) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`),
}, ['address', 'port']);

const healthCheck = rec({
  intervalMs: fc.integer({ min: 100, max: 3_600_000 }),
  timeoutMs: fc.integer({ min: 1, max: 60_000 }),
  healthyThreshold: fc.integer({ min: 1, max: 100 }),
  unhealthyThreshold: fc.integer({ min: 1, max: 100 }),
  jitterMs: fc.integer({ min: 0, max: 3_600_000 }),
  serviceName: fc.string({ maxLength: 12 }),
}).map((h) => {
  const interval = h.intervalMs ?? 5_000;
  const timeout = h.timeoutMs ?? 1_000;
  return timeout <= interval ? h : { ...h, timeoutMs: interval };
});

const outlierDetection = rec({
  consecutiveFailures: fc.integer({ min: 1, max: 1_000 }),
  baseEjectionMs: fc.integer({ min: 1, max: 3_600_000 }),
  maxEjectionMs: fc.integer({ min: 1, max: 86_400_000 }),
  maxEjectionPercent: fc.integer({ min: 0, max: 100 }),
  statusCodes: statuses,
}).map((o) => ((o.maxEjectionMs ?? 300_000) >= (o.baseEjectionMs ?? 30_000) ? o : { ...o, maxEjectionMs: o.baseEjectionMs ?? 30_000 }));

const clusterPolicy = {
  connectTimeoutMs: fc.integer({ min: 1, max: 600_000 }),
  maxSessionAgeMs: fc.integer({ min: 1_000, max: 86_400_000 }),
  loadBalancing: fc.oneof(
    fc.constantFrom(...LOAD_BALANCING_POLICIES.filter((p) => p !== 'RING_HASH')).map((policy) => ({ policy })),
    headerName.map((hashHeader) => ({ policy: 'RING_HASH', hashHeader })),
  ),
  healthCheck,
  outlierDetection,
  circuitBreakers: rec({
    maxConnections: fc.integer({ min: 1, max: 1_000_000 }),
    maxPendingRequests: fc.integer({ min: 0, max: 1_000_000 }),
    maxRequests: fc.integer({ min: 1, max: 1_000_000 }),
    maxRetries: fc.integer({ min: 0, max: 1_000_000 }),
  }),
};

const clusterSpec = rec({ service: dnsName, subset: labels, endpoints: fc.array(endpoint, { maxLength: 3 }), ...clusterPolicy });

const principal = fc.oneof(
  fc.constant('*'),
  dnsName.map((ns) => `ns/${ns}/*`),
  fc.tuple(dnsName, dnsName).map(([ns, sa]) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`),
);
const authzSpec = rec({
  service: dnsName,
  action: fc.constantFrom('ALLOW', 'DENY'),
  rules: fc.array(rec({ from: fc.array(principal, { minLength: 1, maxLength: 3 }), methods: fc.array(methodPath.map(([s, m]) => `/${s}/${m}`), { maxLength: 2 }) }, ['from']), { maxLength: 3 }),
}, ['service']);

const meshConfigSpec = rec({
  trustDomain: fc.constantFrom('cluster.local', 'example.org', 'mesh.example.com'),
  mtlsMode: fc.constantFrom('STRICT', 'PERMISSIVE', 'DISABLED'),
  service: dnsName,
});

const metadata = rec({ name: dnsName, namespace: dnsName, labels }, ['name']);

function resourceDoc(kind: ResourceKind, spec: fc.Arbitrary<unknown>) {
  return fc.tuple(metadata, spec, fc.boolean()).map(([m, s, v]) => ({ ...(v ? { apiVersion: 'remora/v1' } : {}), kind, metadata: m, spec: s }));
}

const validDoc = fc.oneof(
  resourceDoc('Route', routeSpec(dnsName)),
  resourceDoc('Cluster', clusterSpec),
  resourceDoc('AuthorizationPolicy', authzSpec),
  resourceDoc('MeshConfig', meshConfigSpec),
);

/** A sidecar config document (static file or what a snapshot translates to): routes name only its clusters. */
const sidecarDoc = fc
  .uniqueArray(rec({ name: dnsName, endpoints: fc.array(endpoint, { maxLength: 2 }), ...clusterPolicy }, ['name', 'endpoints']), {
    selector: (c) => c.name,
    minLength: 1,
    maxLength: 3,
  })
  .chain((clusters) =>
    fc
      .uniqueArray(
        fc.tuple(routeSpec(fc.constantFrom(...clusters.map((c) => c.name))), fc.option(dnsName, { nil: undefined })).map(([r, name]) => (name ? { name, ...r } : r)),
        { selector: (r) => routeMatchKey(r.match as Parameters<typeof routeMatchKey>[0]), maxLength: 3 },
      )
      .map((routes) => ({ clusters, routes })),
  );

// ---------------------------------------------------------------------------------------------
// Junk: arbitrary values, shaped enough to reach past the first check
// ---------------------------------------------------------------------------------------------

const FIELD_NAMES = [
  'apiVersion', 'kind', 'metadata', 'spec', 'name', 'namespace', 'labels', 'match', 'service', 'method', 'exact', 'prefix',
  'headers', 'regex', 'present', 'cluster', 'destinations', 'weight', 'failover', 'timeoutMs', 'grpcTimeout', 'idleTimeoutMs',
  'retries', 'maxAttempts', 'retryOn', 'perTryTimeoutMs', 'backoffBaseMs', 'backoffMaxMs', 'budgetPercent', 'fault', 'delay',
  'fixedMs', 'percent', 'abort', 'status', 'message', 'onlyWithHeader', 'mirror', 'subset', 'endpoints', 'address', 'port',
  'identity', 'connectTimeoutMs', 'maxSessionAgeMs', 'loadBalancing', 'policy', 'hashHeader', 'healthCheck', 'intervalMs',
  'outlierDetection', 'statusCodes', 'circuitBreakers', 'maxRequests', 'action', 'rules', 'from', 'methods', 'trustDomain',
  'mtlsMode', 'clusters', 'routes', 'security', 'trustBundle', 'signer', 'mtls', 'mode', 'authorization', '__proto__', 'constructor',
];

const oddScalar = fc.constantFrom<unknown>(
  NaN, Infinity, -Infinity, -0, 1e308, 2 ** 53 + 2, -1, 0.5, '', ' ', 'NaN', '1e3', '0x10', '\u0000', '\uFEFF', 'Route', 'ROUND_ROBIN',
  'a'.repeat(5_000), '/p.S/M', 'spiffe://x/ns/a/sa/b', true, false, null, undefined,
);

/** JSON-ish trees whose keys are mostly real field names; exotic JS values (Map, Date, BigInt, null prototypes) too. */
const junk: fc.Arbitrary<unknown> = fc.letrec<{ node: unknown }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    oddScalar,
    fc.anything({ maxDepth: 2, withBigInt: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true, withBoxedValues: true, withSparseArray: true, withTypedArray: true }),
    fc.array(tie('node'), { maxLength: 3 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...FIELD_NAMES), fc.string({ maxLength: 6 })), tie('node'), { maxKeys: 4 }),
  ),
})).node;

const junkEnvelope = fc.record({
  kind: fc.oneof(fc.constantFrom<unknown>(...RESOURCE_KINDS), junk),
  metadata: fc.oneof(metadata as fc.Arbitrary<unknown>, junk),
  spec: junk,
}, { requiredKeys: [] });

/** A value that contains itself, as a YAML anchor and alias can make (`&a [*a]`). */
const cyclic = fc.tuple(fc.oneof(junkEnvelope, validDoc), fc.nat()).map(([v, n]) => {
  const root = structuredClone(v) as Record<string, unknown>;
  const objects = [root, ...sites(root).map((s) => s.value).filter((x): x is Record<string, unknown> => x !== null && typeof x === 'object')];
  const at = objects[n % objects.length]!;
  if (Array.isArray(at)) at.push(root);
  else at.loop = root;
  return root as unknown;
});

const YAML_BITS = [
  'kind: ', 'Route', 'Cluster', 'metadata:', ' { name: x }', 'spec:', '\n  match: ', '{ service: a }', 'cluster: ', '- ', '\n', '  ',
  '&a ', '*a', '!!binary aGk=', '!!str ', '!!set ', '!!omap ', '!!timestamp 2001-12-14', '!custom ', '---\n', '...\n', ': ', ', ',
  '[', ']', '{', '}', '"', "'", '# c', '? ', '|\n  x', '>', '%YAML 1.2\n', '<<: ', '.nan', '.inf', '0x1F', '1e999', '~', 'null',
  '__proto__: ', 'timeoutMs: ', '\t', '\u0000', '\uFEFF', '\u2028', 'é', '🐟',
];

const yamlText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.array(fc.constantFrom(...YAML_BITS), { maxLength: 40 }).map((b) => b.join('')),
  fc.array(fc.oneof(junkEnvelope, validDoc, junk), { minLength: 1, maxLength: 3 }).map((docs) => docs.map((d) => safeStringify(d)).join('\n---\n')),
  fc.constantFrom(
    // Billion laughs, cyclic aliases, deep flow nesting: each once crashed or could crash a parser.
    'a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n',
    'kind: &k [*k]\n',
    'kind: Route\nmetadata: { name: x }\nspec: &s { match: { service: a }, cluster: a, timeoutMs: *s }\n',
    `kind: Route\nmetadata: { name: x }\nspec: ${'['.repeat(1_500)}${']'.repeat(1_500)}\n`,
  ),
);

/** yaml's stringify, or JSON (which is YAML) for what it cannot write. */
function safeStringify(v: unknown): string {
  try {
    return stringify(v, { aliasDuplicateObjects: false });
  } catch {
    try {
      return JSON.stringify(v) ?? 'null';
    } catch {
      return 'null';
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations of valid documents
// ---------------------------------------------------------------------------------------------

type MutationKind = 'wrong-type' | 'out-of-range' | 'nan-string' | 'unknown-field' | 'deep-nesting' | 'long-string';

interface Mutation {
  readonly kind: MutationKind;
  readonly doc: unknown;
  /** The field path an error must name. */
  readonly path: string;
}

function deepList(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}
function deepObject(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = { x: v };
  return v;
}

function wrongTypes(v: unknown): unknown[] {
  if (Array.isArray(v)) return [42, 'x', { a: 1 }, null, true];
  if (v !== null && typeof v === 'object') return [42, 'x', [], null, true];
  if (typeof v === 'string') return [42, true, null, [], { a: 1 }, 1.5];
  if (typeof v === 'number') return ['5', true, null, [], { a: 1 }];
  return ['true', 1, null, {}];
}

const LONG = 'a'.repeat(100_000);
/** Deep, yet within what the YAML parser accepts (its own stack limit is reported as "not valid YAML"). */
const DEPTH = 200;

/**
 * Breaks one field of a valid document. Returns undefined when the chosen mutation does not apply to
 * the chosen field (fast-check then draws again).
 */
function mutate(doc: unknown, kind: MutationKind, pick: number, choice: number, root: string): Mutation | undefined {
  const candidates = sites(doc).filter((s) => {
    const v = s.value;
    switch (kind) {
      case 'wrong-type':
        return true;
      case 'out-of-range':
      case 'nan-string':
        return typeof v === 'number';
      case 'unknown-field':
        return v !== null && typeof v === 'object' && !Array.isArray(v) && !isLabelMap(s.path);
      case 'deep-nesting':
        return true;
      case 'long-string':
        return (typeof v === 'string' || typeof v === 'number') && !isFreeText(s.path);
    }
  });
  if (kind === 'unknown-field') candidates.push({ path: [], value: doc });
  if (candidates.length === 0) return undefined;
  const site = candidates[pick % candidates.length]!;
  const out = structuredClone(doc);
  const choose = <T>(xs: readonly T[]): T => xs[choice % xs.length]!;
  switch (kind) {
    case 'wrong-type':
      setAt(out, site.path, choose(wrongTypes(site.value)));
      break;
    case 'out-of-range':
      setAt(out, site.path, choose([-1, 1e308, -1e308, 2 ** 53 + 2, NaN, Infinity, -Infinity]));
      break;
    case 'nan-string':
      setAt(out, site.path, choose(['NaN', 'Infinity', '-0', '1e3', '0x10', '12abc', '']));
      break;
    case 'unknown-field': {
      const key = choose(['unexpectedField', 'Service', 'timeout_ms', 'retry', 'x-extra']);
      setAt(out, [...site.path, key], 1);
      // The sidecar's validator calls its document `(root)`; a resource's root fields have no prefix.
      return described({ kind, doc: out, path: site.path.length === 0 && root ? `${root}.${key}` : renderPath([...site.path, key]) });
    }
    case 'deep-nesting':
      // A list where a list is expected would only move the error one level down.
      setAt(out, site.path, Array.isArray(site.value) ? deepObject(DEPTH) : deepList(DEPTH));
      break;
    case 'long-string':
      setAt(out, site.path, LONG);
      break;
  }
  return described({ kind, doc: out, path: renderPath(site.path) });
}

/** How fast-check prints a counterexample: long strings elided, so a failure report stays readable. */
function described(m: Mutation): Mutation {
  const text = (): string => `${m.kind} at ${m.path}: ${JSON.stringify(m.doc, (_k, v: unknown) => (typeof v === 'string' && v.length > 60 ? `${v.slice(0, 20)}...(${v.length} chars)` : v))?.slice(0, 2_000)}`;
  return Object.assign(m, { [fc.toStringMethod]: text });
}

const mutationKind = fc.constantFrom<MutationKind>('wrong-type', 'out-of-range', 'nan-string', 'unknown-field', 'deep-nesting', 'long-string');

const mutatedDoc = fc
  .tuple(validDoc, mutationKind, fc.nat(), fc.nat())
  .map(([doc, kind, pick, choice]) => mutate(doc, kind, pick, choice, ''))
  .filter((m): m is Mutation => m !== undefined);

/** Errors are `<source> document N (Kind ns/name): <path>: <why>`; true if one names exactly `p`. */
const namesPath = (errors: readonly string[], p: string): boolean => errors.some((e) => e.includes(`: ${p}: `));

/** The path every resource problem starts with (the envelope's own fields), or a whole-document message. */
const RESOURCE_PROBLEM = /^((apiVersion|kind|metadata|spec)([.[]|: )|a resource must be a mapping|[^\n]*: unknown field \(known: apiVersion, kind, metadata, spec\)$)/;
const SIDECAR_PROBLEM = /^(\(root\)|clusters|routes|security)([.[]|: )/;

function problemsOf(v: unknown): string[] {
  const c = new FieldChecker();
  timed('checkResource', () => checkResource(c, v));
  return c.problems;
}

function sidecarProblems(v: unknown): string[] {
  try {
    timed('validateMeshConfig', () => validateMeshConfig(v, 'fuzz'));
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

/** A sidecar document as the control plane would push it: one ConfigResource per cluster and route. */
function asPushed(doc: { clusters: unknown[]; routes: unknown[] }): ConfigResource[] {
  return [
    ...doc.clusters.map((c, i) => ({ kind: 'cluster', name: `c${i}`, json: JSON.stringify(c) })),
    ...doc.routes.map((r, i) => ({ kind: 'route', name: `r${i}`, json: JSON.stringify(r) })),
  ];
}

// ---------------------------------------------------------------------------------------------
// (a) and (b): arbitrary input never crashes, never hangs, and every error names a field path
// ---------------------------------------------------------------------------------------------

test('remora apply: any YAML text is parsed or rejected with errors naming the file and document, never thrown', (t) => {
  fc.assert(
    fc.property(yamlText, (text) => {
      const { resources, errors } = timed('parseResources', () => parseResources(text, 'fuzz.yaml'));
      for (const e of errors) if (!/^fuzz\.yaml( document \d+)?[ :]/.test(e)) throw new Error(`error without its file and document: ${e}`);
      if (resources.length === 0 && errors.length === 0) throw new Error('nothing parsed and nothing reported');
    }),
    params(RUNS * 2),
  );
  t.pass();
});

test('resource validator (apply and etcd reads): arbitrary and cyclic values give field-path problems, never an exception', (t) => {
  fc.assert(
    fc.property(fc.oneof(junk, junkEnvelope, cyclic), (v) => {
      const problems = problemsOf(v);
      for (const p of problems) if (!RESOURCE_PROBLEM.test(p)) throw new Error(`problem without a field path: ${p.slice(0, 200)}`);
    }),
    params(RUNS * 2),
  );
  // The same through the etcd read path, which parses JSON itself.
  fc.assert(
    fc.property(fc.oneof(junkEnvelope, junk), fc.constantFrom(...RESOURCE_KINDS), (v, kind) => {
      const key = configKey(DEFAULT_PREFIX, kind, 'default', 'x');
      const json = safeStringifyJson(v);
      const stored = timed('validateStoredValue', () => validateStoredValue(key, json));
      if (stored.type === 'invalid') for (const p of stored.invalid.problems) if (!RESOURCE_PROBLEM.test(p) && !/^(value is not JSON|the key is for)/.test(p)) throw new Error(`stored-value problem without a field path: ${p.slice(0, 200)}`);
    }),
    params(),
  );
  t.pass();
});

function safeStringifyJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? 'null';
  } catch {
    return '{"kind": 1}';
  }
}

test('a 100,000-deep JSON value in etcd is reported at its field path, not as a stack overflow', (t) => {
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  const json = `{"kind":"Route","metadata":{"name":"x"},"spec":{"match":{"service":"a"},"cluster":"a","timeoutMs":${deep}}}`;
  const stored = timed('validateStoredValue', () => validateStoredValue(configKey(DEFAULT_PREFIX, 'Route', 'default', 'x'), json));
  t.is(stored.type, 'invalid');
  t.deepEqual(stored.type === 'invalid' ? stored.invalid.problems : [], ['spec.timeoutMs: must be an integer from 1 to 3600000, got a list']);
});

test('sidecar config validator: arbitrary and cyclic documents throw only ConfigError, each problem at a field path', (t) => {
  const shaped = fc.record({ clusters: fc.oneof(fc.array(junk, { maxLength: 3 }), junk), routes: fc.oneof(fc.array(junk, { maxLength: 3 }), junk), security: junk }, { requiredKeys: [] });
  fc.assert(
    fc.property(fc.oneof(junk, shaped, cyclic), (v) => {
      for (const p of sidecarProblems(v)) if (!SIDECAR_PROBLEM.test(p)) throw new Error(`problem without a field path: ${p.slice(0, 200)}`);
    }),
    params(RUNS * 2),
  );
  t.pass();
});

test('snapshot translation: arbitrary pushed resources are applied or NACKed per resource, never thrown', (t) => {
  const kind = fc.oneof(fc.constantFrom('cluster', 'route', 'security', 'constructor', '__proto__', 'toString', ''), fc.string({ maxLength: 8 }));
  const body = fc.oneof(junk.map(safeStringifyJson), fc.string({ maxLength: 40 }), fc.constant(`${'['.repeat(50_000)}${']'.repeat(50_000)}`));
  const resource = fc.record({ kind, name: fc.string({ maxLength: 8 }), json: body });
  fc.assert(
    fc.property(fc.array(resource, { maxLength: 5 }), (resources) => {
      const result = timed('translateResources', () => translateResources('v1', resources));
      const ids = new Set([...resources.map((r) => `${r.kind}/${r.name}`), 'security/mesh', '']);
      if (result.config) return;
      if (result.errors.length === 0) throw new Error('no config and no errors');
      for (const e of result.errors) {
        if (!ids.has(e.resource)) throw new Error(`error names a resource that was not pushed: ${e.resource}`);
        if (e.message.length === 0 || e.message.startsWith(':')) throw new Error(`error without a message or path: ${JSON.stringify(e)}`);
      }
    }),
    params(RUNS * 2),
  );
  t.pass();
});

test('static config file: arbitrary YAML files load or fail with a ConfigError naming the file', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'remora-fuzz-'));
  const file = path.join(dir, 'mesh.yaml');
  await fc.assert(
    fc.asyncProperty(fc.oneof(yamlText, sidecarDoc.map((d) => stringify(d))), async (text) => {
      await writeFile(file, text);
      const started = performance.now();
      try {
        await loadStaticConfig(file);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        for (const p of err.problems) if (!p.startsWith(`${file}: `)) throw new Error(`problem without the file name: ${p}`);
      }
      if (performance.now() - started > PER_INPUT_MS) throw new Error('loading one file took too long');
    }),
    params(Math.max(20, Math.floor(RUNS / 3))),
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------
// (c) valid documents round-trip; one broken field is rejected at its path
// ---------------------------------------------------------------------------------------------

test('valid resources round-trip: YAML → resource → etcd JSON → resource, nothing written is lost', (t) => {
  fc.assert(
    fc.property(validDoc, (doc) => {
      const { resources, errors } = parseResources(stringify(doc), 'valid.yaml');
      if (errors.length > 0) throw new Error(`a valid document was rejected: ${errors.join('; ')}`);
      const r = resources[0]!;
      const lost = keptLeaves({ metadata: doc.metadata, spec: doc.spec }, r);
      if (lost.length > 0) throw new Error(`fields changed on the way in: ${lost.join('; ')}`);
      const stored = validateStoredValue(configKey(DEFAULT_PREFIX, r.kind, r.metadata.namespace, r.metadata.name), resourceJson(r), { modRevision: '7' });
      if (stored.type !== 'resource') throw new Error(`its stored form does not validate: ${JSON.stringify(stored)}`);
      same(stored.resource, { ...r, modRevision: '7' }, 'the resource read back from etcd');
      // The canonical form, written back as YAML, parses to the same resource (defaults are stable).
      const again = parseResources(stringify(JSON.parse(resourceJson(r))), 'again.yaml');
      same(again, { resources: [r], errors: [] }, 'the canonical form parsed again');
    }),
    params(),
  );
  t.pass();
});

test('valid sidecar documents validate, survive the snapshot encoding and round-trip through their JSON', (t) => {
  fc.assert(
    fc.property(sidecarDoc, (doc) => {
      const problems = sidecarProblems(doc);
      if (problems.length > 0) throw new Error(`a valid sidecar document was rejected: ${problems.join('; ')}`);
      const config = validateMeshConfig(doc, 'v1');
      const { version: _v, ...body } = config;
      same(validateMeshConfig(JSON.parse(JSON.stringify(body)), 'v1'), config, 'the config validated again from its JSON');
      const pushed = translateResources('v1', asPushed(doc));
      if (!pushed.config) throw new Error(`a valid snapshot was NACKed: ${JSON.stringify(pushed.errors)}`);
      same(pushed.config, config, 'the same document pushed as resources');
    }),
    params(),
  );
  t.pass();
});

test('control plane and sidecar agree: any valid set of resources makes a snapshot the sidecar applies', (t) => {
  const mesh = fc
    .uniqueArray(resourceDoc('Cluster', clusterSpec), { selector: (c) => c.metadata.name, minLength: 1, maxLength: 3 })
    .chain((clusters) => {
      const names = fc.constantFrom(...clusters.map((c) => c.metadata.name));
      return fc.record({
        clusters: fc.constant(clusters),
        routes: fc.uniqueArray(resourceDoc('Route', routeSpec(names)), {
          selector: (r) => routeMatchKey((r.spec as { match: Parameters<typeof routeMatchKey>[0] }).match),
          maxLength: 3,
        }),
        others: fc.array(fc.oneof(resourceDoc('AuthorizationPolicy', authzSpec), resourceDoc('MeshConfig', meshConfigSpec)), { maxLength: 3 }),
      });
    });
  fc.assert(
    fc.property(mesh, ({ clusters, routes, others }) => {
      const { resources, errors } = parseResources([...clusters, ...routes, ...others].map((d) => stringify(d)).join('\n---\n'), 'mesh.yaml');
      // Two generated resources may share a kind and name; apply rejects that, so drop the later one.
      const valid = errors.every((e) => e.includes('is already defined')) ? resources : undefined;
      if (!valid) throw new Error(`valid resources rejected: ${errors.join('; ')}`);
      const state = new MeshState();
      state.reset({ revision: '9', resources: valid.map((r): StoredResource => ({ ...r, modRevision: '9' })), instances: [], invalid: [] });
      const snap = StreamConfigResponse.decode(encodeSnapshot(state).bytes);
      const applied = translateResources(snap.version, snap.resources);
      if (!applied.config) throw new Error(`the sidecar NACKs what the control plane accepted: ${JSON.stringify(applied.errors)}`);
      const routeNames = valid.filter((r) => r.kind === 'Route').map((r) => `${r.metadata.namespace}/${r.metadata.name}`).sort();
      same(applied.config.routes.map((r) => r.name).sort(), routeNames, 'the routes the sidecar applied');
    }),
    params(),
  );
  t.pass();
});

test('one broken field of a valid resource is rejected, naming that field', (t) => {
  const seen = new Map<MutationKind, number>();
  fc.assert(
    fc.property(mutatedDoc, (m) => {
      seen.set(m.kind, (seen.get(m.kind) ?? 0) + 1);
      const text = safeStringify(m.doc);
      const { resources, errors } = timed('parseResources', () => parseResources(text, 'broken.yaml'));
      if (resources.length > 0) throw new Error(`${m.kind} at ${m.path} was accepted: ${text.slice(0, 300)}`);
      if (!namesPath(errors, m.path)) throw new Error(`${m.kind} at ${m.path}: no error names it: ${errors.map((e) => e.slice(0, 200)).join(' | ')}`);
      // The same document read back from etcd, where it arrives as JSON rather than YAML.
      if (!text.includes('.nan') && !text.includes('.inf')) {
        const v = m.doc as { kind?: unknown };
        const kind = RESOURCE_KINDS.includes(v.kind as ResourceKind) ? (v.kind as ResourceKind) : 'Route';
        const stored = validateStoredValue(configKey(DEFAULT_PREFIX, kind, 'default', 'x'), JSON.stringify(m.doc));
        if (stored.type !== 'invalid') throw new Error(`${m.kind} at ${m.path} was accepted from etcd`);
      }
    }),
    params(RUNS * 3),
  );
  t.log('mutations tried:', Object.fromEntries(seen));
  t.is(seen.size, 6, 'every kind of mutation was exercised');
});

test('one broken field of a valid sidecar document is rejected at its path, statically and when pushed', (t) => {
  const broken = fc
    .tuple(sidecarDoc, mutationKind, fc.nat(), fc.nat())
    .map(([doc, kind, pick, choice]) => mutate(doc, kind, pick, choice, '(root)'))
    .filter((m): m is Mutation => m !== undefined);
  fc.assert(
    fc.property(broken, (m) => {
      const problems = sidecarProblems(m.doc);
      const at = m.path;
      if (problems.length === 0) throw new Error(`${m.kind} at ${at} was accepted`);
      if (!problems.some((p) => p.startsWith(`${at}: `))) throw new Error(`${m.kind} at ${at}: no problem names it: ${problems.map((p) => p.slice(0, 200)).join(' | ')}`);
      // Pushed: the NACK names the resource and, inside it, the field.
      const pm = /^(clusters|routes)\[(\d+)\](.*)$/.exec(at);
      const d = m.doc as { clusters?: unknown; routes?: unknown };
      if (!pm || !Array.isArray(d.clusters) || !Array.isArray(d.routes) || Object.keys(d).some((k) => k !== 'clusters' && k !== 'routes')) return;
      const result = translateResources('v1', asPushed({ clusters: d.clusters, routes: d.routes }));
      if (result.config) throw new Error(`${m.kind} at ${at} was applied when pushed`);
      const id = `${pm[1] === 'clusters' ? 'cluster' : 'route'}/${pm[1] === 'clusters' ? 'c' : 'r'}${pm[2]}`;
      const inner = pm[3]!.replace(/^\./, '');
      const named = result.errors.some((e) => e.resource === id && (inner === '' || e.message.startsWith(`${inner}: `)));
      if (!named) throw new Error(`${m.kind} at ${at}: the NACK does not name ${id} ${inner}: ${JSON.stringify(result.errors).slice(0, 400)}`);
    }),
    params(RUNS * 2),
  );
  t.pass();
});

test('duplicate names are rejected: two documents, two destinations, two header matches, two clusters, two identical matches', (t) => {
  fc.assert(
    fc.property(validDoc, (doc) => {
      const text = `${stringify(doc)}---\n${stringify(doc)}`;
      const { resources, errors } = parseResources(text, 'dup.yaml');
      const ns = doc.metadata.namespace ?? 'default';
      const ref = `${KIND_NAMES[doc.kind as ResourceKind].singular} ${ns}/${doc.metadata.name}`;
      if (resources.length !== 1 || !errors.some((e) => e.startsWith('dup.yaml document 2') && e.includes(`${ref} is already defined in document 1`))) {
        throw new Error(`duplicate ${ref} not reported: ${errors.join('; ')}`);
      }
    }),
    params(50),
  );
  const route = (spec: unknown) => parseResources(stringify({ kind: 'Route', metadata: { name: 'r' }, spec }), 'dup.yaml').errors;
  t.true(namesPath(route({ match: { service: 'a' }, destinations: [{ cluster: 'b', weight: 1 }, { cluster: 'b', weight: 2 }] }), 'spec.destinations[1].cluster'));
  t.true(namesPath(route({ match: { service: 'a', headers: [{ name: 'x-a', present: true }, { name: 'x-a', exact: 'v' }] }, cluster: 'b' }), 'spec.match.headers[1].name'));
  const sidecar = sidecarProblems({ clusters: [{ name: 'a' }, { name: 'a' }], routes: [{ match: { service: 's' }, cluster: 'a' }, { name: 'other', match: { service: 's' }, cluster: 'a' }] });
  t.true(sidecar.some((p) => p.startsWith('clusters[1].name: duplicate cluster "a"')), sidecar.join('; '));
  t.true(sidecar.some((p) => p.startsWith('routes[1].match: ')), sidecar.join('; '));
});

// ---------------------------------------------------------------------------------------------
// (d) the same through real processes
// ---------------------------------------------------------------------------------------------

const BASELINE = `
kind: Cluster
metadata: { name: fuzz-backend }
spec: { endpoints: [{ address: 127.0.0.1, port: 9 }] }
---
kind: Route
metadata: { name: fuzz-base }
spec: { match: { service: fuzz }, cluster: fuzz-backend, timeoutMs: 1000 }
`;

async function remora(args: string[]): Promise<{ code: number | string; out: string }> {
  const proc = await startRemora(args);
  const code = await proc.exited;
  return { code, out: proc.output() };
}

/** Every key under config/ with its value and mod revision: what "etcd unchanged" means. */
async function configKeys(client: Etcd3): Promise<string> {
  const res = await client.getAll().prefix(`${DEFAULT_PREFIX}config/`).exec();
  return JSON.stringify(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.mod_revision]));
}

test('real processes: apply of fuzz-found invalid files fails with the field path and writes nothing; invalid values put straight into etcd are never pushed', async (t) => {
  const etcd = await startEtcd();
  const cp = await startControlPlane([etcd.endpoint]);
  const sidecar = await startSidecar({ controlPlanes: [cp.address], service: 'fuzz-client', extraArgs: ['--register=false'] });
  const client = new Etcd3({ hosts: etcd.endpoint });
  t.teardown(async () => {
    client.close();
    await sidecar.proc.stop();
    await cp.proc.stop();
    await etcd.stop();
  });
  const dir = await mkdtemp(path.join(tmpdir(), 'remora-fuzz-apply-'));
  const dump = () => getJson<MeshConfig>(sidecar.admin, '/config_dump');

  const base = path.join(dir, 'base.yaml');
  await writeFile(base, BASELINE);
  const applied = await remora(['apply', '-f', base, '--etcd-endpoints', etcd.endpoint]);
  t.is(applied.code, 0, applied.out);
  const good = await eventually('the baseline reaches the sidecar', async () => {
    const c = await dump();
    return c.routes.some((r) => r.name === 'default/fuzz-base') && c;
  });

  // A few broken files from the fuzzer (same seed, so the same files every run), each after a valid
  // document that must not be written either, plus the alias bomb that once crashed apply.
  const picks = fc.sample(mutatedDoc, { seed: SEED, numRuns: 3 });
  const files: { name: string; text: string; expect: string }[] = picks.map((m, i) => ({
    name: `fuzz-${i}.yaml`,
    text: `${stringify({ kind: 'Route', metadata: { name: `fuzz-valid-${i}` }, spec: { match: { service: `fuzz-${i}` }, cluster: 'fuzz-backend' } })}---\n${safeStringify(m.doc)}`,
    expect: `: ${m.path}: `,
  }));
  files.push({
    name: 'alias-bomb.yaml',
    text: `kind: Route\nmetadata: { name: bomb }\nspec: { match: { service: a }, cluster: a }\n---\na: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`,
    expect: 'document 2: not valid YAML: Excessive alias count',
  });
  const before = await configKeys(client);
  for (const f of files) {
    const file = path.join(dir, f.name);
    await writeFile(file, f.text);
    const run = await remora(['apply', '-f', file, '--etcd-endpoints', etcd.endpoint]);
    t.not(run.code, 0, `${f.name} was applied`);
    t.true(run.out.includes(f.expect), `${f.name}: the output names ${f.expect.trim()}:\n${run.out.slice(0, 1_000)}`);
    t.regex(run.out, /nothing applied/);
    t.false(/at .*\(file:|TypeError|ReferenceError/.test(run.out), `${f.name}: apply crashed instead of reporting:\n${run.out.slice(0, 1_000)}`);
  }
  t.is(await configKeys(client), before, 'etcd is unchanged');

  // Past apply: an invalid Route written straight into etcd (a new key), and a valid Route filed
  // under another resource's key. Neither may reach the sidecar, and the control plane says why.
  // A Cluster whose subset label and health check are wrong-typed: the checkers used to drop the
  // bad parts and load the rest, so it reached sidecars selecting every instance, with no health check.
  t.log('fuzz-found files:', picks.map((m) => `${m.kind} at ${m.path}`));
  const [broken] = picks;
  const bad: [string, string][] = [
    [configKey(DEFAULT_PREFIX, 'Route', 'default', 'fuzz-direct'), JSON.stringify(broken!.doc)],
    [configKey(DEFAULT_PREFIX, 'Route', 'default', 'fuzz-misfiled'), JSON.stringify({ kind: 'Route', metadata: { name: 'elsewhere' }, spec: { match: { service: 'm' }, cluster: 'fuzz-backend' } })],
    [configKey(DEFAULT_PREFIX, 'Cluster', 'default', 'fuzz-partial'), JSON.stringify({ kind: 'Cluster', metadata: { name: 'fuzz-partial' }, spec: { service: 'fuzz', subset: { version: 2 }, healthCheck: { unhealthyThreshold: 'x' } } })],
  ];
  for (const [key, value] of bad) await client.put(key).value(value);
  await eventually('the control plane reports every invalid value', () => {
    const log = cp.proc.output();
    return bad.every(([key]) => log.includes(key)) && log.includes('invalid resource in etcd skipped');
  }, 10_000);
  const log = cp.proc.output();
  t.true(log.includes(broken!.path), `the control plane's report names ${broken!.path}`);
  t.true(log.includes('spec.subset.version') && log.includes('spec.healthCheck.unhealthyThreshold'), 'and the partial cluster\'s fields');
  t.is((await dump()).version, good.version, 'nothing was pushed for them');

  // A valid change afterwards is pushed (so the silence above was not a stuck stream), without them.
  await client.put(configKey(DEFAULT_PREFIX, 'Route', 'default', 'fuzz-later')).value(resourceJson(parseResources('kind: Route\nmetadata: { name: fuzz-later }\nspec: { match: { service: later }, cluster: fuzz-backend }\n', 'x').resources[0] as Resource));
  const after = await eventually('the valid change reaches the sidecar', async () => {
    const c = await dump();
    return c.routes.some((r) => r.name === 'default/fuzz-later') && c;
  });
  t.deepEqual(after.routes.map((r) => r.name).sort(), ['default/fuzz-base', 'default/fuzz-later']);
  t.false(after.clusters.some((c) => c.name === 'fuzz-partial'), 'the partly valid cluster was not pushed either');
  t.is(cp.proc.exitCode, null, 'the control plane is still running');
});
