/**
 * The load-balancer contract, after grpc-js: a balancer is told the endpoint set when it changes
 * and picks one endpoint per request (never per connection: HTTP/2 multiplexes, so per-connection
 * balancing would pin traffic).
 */
import type { Endpoint } from './endpoint.js';

export interface Balancer {
  /** Called with the full new set whenever endpoints are added, removed or change state. */
  update(endpoints: readonly Endpoint[]): void;
  /** An endpoint for one call, or undefined when none can take it now. */
  pick(now: number): Endpoint | undefined;
}
