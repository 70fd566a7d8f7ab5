/**
 * A fast string hash for consistent hashing: FNV-1a 32 over the string, then murmur3's fmix32
 * finalizer, keeping the top 30 bits. FNV-1a alone mixes the last characters poorly into the high bits, and the high bits
 * decide where a point lands on a hash ring: "10.0.0.1:80#1" and "#2" would sit next to each other.
 *
 * The input is the string's UTF-16 code units (one byte for ASCII, low then high byte otherwise),
 * read in place: no encoding, no allocation. Only Remora reads these hashes, so matching another
 * implementation byte for byte does not matter; being the same in every sidecar does.
 *
 * 30 bits because a 30-bit integer is a V8 small integer in every build: returned from a call the
 * JIT does not inline, a full 32-bit value would be boxed on the heap, and pick() must not allocate.
 * A billion positions are plenty for a ring of at most 64k points.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function hashString(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV_PRIME);
    } else {
      h = Math.imul(h ^ (c & 0xff), FNV_PRIME);
      h = Math.imul(h ^ (c >>> 8), FNV_PRIME);
    }
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 2;
}
