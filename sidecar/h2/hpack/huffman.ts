/**
 * The HPACK Huffman code (RFC 7541 Appendix B, section 5.2): a canonical code over the 256 octets
 * plus EOS (symbol 256), used only for string literals.
 *
 * Decoding runs a table-driven state machine consuming one octet per lookup. The states are the
 * 256 internal nodes of the code tree; because no code is shorter than five bits, an octet can
 * complete at most two symbols, so each table entry is a next state plus up to two output octets
 * and flags, packed into one uint32. The table (256 states x 256 octets, 256 KiB) is built once at
 * module load from the code table below, so there is no tree walk and no allocation per bit.
 * One lookup per octet decodes ~1.4x faster than two 4-bit lookups (measured); the table is
 * composed from the 4-bit one, so building it takes a few milliseconds.
 */
import { HpackError } from './errors.js';

/**
 * Code of each symbol, right-aligned (the last bit of the code is bit 0), indexed by symbol;
 * copied from the "code as hex" column of RFC 7541 Appendix B. EOS is symbol 256.
 */
export const HUFFMAN_CODES: readonly number[] = [
  0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,  // symbols 0-7
  0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,  // symbols 8-15
  0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,  // symbols 16-23
  0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,  // symbols 24-31
  0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa,  // symbols 32-39
  0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,  // symbols 40-47
  0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,  // symbols 48-55
  0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,  // symbols 56-63
  0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62,  // symbols 64-71
  0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,  // symbols 72-79
  0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,  // symbols 80-87
  0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,  // symbols 88-95
  0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26,  // symbols 96-103
  0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7,  // symbols 104-111
  0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,  // symbols 112-119
  0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc,  // symbols 120-127
  0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9,  // symbols 128-135
  0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,  // symbols 136-143
  0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,  // symbols 144-151
  0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef,  // symbols 152-159
  0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde,  // symbols 160-167
  0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec,  // symbols 168-175
  0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,  // symbols 176-183
  0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,  // symbols 184-191
  0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,  // symbols 192-199
  0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed,  // symbols 200-207
  0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2,  // symbols 208-215
  0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5,  // symbols 216-223
  0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,  // symbols 224-231
  0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,  // symbols 232-239
  0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea,  // symbols 240-247
  0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,  // symbols 248-255
  0x3fffffff,  // symbols 256-256
];

/** Length in bits of each symbol's code, from the "len in bits" column of Appendix B. */
export const HUFFMAN_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,  // symbols 0-15
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,  // symbols 16-31
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,  // symbols 32-47
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,  // symbols 48-63
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  // symbols 64-79
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,  // symbols 80-95
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,  // symbols 96-111
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,  // symbols 112-127
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,  // symbols 128-143
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,  // symbols 144-159
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,  // symbols 160-175
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,  // symbols 176-191
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,  // symbols 192-207
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,  // symbols 208-223
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,  // symbols 224-239
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,  // symbols 240-255
  30,  // symbols 256-256
];

const EOS = 256;

// Typed copies: the hot loops index these per octet, and typed loads skip the holey/boxed checks.
const CODE_OF = Uint32Array.from(HUFFMAN_CODES);
const LENGTH_OF = Uint8Array.from(HUFFMAN_LENGTHS);

// Decode-table entry layout: bits 0-7 next state, 8-15 first octet out, 16-23 second octet out,
// 24-25 how many octets come out, then flags.
const EMIT_SHIFT = 24;
const EMIT_MASK = 3 << EMIT_SHIFT;
/** The state reached may end the string: the bits since the last symbol are 0-7 ones (valid padding). */
const MAY_END = 1 << 26;
/** The octet completed EOS, which RFC 7541 5.2 forbids inside a string literal. */
const HIT_EOS = 1 << 27;

interface CodeTree {
  /** children[node * 2 + bit]: > 0 an internal node, < 0 the leaf ~symbol; the root (0) is never a child. */
  readonly children: Int32Array;
  /** Bits from the root to each internal node. */
  readonly depth: Uint8Array;
  /** Whether the path to each internal node is all ones (a prefix of EOS). */
  readonly allOnes: Uint8Array;
}

const TREE = buildCodeTree();
const DECODE_TABLE = buildDecodeTable(TREE);

/**
 * Builds the code tree and checks that the code is a complete prefix code: a transcription slip
 * in the table above would otherwise decode some inputs silently wrong.
 */
function buildCodeTree(): CodeTree {
  const children = new Int32Array(512);
  const depth = new Uint8Array(256);
  const allOnes = new Uint8Array(256);
  allOnes[0] = 1;
  let nodeCount = 1;
  for (let symbol = 0; symbol <= EOS; symbol++) {
    const code = CODE_OF[symbol]!;
    const length = LENGTH_OF[symbol]!;
    let node = 0;
    for (let shift = length - 1; shift >= 0; shift--) {
      const bit = (code >>> shift) & 1;
      const slot = node * 2 + bit;
      const child = children[slot]!;
      if (child < 0 || (shift === 0 && child !== 0)) throw new Error(`Huffman table: code of ${symbol} collides`);
      if (shift === 0) {
        children[slot] = ~symbol;
      } else if (child === 0) {
        if (nodeCount === 256) throw new Error('Huffman table: more than 256 internal nodes');
        const next = nodeCount++;
        children[slot] = next;
        depth[next] = depth[node]! + 1;
        allOnes[next] = allOnes[node]! & bit;
        node = next;
      } else {
        node = child;
      }
    }
  }
  if (nodeCount !== 256 || children.includes(0)) throw new Error('Huffman table: not a complete prefix code');
  return { children, depth, allOnes };
}

/**
 * The octet table is composed from a 4-bit one (16x fewer tree walks), the same entry layout with
 * at most one octet out per nibble.
 */
function buildDecodeTable(tree: CodeTree): Uint32Array {
  const nibbles = new Uint32Array(256 * 16);
  for (let state = 0; state < 256; state++) {
    for (let nibble = 0; nibble < 16; nibble++) nibbles[(state << 4) | nibble] = walk(tree, state, nibble, 4);
  }
  const table = new Uint32Array(256 * 256);
  for (let state = 0; state < 256; state++) {
    for (let octet = 0; octet < 256; octet++) {
      const high = nibbles[(state << 4) | (octet >>> 4)]!;
      const low = nibbles[((high & 0xff) << 4) | (octet & 0xf)]!;
      table[(state << 8) | octet] = combine(high, low);
    }
  }
  return table;
}

function combine(high: number, low: number): number {
  if (((high | low) & HIT_EOS) !== 0) return HIT_EOS;
  const highEmits = high >>> EMIT_SHIFT & 3;
  const lowEmits = low >>> EMIT_SHIFT & 3;
  let entry = (low & 0xff) | (low & MAY_END) | ((highEmits + lowEmits) << EMIT_SHIFT);
  if (highEmits === 1) entry |= high & 0xff00;
  if (lowEmits === 1) entry |= (low & 0xff00) << (highEmits * 8);
  return entry >>> 0;
}

/** Walks the tree from `state` along the `width` low bits of `bits`, most significant first. */
function walk(tree: CodeTree, state: number, bits: number, width: number): number {
  let node = state;
  let emitted = 0;
  let entry = 0;
  for (let shift = width - 1; shift >= 0; shift--) {
    const child = tree.children[node * 2 + ((bits >>> shift) & 1)]!;
    if (child > 0) {
      node = child;
      continue;
    }
    const symbol = ~child;
    if (symbol === EOS) return HIT_EOS;
    // Codes are at least 5 bits long, so a 4-bit walk completes at most one symbol.
    if (emitted === 1) throw new Error('Huffman table: a code shorter than 5 bits');
    entry |= symbol << 8;
    emitted = 1;
    node = 0;
  }
  const mayEnd = tree.allOnes[node] === 1 && tree.depth[node]! <= 7;
  return entry | node | (emitted << EMIT_SHIFT) | (mayEnd ? MAY_END : 0);
}

/** Reused across calls; decode is synchronous, and the result leaves it as a string. */
let decodeScratch = Buffer.allocUnsafe(4096);

/**
 * Decodes the Huffman-coded octets src[start, end) into a latin1 string.
 * Throws HpackError if the string contains EOS or its padding is not 0-7 one bits.
 */
export function decodeHuffman(src: Uint8Array, start: number, end: number): string {
  // Every code is at least 5 bits, which bounds the output length.
  const maxOutput = ((end - start) * 8 / 5) | 0;
  if (decodeScratch.length < maxOutput) decodeScratch = Buffer.allocUnsafe(Math.max(maxOutput, decodeScratch.length * 2));
  const out = decodeScratch;
  let length = 0;
  let state = 0;
  let last = MAY_END;
  for (let i = start; i < end; i++) {
    const entry = DECODE_TABLE[(state << 8) | src[i]!]!;
    if ((entry & (EMIT_MASK | HIT_EOS)) !== 0) {
      if ((entry & HIT_EOS) !== 0) throw new HpackError('Huffman string contains EOS');
      out[length++] = entry >>> 8;
      if ((entry & EMIT_MASK) === 2 << EMIT_SHIFT) out[length++] = entry >>> 16;
    }
    state = entry & 0xff;
    last = entry;
  }
  if ((last & MAY_END) === 0) {
    throw new HpackError(TREE.allOnes[state] === 1 ? 'Huffman padding longer than 7 bits' : 'Huffman padding is not all ones');
  }
  return latin1String(out, 0, length);
}

/** Octets the Huffman coding of `value` takes (each char's low 8 bits is the octet, as in latin1). */
export function huffmanLength(value: string): number {
  let bits = 0;
  for (let i = 0; i < value.length; i++) bits += LENGTH_OF[value.charCodeAt(i) & 0xff]!;
  return (bits + 7) >>> 3;
}

/**
 * Writes the Huffman coding of `value` at out[offset] (the caller has made room for
 * huffmanLength(value) octets) and returns the offset after it.
 */
export function encodeHuffman(value: string, out: Uint8Array, offset: number): number {
  let position = offset;
  // `bits` (0-7 between symbols) low bits of `buffered` are pending output; higher bits are stale.
  let buffered = 0;
  let bits = 0;
  for (let i = 0; i < value.length; i++) {
    const symbol = value.charCodeAt(i) & 0xff;
    let code = CODE_OF[symbol]!;
    let length = LENGTH_OF[symbol]!;
    if (length > 24) {
      // Push the top part first so that pending bits never exceed 31 and stay in int32 arithmetic.
      buffered = (buffered << (length - 16)) | (code >>> 16);
      bits += length - 16;
      while (bits >= 8) out[position++] = buffered >>> (bits -= 8);
      code &= 0xffff;
      length = 16;
    }
    buffered = (buffered << length) | code;
    bits += length;
    // The store keeps the low 8 bits, which are exactly the next octet.
    while (bits >= 8) out[position++] = buffered >>> (bits -= 8);
  }
  // Pad with the most significant bits of EOS, which are all ones (RFC 7541 5.2).
  if (bits > 0) out[position++] = (buffered << (8 - bits)) | (0xff >>> bits);
  return position;
}

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/** Below this length, building the string in JS beats the native call behind latin1Slice (measured). */
const SHORT_STRING = 12;
const fromCharCode = String.fromCharCode;

/** Reads octets as a latin1 string, so that every octet value round-trips. */
export function latin1String(buffer: Buffer, start: number, end: number): string {
  if (end - start >= SHORT_STRING) return (buffer as Latin1Buffer).latin1Slice(start, end);
  let result = '';
  let i = start;
  for (; i + 4 <= end; i += 4) result += fromCharCode(buffer[i]!, buffer[i + 1]!, buffer[i + 2]!, buffer[i + 3]!);
  for (; i < end; i++) result += fromCharCode(buffer[i]!);
  return result;
}
