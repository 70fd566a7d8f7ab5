/**
 * `remora ca`: look at and rotate the mesh CA kept in etcd.
 *
 *   remora ca status                   roots in the trust bundle, which one signs
 *   remora ca bundle                   the roots as PEM (for sidecars' --control-plane-ca-file)
 *   remora ca add-root                 a new root, trusted but not yet signing
 *   remora ca use-root FINGERPRINT     sign with it; sidecars renew their certificates at once
 *   remora ca remove-root FINGERPRINT  stop trusting a root that no longer signs
 *
 * Replacing a root with no outage is those three steps in order, letting each reach every sidecar
 * (`remora status` shows the config version each one applied) before the next.
 */
import { readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from './flags.js';
import { CommandError, runCommand, STORE_FLAGS, withStore } from './store-session.js';
import { CA_STATE_PATH, fingerprintOf, newRoot, parseCaState, updateCaState, type CaStateDoc } from '../control-plane/ca/ca-state.js';
import { outputFormat, structured, table } from './table.js';

const FLAGS = {
  'ca-key-passphrase-file': { type: 'string', help: 'the passphrase file the control planes use (add-root encrypts the new key with it)' },
  output: { type: 'string', help: 'status output: table (default), json or yaml', short: 'o' },
  ...STORE_FLAGS,
} as const satisfies FlagDefs;

const SUMMARY = 'Show or rotate the mesh CA in etcd: status, bundle (PEM roots, for --control-plane-ca-file), add-root, use-root FINGERPRINT, remove-root FINGERPRINT.';

function describeRoots(doc: CaStateDoc): { fingerprint: string; subject: string; notAfter: string; signing: boolean; hasKey: boolean }[] {
  return doc.roots.map((r) => {
    const x = new X509Certificate(r.certPem);
    const fingerprint = x.fingerprint256;
    return { fingerprint, subject: x.subject.replace(/\n/g, ', '), notAfter: new Date(x.validTo).toISOString(), signing: fingerprint === doc.signing, hasKey: r.keyPem !== undefined };
  });
}

/** A root named by its full fingerprint or an unambiguous prefix of it (colons optional). */
function findRoot(doc: CaStateDoc, wanted: string): string {
  const norm = (s: string) => s.replace(/:/g, '').toUpperCase();
  const matches = doc.roots.map((r) => fingerprintOf(r.certPem)).filter((f) => norm(f).startsWith(norm(wanted)));
  if (matches.length === 0) throw new CommandError(`no root with fingerprint ${wanted} (see remora ca status)`);
  if (matches.length > 1) throw new CommandError(`fingerprint ${wanted} matches ${matches.length} roots; give more of it`);
  return matches[0]!;
}

export const caCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const { flags, positional, help } = parseCommand(FLAGS, argv);
    if (help || positional.length === 0) {
      process.stdout.write(usage('ca', SUMMARY, FLAGS) + '\n');
      if (!help) process.exitCode = 2;
      return;
    }
    const [action, arg, ...rest] = positional;
    if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])}`);
    const format = outputFormat(flags.output);
    let passphrase: string | undefined;
    if (action === 'add-root') {
      if (!flags['ca-key-passphrase-file']) throw new UsageError('add-root needs --ca-key-passphrase-file (the control planes\' passphrase) to encrypt the new key');
      passphrase = (await readFile(flags['ca-key-passphrase-file'], 'utf8')).replace(/\r?\n$/, '');
    }
    if ((action === 'use-root' || action === 'remove-root') && !arg) throw new UsageError(`${action} needs the root's FINGERPRINT (see remora ca status)`);
    if (action !== 'status' && action !== 'bundle' && action !== 'add-root' && action !== 'use-root' && action !== 'remove-root') {
      throw new UsageError(`unknown ca action ${JSON.stringify(action)} (status, bundle, add-root, use-root, remove-root)`);
    }
    // Key generation and etcd together: allow more than a plain read.
    const timeout = Math.max(flags['timeout-ms'], action === 'add-root' ? 15_000 : 0);
    await runCommand(() =>
      withStore({ ...flags, 'timeout-ms': timeout }, async (store) => {
        let doc: CaStateDoc;
        if (action === 'status' || action === 'bundle') {
          const current = await store.readDocument(CA_STATE_PATH);
          if (!current) throw new CommandError('there is no mesh CA in etcd (a control plane with --ca etcd creates it on first start)');
          doc = parseCaState(current.value);
          if (action === 'bundle') {
            process.stdout.write(doc.roots.map((r) => r.certPem.trim()).join('\n') + '\n');
            return;
          }
        } else if (action === 'add-root') {
          const root = await newRoot(passphrase!);
          doc = await updateCaState(store, (d) => ({ ...d, roots: [...d.roots, root] }));
          process.stderr.write(`added root ${fingerprintOf(root.certPem)} (trusted, not signing yet). Once every sidecar has the new bundle: remora ca use-root ${fingerprintOf(root.certPem)}\n`);
        } else if (action === 'use-root') {
          doc = await updateCaState(store, (d) => {
            const fp = findRoot(d, arg!);
            if (!d.roots.find((r) => fingerprintOf(r.certPem) === fp)?.keyPem) throw new CommandError(`root ${fp} has no key in etcd; it can be trusted but cannot sign`);
            return { ...d, signing: fp };
          });
          process.stderr.write(`signing with ${doc.signing}; sidecars are renewing their certificates. Then remove the old root with remora ca remove-root FINGERPRINT\n`);
        } else {
          doc = await updateCaState(store, (d) => {
            const fp = findRoot(d, arg!);
            if (fp === d.signing) throw new CommandError(`root ${fp} signs now: use-root another root first`);
            return { ...d, roots: d.roots.filter((r) => fingerprintOf(r.certPem) !== fp) };
          });
          process.stderr.write(`removed; sidecars no longer trust certificates from that root\n`);
        }
        const roots = describeRoots(doc);
        if (format !== 'table') {
          process.stdout.write(structured(format, roots, false));
          return;
        }
        process.stdout.write(table(['FINGERPRINT', 'SIGNING', 'EXPIRES', 'SUBJECT'], roots.map((r) => [r.fingerprint, r.signing ? 'yes' : '-', r.notAfter.slice(0, 10), r.subject])));
      }),
    );
  },
};
