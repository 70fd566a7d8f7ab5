/**
 * Standalone echo server for the bench: `node dist/bench/echo-server.js --port N [--host H]`.
 * Unary echoes the request, ServerStream sends it back `x-bench-count` times, Bidi echoes every
 * message it reads (ping-pong).
 * A real grpc-js server, so the `direct` scenario measures what an app would actually see.
 * Prints one "listening" line once bound; exits cleanly on SIGTERM/SIGINT.
 */
import * as grpc from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import {
  echoServiceDefinition,
  STREAM_COUNT_DEFAULT,
  STREAM_COUNT_HEADER,
  STREAM_COUNT_MAX,
} from './echo-service.js';

function streamCount(call: grpc.ServerWritableStream<Buffer, Buffer>): number {
  const raw = call.metadata.get(STREAM_COUNT_HEADER)[0];
  const n = raw === undefined ? STREAM_COUNT_DEFAULT : Number(raw.toString());
  return Number.isInteger(n) && n >= 0 ? Math.min(n, STREAM_COUNT_MAX) : STREAM_COUNT_DEFAULT;
}

async function serverStream(call: grpc.ServerWritableStream<Buffer, Buffer>): Promise<void> {
  const n = streamCount(call);
  let cancelled = false;
  call.once('cancelled', () => { cancelled = true; });
  for (let i = 0; i < n && !cancelled; i++) {
    // Respect backpressure so a slow reader (or a sidecar in between) bounds our memory.
    if (!call.write(call.request)) await new Promise<void>((resolve) => call.once('drain', resolve));
  }
  if (!cancelled) call.end();
}

/** Echoes each message back on the same call; stops reading while the answer cannot be written. */
function bidi(call: grpc.ServerDuplexStream<Buffer, Buffer>): void {
  call.on('data', (msg: Buffer) => {
    if (!call.write(msg)) {
      call.pause();
      call.once('drain', () => call.resume());
    }
  });
  call.once('end', () => call.end());
  // A cancelled or broken call ends here; nothing else to release.
  call.on('error', () => {});
}

function createEchoServer(): grpc.Server {
  // Unlimited sizes: large-payload runs must measure the transport, not hit grpc-js's 4 MiB default.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
  server.addService(echoServiceDefinition, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request),
    ServerStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      serverStream(call).catch((err: unknown) => call.destroy(err instanceof Error ? err : new Error(String(err))));
    },
    Bidi: bidi,
  });
  return server;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port <= 0) throw new Error('echo-server: --port N is required');
  const server = createEchoServer();
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${values.host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  process.stdout.write(`echo-server listening on ${values.host}:${bound}\n`);
  const stop = (): void => {
    const force = setTimeout(() => server.forceShutdown(), 2000);
    force.unref();
    server.tryShutdown(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`echo-server: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
