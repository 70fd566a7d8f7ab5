/**
 * HTTP/2 (RFC 9113) frame layout: type, flag, error and setting codes, and writers for the frames
 * the engine sends. Codes are the protocol's numbers, the same ones node exposes as
 * http2.constants.NGHTTP2_*, so code comparing rstCode against those keeps working.
 */

export const FRAME_HEADER_BYTES = 9;
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FrameType = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const ErrorCode = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  SETTINGS_TIMEOUT: 4,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  CONNECT_ERROR: 10,
  ENHANCE_YOUR_CALM: 11,
  INADEQUATE_SECURITY: 12,
  HTTP_1_1_REQUIRED: 13,
} as const;

const ERROR_NAMES = Object.fromEntries(Object.entries(ErrorCode).map(([k, v]) => [v, k])) as Record<number, string>;
export function errorName(code: number): string {
  return ERROR_NAMES[code] ?? `error ${code}`;
}

export const SettingId = {
  HEADER_TABLE_SIZE: 1,
  ENABLE_PUSH: 2,
  MAX_CONCURRENT_STREAMS: 3,
  INITIAL_WINDOW_SIZE: 4,
  MAX_FRAME_SIZE: 5,
  MAX_HEADER_LIST_SIZE: 6,
} as const;

/** The protocol's defaults, in force until a peer's SETTINGS say otherwise. */
export const DEFAULT_WINDOW = 65_535;
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const MAX_WINDOW = 2 ** 31 - 1;
export const MAX_ALLOWED_FRAME_SIZE = 2 ** 24 - 1;

export interface Settings {
  headerTableSize?: number;
  enablePush?: boolean;
  maxConcurrentStreams?: number;
  initialWindowSize?: number;
  maxFrameSize?: number;
  maxHeaderListSize?: number;
}

export function writeFrameHeader(buf: Buffer, offset: number, length: number, type: number, flags: number, streamId: number): void {
  buf[offset] = length >>> 16;
  buf[offset + 1] = (length >>> 8) & 0xff;
  buf[offset + 2] = length & 0xff;
  buf[offset + 3] = type;
  buf[offset + 4] = flags;
  buf.writeUInt32BE(streamId, offset + 5);
}

/** A frame with an empty payload, or the header alone of one whose payload is written after it. */
export function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  writeFrameHeader(b, 0, length, type, flags, streamId);
  return b;
}

export function settingsFrame(s: Settings): Buffer {
  const entries: Array<[number, number]> = [];
  if (s.headerTableSize !== undefined) entries.push([SettingId.HEADER_TABLE_SIZE, s.headerTableSize]);
  if (s.enablePush !== undefined) entries.push([SettingId.ENABLE_PUSH, s.enablePush ? 1 : 0]);
  if (s.maxConcurrentStreams !== undefined) entries.push([SettingId.MAX_CONCURRENT_STREAMS, s.maxConcurrentStreams]);
  if (s.initialWindowSize !== undefined) entries.push([SettingId.INITIAL_WINDOW_SIZE, s.initialWindowSize]);
  if (s.maxFrameSize !== undefined) entries.push([SettingId.MAX_FRAME_SIZE, s.maxFrameSize]);
  if (s.maxHeaderListSize !== undefined) entries.push([SettingId.MAX_HEADER_LIST_SIZE, s.maxHeaderListSize]);
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + entries.length * 6);
  writeFrameHeader(b, 0, entries.length * 6, FrameType.SETTINGS, 0, 0);
  entries.forEach(([id, value], i) => {
    b.writeUInt16BE(id, FRAME_HEADER_BYTES + i * 6);
    b.writeUInt32BE(value, FRAME_HEADER_BYTES + i * 6 + 2);
  });
  return b;
}

export const SETTINGS_ACK = frameHeader(0, FrameType.SETTINGS, Flag.ACK, 0);

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
  writeFrameHeader(b, 0, 4, FrameType.WINDOW_UPDATE, 0, streamId);
  b.writeUInt32BE(increment, FRAME_HEADER_BYTES);
  return b;
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 4);
  writeFrameHeader(b, 0, 4, FrameType.RST_STREAM, 0, streamId);
  b.writeUInt32BE(code, FRAME_HEADER_BYTES);
  return b;
}

export function pingFrame(payload: Buffer, ack: boolean): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 8);
  writeFrameHeader(b, 0, 8, FrameType.PING, ack ? Flag.ACK : 0, 0);
  payload.copy(b, FRAME_HEADER_BYTES, 0, 8);
  return b;
}

export function goawayFrame(lastStreamId: number, code: number, debug = ''): Buffer {
  const text = Buffer.from(debug, 'utf8');
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 8 + text.length);
  writeFrameHeader(b, 0, 8 + text.length, FrameType.GOAWAY, 0, 0);
  b.writeUInt32BE(lastStreamId, FRAME_HEADER_BYTES);
  b.writeUInt32BE(code, FRAME_HEADER_BYTES + 4);
  text.copy(b, FRAME_HEADER_BYTES + 8);
  return b;
}

/**
 * A header block as HEADERS plus CONTINUATION frames no larger than `maxFrame`, in one buffer
 * (one write; frames of one block must not interleave with any other frame).
 */
export function headersFrames(streamId: number, block: Buffer, endStream: boolean, maxFrame: number): Buffer {
  const frames = Math.max(1, Math.ceil(block.length / maxFrame));
  const out = Buffer.allocUnsafe(block.length + frames * FRAME_HEADER_BYTES);
  let off = 0;
  for (let i = 0, pos = 0; i < frames; i++) {
    const len = Math.min(maxFrame, block.length - pos);
    const last = i === frames - 1;
    const type = i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
    const flags = (last ? Flag.END_HEADERS : 0) | (i === 0 && endStream ? Flag.END_STREAM : 0);
    writeFrameHeader(out, off, len, type, flags, streamId);
    block.copy(out, off + FRAME_HEADER_BYTES, pos, pos + len);
    off += FRAME_HEADER_BYTES + len;
    pos += len;
  }
  return out;
}
