/**
 * node 20's http2 client wraps every request() in `AsyncResource.prototype.bind`, which builds two
 * `deprecate()` wrappers and an `Object.defineProperties` call per bound function (for the
 * deprecated DEP0172 `asyncResource` accessor). In the sidecar's profile that was about a quarter
 * of `request()`; replacing it cut the proxy's CPU per unary call by roughly 15-20% (numbers in
 * docs/performance.md).
 *
 * The replacement keeps bind's behaviour (the bound function runs `fn` inside the resource's
 * async scope, with `this` forwarded when no thisArg is given) and drops only the deprecated
 * accessor and the `length` override. It is installed in the sidecar process only, and can be
 * turned off with --fast-async-bind=false.
 */
import { AsyncResource } from 'node:async_hooks';

type AnyFn = (...args: unknown[]) => unknown;

let installed = false;

export function installFastAsyncBind(): void {
  if (installed) return;
  installed = true;
  const proto = AsyncResource.prototype as unknown as { bind: (fn: AnyFn, thisArg?: unknown) => AnyFn };
  proto.bind = function bind(this: AsyncResource, fn: AnyFn, thisArg?: unknown): AnyFn {
    if (typeof fn !== 'function') throw new TypeError('The "fn" argument must be of type function');
    const resource = this;
    if (thisArg !== undefined) return resource.runInAsyncScope.bind(resource, fn, thisArg) as AnyFn;
    return function bound(this: unknown, ...args: unknown[]): unknown {
      return resource.runInAsyncScope(fn, this, ...args);
    };
  };
}
