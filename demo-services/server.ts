/**
 * One demo process: the chosen services behind the failure knobs, plus grpc.health.v1 and server
 * reflection, on one port. Draining flips health to NOT_SERVING before the server stops, the order a
 * mesh's health checker needs to move traffic away without errors.
 */
import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import { FaultInjector, withKnobs, type Knobs } from './knobs.js';
import { HEALTH_SERVICE, loadDemoPackage } from './protos.js';
import { createService, type ServiceContext, type ServiceName } from './services.js';

export interface DemoServerOptions {
  readonly names: readonly ServiceName[];
  readonly address: string;
  /** 0 lets the kernel choose; the bound port is on the result. */
  readonly port: number;
  readonly knobs: Knobs;
  readonly context: ServiceContext;
}

export interface DemoServer {
  readonly port: number;
  readonly fullNames: readonly string[];
  /**
   * Reports NOT_SERVING, keeps serving for delayMs so health checkers notice, then shuts down,
   * forcing it after timeoutMs (long-lived streams such as health Watch would otherwise hold it).
   */
  drain(delayMs: number, timeoutMs: number): Promise<void>;
  /** Immediate stop: cancels every call in flight. */
  forceStop(): void;
}

export async function startDemoServer(opts: DemoServerOptions): Promise<DemoServer> {
  const log = opts.context.log;
  const services = opts.names.map((name) => createService(name, opts.context));
  const fullNames = services.map((s) => s.fullName);
  const injector = new FaultInjector(opts.knobs);
  const server = new grpc.Server();

  for (const s of services) server.addService(s.definition, withKnobs(s.definition, s.implementation, injector));

  // "" is the whole server: what a checker asks when it does not name a service.
  const health = new HealthImplementation(Object.fromEntries(['', ...fullNames].map((n) => [n, 'SERVING' as const])));
  health.addToServer(server);
  new ReflectionService(loadDemoPackage(), { services: [...fullNames, HEALTH_SERVICE] }).addToServer(server);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${opts.address}:${opts.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
  log.info({ port, address: opts.address, services: fullNames, instance: opts.knobs.instance }, 'listening');

  let closed = false;
  const closeServices = (): void => {
    if (closed) return;
    closed = true;
    for (const s of services) s.close();
  };

  return {
    port,
    fullNames,
    async drain(delayMs, timeoutMs) {
      for (const n of ['', ...fullNames]) health.setStatus(n, 'NOT_SERVING');
      log.info({ delayMs, timeoutMs }, 'draining');
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          log.warn({ timeoutMs }, 'calls still open after shutdown timeout; cancelling them');
          server.forceShutdown();
          resolve();
        }, timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      closeServices();
    },
    forceStop() {
      server.forceShutdown();
      closeServices();
    },
  };
}
