/**
 * Reads only `version` (field 1) and `nonce` (field 2) of an encoded StreamConfigResponse.
 *
 * Why not decode the message: 1,000 simulated sidecars share one process, and fully decoding every
 * snapshot 1,000 times would make the bench's own CPU the bottleneck and inflate the convergence
 * it reports. Real sidecars decode in their own processes, in parallel. The control plane writes
 * the fields in number order, so this usually stops after the first two and costs O(1).
 */

export interface SnapshotHeader {
  readonly version: string;
  readonly nonce: string;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

/** Returns [value, next offset]; throws on a varint running past the end or longer than 64 bits. */
function varint(buf: Buffer, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (at >= buf.length) throw new Error('truncated varint');
    const b = buf[at++]!;
    // Multiplication, not shifts: lengths and tags beyond 2^31 stay exact up to 2^53.
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return [value, at];
    scale *= 128;
  }
  throw new Error('varint longer than 10 bytes');
}

export function readSnapshotHeader(buf: Buffer): SnapshotHeader {
  let version = '';
  let nonce = '';
  let seen = 0;
  let at = 0;
  while (at < buf.length && seen < 2) {
    const [tag, afterTag] = varint(buf, at);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    at = afterTag;
    switch (wire) {
      case WIRE_VARINT:
        at = varint(buf, at)[1];
        break;
      case WIRE_FIXED64:
        at += 8;
        break;
      case WIRE_FIXED32:
        at += 4;
        break;
      case WIRE_LEN: {
        const [len, start] = varint(buf, at);
        if (start + len > buf.length) throw new Error('truncated length-delimited field');
        if (field === 1) { version = buf.toString('utf8', start, start + len); seen++; }
        else if (field === 2) { nonce = buf.toString('utf8', start, start + len); seen++; }
        at = start + len;
        break;
      }
      default:
        throw new Error(`unsupported wire type ${wire}`);
    }
  }
  return { version, nonce };
}
