/** A `remora control-plane` child for one measured run: loopback, port 0, its own etcd key prefix. */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRemora, type Proc } from '../../lib/processes.js';

export interface BenchControlPlane {
  readonly proc: Proc;
  readonly address: string;
  readonly httpPort: number;
}

export interface ControlPlaneSettings {
  readonly etcdEndpoint: string;
  readonly prefix: string;
  readonly logLevel: string;
  /** Write a CPU profile named `name` into this directory when the control plane exits. */
  readonly cpuProf?: { readonly dir: string; readonly name: string };
}

const READY_TIMEOUT_MS = 15_000;

async function ready(httpPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/healthz/ready`);
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

export async function startBenchControlPlane(s: ControlPlaneSettings): Promise<BenchControlPlane> {
  const nodeArgs = s.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', s.cpuProf.dir, '--cpu-prof-name', s.cpuProf.name] : [];
  const proc = await startRemora(
    [
      'control-plane',
      '--etcd-endpoints', s.etcdEndpoint,
      '--prefix', s.prefix,
      '--address', '127.0.0.1',
      '--port', '0',
      '--http-port', '0',
      '--replica-id', 'bench-cp',
      // Config convergence is what this bench measures: no CA, so no certificate traffic in the numbers.
      '--ca', 'none',
    ],
    { portsFile: true, env: { REMORA_LOG_LEVEL: s.logLevel }, nodeArgs },
  );
  const grpcPort = proc.ports.grpc;
  const httpPort = proc.ports.http;
  if (!grpcPort || !httpPort) {
    await proc.stop('SIGKILL');
    throw new Error(`control plane reported ports ${JSON.stringify(proc.ports)}, expected grpc and http`);
  }
  // Listening is not ready: it has to load the mesh from etcd before the first snapshot exists.
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (!(await ready(httpPort))) {
    if (proc.exitCode !== null || performance.now() > deadline) {
      await proc.stop('SIGKILL');
      throw new Error(`control plane did not become ready within ${READY_TIMEOUT_MS} ms:\n${proc.output()}`);
    }
    await sleep(50);
  }
  return { proc, address: `127.0.0.1:${grpcPort}`, httpPort };
}
