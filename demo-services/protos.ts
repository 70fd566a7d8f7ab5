/**
 * The demo's .proto sources, loaded at run time for server reflection. The compiled services use
 * ts-proto's generated code; reflection needs descriptors, which only the .proto files carry.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

/** dist/demo-services/protos.js → <repo>/protos; the sources ship next to the build, not inside it. */
export const protosDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../protos');

export const demoProtoFiles = [
  'remora/demo/v1/catalog.proto',
  'remora/demo/v1/inventory.proto',
  'remora/demo/v1/orders.proto',
] as const;

export const HEALTH_SERVICE = 'grpc.health.v1.Health';

/**
 * The demo package plus grpc.health.v1, so `grpcurl list` shows health too.
 * keepCase: descriptors must carry the proto field names (price_cents), not camelCase.
 */
export function loadDemoPackage(): protoLoader.PackageDefinition {
  // health.proto lives at <root>/health/v1/health.proto and imports nothing, so its root is two levels up.
  const healthRoot = path.resolve(path.dirname(healthProtoPath), '../..');
  return protoLoader.loadSync([...demoProtoFiles, path.relative(healthRoot, healthProtoPath)], {
    includeDirs: [protosDir, healthRoot],
    keepCase: true,
  });
}
