/**
 * gRPC length-prefixed messages (1 byte compressed flag, 4 bytes big-endian length, payload) over a
 * raw node:http2 stream, for the reflection client. Not on the proxy path, which never frames.
 */

export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = 0;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

/** Splits DATA chunks into messages. Throws on a compressed message or one above `maxBytes`. */
export class Deframer {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    while (this.pending.length >= 5) {
      // We never offer grpc-accept-encoding, so a compressed message is the peer's mistake.
      if (this.pending[0] !== 0) throw new Error('compressed message, but no compression was offered');
      const length = this.pending.readUInt32BE(1);
      if (length > this.maxBytes) throw new Error(`message of ${length} bytes exceeds the ${this.maxBytes} byte limit`);
      if (this.pending.length < 5 + length) break;
      out.push(this.pending.subarray(5, 5 + length));
      this.pending = this.pending.subarray(5 + length);
    }
    return out;
  }
}
