/**
 * grpc.health.v1 on the wire, by hand. The two messages are one field each, so a dozen lines of
 * varint code replace a protobuf runtime on a path that runs for every endpoint every few seconds:
 *
 *   HealthCheckRequest  { string service = 1; }          tag 0x0a, varint length, UTF-8 bytes
 *   HealthCheckResponse { ServingStatus status = 1; }    tag 0x08, varint enum
 *
 * Each message travels in a gRPC frame: 1 byte compressed flag, 4 bytes big-endian length.
 */

export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

/** Indexed by the enum's number in health.proto. */
const SERVING_STATUS_BY_NUMBER: readonly ServingStatus[] = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

const FRAME_PREFIX_BYTES = 5;
const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

/** A complete gRPC frame carrying HealthCheckRequest{service}. */
export function encodeCheckRequest(serviceName: string): Buffer {
  const name = Buffer.from(serviceName, 'utf8');
  // proto3 leaves a field at its default off the wire, so "" (the whole server) is an empty message.
  const messageLength = name.length === 0 ? 0 : 1 + varintSize(name.length) + name.length;
  const frame = Buffer.alloc(FRAME_PREFIX_BYTES + messageLength);
  frame.writeUInt32BE(messageLength, 1);
  if (messageLength > 0) {
    frame[FRAME_PREFIX_BYTES] = 0x0a;
    name.copy(frame, writeVarint(frame, FRAME_PREFIX_BYTES + 1, name.length));
  }
  return frame;
}

export interface DecodeError {
  readonly error: string;
}

/** Reads a varint at `at`; returns [value, next offset] or undefined when truncated or overlong. */
function readVarint(buf: Buffer, at: number, end: number): [number, number] | undefined {
  let value = 0;
  let scale = 1;
  // 10 bytes is the longest legal varint; larger values lose precision in a double, which is fine
  // for the lengths and enum numbers read here.
  for (let i = 0; i < 10 && at < end; i++) {
    const b = buf[at++]!;
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return [value, at];
    scale *= 128;
  }
  return undefined;
}

/**
 * The serving status from a unary response body: exactly one uncompressed frame. Unknown fields
 * are skipped (a newer health.proto may add some); a missing status field means UNKNOWN (proto3
 * default), and so does an enum number this code does not know.
 */
export function decodeCheckResponse(body: Buffer): ServingStatus | DecodeError {
  if (body.length === 0) return { error: 'OK status without a response message' };
  if (body.length < FRAME_PREFIX_BYTES) return { error: `truncated gRPC frame prefix (${body.length} bytes)` };
  // We never send grpc-accept-encoding, so a compressed answer breaks the protocol.
  if (body[0] !== 0) return { error: 'compressed response, though no compression was offered' };
  const length = body.readUInt32BE(1);
  const end = FRAME_PREFIX_BYTES + length;
  if (body.length < end) return { error: `truncated response message (${body.length - FRAME_PREFIX_BYTES} of ${length} bytes)` };
  if (body.length > end) return { error: 'more than one message in a unary response' };

  let status = 0;
  let at = FRAME_PREFIX_BYTES;
  while (at < end) {
    const tag = readVarint(body, at, end);
    if (!tag) return { error: 'malformed HealthCheckResponse: bad field tag' };
    at = tag[1];
    const field = Math.floor(tag[0] / 8);
    const wireType = tag[0] & 7;
    if (wireType === WIRE_VARINT) {
      const v = readVarint(body, at, end);
      if (!v) return { error: 'malformed HealthCheckResponse: truncated varint' };
      at = v[1];
      // Last one wins, as protobuf parsers do for a repeated scalar.
      if (field === 1) status = v[0];
    } else if (wireType === WIRE_LENGTH_DELIMITED) {
      const len = readVarint(body, at, end);
      if (!len || len[1] + len[0] > end) return { error: 'malformed HealthCheckResponse: truncated field' };
      at = len[1] + len[0];
    } else if (wireType === WIRE_FIXED64 || wireType === WIRE_FIXED32) {
      at += wireType === WIRE_FIXED64 ? 8 : 4;
      if (at > end) return { error: 'malformed HealthCheckResponse: truncated field' };
    } else {
      return { error: `malformed HealthCheckResponse: wire type ${wireType}` };
    }
  }
  return SERVING_STATUS_BY_NUMBER[status] ?? 'UNKNOWN';
}
