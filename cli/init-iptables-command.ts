/**
 * `remora init-iptables`: what the injected init container runs (with NET_ADMIN, in the pod's
 * network namespace) so the app's TCP goes through the sidecar. `--dry-run` prints the rules.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { parseCommand, usage, UsageError, type Command, type FlagDefs } from './flags.js';
import { jumps, parseCidrs, parsePorts, restoreInput, type InterceptionOptions } from '../sidecar/interception/iptables-rules.js';

const run = promisify(execFile);

const FLAGS = {
  'proxy-uid': { type: 'int', help: 'uid the sidecar runs as (its traffic is never redirected)', default: 1337 },
  'proxy-gid': { type: 'int', help: 'gid the sidecar runs as (default: the uid)' },
  'outbound-port': { type: 'int', help: 'the sidecar\'s outbound listener', default: 15001 },
  'inbound-port': { type: 'int', help: 'the sidecar\'s inbound listener', default: 15006 },
  'exclude-inbound-ports': { type: 'list', help: 'inbound ports not redirected (the stats port 15020 always is not)', default: '15020,15021' },
  'exclude-outbound-ports': { type: 'list', help: 'outbound destination ports not redirected' },
  'exclude-outbound-ips': { type: 'list', help: 'outbound destination IPv4 addresses or CIDRs not redirected' },
  inbound: { type: 'bool', help: 'redirect inbound traffic to the inbound listener', default: true },
  'dry-run': { type: 'bool', help: 'print the rules instead of installing them', default: false },
  iptables: { type: 'string', help: 'the iptables binary (iptables-restore is found beside it)', default: 'iptables' },
} as const satisfies FlagDefs;

const SUMMARY = 'Install the iptables rules that send a pod\'s TCP through its sidecar (the injected init container runs this).';

function restore(binary: string, input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(`${binary}-restore`, ['--noflush'], { stdio: ['pipe', 'inherit', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${binary}-restore exited with ${code}: ${err.trim()}`))));
    child.stdin.end(input);
  });
}

export const initIptablesCommand: Command = {
  summary: SUMMARY,
  async run(argv) {
    const { flags, help } = parseCommand(FLAGS, argv);
    if (help) {
      process.stdout.write(usage('init-iptables', SUMMARY, FLAGS) + '\n');
      return;
    }
    let opts: InterceptionOptions;
    try {
      opts = {
        proxyUid: flags['proxy-uid'],
        ...(flags['proxy-gid'] !== undefined ? { proxyGid: flags['proxy-gid'] } : {}),
        outboundPort: parsePorts('outbound-port', [String(flags['outbound-port'])])[0]!,
        inboundPort: parsePorts('inbound-port', [String(flags['inbound-port'])])[0]!,
        excludeInboundPorts: parsePorts('exclude-inbound-ports', flags['exclude-inbound-ports']),
        excludeOutboundPorts: parsePorts('exclude-outbound-ports', flags['exclude-outbound-ports']),
        excludeOutboundCidrs: parseCidrs('exclude-outbound-ips', flags['exclude-outbound-ips']),
        inbound: flags.inbound,
      };
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const input = restoreInput(opts);
    if (flags['dry-run']) {
      process.stdout.write(input);
      for (const [chain, rule] of jumps(opts)) process.stdout.write(`# then, if missing: ${flags.iptables} -t nat -A ${chain} ${rule}\n`);
      return;
    }
    await restore(flags.iptables, input);
    for (const [chain, rule] of jumps(opts)) {
      const args = rule.split(' ');
      const present = await run(flags.iptables, ['-t', 'nat', '-C', chain, ...args]).then(() => true, () => false);
      if (!present) await run(flags.iptables, ['-t', 'nat', '-A', chain, ...args]);
    }
    process.stdout.write(`remora init-iptables: outbound TCP → :${opts.outboundPort}${opts.inbound ? `, inbound TCP → :${opts.inboundPort}` : ''} (uid ${opts.proxyUid} and loopback excluded)\n`);
  },
};
