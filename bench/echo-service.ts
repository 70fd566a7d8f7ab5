/**
 * The bench's echo service. Messages are raw bytes (identity serializers): the bench measures the
 * transport and the sidecar, not protobuf, and the sidecar never decodes bodies anyway.
 * Type-only grpc-js imports keep this module free for the load generator to import.
 */
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

export const ECHO_SERVICE = 'remora.bench.v1.Echo';
export const UNARY_PATH = `/${ECHO_SERVICE}/Unary`;
export const SERVER_STREAM_PATH = `/${ECHO_SERVICE}/ServerStream`;

/** Request metadata key for ServerStream: how many copies of the request to send back. */
export const STREAM_COUNT_HEADER = 'x-bench-count';
export const STREAM_COUNT_DEFAULT = 10;
export const STREAM_COUNT_MAX = 1_000_000;

const identity = (b: Buffer): Buffer => b;

function method(path: string, responseStream: boolean): MethodDefinition<Buffer, Buffer> {
  return {
    path,
    requestStream: false,
    responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

export const echoServiceDefinition: ServiceDefinition = {
  Unary: method(UNARY_PATH, false),
  ServerStream: method(SERVER_STREAM_PATH, true),
};
