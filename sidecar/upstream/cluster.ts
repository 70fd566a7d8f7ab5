/**
 * A cluster owns its endpoints (and their session pools) and its balancer. Config updates keep the
 * endpoints whose address is unchanged, so live sessions survive a push; removed endpoints drain.
 */
import type { ClusterConfig } from '../config/model.js';
import type { Balancer } from './balancer.js';
import { RoundRobinBalancer } from './balancer-round-robin.js';
import { Endpoint } from './endpoint.js';

export class Cluster {
  readonly name: string;
  private endpoints = new Map<string, Endpoint>();
  private readonly balancer: Balancer = new RoundRobinBalancer();
  private cfg: ClusterConfig;

  constructor(cfg: ClusterConfig) {
    this.name = cfg.name;
    this.cfg = cfg;
    this.update(cfg);
  }

  update(cfg: ClusterConfig): void {
    this.cfg = cfg;
    const next = new Map<string, Endpoint>();
    for (const e of cfg.endpoints) {
      const fresh = new Endpoint(e, { connectTimeoutMs: cfg.connectTimeoutMs, maxSessionAgeMs: cfg.maxSessionAgeMs });
      const old = this.endpoints.get(fresh.key);
      // Same address, same settings: keep the old object and its warm sessions.
      if (old && old.weight === fresh.weight) next.set(old.key, old);
      else next.set(fresh.key, fresh);
    }
    for (const [key, old] of this.endpoints) if (next.get(key) !== old) old.close();
    this.endpoints = next;
    this.balancer.update([...next.values()]);
  }

  pick(now: number): Endpoint | undefined {
    return this.balancer.pick(now);
  }

  /** Why pick() returned nothing, for the caller's error message. */
  unavailableReason(now: number): string {
    if (this.endpoints.size === 0) return `cluster ${this.name} has no endpoints`;
    const first = this.endpoints.values().next().value as Endpoint;
    return `no endpoint of cluster ${this.name} is reachable: ${first.backoffReason(now)}`;
  }

  endpointList(): Endpoint[] {
    return [...this.endpoints.values()];
  }

  get config(): ClusterConfig {
    return this.cfg;
  }

  close(): void {
    for (const e of this.endpoints.values()) e.close();
  }

  destroy(): void {
    for (const e of this.endpoints.values()) e.destroy();
  }
}
