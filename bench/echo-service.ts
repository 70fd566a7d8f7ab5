/**
 * The bench's echo service. Messages are raw bytes (identity serializers): the bench measures the
 * transport and the sidecar, not protobuf, and the sidecar never decodes bodies anyway.
 * Type-only grpc-js imports keep this module free for the load generator to import.
 */
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

export const ECHO_SERVICE = 'remora.bench.v1.Echo';
export const UNARY_PATH = `/${ECHO_SERVICE}/Unary`;
export const SERVER_STREAM_PATH = `/${ECHO_SERVICE}/ServerStream`;
/** Every request message is answered with one identical message on the same call (ping-pong). */
export const BIDI_PATH = `/${ECHO_SERVICE}/Bidi`;

/** Request metadata key for ServerStream: how many copies of the request to send back. */
export const STREAM_COUNT_HEADER = 'x-bench-count';
export const STREAM_COUNT_DEFAULT = 10;
export const STREAM_COUNT_MAX = 1_000_000;

/** What one measured call does; each maps to one echo method. */
export const WORKLOADS = ['unary', 'server-stream', 'bidi'] as const;
export type Workload = (typeof WORKLOADS)[number];

export const WORKLOAD_PATH: Readonly<Record<Workload, string>> = {
  unary: UNARY_PATH,
  'server-stream': SERVER_STREAM_PATH,
  bidi: BIDI_PATH,
};

const identity = (b: Buffer): Buffer => b;

function method(path: string, requestStream: boolean, responseStream: boolean): MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

export const echoServiceDefinition: ServiceDefinition = {
  Unary: method(UNARY_PATH, false, false),
  ServerStream: method(SERVER_STREAM_PATH, false, true),
  Bidi: method(BIDI_PATH, true, true),
};
