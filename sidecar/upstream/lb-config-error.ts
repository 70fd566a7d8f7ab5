/** A load-balancing config the balancer registry cannot turn into a balancer. */
export class BalancerConfigError extends Error {
  readonly code = 'REMORA_LB_CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'BalancerConfigError';
  }
}
