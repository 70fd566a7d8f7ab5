/**
 * `remora get KIND [NAME] [-n NS | -A] [-o json|yaml]`: resources, or the registered instances
 * (`remora get instances`), as a table or for scripts. Invalid values found in etcd are listed
 * on stderr and skipped.
 */
import { ROOT_NAMESPACE } from '../control-plane/resources/mtls-mode.js';
import { KIND_NAMES, resolveKind } from '../control-plane/resources/kinds.js';
import { endpointsPrefix } from '../control-plane/resources/keys.js';
import type { InstanceRecord, Resource, ResourceKind, RouteSpec, StoredResource } from '../control-plane/resources/types.js';
import { RESOURCE_KINDS } from '../control-plane/resources/types.js';
import type { EtcdStore } from '../control-plane/store/etcd-store.js';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from './flags.js';
import { CommandError, runCommand, STORE_FLAGS, warnInvalid, withStore } from './store-session.js';
import { outputFormat, structured, table, type OutputFormat } from './table.js';

const FLAGS = {
  namespace: { type: 'string', help: 'namespace to list (default "default")', short: 'n' },
  'all-namespaces': { type: 'bool', help: 'list every namespace', short: 'A' },
  output: { type: 'string', help: 'table (default), json or yaml', short: 'o' },
  ...STORE_FLAGS,
} as const satisfies FlagDefs;

const INSTANCE_WORDS = ['instances', 'instance', 'inst', 'endpoints', 'endpoint'];
const SUMMARY =
  `List mesh resources (${RESOURCE_KINDS.join(', ')}; any case, singular or plural) ` +
  'or the registered instances (`remora get instances [SERVICE]`).';

type Row = readonly string[];

/** The CLUSTER column: the route's cluster, or its split as `cluster:weight,...` (weights are relative, not percentages). */
function destinationsOf(spec: RouteSpec): string {
  if (spec.destinations) return spec.destinations.map((d) => `${d.cluster}:${d.weight}`).join(',');
  return spec.cluster ?? '-';
}

const columns: { readonly [K in ResourceKind]: { readonly headers: readonly string[]; readonly row: (r: Resource<K>) => Row } } = {
  Route: {
    headers: ['SERVICE', 'CLUSTER', 'TIMEOUT', 'RETRIES'],
    row: (r) => [r.spec.match.service, destinationsOf(r.spec), r.spec.timeoutMs ? `${r.spec.timeoutMs}ms` : '-', r.spec.retries ? String(r.spec.retries.maxAttempts) : '-'],
  },
  Cluster: {
    headers: ['SERVICE', 'SUBSET', 'ENDPOINTS', 'LB'],
    row: (r) => [
      r.spec.service,
      Object.entries(r.spec.subset).map(([k, v]) => `${k}=${v}`).join(',') || '-',
      r.spec.endpoints.length > 0 ? r.spec.endpoints.map((e) => `${e.address}:${e.port}`).join(',') : '(registered)',
      r.spec.loadBalancing?.policy ?? '-',
    ],
  },
  AuthorizationPolicy: {
    headers: ['SERVICE', 'ACTION', 'RULES'],
    row: (r) => [r.spec.service, r.spec.action, String(r.spec.rules.length)],
  },
  MeshConfig: {
    headers: ['SCOPE', 'MTLS', 'TRUST-DOMAIN'],
    row: (r) => [r.spec.service ?? (r.metadata.namespace === ROOT_NAMESPACE ? '(mesh)' : '(namespace)'), r.spec.mtlsMode, r.spec.trustDomain],
  },
};

function rowOf(r: Resource): Row {
  const col = columns[r.kind] as { row: (r: Resource) => Row };
  return [r.metadata.namespace, r.metadata.name, ...col.row(r)];
}

/** Without the store's bookkeeping, so `get -o yaml | apply -f -` round-trips. */
const plain = (r: StoredResource): Resource => ({ kind: r.kind, metadata: r.metadata, spec: r.spec });

interface Scope {
  readonly namespace: string | undefined;
  readonly where: string;
}

async function getResources(store: EtcdStore, kind: ResourceKind, name: string | undefined, scope: Scope, format: OutputFormat): Promise<void> {
  const { resources, invalid } = await store.getResources(kind, name, scope.namespace);
  warnInvalid(invalid);
  resources.sort((a, b) => a.metadata.namespace.localeCompare(b.metadata.namespace) || a.metadata.name.localeCompare(b.metadata.name));
  const names = KIND_NAMES[kind];
  if (name && resources.length === 0) throw new CommandError(`${names.singular}.remora ${JSON.stringify(name)} not found${scope.where}`);
  if (format !== 'table') {
    process.stdout.write(structured(format, resources.map(plain), name !== undefined && resources.length === 1));
    return;
  }
  if (resources.length === 0) {
    process.stderr.write(`No ${names.plural} found${scope.where}.\n`);
    return;
  }
  process.stdout.write(table(['NAMESPACE', 'NAME', ...columns[kind].headers], resources.map(rowOf)));
}

async function getInstances(store: EtcdStore, service: string | undefined, scope: Scope, format: OutputFormat): Promise<void> {
  const snapshot = await store.load();
  warnInvalid(snapshot.invalid.filter((i) => i.key.startsWith(endpointsPrefix(store.prefix))));
  const list: InstanceRecord[] = snapshot.instances
    .filter((i) => (!scope.namespace || i.namespace === scope.namespace) && (!service || i.service === service))
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.service.localeCompare(b.service) || a.instanceId.localeCompare(b.instanceId));
  if (format !== 'table') {
    process.stdout.write(structured(format, list, false));
    return;
  }
  if (list.length === 0) {
    process.stderr.write(`No instances${service ? ` of ${service}` : ''} registered${scope.where}.\n`);
    return;
  }
  const headers = ['NAMESPACE', 'SERVICE', 'INSTANCE', 'ADDRESS', 'ZONE', 'HEALTH', 'CONTROL-PLANE'];
  process.stdout.write(table(headers, list.map((i) => [i.namespace, i.service, i.instanceId, `${i.address}:${i.port}`, i.zone || '-', i.health, i.controlPlane || '-'])));
}

export const getCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const { flags, positional, help } = parseCommand(FLAGS, argv);
    if (help) {
      process.stdout.write(usage('get KIND [NAME]', SUMMARY, FLAGS) + '\n');
      return;
    }
    const [kindArg, name, ...extra] = positional;
    if (!kindArg) throw new UsageError(`usage: remora get KIND [NAME] (KIND: ${RESOURCE_KINDS.join(', ')}, instances)`);
    if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
    if (flags['all-namespaces'] && flags.namespace) throw new UsageError('use either -n NAMESPACE or -A, not both');
    const format = outputFormat(flags.output);
    const namespace = flags['all-namespaces'] ? undefined : (flags.namespace ?? 'default');
    const scope: Scope = { namespace, where: namespace ? ` in namespace ${namespace}` : '' };
    const isInstances = INSTANCE_WORDS.includes(kindArg.toLowerCase());
    const kind = isInstances ? undefined : resolveKind(kindArg);
    if (!isInstances && !kind) throw new UsageError(`unknown kind ${JSON.stringify(kindArg)} (known: ${RESOURCE_KINDS.join(', ')}, instances)`);
    await runCommand(() =>
      withStore(flags, (store) => (kind ? getResources(store, kind, name, scope, format) : getInstances(store, name, scope, format))),
    );
  },
};
