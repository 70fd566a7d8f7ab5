/** The security settings a sidecar is pushed: mode resolution, validation, and NACKs that name the resource. */
import test from 'ava';
import { resolveMtlsMode } from '../control-plane/resources/mtls-mode.js';
import { translateResources } from '../sidecar/discovery/translate.js';
import { inboundPolicyFor } from '../sidecar/security/inbound-policy.js';

test('the most specific MeshConfig wins: service, then namespace, then mesh; PERMISSIVE by default', (t) => {
  const rules = [
    { namespace: 'remora-system', mode: 'STRICT' as const },
    { namespace: 'legacy', mode: 'DISABLED' as const },
    { namespace: 'legacy', service: 'billing', mode: 'PERMISSIVE' as const },
  ];
  t.is(resolveMtlsMode(rules, 'shop', 'orders'), 'STRICT');
  t.is(resolveMtlsMode(rules, 'legacy', 'ledger'), 'DISABLED');
  t.is(resolveMtlsMode(rules, 'legacy', 'billing'), 'PERMISSIVE');
  t.is(resolveMtlsMode([], 'shop', 'orders'), 'PERMISSIVE');
  // A service-level rule in another namespace does not apply.
  t.is(resolveMtlsMode([{ namespace: 'other', service: 'orders', mode: 'DISABLED' }], 'shop', 'orders'), 'PERMISSIVE');
});

test('a pushed security resource is validated; problems NACK it by name and nothing is applied', (t) => {
  const good = translateResources('7', [{ kind: 'security', name: 'mesh', json: JSON.stringify({
    trustDomain: 'example.org', trustBundle: [], signer: '', mtls: [{ namespace: 'shop', mode: 'STRICT' }],
    authorization: [{ name: 'shop/p', namespace: 'shop', service: 'orders', action: 'DENY', rules: [{ from: ['ns/batch/*'], methods: [] }] }],
  }) }]);
  t.deepEqual(good.errors, []);
  const policy = inboundPolicyFor(good.config!.security, 'shop', 'orders');
  t.is(policy.mode, 'STRICT');
  t.false(policy.authorizer.check('spiffe://example.org/ns/batch/sa/job', '/shop.Orders/Place').allowed);
  t.true(policy.authorizer.check('spiffe://example.org/ns/web/sa/ui', '/shop.Orders/Place').allowed);
  t.is(inboundPolicyFor(good.config!.security, 'shop', 'catalog').authorizer.policyCount, 0, 'policies for other services are not compiled in');

  const bad = translateResources('8', [{ kind: 'security', name: 'mesh', json: JSON.stringify({
    trustDomain: 'Not A Domain', trustBundle: ['not pem'], mtls: [{ namespace: 'shop', mode: 'strict' }],
    authorization: [{ name: 'shop/p', namespace: 'shop', service: 'orders', action: 'ALLOW', rules: [{ from: ['everyone'] }] }],
  }) }]);
  t.is(bad.config, undefined);
  t.true(bad.errors.every((e) => e.resource === 'security/mesh'));
  const messages = bad.errors.map((e) => e.message).join('\n');
  t.regex(messages, /trustDomain: "Not A Domain" is not valid/);
  t.regex(messages, /trustBundle\[0\]/);
  t.regex(messages, /mtls\[0\]\.mode/);
  t.regex(messages, /authorization\[0\]\.rules\[0\]\.from\[0\]/);
});

test('a static endpoint may name the identity to require; a malformed one is refused with its path', (t) => {
  const ok = translateResources('1', [{ kind: 'cluster', name: 'c', json: JSON.stringify({ name: 'c', endpoints: [{ address: '10.0.0.1', port: 15006, identity: 'spiffe://cluster.local/ns/a/sa/b' }] }) }]);
  t.is(ok.config?.clusters[0]?.endpoints[0]?.identity, 'spiffe://cluster.local/ns/a/sa/b');
  const bad = translateResources('2', [{ kind: 'cluster', name: 'c', json: JSON.stringify({ name: 'c', endpoints: [{ address: '10.0.0.1', port: 15006, identity: 'https://x' }] }) }]);
  t.deepEqual(bad.errors.map((e) => e.resource), ['cluster/c']);
  t.regex(bad.errors[0]!.message, /endpoints\[0\]\.identity/);
});
