/** Weighted round robin: each endpoint appears `weight` times in a ring (weights are small integers). */
import type { Balancer } from './balancer.js';
import type { Endpoint } from './endpoint.js';

const MAX_RING = 10_000;

export class RoundRobinBalancer implements Balancer {
  private ring: Endpoint[] = [];
  private next = 0;

  update(endpoints: readonly Endpoint[]): void {
    const total = endpoints.reduce((n, e) => n + e.weight, 0);
    const scale = total > MAX_RING ? MAX_RING / total : 1;
    const ring: Endpoint[] = [];
    // Interleave by weight so a heavy endpoint's turns are spread out, not bunched.
    const credit = endpoints.map((e) => Math.max(1, Math.round(e.weight * scale)));
    for (let left = credit.reduce((a, b) => a + b, 0); left > 0; ) {
      for (let i = 0; i < endpoints.length; i++) {
        if (credit[i]! > 0) {
          ring.push(endpoints[i]!);
          credit[i]!--;
          left--;
        }
      }
    }
    this.ring = ring;
    this.next = ring.length > 0 ? Math.floor(Math.random() * ring.length) : 0;
  }

  pick(now: number): Endpoint | undefined {
    const ring = this.ring;
    const n = ring.length;
    for (let tries = 0; tries < n; tries++) {
      const e = ring[this.next]!;
      this.next = this.next + 1 === n ? 0 : this.next + 1;
      if (!e.inBackoff(now)) return e;
    }
    return undefined;
  }
}
