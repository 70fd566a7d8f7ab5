/**
 * Learns a server's method idempotency levels through gRPC server reflection, over an HTTP/2
 * session the sidecar already holds to the endpoint (no second connection, no grpc-js channel).
 *
 * One ServerReflectionInfo stream: list_services, then file_containing_symbol for every service,
 * pipelined. Only the files defining services matter: idempotency_level is a plain MethodOptions
 * field, so no dependency has to be fetched to read it; dependencies the server sends along are
 * kept in `files` for whoever wants them. v1 first, v1alpha when v1 is UNIMPLEMENTED (older servers).
 *
 * Never throws and never leaves a stream open: every failure is an empty result with a reason.
 */
import http2, { type IncomingHttpHeaders } from 'node:http2';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { Status, decodeGrpcMessage } from '../grpc/status.js';
import { Deframer, frame } from './grpc-framing.js';
import { levelsFromFiles, type LevelsResult } from './levels.js';
import { decodeResponse, encodeFileContainingSymbol, encodeListServices } from './reflection-wire.js';
import type { H2Stream } from '../h2/stream.js';
import type { H2Session } from '../h2/session.js';

export type ReflectionApi = 'v1' | 'v1alpha';

export interface ReflectionResult extends LevelsResult {
  /** Every FileDescriptorProto received, deduplicated by file name. */
  readonly files: readonly FileDescriptorProto[];
  /** The reflection API that answered; absent when none did. */
  readonly api?: ReflectionApi;
}

const PATHS: Readonly<Record<ReflectionApi, string>> = {
  v1: '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
  v1alpha: '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
};

/** Descriptor responses are a few KB; this only stops a broken peer from filling memory. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** After we have every answer, how long the server may take to close the stream before we cancel it. */
const CLOSE_GRACE_MS = 1000;

const STATUS_NAMES = new Map<number, string>(Object.entries(Status).map(([name, code]) => [code, name]));

function statusName(code: number): string {
  return STATUS_NAMES.get(code) ?? `status ${code}`;
}

type Attempt =
  | { readonly ok: true; readonly services: string[]; readonly files: Uint8Array[]; readonly problems: string[] }
  | { readonly ok: false; readonly unimplemented: boolean; readonly reason: string };

export async function fetchDescriptorsByReflection(
  session: H2Session,
  authority: string,
  timeoutMs: number,
): Promise<ReflectionResult> {
  const deadline = Date.now() + timeoutMs;
  let api: ReflectionApi = 'v1';
  let attempt = await reflect(session, PATHS.v1, authority, deadline, timeoutMs);
  if (!attempt.ok && attempt.unimplemented) {
    api = 'v1alpha';
    attempt = await reflect(session, PATHS.v1alpha, authority, deadline, timeoutMs);
    if (!attempt.ok && attempt.unimplemented) {
      return empty('the server does not serve reflection (v1 and v1alpha answered UNIMPLEMENTED)');
    }
  }
  if (!attempt.ok) return empty(`reflection ${api}: ${attempt.reason}`);
  return toResult(attempt, api);
}

function empty(reason: string): ReflectionResult {
  return { levels: new Map(), kinds: new Map(), services: [], files: [], reason };
}

function toResult(attempt: Extract<Attempt, { ok: true }>, api: ReflectionApi): ReflectionResult {
  const problems = [...attempt.problems];
  const byName = new Map<string, FileDescriptorProto>();
  for (const bytes of attempt.files) {
    try {
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      if (!byName.has(file.name)) byName.set(file.name, file);
    } catch (err) {
      problems.push(`undecodable FileDescriptorProto: ${errorText(err)}`);
    }
  }
  const files = [...byName.values()];
  // Only what this endpoint serves: a file (or proto-loader's merged per-package file) may also
  // define services the server does not list, and a source should speak only for itself.
  const listed = new Set(attempt.services);
  const { levels, kinds, services: defined } = levelsFromFiles(files);
  for (const path of levels.keys()) {
    if (!listed.has(path.slice(1, path.lastIndexOf('/')))) {
      levels.delete(path);
      kinds.delete(path);
    }
  }
  for (const name of attempt.services) if (!defined.includes(name)) problems.push(`no descriptor defines ${name}`);
  if (attempt.services.length === 0) problems.push('the server lists no services');
  const reason = problems.length > 0 ? `reflection ${api}: ${problems.join('; ')}` : undefined;
  // services: what the server listed, even those whose descriptors failed (the reason says which).
  const result = { levels, kinds, services: attempt.services, files, api };
  return reason === undefined ? result : { ...result, reason };
}

/** One ServerReflectionInfo stream on `path`. */
function reflect(
  session: H2Session,
  path: string,
  authority: string,
  deadline: number,
  timeoutMs: number,
): Promise<Attempt> {
  const remaining = deadline - Date.now();
  if (remaining <= 0) return Promise.resolve({ ok: false, unimplemented: false, reason: `no answer within ${timeoutMs} ms` });

  return new Promise<Attempt>((resolve) => {
    let stream: H2Stream;
    try {
      stream = session.request({
        ':method': 'POST',
        ':path': path,
        ':authority': authority,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-accept-encoding': 'identity',
        'grpc-timeout': `${Math.min(Math.ceil(remaining), 99_999_999)}m`,
      });
    } catch (err) {
      // A closed or destroyed session, a GOAWAY already received.
      resolve({ ok: false, unimplemented: false, reason: `cannot open a stream: ${errorText(err)}` });
      return;
    }

    let settled = false;
    let services: string[] | undefined;
    let answered = 0;
    const files: Uint8Array[] = [];
    const problems: string[] = [];
    const deframer = new Deframer(MAX_MESSAGE_BYTES);

    const finish = (result: Attempt): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!stream.closed) {
        if (result.ok) {
          // Our requests are all written and half-closed; give the server a moment to end cleanly.
          setTimeout(() => { if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL); }, CLOSE_GRACE_MS).unref();
        } else {
          stream.close(http2.constants.NGHTTP2_CANCEL);
        }
      }
      resolve(result);
    };
    const fail = (reason: string, unimplemented = false): void => finish({ ok: false, unimplemented, reason });
    const done = (): void => finish({ ok: true, services: services ?? [], files, problems });

    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), remaining);

    const onStatus = (headers: IncomingHttpHeaders): void => {
      const code = Number(headers['grpc-status']);
      const raw = headers['grpc-message'];
      const message = typeof raw === 'string' && raw !== '' ? `: ${decodeGrpcMessage(raw)}` : '';
      if (code === Status.OK) {
        if (services === undefined || answered < services.length) fail(`the stream ended after ${answered} answers`);
        else done();
      } else {
        fail(`${statusName(code)}${message}`, code === Status.UNIMPLEMENTED);
      }
    };

    const onMessage = (bytes: Uint8Array): void => {
      const res = decodeResponse(bytes);
      if (services === undefined) {
        if (res.kind === 'error') return fail(`list_services: ${statusName(res.code)} ${res.message}`);
        if (res.kind !== 'services') return fail(`list_services: unexpected answer (${res.kind})`);
        services = res.names.filter((n) => n !== '');
        for (const name of services) stream.write(frame(encodeFileContainingSymbol(name)));
        stream.end();
        if (services.length === 0) done();
        return;
      }
      answered++;
      if (res.kind === 'files') files.push(...res.files);
      else if (res.kind === 'error') problems.push(`${res.symbol ?? 'a service'}: ${statusName(res.code)} ${res.message}`);
      else problems.push(`unexpected answer (${res.kind}) to file_containing_symbol`);
      if (answered >= services.length) done();
    };

    stream.on('response', (headers) => {
      if (headers[':status'] !== 200) return fail(`HTTP status ${headers[':status']}`);
      // Trailers-only: the whole answer is a status, e.g. UNIMPLEMENTED from a server without reflection.
      if (headers['grpc-status'] !== undefined) onStatus(headers);
    });
    stream.on('data', (chunk: Buffer) => {
      if (settled) return;
      try {
        for (const message of deframer.push(chunk)) {
          onMessage(message);
          if (settled) return;
        }
      } catch (err) {
        fail(`malformed answer: ${errorText(err)}`);
      }
    });
    stream.on('trailers', (trailers) => onStatus(trailers));
    stream.on('error', (err) => fail(`stream error: ${errorText(err)}`));
    stream.on('close', () => fail(`stream closed (HTTP/2 code ${stream.rstCode}) after ${answered} answers`));

    stream.write(frame(encodeListServices()));
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
